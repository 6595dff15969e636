"""The pre- and post-processing of MediaPipe's legacy hand and pose graphs, batched, in torch. No bpy, no MediaPipe.

Everything here is a pure function of tensors and runs on whatever device its inputs live on (CPU or CUDA; float32
maths, float64 for the crop coordinates and integer pixel blending, as OpenCV does). Host-side steps, on a few
numbers only: the crops' 3×3 warp matrices (cv2, to match OpenCV's last bits) and the weighted non-maximum
suppression, a short greedy loop over the candidates above the score threshold. May import torch, numpy and cv2;
never bpy or MediaPipe.

Each function reproduces one MediaPipe 0.10.21 calculator; the formulas are written out beside the code. Conventions:

- A *ROI* is a rotated rectangle in pixels of the full frame: ``(cx, cy, w, h, rotation)``, rotation in radians,
  positive = clockwise on screen (image y points down). MediaPipe keeps it normalised by the image size
  (``NormalizedRect``); multiplying by (W, H) gives exactly these numbers.
- A crop of size (S_w, S_h) samples destination pixel (u, v), u, v integer, at the source point

      [x, y] = [cx, cy] + R(rotation) · [(u / S_w − ½) · w, (v / S_h − ½) · h]
      R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]

  i.e. the ROI's corners land on the tensor's corners (0, 0) … (S_w, S_h) and pixel indices, not pixel centres, are
  mapped — what ImageToTensorCalculator's OpenCV converter gets from ``cv::boxPoints`` + ``getPerspectiveTransform``.
  Landmark projection inverts the same map, so both ends stay consistent with MediaPipe.
- Detection boxes are ``(xmin, ymin, width, height)`` normalised to the image (MediaPipe's RELATIVE_BOUNDING_BOX).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------------------- anchors
@dataclasses.dataclass(frozen=True)
class AnchorOptions:
    """SsdAnchorsCalculatorOptions (only the fields the BlazePalm / BlazePose detectors use)."""
    input_size: int                       # square network input, px
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


def _anchor_scale(opts: AnchorOptions, index: int) -> float:
    # scale_i = min + (max − min) · i / (n − 1)   (SsdAnchorsCalculator's CalculateScale)
    n = len(opts.strides)
    if n == 1:
        return (opts.min_scale + opts.max_scale) * 0.5
    return opts.min_scale + (opts.max_scale - opts.min_scale) * index / (n - 1.0)


def ssd_anchors(opts: AnchorOptions) -> Tensor:
    """Anchors ``(N, 4)`` = (x_center, y_center, w, h), normalised to the network input.

    Consecutive layers with the same stride share one feature map; each cell gets, per layer, one anchor per aspect
    ratio plus one "interpolated" anchor of scale sqrt(scale_i · scale_{i+1}). Centres sit at
    ``(col + 0.5) / fm_w, (row + 0.5) / fm_h`` with ``fm = ceil(input / stride)``, anchors of a cell consecutive.
    """
    out: list[Tensor] = []
    layer = 0
    n_layers = len(opts.strides)
    while layer < n_layers:
        sizes: list[tuple[float, float]] = []          # (w, h) per anchor of a cell
        last = layer
        while last < n_layers and opts.strides[last] == opts.strides[layer]:
            scale = _anchor_scale(opts, last)
            for ratio in opts.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if opts.interpolated_scale_aspect_ratio > 0.0:
                nxt = 1.0 if last == n_layers - 1 else _anchor_scale(opts, last + 1)
                s = math.sqrt(scale * nxt)
                r = opts.interpolated_scale_aspect_ratio
                sizes.append((s * math.sqrt(r), s / math.sqrt(r)))
            last += 1
        fm = math.ceil(opts.input_size / opts.strides[layer])
        ys, xs = torch.meshgrid(torch.arange(fm, dtype=torch.float32), torch.arange(fm, dtype=torch.float32),
                                indexing="ij")
        cx = ((xs + opts.anchor_offset) / fm).reshape(-1, 1).expand(-1, len(sizes))   # (fm², A)
        cy = ((ys + opts.anchor_offset) / fm).reshape(-1, 1).expand(-1, len(sizes))
        wh = torch.ones(len(sizes), 2) if opts.fixed_anchor_size else torch.tensor(sizes, dtype=torch.float32)
        w = wh[:, 0].expand_as(cx)
        h = wh[:, 1].expand_as(cx)
        out.append(torch.stack([cx, cy, w, h], dim=-1).reshape(-1, 4))
        layer = last
    return torch.cat(out, dim=0)


# ------------------------------------------------------------------------------------------------ detection decoding
@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """TensorsToDetectionsCalculatorOptions for an XYWH ("reverse_output_order") SSD head with keypoints."""
    num_keypoints: int
    scale: float                           # x_scale = y_scale = w_scale = h_scale (the input size)
    min_score: float = 0.5
    score_clipping: float = 100.0


def decode_boxes(raw: Tensor, anchors: Tensor, opts: DecodeOptions) -> tuple[Tensor, Tensor]:
    """Raw regressors ``(B, N, 4 + 2K)`` → boxes ``(B, N, 4)`` (xmin, ymin, w, h) and keypoints ``(B, N, K, 2)``.

        cx = raw_x / scale · anchor_w + anchor_cx      w = raw_w / scale · anchor_w      (same for y, h)
        xmin = cx − w/2,  xmax = cx + w/2;  keypoint_k = raw_k / scale · anchor_wh + anchor_c
    All normalised to the network input (letterbox not yet removed).
    """
    a = anchors.to(raw.device)                                          # (N, 4)
    s = opts.scale
    cx = raw[..., 0] / s * a[:, 2] + a[:, 0]
    cy = raw[..., 1] / s * a[:, 3] + a[:, 1]
    w = raw[..., 2] / s * a[:, 2]
    h = raw[..., 3] / s * a[:, 3]
    xmin, ymin = cx - w / 2.0, cy - h / 2.0
    xmax, ymax = cx + w / 2.0, cy + h / 2.0
    boxes = torch.stack([xmin, ymin, xmax - xmin, ymax - ymin], dim=-1)          # (B, N, 4)
    k = opts.num_keypoints
    kp = raw[..., 4:4 + 2 * k].reshape(*raw.shape[:-1], k, 2)
    kp = kp / s * a[:, None, 2:4] + a[:, None, 0:2]                              # (B, N, K, 2)
    return boxes, kp


def detection_scores(raw_scores: Tensor, opts: DecodeOptions) -> Tensor:
    """``(B, N, 1)`` logits → ``(B, N)`` scores: sigmoid(clamp(logit, −clip, clip))."""
    return torch.sigmoid(raw_scores[..., 0].clamp(-opts.score_clipping, opts.score_clipping))


# --------------------------------------------------------------------------------------------- weighted NMS (host)
def _iou(boxes: Tensor, box: Tensor) -> Tensor:
    """IoU of each of ``(M, 4)`` boxes with one box (xmin, ymin, w, h); 0 where they do not touch."""
    x0 = torch.maximum(boxes[:, 0], box[0])
    y0 = torch.maximum(boxes[:, 1], box[1])
    x1 = torch.minimum(boxes[:, 0] + boxes[:, 2], box[0] + box[2])
    y1 = torch.minimum(boxes[:, 1] + boxes[:, 3], box[1] + box[3])
    inter = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
    union = boxes[:, 2] * boxes[:, 3] + box[2] * box[3] - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def weighted_nms(boxes: Tensor, keypoints: Tensor, scores: Tensor,
                 iou_threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """NonMaxSuppressionCalculator, algorithm WEIGHTED, overlap INTERSECTION_OVER_UNION, for one image.

    boxes ``(M, 4)`` xmin, ymin, w, h; keypoints ``(M, K, 2)``; scores ``(M,)``. Repeatedly take the best remaining
    detection, gather every remaining one with IoU > threshold (itself included), and replace its box corners and
    keypoints by the score-weighted means of that cluster; its score stays its own:

        corner = Σ s_i · corner_i / Σ s_i       (xmin, ymin, xmax, ymax and each keypoint)

    Returns the kept ``(D, 4)``, ``(D, K, 2)``, ``(D,)``, best first.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    remaining = order
    out_b, out_k, out_s = [], [], []
    while remaining.numel() > 0:
        lead = remaining[0]
        sim = _iou(boxes[remaining], boxes[lead])
        cand = remaining[sim > iou_threshold]
        rest = remaining[sim <= iou_threshold]
        box, kp = boxes[lead], keypoints[lead]
        if cand.numel() > 0:
            w = scores[cand]                                             # (C,)
            total = w.sum()
            corners = torch.cat([boxes[cand, :2], boxes[cand, :2] + boxes[cand, 2:]], dim=1)   # (C, 4)
            c = (corners * w[:, None]).sum(0) / total
            box = torch.stack([c[0], c[1], c[2] - c[0], c[3] - c[1]])
            kp = (keypoints[cand] * w[:, None, None]).sum(0) / total
        out_b.append(box)
        out_k.append(kp)
        out_s.append(scores[lead])
        if rest.numel() == remaining.numel():   # the leader did not even overlap itself (empty box): MediaPipe stops
            break
        remaining = rest
    if not out_b:
        return boxes[:0], keypoints[:0], scores[:0]
    return torch.stack(out_b), torch.stack(out_k), torch.stack(out_s)


