"""Batched MediaPipe hand and pose pipelines in torch: `BlazeHands`, `BlazePose`. No bpy; GPU optional.

May import torch, numpy and cv2 (host-side matrix set-up in `blaze_ops`); the networks come from
`tflite_torch.load_tflite`. The same code runs on CPU and CUDA (``device`` argument). It reproduces MediaPipe
0.10.21's legacy CPU graphs in static-image mode — ``mp.solutions.hands.Hands(static_image_mode=True,
model_complexity=1)`` and ``mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)`` — over many frames
at once: every crop of every frame goes into one network call (chunked to ``max_batch``), and pose detection keeps
every person, not just the best one. The options below were read from the graphs compiled into the wheel
(``PalmDetectionCpu``, ``PalmDetectionDetectionToRoi``, ``HandLandmarkCpu``, ``HandLandmarkLandmarksToRoi``,
``PoseDetectionCpu``, ``PoseDetectionToRoi``, ``PoseLandmarkByRoiCpu``, ``TensorsToPoseLandmarksAndSegmentation``,
``PoseLandmarksToRoi``) and checked against its outputs.

Hands, per frame: letterbox to 192² (zero border, [0, 1]) → palm_detection_full → decode 2016 anchors (7 keypoints)
→ score ≥ min_detection → weighted NMS (IoU 0.3) → remove letterbox → first ``max_hands`` → ROI (box centre,
rotation wrist kp0 → middle-finger kp2 to 90°, shift −0.5 h, square, ×2.6) → drop earlier ROIs that a later one
overlaps with IoU > 0.5 (AssociationNormRectCalculator) → crop 224² (replicate border) → hand_landmark_full →
landmarks (z / 0.4), presence > min_presence, handedness, world landmarks rotated by the ROI.

Pose, per frame: letterbox to 224² (zero border, [−1, 1]) → pose_detection → decode 2254 anchors (4 keypoints) →
weighted NMS → remove letterbox → every person (best first, at most ``max_people``) → ROI (centre = hip kp 0,
side = 2·|kp1 − kp0|, rotation to 90°, ×1.25) → crop 256² → pose_landmark_full → 39 landmarks refined on the
heatmap (9×9, see `POSE_HEATMAP_KERNEL`), visibility/presence sigmoids, presence flag > min_presence → 33 body
landmarks + 2 auxiliary ones that give the next frame's ROI.

Outputs are numpy, in pixels of the full frame: x, y and z (MediaPipe's z times the image width, like x).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch

from . import blaze_ops as ops

Tensor = torch.Tensor
Net = Callable[[Tensor], Sequence[Tensor]]
Frames = Union[Sequence[np.ndarray], np.ndarray, Tensor]

# ------------------------------------------------------------------------------------------ graph options (0.10.21)
PALM_ANCHORS = ops.AnchorOptions(input_size=192, strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75)
PALM_DECODE = ops.DecodeOptions(num_keypoints=7, scale=192.0)
PALM_NMS_IOU = 0.3
PALM_ROI = ops.RectTransform(scale_x=2.6, scale_y=2.6, shift_y=-0.5)           # keypoints 0 → 2, target 90°
HAND_TRACK_ROI = ops.RectTransform(scale_x=2.0, scale_y=2.0, shift_y=-0.1)     # from landmarks, target 90°
HAND_ASSOCIATION_IOU = 0.5
HAND_INPUT = 224
HAND_NORMALIZE_Z = 0.4
N_HAND = 21

POSE_ANCHORS = ops.AnchorOptions(input_size=224, strides=(8, 16, 32, 32, 32), min_scale=0.1484375, max_scale=0.75)
POSE_DECODE = ops.DecodeOptions(num_keypoints=4, scale=224.0)
POSE_NMS_IOU = 0.3
POSE_ROI = ops.RectTransform(scale_x=1.25, scale_y=1.25)                      # keypoints 0 → 1, target 90°
POSE_INPUT = 256
# The graph says kernel_size: 7, but MediaPipe 0.10.21 refines with a 9×9 window (the option's default): its
# landmarks match a 9×9 refinement to 0.005 px at 256², a 7×7 one only to ~0.8 px. Match what it does.
POSE_HEATMAP_KERNEL = 9
TILE_OVERLAP = 0.25    # neighbouring tiles of a tiled detection (`_Blaze._detect`) share this share of a side
N_POSE = 33
N_POSE_ALL = 39          # 33 body + 2 auxiliary (ROI centre, scale point) + 4 unused
TARGET_ANGLE = math.pi / 2
HANDEDNESS_LABELS = ("Left", "Right")   # handedness.txt; MediaPipe assumes a mirrored (selfie) image


# --------------------------------------------------------------------------------------------------------- results
@dataclasses.dataclass
class HandResult:
    """One hand, in pixels of the full frame. ``roi`` = (cx, cy, w, h, rotation rad) of the crop it came from."""
    landmarks_px: np.ndarray          # (21, 3) x, y px; z px (MediaPipe's z × image width)
    world: np.ndarray                 # (21, 3) metres, hand-centred, rotated like the image
    handedness_label: str             # MediaPipe's raw label (mirrored-image convention): swap for a normal camera
    handedness_score: float
    presence: float
    roi: np.ndarray                   # (5,)
    next_roi: np.ndarray              # (5,) ROI for the next frame from these landmarks (HandLandmarkLandmarksToRoi)
    palm_score: float = float("nan")  # NaN when the ROI did not come from a palm detection
    palm_box: np.ndarray = dataclasses.field(default_factory=lambda: np.full(4, np.nan))            # (4,) x0 y0 x1 y1
    palm_keypoints: np.ndarray = dataclasses.field(default_factory=lambda: np.full((7, 2), np.nan))  # (7, 2) px


@dataclasses.dataclass
class PoseResult:
    """One person. Pixels of the full frame."""
    landmarks_px: np.ndarray          # (33, 3) x, y px; z px (MediaPipe's z × image width)
    visibility: np.ndarray            # (33,)
    landmark_presence: np.ndarray     # (33,)
    presence: float                   # the pose-presence flag score
    world: np.ndarray                 # (33, 3) metres, hip-centred
    roi: np.ndarray                   # (5,)
    next_roi: np.ndarray              # (5,) ROI for the next frame from the auxiliary landmarks (PoseLandmarksToRoi)
    auxiliary_px: np.ndarray          # (2, 3) the two auxiliary landmarks
    detection_score: float = float("nan")
    detection_box: np.ndarray = dataclasses.field(default_factory=lambda: np.full(4, np.nan))           # x0 y0 x1 y1
    detection_keypoints: np.ndarray = dataclasses.field(default_factory=lambda: np.full((4, 2), np.nan))  # (4, 2) px


# ---------------------------------------------------------------------------------------------------- plumbing
def frames_to_tensor(frames: Frames, device: torch.device | str,
                     buffer: FrameBuffer | None = None) -> tuple[Tensor, Tensor]:
    """RGB uint8 frames → ``(N, Hmax, Wmax, 3)`` uint8 on ``device`` and their sizes ``(N, 2)`` = (W, H).

    Frames of different sizes share one buffer, each in its top-left corner (the crops know each frame's size and
    never read the rest). A tensor ``(B, H, W, 3)`` is used as it is; arrays are copied into ``buffer`` if given.
    """
    if isinstance(frames, Tensor):
        t = frames if frames.dim() == 4 else frames[None]
        t = t.to(device=device, dtype=torch.uint8).contiguous()
        sizes = torch.tensor([[t.shape[2], t.shape[1]]] * t.shape[0], dtype=torch.int64, device=t.device)
        return t, sizes
    arrays = [frames] if isinstance(frames, np.ndarray) and frames.ndim == 3 else list(frames)
    for a in arrays:
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"frames must be HxWx3 uint8 RGB arrays, got {a.shape} {a.dtype}")
    sizes = torch.tensor([[a.shape[1], a.shape[0]] for a in arrays], dtype=torch.int64).reshape(-1, 2)
    hmax = int(sizes[:, 1].max()) if arrays else 1
    wmax = int(sizes[:, 0].max()) if arrays else 1
    buf = (buffer or FrameBuffer()).take(len(arrays), hmax, wmax, device)
    for i, a in enumerate(arrays):
        buf[i, :a.shape[0], :a.shape[1]].copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return buf, sizes.to(device)


class FrameBuffer:
    """Device memory the frames of one call are copied into, kept for the next call: on a big frame, fresh memory
    (page faults, allocations) costs more than the copy itself. Not thread-safe, like the detectors."""

    def __init__(self) -> None:
        self._store: Tensor | None = None
        self._device: torch.device | None = None

    def take(self, n: int, h: int, w: int, device: torch.device | str) -> Tensor:
        """A ``(n, h, w, 3)`` uint8 view (contents undefined)."""
        need = n * h * w * 3
        dev = torch.device(device)
        if self._store is None or self._store.numel() < need or self._device != dev:
            self._store, self._device = torch.empty(need, dtype=torch.uint8, device=dev), dev
        return self._store[:need].view(n, h, w, 3)


def run_net(net: Net, x: Tensor, max_batch: int, dtype: torch.dtype) -> list[Tensor]:
    """Run ``net`` on ``x`` ``(K, S, S, 3)`` in chunks of ``max_batch``; outputs float32, concatenated on batch."""
    chunks: list[Sequence[Tensor]] = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], max_batch):
            chunks.append(net(x[start:start + max_batch].to(dtype)))
    return [torch.cat([c[i] for c in chunks]).to(torch.float32) for i in range(len(chunks[0]))]


def load_net(name: str, device: torch.device | str, dtype: torch.dtype) -> Net:
    """One of MediaPipe's tflite networks as a torch module (`tflite_torch.load_tflite`)."""
    from .tflite_torch import load_tflite
    model = load_tflite(name, device=device, dtype=dtype)
    return model if callable(model) else model.forward


