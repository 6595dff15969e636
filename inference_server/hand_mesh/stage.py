"""The engine's ``hand_mesh`` backend: the exported network under ONNX Runtime, run on crops around the hands the
detection stage found. numpy, OpenCV, onnxruntime (CPU; CUDA when its provider is installed and asked for); no torch.

For every frame where a hand's 21 landmarks are all there, the crop is the square around their box (side 1.5 × the
box's longer edge, centred on it: what ``synth.crop_intrinsics`` trains on), resampled to 128 × 128 by the affine
map  u_crop = s·(u − c_u) + 64,  s = 128 / side.  The network sees right hands: a left hand's crop is mirrored
(u_crop → 127 − u_crop) and its answer mirrored back (x → −x for the 3D points, wrist-relative, in the camera's
axes: the crop camera is the image camera with another K, so the axes are the same; mirroring about the crop's
centre line rather than the exact plane through the camera is a second-order error for a narrow crop).

A network trained to pool at given landmarks (``train``'s default) is given the detector's 21 landmarks, mapped into
the crop (and mirrored with it). A refined network (``refine.RefinedMobRecon``) also takes the crop's intrinsics, K_crop = [[s·f, 0, s·c_x + a_u],
[0, s·f, s·c_y + a_v], [0, 0, 1]] for the image's K and the crop's affine (s, a), and places the hand in the camera:
its refined joints (metres, camera frame) then give the 3D points and, projected with the image's K, the 2D ones.
For a mirrored crop K_crop's principal point is mirrored too (127 − (s·c_x + a_u)): then mirroring back, X → −X, is
exact.

Outputs per frame and side (the subject's own): the 21 points in metres relative to the wrist, camera axes
(``hands_world``'s convention, which the fit takes the finger shapes from), the network's 2D joints in image
pixels, the refined network's joints in the camera frame, and whether the network ran.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..protocol import MODEL_MISSING, RpcError

CROP = 128
CROP_SCALE = 1.5
UNITS_PER_M = 10.0
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "weights" / "hand_mesh.onnx"
MODEL_ENV = "REEL2RIG_HAND_MESH_MODEL"


@dataclasses.dataclass
class HandMeshResult:
    joints_m: np.ndarray    # (T, 2, 21, 3) wrist-relative metres, camera axes; NaN where the network did not run
    joints_2d: np.ndarray   # (T, 2, 21, 2) image pixels
    joints_cam: np.ndarray  # (T, 2, 21, 3) metres, camera frame (a refined network; NaN otherwise)
    ran: np.ndarray         # (T, 2) bool
    seconds: float          # network time (crops + inference), decoding excluded
    crops: int


def model_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The network file: ``path``, else $REEL2RIG_HAND_MESH_MODEL, else the shipped one. Raises MODEL_MISSING."""
    chosen = Path(path or os.environ.get(MODEL_ENV) or DEFAULT_MODEL)
    if not chosen.is_file():
        raise RpcError(MODEL_MISSING, f"the hand-mesh network {chosen} does not exist",
                       fix="train and export one (`python -m inference_server.hand_mesh train --help`) and give its "
                           f".onnx file (hand_mesh_model option or ${MODEL_ENV})")
    return chosen