# -------------------------------------------------------------------------------------------------------- letterbox
def pad_roi(rois: Tensor, tensor_w: int, tensor_h: int) -> tuple[Tensor, Tensor]:
    """ImageToTensor's ``keep_aspect_ratio``: grow each ROI ``(K, 5)`` to the tensor's aspect ratio.

        a_t = S_h / S_w,  a_r = h / w
        a_t > a_r:  h' = w · a_t,  pad_y = (1 − a_r / a_t) / 2
        else:       w' = h / a_t,  pad_x = (1 − a_t / a_r) / 2
    Returns the padded ROIs and the letterbox padding ``(K, 4)`` = (left, top, right, bottom), fractions of the
    tensor.
    """
    a_t = float(tensor_h) / float(tensor_w)
    w, h = rois[:, 2], rois[:, 3]
    a_r = h / w
    taller = a_t > a_r
    zeros = torch.zeros_like(w)
    new_w = torch.where(taller, w, h / a_t)
    new_h = torch.where(taller, w * a_t, h)
    pad_y = torch.where(taller, (1.0 - a_r / a_t) / 2.0, zeros)
    pad_x = torch.where(taller, zeros, (1.0 - a_t / a_r) / 2.0)
    out = rois.clone()
    out[:, 2], out[:, 3] = new_w, new_h
    return out, torch.stack([pad_x, pad_y, pad_x, pad_y], dim=1)


