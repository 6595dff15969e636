"""BlazeHands / BlazePose (inference_server.models.blaze): known answers for the maths, parity with MediaPipe.

The first half needs neither networks nor MediaPipe: anchors, box decoding, weighted NMS, letterbox, rotated crops
(against a synthetic ramp and bit for bit against cv2.warpPerspective), ROI maths, heatmap refinement.
The second half runs the torch networks (`tflite_torch`) and compares with ``mp.solutions`` Hands / Pose in static
mode on real frames. The acceptance bar: every landmark within 1 px at the network's input resolution, i.e.
|ours − MediaPipe| (image px) × network size / ROI size ≤ 1. Footage from ../shared/footage and the rendered bench
scenes are used when present and skipped otherwise; samples/sample_wave.mp4 is always there.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")

from inference_server.models import blaze_ops as ops  # noqa: E402
from inference_server.models.blaze import (  # noqa: E402
    HAND_INPUT, PALM_ANCHORS, PALM_DECODE, POSE_ANCHORS, POSE_INPUT, BlazeHands, BlazePose, frames_to_tensor,
    handedness)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
FOOTAGE = ROOT.parent / "shared" / "footage"
SCENES = Path(os.environ.get("REEL2RIG_CACHE", ROOT / ".cache")) / "bench" / "scenes"


# ---------------------------------------------------------------------------------------------------------- anchors
def test_palm_anchors_count_and_values():
    a = ops.ssd_anchors(PALM_ANCHORS)                                  # strides 8, 16, 16, 16 at 192²
    assert a.shape == (2016, 4)                                        # 24²·2 + 12²·6
    assert torch.allclose(a[0], torch.tensor([0.5 / 24, 0.5 / 24, 1, 1]))
    assert torch.equal(a[0], a[1])                                     # two anchors per 24² cell
    assert torch.allclose(a[2, :2], torch.tensor([1.5 / 24, 0.5 / 24]))
    assert torch.allclose(a[1152, :2], torch.tensor([0.5 / 12, 0.5 / 12]))   # first cell of the 12² map ...
    assert torch.allclose(a[1158, :2], torch.tensor([1.5 / 12, 0.5 / 12]))   # ... which has 6 anchors per cell
    assert torch.allclose(a[-1, :2], torch.tensor([11.5 / 12, 11.5 / 12]))
    assert torch.all(a[:, 2:] == 1)                                    # fixed_anchor_size


def test_pose_anchors_count_and_values():
    a = ops.ssd_anchors(POSE_ANCHORS)                                  # strides 8, 16, 32, 32, 32 at 224²
    assert a.shape == (2254, 4)                                        # 28²·2 + 14²·2 + 7²·6
    assert torch.allclose(a[1568, :2], torch.tensor([0.5 / 14, 0.5 / 14]))
    assert torch.allclose(a[1960, :2], torch.tensor([0.5 / 7, 0.5 / 7]))
    assert torch.allclose(a[-1, :2], torch.tensor([6.5 / 7, 6.5 / 7]))


# ------------------------------------------------------------------------------------------------------ decoding
def test_decode_boxes_and_keypoints():
    anchors = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.25, 0.75, 1.0, 1.0]])
    raw = torch.zeros(1, 2, 18)
    raw[0, 0, :4] = torch.tensor([19.2, -9.6, 96.0, 48.0])            # x, y, w, h in input px (XYWH order)
    raw[0, 0, 4:6] = torch.tensor([-19.2, 38.4])                       # keypoint 0
    boxes, kps = ops.decode_boxes(raw, anchors, PALM_DECODE)
    # cx = 19.2/192 + 0.5 = 0.6, cy = 0.45, w = 0.5, h = 0.25
    assert torch.allclose(boxes[0, 0], torch.tensor([0.35, 0.325, 0.5, 0.25]), atol=1e-6)
    assert torch.allclose(kps[0, 0, 0], torch.tensor([0.4, 0.7]), atol=1e-6)
    assert torch.allclose(kps[0, 0, 1:], torch.tensor([0.5, 0.5]).expand(6, 2))
    assert torch.allclose(boxes[0, 1], torch.tensor([0.25, 0.75, 0.0, 0.0]))


def test_scores_are_clipped_sigmoids():
    s = ops.detection_scores(torch.tensor([[[0.0], [200.0], [-200.0], [math.log(3)]]]), PALM_DECODE)
    assert torch.allclose(s, torch.tensor([[0.5, 1 / (1 + math.exp(-100)), 1 / (1 + math.exp(100)), 0.75]]))


def test_weighted_nms_known_answer():
    boxes = torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.6, 0.6, 0.1, 0.1], [0.12, 0.1, 0.2, 0.2]])   # xmin ymin w h
    kps = torch.tensor([[[0.2, 0.2]], [[0.65, 0.65]], [[0.3, 0.2]]])
    scores = torch.tensor([0.9, 0.7, 0.6])
    b, k, s = ops.weighted_nms(boxes, kps, scores, 0.3)             # IoU(0, 2) = 0.036 / 0.044 = 0.82
    assert torch.allclose(s, torch.tensor([0.9, 0.7]))
    # corners: xmin = (0.1·0.9 + 0.12·0.6) / 1.5 = 0.108, xmax = (0.3·0.9 + 0.32·0.6) / 1.5 = 0.308
    assert torch.allclose(b[0], torch.tensor([0.108, 0.1, 0.2, 0.2]), atol=1e-6)
    assert torch.allclose(k[0, 0], torch.tensor([(0.2 * 0.9 + 0.3 * 0.6) / 1.5, 0.2]), atol=1e-6)
    assert torch.allclose(b[1], boxes[1]) and torch.allclose(k[1], kps[1])
    e = ops.weighted_nms(boxes[:0], kps[:0], scores[:0], 0.3)
    assert e[0].shape == (0, 4) and e[2].shape == (0,)


# ------------------------------------------------------------------------------------------------------ letterbox
def test_letterbox_pad_and_remove():
    rois, pad = ops.pad_roi(ops.full_frame_rois(torch.tensor([[1280, 720], [480, 640]])), 192, 192)
    assert torch.allclose(rois[0], torch.tensor([640.0, 360.0, 1280.0, 1280.0, 0.0]))
    assert torch.allclose(pad[0], torch.tensor([0.0, 0.21875, 0.0, 0.21875]))      # (1 − 720/1280) / 2
    assert torch.allclose(pad[1], torch.tensor([0.125, 0.0, 0.125, 0.0]))          # (1 − 480/640) / 2
    # image-normalised points → letterboxed tensor → back
    p = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.3, 0.6]]]).repeat(2, 1, 1)
    t = p * ops.letterbox_scale(pad)[:, None] + pad[:, None, :2]
    assert torch.allclose(t[0, 0], torch.tensor([0.0, 0.21875]))
    assert torch.allclose(ops.remove_letterbox(t, pad), p, atol=1e-6)


# -------------------------------------------------------------------------------------------------- rotated crops
def _ramp(w: int = 100, h: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.full_like(x, 50)], axis=-1).astype(np.uint8)        # R = x, G = y


def test_rotated_crop_of_a_ramp():
    img = _ramp()
    t, sizes = frames_to_tensor([img], "cpu")
    roi = torch.tensor([[50.0, 40.0, 40.0, 40.0, math.pi / 2]])
    crop = ops.crop_rois(t, sizes, torch.tensor([0]), roi, 40, 40, "zero", (0.0, 255.0))[0]   # (40, 40, 3)
    v, u = np.mgrid[0:40, 0:40]
    # (u, v) → c + R(90°)·((u/40 − ½)·40, (v/40 − ½)·40) = (70 − v, 20 + u): the crop's right is the image's down
    assert np.array_equal(crop[..., 0].numpy(), 70 - v)
    assert np.array_equal(crop[..., 1].numpy(), 20 + u)
    assert np.all(crop[..., 2].numpy() == 50)
    # value range: [−1, 1] maps 0 → −1, 255 → 1
    c2 = ops.crop_rois(t, sizes, torch.tensor([0]), roi, 40, 40, "zero", (-1.0, 1.0))[0]
    assert torch.allclose(c2, crop / 127.5 - 1.0, atol=1e-6)


def test_crop_borders():
    img = _ramp()
    t, sizes = frames_to_tensor([img], "cpu")
    roi = torch.tensor([[0.0, 0.0, 20.0, 20.0, 0.0]] * 2)              # centred on the corner: 3/4 outside
    zero = ops.crop_rois(t, sizes, torch.tensor([0]), roi[:1], 20, 20, "zero", (0.0, 255.0))[0]
    rep = ops.crop_rois(t, sizes, torch.tensor([0]), roi[:1], 20, 20, "replicate", (0.0, 255.0))[0]
    assert torch.all(zero[:9, :, 2] == 0) and torch.all(zero[:, :9, 2] == 0)
    assert torch.all(zero[10:, 10:, 2] == 50)
    assert torch.all(rep[..., 2] == 50) and torch.all(rep[:10, :10, :2] == 0)   # edge pixel (0, 0) repeated


def test_crop_matches_opencv_bit_for_bit():
    """ImageToTensor runs cv::warpPerspective on uint8; so does cv2 — with rotations, borders and half-px ties."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 2)
    t, sizes = frames_to_tensor([img], "cpu")
    rois = [ops.pad_roi(ops.full_frame_rois(sizes), 192, 192)[0][0].tolist()]     # 131/192 · 32: exact ties
    rois += [[rng.uniform(0, 131), rng.uniform(0, 97), s, s, rng.uniform(-3.2, 3.2)]
             for s in rng.uniform(10, 200, 6)]
    r = torch.tensor(rois, dtype=torch.float32)
    for border, mode in (("zero", cv2.BORDER_CONSTANT), ("replicate", cv2.BORDER_REPLICATE)):
        ours = ops.crop_rois(t, sizes, torch.zeros(len(rois), dtype=torch.long), r, 48, 48, border, (0.0, 255.0))
        for i, m in enumerate(ops.warp_matrices(r, 48, 48).numpy()):
            ref = cv2.warpPerspective(img, m, (48, 48), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=mode)
            assert np.array_equal(ours[i].numpy(), ref.astype(np.float32)), (border, i)


