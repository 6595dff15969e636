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
TRAIN_FIX = ("train one with `python -m inference_server.motion_train --out DIR` (about 40 minutes on a CPU) and "
             f"pass DIR/{MODEL_FILE}, or set ${MODEL_ENV} to it")


class MotionModelError(RpcError):
    """The motion network's file is missing or unreadable; the message names the file, ``fix`` says what to do."""

    def __init__(self, message: str, fix: str = TRAIN_FIX):
        super().__init__(MODEL_MISSING, message, fix=fix)

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}"


def default_model_path() -> Path:
    """``$REEL2RIG_MOTION_MODEL``, else ``<engine cache>/models/motion_net.onnx``."""
    from .config import cache_dir

    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else cache_dir() / "models" / MODEL_FILE


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


def observe(pose_2d: np.ndarray, image_size: tuple[int, int], present: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe landmarks (T, 33, 3) px + visibility (NaN where unseen) → (kp2d (T, 33, 3), box (T, 3), mask (T,)
    bool, seen (T, 33) bool), normalised exactly as the training windows (module docstring, step 1)."""
    p = np.asarray(pose_2d, dtype=np.float64)
    w, h = image_size
    xy = p[..., :2]
    vis = p[..., 2]
    finite = np.all(np.isfinite(xy), axis=-1)
    xy0 = np.where(finite[..., None], xy, 0.0)
    inside = (xy0[..., 0] >= 0) & (xy0[..., 0] < w) & (xy0[..., 1] >= 0) & (xy0[..., 1] < h)
    seen = finite & inside & np.where(np.isnan(vis), True, np.nan_to_num(vis) >= VISIBILITY_MIN) & present[None]
    boxes, ok = cams.boxes_from_keypoints(xy0, seen)
    if not ok.any():
        boxes = np.tile([0.5 * w, 0.5 * h, float(max(w, h))], (len(p), 1))
    k, b = cams.normalize_keypoints(xy0, boxes, image_size)
    kp2d = np.concatenate([np.where(seen[..., None], k, 0.0), seen[..., None]], axis=-1)
    return kp2d.astype(np.float32), b.astype(np.float32), ok, seen


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


def _rate(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """d/dt of (T, ...) over timestamps t (T,) by central differences (one-sided at the ends)."""
    n = len(x)
    if n < 2:
        return np.zeros_like(x)
    a = np.maximum(np.arange(n) - 1, 0)
    b = np.minimum(np.arange(n) + 1, n - 1)
    dt = np.maximum(t[b] - t[a], 1e-6).reshape((-1,) + (1,) * (x.ndim - 1))
    return (x[b] - x[a]) / dt


def integrate(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Positions from velocities (T, D) over timestamps (T,), trapezoid, starting at 0."""
    steps = 0.5 * (v[1:] + v[:-1]) * np.diff(t)[:, None]
    return np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(steps, axis=0)])