@dataclasses.dataclass
class Detections:
    """Detections of one frame after NMS and letterbox removal, in px (host tensors)."""
    boxes: Tensor       # (D, 4) xmin, ymin, w, h px
    keypoints: Tensor   # (D, P, 2) px
    scores: Tensor      # (D,)


class _Blaze:
    """Shared plumbing: device, networks, detection stage."""

    def __init__(self, device: torch.device | str, max_batch: int, dtype: torch.dtype,
                 nets: Mapping[str, Net] | None):
        self.device = torch.device(device)
        self.max_batch = max_batch
        self.dtype = dtype
        self._nets: dict[str, Net] = dict(nets or {})
        self._buffer = FrameBuffer()

    def _net(self, name: str) -> Net:
        if name not in self._nets:
            self._nets[name] = load_net(name, self.device, self.dtype)
        return self._nets[name]

    def _frames(self, frames: Frames) -> tuple[Tensor, Tensor]:
        return frames_to_tensor(frames, self.device, self._buffer)

    def _run(self, name: str, x: Tensor) -> list[Tensor]:
        return run_net(self._net(name), x, self.max_batch, self.dtype)

    def landmarks_in_rois(self, frames: Frames, rois: Sequence[np.ndarray | Tensor],
                          keep_all: bool = False) -> list[list]:
        """Run only the landmark network on given ROIs: ``rois[i]`` is ``(R_i, 5)`` px for frame i (e.g. a hand ROI
        from a body's wrist, or ``next_roi`` for tracking). One result per ROI, in order; ``None`` where
        presence ≤ min_presence (unless ``keep_all``)."""
        t, sizes = self._frames(frames)
        flat, index, counts = _rois_by_frame(rois, self.device)
        out: list[list] = [[] for _ in counts]
        if flat.shape[0] == 0:
            return out
        arrays = self._landmarks(t, sizes, index, flat)
        for j, f in enumerate(index.tolist()):
            ok = keep_all or arrays["presence"][j] > self.min_presence
            out[f].append(self._result(arrays, j) if ok else None)
        return out

    def _landmarks(self, frames: Tensor, sizes: Tensor, index: Tensor, rois: Tensor) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _result(self, arrays: dict[str, np.ndarray], j: int):
        raise NotImplementedError

    def _attach(self, result, det: Detections, d: int) -> None:
        """Copy detection ``d`` of a frame's detections onto the landmark result it led to."""
        raise NotImplementedError

    def _from_detections(self, frames: Tensor, sizes: Tensor, dets: list[Detections],
                         flat: list[tuple[int, int]], rois: Tensor) -> list[list]:
        """Landmarks on one ROI ``rois[j]`` per kept detection ``flat[j] = (frame, detection index)``; results with
        presence above min_presence, per frame, each carrying its detection (`_attach`)."""
        out: list[list] = [[] for _ in dets]
        if not flat:
            return out
        index = torch.tensor([f for f, _ in flat], device=self.device)
        arrays = self._landmarks(frames, sizes, index, rois.to(self.device))
        for j, (f, d) in enumerate(flat):
            if arrays["presence"][j] <= self.min_presence:
                continue
            res = self._result(arrays, j)
            self._attach(res, dets[f], d)
            out[f].append(res)
        return out

    def _detect(self, frames: Tensor, sizes: Tensor, net: str, anchors: Tensor, size: int,
                value_range: tuple[float, float], decode: ops.DecodeOptions, min_score: float,
                iou: float, tiles: int = 0) -> list[Detections]:
        """Full-frame detector on every frame: letterbox, network, decode, threshold, weighted NMS, un-letterbox.

        ``tiles`` = g > 1 also runs the detector on a g × g grid of overlapping tiles of every frame (each seen
        larger than in the whole frame: small, far people), in the same network call, and merges every view's
        detections of a frame by the same weighted NMS."""
        n = frames.shape[0]
        if n == 0:
            return []
        views = ops.full_frame_rois(sizes)[:, None]                                     # (N, 1, 5)
        if tiles > 1:
            views = torch.cat([views, ops.tile_rois(sizes, tiles, TILE_OVERLAP)], dim=1)   # (N, V, 5)
        v = views.shape[1]
        view_rois = views.reshape(-1, 5)
        owner = torch.arange(n, device=self.device).repeat_interleave(v)
        rois, padding = ops.pad_roi(view_rois, size, size)                              # (N·V, 5), (N·V, 4)
        x = ops.crop_rois(frames, sizes, owner, rois, size, size, "zero", value_range)
        outs = self._run(net, x)
        raw_boxes = next(o for o in outs if o.shape[-1] == 4 + 2 * decode.num_keypoints)   # (N, A, 4 + 2P)
        raw_scores = next(o for o in outs if o.shape[-1] == 1)                             # (N, A, 1)
        boxes, kps = ops.decode_boxes(raw_boxes, anchors, decode)
        scores = ops.detection_scores(raw_scores, decode)
        keep = (scores >= min_score) & (boxes[..., 2] >= 0) & (boxes[..., 3] >= 0)        # (N, A); NaN fails
        fi, ai = keep.nonzero(as_tuple=True)
        # One transfer of the few candidates to the host; NMS is a short greedy loop.
        fi, b, k, s = fi.cpu(), boxes[fi, ai].cpu(), kps[fi, ai].cpu(), scores[fi, ai].cpu()
        pad, scale = padding.cpu(), ops.letterbox_scale(padding).cpu()
        vr = view_rois.cpu()
        origin, wh = vr[:, :2] - vr[:, 2:4] / 2, vr[:, 2:4]                              # each view's corner, size
        result = []
        for f in range(n):
            parts = []
            for j in range(f * v, (f + 1) * v):
                m = fi == j
                db, dk, ds = ops.weighted_nms(b[m], k[m], s[m], iou)
                # letterbox removal:  x' = (x − left) / (1 − left − right),  w' = w / (1 − left − right)
                xy = ops.remove_letterbox(db[None, :, :2], pad[j:j + 1])[0]
                db = torch.cat([xy, db[:, 2:] / scale[j]], dim=1)
                dk = ops.remove_letterbox(dk[None], pad[j:j + 1])[0]
                parts.append((torch.cat([origin[j] + db[:, :2] * wh[j], db[:, 2:] * wh[j]], dim=1),
                              origin[j] + dk * wh[j], ds))
            if v == 1:
                result.append(Detections(*parts[0]))
                continue
            db, dk, ds = (torch.cat([p[i] for p in parts]) for i in range(3))
            result.append(Detections(*ops.weighted_nms(db, dk, ds, iou)))   # IoU: any units
        return result


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _xyxy(box: Tensor) -> np.ndarray:
    return _np(torch.cat([box[:2], box[:2] + box[2:]]))


