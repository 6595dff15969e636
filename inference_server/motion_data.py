"""Training data for the learned motion network (WHAM-style, issue 11): real CMU motion capture retargeted onto
Anny, turned into (2D keypoint sequence → body motion) pairs through virtual moving cameras. No bpy, no torch, no
GPU: numpy (and the numpy-only rigs/ package); the Anny skeleton comes from the engine's cache
(:func:`inference_server.anny_skeleton.load_skeleton`).

Pipeline (each step its own module)
-----------------------------------
1. :mod:`.motion_data_mocap` — the packs (``../shared/mocap``, ``$REEL2RIG_MOCAP_DIR`` or a path; never copied into
   the project), forward kinematics, y-up → the world's Z-up, grounding, the packs' joints as MediaPipe points, and
   the retarget onto Anny's body bones (:mod:`rigs.retarget`).
2. :func:`prepare_pack` — every clip retargeted once and cached in the stage cache (12-17 MB per pack).
3. :mod:`.motion_data_augment` — contacts, heading, root velocity; mirroring, speed changes, heading turns.
4. :mod:`.motion_data_camera` — virtual cameras (still, panning, tracking, travelling, following, hand-held),
   projection of Anny's body markers to MediaPipe's 33-landmark layout, box normalisation, detector-like corruption.
5. :func:`make_window` / :func:`iter_windows` — fixed-length windows as dicts of numpy arrays (below);
   :func:`collate` stacks them into a batch.

Split (:func:`split_of`): by clip, deterministic. Whole CMU subjects :data:`HELD_OUT_SUBJECTS` are held out in both
packs (the packs share subjects 1-9, so a take held out of one is held out of the other); clips without a single
known subject (Li2018's ``?``, the acLSTM dance and martial groups) hold out every :data:`HELD_OUT_EVERY`-th clip by
sorted clip id.

A window (T = ``WindowSettings.length`` frames at the pack's 30 fps, B = len(body bones), 33 MediaPipe landmarks)
-------------------------------------------------------------------------------------------------------------------
inputs
    ``kp2d``        (T, 33, 3) float32  normalised keypoints (x, y) = (k − c) / s and visibility (0/1); 0 where unseen
    ``box``         (T, 3)     float32  ((c_x − W/2)/L, (c_y − H/2)/L, s/L), L = max(W, H)
    ``cam_angvel``  (T, 3)     float32  camera angular velocity, rad/s, camera axes (motion_data_camera)
    ``mask``        (T,)       bool     the frame has a detection (at least 2 landmarks seen)
    ``valid``       (T,)       bool     a real frame (False: padding after the end of a clip shorter than the window,
                                        which holds its last frame; losses should skip them)
targets
    ``local_aa``         (T, B, 3)  float32  Anny body-bone local rotations (``body_bones``; [0] = root), Take
                                             convention
    ``root_orient_world_aa`` (T, 3) float32  the body's world rotation relative to its rest (facing −Y)
    ``root_orient_cam_aa``   (T, 3) float32  the same in camera axes: R_world2cam · G
    ``root_pos_world``   (T, 3)     float32  root (hips) position, m, floor z = 0, frame 0 above the origin
    ``root_vel_heading`` (T, 3)     float32  root velocity, m/s, in the heading frame (motion_data_augment)
    ``heading``          (T,)       float32  ψ, radians (0 faces −Y, + toward the subject's left)
    ``contact``          (T, 4)     float32  foot contact [heel.L, toe.L, heel.R, toe.R] (the Take's order)
    ``joints_cam``       (T, 33, 3) float32  Anny's body markers in camera axes, m; 0 where Anny has none
    ``joints_present``   (33,)      bool     which landmarks Anny has (21 of 33)
    ``kp2d_clean_px``    (T, 33, 2) float32  the markers' exact projections, px; 0 where absent
camera
    ``K`` (3, 3), ``image_size`` (2,) int32 (W, H), ``R_world2cam`` (T, 3, 3), ``t_world2cam`` (T, 3)  float32
meta
    ``clip_index``, ``start`` int64; ``speed`` float32; ``mirrored`` bool

Data note: about an hour of distinct motion (README of the packs); one Anny body shape; dance dominates the Daz pack.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from . import motion_data_augment as aug
from . import motion_data_camera as cams
from . import motion_data_mocap as mocap
from .motion_data_mocap import MocapError, MocapPack, load_pack  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from .anny_skeleton import Skeleton

PREP_VERSION = 2   # bump whenever the preparation (trim, grounding, retarget, labels) changes: it keys the cache
HELD_OUT_SUBJECTS = ("2", "8")   # CMU subject 2 (walk, run, jump, punches, swordplay, gestures), 8 (walks)
HELD_OUT_EVERY = 10
WINDOW = 81


# ---------------------------------------------------------------------------------------------------------------
# Split


def split_of(clip_ids: Sequence[str], subjects: Sequence[str]) -> np.ndarray:
    """(N,) bool, True for held-out clips: subjects in :data:`HELD_OUT_SUBJECTS`, and of the clips without one known
    numeric subject, every :data:`HELD_OUT_EVERY`-th (the 10th, 20th, … by sorted clip id)."""
    held = np.array([s in HELD_OUT_SUBJECTS for s in subjects], dtype=bool)
    unknown = sorted((c, i) for i, (c, s) in enumerate(zip(clip_ids, subjects)) if not s.isdigit())
    for rank, (_, i) in enumerate(unknown):
        if rank % HELD_OUT_EVERY == HELD_OUT_EVERY - 1:
            held[i] = True
    return held


# ---------------------------------------------------------------------------------------------------------------
# Prepared packs (retargeted once, cached)


@dataclasses.dataclass(frozen=True)
class PreparedPack:
    """A pack retargeted onto Anny: per clip, body-bone rotations and the root's grounded world path."""
    family: str
    fps: float
    bone_names: tuple[str, ...]      # (B,) Anny body bones, root first
    clip_ids: tuple[str, ...]
    subjects: tuple[str, ...]
    categories: tuple[str, ...]
    clip_start: np.ndarray           # (N,)
    clip_len: np.ndarray             # (N,) frames kept (glitched end frames trimmed)
    first_frame: np.ndarray          # (N,) the pack frame of each clip's frame 0
    local_aa: np.ndarray             # (sumT, B, 3) float32
    root_pos: np.ndarray             # (sumT, 3) float32 world, floor z = 0
    aim_error_deg: np.ndarray        # (N,) mean angle between the mocap's and Anny's bone aims (the retarget's error)
    segment_error_deg: np.ndarray    # (N, S) mean angle between the packs' MediaPipe-point segments and Anny's markers'
    leg_ratio: np.ndarray            # (N,) Anny's legs / the mocap's
    contact_frac: np.ndarray         # (N, 4) fraction of frames each sole point is planted (a check of the labels)
    held_out: np.ndarray             # (N,) bool

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def n_frames(self) -> int:
        return int(self.clip_len.sum())

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Clip i's (local_aa (T, B, 3), root_pos (T, 3))."""
        s, n = int(self.clip_start[i]), int(self.clip_len[i])
        return self.local_aa[s:s + n], self.root_pos[s:s + n]


