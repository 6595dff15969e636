"""Labels and augmentations of a body motion for the motion network's training data. numpy only (no bpy, no torch).

A motion here is what a Take carries for a body, restricted to the bones a network predicts: ``local_aa`` (T, B, 3)
local rotations (axis-angle in each bone's rest axes, Blender's ``matrix_basis``; bone 0 the root, whose rest axes
are the world's for Anny) and ``root_pos`` (T, 3) world positions (metres, Z up, floor z = 0).

Labels
------
* Foot contact (:func:`foot_contacts`): a sole point is planted while it is lower than ``height_m`` above the floor
  and moves slower than ``speed_mps`` (3D speed over ±1 frame).
* Heading (:func:`heading_angle`): the yaw ψ of the root's forward direction; 0 faces −Y (Anny's rest), positive
  turns toward the subject's left (+X), so the forward direction is (sin ψ, −cos ψ, 0).
* Root velocity in the heading frame (:func:`root_velocity_heading`): Rz(ψ)ᵀ v_world, m/s, i.e. in axes where the
  subject faces −Y (x its left, −y ahead, z up).

Augmentations
-------------
* Mirror (:func:`mirror_motion`): the reflection x → −x of the world with left and right swapped. For a skeleton
  whose right side is the mirror image of its left with bone X kept (Anny, bench/motions.py), a rotation R of a bone
  becomes D R D on its mirror bone (D = diag(−1, 1, 1)), which for axis-angle is (x, y, z) → (x, −y, −z); the root
  position becomes (−x, y, z). Mirroring twice is the identity.
* Speed (:func:`change_speed`): resampled at times k·s (frames) for speed factor s, rotations by quaternion slerp,
  positions linearly; s = 1 returns the motion unchanged.
* Heading (:func:`rotate_heading`): the whole motion turned about the world Z axis through a pivot.
"""
from __future__ import annotations

import numpy as np

CONTACT_HEIGHT_M = 0.08   # a sole point this close to the floor ...
CONTACT_SPEED_MPS = 0.4   # ... and slower than this is planted (retargeted feet slide a little: a running
                          # stance's points move 0.2-0.5 m/s at 30 fps; a swinging foot 2-7 m/s)
FLOOR_PERCENTILE = 10.0   # the floor: this percentile of the foot points' heights while they are still
FLOOR_MIN_STILL = 10      # fewer still samples than this: the 5th percentile of the lowest point instead


# ---------------------------------------------------------------------------------------------------------------
# Labels


def point_speed(points: np.ndarray, fps: float) -> np.ndarray:
    """(T, K, 3) → (T, K) speed in m/s by central differences over ±1 frame (one-sided at the ends)."""
    p = np.asarray(points, dtype=np.float64)
    n = p.shape[0]
    if n < 2:
        return np.zeros(p.shape[:2])
    a = np.maximum(np.arange(n) - 1, 0)
    b = np.minimum(np.arange(n) + 1, n - 1)
    return np.linalg.norm(p[b] - p[a], axis=-1) * fps / (b - a)[:, None]


def floor_height(points: np.ndarray, fps: float, speed_mps: float = CONTACT_SPEED_MPS,
                 percentile: float = FLOOR_PERCENTILE) -> float:
    """The floor under a clip from its foot points (T, K, 3): the low ``percentile`` of their heights on the frames
    where they are still (slower than ``speed_mps``).

    Not the lowest point overall: a foot without a toe joint (the Daz skeleton, Anny's toes at rest) pivots on the
    ball as the heel lifts and its toe tip dips 3-10 cm under the floor for a frame or two each step, which would
    put a walk's planted feet that far above it. A clip whose feet are never still (fewer than
    :data:`FLOOR_MIN_STILL` samples) falls back to the 5th percentile of the lowest point per frame."""
    p = np.asarray(points, dtype=np.float64)
    h = p[..., 2]
    still = h[point_speed(p, fps) < speed_mps]
    if still.size >= FLOOR_MIN_STILL:
        return float(np.percentile(still, percentile))
    return float(np.percentile(h.min(axis=1), 5.0))