def test_projection_inverts_the_crop():
    """A landmark at tensor pixel (u, v) projects to the frame point the crop sampled there."""
    rois = torch.tensor([[300.0, 200.0, 120.0, 120.0, 0.7], [50.0, 80.0, 64.0, 64.0, -2.5]])
    uv = torch.tensor([[0.0, 0.0], [100.0, 17.0], [223.0, 223.0]])
    lm = torch.cat([uv / HAND_INPUT, torch.zeros(3, 1)], dim=1).expand(2, 3, 3)
    px = ops.project_landmarks(lm, rois)
    m = ops.warp_matrices(rois, HAND_INPUT, HAND_INPUT).to(torch.float32)        # tensor px → frame px
    ref = torch.einsum("kij,nj->kni", m[:, :2, :2], uv) + m[:, None, :2, 2]
    assert torch.allclose(px[..., :2], ref, atol=1e-3)


def test_frames_of_different_sizes_share_a_buffer():
    a, b = _ramp(100, 80), _ramp(60, 120)
    t, sizes = frames_to_tensor([a, b], "cpu")
    assert t.shape == (2, 120, 100, 3) and sizes.tolist() == [[100, 80], [60, 120]]
    roi = torch.tensor([[59.0, 60.0, 20.0, 20.0, 0.0]])                  # crosses b's right edge
    rep = ops.crop_rois(t, sizes, torch.tensor([1]), roi, 20, 20, "replicate", (0.0, 255.0))[0]
    assert rep[..., 0].max() == 59                                      # never reads the buffer beyond x = 59


