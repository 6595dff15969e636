"""The stages of one capture, in order: decode+detect (streamed), fit, place in the world, write the Take.

No bpy. Heavy packages are imported inside the stage functions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np

from . import __version__
from .config import stage_cache_dir
from .pipeline import CancelledFn, CaptureOptions, CaptureResult, Cancelled, ProgressFn
from .protocol import JOB_FAILED, NO_PERSON, OUTPUT_NOT_WRITABLE, RpcError
from .take import TAKE_SUFFIX, atomic_write_bytes, sidecar_path, write_take
from .video import VideoInfo, content_hash, iter_frames, probe

DETECT_CACHE_VERSION = 1


@dataclasses.dataclass
class Detections:
    frame_ids: np.ndarray    # (T,)
    timestamps: np.ndarray   # (T,)
    pose_2d: np.ndarray      # (T, 33, 3)
    pose_world: np.ndarray   # (T, 33, 3)
    hands_2d: np.ndarray     # (T, 2, 21, 3)
    decode_seconds: float
    detect_seconds: float


def default_intrinsics(width: int, height: int, focal_px: float | None) -> np.ndarray:
    """K with the principal point at the centre; focal = the longer side unless given (≈ 53° across it)."""
    f = float(focal_px) if focal_px else float(max(width, height))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def _mediapipe_version() -> str:
    try:
        from importlib.metadata import version
        return version("mediapipe")
    except Exception:
        return "unknown"


def detect_stage(video: Path, info: VideoInfo, options: CaptureOptions, progress: ProgressFn,
                 cancelled: CancelledFn) -> Detections:
    """Decode and detect, streaming frame by frame; cached per (content hash, detection options)."""
    import cv2

    from .detect import HolisticDetector

    key_opts = {"v": DETECT_CACHE_VERSION, "mediapipe": _mediapipe_version(), "hands": options.mode != "body",
                "start": options.frame_start, "end": options.frame_end, "max_side": options.max_side}
    options_digest = hashlib.sha256(json.dumps(key_opts, sort_keys=True).encode()).hexdigest()[:12]
    key = content_hash(video)[:24] + "_" + options_digest
    cache_file = stage_cache_dir() / "detect" / f"{key}.npz"
    if options.use_cache and cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as f:
                d = {k: f[k] for k in f.files}
            n = len(d["frame_ids"])
            progress("detect", n, n, 0.0)
            return Detections(d["frame_ids"], d["timestamps"], d["pose_2d"], d["pose_world"], d["hands_2d"], 0.0, 0.0)
        except Exception:
            pass  # damaged entry: recompute and overwrite atomically

    end = options.frame_end
    total = max(1, (min(end, info.frame_count) if end else info.frame_count) - options.frame_start)
    frame_ids, stamps, p2, pw, h2 = [], [], [], [], []
    t_decode = t_detect = 0.0
    scale = min(1.0, options.max_side / max(info.width, info.height))
    started = time.perf_counter()
    with HolisticDetector(hands=options.mode != "body") as detector:
        frames = iter_frames(video, options.frame_start, end)
        while True:
            if cancelled():
                raise Cancelled("cancelled during detection")
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                break
            index, ts, bgr = item
            height, width = bgr.shape[:2]
            if scale < 1.0:
                bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            lm = detector.process(rgb, (width, height))
            t2 = time.perf_counter()
            t_decode += t1 - t0
            t_detect += t2 - t1
            frame_ids.append(index)
            stamps.append(ts)
            p2.append(lm.pose_2d)
            pw.append(lm.pose_world)
            h2.append(lm.hands_2d)
            done = len(frame_ids)
            progress("detect", min(done, total), max(total, done), done / max(1e-6, time.perf_counter() - started))
    if not frame_ids:
        raise RpcError(JOB_FAILED, f"{video}: no frame in the range [{options.frame_start}, {end}) could be decoded",
                       fix="check the frame range against the clip's length")
    det = Detections(np.asarray(frame_ids, dtype=np.int64), np.asarray(stamps, dtype=np.float64), np.stack(p2),
                     np.stack(pw), np.stack(h2), t_decode, t_detect)
    buf = io.BytesIO()
    np.savez_compressed(buf, frame_ids=det.frame_ids, timestamps=det.timestamps, pose_2d=det.pose_2d,
                        pose_world=det.pose_world, hands_2d=det.hands_2d)
    atomic_write_bytes(cache_file, buf.getvalue())
    return det


def place_in_world(skel, local_aa: np.ndarray, root_pos: np.ndarray, R_w2c: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move the fit (camera at the origin) so the ground is z = 0 and the subject starts above the origin.

    Ground: the 5th percentile over time of the lowest sole marker (the heel and toe landmarks' points on the
    model, which lie on the skin of the sole). Returns root positions (T,3), R_world2cam (T,3,3) and
    t_world2cam (T,3) after the shift s (p_world' = p_world − s, so t' = R s).
    """
    from rigs.fk import forward_kinematics

    from .anny_skeleton import attached_points

    W = forward_kinematics(skel.rest, skel.parents, local_aa, root_pos)  # (T,J,4,4)
    soles = [29, 30, 31, 32]
    points = attached_points(W, skel.body_marker_bone[soles], skel.body_marker_local[soles])
    ground = float(np.percentile(points[..., 2].min(axis=1), 5))
    start = root_pos[0]
    shift = np.array([start[0], start[1], ground])
    n = len(root_pos)
    R = np.broadcast_to(R_w2c, (n, 3, 3)).copy()
    t = np.broadcast_to(R_w2c @ shift, (n, 3)).copy()
    return root_pos - shift, R, t