def crop_affine(points_px: np.ndarray) -> np.ndarray:
    """(2, 3) affine from image pixels to the 128-px crop around 21 landmarks (points_px (21, ≥2))."""
    xy = points_px[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = (lo + hi) / 2
    side = max(CROP_SCALE * float((hi - lo).max()), 8.0)
    s = CROP / side
    return np.array([[s, 0.0, CROP / 2 - s * centre[0]], [0.0, s, CROP / 2 - s * centre[1]]])


def crop(rgb: np.ndarray, A: np.ndarray, mirror: bool) -> np.ndarray:
    """(3, 128, 128) float32 network input ((rgb/255 − 0.5)/0.5) of the crop ``A`` maps to, mirrored if asked."""
    import cv2

    if mirror:
        A = np.array([[-1.0, 0.0, CROP - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([A, [0.0, 0.0, 1.0]])
    patch = cv2.warpAffine(rgb, A, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (patch.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0


def crop_points(points_px: np.ndarray, A: np.ndarray, mirror: bool) -> np.ndarray:
    """Image pixels (N, 2) to crop pixels (mirrored for a left hand's crop)."""
    uv = points_px @ A[:, :2].T + A[:, 2]
    if mirror:
        uv[:, 0] = CROP - 1.0 - uv[:, 0]
    return uv


def to_image(joints_crop_px: np.ndarray, A: np.ndarray, mirror: bool) -> np.ndarray:
    """Crop pixels (N, 2) back to image pixels."""
    uv = joints_crop_px.copy()
    if mirror:
        uv[:, 0] = CROP - 1.0 - uv[:, 0]
    s = A[0, 0]
    return (uv - A[:, 2]) / s


def crop_intrinsics(K: np.ndarray, A: np.ndarray, mirror: bool) -> np.ndarray:
    """The crop's K from the image's K and the crop's affine (module docstring)."""
    s = A[0, 0]
    cx, cy = s * K[0, 2] + A[0, 2], s * K[1, 2] + A[1, 2]
    if mirror:
        cx = CROP - 1.0 - cx
    return np.array([[s * K[0, 0], 0.0, cx], [0.0, s * K[1, 1], cy], [0.0, 0.0, 1.0]])


def run_on_frames(frames, rows: dict[int, int], hands_2d: np.ndarray, net, batch: int = 32,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None, K: np.ndarray | None = None) -> HandMeshResult:
    """The network on every seen hand. ``frames`` yields (frame_index, timestamp, bgr); ``rows`` maps a frame index
    to its row in ``hands_2d`` (T, 2, 21, ≥2); ``net`` an ``export.OnnxHandMesh``; ``K`` the image's intrinsics
    (needed by a refined network)."""
    import time

    import cv2

    T = hands_2d.shape[0]
    joints = np.full((T, 2, 21, 3), np.nan)
    j2d = np.full((T, 2, 21, 2), np.nan)
    cam = np.full((T, 2, 21, 3), np.nan)
    ran = np.zeros((T, 2), dtype=bool)
    refined = bool(getattr(net, "takes_K", False))
    if refined and K is None:
        raise ValueError("a refined hand-mesh network needs the image's intrinsics K")
    seen = np.all(np.isfinite(hands_2d[..., :2]), axis=(-1, -2))           # (T, 2)
    pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    seconds, n_crops, done = 0.0, 0, 0

    def flush() -> None:
        nonlocal seconds, n_crops
        if not pending:
            return
        t0 = time.perf_counter()
        crops_K = np.stack([crop_intrinsics(K, p[2], p[1] == 0) for p in pending]) if refined else None
        given = np.stack([crop_points(hands_2d[p[0], p[1], :, :2], p[2], p[1] == 0) / CROP for p in pending]) \
            if getattr(net, "takes_landmarks", False) else None
        out = net(np.stack([p[3] for p in pending]), crops_K, given)
        pts = out.get("joints3d")
        if pts is None:
            raise RpcError(MODEL_MISSING, "the hand-mesh network has no joints3d output",
                           fix="export it with its joint regressor (`python -m inference_server.hand_mesh export "
                               "--weights CKPT`, from one of our training runs)")
        for k, (row, side, A, _) in enumerate(pending):
            mirror = side == 0
            if refined:
                c = out["joints_cam"][k].astype(np.float64)
                if mirror:
                    c[:, 0] = -c[:, 0]
                cam[row, side] = c
                p = c - c[0]
                uv = c @ np.asarray(K, dtype=np.float64).T
                j2d[row, side] = uv[:, :2] / uv[:, 2:3]
            else:
                p = pts[k].astype(np.float64) / UNITS_PER_M
                p = p - p[0]
                if mirror:
                    p[:, 0] = -p[:, 0]
                j2d[row, side] = to_image(out["joints_2d"][k].astype(np.float64) * CROP, A, mirror)
            joints[row, side] = p
            ran[row, side] = True
        seconds += time.perf_counter() - t0
        n_crops += len(pending)
        pending.clear()

    for index, _, bgr in frames:
        if cancelled is not None and cancelled():
            break
        row = rows.get(int(index))
        if row is None:
            continue
        sides = [s for s in (0, 1) if seen[row, s]]
        if sides:
            t0 = time.perf_counter()
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            for side in sides:
                A = crop_affine(hands_2d[row, side])
                pending.append((row, side, A, crop(rgb, A, mirror=side == 0)))
            seconds += time.perf_counter() - t0
            if len(pending) >= batch:
                flush()
        done += 1
        if progress is not None:
            progress(done, T)
    flush()
    return HandMeshResult(joints, j2d, cam, ran, seconds, n_crops)


def run_on_video(video: str | os.PathLike[str], frame_ids: np.ndarray, hands_2d: np.ndarray,
                 model: str | os.PathLike[str] | None = None, providers: list[str] | None = None,
                 fps: float | None = None, progress=None, cancelled=None, K: np.ndarray | None = None
                 ) -> HandMeshResult:
    """Decode the clip again (streamed) and run the network on the detected hands of the rows' frames."""
    from ..video import iter_frames
    from .export import OnnxHandMesh

    net = OnnxHandMesh(model_path(model), providers)
    ids = np.asarray(frame_ids, dtype=np.int64)
    rows = {int(f): r for r, f in enumerate(ids)}
    frames = iter_frames(video, int(ids.min()), int(ids.max()) + 1, fps=fps) if len(ids) else iter([])
    return run_on_frames(frames, rows, np.asarray(hands_2d, dtype=np.float64), net, progress=progress,
                         cancelled=cancelled, K=K)
