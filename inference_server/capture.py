"""The stages of one capture, in order: decode+detect (streamed), fit, place in the world, write the Take.

No bpy. Heavy packages are imported inside the stage functions.
"""
from __future__ import annotations

import array
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .config import stage_cache_dir
from .pipeline import HAND_MODELS, CancelledFn, CaptureOptions, CaptureResult, Cancelled, ProgressFn
from .protocol import INVALID_PARAMS, JOB_FAILED, NO_PERSON, OUTPUT_NOT_WRITABLE, RpcError
from . import scratch
from .take import (TAKE_SUFFIX, Stored, atomic_write, read_npz_member, sidecar_path, write_npz,
                   write_take)
from .video import DecodeStats, VideoInfo, content_hash, iter_frames, probe

log = logging.getLogger(__name__)

DETECT_CACHE_VERSION = 9  # 2: capture modes, wrist-crop rescue, hand world landmarks/score/source; 3: a person axis;
#                           4: whole-frame hand search for unsure wrists and close-ups, phantom bodies dropped,
# 5: mirrored bodies swapped back by the hands' chirality; 6: the camera's rotation (camera_motion.py);
# 7: each person's arrays an entry of its own (streamed: no stack of the people in memory);
# 8: hands on the other arm dropped, one hand on both sides by chirality, body-less frames' hands by track;
# 9: Holistic without its face, a lone hand that continues the other side's hand moved there, wrist crops and
#    close-ups tracked, a sure label between crossed wrists (detect.py, session 20)


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
    camera_R: np.ndarray | None = None   # (T,3,3) camera rotation from frame 0's camera (camera_motion.py); None:
                                         # not estimated (a still camera is the identity, not None)
    camera_info: dict = dataclasses.field(default_factory=dict)   # static, reliable frames, ...

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


def camera_intrinsics(info: VideoInfo, focal_px: float | None) -> np.ndarray:
    """The capture's K: the user's focal length, else the one the file records (EXIF, QuickTime; see
    `camera_meta`), else the longer side."""
    return default_intrinsics(info.width, info.height, focal_px or info.focal_px)


def focal_words(info: VideoInfo, focal_px: float | None) -> str:
    """Where the capture's focal length came from, in words (the sidecar's camera line)."""
    if focal_px:
        return f"focal {focal_px:.0f} px given"
    if info.focal_px:
        return f"focal {info.focal_px:.0f} px from the file ({info.focal_source})"
    return f"focal {max(info.width, info.height)} px estimated (longer side)"


def _mediapipe_version() -> str:
    try:
        from importlib.metadata import version
        return version("mediapipe")
    except Exception:
        return "unknown"


DETECT_BATCH = {"cpu": 8, "cuda": 64}   # frames per batch on the multi-person path
PEOPLE_TILES = 2   # several people: person detection also on 2 × 2 overlapping tiles of each frame (small, far people)


def detect_stage(video: Path, info: VideoInfo, options: CaptureOptions, progress: ProgressFn,
                 cancelled: CancelledFn) -> list[Detections]:
    """Decode and detect, streaming; one `Detections` per person (the main person first; exactly one unless
    ``options.multi_person``). Cached per (content hash, detection options)."""
    key_opts = {"v": DETECT_CACHE_VERSION, "mediapipe": _mediapipe_version(), "mode": options.mode, "fps": options.fps,
                "start": options.frame_start, "end": options.frame_end, "max_side": options.max_side}
    if options.multi_person:
        key_opts["people"] = options.people
    backend = options.detector_backend()
    if backend != "mediapipe":
        key_opts["detector"] = backend
    options_digest = hashlib.sha256(json.dumps(key_opts, sort_keys=True).encode()).hexdigest()[:12]
    key = content_hash(video)[:24] + "_" + options_digest
    cache_file = stage_cache_dir() / "detect" / f"{key}.npz"
    if options.use_cache and cache_file.exists():
        try:
            people = _load_detections(cache_file)
            n = len(people[0].frame_ids)
            progress("detect", n, n, 0.0)
            return people
        except Exception:
            pass  # damaged entry: recompute and overwrite atomically

    end = options.frame_end
    total = max(1, (min(end, info.frame_count) if end else info.frame_count) - options.frame_start)
    stats = DecodeStats()
    frames = iter_frames(video, options.frame_start, end, stats=stats, fps=options.fps)
    camera = None
    if options.multi_person or (backend == "torch" and options.mode != "hands"):
        people, frame_ids, stamps, t_decode, t_detect, counts, camera = _detect_people(frames, info, options, total,
                                                                                       progress, cancelled)
    elif backend == "torch":
        people, frame_ids, stamps, t_decode, t_detect, counts = _detect_hands_torch(frames, info, options, total,
                                                                                    progress, cancelled)
    else:
        people, frame_ids, stamps, t_decode, t_detect, counts, camera = _detect_one(frames, info, options, total,
                                                                                    progress, cancelled)
    counts["detector"] = backend
    counts.update({"decode_skipped": stats.frames_skipped, "decode_skipped_frames": list(stats.skipped_indices),
                   "decode_ended_early": bool(stats.ended_early)})
    if stats.frames_skipped or stats.ended_early:
        log.warning("%s: %d frame(s) could not be decoded and were skipped%s", video, stats.frames_skipped,
                    "; the clip ended early (damaged end?)" if stats.ended_early else "")
    if not frame_ids:
        raise RpcError(JOB_FAILED, f"{video}: no frame in the range [{options.frame_start}, {end}) could be decoded",
                       fix="check the frame range against the clip's length")
    from .detect import stacked

    ids, ts = np.asarray(frame_ids, dtype=np.int64), np.asarray(stamps, dtype=np.float64)
    out = []
    for found in people:
        stack = lambda name: stacked(found, name)  # noqa: E731   # a FrameStore's own arrays, no copy
        out.append(Detections(ids, ts, stack("pose_2d"), stack("pose_world"), stack("hands_2d"), stack("hands_world"),
                              stack("hand_score"), stack("hand_source").astype(np.int8), t_decode, t_detect,
                              dict(counts), *_camera_fields(camera)))
    _save_detections(cache_file, out, counts, camera)
    return out