def run(video: Path, out_dir: Path, options: CaptureOptions, progress: ProgressFn,
        cancelled: CancelledFn) -> CaptureResult:
    from .anny_skeleton import load_skeleton
    from .fit import R_WORLD2CAM_LEVEL, FitSettings, fit_sequence, resolve_device
    from rigs.fk import bone_heads

    started = time.perf_counter()
    info = probe(video)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RpcError(OUTPUT_NOT_WRITABLE, f"{out_dir}: cannot create the output folder ({exc})") from exc
    progress("decode", 0, max(1, info.frame_count), 0.0)

    det = detect_stage(video, info, options, progress, cancelled)
    valid = np.isfinite(det.pose_2d[:, 0, 0])
    if not valid.any():
        raise RpcError(NO_PERSON, f"{video}: no person was detected in any of its {len(valid)} frames")

    t0 = time.perf_counter()
    skel = load_skeleton()
    K = default_intrinsics(info.width, info.height, options.focal_px)
    settings = FitSettings(smoothing=options.smoothing, device=resolve_device(options.device))
    fit = fit_sequence(skel, det.pose_2d, det.pose_world, det.hands_2d, K, settings,
                       progress=lambda i, n: progress("fit", i, n, 0.0), cancelled=cancelled)
    t_fit = time.perf_counter() - t0
    if cancelled():
        raise Cancelled("cancelled after fit")

    t0 = time.perf_counter()
    progress("write", 0, 1, 0.0)
    root_world, R_w2c, t_w2c = place_in_world(skel, fit.local_rotations_aa, fit.root_position_world,
                                              R_WORLD2CAM_LEVEL)
    joints = bone_heads(skel.rest, skel.parents, fit.local_rotations_aa, root_world)
    arrays = dict(
        frame_ids=det.frame_ids, timestamps=det.timestamps, fps=np.float64(info.fps),
        image_size=np.array([info.width, info.height], dtype=np.int64), K=K,
        R_world2cam=R_w2c, t_world2cam=t_w2c,
        bone_names=np.array(skel.names), bone_parents=skel.parents.astype(np.int32),
        rest_matrices=skel.rest.astype(np.float32), bone_lengths=skel.lengths.astype(np.float32),
        local_rotations_aa=fit.local_rotations_aa.astype(np.float32),
        root_position_world=root_world.astype(np.float32), joints_world=joints.astype(np.float32),
        bone_fitted=fit.bone_fitted, valid=valid, fit_residual_px=fit.residual_px.astype(np.float32),
        pose_landmarks_2d=det.pose_2d.astype(np.float32), pose_landmarks_world=det.pose_world.astype(np.float32),
        hand_landmarks_2d=det.hands_2d.astype(np.float32),
    )
    n = len(det.frame_ids)
    stages = {
        "decode": {"seconds": det.decode_seconds, "fps": n / det.decode_seconds if det.decode_seconds else None},
        "detect": {"seconds": det.detect_seconds, "fps": n / det.detect_seconds if det.detect_seconds else None,
                   "cached": det.detect_seconds == 0.0},
        "fit": {"seconds": t_fit, "fps": n / t_fit if t_fit else None},
    }
    meta = {
        "source": {"path": str(Path(video).resolve()), "width": info.width, "height": info.height,
                   "fps": info.fps, "frame_count": info.frame_count, "rotation": info.rotation},
        "model": "anny", "engine_version": __version__, "options": dataclasses.asdict(options),
        "camera": "static, level, focal " + ("given" if options.focal_px else "estimated (longer side)"),
        "detected_frames": int(valid.sum()),
        "hands_detected_frames": {"left": int(np.isfinite(det.hands_2d[:, 0, 0, 0]).sum()),
                                  "right": int(np.isfinite(det.hands_2d[:, 1, 0, 0]).sum())},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    take_path = out_dir / (Path(video).stem + TAKE_SUFFIX)
    meta["stages"] = dict(stages)  # the sidecar cannot time its own writing; the result below does
    write_take(take_path, arrays, meta)
    stages["write"] = {"seconds": time.perf_counter() - t0, "fps": None}
    progress("write", 1, 1, 0.0)
    return CaptureResult(take_path=take_path, sidecar_path=sidecar_path(take_path), frames=n,
                         seconds=time.perf_counter() - started, stages=stages)