def _prepare_arrays(pack: MocapPack, skel: "Skeleton") -> dict[str, np.ndarray]:
    from rigs.fk import forward_kinematics

    bones = mocap.body_bones(skel)
    local, root, aim_err, seg_err, ratio, first, contact = [], [], [], [], [], [], []
    for i in range(len(pack)):
        world = mocap.clip_world(pack.clip(i))
        first.append(world.first_frame)
        r = mocap.retarget_clip(world, skel)
        local.append(r.local_aa.astype(np.float32))
        root.append(r.root_pos.astype(np.float32))
        aim_err.append(float(r.aim_error_deg.mean()))
        W = forward_kinematics(skel.rest, skel.parents, mocap.expand_body(local[-1], bones, len(skel.names)),
                               root[-1])
        markers = mocap.anny_markers(skel, W)[0]
        seg_err.append(mocap.segment_errors_deg(mocap.mediapipe_points(world)[0], markers).mean(axis=0))
        contact.append(aug.foot_contacts(markers[:, list(mocap.SOLE_POINTS)], pack.fps).mean(axis=0))
        ratio.append(r.leg_ratio)
    lengths = [len(r) for r in root]
    return dict(family=np.array(pack.family), fps=np.array(pack.fps), bone_names=np.array(
        [skel.names[b] for b in bones]), clip_ids=np.array(pack.clip_ids), subjects=np.array(pack.subjects),
        categories=np.array(pack.categories), clip_start=np.cumsum([0] + lengths[:-1]), clip_len=np.array(lengths),
        first_frame=np.array(first),
        local_aa=np.concatenate(local), root_pos=np.concatenate(root), aim_error_deg=np.array(aim_err),
        segment_error_deg=np.array(seg_err), leg_ratio=np.array(ratio), contact_frac=np.array(contact))


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def prepare_pack(pack: MocapPack, skel: "Skeleton", use_cache: bool = True) -> PreparedPack:
    """Retarget every clip of ``pack`` onto ``skel`` (about a minute per pack on 2 cores), or load the result from
    the stage cache (keyed by the pack file's content, :data:`PREP_VERSION` and the Anny version)."""
    from .config import stage_cache_dir
    from .npz_cache import load_or_build, versioned_path

    def build() -> dict[str, np.ndarray]:
        return _prepare_arrays(pack, skel)

    if use_cache:
        path = versioned_path(stage_cache_dir(), f"motion_data_{pack.family}_{_file_digest(pack.path)}", PREP_VERSION)
        data = load_or_build(path, build)
    else:
        data = build()
    ids, subjects = tuple(str(c) for c in data["clip_ids"]), tuple(str(s) for s in data["subjects"])
    return PreparedPack(
        family=str(data["family"]), fps=float(data["fps"]), bone_names=tuple(str(n) for n in data["bone_names"]),
        clip_ids=ids, subjects=subjects, categories=tuple(str(c) for c in data["categories"]),
        clip_start=data["clip_start"].astype(np.int64), clip_len=data["clip_len"].astype(np.int64),
        first_frame=data["first_frame"].astype(np.int64), local_aa=data["local_aa"], root_pos=data["root_pos"],
        aim_error_deg=data["aim_error_deg"], segment_error_deg=data["segment_error_deg"],
        leg_ratio=data["leg_ratio"], contact_frac=data["contact_frac"], held_out=split_of(ids, subjects))