def remove_letterbox(xy: Tensor, padding: Tensor) -> Tensor:
    """Tensor-normalised points ``(K, ..., 2)`` → ROI-normalised: ``x' = (x − left) / (1 − left − right)``, y too.

    ``padding`` is ``(K, 4)``. Box widths/heights and z scale by ``1 / (1 − left − right)`` (see `letterbox_scale`).
    """
    shape = (padding.shape[0],) + (1,) * (xy.dim() - 2)
    left, top = padding[:, 0].reshape(shape), padding[:, 1].reshape(shape)
    sx = (1.0 - padding[:, 0] - padding[:, 2]).reshape(shape)
    sy = (1.0 - padding[:, 1] - padding[:, 3]).reshape(shape)
    return torch.stack([(xy[..., 0] - left) / sx, (xy[..., 1] - top) / sy], dim=-1)


def letterbox_scale(padding: Tensor) -> Tensor:
    """``(K, 2)`` = (1 − left − right, 1 − top − bottom): divide widths (and z) / heights by these."""
    return torch.stack([1.0 - padding[:, 0] - padding[:, 2], 1.0 - padding[:, 1] - padding[:, 3]], dim=1)


def full_frame_rois(sizes: Tensor) -> Tensor:
    """The whole image as a ROI, ``(N, 5)``, from ``sizes`` ``(N, 2)`` = (W, H)."""
    s = sizes.to(torch.float32)
    z = torch.zeros_like(s[:, 0])
    return torch.stack([s[:, 0] / 2, s[:, 1] / 2, s[:, 0], s[:, 1], z], dim=1)