def _scaled_rgb(bgr: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale < 1.0:
        height, width = bgr.shape[:2]
        bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class _Decoded:
    """The decoded stream of a capture as (frame index, timestamp, full-frame (width, height), RGB scaled for
    detection), stopping with Cancelled when asked; ``frame_ids``, ``stamps`` and ``seconds`` (decoding and
    scaling) accumulate as it is read."""

    def __init__(self, frames, scale: float, cancelled: CancelledFn):
        self.frames, self.scale, self.cancelled = frames, scale, cancelled
        self.frame_ids = array.array("q")   # compact: no Python object per frame (hours of frames)
        self.stamps = array.array("d")
        self.seconds = 0.0

    def __iter__(self):
        while True:
            if self.cancelled():
                raise Cancelled("cancelled during detection")
            t0 = time.perf_counter()
            item = next(self.frames, None)
            if item is None:
                return
            index, ts, bgr = item
            size = (bgr.shape[1], bgr.shape[0])
            rgb = _scaled_rgb(bgr, self.scale)
            self.seconds += time.perf_counter() - t0
            self.frame_ids.append(index)
            self.stamps.append(ts)
            yield index, ts, size, rgb


def _detect_one(frames, info: VideoInfo, options: CaptureOptions, total: int, progress: ProgressFn,
                cancelled: CancelledFn):
    """The main person, frame by frame, with `detect.Perception` (MediaPipe's graphs); the camera's rotation from
    the same frames' background, the person masked out (`camera_motion.CameraTracker`; timed with detection)."""
    from .camera_motion import CameraTracker
    from .detect import FrameStore, Perception

    decoded = _Decoded(frames, min(1.0, options.max_side / max(info.width, info.height)), cancelled)
    found = FrameStore(total)  # every frame's landmarks as whole-clip arrays (3.6 KB a frame, no object each)
    started = time.perf_counter()
    tracker = CameraTracker(camera_intrinsics(info, options.focal_px), (info.width, info.height))
    with Perception(options.mode) as detector:
        # Two frames in flight: Holistic on one while the other's missing hands are searched (`Perception.stream`).
        for rgb, lm in detector.stream((rgb, size) for _, _, size, rgb in decoded):
            found.append(lm)
            tracker.add(rgb, np.concatenate([lm.pose_2d[:, :2], lm.hands_2d[..., :2].reshape(-1, 2)]))
            done = len(found)
            progress("detect", min(done, total), max(total, done), done / max(1e-6, time.perf_counter() - started))
        detector.finish(found)
        t_detect = time.perf_counter() - started - decoded.seconds    # decoding (timed apart) excluded
        counts = {"rescued": detector.rescued, "fallback_frames": detector.fallback_frames,
                  "whole_frame_searches": detector.whole_frame_searches, "phantom_bodies": detector.phantom_bodies,
                  "unmirrored_frames": detector.unmirrored, "relinked_hands": detector.relinked,
                  "misplaced_hands": detector.misplaced, "searches_skipped": detector.searches_skipped}
    camera = tracker.finish() if found else None
    return [found], decoded.frame_ids, decoded.stamps, decoded.seconds, t_detect, counts, camera


def _detect_device() -> str:
    """Where the torch detector runs: CUDA whenever torch sees a GPU (that is what it is for), else the CPU. (The
    ``device`` option says where the fit runs.)"""
    from .fit import resolve_device

    return resolve_device("auto")


def _detect_people(frames, info: VideoInfo, options: CaptureOptions, total: int, progress: ProgressFn,
                   cancelled: CancelledFn):
    """People with the torch port of MediaPipe's networks (`people.MultiPerson`), in batches of frames, then one
    track per person: every person (``options.people`` ≠ 1) or the main one (``--detector torch``). The camera's
    rotation comes from the same frames' background with every person masked out."""
    from .camera_motion import CameraTracker
    from .people import MultiPerson, detect_stream, track_people

    device = _detect_device()
    detector = MultiPerson(device=device, hands=options.mode == "body+hands",
                           tiles=PEOPLE_TILES if options.people != 1 else 0)
    decoded = _Decoded(frames, min(1.0, options.max_side / max(info.width, info.height)), cancelled)
    tracker = CameraTracker(camera_intrinsics(info, options.focal_px), (info.width, info.height))
    started = time.perf_counter()

    def on_batch(done: int, _seconds: float) -> None:
        progress("detect", min(done, total), max(total, done), done / max(1e-6, time.perf_counter() - started))

    def on_frames(batch: list[np.ndarray], people) -> None:
        for rgb, persons in zip(batch, people):
            points = [np.concatenate([p.landmarks.pose_2d[:, :2], p.landmarks.hands_2d[..., :2].reshape(-1, 2)])
                      for p in persons]
            tracker.add(rgb, points or None)            # one box per person

    found, t_detect = detect_stream(detector, ((rgb, size) for _, _, size, rgb in decoded),
                                    DETECT_BATCH.get(device.split(":")[0], 8), on_batch, on_frames)   # whole-clip
    size = (info.width, info.height)
    t0 = time.perf_counter()
    tracks = track_people(found, size, max_people=options.people or None)   # a FrameStore per person
    t_detect += time.perf_counter() - t0
    camera = tracker.finish() if len(found) else None
    counts = {"people": len(tracks), "device": device, "recovered": detector.recovered,
              "hands_tracked": detector.hand_tracked, "palm_retry": detector.hand_palm_retry,
              "relabelled_frames": [int(tr.mirrored.sum()) for tr in tracks],
              "person_frames": [int(tr.present.sum()) for tr in tracks]}
    if not tracks:   # nobody: one empty person, so the caller reports "no person" like the single path
        from .detect import FrameStore, empty_frame
        nobody = FrameStore(len(found))
        for _ in range(len(found)):
            nobody.append(empty_frame())
        return [nobody], decoded.frame_ids, decoded.stamps, decoded.seconds, t_detect, counts, camera
    return [tr.frames for tr in tracks], decoded.frame_ids, decoded.stamps, decoded.seconds, t_detect, counts, camera


def _tracked_hands(hands_net, rgb: np.ndarray, previous: list, found: list) -> list:
    """MediaPipe's hand tracking for the torch port: a hand of the previous frame that no palm detection of this
    frame covers (no hand found with its wrist inside the ROI the previous landmarks give) is looked for with the
    landmark network alone on that ROI, and kept when the network says a hand is there."""
    missing = []
    for hand in previous:
        cx, cy, w, h, _ = hand.next_roi
        if all(np.hypot(*(f.landmarks_px[0, :2] - (cx, cy))) > 0.5 * max(w, h) for f in found):
            missing.append(hand.next_roi)
    missing = missing[:max(0, hands_net.max_hands - len(found))]
    if not missing:
        return []
    again = hands_net.landmarks_in_rois([rgb], [np.stack(missing)])[0]
    return [r for r in again if r is not None]


def _detect_hands_torch(frames, info: VideoInfo, options: CaptureOptions, total: int, progress: ProgressFn,
                        cancelled: CancelledFn):
    """Hands mode with the torch port (`models.blaze.BlazeHands`: palm detection and hand landmarks on every frame,
    batched), the sides then given by track over the clip exactly as on MediaPipe's path (`detect.Perception`)."""
    from .detect import FrameStore, HandObservation, Perception, subject_side
    from .models.blaze import BlazeHands
    from .people import batches

    device = _detect_device()
    batch_size = DETECT_BATCH.get(device.split(":")[0], 8)
    hands_net = BlazeHands(device=device, max_hands=2)
    decoded = _Decoded(frames, min(1.0, options.max_side / max(info.width, info.height)), cancelled)
    found = FrameStore(total)
    perception = Perception("hands", graphs=False)
    t_detect, started = 0.0, time.perf_counter()
    size = (info.width, info.height)
    previous: list = []
    for batch in batches((rgb for _, _, _, rgb in decoded), batch_size):
        t0 = time.perf_counter()
        sx, sy = size[0] / batch[0].shape[1], size[1] / batch[0].shape[0]
        for rgb, results in zip(batch, hands_net.detect(batch)):
            results = results + _tracked_hands(hands_net, rgb, previous, results)
            previous = results
            hands = [HandObservation(np.asarray(r.landmarks_px, dtype=np.float64) * (sx, sy, sx),
                                     np.asarray(r.world, dtype=np.float64), subject_side(r.handedness_label),
                                     float(r.handedness_score)) for r in results]
            found.append(perception.add_hands(hands, size))
        t_detect += time.perf_counter() - t0
        progress("detect", min(len(found), total), max(total, len(found)),
                 len(found) / max(1e-6, time.perf_counter() - started))
    t0 = time.perf_counter()
    perception.finish(found)
    t_detect += time.perf_counter() - t0
    counts = {"device": device}
    return [found], decoded.frame_ids, decoded.stamps, decoded.seconds, t_detect, counts


def _camera_fields(camera) -> tuple[np.ndarray | None, dict]:
    """Detections' camera_R and camera_info from a `camera_motion.CameraMotion` (None: not estimated)."""
    from .camera_motion import rotation_angle_deg

    if camera is None:
        return None, {}
    reliable = np.asarray(camera.reliable, dtype=bool)
    turn = rotation_angle_deg(np.eye(3), camera.R_cam_from_cam0)
    return camera.R_cam_from_cam0, {"static": bool(camera.static), "reliable_frames": int(reliable.sum()),
                                    "translating_frames": int(np.asarray(camera.translating, bool).sum()),
                                    "frames": int(len(reliable)), "max_turn_deg": round(float(turn.max()), 2)}


def _save_detections(cache_file: Path, people: list[Detections], counts: dict, camera=None) -> None:
    """The detection cache entry: each person's (T, ...) arrays as ``<name>.p<k>`` entries, written a block of
    frames at a time (`take.write_npz`): a long clip's landmarks on disk (scratch.py) are never all in memory, for
    one person or several."""
    arrays: dict[str, np.ndarray] = {f"{name}.p{k}": getattr(d, name) for k, d in enumerate(people)
                                     for name in Detections.ARRAYS if name not in ("frame_ids", "timestamps")}
    if camera is not None:
        arrays.update(camera.as_dict())
    entries = {"counts": np.array(json.dumps(counts)), "people": np.int64(len(people)),
               "frame_ids": people[0].frame_ids, "timestamps": people[0].timestamps, **arrays}
    atomic_write(cache_file, lambda handle: write_npz(handle, entries, scratch.trim))


def _load_detections(cache_file: Path) -> list[Detections]:
    """Read a detection cache entry back, a block of frames at a time; every person's whole-clip arrays go to the
    scratch folder when the clip is long (scratch.py)."""
    import zipfile

    with zipfile.ZipFile(cache_file) as archive:
        names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        data = {name: read_npz_member(archive, name, scratch.empty, scratch.trim) for name in names}
    counts = json.loads(str(data["counts"]))
    shared = {"frame_ids": data["frame_ids"], "timestamps": data["timestamps"]}
    camera = None
    if "camera_R_cam_from_cam0" in data:
        from .camera_motion import CameraMotion
        camera = CameraMotion.from_dict(data)
    cam_R, cam_info = _camera_fields(camera)
    return [Detections(**shared, **{k: data[f"{k}.p{p}"] for k in Detections.ARRAYS if k not in shared},
                       decode_seconds=0.0, detect_seconds=0.0, counts=dict(counts), camera_R=cam_R,
                       camera_info=dict(cam_info)) for p in range(int(data["people"]))]


def _world_stage(skel, fit, det: Detections, valid: np.ndarray, hands_only: bool, options: CaptureOptions,
                 K: np.ndarray, confidence: np.ndarray):
    """The fit placed in the world (world.py): camera motion out, floor at z = 0, contacts, planted feet. A hands-only
    capture keeps its body at rest on a still camera (no feet to plant). The fit's per-frame camera shift (the
    handheld residual, fit.py) is added to ``t_world2cam``. The fit's rotations become the world's (changed in place:
    no copy of a long clip's)."""
    from .world import WorldSettings, ground, image_foot_speed

    settings = WorldSettings(space=options.space, foot_lock=options.foot_lock and not hands_only)
    R_rel = None if hands_only else det.camera_R
    speed = image_foot_speed(det.pose_2d, K, R_rel if options.space == "world" else None, det.timestamps)
    world = ground(skel, fit.local_rotations_aa, fit.root_position_world, det.timestamps, valid & ~hands_only,
                   confidence, R_rel, settings, image_speed=speed,
                   camera_may_travel=camera_may_travel(det.camera_info), consume=True)
    if fit.camera_shift is not None:
        world.t_world2cam = world.t_world2cam + fit.camera_shift
    if hands_only:
        world.foot_contact[:] = 0.0
    if det.camera_R is not None:
        world.info["camera_estimate"] = dict(det.camera_info)
    return world


def camera_may_travel(camera_info: dict) -> bool:
    """Whether the camera may be travelling with the subject: the background showed a translation on some frame, or
    too little of it was seen to tell (under half the frames reliable; nothing estimated). A background seen well
    that only turned rules a tracking shot out, whatever the feet's odometry says (a jump's flight fools it)."""
    if not camera_info:
        return True
    frames = max(1, int(camera_info.get("frames", 0)))
    return camera_info.get("translating_frames", 0) > 0 or camera_info.get("reliable_frames", 0) < 0.5 * frames


def _camera_words(info: dict, options: CaptureOptions, video: VideoInfo) -> str:
    """The sidecar's one-line description of the camera."""
    focal = focal_words(video, options.focal_px)
    kind = {"still": "still", "rotating": "turning (rotation from the background)",
            "travelling": "travelling with the subject (from the feet)"}.get(info.get("camera", ""), "still")
    estimate = info.get("camera_estimate") or {}
    if kind == "still" and estimate and not estimate.get("static") and not estimate.get("reliable_frames"):
        kind = "taken as still (no background texture to track it by)"
    return f"{kind}, {options.space} space, {focal}"


def actor_phenotype(options: CaptureOptions) -> np.ndarray | None:
    """The Anny phenotype of ``options.actor_height_m`` (None: the default body). An actor's height Anny cannot be
    fails here, before any detection work, with the range it can."""
    if options.actor_height_m is None:
        return None
    from .anny_skeleton import phenotype_for_height

    try:
        return phenotype_for_height(options.actor_height_m)
    except ValueError as exc:
        raise RpcError(INVALID_PARAMS, f"actor height: {exc}",
                       fix="give the actor's height in metres (soles to the top of the head), e.g. 1.72, or leave "
                           "it unset for Anny's average body") from exc


def _size_ratio(skel) -> float:
    """How much larger (> 1) or smaller this skeleton is than Anny's default one (its shoulders' height above the
    ankles at rest)."""
    from .anny_skeleton import load_skeleton

    def size(s) -> float:
        z = s.rest[:, 2, 3]
        return float(z[[s.index("upperarm01.L"), s.index("upperarm01.R")]].mean()
                     - z[[s.index("foot.L"), s.index("foot.R")]].mean())

    return size(skel) / size(load_skeleton())


def _target_model(options: CaptureOptions):
    """The model the Take is for: None for Anny (the fit's own); the user's SMPL-family model; for a hand model
    (hands mode) {"left": model, "right": model}. Loaded (and its files checked) before any detection work so that
    a missing file fails fast."""
    if options.model == "anny":
        return None
    from .body_models import load_model

    model_dir = options.model_dir or os.environ.get("REEL2RIG_MODEL_DIR")
    if options.model in HAND_MODELS:
        if options.mode != "hands":
            raise RpcError(JOB_FAILED, f"the {options.model} model is a hand model; the {options.mode} mode needs a "
                                       "body model", fix="use the hands mode with it, or the anny, smpl, smplh or "
                                                         "smplx model")
        return {side: load_model(options.model, model_dir, side=side) for side in ("left", "right")}
    if options.mode == "hands":
        raise RpcError(JOB_FAILED, f"the {options.model} model is for body captures; hands mode uses Anny",
                       fix="use the body+hands or body mode with this model, or the Anny model for hands only")
    return load_model(options.model, model_dir)


def _confidence(pose_2d: np.ndarray, residual_px: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-frame fit confidence 0..1: mean body-landmark visibility × 1 / (1 + (residual / 2% of the person's
    size)²); the person's size is the diagonal of their landmarks' box."""
    vis = np.nan_to_num(pose_2d[..., 2]).mean(axis=1)
    xy = pose_2d[..., :2]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        size = np.linalg.norm(np.nanmax(xy, axis=1) - np.nanmin(xy, axis=1), axis=-1)
    ratio = np.nan_to_num(residual_px / np.where(size > 1, 0.02 * size, np.nan), nan=0.0)
    conf = vis / (1.0 + ratio ** 2)
    return np.where(valid, np.clip(conf, 0.0, 1.0), 0.0)


def per_frame(array: np.ndarray, fn) -> np.ndarray:
    """``fn(array)`` for a function of each frame's rows alone, computed a window of frames at a time: a long
    clip's array on disk (scratch.py) is read window by window, not all at once."""
    if len(array) == 0:
        return fn(array)
    return np.concatenate([fn(array[a:b]) for a, b in scratch.windows(len(array))])


def run(video: Path, out_dir: Path, options: CaptureOptions, progress: ProgressFn,
        cancelled: CancelledFn) -> CaptureResult:
    """One capture (see the module docstring). A long clip's whole-clip arrays live in a scratch folder under the
    cache while it runs (scratch.py), so an hour of video does not grow the engine's memory."""
    from .config import cache_dir

    with scratch.opened(cache_dir() / "scratch") as opened:
        result = _run(video, out_dir, options, progress, cancelled)
        if opened.bytes:
            log.info("%s: %.0f MB of whole-clip arrays went through the scratch folder (%.1f KB a frame)", video,
                     opened.bytes / 1e6, opened.bytes / 1e3 / max(1, result.frames))
        return result


def _run(video: Path, out_dir: Path, options: CaptureOptions, progress: ProgressFn,
         cancelled: CancelledFn) -> CaptureResult:
    from .anny_skeleton import load_skeleton

    started = time.perf_counter()
    info = probe(video, fps=options.fps)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RpcError(OUTPUT_NOT_WRITABLE, f"{out_dir}: cannot create the output folder ({exc})") from exc
    target_model = _target_model(options)   # a missing model file fails here, before any detection work
    phenotype = actor_phenotype(options)     # ... and so does an actor's height Anny cannot be
    motion_model = None
    if options.motion != "fit" and options.mode != "hands":   # ... and so does a missing or unreadable motion network
        from .motion_infer import MotionModel

        motion_model = MotionModel.load(options.motion_model)
    progress("decode", 0, max(1, info.frame_count), 0.0)

    people = detect_stage(video, info, options, progress, cancelled)
    body_seen = [per_frame(d.pose_2d, lambda p: np.isfinite(p[:, 0, 0])) for d in people]       # (T,) per person
    hands_seen = [per_frame(d.hands_2d, lambda h: np.isfinite(h[:, :, 0, 0]).any(axis=1)) for d in people]
    # Hands only when asked, or when a body+hands capture never saw a body but saw hands (a close-up).
    hands_only = options.mode == "hands" or (options.mode == "body+hands" and not any(b.any() for b in body_seen))
    valid = hands_seen if hands_only else body_seen
    kept = [p for p, v in enumerate(valid) if v.any()]
    if not kept:
        what = {"hands": "no hand", "body": "no person"}.get(options.mode, "no person and no hand")
        raise RpcError(NO_PERSON, f"{video}: {what} was detected in any of its {len(valid[0])} frames",
                       fix="check that someone is in the picture and the frame range covers them; for a close-up "
                           "of hands use the 'hands' mode")
    if hands_only:
        kept = kept[:1]   # hands without a body cannot be told apart by person

    skel = load_skeleton(phenotype)
    stem = take_stem(Path(video))
    if options.model in HAND_MODELS:
        return _fit_and_write_hands(video, info, options, people[kept[0]], skel, out_dir / stem, progress, cancelled,
                                    target_model, started, phenotype)
    names = [out_dir / (stem + TAKE_SUFFIX if rank == 0 else f"{stem}.person{rank + 1}{TAKE_SUFFIX}")
             for rank in range(len(kept))]
    written: list[CaptureResult] = []
    for rank, p in enumerate(kept):
        written.append(_fit_and_write(video, info, options, people[p], valid[p], hands_only, skel, names[rank],
                                      rank, names, progress, cancelled, target_model, motion_model, phenotype))
    main = written[0]
    return CaptureResult(take_path=main.take_path, sidecar_path=main.sidecar_path, frames=main.frames,
                         seconds=time.perf_counter() - started, stages=main.stages,
                         people=[w.take_path for w in written] if options.multi_person else [])


def _source_meta(video: Path, info: VideoInfo) -> dict:
    """The sidecar's ``source`` entry: the clip and what was read from it."""
    return {"path": str(Path(video).resolve()), "width": info.width, "height": info.height, "fps": info.fps,
            "frame_count": info.frame_count, "rotation": info.rotation, "kind": info.kind,
            "recorded_focal_px": info.focal_px, "recorded_focal_source": info.focal_source}


def _to_float32(det: Detections, names: tuple[str, ...]) -> None:
    """Replace these landmark arrays of ``det`` by their float32 copies (what the Take stores), freeing the float64
    ones: for a capture's own Detections, once its fit and world stages are past them."""
    for name in names:
        if not scratch.on_disk(getattr(det, name)):   # on disk it costs no memory; the Take converts as it writes
            setattr(det, name, getattr(det, name).astype(np.float32, copy=False))


def _stage_times(det: Detections, t_fit: float) -> dict:
    """Seconds and frames/s of the decode, detect and fit stages of one Take."""
    n = len(det.frame_ids)
    return {
        "decode": {"seconds": det.decode_seconds, "fps": n / det.decode_seconds if det.decode_seconds else None},
        "detect": {"seconds": det.detect_seconds, "fps": n / det.detect_seconds if det.detect_seconds else None,
                   "cached": det.detect_seconds == 0.0},
        "fit": {"seconds": t_fit, "fps": n / t_fit if t_fit else None},
    }


def _hands_world(video: Path, options: CaptureOptions, det: Detections, K: np.ndarray, progress: ProgressFn,
                 cancelled: CancelledFn) -> tuple[np.ndarray, dict | None]:
    """The hands' 3D shape the fit takes the fingers from: MediaPipe's world landmarks, or with ``hand_mesh="init"``
    the hand-mesh network's points where it ran (hand_mesh/stage.py; the clip is decoded again, streamed), and what
    the network did (for the sidecar)."""
    if options.hand_mesh != "init":
        return det.hands_world, None
    from .hand_mesh.stage import run_on_video

    mesh = run_on_video(video, det.frame_ids, det.hands_2d, options.hand_mesh_model, fps=options.fps,
                        progress=lambda i, n: progress("hand_mesh", i, n, 0.0), cancelled=cancelled, K=K)
    if cancelled():
        raise Cancelled("cancelled in the hand-mesh stage")
    info = {"crops": mesh.crops, "seconds": round(mesh.seconds, 3),
            "frames_per_hand": dict(zip(("left", "right"), mesh.ran.sum(axis=0).tolist()))}
    return np.where(mesh.ran[..., None, None], mesh.joints_m, det.hands_world), info


def _fit_and_write(video: Path, info: VideoInfo, options: CaptureOptions, det: Detections, valid: np.ndarray,
                   hands_only: bool, skel, take_path: Path, rank: int, all_takes: list[Path],
                   progress: ProgressFn, cancelled: CancelledFn, target_model=None,
                   motion_model=None, phenotype: np.ndarray | None = None) -> CaptureResult:
    """Fit one person's detections and write their Take (``motion_model``: the loaded motion network, when
    ``options.motion`` asks for it; ``phenotype``: the Anny body ``skel`` is of, None for the default one)."""
    from .fit import R_WORLD2CAM_LEVEL, FitSettings, fit_sequence, resolve_device
    from rigs.fk import bone_heads

    started = time.perf_counter()
    t0 = time.perf_counter()
    K = camera_intrinsics(info, options.focal_px)
    settings = FitSettings(smoothing=options.smoothing, device=resolve_device(options.device))
    count = len(all_takes)
    prior, body_start = None, None
    if options.motion == "prior" and not hands_only:   # the motion network's body as the fit's starting pose
        from .motion_stage import network_prior

        prior, body_start = network_prior(skel, det, (info.width, info.height), K, motion_model)
        if prior is not None and phenotype is not None:
            # The network places a body of Anny's default size: a body k times as tall stands k times as far
            # along the same line of sight to look the same.
            prior[1][:] = prior[1] * _size_ratio(skel)
    hands_world, hand_mesh_info = _hands_world(video, options, det, K, progress, cancelled)
    fit = fit_sequence(skel, det.pose_2d, det.pose_world, det.hands_2d, K, settings,
                       progress=lambda i, n: progress("fit", rank * n + i, count * n, 0.0), cancelled=cancelled,
                       hands_world=hands_world, hands_only=hands_only, prior=prior)
    del hands_world
    del prior
    t_fit = time.perf_counter() - t0
    if cancelled():
        raise Cancelled("cancelled after fit")
    # Long clips (README › Batch figures): each whole-clip float64 array is let go once nothing needs it in float64.
    # Past the fit only the Take reads these landmarks, and it stores them as float32.
    _to_float32(det, ("pose_world", "hands_2d", "hands_world"))

    t0 = time.perf_counter()
    progress("world", 0, 1, 0.0)
    confidence = np.concatenate([_confidence(det.pose_2d[a:b], fit.residual_px[a:b], valid[a:b])
                                 for a, b in scratch.windows(len(valid))]) if len(valid) else np.zeros(0)
    if options.motion == "network":   # the learned motion network's body and world (motion_stage.py)
        from .motion_stage import network_world

        world = network_world(skel, fit, det, (info.width, info.height), K, options, valid, hands_only,
                              motion_model, 1.0 if phenotype is None else _size_ratio(skel))
    else:
        world = _world_stage(skel, fit, det, valid, hands_only, options, K, confidence)
        if body_start is not None:
            world.info["fit_start"] = body_start
    _to_float32(det, ("pose_2d",))
    root_world, R_w2c, t_w2c = world.root_position_world, world.R_world2cam, world.t_world2cam
    bone_fitted, residual_px = fit.bone_fitted, fit.residual_px
    del fit   # its rotations are the world's now (`_world_stage`)
    t_world = time.perf_counter() - t0
    progress("world", 1, 1, 0.0)
    t0 = time.perf_counter()
    progress("write", 0, 1, 0.0)
    # Anny's joints go into the Take as float32 as they are posed; a target model's transfer fits them in float64.
    n = len(det.frame_ids)
    joints = bone_heads(skel.rest, skel.parents, world.local_rotations_aa, root_world,   # (T, J, 3)
                        out=scratch.empty((n, len(skel.names), 3), np.float32 if target_model is None else np.float64),
                        after_chunk=scratch.trim)
    # The Take's skeleton: Anny's own, or the user's model carried over from the Anny fit (joints fitted to the
    # corresponding Anny points; one shape for the take).
    out_names, out_parents, out_rest, out_lengths = skel.names, skel.parents, skel.rest, skel.lengths
    local, fitted = world.local_rotations_aa, bone_fitted
    from .anny_skeleton import ANNY_PHENOTYPE, DEFAULT_PHENOTYPE

    shape = DEFAULT_PHENOTYPE if phenotype is None else np.asarray(phenotype)   # the fitted body's phenotype
    model_pose = local
    extra: dict[str, np.ndarray] = {}
    extra_stages: dict[str, dict] = {}
    model_meta: dict = {"name": "anny", "convention": "bone-local", "shape_names": list(ANNY_PHENOTYPE)}
    if target_model is not None:
        from .body_models import anny_point, transfer_from_anny

        progress("transfer", 0, 1, 0.0)
        t_transfer = time.perf_counter()
        moved = transfer_from_anny(target_model, skel.names, joints)
        tsk = moved.skeleton
        out_names, out_parents, out_rest, out_lengths = tsk.names, tsk.parents, tsk.rest, tsk.lengths
        local, root_world, joints, shape, model_pose = (moved.local_aa, moved.root_world, moved.joints,
                                                         moved.shape, moved.model_pose)
        anny_bone = [skel.names.index(p) if p != "mid-hips" else 0 for p in map(anny_point, tsk.names)]
        fitted = bone_fitted[:, anny_bone]
        extra["model_transfer_error_mm"] = moved.error_mm.astype(np.float32)
        model_meta = {"name": target_model.name, "convention": tsk.convention, "file": str(target_model.path),
                      "shape_names": list(target_model.shape_names),
                      "transfer": {"from": "anny", "mean_error_mm": float(np.mean(moved.error_mm[valid]))
                                   if valid.any() else None}}
        t_transfer = time.perf_counter() - t_transfer
        extra_stages["transfer"] = {"seconds": t_transfer, "fps": len(det.frame_ids) / t_transfer}
        progress("transfer", 1, 1, 0.0)
        t0 = time.perf_counter()   # the write stage's time starts after the transfer
    root_cam = np.einsum("tij,tj->ti", R_w2c, root_world) + t_w2c
    # Whole-clip arrays go into the Take as float32 a block of frames at a time (`take.Stored`): no float32 copy of
    # a long clip's in memory. Anny's model pose is its bone-local rotations.
    f32 = lambda a: Stored(a, np.dtype(np.float32))  # noqa: E731
    arrays = dict(
        frame_ids=det.frame_ids, timestamps=det.timestamps, fps=np.float64(info.fps),
        image_size=np.array([info.width, info.height], dtype=np.int64), K=K,
        R_world2cam=R_w2c, t_world2cam=t_w2c,
        bone_names=np.array(out_names), bone_parents=np.asarray(out_parents).astype(np.int32),
        rest_matrices=out_rest.astype(np.float32), bone_lengths=out_lengths.astype(np.float32),
        local_rotations_aa=f32(local),
        root_position_world=root_world.astype(np.float32), joints_world=f32(joints),
        bone_fitted=fitted, valid=valid, fit_residual_px=residual_px.astype(np.float32),
        shape=np.asarray(shape, dtype=np.float32), model_pose_aa=f32(model_pose),
        root_position_camera=root_cam.astype(np.float32),
        fit_confidence=confidence.astype(np.float32), **extra,
        foot_contact=world.foot_contact.astype(np.float32),
        pose_landmarks_2d=f32(det.pose_2d), pose_landmarks_world=f32(det.pose_world),
        hand_landmarks_2d=f32(det.hands_2d), hand_landmarks_world=f32(det.hands_world),
        hand_score=f32(det.hand_score), hand_source=Stored(det.hand_source, np.dtype(np.int8)),
    )
    stages = {**_stage_times(det, t_fit), "world": {"seconds": t_world, "fps": n / t_world if t_world else None},
              **extra_stages}
    meta = {
        "source": _source_meta(video, info),
        "model": model_meta["name"], "model_info": model_meta, "engine_version": __version__, "options": dataclasses.asdict(options),
        "camera": _camera_words(world.info, options, info),
        "world": dict(world.info),
        "detected_frames": int(valid.sum()),
        "hands_detected_frames": dict(zip(("left", "right"), per_frame(
            det.hands_2d, lambda h: np.isfinite(h[:, :, 0, 0])).sum(axis=0).tolist())),
        "hands_only": bool(hands_only),
        "detection": dict(det.counts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if hand_mesh_info is not None:
        meta["hand_mesh"] = hand_mesh_info
    if options.multi_person:
        meta["person"] = {"index": rank, "of": len(all_takes), "takes": [p.name for p in all_takes]}
    meta["stages"] = dict(stages)  # the sidecar cannot time its own writing; the result below does
    if target_model is None:   # Anny: its skinned mesh for the add-on's preview, written before the sidecar
        _add_mesh(meta, take_path, list(out_names), phenotype)
    write_take(take_path, arrays, meta, after_block=scratch.trim)
    stages["write"] = {"seconds": time.perf_counter() - t0, "fps": None}
    progress("write", 1, 1, 0.0)
    return CaptureResult(take_path=take_path, sidecar_path=sidecar_path(take_path), frames=n,
                         seconds=time.perf_counter() - started, stages=stages)


def _add_mesh(meta: dict, take_path: Path, bone_names: list[str], phenotype: np.ndarray | None = None) -> None:
    """Write the Take's mesh sidecar (``anny_mesh.write_take_mesh``) and name it in ``meta["mesh"]``. The mesh is
    only a preview: if it cannot be written the Take is written without it (logged)."""
    from .anny_mesh import write_take_mesh

    try:
        entry = write_take_mesh(take_path, bone_names, phenotype)
    except Exception as exc:  # a damaged Anny cache, a full disk: the Take itself matters more
        log.warning("%s: the preview mesh was not written (%s); the Take has no mesh", take_path, exc)
        return
    if entry is not None:
        meta["mesh"] = entry


def hand_take_path(out_stem: Path, side: str) -> Path:
    """``DIR/<clip>.left_hand.take.npz`` / ``.right_hand.take.npz``: a hand model's Take of one hand."""
    return out_stem.with_name(f"{out_stem.name}.{side}_hand{TAKE_SUFFIX}")


def _fit_and_write_hands(video: Path, info: VideoInfo, options: CaptureOptions, det: Detections, skel,
                         out_stem: Path, progress: ProgressFn, cancelled: CancelledFn, models: dict,
                         started: float, phenotype: np.ndarray | None = None) -> CaptureResult:
    """Hands mode with a hand model: each hand fitted where it is in the picture (``fit.fit_hands_in_camera``) and
    written as its own Take of the hand model (Anny's hand, or MANO carried over from it), the hand seen most first.

    World: level camera, the origin at the median place of the wrists (so both hands' Takes share it and keep their
    places relative to each other and to the camera)."""
    from rigs.fk import forward_kinematics
    from rigs.rotations import matrix_to_aa

    from .body_models import anny_point, hand_bones, transfer_from_anny
    from .fit import R_WORLD2CAM_LEVEL, FitSettings, fit_hands_in_camera, resolve_device

    t0 = time.perf_counter()
    K = camera_intrinsics(info, options.focal_px)
    settings = FitSettings(smoothing=options.smoothing, device=resolve_device(options.device))
    hands_world, hand_mesh_info = _hands_world(video, options, det, K, progress, cancelled)
    fits = fit_hands_in_camera(skel, det.hands_2d, hands_world, K, settings,
                               progress=lambda i, n: progress("fit", i, n, 0.0), cancelled=cancelled)
    del hands_world
    t_fit = time.perf_counter() - t0
    if cancelled():
        raise Cancelled("cancelled after fit")
    sides = sorted((f for f in fits if f is not None), key=lambda f: -int(f.seen.sum()))
    if not sides:
        raise RpcError(NO_PERSON, f"{video}: no hand was detected in any of its {len(det.frame_ids)} frames",
                       fix="check that the hands are in the picture and the frame range covers them")
    names = {f.side: hand_take_path(out_stem, ("left", "right")[f.side]) for f in sides}
    posed = {f.side: forward_kinematics(skel.rest, skel.parents, f.local_rotations_aa, f.root_position_world)
             for f in sides}                                                    # (T,J,4,4) each, camera world
    wrists = np.concatenate([posed[f.side][f.seen, skel.index("wrist." + "LR"[f.side]), :3, 3] for f in sides])
    shift = np.median(wrists, axis=0)
    n = len(det.frame_ids)
    R_w2c = np.broadcast_to(R_WORLD2CAM_LEVEL, (n, 3, 3)).copy()
    t_w2c = np.broadcast_to(R_WORLD2CAM_LEVEL @ shift, (n, 3)).copy()
    written = []
    for f in sides:
        side = ("left", "right")[f.side]
        model = models[side]
        t_model = time.perf_counter()
        keep = hand_bones(skel.names, skel.parents, side)
        W = posed[f.side]
        sub_names = [skel.names[j] for j in keep]
        remap = {int(j): k for k, j in enumerate(keep)}
        sub_parents = np.array([remap.get(int(skel.parents[j]), -1) for j in keep], dtype=np.int32)
        sub_rest, sub_lengths = skel.rest[keep], skel.lengths[keep]
        local = f.local_rotations_aa[:, keep].copy()
        local[:, 0] = matrix_to_aa(np.swapaxes(sub_rest[0, :3, :3], 0, 1) @ W[:, keep[0], :3, :3])  # now a root
        root_world = W[:, keep[0], :3, 3] - shift
        joints = W[:, keep][..., :3, 3] - shift
        fitted = np.repeat(f.seen[:, None], len(keep), axis=1)
        anny_hand = not model.name.startswith("mano")
        shape = np.asarray(phenotype if anny_hand and phenotype is not None else model.default_shape, np.float64)
        model_pose, extra = local, {}
        model_meta = {"name": model.name, "convention": "bone-local", "shape_names": list(model.shape_names)}
        if model.name.startswith("mano"):
            moved = transfer_from_anny(model, sub_names, joints)
            tsk = moved.skeleton
            sub_names, sub_parents, sub_rest, sub_lengths = tsk.names, tsk.parents, tsk.rest, tsk.lengths
            local, root_world, joints, shape, model_pose = (moved.local_aa, moved.root_world, moved.joints,
                                                             moved.shape, moved.model_pose)
            fitted = fitted[:, [[skel.names[j] for j in keep].index(anny_point(name)) for name in tsk.names]]
            extra["model_transfer_error_mm"] = moved.error_mm.astype(np.float32)
            model_meta = {"name": model.name, "convention": tsk.convention, "file": str(model.path),
                          "shape_names": list(model.shape_names),
                          "transfer": {"from": "anny_hand", "mean_error_mm": float(np.mean(moved.error_mm[f.seen]))}}
        t_model = time.perf_counter() - t_model
        root_cam = np.einsum("tij,tj->ti", R_w2c, root_world) + t_w2c
        hand = det.hands_2d[:, f.side]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            box = np.linalg.norm(np.nanmax(hand[..., :2], axis=1) - np.nanmin(hand[..., :2], axis=1), axis=-1)
        ratio = np.nan_to_num(f.residual_px / np.where(box > 1, 0.02 * box, np.nan), nan=0.0)
        confidence = np.where(f.seen, np.clip(np.nan_to_num(det.hand_score[:, f.side]), 0, 1) / (1 + ratio ** 2), 0)
        arrays = dict(
            frame_ids=det.frame_ids, timestamps=det.timestamps, fps=np.float64(info.fps),
            image_size=np.array([info.width, info.height], dtype=np.int64), K=K,
            R_world2cam=R_w2c, t_world2cam=t_w2c,
            bone_names=np.array(sub_names), bone_parents=np.asarray(sub_parents).astype(np.int32),
            rest_matrices=np.asarray(sub_rest).astype(np.float32), bone_lengths=np.asarray(sub_lengths, np.float32),
            local_rotations_aa=local.astype(np.float32), root_position_world=root_world.astype(np.float32),
            joints_world=joints.astype(np.float32), bone_fitted=fitted, valid=f.seen,
            fit_residual_px=f.residual_px.astype(np.float32), shape=shape.astype(np.float32),
            model_pose_aa=np.asarray(model_pose, dtype=np.float32), root_position_camera=root_cam.astype(np.float32),
            fit_confidence=confidence.astype(np.float32), **extra,
            pose_landmarks_2d=det.pose_2d.astype(np.float32), pose_landmarks_world=det.pose_world.astype(np.float32),
            hand_landmarks_2d=det.hands_2d.astype(np.float32),
            hand_landmarks_world=det.hands_world.astype(np.float32), hand_score=det.hand_score.astype(np.float32),
            hand_source=det.hand_source.astype(np.int8))
        stages = _stage_times(det, t_fit)
        if model.name.startswith("mano"):
            stages["transfer"] = {"seconds": t_model, "fps": n / t_model if t_model else None}
        meta = {
            "source": _source_meta(video, info),
            "model": model.name, "model_info": model_meta, "engine_version": __version__,
            "options": dataclasses.asdict(options),
            "camera": "static, level, " + focal_words(info, options.focal_px),
            "detected_frames": int(f.seen.sum()),
            "hands_detected_frames": {"left": int(np.isfinite(det.hands_2d[:, 0, 0, 0]).sum()),
                                      "right": int(np.isfinite(det.hands_2d[:, 1, 0, 0]).sum())},
            "hands_only": True,
            "hand": {"side": side, "takes": [names[g.side].name for g in sides]},
            "detection": dict(det.counts), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": dict(stages),
        }
        if hand_mesh_info is not None:
            meta["hand_mesh"] = hand_mesh_info
        t_write = time.perf_counter()
        progress("write", len(written), len(sides), 0.0)
        if not model.name.startswith("mano"):   # Anny's hand: that hand's part of Anny's mesh
            _add_mesh(meta, names[f.side], list(sub_names), phenotype)
        write_take(names[f.side], arrays, meta)
        stages["write"] = {"seconds": time.perf_counter() - t_write, "fps": None}
        written.append(CaptureResult(take_path=names[f.side], sidecar_path=sidecar_path(names[f.side]), frames=n,
                                     seconds=0.0, stages=stages))
    progress("write", len(sides), len(sides), 0.0)
    main = written[0]
    return CaptureResult(take_path=main.take_path, sidecar_path=main.sidecar_path, frames=n,
                         seconds=time.perf_counter() - started, stages=main.stages,
                         hands=[w.take_path for w in written])