_PER_CLIP = ("clip_len", "first_frame", "aim_error_deg", "segment_error_deg", "leg_ratio", "contact_frac", "held_out")


def combine(preps: Sequence[PreparedPack]) -> PreparedPack:
    """Several prepared packs as one (they share Anny's bones). The packs hold the same takes of CMU subjects 1-9
    on two skeletons: a clip id an earlier pack already has is left out, so list the preferred pack first (the MB
    pack: the actors' own bone lengths)."""
    if not preps:
        raise ValueError("combine() needs at least one prepared pack")
    first = preps[0]
    for p in preps[1:]:
        if p.bone_names != first.bone_names or p.fps != first.fps:
            raise ValueError(f"the {p.family} pack was prepared for other bones or another frame rate than "
                             f"the {first.family} pack; prepare both with the same skeleton")
    seen: set[str] = set()
    keep: list[tuple[PreparedPack, int]] = []
    for p in preps:
        for i, c in enumerate(p.clip_ids):
            if c not in seen:
                seen.add(c)
                keep.append((p, i))
    rows = [np.arange(p.clip_start[i], p.clip_start[i] + p.clip_len[i]) for p, i in keep]
    per_clip = {k: np.stack([getattr(p, k)[i] for p, i in keep]) for k in _PER_CLIP}
    lengths = per_clip["clip_len"]
    local = np.concatenate([p.local_aa[r] for (p, _), r in zip(keep, rows)])
    root = np.concatenate([p.root_pos[r] for (p, _), r in zip(keep, rows)])
    return PreparedPack(
        family="+".join(p.family for p in preps), fps=first.fps, bone_names=first.bone_names,
        clip_ids=tuple(p.clip_ids[i] for p, i in keep), subjects=tuple(p.subjects[i] for p, i in keep),
        categories=tuple(p.categories[i] for p, i in keep),
        clip_start=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), local_aa=local, root_pos=root,
        **per_clip)


