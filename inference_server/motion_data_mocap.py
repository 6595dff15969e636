"""The CMU motion-capture packs (../shared/mocap, see its README): loading, forward kinematics, the project's world
axes, grounding, the packs' joints as MediaPipe body points, and the retarget onto the Anny skeleton. numpy only (no
bpy, no torch, no GPU); the retarget is :mod:`rigs.retarget`'s solver.

Pack layout (README › Array layout): per clip ``offsets`` (J, 3) in the parent's frame, ``rot_quat`` (T, J, 4)
float16 local rotations as **x, y, z, w**, ``root_pos`` (T, 3); metres, **y up**, 30 fps. Forward kinematics::

    R_w[j] = R_w[p] · R_l[j],     x[j] = x[p] + R_w[p] · offset[j],     x[0] = root_pos,  R_w[0] = R_l[0]

At zero rotation every skeleton stands in a T-pose facing +Z (y up), its left side toward +X.

World axes (DESIGN §2, take.py): metres, Z up, right-handed; a subject at rest faces −Y with its left toward +X (Anny's
rest). The pack's axes map onto them by the rotation A = Rx(+90°)::

    (x, y, z)_pack → (x, −z, y)_world,      p_world = A p_pack,      R_world = A R_pack Aᵀ

(+Y up becomes +Z up, the +Z the T-pose faces becomes −Y, +X stays the subject's left; det A = +1, so no mirror).

The retarget (:func:`retarget_clip`) drives Anny's body bones with :func:`rigs.retarget.solve`: each mapped Anny bone's
aim (the direction to the next mapped joint along the limb) is turned onto the mocap's on every frame, twist follows
the mocap bone, and the root path is the mocap hips' path scaled by the legs' length ratio (the hips' height above
the toes at rest). Anny's fingers and the bones between mapped ones stay at rest (the packs' finger data is noise).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .motion_data_augment import floor_height

if TYPE_CHECKING:
    from rigs.retarget import Plan
    from rigs.retarget import Skeleton as RetargetSkeleton

    from .anny_skeleton import Skeleton

PACK_FILES = {"daz": "cmu_daz_30fps.npz", "mb": "cmu_mb_30fps.npz"}
MOCAP_ENV = "REEL2RIG_MOCAP_DIR"

# The pack's y-up axes → the world's z-up axes (module docstring).
A_PACK2WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


SOLE_POINTS = (29, 31, 30, 32)   # MediaPipe heel.L, toe.L, heel.R, toe.R: the Take's foot_contact order
                                 # (world.SOLE_MARKERS)


class MocapError(Exception):
    """A pack is missing or malformed; the message names the file and the fix."""


# ---------------------------------------------------------------------------------------------------------------
# Loading


def default_mocap_dir() -> Path:
    """``$REEL2RIG_MOCAP_DIR``, else ``../shared/mocap`` next to the checkout."""
    from .config import PROJECT_ROOT

    env = os.environ.get(MOCAP_ENV)
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "mocap"


def pack_path(pack: str | os.PathLike[str], mocap_dir: str | os.PathLike[str] | None = None) -> Path:
    """A pack by family name ("daz", "mb") in ``mocap_dir`` (default :func:`default_mocap_dir`), or a file path."""
    name = str(pack)
    if name in PACK_FILES:
        return Path(mocap_dir) / PACK_FILES[name] if mocap_dir is not None else default_mocap_dir() / PACK_FILES[name]
    return Path(pack)


@dataclasses.dataclass(frozen=True)
class MocapClip:
    """One clip of a pack, in the pack's own axes (y up, metres)."""
    clip_id: str
    subject: str
    category: str
    family: str                    # "daz" or "mb": the skeleton
    joint_names: tuple[str, ...]
    parents: np.ndarray            # (J,) int, −1 for the root (joint 0)
    offsets: np.ndarray            # (J, 3) float64 rest offsets in the parent's frame
    end_site_parents: np.ndarray   # (E,) int
    end_site_offsets: np.ndarray   # (E, 3) float64
    quat_xyzw: np.ndarray          # (T, J, 4) float64 unit local rotations, x y z w
    root_pos: np.ndarray           # (T, 3) float64 hips translation, y up, as captured
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.root_pos.shape[0])


