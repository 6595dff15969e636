"""The stages of one capture, in order: decode+detect (streamed), fit, place in the world, write the Take.

No bpy. Heavy packages are imported inside the stage functions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from . import __version__
from .config import stage_cache_dir
from .pipeline import CancelledFn, CaptureOptions, CaptureResult, Cancelled, ProgressFn
from .protocol import JOB_FAILED, NO_PERSON, OUTPUT_NOT_WRITABLE, RpcError
from .take import TAKE_SUFFIX, atomic_write_bytes, sidecar_path, write_take
from .video import DecodeStats, VideoInfo, content_hash, iter_frames, probe

log = logging.getLogger(__name__)

DETECT_CACHE_VERSION = 2  # 2: capture modes, wrist-crop rescue, hand world landmarks/score/source


@dataclasses.dataclass
class Detections:
    frame_ids: np.ndarray    # (T,)
    timestamps: np.ndarray   # (T,)
    pose_2d: np.ndarray      # (T, 33, 3)
    pose_world: np.ndarray   # (T, 33, 3)
    hands_2d: np.ndarray     # (T, 2, 21, 3)
    hands_world: np.ndarray  # (T, 2, 21, 3) metres, camera axes; NaN where the hand network did not run
    hand_score: np.ndarray   # (T, 2)
    hand_source: np.ndarray  # (T, 2) int8, detect.HAND_SOURCES
    decode_seconds: float
    detect_seconds: float
    counts: dict             # {"rescued": wrist-crop hands, "fallback_frames": frames without a body, ...}

    ARRAYS = ("frame_ids", "timestamps", "pose_2d", "pose_world", "hands_2d", "hands_world", "hand_score",
              "hand_source")


def take_stem(video: Path) -> str:
    """The Take's file name stem: the clip's, the folder's for an image sequence, the pattern's without its
    ``%04d`` for a printf-style pattern (``shots/img_%04d.png`` → ``img``)."""
    if video.is_dir():
        return video.name
    return re.sub(r"[._-]?%0?\d*d", "", video.stem) or "sequence"


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

    from .detect import Perception

    key_opts = {"v": DETECT_CACHE_VERSION, "mediapipe": _mediapipe_version(), "mode": options.mode, "fps": options.fps,
                "start": options.frame_start, "end": options.frame_end, "max_side": options.max_side}
    options_digest = hashlib.sha256(json.dumps(key_opts, sort_keys=True).encode()).hexdigest()[:12]
    key = content_hash(video)[:24] + "_" + options_digest
    cache_file = stage_cache_dir() / "detect" / f"{key}.npz"
    if options.use_cache and cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as f:
                d = {k: f[k] for k in Detections.ARRAYS}
                counts = json.loads(str(f["counts"]))
            n = len(d["frame_ids"])
            progress("detect", n, n, 0.0)
            return Detections(**d, decode_seconds=0.0, detect_seconds=0.0, counts=counts)
        except Exception:
            pass  # damaged entry: recompute and overwrite atomically

    end = options.frame_end
    total = max(1, (min(end, info.frame_count) if end else info.frame_count) - options.frame_start)
    frame_ids: list[int] = []
    stamps: list[float] = []
    found = []  # FrameLandmarks per frame (a few KB each)
    t_decode = t_detect = 0.0
    scale = min(1.0, options.max_side / max(info.width, info.height))
    started = time.perf_counter()
    with Perception(options.mode) as detector:
        stats = DecodeStats()
        frames = iter_frames(video, options.frame_start, end, stats=stats, fps=options.fps)
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
            found.append(lm)
            done = len(frame_ids)
            progress("detect", min(done, total), max(total, done), done / max(1e-6, time.perf_counter() - started))
        detector.finish(found)
        counts = {"rescued": detector.rescued, "fallback_frames": detector.fallback_frames,
                  "decode_skipped": stats.frames_skipped, "decode_skipped_frames": list(stats.skipped_indices),
                  "decode_ended_early": bool(stats.ended_early)}
    if stats.frames_skipped or stats.ended_early:
        log.warning("%s: %d frame(s) could not be decoded and were skipped%s", video, stats.frames_skipped,
                    "; the clip ended early (damaged end?)" if stats.ended_early else "")
    if not frame_ids:
        raise RpcError(JOB_FAILED, f"{video}: no frame in the range [{options.frame_start}, {end}) could be decoded",
                       fix="check the frame range against the clip's length")
    stack = lambda name: np.stack([getattr(lm, name) for lm in found])  # noqa: E731
    det = Detections(np.asarray(frame_ids, dtype=np.int64), np.asarray(stamps, dtype=np.float64), stack("pose_2d"),
                     stack("pose_world"), stack("hands_2d"), stack("hands_world"), stack("hand_score"),
                     stack("hand_source").astype(np.int8), t_decode, t_detect, counts)
    buf = io.BytesIO()
    np.savez_compressed(buf, counts=np.array(json.dumps(counts)),
                        **{name: getattr(det, name) for name in Detections.ARRAYS})
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
    info = probe(video, fps=options.fps)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RpcError(OUTPUT_NOT_WRITABLE, f"{out_dir}: cannot create the output folder ({exc})") from exc
    progress("decode", 0, max(1, info.frame_count), 0.0)

    det = detect_stage(video, info, options, progress, cancelled)
    body_seen = np.isfinite(det.pose_2d[:, 0, 0])                        # (T,)
    hands_seen = np.isfinite(det.hands_2d[:, :, 0, 0]).any(axis=1)       # (T,)
    # Hands only when asked, or when a body+hands capture never saw a body but saw hands (a close-up).
    hands_only = options.mode == "hands" or (options.mode == "body+hands" and not body_seen.any())
    valid = hands_seen if hands_only else body_seen
    if not valid.any():
        what = {"hands": "no hand", "body": "no person"}.get(options.mode, "no person and no hand")
        raise RpcError(NO_PERSON, f"{video}: {what} was detected in any of its {len(valid)} frames",
                       fix="check that someone is in the picture and the frame range covers them; for a close-up "
                           "of hands use the 'hands' mode")

    t0 = time.perf_counter()
    skel = load_skeleton()
    K = default_intrinsics(info.width, info.height, options.focal_px)
    settings = FitSettings(smoothing=options.smoothing, device=resolve_device(options.device))
    fit = fit_sequence(skel, det.pose_2d, det.pose_world, det.hands_2d, K, settings,
                       progress=lambda i, n: progress("fit", i, n, 0.0), cancelled=cancelled,
                       hands_world=det.hands_world, hands_only=hands_only)
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
        hand_landmarks_world=det.hands_world.astype(np.float32), hand_score=det.hand_score.astype(np.float32),
        hand_source=det.hand_source.astype(np.int8),
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
                   "fps": info.fps, "frame_count": info.frame_count, "rotation": info.rotation,
                   "kind": info.kind},
        "model": "anny", "engine_version": __version__, "options": dataclasses.asdict(options),
        "camera": "static, level, focal " + ("given" if options.focal_px else "estimated (longer side)"),
        "detected_frames": int(valid.sum()),
        "hands_detected_frames": {"left": int(np.isfinite(det.hands_2d[:, 0, 0, 0]).sum()),
                                  "right": int(np.isfinite(det.hands_2d[:, 1, 0, 0]).sum())},
        "hands_only": bool(hands_only),
        "detection": dict(det.counts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    take_path = out_dir / (take_stem(Path(video)) + TAKE_SUFFIX)
    meta["stages"] = dict(stages)  # the sidecar cannot time its own writing; the result below does
    write_take(take_path, arrays, meta)
    stages["write"] = {"seconds": time.perf_counter() - t0, "fps": None}
    progress("write", 1, 1, 0.0)
    return CaptureResult(take_path=take_path, sidecar_path=sidecar_path(take_path), frames=n,
                         seconds=time.perf_counter() - started, stages=stages)