# ------------------------------------------------------------------------------------------------------ ROI maths
def test_palm_roi_upright_and_rotated():
    box = torch.tensor([[100.0, 200.0, 50.0, 60.0]])                    # xmin, ymin, w, h px
    kps = torch.zeros(1, 7, 2)
    kps[0, 0] = torch.tensor([125.0, 250.0])                            # wrist
    kps[0, 2] = torch.tensor([125.0, 210.0])                            # middle finger base, straight up
    roi = ops.transform_rects(ops.box_rois(box, kps, 0, 2, math.pi / 2), ops.RectTransform(2.6, 2.6, 0, -0.5))
    # rotation 0; centre shifted up by h/2 = 30; side = max(50, 60) · 2.6
    assert torch.allclose(roi[0], torch.tensor([125.0, 200.0, 156.0, 156.0, 0.0]), atol=1e-4)
    kps[0, 2] = torch.tensor([165.0, 250.0])                            # fingers point right → rotation +90°
    roi = ops.transform_rects(ops.box_rois(box, kps, 0, 2, math.pi / 2), ops.RectTransform(2.6, 2.6, 0, -0.5))
    assert torch.allclose(roi[0], torch.tensor([155.0, 230.0, 156.0, 156.0, math.pi / 2]), atol=1e-4)