@dataclasses.dataclass(frozen=True)
class MocapPack:
    """A whole pack in memory (arrays as stored; :meth:`clip` converts one clip to float64)."""
    path: Path
    family: str
    joint_names: tuple[str, ...]
    parents: np.ndarray            # (J,)
    end_site_parents: np.ndarray   # (E,)
    offsets: np.ndarray            # (N, J, 3) float32
    end_site_offsets: np.ndarray   # (N, E, 3) float32
    rot_quat: np.ndarray           # (sumT, J, 4) float16 xyzw
    root_pos: np.ndarray           # (sumT, 3) float32
    clip_start: np.ndarray         # (N,)
    clip_len: np.ndarray           # (N,)
    clip_ids: tuple[str, ...]
    subjects: tuple[str, ...]
    categories: tuple[str, ...]
    descriptions: tuple[str, ...]  # CMU's words for each take ("walk on uneven terrain")
    skeleton_exact: np.ndarray     # (N,) bool
    fps: float

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def n_frames(self) -> int:
        return int(self.clip_len.sum())

    def subset(self, indices: Sequence[int]) -> "MocapPack":
        """The same pack with only the clips ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = np.concatenate([np.arange(self.clip_start[i], self.clip_start[i] + self.clip_len[i]) for i in idx]
                              ) if len(idx) else np.zeros(0, dtype=np.int64)
        lengths = self.clip_len[idx]
        return dataclasses.replace(
            self, offsets=self.offsets[idx], end_site_offsets=self.end_site_offsets[idx],
            rot_quat=self.rot_quat[rows], root_pos=self.root_pos[rows],
            clip_start=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(idx) else lengths,
            clip_len=lengths, clip_ids=tuple(self.clip_ids[i] for i in idx),
            subjects=tuple(self.subjects[i] for i in idx), categories=tuple(self.categories[i] for i in idx),
            descriptions=tuple(self.descriptions[i] for i in idx), skeleton_exact=self.skeleton_exact[idx])

    def clip(self, i: int) -> MocapClip:
        s, n = int(self.clip_start[i]), int(self.clip_len[i])
        q = self.rot_quat[s:s + n].astype(np.float64)
        q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)  # float16 storage: renormalise
        return MocapClip(clip_id=self.clip_ids[i], subject=self.subjects[i], category=self.categories[i],
                         family=self.family, joint_names=self.joint_names, parents=self.parents,
                         offsets=self.offsets[i].astype(np.float64), end_site_parents=self.end_site_parents,
                         end_site_offsets=self.end_site_offsets[i].astype(np.float64), quat_xyzw=q,
                         root_pos=self.root_pos[s:s + n].astype(np.float64), fps=self.fps)


_REQUIRED = ("joint_names", "parents", "offsets", "end_site_parents", "end_site_offsets", "root_pos", "rot_quat",
             "clip_start", "clip_len", "clip_id", "subject", "category", "fps")


def load_pack(pack: str | os.PathLike[str], mocap_dir: str | os.PathLike[str] | None = None) -> MocapPack:
    """Load a pack: ``pack`` is "daz" / "mb" (found in ``mocap_dir`` or :func:`default_mocap_dir`) or a file path.

    Raises :class:`MocapError` naming the file and the fix when it is missing or lacks an array."""
    path = pack_path(pack, mocap_dir)
    if not path.is_file():
        raise MocapError(f"motion-capture pack not found: {path}. Put the CMU packs ({', '.join(PACK_FILES.values())})"
                         f" in ../shared/mocap next to the checkout, or point ${MOCAP_ENV} or --mocap at their folder")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise MocapError(f"cannot read the motion-capture pack {path} ({exc}); copy it again from its source") from exc
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise MocapError(f"{path} is not a motion-capture pack: arrays {missing} are missing (see ../shared/mocap/"
                         "README.md for the layout)")
    names = tuple(str(n) for n in data["joint_names"])
    family = str(data["skeleton_family"]) if "skeleton_family" in data else ("daz" if "hip" in names else "mb")
    if "up_axis" in data and str(data["up_axis"]) != "y":
        raise MocapError(f"{path}: up axis {data['up_axis']!s} is not supported (the packs are y-up)")
    n_clips = len(data["clip_id"])
    return MocapPack(
        path=path, family=family, joint_names=names, parents=data["parents"].astype(np.int64),
        end_site_parents=data["end_site_parents"].astype(np.int64), offsets=data["offsets"],
        end_site_offsets=data["end_site_offsets"], rot_quat=data["rot_quat"], root_pos=data["root_pos"],
        clip_start=data["clip_start"].astype(np.int64), clip_len=data["clip_len"].astype(np.int64),
        clip_ids=tuple(str(c) for c in data["clip_id"]), subjects=tuple(str(s) for s in data["subject"]),
        categories=tuple(str(c) for c in data["category"]),
        descriptions=tuple(str(c) for c in data["description"]) if "description" in data else ("",) * n_clips,
        skeleton_exact=(data["skeleton_exact"].astype(bool) if "skeleton_exact" in data
                        else np.zeros(n_clips, dtype=bool)),
        fps=float(data["fps"]))


# ---------------------------------------------------------------------------------------------------------------
# Forward kinematics and axes


def quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions x, y, z, w → (..., 3, 3) rotation matrices (column vectors)."""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                  2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                  2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1)
    return R.reshape(q.shape[:-1] + (3, 3))