def tile_rois(sizes: Tensor, grid: int, overlap: float) -> Tensor:
    """Axis-aligned tiles of each image, ``(N, grid², 5)`` px: a ``grid × grid`` layout whose neighbours overlap by
    ``overlap`` of a tile's side (each tile spans ``1 / (grid − (grid − 1) · overlap)`` of the image)."""
    s = sizes.to(torch.float32)                                                       # (N, 2)
    span = 1.0 / (grid - (grid - 1) * overlap)
    step = span * (1.0 - overlap)
    centres = torch.tensor([span / 2 + i * step for i in range(grid)], dtype=torch.float32, device=s.device)
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")                         # (grid, grid)
    cx, cy = cx.reshape(-1), cy.reshape(-1)
    n, k = s.shape[0], grid * grid
    out = torch.zeros((n, k, 5), dtype=torch.float32, device=s.device)
    out[..., 0] = cx[None] * s[:, None, 0]
    out[..., 1] = cy[None] * s[:, None, 1]
    out[..., 2] = span * s[:, None, 0]
    out[..., 3] = span * s[:, None, 1]
    return out


# ---------------------------------------------------------------------------------------------------- rotated crops
_TAB = 32          # OpenCV's INTER_TAB_SIZE: bilinear sample positions are quantised to 1/32 px
_BLOCK = 32        # OpenCV's warp works in blocks; the block origin enters the floating-point sums (ties!)


def warp_matrices(rois: Tensor, out_w: int, out_h: int) -> Tensor:
    """The inverse warp (tensor px → frame px) ``(K, 3, 3)`` float64 that MediaPipe hands to ``cv::warpPerspective``.

    Built exactly as ImageToTensor's OpenCV converter does — float32 ``cv::boxPoints`` of the ROI (angle in degrees,
    float), ``getPerspectiveTransform`` onto the corners (0, S_h), (0, 0), (S_w, 0), (S_w, S_h), then ``invert`` —
    so that the last bits, which decide the rounding of exact half-way sample positions, agree. Host side, cv2.
    """
    import cv2  # lazy: only the host-side matrix set-up needs it

    r = rois.detach().to("cpu", torch.float32).numpy()
    dst = np.array([[0.0, out_h], [0.0, 0.0], [out_w, 0.0], [out_w, out_h]], dtype=np.float32)
    out = np.empty((r.shape[0], 3, 3), dtype=np.float64)
    for i, (cx, cy, w, h, rot) in enumerate(r):
        angle = np.float32(np.float64(np.float32(rot) * np.float32(180.0)) / math.pi)    # float(rot·180f / M_PI)
        src = cv2.boxPoints(((float(cx), float(cy)), (float(w), float(h)), float(angle))).astype(np.float32)
        out[i] = cv2.invert(cv2.getPerspectiveTransform(src, dst), flags=cv2.DECOMP_LU)[1]
    return torch.from_numpy(out)