def refine_trajectory(v_world: np.ndarray, soles_rel: np.ndarray, contact: np.ndarray, t: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """WHAM's contact-aware refinement and integration (module docstring, step 4): root velocity (T, 3) world,
    sole points relative to the root (T, 4, 3) world axes, contact probabilities (T, 4), timestamps (T,) →
    (root path (T, 3) with x₀ = y₀ = 0 and planted points on z = 0, refined velocity (T, 3))."""
    planted = contact > CONTACT_MIN                                                  # (T, 4)
    w = np.where(planted, contact, 0.0)
    wsum = w.sum(axis=1)                                                             # (T,)
    d_rate = _rate(soles_rel, t)                                                     # (T, 4, 3)
    foot_v = v_world[:, None, :] + d_rate                                            # each point's world velocity
    residual = np.einsum("tk,tki->ti", w, foot_v) / np.maximum(wsum, 1e-9)[:, None]
    v = v_world.copy()
    on = wsum > 0
    v[on, :2] -= residual[on, :2]
    path = integrate(v, t)
    # Height: planted points on the floor; the integrated vertical motion in between.
    target = -np.einsum("tk,tk->t", w, soles_rel[..., 2]) / np.maximum(wsum, 1e-9)   # root z that plants them
    if on.any():
        correction = np.interp(t, t[on], target[on] - path[on, 2])
    else:
        lowest = path[:, 2] + soles_rel[..., 2].min(axis=1)
        correction = np.full(len(t), -np.percentile(lowest, 5.0))
    path[:, 2] += correction
    return path, v


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

    def run(self, kp2d: np.ndarray, box: np.ndarray, cam_angvel: np.ndarray, mask: np.ndarray,
            cam_intrinsics: np.ndarray) -> dict[str, np.ndarray]:
        """The network on N sequences of T frames (inputs as :class:`.motion_net.MotionNet`'s, ``mask`` float) →
        its outputs by name (:data:`.motion_net.ONNX_OUTPUTS`)."""
        names = [o.name for o in self.session.get_outputs()]
        feeds = {"kp2d": kp2d, "box": box, "cam_angvel": cam_angvel, "mask": mask, "cam_intrinsics": cam_intrinsics}
        outs = self.session.run(names, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})
        return dict(zip(names, outs))

    def predict(self, pose_2d: np.ndarray, image_size: tuple[int, int], K: np.ndarray,
                R_cam_from_cam0: np.ndarray | None, timestamps: np.ndarray,
                fixed_camera_centre: bool | None = None) -> MotionResult:
        """A clip's body landmarks → :class:`MotionResult` (module docstring).

        pose_2d (T, 33, 3): MediaPipe pose landmarks, x, y px and visibility, NaN where unseen; image_size (W, H) px;
        K (3, 3) px; R_cam_from_cam0 (T, 3, 3) the camera's rotation from frame 0's axes (camera_motion), or None
        for a still camera; timestamps (T,) s. ``fixed_camera_centre``: one camera centre for the clip (default:
        when ``R_cam_from_cam0`` is None) instead of a per-frame translation."""
        from rigs.fk import forward_kinematics
        from rigs.rotations import matrix_to_aa

        from . import motion_data_augment as aug
        from . import motion_data_mocap as mocap

        pose_2d = np.asarray(pose_2d, dtype=np.float64)
        n = len(pose_2d)
        if pose_2d.shape[1:] != (33, 3):
            raise ValueError(f"pose_2d must be (T, 33, 3), got {pose_2d.shape}")
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.shape != (n,):
            raise ValueError(f"timestamps must be ({n},), got {ts.shape}")
        size = (int(image_size[0]), int(image_size[1]))
        R_rel = (np.broadcast_to(np.eye(3), (n, 3, 3)).copy() if R_cam_from_cam0 is None
                 else np.asarray(R_cam_from_cam0, dtype=np.float64))
        if fixed_camera_centre is None:
            fixed_camera_centre = R_cam_from_cam0 is None

        # 1-2. observations, interleaved sequences at about the network's frame rate
        kp2d, box, ok, seen = observe(pose_2d, size, self.present)
        dt = float(np.median(np.diff(ts))) if n > 1 else 1.0 / self.fps
        stride = max(1, int(round(1.0 / max(dt, 1e-6) / self.fps)))
        length = -(-n // stride)
        intr = cams.intrinsics_features(np.asarray(K, dtype=np.float64), size).astype(np.float32)
        feeds = {"kp2d": np.zeros((stride, length, 33, 3), np.float32),
                 "box": np.zeros((stride, length, 3), np.float32),
                 "cam_angvel": np.zeros((stride, length, 3), np.float32),
                 "mask": np.zeros((stride, length), np.float32),
                 "cam_intrinsics": np.broadcast_to(intr, (stride, length, 3)).copy()}
        for r in range(stride):
            idx = np.arange(r, n, stride)
            m = len(idx)
            feeds["kp2d"][r, :m] = kp2d[idx]
            feeds["box"][r, :m] = box[idx]
            feeds["box"][r, m:] = box[idx[-1]] if m else 0.0       # padding at the end: never seen by earlier frames
            feeds["mask"][r, :m] = ok[idx]
            if R_cam_from_cam0 is not None:
                feeds["cam_angvel"][r, :m] = angular_velocity(R_rel[idx], ts[idx])
        raw = self.run(**feeds)
        out: dict[str, np.ndarray] = {}
        for k, v in raw.items():
            full = np.empty((n,) + v.shape[2:], dtype=np.float64)
            for r in range(stride):
                idx = np.arange(r, n, stride)
                full[idx] = v[r, :len(idx)]
            out[k] = full

        # 3. camera and world rotation
        present_count = max(int(self.present.sum()), 1)
        confidence = np.where(ok, seen.sum(axis=1) / present_count, 0.0)
        Gam = out["root_cam_rotmat"]                                                  # (T, 3, 3)
        w = confidence if confidence.sum() > 0 else np.ones(n)
        M = np.einsum("t,tji,tjk,tlk->il", w, R_rel, Gam, out["root_world_rotmat"])  # Σ R_relᵀ Γ Gᵀ
        R0 = _polar(M)
        R0 = R0 @ cams.level_yaw(R0).T
        R_w2c = R_rel @ R0                                                            # (T, 3, 3)
        G = np.swapaxes(R_w2c, -1, -2) @ Gam                                          # (T, 3, 3) world

        # body pose → Anny's bones; the sole points relative to the root
        skel = self.skeleton
        bones = np.array([skel.index(b) for b in self.bone_names])
        J = len(skel.names)
        local = np.zeros((n, J, 3))
        Rr = self.root_rest_R
        local[:, bones[0]] = matrix_to_aa(Rr.T @ G @ Rr)
        local[:, bones[1:]] = matrix_to_aa(out["pose_rotmat"])
        soles = np.empty((n, 4, 3))                                                   # (T, 4, 3)
        for a in range(0, n, 500):   # posed 500 frames at a time: a (T, J, 4, 4) pose of a long clip is 13 KB a frame
            W = forward_kinematics(skel.rest, skel.parents, local[a:a + 500], np.zeros((len(local[a:a + 500]), 3)))
            soles[a:a + 500] = mocap.anny_sole_points(skel, W)

        # 4. trajectory
        heading = aug.heading_angle(G)
        v_world = np.einsum("tij,tj->ti", aug.rot_z(heading), out["root_vel"])
        contact = out["contact"]
        path, _ = refine_trajectory(v_world, soles, contact, ts)

        # 5. camera translation
        p_cam = out["root_cam_pos"]
        t_w2c = p_cam - np.einsum("tij,tj->ti", R_w2c, path)
        if fixed_camera_centre:
            centres = path - np.einsum("tji,tj->ti", R_w2c, p_cam)                  # C = x − Rᵀ p_cam
            C = (w[:, None] * centres).sum(axis=0) / max(float(w.sum()), 1e-9)
            t_w2c = -np.einsum("tij,j->ti", R_w2c, C)
        f32 = np.float32
        return MotionResult(
            bone_names=tuple(skel.names), local_rotations_aa=local.astype(f32), root_position_world=path.astype(f32),
            root_orientation_world_aa=matrix_to_aa(G).astype(f32), root_position_camera=p_cam.astype(f32),
            R_world2cam=R_w2c.astype(f32), t_world2cam=t_w2c.astype(f32), foot_contact=contact.astype(f32),
            confidence=confidence.astype(f32), frame_stride=stride)


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
        intr = np.broadcast_to(cams.intrinsics_features(K, (W, H)), (1, frames, 3)).astype(np.float32)
        t0 = time.perf_counter()
        model.run(kp2d[None], box[None], np.zeros((1, frames, 3), np.float32), ok[None].astype(np.float32), intr)
        best_net = min(best_net, time.perf_counter() - t0)
    return {"frames": frames, "network_fps": frames / best_net, "adapter_fps": frames / best_all,
            "providers": ",".join(model.providers)}


if __name__ == "__main__":
    import sys

    m = MotionModel.load(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps(benchmark(m), indent=1))