def mocap_fk(parents: np.ndarray, offsets: np.ndarray, local_R: np.ndarray, root_pos: np.ndarray,
             end_site_parents: np.ndarray | None = None, end_site_offsets: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BVH forward kinematics (module docstring), in whatever axes the inputs are given.

    parents (J,), offsets (J, 3), local_R (T, J, 3, 3), root_pos (T, 3), end sites (E,), (E, 3) →
    (global rotations (T, J, 3, 3), joint positions (T, J, 3), end-site positions (T, E, 3)).
    """
    n_frames, n_joints = local_R.shape[:2]
    R_w = np.empty((n_frames, n_joints, 3, 3))
    pos = np.empty((n_frames, n_joints, 3))
    for j in range(n_joints):
        p = int(parents[j])
        if p < 0:
            R_w[:, j] = local_R[:, j]
            pos[:, j] = root_pos
        else:
            if p >= j:
                raise MocapError(f"joint {j}'s parent {p} does not come before it")
            R_w[:, j] = R_w[:, p] @ local_R[:, j]
            pos[:, j] = pos[:, p] + R_w[:, p] @ offsets[j]
    if end_site_parents is None or end_site_offsets is None or len(end_site_parents) == 0:
        return R_w, pos, np.zeros((n_frames, 0, 3))
    ep = np.asarray(end_site_parents, dtype=np.int64)
    ends = pos[:, ep] + np.einsum("teij,ej->tei", R_w[:, ep], end_site_offsets)
    return R_w, pos, ends


def pack_to_world_points(p: np.ndarray) -> np.ndarray:
    """(..., 3) pack (y-up) positions or directions → world (z-up): (x, y, z) → (x, −z, y)."""
    p = np.asarray(p, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def pack_to_world_rotations(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations acting on pack coordinates → the same rotations on world coordinates: A R Aᵀ."""
    return A_PACK2WORLD @ np.asarray(R, dtype=np.float64) @ A_PACK2WORLD.T


@dataclasses.dataclass(frozen=True)
class ClipWorld:
    """A clip posed in the world (z up, metres), joints then end sites: names ``<joint>`` and ``<parent>_end``."""
    clip: MocapClip
    names: tuple[str, ...]         # J joints + E end sites
    parents: np.ndarray            # (J+E,)
    rotations: np.ndarray          # (T, J+E, 3, 3) world rotations (an end site takes its parent's)
    positions: np.ndarray          # (T, J+E, 3) world positions, grounded (floor at z = 0)
    rest_positions: np.ndarray     # (J+E, 3) world positions at zero rotation, root at the origin
    floor_shift: float             # what grounding added to z
    first_frame: int = 0           # the original clip's frame of frame 0 (glitched leading frames trimmed)


def end_site_names(joint_names: Sequence[str], end_site_parents: np.ndarray) -> tuple[str, ...]:
    return tuple(f"{joint_names[int(p)]}_end" for p in end_site_parents)


def foot_points(family: str) -> tuple[str, ...]:
    """The joints and end sites the feet touch the floor with (ankles, toes) in a pack's skeleton."""
    if family == "daz":
        return ("lFoot", "rFoot", "lFoot_end", "rFoot_end")
    return ("LeftFoot", "RightFoot", "LeftToeBase", "RightToeBase", "LeftToeBase_end", "RightToeBase_end")


GLITCH_SPEED_MPS = 5.0    # a step into or out of an end frame where the fastest joint moves faster than this, and
GLITCH_RATIO = 3.0        # this many times faster than the median of the next GLITCH_CONTEXT steps, is a glitch:
GLITCH_CONTEXT = 8        # most Daz clips start with a frame or two blended with the T-pose that the packer
GLITCH_MAX_FRAMES = 3     # removed (joints jump 15-25 m/s into the next frame, then move at 1 m/s)


def glitch_trim(positions: np.ndarray, fps: float) -> tuple[int, int]:
    """[first, stop) frames of a clip (positions (T, J, 3)) without glitched frames at either end."""
    n = len(positions)
    if n < GLITCH_MAX_FRAMES + GLITCH_CONTEXT + 2:
        return 0, n
    step = np.linalg.norm(np.diff(positions, axis=0), axis=-1).max(axis=1) * fps      # (T-1,) m/s

    def glitch(k: int, context: np.ndarray) -> bool:
        return bool(step[k] > max(GLITCH_SPEED_MPS, GLITCH_RATIO * float(np.median(context))))

    first, stop = 0, n
    while first < GLITCH_MAX_FRAMES and glitch(first, step[first + 1:first + 1 + GLITCH_CONTEXT]):
        first += 1
    while n - stop < GLITCH_MAX_FRAMES and glitch(stop - 2, step[stop - 2 - GLITCH_CONTEXT:stop - 2]):
        stop -= 1
    return first, stop


def trimmed(clip: MocapClip, first: int, stop: int) -> MocapClip:
    return dataclasses.replace(clip, quat_xyzw=clip.quat_xyzw[first:stop], root_pos=clip.root_pos[first:stop])


def clip_world(clip: MocapClip, ground: bool = True, trim: bool = True) -> ClipWorld:
    """FK of a clip in world axes, without glitched end frames (:func:`glitch_trim`, ``trim``) and grounded (the
    floor, :func:`~.motion_data_augment.floor_height` of the feet's joints, moved to z = 0). ``ClipWorld.clip`` is
    the trimmed clip."""
    local = quat_xyzw_to_matrix(clip.quat_xyzw)                                   # (T, J, 3, 3)
    R_pack, pos_pack, ends_pack = mocap_fk(clip.parents, clip.offsets, local, clip.root_pos,
                                           clip.end_site_parents, clip.end_site_offsets)
    first = 0
    if trim:
        first, stop = glitch_trim(pos_pack, clip.fps)
        if (first, stop) != (0, clip.n_frames):
            clip = trimmed(clip, first, stop)
            local, R_pack, pos_pack, ends_pack = (a[first:stop] for a in (local, R_pack, pos_pack, ends_pack))
    zero = np.broadcast_to(np.eye(3), (1,) + local.shape[1:]).copy()
    _, rest_pack, rest_ends = mocap_fk(clip.parents, clip.offsets, zero, np.zeros((1, 3)),
                                       clip.end_site_parents, clip.end_site_offsets)
    names = clip.joint_names + end_site_names(clip.joint_names, clip.end_site_parents)
    parents = np.concatenate([clip.parents, clip.end_site_parents]).astype(np.int64)
    rotations = pack_to_world_rotations(np.concatenate([R_pack, R_pack[:, clip.end_site_parents]], axis=1))
    positions = pack_to_world_points(np.concatenate([pos_pack, ends_pack], axis=1))  # (T, J+E, 3)
    rest = pack_to_world_points(np.concatenate([rest_pack, rest_ends], axis=1)[0])
    shift = 0.0
    if ground:
        feet = [names.index(n) for n in foot_points(clip.family) if n in names]
        shift = -floor_height(positions[:, feet], clip.fps)
        positions[..., 2] += shift
    return ClipWorld(clip=clip, names=names, parents=parents, rotations=rotations, positions=positions,
                     rest_positions=rest, floor_shift=shift, first_frame=first)


# ---------------------------------------------------------------------------------------------------------------
# The packs' joints as MediaPipe pose landmarks

# MediaPipe pose index → (joint or end site, offset in that joint's rest frame in the PACK's axes: x left, y up,
# z forward, metres). Offsets are estimates where the skeleton has no such point (nose, eyes, ears on the head,
# from Anny's own head markers); heels (29, 30), the eye corners, the mouth and the hand points (17-22: finger data
# is noise) are missing.
_HEAD_MB = {0: (0.0, 0.01, 0.11), 2: (0.03, 0.04, 0.09), 5: (-0.03, 0.04, 0.09), 7: (0.074, 0.022, 0.0),
            8: (-0.074, 0.022, 0.0)}
MEDIAPIPE_FROM_MOCAP: dict[str, dict[int, tuple[str, tuple[float, float, float]]]] = {
    "mb": {**{k: ("Head", v) for k, v in _HEAD_MB.items()},
           11: ("LeftArm", (0, 0, 0)), 12: ("RightArm", (0, 0, 0)), 13: ("LeftForeArm", (0, 0, 0)),
           14: ("RightForeArm", (0, 0, 0)), 15: ("LeftHand", (0, 0, 0)), 16: ("RightHand", (0, 0, 0)),
           23: ("LeftUpLeg", (0, 0, 0)), 24: ("RightUpLeg", (0, 0, 0)), 25: ("LeftLeg", (0, 0, 0)),
           26: ("RightLeg", (0, 0, 0)), 27: ("LeftFoot", (0, 0, 0)), 28: ("RightFoot", (0, 0, 0)),
           31: ("LeftToeBase_end", (0, 0, 0)), 32: ("RightToeBase_end", (0, 0, 0))},
    # Daz: the eyes are real (static) joints 8 cm above the head joint; the nose 3 cm below them and 2 cm ahead.
    "daz": {0: ("head", (0.0, 0.05, 0.10)), 2: ("leftEye", (0, 0, 0)), 5: ("rightEye", (0, 0, 0)),
            7: ("head", (0.074, 0.06, 0.0)), 8: ("head", (-0.074, 0.06, 0.0)),
            11: ("lShldr", (0, 0, 0)), 12: ("rShldr", (0, 0, 0)), 13: ("lForeArm", (0, 0, 0)),
            14: ("rForeArm", (0, 0, 0)), 15: ("lHand", (0, 0, 0)), 16: ("rHand", (0, 0, 0)),
            23: ("lThigh", (0, 0, 0)), 24: ("rThigh", (0, 0, 0)), 25: ("lShin", (0, 0, 0)),
            26: ("rShin", (0, 0, 0)), 27: ("lFoot", (0, 0, 0)), 28: ("rFoot", (0, 0, 0)),
            31: ("lFoot_end", (0, 0, 0)), 32: ("rFoot_end", (0, 0, 0))},
}


def mediapipe_points(world: ClipWorld) -> tuple[np.ndarray, np.ndarray]:
    """The clip's body points in MediaPipe's 33-landmark layout: (points (T, 33, 3) world, NaN where missing,
    present (33,) bool)."""
    table = MEDIAPIPE_FROM_MOCAP[world.clip.family]
    n_frames = world.positions.shape[0]
    points = np.full((n_frames, 33, 3), np.nan)
    present = np.zeros(33, dtype=bool)
    for mp, (name, offset) in table.items():
        j = world.names.index(name)
        d = pack_to_world_points(np.asarray(offset, dtype=np.float64))     # rest-frame offset in world axes
        points[:, mp] = world.positions[:, j] + world.rotations[:, j] @ d
        present[mp] = True
    return points, present


# ---------------------------------------------------------------------------------------------------------------
# Retarget onto Anny

# Canonical joint (rigs/humanoid.py) → pack joint. Fingers and thumbs are left out (noise); the Daz toes are its
# foot's end site (toe tip), so its feet have an aim too.
SOURCE_MAPS: dict[str, dict[str, str]] = {
    "mb": {"hips": "Hips", "spine": "LowerBack", "chest": "Spine", "upper_chest": "Spine1", "neck": "Neck1",
           "head": "Head",
           **{f"{c}.{s}": f"{side}{b}" for s, side in (("L", "Left"), ("R", "Right")) for c, b in (
               ("upper_arm", "Arm"), ("lower_arm", "ForeArm"), ("hand", "Hand"), ("upper_leg", "UpLeg"),
               ("lower_leg", "Leg"), ("foot", "Foot"), ("toes", "ToeBase"))},
           "shoulder.L": "LeftShoulder", "shoulder.R": "RightShoulder"},
    "daz": {"hips": "hip", "spine": "abdomen", "upper_chest": "chest", "neck": "neck", "head": "head",
            **{f"{c}.{s}": f"{side}{b}" for s, side in (("L", "l"), ("R", "r")) for c, b in (
                ("shoulder", "Collar"), ("upper_arm", "Shldr"), ("lower_arm", "ForeArm"), ("hand", "Hand"),
                ("upper_leg", "Thigh"), ("lower_leg", "Shin"), ("foot", "Foot"), ("toes", "Foot_end"))}},
}

_FINGER_WORDS = ("thumb", "index", "middle", "ring", "little")


def anny_body_map() -> dict[str, str]:
    """Anny's bone map (rigs/maps/anny.toml) without the fingers: canonical joint → Anny bone."""
    from rigs import bonemap

    bones = bonemap.builtin_maps()["anny"].bones
    return {j: b for j, b in bones.items() if not j.startswith(_FINGER_WORDS)}


def source_skeleton(world: ClipWorld) -> "RetargetSkeleton":
    """The clip's skeleton at rest for the retarget solver: identity bone axes (a BVH joint's rest frame is the
    world's), heads at the T-pose joint positions, world axes (z up)."""
    from rigs.retarget import Skeleton as RetargetSkeleton

    n = len(world.names)
    rest = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    rest[:, :3, 3] = world.rest_positions
    return RetargetSkeleton(names=list(world.names), parents=world.parents, rest=rest)


def source_armature(world: ClipWorld) -> np.ndarray:
    """(T, J+E, 4, 4) posed source matrices for the solver (rest axes are identity, so world rotation = pose)."""
    n_frames, n = world.positions.shape[:2]
    arm = np.zeros((n_frames, n, 4, 4))
    arm[..., :3, :3] = world.rotations
    arm[..., :3, 3] = world.positions
    arm[..., 3, 3] = 1.0
    return arm


def anny_target(skel: "Skeleton") -> "RetargetSkeleton":
    from rigs.retarget import Skeleton as RetargetSkeleton

    return RetargetSkeleton(names=list(skel.names), parents=skel.parents, rest=skel.rest)


def retarget_plan(world: ClipWorld, skel: "Skeleton") -> "Plan":
    """The solver's plan from this clip's skeleton onto Anny's body (rest alignment, leg-length ratio)."""
    from rigs import retarget

    return retarget.plan(source_skeleton(world), SOURCE_MAPS[world.clip.family], anny_target(skel),
                         anny_body_map(), translation_bone="root")


def body_bones(skel: "Skeleton") -> np.ndarray:
    """Indices (B,) of the Anny bones the retarget drives (mapped body bones, root first, parents before
    children): the rotations a motion network predicts. Every other bone stays at rest."""
    bones = anny_body_map()
    wanted = {skel.index(b) for b in bones.values() if b in skel.names}
    return np.array(sorted(wanted), dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class Retargeted:
    """A clip on Anny: body-bone local rotations (the Take's convention) and the root's world position."""
    local_aa: np.ndarray       # (T, B, 3) float64, bones ``body_bones(skel)``, axis-angle in each bone's rest axes
    root_pos: np.ndarray       # (T, 3) float64 world, grounded by Anny's own soles
    aim_error_deg: np.ndarray  # (T, K) angle between the mocap's and Anny's aim per mapped pair with an aim
    pair_names: tuple[str, ...]  # (K,) canonical joints of those pairs
    leg_ratio: float           # ρ: Anny's legs / the mocap's
    floor_shift: float         # what Anny's grounding added to z


def expand_body(local_aa: np.ndarray, bones: np.ndarray, n_bones: int) -> np.ndarray:
    """(T, B, 3) body-bone rotations → (T, J, 3) for the whole skeleton, zero (rest) elsewhere."""
    full = np.zeros(local_aa.shape[:-2] + (n_bones, 3))
    full[..., bones, :] = local_aa
    return full


def anny_sole_points(skel: "Skeleton", W: np.ndarray) -> np.ndarray:
    """(T, 4, 3) Anny's sole markers [heel.L, toe.L, heel.R, toe.R] from posed matrices W (T, J, 4, 4)."""
    from .anny_skeleton import attached_points

    idx = list(SOLE_POINTS)
    return attached_points(W, skel.body_marker_bone[idx], skel.body_marker_local[idx])


def retarget_clip(world: ClipWorld, skel: "Skeleton", plan: "Plan | None" = None) -> Retargeted:
    """Retarget a grounded clip onto Anny (module docstring), then ground Anny on its own soles.

    The aim error is measured on what is stored: the float32 body rotations posed again by :mod:`rigs.fk`."""
    from rigs import retarget
    from rigs.fk import forward_kinematics
    from rigs.rotations import matrix_to_aa

    plan = plan if plan is not None else retarget_plan(world, skel)
    source = source_armature(world)
    result = retarget.solve(plan, source)
    bones = body_bones(skel)
    local_aa = matrix_to_aa(result.local_rotations[:, bones])                    # (T, B, 3)
    root = result.armature_matrices[:, 0, :3, 3].copy()                           # (T, 3)
    # Ground on Anny's soles: the legs' ratio puts the hips at the right height only as far as Anny's and the
    # mocap's feet are alike.
    full = expand_body(local_aa.astype(np.float32), bones, len(skel.names))
    W = forward_kinematics(skel.rest, skel.parents, full, root)
    shift = -floor_height(anny_sole_points(skel, W), world.clip.fps)
    root[:, 2] += shift
    W[..., 2, 3] += shift
    err = retarget.aim_errors_deg(plan, source, W)
    aimed = np.array([p.aim is not None for p in plan.pairs])
    return Retargeted(local_aa=local_aa, root_pos=root, aim_error_deg=err[:, aimed],
                      pair_names=tuple(p.joint for p, a in zip(plan.pairs, aimed) if a), leg_ratio=plan.leg_ratio,
                      floor_shift=shift)


# MediaPipe body segments shared by the packs' points and Anny's markers (limbs, feet, shoulder and hip lines).
SEGMENTS = ((11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32),
            (12, 11), (24, 23))


def segment_errors_deg(points_a: np.ndarray, points_b: np.ndarray,
                       segments: Sequence[tuple[int, int]] = SEGMENTS) -> np.ndarray:
    """(T, S) angle in degrees between the directions of the same segments a→b in two (T, 33, 3) point sets."""
    ia, ib = np.array([s[0] for s in segments]), np.array([s[1] for s in segments])
    da = points_a[:, ib] - points_a[:, ia]
    db = points_b[:, ib] - points_b[:, ia]
    cos = np.sum(da * db, axis=-1) / np.maximum(np.linalg.norm(da, axis=-1) * np.linalg.norm(db, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def anny_markers(skel: "Skeleton", W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anny's body markers (MediaPipe layout) from posed matrices (T, J, 4, 4): (points (T, 33, 3) with NaN where
    Anny has no marker, present (33,) bool)."""
    from .anny_skeleton import attached_points

    present = skel.body_marker_bone >= 0
    points = np.full(W.shape[:1] + (33, 3), np.nan)
    idx = np.nonzero(present)[0]
    points[:, idx] = attached_points(W, skel.body_marker_bone[idx], skel.body_marker_local[idx])
    return points, present