def crop_rois(frames: Tensor, sizes: Tensor, frame_index: Tensor, rois: Tensor, out_w: int, out_h: int,
              border: str, value_range: tuple[float, float], chunk: int = 64) -> Tensor:
    """ImageToTensorCalculator (CPU/OpenCV): rotated crops of uint8 frames → float network input ``(K, S_h, S_w, 3)``.

    frames ``(N, Hmax, Wmax, 3)`` uint8 (frames smaller than the buffer sit in its top-left corner); sizes ``(N, 2)``
    = each frame's (W, H); frame_index ``(K,)`` which frame each crop reads; rois ``(K, 5)`` in px (already padded to
    the tensor's aspect ratio). ``border`` is ``"zero"`` (pixels outside read 0) or ``"replicate"``. The work is
    proportional to the crops, not to the frames: only the 4 × 3 bytes each crop pixel needs are gathered.

    OpenCV's ``warpPerspective`` (INTER_LINEAR) on uint8 is reproduced bit for bit: the source point
    ``M⁻¹ · (u, v, 1)`` is rounded (half to even) to 1/32 px, the four neighbours are blended with the integer
    weights (32 − f)(32 − g), f(32 − g), … and the sum rounded half up: ``(Σ w·p + 512) >> 10``; then
    ``value = lo + pixel · (hi − lo) / 255``.
    """
    k = rois.shape[0]
    mats = warp_matrices(rois, out_w, out_h).to(frames.device)                 # (K, 3, 3) float64
    out = torch.empty((k, out_h, out_w, 3), dtype=torch.float32, device=frames.device)
    for start in range(0, k, chunk):
        sl = slice(start, min(k, start + chunk))
        out[sl] = _crop_chunk(frames, sizes, frame_index[sl], mats[sl], out_w, out_h, border, value_range)
    return out