def _valid_rois(rois: Tensor) -> tuple[Tensor, Tensor]:
    """ROIs ``(K, 5)`` that MediaPipe would refuse (non-finite, w or h ≤ 0) → a 1-px stand-in, plus the mask
    ``(K,)`` of the good ones; results of the bad ones get presence 0 and NaN landmarks."""
    valid = torch.isfinite(rois).all(dim=1) & (rois[:, 2] > 0) & (rois[:, 3] > 0)
    stand_in = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0], device=rois.device, dtype=rois.dtype)
    return torch.where(valid[:, None], rois, stand_in), valid


def _crop_for_landmarks(frames: Tensor, sizes: Tensor, index: Tensor, rois: Tensor, size: int
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The landmark networks' input: ROIs made valid (`_valid_rois`), letterboxed to a square ``size``² and cropped
    with a replicated border, values in [0, 1]. Returns (rois, valid mask, letterbox padding, crops)."""
    rois, valid = _valid_rois(rois)
    padded, padding = ops.pad_roi(rois, size, size)
    x = ops.crop_rois(frames, sizes, index, padded, size, size, "replicate", (0.0, 1.0))
    return rois, valid, padding, x


def _invalidate(out: dict[str, np.ndarray], valid: Tensor) -> dict[str, np.ndarray]:
    bad = ~_np(valid)
    if bad.any():
        out["presence"][bad] = 0.0
        for key in ("landmarks_px", "world", "next_roi"):
            out[key][bad] = np.nan
    return out


def _rois_by_frame(rois: Sequence[np.ndarray | Tensor], device: torch.device) -> tuple[Tensor, Tensor, list[int]]:
    """Per-frame ROI arrays ``(R_i, 5)`` → all ROIs ``(K, 5)``, their frame index ``(K,)`` and the counts R_i."""
    flat = [torch.as_tensor(r).detach().to("cpu", torch.float32).reshape(-1, 5) for r in rois]
    counts = [int(r.shape[0]) for r in flat]
    cat = torch.cat(flat) if flat else torch.zeros((0, 5))
    index = torch.repeat_interleave(torch.arange(len(rois)), torch.tensor(counts, dtype=torch.int64))
    return cat.to(device), index.to(device), counts


# ------------------------------------------------------------------------------------------------------- hands
class BlazeHands(_Blaze):
    """MediaPipe Hands (palm detection + hand landmarks, model_complexity 1), batched over frames.

    ``nets`` may map 'palm_detection_full' / 'hand_landmark_full' to any callable with the tflite's contract
    ``(B, H, W, 3) → outputs`` (tests, other back ends); by default they are loaded with `load_tflite`.
    """

    def __init__(self, device: torch.device | str = "cpu", max_hands: int = 2, min_detection: float = 0.5,
                 min_presence: float = 0.5, max_batch: int = 32, dtype: torch.dtype = torch.float32,
                 nets: Mapping[str, Net] | None = None):
        super().__init__(device, max_batch, dtype, nets)
        self.max_hands = max_hands
        self.min_detection = min_detection
        self.min_presence = min_presence
        self.anchors = ops.ssd_anchors(PALM_ANCHORS).to(self.device)                 # (2016, 4)

    def detect_palms(self, frames: Frames) -> list[Detections]:
        """Palm detections per frame (px), best first, before the ``max_hands`` clip."""
        return self._detect_palms(*self._frames(frames))

    def _detect_palms(self, t: Tensor, sizes: Tensor) -> list[Detections]:
        return self._detect(t, sizes, "palm_detection_full", self.anchors, PALM_ANCHORS.input_size, (0.0, 1.0),
                            PALM_DECODE, self.min_detection, PALM_NMS_IOU)

    def detect(self, frames: Frames) -> list[list[HandResult]]:
        """Hands in each frame, in MediaPipe's order. frames: list of HxWx3 uint8 RGB, or ``(B, H, W, 3)`` uint8."""
        t, sizes = self._frames(frames)
        dets = self._detect_palms(t, sizes)
        per_frame: list[list[tuple[Tensor, int]]] = []          # (roi (5,), detection index)
        for det in dets:
            n = min(self.max_hands, det.scores.shape[0])
            rois = ops.transform_rects(ops.box_rois(det.boxes[:n], det.keypoints[:n], 0, 2, TARGET_ANGLE), PALM_ROI)
            per_frame.append(_associate([(rois[i], i) for i in range(n)], HAND_ASSOCIATION_IOU))
        flat = [(f, d) for f, items in enumerate(per_frame) for _, d in items]
        rois = [roi for items in per_frame for roi, _ in items]
        return self._from_detections(t, sizes, dets, flat, torch.stack(rois) if rois else torch.zeros((0, 5)))

    def _attach(self, result: HandResult, det: Detections, d: int) -> None:
        result.palm_score = float(det.scores[d])
        result.palm_box = _xyxy(det.boxes[d])
        result.palm_keypoints = _np(det.keypoints[d])

    def _result(self, arrays: dict[str, np.ndarray], j: int) -> HandResult:
        return _hand_result(arrays, j)

    def _landmarks(self, frames: Tensor, sizes: Tensor, index: Tensor, rois: Tensor) -> dict[str, np.ndarray]:
        """hand_landmark_full on ROIs ``(K, 5)`` of frames ``index`` ``(K,)`` → numpy arrays per key."""
        original = rois
        rois, valid, padding, x = _crop_for_landmarks(frames, sizes, index, rois, HAND_INPUT)
        lm_raw, flag, handed, world_raw = self._run("hand_landmark_full", x)[:4]
        k = rois.shape[0]
        lm = lm_raw.reshape(k, N_HAND, 3)
        xy = ops.remove_letterbox(lm[..., :2] / HAND_INPUT, padding)                 # (K, 21, 2) ROI-normalised
        z = lm[..., 2:] / HAND_INPUT / HAND_NORMALIZE_Z / ops.letterbox_scale(padding)[:, None, :1]
        px = ops.project_landmarks(torch.cat([xy, z], dim=-1), rois)                 # (K, 21, 3)
        world = ops.rotate_world(world_raw.reshape(k, N_HAND, 3), rois[:, 4])       # (K, 21, 3)
        return _invalidate({"landmarks_px": _np(px), "world": _np(world), "presence": _np(flag[:, 0]),
                            "handedness": _np(handed[:, 0]), "roi": _np(original),
                            "next_roi": _np(ops.hand_landmarks_to_rois(px, HAND_TRACK_ROI))}, valid)


def handedness(s: float) -> tuple[str, float]:
    """TensorsToClassificationCalculator (binary): classes [Left: s, Right: 1 − s], top-1, Left on a tie."""
    return (HANDEDNESS_LABELS[1], 1.0 - s) if (1.0 - s) > s else (HANDEDNESS_LABELS[0], s)


def _hand_result(h: dict[str, np.ndarray], j: int) -> HandResult:
    label, score = handedness(float(h["handedness"][j]))
    return HandResult(landmarks_px=h["landmarks_px"][j], world=h["world"][j], handedness_label=label,
                      handedness_score=score, presence=float(h["presence"][j]), roi=h["roi"][j],
                      next_roi=h["next_roi"][j])


def _associate(items: list[tuple[Tensor, int]], iou: float) -> list[tuple[Tensor, int]]:
    """AssociationNormRectCalculator on one stream: each new ROI removes the kept ones it overlaps (IoU of the rects
    as axis-aligned boxes > iou; the same in px as normalised) and is appended."""
    kept: list[tuple[Tensor, int]] = []
    for roi, d in items:
        kept = [(r, e) for r, e in kept if not ops.rect_iou_axis_aligned(roi, r) > iou]
        kept.append((roi, d))
    return kept


# -------------------------------------------------------------------------------------------------------- pose
class BlazePose(_Blaze):
    """MediaPipe Pose (pose_detection + pose_landmark_full), batched over frames, every detected person.

    ``nets`` may map 'pose_detection' / 'pose_landmark_full' to callables with the tflite's contract.
    """

    def __init__(self, device: torch.device | str = "cpu", max_people: int | None = None,
                 min_detection: float = 0.5, min_presence: float = 0.5, max_batch: int = 32,
                 dtype: torch.dtype = torch.float32, nets: Mapping[str, Net] | None = None, tiles: int = 0):
        """``tiles`` = g > 1: person detection also on a g × g grid of overlapping tiles of each frame (small, far
        people; MediaPipe's own Pose sees only the whole frame)."""
        super().__init__(device, max_batch, dtype, nets)
        self.tiles = tiles
        self.max_people = max_people
        self.min_detection = min_detection
        self.min_presence = min_presence
        self.anchors = ops.ssd_anchors(POSE_ANCHORS).to(self.device)                 # (2254, 4)

    def detect_people(self, frames: Frames) -> list[Detections]:
        """Person detections per frame (px), best first: box around the face, keypoints hip centre, body scale
        point, shoulder centre, upper-body scale point."""
        t, sizes = self._frames(frames)
        return self._detect_people(t, sizes)

    def _detect_people(self, t: Tensor, sizes: Tensor) -> list[Detections]:
        dets = self._detect(t, sizes, "pose_detection", self.anchors, POSE_ANCHORS.input_size, (-1.0, 1.0),
                            POSE_DECODE, self.min_detection, POSE_NMS_IOU, self.tiles)
        if self.max_people is not None:
            dets = [Detections(d.boxes[:self.max_people], d.keypoints[:self.max_people], d.scores[:self.max_people])
                    for d in dets]
        return dets

    def detect(self, frames: Frames) -> list[list[PoseResult]]:
        """People in each frame, best detection first (MediaPipe's own Pose keeps only the first)."""
        t, sizes = self._frames(frames)
        dets = self._detect_people(t, sizes)
        flat = [(f, d) for f, det in enumerate(dets) for d in range(det.scores.shape[0])]
        if not flat:
            return [[] for _ in dets]
        kps = torch.stack([dets[f].keypoints[d] for f, d in flat])                  # (K, 4, 2) px
        rois = ops.transform_rects(ops.alignment_rois(kps, 0, 1, TARGET_ANGLE), POSE_ROI)
        return self._from_detections(t, sizes, dets, flat, rois)

    def _attach(self, result: PoseResult, det: Detections, d: int) -> None:
        result.detection_score = float(det.scores[d])
        result.detection_box = _xyxy(det.boxes[d])
        result.detection_keypoints = _np(det.keypoints[d])

    def _result(self, arrays: dict[str, np.ndarray], j: int) -> PoseResult:
        return _pose_result(arrays, j)

    def _landmarks(self, frames: Tensor, sizes: Tensor, index: Tensor, rois: Tensor) -> dict[str, np.ndarray]:
        """pose_landmark_full on ROIs ``(K, 5)`` → numpy arrays per key."""
        original = rois
        rois, valid, padding, x = _crop_for_landmarks(frames, sizes, index, rois, POSE_INPUT)
        outs = self._run("pose_landmark_full", x)
        k = rois.shape[0]
        lm_raw = next(o for o in outs if o.dim() == 2 and o.shape[1] == N_POSE_ALL * 5)      # (K, 195)
        world_raw = next(o for o in outs if o.dim() == 2 and o.shape[1] == N_POSE_ALL * 3)   # (K, 117)
        flag = next(o for o in outs if o.dim() == 2 and o.shape[1] == 1)                     # (K, 1)
        heatmap = next(o for o in outs if o.dim() == 4 and o.shape[-1] == N_POSE_ALL)        # (K, 64, 64, 39)
        lm = lm_raw.reshape(k, N_POSE_ALL, 5)
        xy = ops.refine_from_heatmap(lm[..., :2] / POSE_INPUT, heatmap, POSE_HEATMAP_KERNEL)  # tensor-normalised
        xy = ops.remove_letterbox(xy, padding)
        z = lm[..., 2:3] / POSE_INPUT / ops.letterbox_scale(padding)[:, None, :1]
        px = ops.project_landmarks(torch.cat([xy, z], dim=-1), rois)                 # (K, 39, 3)
        aux = px[:, N_POSE:N_POSE + 2]                                               # (K, 2, 3)
        next_roi = ops.transform_rects(ops.alignment_rois(aux[..., :2], 0, 1, TARGET_ANGLE), POSE_ROI)
        world = ops.rotate_world(world_raw.reshape(k, N_POSE_ALL, 3)[:, :N_POSE], rois[:, 4])
        return _invalidate({"landmarks_px": _np(px[:, :N_POSE]), "aux": _np(aux), "world": _np(world),
                            "visibility": _np(torch.sigmoid(lm[:, :N_POSE, 3])),
                            "landmark_presence": _np(torch.sigmoid(lm[:, :N_POSE, 4])),
                            "presence": _np(flag[:, 0]), "roi": _np(original), "next_roi": _np(next_roi)}, valid)


def _pose_result(p: dict[str, np.ndarray], j: int) -> PoseResult:
    return PoseResult(landmarks_px=p["landmarks_px"][j], visibility=p["visibility"][j],
                      landmark_presence=p["landmark_presence"][j], presence=float(p["presence"][j]),
                      world=p["world"][j], roi=p["roi"][j], next_roi=p["next_roi"][j], auxiliary_px=p["aux"][j])