def synthetic_pack(skel: "Skeleton", n_clips: int = 4, n_frames: int = 120, seed: int = 0, fps: float = 30.0,
                   held_out: Sequence[int] = (-1,)) -> PreparedPack:
    """A small made-up pack for smoke runs and tests where the CMU packs are absent: each clip walks a gentle curve
    at 0.5-1.5 m/s with every body bone swinging on its own sinusoids (up to 0.35 rad), standing on the floor.
    Not human motion — a known, learnable signal. Clips ``held_out`` (indices) are the held-out split."""
    from rigs.fk import forward_kinematics

    rng = np.random.default_rng(seed)
    bones = mocap.body_bones(skel)
    n_b = len(bones)
    t = np.arange(n_frames) / fps
    local, root = [], []
    for _ in range(n_clips):
        freq = rng.uniform(0.5, 1.5, (1, n_b, 3))
        phase = rng.uniform(0, 2 * np.pi, (1, n_b, 3))
        amp = rng.uniform(0.05, 0.35, (1, n_b, 3))
        aa = amp * np.sin(2 * np.pi * freq * t[:, None, None] + phase)                    # (T, B, 3)
        psi = rng.uniform(-np.pi, np.pi) + rng.uniform(-0.3, 0.3) * t                     # heading, rad
        aa[:, 0] = np.stack([0.1 * np.sin(2 * np.pi * t), 0.05 * np.sin(np.pi * t), psi], axis=-1)
        speed = rng.uniform(0.5, 1.5)
        step = speed / fps * np.stack([np.sin(psi), -np.cos(psi)], axis=-1)               # forward (sin ψ, −cos ψ)
        path = np.concatenate([np.zeros((1, 2)), np.cumsum(step[1:], axis=0)])
        W = forward_kinematics(skel.rest, skel.parents, mocap.expand_body(aa, bones, len(skel.names)),
                               np.zeros((n_frames, 3)))
        soles = mocap.anny_sole_points(skel, W)                                            # (T, 4, 3), root at 0
        z = -soles[..., 2].min(axis=1)                                                     # lowest sole on the floor
        local.append(aa.astype(np.float32))
        root.append(np.concatenate([path, z[:, None]], axis=1).astype(np.float32))
    n = n_clips
    held = np.zeros(n, dtype=bool)
    held[list(held_out)] = True
    lengths = np.full(n, n_frames, dtype=np.int64)
    return PreparedPack(
        family="synthetic", fps=fps, bone_names=tuple(skel.names[b] for b in bones),
        clip_ids=tuple(f"syn_{i:02d}" for i in range(n)), subjects=("syn",) * n, categories=("synthetic",) * n,
        clip_start=np.arange(n, dtype=np.int64) * n_frames, clip_len=lengths, first_frame=np.zeros(n, np.int64),
        local_aa=np.concatenate(local), root_pos=np.concatenate(root), aim_error_deg=np.zeros(n),
        segment_error_deg=np.zeros((n, len(mocap.SEGMENTS))), leg_ratio=np.ones(n), contact_frac=np.zeros((n, 4)),
        held_out=held)


# ---------------------------------------------------------------------------------------------------------------
# Windows


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    length: int = WINDOW
    augment: bool = True                         # speed, mirror and heading (cameras and corruption always apply)
    speed: tuple[float, float] = (0.8, 1.25)     # playback speed factor, log-uniform
    mirror_p: float = 0.5
    camera: cams.CameraSettings = cams.CameraSettings()
    corruption: cams.CorruptionSettings = cams.CorruptionSettings()
    min_seen: float = 0.6                        # a camera that sees the body on fewer frames, or that the body
    min_depth_m: float = 1.0                     # comes closer to than this (walks into), is drawn again ...
    camera_tries: int = 5                        # ... at most this often


@dataclasses.dataclass(frozen=True)
class AnnyBody:
    """What a window needs of the Anny skeleton, computed once."""
    skel: "Skeleton"
    bones: np.ndarray       # (B,) body bones
    swap: np.ndarray        # (B,) each body bone's mirror among them

    @classmethod
    def of(cls, skel: "Skeleton") -> "AnnyBody":
        bones = mocap.body_bones(skel)
        return cls(skel=skel, bones=bones, swap=aug.side_swap_index([skel.names[b] for b in bones]))


