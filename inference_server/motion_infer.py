"""Inference adapter of the learned motion network (:mod:`.motion_net`, trained by :mod:`.motion_train`): a clip's
MediaPipe body landmarks → Anny body motion in a world, the camera, foot contacts. ONNX Runtime (CUDA provider when
it is installed and a GPU is present, else CPU); numpy for everything around it; no torch, no bpy.

    model = MotionModel.load("motion_net.onnx")            # or the training run's folder
    result = model.predict(pose_2d, image_size, K, R_cam_from_cam0, timestamps)

Conventions (DESIGN §2, take.py, world.py): metres, seconds; world Z up, floor z = 0, the subject's root above the
origin on frame 0, the first frame's camera looking along +Y (world.py's level camera); OpenCV camera axes,
``p_cam = R_world2cam p_world + t_world2cam``; local rotations in each bone's rest axes (Blender's matrix_basis).

Steps of :meth:`MotionModel.predict`
------------------------------------
1. **Observation** (:func:`observe`, as the training windows are made, motion_data._observe): a landmark is seen
   where it is finite, its visibility ≥ :data:`VISIBILITY_MIN`, it lies inside the picture and Anny has it (the
   network was trained on Anny's 21 body markers; the other 12 MediaPipe points are zeroed); the box is the square
   around the seen points (motion_data_camera.boxes_from_keypoints), the keypoints are normalised to it.
2. **Frame rate.** The network learnt 30 fps motion (speed-augmented 0.8-1.25×). A clip at k × 30 fps (k =
   round(fps / 30) ≥ 2) runs as k interleaved sequences (frames r, r + k, …), batched, and the outputs interleave
   back: every frame gets a prediction at the rate the network knows.
3. **Camera.** The camera's angular velocity comes from ``R_cam_from_cam0`` and the timestamps (a still camera
   without it). The network gives the root's rotation in the camera ``Γ_t`` and in its yaw-canonical world ``G_t``;
   the camera of frame 0 is their chordal mean ``R_0 = polar(Σ_t w_t R_rel(t)ᵀ Γ_t G_tᵀ)`` (w: frame confidence),
   turned about Z so that it looks along +Y; then ``R_world2cam(t) = R_rel(t) R_0`` and the root's world rotation
   is ``R_world2cam(t)ᵀ Γ_t`` (so the body lines up with the picture).
4. **Trajectory** (WHAM's contact-aware refinement): the heading-frame root velocity turns into the world by the
   heading of that rotation; where a sole point is in contact (probability > 0.5) the root velocity loses that
   point's residual velocity (``v ← v − mean_k c_k (v + ḋ_k) / mean_k c_k`` over the planted points, ḋ the point's
   velocity relative to the root, from the posed skeleton) — the planted foot does not slide — horizontally; the
   path is integrated (trapezoid over the real timestamps) from the origin. Height: the integrated vertical
   velocity, corrected on contact frames so that the planted points are on the floor (z = 0) and interpolated
   between them.
5. **Camera translation**: ``t_world2cam(t) = p_cam(t) − R_world2cam(t) x(t)`` with ``p_cam`` the network's root
   position in the camera — per frame (a camera that moves with the body, exact overlay) or, by default for a
   clip without camera rotations, one fixed camera centre (the confidence-weighted mean).

``confidence`` per frame: the fraction of Anny's 21 landmarks seen (0 where the person is not detected).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import motion_data_camera as cams
from .protocol import MODEL_MISSING, RpcError

if TYPE_CHECKING:
    from .anny_skeleton import Skeleton

MODEL_FILE = "motion_net.onnx"
MODEL_ENV = "REEL2RIG_MOTION_MODEL"
VISIBILITY_MIN = 0.5          # world.UNSEEN_VISIBILITY: a landmark less visible than this is not seen
CONTACT_MIN = 0.5
METADATA_KEY = "reel2rig_motion"
STATE_INPUTS = ("h_enc", "h_traj", "h_dec")              # motion_net.STATE_INPUTS / STATE_OUTPUTS (no torch here)
STATE_OUTPUTS = ("h_enc_out", "h_traj_out", "h_dec_out")
CHUNK = 2048                  # the network's steps per run (memory for its activations, not a limit on the clip)
TRAIN_FIX = ("train one with `python -m inference_server.motion_train --out DIR` (about 40 minutes on a CPU) and "
             f"pass DIR/{MODEL_FILE}, or set ${MODEL_ENV} to it")


class MotionModelError(RpcError):
    """The motion network's file is missing or unreadable; the message names the file, ``fix`` says what to do."""

    def __init__(self, message: str, fix: str = TRAIN_FIX):
        super().__init__(MODEL_MISSING, message, fix=fix)

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}"


SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / MODEL_FILE   # the network the engine ships with


def default_model_path() -> Path:
    """``$REEL2RIG_MOTION_MODEL``, else the network shipped with the engine (``inference_server/weights/``)."""
    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else SHIPPED_MODEL


@dataclasses.dataclass(frozen=True)
class MotionResult:
    """What :meth:`MotionModel.predict` returns (T frames, J Anny bones; module docstring for the conventions)."""
    bone_names: tuple[str, ...]        # (J,) Anny's bones, the Take's order
    local_rotations_aa: np.ndarray     # (T, J, 3) float32; body bones from the network, every other bone at rest
    root_position_world: np.ndarray    # (T, 3) m
    root_orientation_world_aa: np.ndarray  # (T, 3) the body's world rotation relative to its rest (facing −Y)
    root_position_camera: np.ndarray   # (T, 3) m, camera axes (the network's)
    R_world2cam: np.ndarray            # (T, 3, 3)
    t_world2cam: np.ndarray            # (T, 3) m
    foot_contact: np.ndarray           # (T, 4) probabilities [heel.L, toe.L, heel.R, toe.R]
    confidence: np.ndarray             # (T,) in [0, 1]
    frame_stride: int                  # k of step 2 (1 at about 30 fps)


def observe(pose_2d: np.ndarray, image_size: tuple[int, int], present: np.ndarray, before: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe landmarks (T, 33, 3) px + visibility (NaN where unseen) → (kp2d (T, 33, 3), box (T, 3), mask (T,)
    bool, seen (T, 33) bool), normalised exactly as the training windows (module docstring, step 1). ``before``: the
    box (px) of the last detected frame before these (a window of a longer clip), for the frames before this
    window's first detection."""
    kp2d, b, ok, seen, _ = _observe(pose_2d, image_size, present, before)
    return kp2d, b, ok, seen


def _observe(pose_2d, image_size, present, before=None):
    """:func:`observe` and the boxes in pixels."""
    p = np.asarray(pose_2d, dtype=np.float64)
    w, h = image_size
    xy = p[..., :2]
    vis = p[..., 2]
    finite = np.all(np.isfinite(xy), axis=-1)
    xy0 = np.where(finite[..., None], xy, 0.0)
    inside = (xy0[..., 0] >= 0) & (xy0[..., 0] < w) & (xy0[..., 1] >= 0) & (xy0[..., 1] < h)
    seen = finite & inside & np.where(np.isnan(vis), True, np.nan_to_num(vis) >= VISIBILITY_MIN) & present[None]
    boxes, ok = cams.boxes_from_keypoints(xy0, seen)
    if before is not None:
        first = int(np.argmax(ok)) if ok.any() else len(ok)
        boxes[:first] = before                                   # the nearest detected frame is in an earlier window
    elif not ok.any():
        boxes = np.tile([0.5 * w, 0.5 * h, float(max(w, h))], (len(p), 1))
    k, b = cams.normalize_keypoints(xy0, boxes, image_size)
    kp2d = np.concatenate([np.where(seen[..., None], k, 0.0), seen[..., None]], axis=-1)
    return kp2d.astype(np.float32), b.astype(np.float32), ok, seen, boxes


def angular_velocity(R_cam_from_cam0: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """(T, 3, 3), (T,) s → (T, 3) rad/s, camera axes: axis-angle of R[t] R[t−1]ᵀ over the frame's interval (frame
    0 repeats frame 1) — motion_data_camera.angular_velocity with real timestamps."""
    from rigs.rotations import matrix_to_aa

    R = np.asarray(R_cam_from_cam0, dtype=np.float64)
    if len(R) < 2:
        return np.zeros((len(R), 3))
    dt = np.maximum(np.diff(np.asarray(timestamps, dtype=np.float64)), 1e-4)
    w = matrix_to_aa(R[1:] @ np.swapaxes(R[:-1], -1, -2)) / dt[:, None]
    return np.concatenate([w[:1], w], axis=0)


def _polar(M: np.ndarray) -> np.ndarray:
    """The rotation nearest to a 3×3 matrix."""
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    return U @ D @ Vt


def _rate(x: np.ndarray, t: np.ndarray, a: int = 0, b: int | None = None) -> np.ndarray:
    """d/dt of (T, ...) over timestamps t (T,) by central differences (one-sided at the clip's ends), for rows
    a..b (default all); reads rows a − 1 .. b only (``x`` may be a memory map)."""
    n = len(x)
    b = n if b is None else b
    if n < 2:
        return np.zeros((b - a,) + x.shape[1:], dtype=np.float64)
    lo, hi = max(a - 1, 0), min(b + 1, n)
    xs = np.asarray(x[lo:hi], dtype=np.float64)
    i = np.arange(a, b)
    before = np.maximum(i - 1, 0)
    after = np.minimum(i + 1, n - 1)
    dt = np.maximum(t[after] - t[before], 1e-6).reshape((-1,) + (1,) * (x.ndim - 1))
    return (xs[after - lo] - xs[before - lo]) / dt


def integrate(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Positions from velocities (T, D) over timestamps (T,), trapezoid, starting at 0."""
    steps = 0.5 * (v[1:] + v[:-1]) * np.diff(t)[:, None]
    return np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(steps, axis=0)])


def refine_trajectory(v_world: np.ndarray, soles_rel: np.ndarray, contact: np.ndarray, t: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """WHAM's contact-aware refinement and integration (module docstring, step 4): root velocity (T, 3) world,
    sole points relative to the root (T, 4, 3) world axes, contact probabilities (T, 4), timestamps (T,) →
    (root path (T, 3) with x₀ = y₀ = 0 and planted points on z = 0, refined velocity (T, 3))."""
    v = np.array(v_world, dtype=np.float64)
    path = np.empty_like(v)
    _refine_into(v, np.asarray(soles_rel), np.asarray(contact), np.asarray(t, dtype=np.float64), path, len(v))
    return path, v


def _refine_into(v: np.ndarray, soles_rel: np.ndarray, contact: np.ndarray, t: np.ndarray, path: np.ndarray,
                 window: int) -> None:
    """:func:`refine_trajectory` a window of frames at a time: ``v`` (T, 3) is refined in place, the path written
    into ``path`` (T, 3); both may be memory maps (the scratch folder)."""
    from . import scratch

    n = len(v)
    on_frames: list[np.ndarray] = []
    lift: list[np.ndarray] = []
    last_v = last_p = None
    for a, b in scratch.windows(n, window):
        c = np.asarray(contact[a:b], dtype=np.float64)
        s = np.asarray(soles_rel[a:b], dtype=np.float64)
        planted = c > CONTACT_MIN                                                    # (w, 4)
        w = np.where(planted, c, 0.0)
        wsum = w.sum(axis=1)
        foot_v = np.asarray(v[a:b])[:, None, :] + _rate(soles_rel, t, a, b)          # each point's world velocity
        residual = np.einsum("tk,tki->ti", w, foot_v) / np.maximum(wsum, 1e-9)[:, None]
        vw = np.array(v[a:b], dtype=np.float64)
        on = wsum > 0
        vw[on, :2] -= residual[on, :2]
        v[a:b] = vw
        # trapezoid, carried over from the window before
        prev_v = vw[:1] if last_v is None else last_v[None]
        prev_t = t[a:a + 1] if a == 0 else t[a - 1:a]
        steps = 0.5 * (vw + np.concatenate([prev_v, vw[:-1]])) * np.diff(np.concatenate([prev_t, t[a:b]]))[:, None]
        p = np.cumsum(steps, axis=0) + (0.0 if last_p is None else last_p)
        path[a:b] = p
        last_v, last_p = vw[-1], p[-1]
        # Height: planted points on the floor (the root z that plants them, less the integrated z there)
        target = -np.einsum("tk,tk->t", w, s[..., 2]) / np.maximum(wsum, 1e-9)
        on_frames.append(np.flatnonzero(on) + a)
        lift.append(target[on] - p[on, 2])
    on_idx = np.concatenate(on_frames) if on_frames else np.zeros(0, int)
    if len(on_idx):
        values = np.concatenate(lift)
        for a, b in scratch.windows(n, window):
            path[a:b, 2] += np.interp(t[a:b], t[on_idx], values)
        return
    lowest = scratch.empty((n,))                                                     # no contact anywhere
    for a, b in scratch.windows(n, window):
        lowest[a:b] = path[a:b, 2] + np.asarray(soles_rel[a:b, :, 2]).min(axis=1)
    correction = -float(np.percentile(lowest, 5.0)) if n else 0.0
    for a, b in scratch.windows(n, window):
        path[a:b, 2] += correction


class MotionModel:
    """The ONNX motion network and what its metadata says (bones, landmarks, frame rate); :meth:`predict`."""

    def __init__(self, path: Path, session: Any, meta: dict[str, Any], skel: "Skeleton | None" = None):
        self.path = path
        self.session = session
        self.meta = meta
        self.bone_names: tuple[str, ...] = tuple(meta["bone_names"])
        self.present = np.asarray(meta["joints_present"], dtype=bool)
        self.fps = float(meta["fps"])
        self.root_rest_R = np.asarray(meta.get("root_rest_R", np.eye(3)), dtype=np.float64)
        self._skel = skel
        self.chunk = CHUNK

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, skel: "Skeleton | None" = None,
             providers: list[str] | None = None) -> "MotionModel":
        """The network from ``path`` (a ``motion_net.onnx`` file or a training run's folder; default
        :func:`default_model_path`). Raises :class:`MotionModelError` naming the file when it is missing or
        unreadable."""
        p = Path(path) if path is not None else default_model_path()
        if p.is_dir():
            p = p / MODEL_FILE
        if p.suffix == ".pt":
            raise MotionModelError(f"{p} is the training checkpoint, not the network the engine runs",
                                   fix=f"pass the {MODEL_FILE} written beside it")
        if not p.is_file():
            if p == SHIPPED_MODEL:
                raise MotionModelError(f"the engine's motion network is missing: {p}",
                                       fix="restore it (`git checkout inference_server/weights`) or reinstall "
                                           "Reel2Rig; or capture with --motion fit; or " + TRAIN_FIX)
            raise MotionModelError(f"motion network not found: {p}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MotionModelError(f"onnxruntime is not installed in the engine's Python ({exc}); cannot run {p}",
                                   fix="run `./reel2rig setup` to install the engine's packages") from exc
        if providers is None:
            available = ort.get_available_providers()
            providers = [q for q in ("CUDAExecutionProvider", "CPUExecutionProvider") if q in available]
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            session = ort.InferenceSession(str(p), sess_options=opts, providers=providers)
            meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except Exception as exc:  # noqa: BLE001 — any failure to read it is the same error for the user
            raise MotionModelError(f"cannot read the motion network {p} ({type(exc).__name__}: {exc})",
                                   fix="export or train it again with `python -m inference_server.motion_train`"
                                   ) from exc
        inputs = {i.name for i in session.get_inputs()}
        if not set(STATE_INPUTS) <= inputs:
            raise MotionModelError(f"{p} is an earlier export of the motion network, without the GRU states that let "
                                   "a long clip run a window at a time",
                                   fix="export it again from its training run: `python -m "
                                       "inference_server.motion_train --export RUN_FOLDER`")
        return cls(p, session, meta, skel)

    @property
    def skeleton(self) -> "Skeleton":
        if self._skel is None:
            from .anny_skeleton import load_skeleton

            self._skel = load_skeleton()
        missing = [n for n in self.bone_names if n not in self._skel.names]
        if missing:
            raise MotionModelError(f"{self.path} was trained for bones {missing} that this Anny skeleton lacks",
                                   fix="train the network again against the installed Anny")
        return self._skel

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    # -----------------------------------------------------------------------------------------------------------

    def zero_state(self, n: int) -> tuple[np.ndarray, ...]:
        """The GRUs' states at a clip's start for ``n`` sequences (zeros; shapes from the ONNX inputs)."""
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        return tuple(np.zeros((shapes[k][0], n, shapes[k][2]), np.float32) for k in STATE_INPUTS)

    def run(self, kp2d: np.ndarray, box: np.ndarray, cam_angvel: np.ndarray, mask: np.ndarray,
            cam_intrinsics: np.ndarray, state: tuple[np.ndarray, ...] | None = None
            ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
        """The network on N sequences of 1 + T frames — the lead frame (the frame before these T, or the first
        frame itself at a clip's start), then the T frames (inputs as :class:`.motion_net.MotionNet`'s, ``mask``
        float) — from the GRUs' ``state`` (default :meth:`zero_state`) → (the T frames' outputs by name
        (:data:`.motion_net.ONNX_OUTPUTS`), the state after them)."""
        if state is None:
            state = self.zero_state(len(kp2d))
        feeds = {"kp2d": kp2d, "box": box, "cam_angvel": cam_angvel, "mask": mask, "cam_intrinsics": cam_intrinsics,
                 **dict(zip(STATE_INPUTS, state))}
        names = [o.name for o in self.session.get_outputs()]
        outs = dict(zip(names, self.session.run(names, {k: np.ascontiguousarray(v, dtype=np.float32)
                                                        for k, v in feeds.items()})))
        return {k: v for k, v in outs.items() if k not in STATE_OUTPUTS}, tuple(outs[k] for k in STATE_OUTPUTS)

    def predict(self, pose_2d: np.ndarray, image_size: tuple[int, int], K: np.ndarray,
                R_cam_from_cam0: np.ndarray | None, timestamps: np.ndarray,
                fixed_camera_centre: bool | None = None) -> MotionResult:
        """A clip's body landmarks → :class:`MotionResult` (module docstring).

        pose_2d (T, 33, 3): MediaPipe pose landmarks, x, y px and visibility, NaN where unseen; image_size (W, H) px;
        K (3, 3) px; R_cam_from_cam0 (T, 3, 3) the camera's rotation from frame 0's axes (camera_motion), or None
        for a still camera; timestamps (T,) s. ``fixed_camera_centre``: one camera centre for the clip (default:
        when ``R_cam_from_cam0`` is None) instead of a per-frame translation.

        Memory stays flat with the clip's length: the network runs :attr:`chunk` steps at a time, its GRU states
        carried over (the same result as all at once), and every per-frame array is made with
        :func:`.scratch.empty` (on disk for a long clip while a capture's scratch folder is open) and filled a
        window of frames at a time; ``pose_2d`` and ``R_cam_from_cam0`` may be memory maps, read a window at a
        time."""
        from rigs.fk import forward_kinematics
        from rigs.rotations import matrix_to_aa

        from . import motion_data_augment as aug
        from . import motion_data_mocap as mocap
        from . import scratch

        n = len(pose_2d)
        if tuple(pose_2d.shape[1:]) != (33, 3):
            raise ValueError(f"pose_2d must be (T, 33, 3), got {pose_2d.shape}")
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.shape != (n,):
            raise ValueError(f"timestamps must be ({n},), got {ts.shape}")
        size = (int(image_size[0]), int(image_size[1]))
        if fixed_camera_centre is None:
            fixed_camera_centre = R_cam_from_cam0 is None

        def R_rel(a: int, b: int) -> np.ndarray:
            if R_cam_from_cam0 is None:
                return np.broadcast_to(np.eye(3), (b - a, 3, 3))
            return np.asarray(R_cam_from_cam0[a:b], dtype=np.float64)

        # 1-2. observations, interleaved sequences at about the network's frame rate, a chunk at a time
        dt = float(np.median(np.diff(ts))) if n > 1 else 1.0 / self.fps
        stride = max(1, int(round(1.0 / max(dt, 1e-6) / self.fps)))
        length = -(-n // stride)
        intr = cams.intrinsics_features(np.asarray(K, dtype=np.float64), size).astype(np.float32)
        first_box = None                                           # the first detected frame's box (px), if any
        for a, b in scratch.windows(n):
            _, _, ok, _, boxes = _observe(pose_2d[a:b], size, self.present)
            if ok.any():
                first_box = boxes[int(np.argmax(ok))]
                break
        names = ("pose_rotmat", "root_cam_rotmat", "root_world_rotmat", "root_vel", "root_cam_pos", "contact")
        raw: dict[str, np.ndarray] = {}
        confidence = scratch.empty((n,), np.float32)
        present_count = max(int(self.present.sum()), 1)
        M = {True: np.zeros((3, 3)), False: np.zeros((3, 3))}     # Σ R_relᵀ Γ Gᵀ, confidence- and equally weighted
        state = self.zero_state(stride)
        lead = None                                                # the last frame of each sequence so far
        carry = first_box
        for c0 in range(0, length, self.chunk):
            c1 = min(c0 + self.chunk, length)
            a, b = c0 * stride, min(c1 * stride, n)
            kp2d, box, ok, seen, boxes = _observe(pose_2d[a:b], size, self.present, carry)
            if ok.any():
                carry = boxes[np.flatnonzero(ok)[-1]]
            conf = np.where(ok, seen.sum(axis=1) / present_count, 0.0)
            confidence[a:b] = conf
            steps = c1 - c0
            feeds = {"kp2d": np.zeros((stride, steps + 1, 33, 3), np.float32),
                     "box": np.zeros((stride, steps + 1, 3), np.float32),
                     "cam_angvel": np.zeros((stride, steps + 1, 3), np.float32),
                     "mask": np.zeros((stride, steps + 1), np.float32),
                     "cam_intrinsics": np.broadcast_to(intr, (stride, steps + 1, 3)).copy()}
            for r in range(stride):
                idx = np.arange(a + r, b, stride) - a
                m = len(idx)
                feeds["kp2d"][r, 1:m + 1] = kp2d[idx]
                feeds["box"][r, 1:m + 1] = box[idx]
                feeds["mask"][r, 1:m + 1] = ok[idx]
                if lead is None:                                   # the clip's start: the first frame leads itself
                    for key in ("kp2d", "box", "mask"):
                        feeds[key][r, 0] = feeds[key][r, 1]
                else:
                    feeds["kp2d"][r, 0], feeds["box"][r, 0], feeds["mask"][r, 0] = lead[r]
                feeds["box"][r, m + 1:] = feeds["box"][r, m]       # padding at the end: never seen by earlier frames
                if R_cam_from_cam0 is not None and m:
                    feeds["cam_angvel"][r, 1:m + 1] = _sequence_angvel(R_cam_from_cam0, ts, idx + a, stride)
            lead = [(feeds["kp2d"][r, steps], feeds["box"][r, steps], feeds["mask"][r, steps]) for r in range(stride)]
            out, state = self.run(**feeds, state=state)
            if not raw:
                raw = {k: scratch.empty((n,) + out[k].shape[2:], np.float32) for k in names}
            for r in range(stride):
                idx = np.arange(a + r, b, stride)
                for k in names:
                    raw[k][idx] = out[k][r, :len(idx)]
            Gam = raw["root_cam_rotmat"][a:b].astype(np.float64)
            part = np.einsum("tji,tjk,tlk->til", R_rel(a, b), Gam, raw["root_world_rotmat"][a:b].astype(np.float64))
            M[True] += np.einsum("t,til->il", conf, part)
            M[False] += part.sum(axis=0)
            scratch.trim()
        weighted = float(np.sum([confidence[a:b].sum(dtype=np.float64) for a, b in scratch.windows(n)])) > 0

        # 3. camera and world rotation (the chordal mean R_0)
        R0 = _polar(M[weighted])
        R0 = R0 @ cams.level_yaw(R0).T

        skel = self.skeleton
        bones = np.array([skel.index(bn) for bn in self.bone_names])
        J = len(skel.names)
        Rr = self.root_rest_R
        f32 = np.float32
        local = scratch.empty((n, J, 3), f32)
        orient = scratch.empty((n, 3), f32)
        soles = scratch.empty((n, 4, 3))                                              # relative to the root
        v_world = scratch.empty((n, 3))
        for a, b in scratch.windows(n, 500):   # posed 500 frames at a time: a (T, J, 4, 4) pose is 13 KB a frame
            G = np.swapaxes(R_rel(a, b) @ R0, -1, -2) @ raw["root_cam_rotmat"][a:b].astype(np.float64)
            lw = np.zeros((b - a, J, 3))
            lw[:, bones[0]] = matrix_to_aa(Rr.T @ G @ Rr)
            lw[:, bones[1:]] = matrix_to_aa(raw["pose_rotmat"][a:b].astype(np.float64))
            local[a:b] = lw
            orient[a:b] = matrix_to_aa(G)
            W = forward_kinematics(skel.rest, skel.parents, lw, np.zeros((b - a, 3)))
            soles[a:b] = mocap.anny_sole_points(skel, W)
            heading = aug.heading_angle(G)
            v_world[a:b] = np.einsum("tij,tj->ti", aug.rot_z(heading), raw["root_vel"][a:b].astype(np.float64))

        # 4. trajectory
        path = scratch.empty((n, 3))
        _refine_into(v_world, soles, raw["contact"], ts, path, scratch.WINDOW)

        # 5. camera translation
        w_of = (lambda a, b: confidence[a:b].astype(np.float64)) if weighted else (lambda a, b: np.ones(b - a))
        C = np.zeros(3)
        wsum = 0.0
        R_w2c = scratch.empty((n, 3, 3), f32)
        t_w2c = scratch.empty((n, 3), f32)
        position = scratch.empty((n, 3), f32)
        for a, b in scratch.windows(n):
            R = R_rel(a, b) @ R0
            x = np.asarray(path[a:b])
            p_cam = raw["root_cam_pos"][a:b].astype(np.float64)
            R_w2c[a:b] = R
            position[a:b] = x
            t_w2c[a:b] = p_cam - np.einsum("tij,tj->ti", R, x)
            if fixed_camera_centre:
                w = w_of(a, b)
                C += (w[:, None] * (x - np.einsum("tji,tj->ti", R, p_cam))).sum(axis=0)   # C = x − Rᵀ p_cam
                wsum += float(w.sum())
        if fixed_camera_centre:
            C /= max(wsum, 1e-9)
            for a, b in scratch.windows(n):
                t_w2c[a:b] = -np.einsum("tij,j->ti", R_rel(a, b) @ R0, C)
        return MotionResult(
            bone_names=tuple(skel.names), local_rotations_aa=local, root_position_world=position,
            root_orientation_world_aa=orient, root_position_camera=raw["root_cam_pos"], R_world2cam=R_w2c,
            t_world2cam=t_w2c, foot_contact=raw["contact"], confidence=confidence, frame_stride=stride)


def _sequence_angvel(R_cam_from_cam0: np.ndarray, ts: np.ndarray, idx: np.ndarray, stride: int) -> np.ndarray:
    """The camera's angular velocity (rad/s) at frames ``idx`` (consecutive members of one interleaved sequence,
    frames r, r + stride, …) from each one's predecessor in the sequence, as :func:`angular_velocity` gives it for
    the whole sequence (its first frame repeats the second's)."""
    from rigs.rotations import matrix_to_aa

    n = len(ts)
    cur, prev = idx.copy(), idx - stride
    first = prev < 0
    cur[first], prev[first] = idx[first] + stride, idx[first]
    out = np.zeros((len(idx), 3))
    ok = cur < n
    if ok.any():
        Rc = np.asarray(R_cam_from_cam0[cur[ok]], dtype=np.float64)
        Rp = np.asarray(R_cam_from_cam0[prev[ok]], dtype=np.float64)
        dt = np.maximum(ts[cur[ok]] - ts[prev[ok]], 1e-4)
        out[ok] = matrix_to_aa(Rc @ np.swapaxes(Rp, -1, -2)) / dt[:, None]
    return out


def benchmark(model: MotionModel, frames: int = 1000, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Frames/s of :meth:`MotionModel.predict` on a made-up clip (random landmarks around a standing person):
    the network alone and the whole adapter, best of ``repeats``."""
    rng = np.random.default_rng(seed)
    W, H = 1920, 1080
    pose = np.zeros((frames, 33, 3))
    pose[..., 0] = 960 + rng.normal(0, 80, (frames, 33))
    pose[..., 1] = 540 + rng.normal(0, 200, (frames, 33))
    pose[..., 2] = 0.9
    K = cams.intrinsics(60.0, (W, H))
    ts = np.arange(frames) / 30.0
    best_all = best_net = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(pose, (W, H), K, None, ts)
        best_all = min(best_all, time.perf_counter() - t0)
        kp2d, box, ok, _ = observe(pose, (W, H), model.present)
        kp2d, box, ok = (np.concatenate([x[:1], x]) for x in (kp2d, box, ok))              # the lead frame
        intr = np.broadcast_to(cams.intrinsics_features(K, (W, H)), (1, frames + 1, 3)).astype(np.float32)
        t0 = time.perf_counter()
        model.run(kp2d[None], box[None], np.zeros((1, frames + 1, 3), np.float32), ok[None].astype(np.float32),
                  intr)
        best_net = min(best_net, time.perf_counter() - t0)
    return {"frames": frames, "network_fps": frames / best_net, "adapter_fps": frames / best_all,
            "providers": ",".join(model.providers)}


if __name__ == "__main__":
    import sys

    m = MotionModel.load(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps(benchmark(m), indent=1))