def _source_points(m: Tensor, out_w: int, out_h: int) -> tuple[Tensor, Tensor]:
    """Fixed-point (1/32 px) source coordinates ``(K, S_h, S_w)`` int64 of every tensor pixel, evaluated in the
    same order as OpenCV: per block of ``bw`` columns starting at x_b,

        X0 = M00·x_b + M01·y + M02,   W = (M20·x_b + M21·y + M22) + M20·x1,   X = round((X0 + M00·x1) · 32 / W)
    """
    dev = m.device
    bh = min(_BLOCK // 2, out_h)
    bw = min(_BLOCK * _BLOCK // bh, out_w)
    u = torch.arange(out_w, device=dev, dtype=torch.float64)
    xb = torch.div(u, bw, rounding_mode="floor") * bw                           # block origin of each column
    x1 = u - xb
    y = torch.arange(out_h, device=dev, dtype=torch.float64)[:, None]           # (S_h, 1)

    def row(i: int) -> Tensor:
        return m[:, i, 0, None, None] * xb + m[:, i, 1, None, None] * y + m[:, i, 2, None, None]   # (K, S_h, S_w)

    w = row(2) + m[:, 2, 0, None, None] * x1
    scale = torch.where(w != 0, _TAB / w, torch.zeros_like(w))
    xq = torch.round((row(0) + m[:, 0, 0, None, None] * x1) * scale).to(torch.int64)
    yq = torch.round((row(1) + m[:, 1, 0, None, None] * x1) * scale).to(torch.int64)
    return xq, yq


def _crop_chunk(frames: Tensor, sizes: Tensor, frame_index: Tensor, mats: Tensor, out_w: int, out_h: int,
                border: str, value_range: tuple[float, float]) -> Tensor:
    dev = frames.device
    n, hmax, wmax, _ = frames.shape
    k = mats.shape[0]
    xq, yq = _source_points(mats, out_w, out_h)                                 # (K, S_h, S_w) in 1/32 px
    x0, y0 = xq >> 5, yq >> 5                                                   # floor(/ 32): arithmetic shift
    fx, fy = (xq & (_TAB - 1)).to(torch.int32), (yq & (_TAB - 1)).to(torch.int32)
    fi = frame_index.to(dev).to(torch.int64)
    wlim = sizes.to(dev)[fi, 0].to(torch.int64).reshape(k, 1, 1)
    hlim = sizes.to(dev)[fi, 1].to(torch.int64).reshape(k, 1, 1)
    weights = [(_TAB - fx) * (_TAB - fy), fx * (_TAB - fy), (_TAB - fx) * fy, fx * fy]   # (0,0) (1,0) (0,1) (1,1)
    if border == "zero":                                                        # neighbours outside read 0
        in_x = [(x0 >= 0) & (x0 < wlim), (x0 >= -1) & (x0 + 1 < wlim)]
        in_y = [(y0 >= 0) & (y0 < hlim), (y0 >= -1) & (y0 + 1 < hlim)]
        weights = [w * (in_x[i % 2] & in_y[i // 2]) for i, w in enumerate(weights)]
    # replicate (and safe indexing for zero): clamp each neighbour to the frame
    cols = [torch.minimum(x.clamp(min=0), wlim - 1) for x in (x0, x0 + 1)]
    rows = [(fi.reshape(k, 1, 1) * hmax + torch.minimum(y.clamp(min=0), hlim - 1)) * wmax for y in (y0, y0 + 1)]
    flat = frames.reshape(-1)                                                   # (N·Hmax·Wmax·3,) uint8
    at = [((rows[i // 2] + cols[i % 2]) * 3).reshape(-1) for i in range(4)]     # byte offset of each neighbour
    channels: list[Tensor] = []
    for c in range(3):
        acc = torch.zeros((k, out_h, out_w), dtype=torch.int32, device=dev)
        for i in range(4):
            pix = flat.index_select(0, at[i] + c).reshape(k, out_h, out_w).to(torch.int32)
            acc += pix * weights[i]                                             # integer, < 2^18
        channels.append((acc + (_TAB * _TAB) // 2) >> 10)                       # the uint8 the warp writes
    pixel = torch.stack(channels, dim=-1).to(torch.float32)                     # (K, S_h, S_w, 3)
    lo, hi = value_range
    return pixel * ((hi - lo) / 255.0) + lo


# ------------------------------------------------------------------------------------------------------ ROI maths
def normalize_radians(angle: Tensor) -> Tensor:
    """Wrap to [−π, π): ``a − 2π · floor((a + π) / 2π)``."""
    return angle - 2.0 * math.pi * torch.floor((angle + math.pi) / (2.0 * math.pi))


def rotation_from_points(p0: Tensor, p1: Tensor, target_angle: float) -> Tensor:
    """Rotation that turns the vector p0 → p1 (px, ``(..., 2)``) to ``target_angle`` (radians, 90° = pointing up).

        rotation = normalize(target − atan2(−(y1 − y0), x1 − x0))
    """
    return normalize_radians(target_angle - torch.atan2(-(p1[..., 1] - p0[..., 1]), p1[..., 0] - p0[..., 0]))


@dataclasses.dataclass(frozen=True)
class RectTransform:
    """RectTransformationCalculatorOptions."""
    scale_x: float = 1.0
    scale_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    square_long: bool = True


def transform_rects(rois: Tensor, t: RectTransform) -> Tensor:
    """Shift (in the ROI's own rotated axes), square and scale ROIs ``(K, 5)`` px:

        cx += w·sx·cos r − h·sy·sin r,   cy += w·sx·sin r + h·sy·cos r
        w = h = max(w, h)  (square_long),   w *= scale_x,  h *= scale_y
    """
    cx, cy, w, h, r = rois.unbind(-1)
    cos, sin = torch.cos(r), torch.sin(r)
    cx = cx + w * t.shift_x * cos - h * t.shift_y * sin
    cy = cy + w * t.shift_x * sin + h * t.shift_y * cos
    if t.square_long:
        w = h = torch.maximum(w, h)
    return torch.stack([cx, cy, w * t.scale_x, h * t.scale_y, r], dim=-1)


def box_rois(boxes_px: Tensor, kp_px: Tensor, start: int, end: int, target_angle: float) -> Tensor:
    """DetectionsToRectsCalculator: the box itself (centre, size) with the rotation of keypoint start → end.

    boxes_px ``(K, 4)`` xmin, ymin, w, h in px; kp_px ``(K, P, 2)`` px → ROIs ``(K, 5)``.
    """
    rot = rotation_from_points(kp_px[:, start], kp_px[:, end], target_angle)
    return torch.stack([boxes_px[:, 0] + boxes_px[:, 2] / 2, boxes_px[:, 1] + boxes_px[:, 3] / 2,
                        boxes_px[:, 2], boxes_px[:, 3], rot], dim=-1)


def alignment_rois(kp_px: Tensor, start: int, end: int, target_angle: float) -> Tensor:
    """AlignmentPointsRectsCalculator: centre at keypoint ``start``, side = 2 · |kp_end − kp_start|, rotation
    start → end. kp_px ``(K, P, 2)`` px → ROIs ``(K, 5)``."""
    c, e = kp_px[:, start], kp_px[:, end]
    side = torch.linalg.vector_norm(e - c, dim=-1) * 2.0
    rot = rotation_from_points(c, e, target_angle)
    return torch.stack([c[:, 0], c[:, 1], side, side, rot], dim=-1)


def rect_iou_axis_aligned(a: Tensor, b: Tensor) -> Tensor:
    """IoU of two ROIs ``(5,)`` as axis-aligned boxes (rotation ignored), as AssociationNormRectCalculator does."""
    ba = torch.stack([a[0] - a[2] / 2, a[1] - a[3] / 2, a[2], a[3]])
    bb = torch.stack([b[0] - b[2] / 2, b[1] - b[3] / 2, b[2], b[3]])
    return _iou(ba[None], bb)[0]


# -------------------------------------------------------------------------------------------------------- landmarks
def project_landmarks(lm: Tensor, rois: Tensor) -> Tensor:
    """LandmarkProjectionCalculator: ROI-normalised landmarks ``(K, L, 3)`` → full-frame px ``(K, L, 3)``.

        [x, y]_px = [cx, cy] + R(rotation) · [(x − ½) · w, (y − ½) · h],    z_px = z · w
    (z keeps MediaPipe's scale: its normalised z times the image width.)
    """
    cx, cy, w, h, r = (rois[:, i, None] for i in range(5))
    x, y = lm[..., 0] - 0.5, lm[..., 1] - 0.5
    cos, sin = torch.cos(r), torch.sin(r)
    px = (cos * x - sin * y) * w + cx
    py = (sin * x + cos * y) * h + cy
    return torch.stack([px, py, lm[..., 2] * w], dim=-1)


def rotate_world(world: Tensor, rotation: Tensor) -> Tensor:
    """WorldLandmarkProjectionCalculator: rotate ``(K, L, 3)`` metres about z by the ROI rotation ``(K,)``."""
    cos, sin = torch.cos(rotation)[:, None], torch.sin(rotation)[:, None]
    x, y = world[..., 0], world[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y, world[..., 2]], dim=-1)


def refine_from_heatmap(xy: Tensor, heatmap: Tensor, kernel: int = 7, min_confidence: float = 0.5) -> Tensor:
    """RefineLandmarksFromHeatmapCalculator: ``xy`` ``(K, L, 2)`` tensor-normalised, ``heatmap`` ``(K, Hh, Wh, L)``.

    Around cell (col, row) = trunc(x · Wh, y · Hh) take the kernel × kernel window (clipped to the map),
    c = sigmoid(heatmap), and if max c ≥ min_confidence:  x = Σ col·c / Σ c / Wh,  y = Σ row·c / Σ c / Hh.
    Landmarks whose cell lies outside the map are left alone. (Indices, not cell centres: MediaPipe's convention.)
    """
    k, hh, wh, nl = heatmap.shape
    col = torch.trunc(xy[..., 0] * wh).to(torch.int64)                  # (K, L) C++ float→int truncation
    row = torch.trunc(xy[..., 1] * hh).to(torch.int64)
    inside = (col >= 0) & (col < wh) & (row >= 0) & (row < hh)
    off = torch.arange(kernel, device=xy.device) - (kernel - 1) // 2     # (k,)
    rows = row[..., None, None] + off[:, None]                          # (K, L, k, 1)
    cols = col[..., None, None] + off[None, :]                          # (K, L, 1, k)
    valid = (rows >= 0) & (rows < hh) & (cols >= 0) & (cols < wh)       # (K, L, k, k)
    idx = (rows.clamp(0, hh - 1) * wh + cols.clamp(0, wh - 1)).reshape(k, nl, -1)
    hm = heatmap.permute(0, 3, 1, 2).reshape(k, nl, hh * wh)
    conf = torch.sigmoid(torch.gather(hm, 2, idx)).reshape(valid.shape) * valid
    total = conf.sum(dim=(-2, -1))                                       # (K, L)
    peak = conf.amax(dim=(-2, -1))
    wx = (conf * cols.to(conf.dtype)).sum(dim=(-2, -1))
    wy = (conf * rows.to(conf.dtype)).sum(dim=(-2, -1))
    refine = inside & (peak >= min_confidence) & (total > 0)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    new = torch.stack([wx / wh / safe, wy / hh / safe], dim=-1)
    return torch.where(refine[..., None], new, xy)


# Hand landmarks MediaPipe uses for the next frame's ROI: wrist, thumb CMC/MCP/IP, and the MCP + PIP of each finger.
HAND_ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def hand_landmarks_to_rois(lm_px: Tensor, t: RectTransform) -> Tensor:
    """HandLandmarksToRectCalculator + RectTransformation: hand landmarks ``(K, 21, ≥2)`` px → next ROIs ``(K, 5)``.

    rotation: wrist → mean(mean(index MCP, ring MCP), middle MCP), target 90°.
    Box: the 12 palm/base landmarks, centred on their axis-aligned box centre c, rotated by −rotation; its
    (rotated) extent gives w, h, and the centre of that extent rotated back by +rotation, plus c, the ROI centre.
    """
    p = lm_px[:, HAND_ROI_LANDMARKS, :2]                                  # (K, 12, 2)
    wrist, index_mcp, middle_mcp, ring_mcp = p[:, 0], p[:, 4], p[:, 6], p[:, 8]
    target = ((index_mcp + ring_mcp) / 2.0 + middle_mcp) / 2.0
    rot = rotation_from_points(wrist, target, math.pi / 2)
    tiny = torch.finfo(p.dtype).tiny     # MediaPipe starts its max at FLT_MIN, not −FLT_MAX
    centre = (p.amax(1).clamp(min=tiny) + p.amin(1)) / 2.0               # (K, 2)
    d = p - centre[:, None]
    rev = normalize_radians(-rot)
    cr, sr = torch.cos(rev)[:, None], torch.sin(rev)[:, None]
    q = torch.stack([d[..., 0] * cr - d[..., 1] * sr, d[..., 0] * sr + d[..., 1] * cr], dim=-1)
    qmax, qmin = q.amax(1).clamp(min=tiny), q.amin(1)
    qc = (qmax + qmin) / 2.0
    c, s = torch.cos(rot), torch.sin(rot)
    cx = qc[:, 0] * c - qc[:, 1] * s + centre[:, 0]
    cy = qc[:, 0] * s + qc[:, 1] * c + centre[:, 1]
    size = qmax - qmin
    return transform_rects(torch.stack([cx, cy, size[:, 0], size[:, 1], rot], dim=-1), t)