def pose_markers(body: AnnyBody, local_aa: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anny posed with body-bone rotations (T, B, 3) and root positions (T, 3) → its body markers in MediaPipe's
    layout (T, 33, 3) (NaN where Anny has none) and which are present (33,)."""
    from rigs.fk import forward_kinematics

    full = mocap.expand_body(local_aa, body.bones, len(body.skel.names))
    W = forward_kinematics(body.skel.rest, body.skel.parents, full, root)
    return mocap.anny_markers(body.skel, W)


def _labels(body: AnnyBody, local_aa: np.ndarray, root: np.ndarray, markers: np.ndarray, fps: float) -> dict:
    rest_R = body.skel.rest[body.bones[0], :3, :3]
    G = aug.root_world_rotation(local_aa[:, 0], rest_R)                         # (T, 3, 3)
    heading = aug.heading_angle(G)
    return dict(G=G, heading=heading, root_vel_heading=aug.root_velocity_heading(root, heading, fps),
                contact=aug.foot_contacts(markers[:, list(mocap.SOLE_POINTS)], fps))


def _observe(rng: np.random.Generator, markers: np.ndarray, present: np.ndarray, root: np.ndarray, fps: float,
             s: WindowSettings) -> dict:
    """Camera, clean projection and the detector-like observation of one window's markers."""
    pts = np.where(present[None, :, None], markers, 0.0)
    for _ in range(max(s.camera_tries, 1)):
        cam = cams.sample_camera(rng, root, fps, s.camera)
        uv, pc = cams.project(pts, cam.K, cam.R_world2cam, cam.t_world2cam)
        vis = cams.visible_in_image(uv, pc, cam.image_size) & present[None]
        root_depth = np.einsum("tj,tj->t", cam.R_world2cam[:, 2], root) + cam.t_world2cam[:, 2]
        if np.mean(vis.sum(axis=1) >= 4) >= s.min_seen and root_depth.min() >= s.min_depth_m:
            break
    clean_box, _ = cams.boxes_from_keypoints(uv, vis)
    side = np.nan_to_num(clean_box[:, 2], nan=float(max(cam.image_size)))
    kp, seen_vis, _ = cams.corrupt(rng, uv, vis, side, s.corruption)
    boxes, ok = cams.boxes_from_keypoints(kp, seen_vis)
    if not ok.any():
        w, h = cam.image_size
        boxes = np.tile([0.5 * w, 0.5 * h, float(max(w, h))], (len(kp), 1))
    j = s.corruption.box_jitter
    boxes = boxes.copy()
    boxes[:, :2] += rng.normal(0.0, j, (len(kp), 2)) * boxes[:, 2:3]
    boxes[:, 2] *= np.exp(rng.normal(0.0, j, len(kp)))
    k_norm, b_norm = cams.normalize_keypoints(kp, boxes, cam.image_size)
    kp2d = np.concatenate([np.where(seen_vis[..., None], k_norm, 0.0), seen_vis[..., None]], axis=-1)
    return dict(cam=cam, uv=np.where(present[None, :, None], uv, 0.0),
                pc=np.where(present[None, :, None], pc, 0.0), kp2d=kp2d, box=b_norm, mask=ok)


def make_window(prep: PreparedPack, clip: int, start: int, rng: np.random.Generator, body: AnnyBody,
                settings: WindowSettings = WindowSettings()) -> dict[str, np.ndarray]:
    """One training pair from clip ``clip`` of ``prep`` starting at frame ``start`` (module docstring for the keys
    and shapes). With ``settings.augment`` the speed factor is drawn and shortened to fit the clip, the motion is
    mirrored with ``mirror_p`` and turned to a random heading; cameras and corruption always come from ``rng``."""
    from rigs.rotations import matrix_to_aa

    s = settings
    fps = prep.fps
    n_clip = int(prep.clip_len[clip])
    room = n_clip - 1 - start
    if room < 1:
        raise ValueError(f"clip {prep.clip_ids[clip]} has {n_clip} frames: no window starts at frame {start}")
    speed, mirrored, angle = 1.0, False, 0.0
    if s.augment:
        lo, hi = np.log(s.speed[0]), np.log(s.speed[1])
        speed = float(np.exp(rng.uniform(lo, hi)))
        if room >= (s.length - 1) * s.speed[0]:          # long enough: the speed shrinks to fit, no padding
            speed = min(speed, room / (s.length - 1))
        mirrored = bool(rng.random() < s.mirror_p)
        angle = float(rng.uniform(-np.pi, np.pi))
    times = start + np.arange(s.length) * speed
    valid = times <= n_clip - 1 + 1e-6                  # a clip shorter than the window holds its last frame
    local_aa, root = aug.resample(*prep.clip(clip), times)
    if mirrored:
        local_aa, root = aug.mirror_motion(local_aa, root, body.swap)
    local_aa, root = aug.rotate_heading(local_aa, root, angle, rest_root_R=body.skel.rest[body.bones[0], :3, :3])
    root = root - np.array([root[0, 0], root[0, 1], 0.0])                      # frame 0 above the origin
    markers, present = pose_markers(body, local_aa, root)
    labels = _labels(body, local_aa, root, markers, fps)
    obs = _observe(rng, markers, present, root, fps, s)
    obs["kp2d"][~valid] = 0.0
    cam = obs["cam"]
    f32 = np.float32
    return {
        "kp2d": obs["kp2d"].astype(f32),                                                    # (T, 33, 3)
        "box": obs["box"].astype(f32),                                                      # (T, 3)
        "cam_angvel": cams.angular_velocity(cam.R_world2cam, fps).astype(f32),              # (T, 3)
        "mask": obs["mask"] & valid,                                                        # (T,)
        "valid": valid,                                                                     # (T,)
        "local_aa": local_aa.astype(f32),                                                   # (T, B, 3)
        "root_orient_world_aa": matrix_to_aa(labels["G"]).astype(f32),                      # (T, 3)
        "root_orient_cam_aa": matrix_to_aa(cam.R_world2cam @ labels["G"]).astype(f32),     # (T, 3)
        "root_pos_world": root.astype(f32),                                                 # (T, 3)
        "root_vel_heading": labels["root_vel_heading"].astype(f32),                        # (T, 3)
        "heading": labels["heading"].astype(f32),                                           # (T,)
        "contact": labels["contact"].astype(f32),                                           # (T, 4)
        "joints_cam": obs["pc"].astype(f32),                                                # (T, 33, 3)
        "joints_present": present.copy(),                                                   # (33,)
        "kp2d_clean_px": obs["uv"].astype(f32),                                             # (T, 33, 2)
        "K": cam.K.astype(f32),                                                             # (3, 3)
        "image_size": np.array(cam.image_size, dtype=np.int32),                             # (2,)
        "R_world2cam": cam.R_world2cam.astype(f32),                                         # (T, 3, 3)
        "t_world2cam": cam.t_world2cam.astype(f32),                                         # (T, 3)
        "clip_index": np.int64(clip), "start": np.int64(start), "speed": np.float32(speed),
        "mirrored": np.bool_(mirrored),
    }


def window_starts(prep: PreparedPack, held_out: bool, length: int = WINDOW, stride: int | None = None
                  ) -> list[tuple[int, int]]:
    """(clip, start) of the windows that cover a split, in clip order: ``stride`` frames apart (default
    ``length``), plus one that ends on the clip's last frame where the stride leaves a tail; a clip shorter than
    ``length`` gives one (padded) window."""
    stride = stride or length
    out = []
    for i in np.nonzero(prep.held_out == held_out)[0]:
        n = int(prep.clip_len[i])
        starts = list(range(0, max(n - length, 0) + 1, stride))
        if starts[-1] + length < n:
            starts.append(n - length)
        out += [(int(i), a) for a in starts]
    return out


def iter_windows(prep: PreparedPack, body: AnnyBody, held_out: bool = False, seed: int = 0,
                 settings: WindowSettings = WindowSettings(), count: int | None = None
                 ) -> Iterator[dict[str, np.ndarray]]:
    """Windows of one split: with ``settings.augment`` an endless (or ``count``-long) random stream — clip chosen by
    its number of window starts, start uniform; without, every window of :func:`window_starts` in order. Window k
    draws everything from ``numpy.random.default_rng([seed, k])``, so any window can be made again alone."""
    if not settings.augment:
        for k, (clip, start) in enumerate(window_starts(prep, held_out, settings.length)):
            if count is not None and k >= count:
                return
            yield make_window(prep, clip, start, np.random.default_rng([seed, k]), body, settings)
        return
    clips = np.nonzero(prep.held_out == held_out)[0]
    if not len(clips):
        raise ValueError(f"the {prep.family} pack has no {'held-out' if held_out else 'training'} clips")
    starts = np.maximum(prep.clip_len[clips] - settings.length + 1, 1).astype(np.float64)
    p = starts / starts.sum()
    k = 0
    while count is None or k < count:
        rng = np.random.default_rng([seed, k])
        clip = int(clips[rng.choice(len(clips), p=p)])
        start = int(rng.integers(0, max(int(prep.clip_len[clip]) - settings.length, 0) + 1))
        yield make_window(prep, clip, start, rng, body, settings)
        k += 1


def collate(windows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack windows into a batch: every array gains a leading (N,) axis."""
    return {k: np.stack([np.asarray(w[k]) for w in windows]) for k in windows[0]}


# ---------------------------------------------------------------------------------------------------------------
# CLI


def summary_lines(prep: PreparedPack, pack_path: Path) -> list[str]:
    """The summary of one prepared pack, as printed by ``summary``."""
    fps = prep.fps
    held = prep.held_out
    frames_held = int(prep.clip_len[held].sum())
    lines = [f"{prep.family}: {pack_path}",
             f"  clips {len(prep)}, frames {prep.n_frames}, hours {prep.n_frames / fps / 3600:.3f}",
             f"  train    {int((~held).sum()):4d} clips {prep.n_frames - frames_held:6d} frames "
             f"{(prep.n_frames - frames_held) / fps / 3600:.3f} h",
             f"  held out {int(held.sum()):4d} clips {frames_held:6d} frames {frames_held / fps / 3600:.3f} h "
             f"(subjects {', '.join(HELD_OUT_SUBJECTS)} + every {HELD_OUT_EVERY}th clip without one subject)",
             f"  held-out clips: {' '.join(c for c, h in zip(prep.clip_ids, held) if h)}"]
    w = prep.clip_len / prep.clip_len.sum()
    lines.append(f"  retarget bone-direction error (mocap vs Anny aims, posed from the stored float32 rotations): "
                 f"mean {float(w @ prep.aim_error_deg):.2e} deg, worst clip {float(prep.aim_error_deg.max()):.2e}")
    seg = w @ prep.segment_error_deg                                               # (S,)
    names = " ".join(f"{a}-{b}:{e:.1f}" for (a, b), e in zip(mocap.SEGMENTS, seg))
    lines.append(f"  body-point segment error (the pack's MediaPipe points vs Anny's markers): mean "
                 f"{float(seg.mean()):.2f} deg [{names}]")
    lines.append(f"  leg ratio Anny/mocap: {float(prep.leg_ratio.min()):.3f}-{float(prep.leg_ratio.max()):.3f}")
    by_cat = []
    for cat in sorted(set(prep.categories)):
        sel = np.array([c == cat for c in prep.categories])
        frac = float(prep.clip_len[sel] @ prep.contact_frac[sel].mean(axis=1)) / float(prep.clip_len[sel].sum())
        by_cat.append(f"{cat} {frac:.2f}")
    lines.append(f"  foot contact (mean of the 4 sole points, fraction of frames): {', '.join(by_cat)}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_server.motion_data",
                                     description="Motion-network training data from the CMU mocap packs.")
    sub = parser.add_subparsers(dest="command", required=True)
    summ = sub.add_parser("summary", help="clips, frames, hours, the split and the retarget error per pack")
    summ.add_argument("--mocap", help=f"folder of the packs (default ${mocap.MOCAP_ENV} or ../shared/mocap)")
    summ.add_argument("--pack", action="append", help="daz, mb or a pack file (default: both packs)")
    summ.add_argument("--no-cache", action="store_true", help="retarget again instead of reading the stage cache")
    args = parser.parse_args(argv)

    from .anny_skeleton import load_skeleton

    try:
        skel = load_skeleton()
        preps = []
        for name in args.pack or list(mocap.PACK_FILES):
            pack = load_pack(name, args.mocap)
            preps.append(prepare_pack(pack, skel, use_cache=not args.no_cache))
            print("\n".join(summary_lines(preps[-1], pack.path)), flush=True)
        if len(preps) > 1:
            both = combine(sorted(preps, key=lambda p: p.family != "mb"))
            held = both.clip_len[both.held_out].sum()
            print(f"{both.family} without repeated takes: {len(both)} clips, {both.n_frames} frames, "
                  f"{both.n_frames / both.fps / 3600:.3f} h; held out {int(both.held_out.sum())} clips, "
                  f"{held / both.fps / 3600:.3f} h")
    except MocapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