def test_pose_alignment_roi():
    kps = torch.tensor([[[300.0, 400.0], [300.0, 300.0], [0.0, 0.0], [0.0, 0.0]]])   # hip centre, scale point
    roi = ops.transform_rects(ops.alignment_rois(kps, 0, 1, math.pi / 2), ops.RectTransform(1.25, 1.25))
    assert torch.allclose(roi[0], torch.tensor([300.0, 400.0, 250.0, 250.0, 0.0]))
    kps[0, 1] = torch.tensor([200.0, 400.0])                            # scale point to the left → −90°
    roi = ops.alignment_rois(kps, 0, 1, math.pi / 2)
    assert math.isclose(roi[0, 4].item(), -math.pi / 2, abs_tol=1e-6)


def test_normalize_radians():
    a = torch.tensor([0.0, math.pi, -math.pi, 3 * math.pi / 2, -7.0])
    assert torch.allclose(ops.normalize_radians(a), torch.tensor([0.0, -math.pi, -math.pi, -math.pi / 2,
                                                                   -7.0 + 2 * math.pi]), atol=1e-6)


def _upright_hand() -> torch.Tensor:
    lm = torch.zeros(21, 3)
    lm[:, 0], lm[:, 1] = 100.0, 160.0                                   # unused points sit inside the box
    lm[0, :2] = torch.tensor([100.0, 200.0])                            # wrist
    lm[5, :2], lm[9, :2], lm[13, :2] = torch.tensor([90.0, 150.0]), torch.tensor([100.0, 150.0]), \
        torch.tensor([110.0, 150.0])                                    # index, middle, ring MCP
    lm[1, :2], lm[17, :2] = torch.tensor([80.0, 180.0]), torch.tensor([120.0, 160.0])
    lm[10, :2] = torch.tensor([100.0, 120.0])                           # middle PIP: the top
    return lm


def test_hand_landmarks_to_roi():
    t = ops.RectTransform(2.0, 2.0, 0.0, -0.1)
    roi = ops.hand_landmarks_to_rois(_upright_hand()[None], t)[0]
    # box x 80…120, y 120…200 → centre (100, 160), 40 × 80; shift up 0.1·80; square 80, ×2
    assert torch.allclose(roi, torch.tensor([100.0, 152.0, 160.0, 160.0, 0.0]), atol=1e-4)
    # the same hand rotated by θ (clockwise on screen) about (100, 200): the ROI turns with it
    th = 0.6
    r = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    lm = _upright_hand()
    lm[:, :2] = (lm[:, :2] - torch.tensor([100.0, 200.0])) @ r.T + torch.tensor([100.0, 200.0])
    rot = ops.hand_landmarks_to_rois(lm[None], t)[0]
    centre = (torch.tensor([100.0, 152.0]) - torch.tensor([100.0, 200.0])) @ r.T + torch.tensor([100.0, 200.0])
    assert torch.allclose(rot[:2], centre, atol=1e-3)
    assert torch.allclose(rot[2:], torch.tensor([160.0, 160.0, th]), atol=1e-4)


def test_world_rotation():
    w = torch.tensor([[[1.0, 0.0, 0.3], [0.0, 1.0, -0.2]]])
    out = ops.rotate_world(w, torch.tensor([math.pi / 2]))
    assert torch.allclose(out, torch.tensor([[[0.0, 1.0, 0.3], [-1.0, 0.0, -0.2]]]), atol=1e-6)