def foot_contacts(sole_points: np.ndarray, fps: float, floor_z: float = 0.0, height_m: float = CONTACT_HEIGHT_M,
                  speed_mps: float = CONTACT_SPEED_MPS) -> np.ndarray:
    """(T, K, 3) sole points (the Take's order: heel.L, toe.L, heel.R, toe.R) → (T, K) bool contact."""
    h = np.asarray(sole_points)[..., 2] - floor_z
    return (h < height_m) & (point_speed(sole_points, fps) < speed_mps)


def rot_z(angle: np.ndarray | float) -> np.ndarray:
    """(...,) angles (radians) → (..., 3, 3) rotations about the world Z axis."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 0, 0], R[..., 0, 1], R[..., 1, 0], R[..., 1, 1], R[..., 2, 2] = c, -s, s, c, 1.0
    return R


def root_world_rotation(root_aa: np.ndarray, rest_root_R: np.ndarray | None = None) -> np.ndarray:
    """(T, 3) root local rotations → (T, 3, 3) the body's world rotation relative to its rest:
    G = Rest_R · R(aa) · Rest_Rᵀ (Rest_R, the root's rest rotation, is the identity for Anny)."""
    from rigs.rotations import aa_to_matrix

    L = aa_to_matrix(root_aa)
    if rest_root_R is None:
        return L
    Rr = np.asarray(rest_root_R, dtype=np.float64)
    return Rr @ L @ Rr.T


def heading_angle(G_root: np.ndarray) -> np.ndarray:
    """(T, 3, 3) root world rotations (relative to rest, which faces −Y) → (T,) heading ψ (radians).

    The forward direction f = G (0, −1, 0) projected on the floor is (sin ψ, −cos ψ), so ψ = atan2(f_x, −f_y)."""
    f = -G_root[..., :, 1]
    return np.arctan2(f[..., 0], -f[..., 1])


def root_velocity_heading(root_pos: np.ndarray, heading: np.ndarray, fps: float) -> np.ndarray:
    """(T, 3) root positions, (T,) heading → (T, 3) root velocity (m/s) in the heading frame, Rz(ψ)ᵀ v."""
    p = np.asarray(root_pos, dtype=np.float64)
    n = len(p)
    if n < 2:
        return np.zeros_like(p)
    a = np.maximum(np.arange(n) - 1, 0)
    b = np.minimum(np.arange(n) + 1, n - 1)
    v = (p[b] - p[a]) * fps / (b - a)[:, None]                                   # (T, 3) world
    return np.einsum("tji,tj->ti", rot_z(heading), v)


# ---------------------------------------------------------------------------------------------------------------
# Mirror


def side_swap_index(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(N,) index of each name's mirror (``.L`` ↔ ``.R``; others map to themselves). Raises when a side lacks
    its mirror."""
    index = {n: i for i, n in enumerate(names)}
    out = np.arange(len(names))
    for i, n in enumerate(names):
        if n.endswith((".L", ".R")):
            other = n[:-2] + (".R" if n.endswith(".L") else ".L")
            if other not in index:
                raise ValueError(f"{n} has no mirror bone {other}")
            out[i] = index[other]
    return out


def mirror_rotations_aa(aa: np.ndarray, swap: np.ndarray) -> np.ndarray:
    """(..., B, 3) local rotations → the mirrored motion's: each bone takes its mirror's rotation with the Y and Z
    components negated (D R D for D = diag(−1, 1, 1), module docstring)."""
    out = np.asarray(aa)[..., swap, :].copy()
    out[..., 1:] *= -1.0
    return out


def mirror_positions(p: np.ndarray, swap: np.ndarray | None = None) -> np.ndarray:
    """(..., 3) world positions (or (..., K, 3) with ``swap`` (K,) for left/right-labelled points) reflected
    x → −x."""
    out = np.asarray(p, dtype=np.float64)
    if swap is not None:
        out = out[..., swap, :]
    out = out.copy()
    out[..., 0] *= -1.0
    return out


def mirror_motion(local_aa: np.ndarray, root_pos: np.ndarray, swap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, B, 3), (T, 3) → the mirrored motion (left and right swapped, reflected through the x = 0 plane)."""
    return mirror_rotations_aa(local_aa, swap).astype(np.asarray(local_aa).dtype), mirror_positions(root_pos)


# ---------------------------------------------------------------------------------------------------------------
# Speed


def slerp_aa(aa0: np.ndarray, aa1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation between rotations (..., 3) at weights w (...,) in [0, 1] (0 → aa0, 1 → aa1)."""
    from rigs.rotations import aa_to_quat, quat_to_aa

    q0, q1 = aa_to_quat(aa0), aa_to_quat(aa1)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)                                  # the short way round
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))                       # half the angle between the rotations
    w = np.asarray(w, dtype=np.float64)[..., None]
    sin = np.sin(theta)
    small = sin < 1e-6
    # slerp(q0, q1; w) = sin((1−w)θ)/sin θ · q0 + sin(wθ)/sin θ · q1  (linear where θ ≈ 0)
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / np.where(small, 1.0, sin))
    b = np.where(small, w, np.sin(w * theta) / np.where(small, 1.0, sin))
    q = a * q0 + b * q1
    return quat_to_aa(q / np.linalg.norm(q, axis=-1, keepdims=True))


def resample_times(n_frames: int, factor: float) -> np.ndarray:
    """Source frame times (fractional) of a motion played ``factor`` times faster: 0, s, 2s, … ≤ n − 1."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    n_out = int(np.floor((n_frames - 1) / factor + 1e-9)) + 1
    return np.arange(n_out) * factor


def resample(local_aa: np.ndarray, root_pos: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The motion at fractional frame ``times`` (N,): rotations slerped, positions interpolated linearly."""
    aa = np.asarray(local_aa, dtype=np.float64)
    p = np.asarray(root_pos, dtype=np.float64)
    t = np.clip(np.asarray(times, dtype=np.float64), 0, len(p) - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(p) - 1)
    w = t - i0                                                        # (N,)
    rot = slerp_aa(aa[i0], aa[i1], np.broadcast_to(w[:, None], aa[i0].shape[:-1]))
    rot = np.where((w == 0)[:, None, None], aa[i0], rot)              # exact at whole frames
    pos = p[i0] * (1.0 - w[:, None]) + p[i1] * w[:, None]
    return rot.astype(np.asarray(local_aa).dtype), pos


def change_speed(local_aa: np.ndarray, root_pos: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The motion played ``factor`` times faster at the same frame rate (N = ⌊(T − 1)/s⌋ + 1 frames)."""
    return resample(local_aa, root_pos, resample_times(len(root_pos), factor))


# ---------------------------------------------------------------------------------------------------------------
# Heading


def rotate_heading(local_aa: np.ndarray, root_pos: np.ndarray, angle: float, pivot: np.ndarray | None = None,
                   rest_root_R: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The motion turned by ``angle`` (radians, positive toward the subject's left) about the vertical through
    ``pivot`` (3,) (default: the first frame's root): the root's world rotation becomes Rz G, so its local rotation
    becomes Rest_Rᵀ Rz Rest_R L; positions p → pivot + Rz (p − pivot)."""
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    aa = np.asarray(local_aa).copy()
    p = np.asarray(root_pos, dtype=np.float64)
    Rz = rot_z(angle)
    Rr = np.eye(3) if rest_root_R is None else np.asarray(rest_root_R, dtype=np.float64)
    aa[:, 0] = matrix_to_aa(Rr.T @ Rz @ Rr @ aa_to_matrix(aa[:, 0]))
    c = p[0] if pivot is None else np.asarray(pivot, dtype=np.float64)
    c = np.array([c[0], c[1], 0.0])
    return aa, c + (p - c) @ Rz.T