def _refine_reference(xy: np.ndarray, hm: np.ndarray, kernel: int) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator, literally (one landmark at a time)."""
    out = xy.copy()
    hh, wh, _ = hm.shape
    for i, (x, y) in enumerate(xy):
        col, row = int(x * wh), int(y * hh)
        if not (0 <= col < wh and 0 <= row < hh):
            continue
        o = (kernel - 1) // 2
        win = 1 / (1 + np.exp(-hm[max(0, row - o):min(hh, row + o + 1), max(0, col - o):min(wh, col + o + 1), i]))
        rows = np.arange(max(0, row - o), min(hh, row + o + 1))[:, None]
        cols = np.arange(max(0, col - o), min(wh, col + o + 1))[None, :]
        if win.max() >= 0.5:
            out[i] = [(win * cols).sum() / wh / win.sum(), (win * rows).sum() / hh / win.sum()]
    return out


def test_refine_from_heatmap_matches_the_calculator():
    rng = np.random.default_rng(2)
    hm = rng.normal(-3, 2, (16, 16, 6)).astype(np.float32)
    hm[5, 7, 0] = hm[0, 0, 1] = hm[15, 14, 2] = 4.0                    # peaks, two at the border
    xy = np.array([[7.2 / 16, 5.6 / 16], [0.01, 0.02], [0.93, 0.99], [1.2, 0.5], [-0.01, 0.5], [0.5, 0.5]],
                  dtype=np.float32)
    for kernel in (7, 9):
        ours = ops.refine_from_heatmap(torch.from_numpy(xy)[None], torch.from_numpy(hm)[None], kernel)[0]
        assert np.allclose(ours.numpy(), _refine_reference(xy, hm, kernel), atol=1e-6)
    assert np.allclose(ours[3].numpy(), xy[3])                           # outside the map: untouched


def test_handedness_rule():
    assert handedness(0.8) == ("Left", 0.8)
    label, score = handedness(0.1)
    assert label == "Right" and math.isclose(score, 0.9)
    assert handedness(0.5) == ("Left", 0.5)


# ===================================================================================== networks vs MediaPipe
def _networks_or_skip() -> None:
    try:
        from inference_server.models.tflite_torch import load_tflite
        load_tflite("hand_landmark_full")
    except Exception as exc:  # pragma: no cover - depends on the converter being present
        pytest.skip(f"tflite_torch unavailable: {exc}")


@pytest.fixture(scope="module")
def blaze():
    _networks_or_skip()
    return BlazeHands(), BlazePose()


@pytest.fixture(scope="module")
def mediapipe_graphs():
    mp = pytest.importorskip("mediapipe")
    hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=1)
    pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)
    yield hands, pose
    hands.close()
    pose.close()


def _video_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, f = cap.read()
        if ok:
            out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def _footage_frames() -> list[tuple[str, np.ndarray]]:
    frames = [(f"{p.name}", cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
              for p in sorted(FOOTAGE.glob("*.jpg")) + sorted(FOOTAGE.glob("*.png"))]
    for p in sorted(FOOTAGE.glob("*.mp4")):
        frames += [(f"{p.name}#60", f) for f in _video_frames(p, [60])]
    return frames


def _compare(name: str, frame: np.ndarray, ours_h, ours_p, top_score: float, graphs) -> dict[str, list[float]]:
    """Errors at network resolution of every MediaPipe hand/pose vs ours; asserts recall both ways.

    MediaPipe's Pose only looks at its best detection; ours keeps every person, so compare the one that came from
    the best detection (score ``top_score``), present or not on both sides.
    """
    hands_mp, pose_mp = graphs
    h, w = frame.shape[:2]
    res = hands_mp.process(frame)
    mp_hands = [np.array([[p.x * w, p.y * h] for p in lm.landmark]) for lm in (res.multi_hand_landmarks or [])]
    assert len(ours_h) == len(mp_hands), f"{name}: {len(ours_h)} hands, MediaPipe {len(mp_hands)}"
    errors: dict[str, list[float]] = {"hand": [], "pose": []}
    for i, ref in enumerate(mp_hands):
        o = min(ours_h, key=lambda r: np.abs(r.landmarks_px[:, :2] - ref).max())
        err = np.linalg.norm(o.landmarks_px[:, :2] - ref, axis=1).max() * HAND_INPUT / o.roi[2]
        assert err <= 1.0, f"{name}: hand {i} off by {err:.3f} px at {HAND_INPUT}²"
        assert o.handedness_label == res.multi_handedness[i].classification[0].label
        mp_world = np.array([[p.x, p.y, p.z] for p in res.multi_hand_world_landmarks[i].landmark])
        assert np.abs(o.world - mp_world).max() < 2e-3                  # metres
        errors["hand"].append(err)
    res = pose_mp.process(frame)
    top = [r for r in ours_p if r.detection_score == top_score]
    assert bool(top) == (res.pose_landmarks is not None), f"{name}: pose found by {'us' if top else 'MediaPipe'} only"
    if not top:
        return errors
    o = top[0]
    ref = np.array([[p.x * w, p.y * h] for p in res.pose_landmarks.landmark])
    err = np.linalg.norm(o.landmarks_px[:, :2] - ref, axis=1).max() * POSE_INPUT / o.roi[2]
    assert err <= 1.0, f"{name}: pose off by {err:.3f} px at {POSE_INPUT}²"
    vis = np.array([p.visibility for p in res.pose_landmarks.landmark])
    assert np.abs(o.visibility - vis).max() < 0.01
    mp_world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark])
    assert np.abs(o.world - mp_world).max() < 5e-3
    errors["pose"].append(err)
    return errors


def _check_parity(frames: list[tuple[str, np.ndarray]], blaze, graphs) -> None:
    hands, pose = blaze
    imgs = [f for _, f in frames]
    ours_h, ours_p = hands.detect(imgs), pose.detect(imgs)               # one batch, mixed sizes allowed
    top = [float(d.scores[0]) if len(d.scores) else -1.0 for d in pose.detect_people(imgs)]
    worst = {"hand": 0.0, "pose": 0.0}
    for (name, frame), oh, op, ts in zip(frames, ours_h, ours_p, top):
        for k, errs in _compare(name, frame, oh, op, ts, graphs).items():
            worst[k] = max([worst[k]] + errs)
    print(f"worst error at network resolution: hands {worst['hand']:.4f} px, pose {worst['pose']:.4f} px")


def test_parity_on_the_sample_clip(blaze, mediapipe_graphs):
    frames = [(f"sample#{i}", f) for i, f in zip((0, 60), _video_frames(SAMPLE, [0, 60]))]
    assert len(frames) == 2
    _check_parity(frames, blaze, mediapipe_graphs)


@pytest.mark.skipif(not FOOTAGE.is_dir(), reason="../shared/footage absent")
def test_parity_on_footage(blaze, mediapipe_graphs):
    _check_parity(_footage_frames(), blaze, mediapipe_graphs)


@pytest.mark.skipif(not SCENES.is_dir() or not any(SCENES.glob("*/clip.mp4")), reason="no rendered bench scenes")
def test_parity_on_rendered_scenes(blaze, mediapipe_graphs):
    clips = sorted(SCENES.glob("*/clip.mp4"))
    clips = [c for c in clips if c.parent.name.split("-")[0] in ("count", "jump")] or clips[:2]   # hands; body
    frames = [(f"{c.parent.name}#10", f) for c in clips for f in _video_frames(c, [10])]
    _check_parity(frames, blaze, mediapipe_graphs)


# ---------------------------------------------------------------------------------------- batching and tracking
def test_batch_equals_single_frames(blaze):
    hands, pose = blaze
    frames = _video_frames(SAMPLE, [30])
    frames.append(np.ascontiguousarray(frames[0][40:600, :400]))          # a different size in the same batch
    batch_h, batch_p = hands.detect(frames), pose.detect(frames)
    for f, bh, bp in zip(frames, batch_h, batch_p):
        sh, sp = hands.detect([f])[0], pose.detect([f])[0]
        assert len(sh) == len(bh) and len(sp) == len(bp)
        for a, b in zip(sh + sp, bh + bp):      # batch-size dependent float sums in the networks only
            assert np.abs(a.landmarks_px[:, :2] - b.landmarks_px[:, :2]).max() < 0.1
    assert len(batch_h[0]) >= 1 and len(batch_p[0]) == 1


def test_landmarks_in_rois_and_tracking(blaze):
    hands, pose = blaze
    frames = _video_frames(SAMPLE, [20, 21])
    det_h, det_p = hands.detect(frames[:1])[0], pose.detect(frames[:1])[0]
    assert det_h and det_p
    again = hands.landmarks_in_rois(frames[:1], [np.stack([r.roi for r in det_h])])[0]
    for a, b in zip(det_h, again):                                      # the same ROI: the same landmarks
        assert b is not None and np.allclose(a.landmarks_px, b.landmarks_px, atol=1e-3)
    # next_roi (the tracking ROI from the landmarks) on the same frame: a different crop, so not the same numbers,
    # but the same hand (a wrong rotation or shift would be tens of px off) ...
    for model, det, size in ((hands, det_h, HAND_INPUT), (pose, det_p, POSE_INPUT)):
        same = model.landmarks_in_rois(frames[:1], [np.stack([r.next_roi for r in det])])[0]
        for d, t in zip(det, same):
            assert t is not None
            err = np.linalg.norm(t.landmarks_px[:, :2] - d.landmarks_px[:, :2], axis=1) * size / d.roi[2]
            assert np.median(err) < 8.0
        # ... and on the next frame the tracked hands and body are still there
        nxt = model.landmarks_in_rois(frames[1:], [np.stack([r.next_roi for r in det])])[0]
        assert all(t is not None and t.presence > 0.5 for t in nxt)
    assert pose.landmarks_in_rois(frames[:1], [np.zeros((0, 5))]) == [[]]
    bad = hands.landmarks_in_rois(frames[:1], [np.array([[100.0, 100.0, 0.0, 0.0, 0.0], [np.nan] * 5])],
                                  keep_all=True)[0]
    assert all(r is not None and r.presence == 0 and np.isnan(r.landmarks_px).all() for r in bad)


def test_every_person_is_kept(blaze):
    """Two people side by side (the sample and its mirror image): MediaPipe would keep one, we keep both."""
    _, pose = blaze
    f = _video_frames(SAMPLE, [0])[0]
    both = np.ascontiguousarray(np.concatenate([f, f[:, ::-1]], axis=1))
    people = sorted(pose.detect([both])[0], key=lambda r: r.roi[0])
    assert len(people) == 2
    left, right = people
    assert left.landmarks_px[:, 0].max() < 480 < right.landmarks_px[:, 0].min()
    # the mirror image swaps the body's sides: landmark i of one is landmark swap[i] of the other, at x ↔ 959 − x
    swap = [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9] + [i + 1 - 2 * (i % 2 == 0) for i in range(11, 33)]
    mirrored = right.landmarks_px[swap, :2] * np.array([-1.0, 1.0]) + np.array([2 * 480 - 1, 0.0])
    err = np.linalg.norm(left.landmarks_px[:, :2] - mirrored, axis=1)
    assert np.median(err) < 0.02 * left.roi[2]


def test_tiles_cover_the_image_with_the_overlap_asked():
    t = ops.tile_rois(torch.tensor([[1000, 600]]), 2, 0.25)[0]                      # (4, 5)
    span = 1 / (2 - 0.25)
    assert torch.allclose(t[:, 2:4], torch.tensor([span * 1000, span * 600]).expand(4, 2))
    x0, x1 = t[:, 0] - t[:, 2] / 2, t[:, 0] + t[:, 2] / 2
    assert float(x0.min()) == pytest.approx(0.0, abs=1e-4) and float(x1.max()) == pytest.approx(1000.0, abs=1e-3)
    left, right = t[0], t[1]                                                         # one row, two columns
    overlap = (left[0] + left[2] / 2) - (right[0] - right[2] / 2)
    assert float(overlap / left[2]) == pytest.approx(0.25, abs=1e-5)
    assert torch.all(t[:, 4] == 0)


def test_tiled_detection_finds_a_small_far_person(blaze):
    """The sample's subject shrunk to 320 px in the corner of a 1920×1080 frame: the whole frame at 224² is too
    coarse for the person detector, its 3 × 3 tiles are not; the landmarks land on the person."""
    _, pose = blaze
    f = _video_frames(SAMPLE, [0])[0]
    small = cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((1080, 1920, 3), 90, np.uint8)
    canvas[700:700 + small.shape[0], 1500:1500 + small.shape[1]] = small
    assert pose.detect([canvas])[0] == []
    found = BlazePose(tiles=3, nets=pose._nets).detect([canvas])[0]
    assert len(found) == 1
    xy = found[0].landmarks_px[:, :2]
    assert (xy[:, 0] > 1480).all() and (xy[:, 0] < 1760).all() and (xy[:, 1] > 680).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(blaze):
    """The same code on the GPU: the same hands and bodies, within 0.1 px at network resolution."""
    frames = _video_frames(SAMPLE, [0, 45])
    pairs: list[tuple[list, list, int]] = [
        (blaze[0].detect(frames), BlazeHands(device="cuda").detect(frames), HAND_INPUT),
        (blaze[1].detect(frames), BlazePose(device="cuda").detect(frames), POSE_INPUT)]
    for cpu, gpu, size in pairs:
        for a_list, b_list in zip(cpu, gpu):
            assert len(a_list) == len(b_list)
            for a, b in zip(a_list, b_list):
                assert np.abs(a.landmarks_px[:, :2] - b.landmarks_px[:, :2]).max() * size / a.roi[2] < 0.1
