"""Procedural motions of the Anny character for the synthetic ground-truth benchmark. numpy only.

This module never imports torch, anny or bpy: it is cheap to import, and the benchmark, the tests and
``samples/make_sample_clip.py`` share its helpers (easing, key-pose tracks, finger poses, rotation maths).

Conventions (the project's, DESIGN.md §2; the same as ``samples/make_sample_clip.py``)
---------------------------------------------------------------------------------------
* A motion gives, at time t (seconds from its start), per-bone channel angles in degrees,
  ``{bone: {"X": deg, "Y": deg, "Z": deg}}``, in Anny's ``"local-bone"`` delta axes (each bone's *reference* axes,
  which are its rest axes to within a few degrees; bone Y runs along the bone), composed
  ``R = Rz(z) @ Rx(x) @ Ry(y)`` (:data:`AXIS_ORDER`, rotations about the bone's own axes).
* Anny consumes the rotations as deltas ``(T, J, 4, 4)`` with ``pose_parameterization="local-bone"``:
  ``W_c = W_p Q_p^-1 Q_c D_c`` with ``D_c = [R_c | 0]`` and ``Q`` the reference poses. The root's delta *is* its
  world pose, ``W_0 = [Rz(yaw) @ Rest_0 @ R_0 | root_position]``: ``yaw`` is :meth:`Motion.root_yaw_deg` (whole-body
  turn about world Z; 0 faces -Y, the camera), ``R_0`` the root's own channels (its rest axes are the world's, so
  root +X pitches the whole body forward), and ``root_position`` the rest root position plus the translation that
  :func:`ground_root_translation` returns (feet on the floor, no foot sliding, jumps from
  :meth:`Motion.root_lift_m`). :func:`local_bone_fk` is that forward kinematics in numpy.
* Anny at rest: A-pose, faces -Y, subject's left = +X, Z up, pelvis at the origin of its model frame.
  ``.L`` / ``.R`` are the subject's own sides.

Rotation axes (found by posing the real Anny and measuring where joints and fingertips move)
--------------------------------------------------------------------------------------------
The ``.R`` skeleton is the mirror image of ``.L`` with bone X kept, so X angles keep their sign between sides and Y/Z
angles flip (:func:`mirror`).

======================  =====  ==========================================================================
bone                    axis   meaning
======================  =====  ==========================================================================
root                    +X     whole body pitches forward (its rest axes are the world's)
spine01..05             +X     bends the trunk forward; +Y turns it to the subject's left; +Z bends it to the
                               subject's right
neck01, head            +X     nods forward / down
clavicle                +Z     .L raises the shoulder (.R: -Z)
upperarm01              X      +X raises the arm forward (both sides)
upperarm01              Z      .L -Z lowers the arm toward the side (adducts), +Z raises it; .R mirrored
upperarm01              Y      twist about the arm: .L +Y / .R -Y rotate it internally (a flexed forearm
                               swings across the belly)
lowerarm01              +X     flexes the elbow (both sides); rest is already ~43 deg flexed
lowerarm01, lowerarm02  Y      forearm twist: .L +Y / .R -Y pronate (palm toward the back when the arm hangs)
wrist                   X      +X radial deviation (hand tilts toward the thumb), both sides
wrist                   Z      .L +Z extends (back of the hand toward the forearm), -Z flexes; .R mirrored
finger{1..5}-{1,2,3}    +X     curls toward the palm (both sides); finger1 is the thumb
finger{2..5}-1          Z      .L +Z swings the finger toward the thumb side (.R -Z): spread = index +,
                               ring/little - on .L
finger1-1 (thumb)       Z      .L +Z lifts the thumb out of the palm plane toward the palm side (palmar
                               abduction, .R -Z); +X sweeps it across the palm toward the little finger
upperleg01              -X     flexes the hip (knee forward), both sides; +X extends it
upperleg01              Z      .L -Z abducts (leg out to the side), +Z adducts; .R mirrored
lowerleg01              +X     flexes the knee, both sides
foot                    -X     dorsiflexes the ankle (toes up), +X plantarflexes (points the toes)
======================  =====  ==========================================================================
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

Channels = dict[str, dict[str, float]]  # {bone: {axis: degrees}}
Pose = Channels
Keys = Sequence[tuple[float, Pose]]

AXIS_ORDER = "ZXY"  # per bone: R = Rz(z) @ Rx(x) @ Ry(y), all in the bone's own axes


# ---------------------------------------------------------------------------------------------------------------
# Easing, key-pose tracks and channel arithmetic
# ---------------------------------------------------------------------------------------------------------------
def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, 3x² - 2x³ between (zero slope at both ends)."""
    x = min(max(float(x), 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def track_value(keys: Keys, t: float, bone: str, axis: str) -> float:
    """One channel of a key-pose track at time t: keys are (time, pose) in increasing time, eased with smoothstep
    between neighbouring keys, held before the first and after the last. A pose without the channel counts as 0."""
    vals = [(kt, pose.get(bone, {}).get(axis, 0.0)) for kt, pose in keys]
    if t <= vals[0][0]:
        return vals[0][1]
    for (t0, v0), (t1, v1) in zip(vals[:-1], vals[1:]):
        if t <= t1:
            return v0 + (v1 - v0) * smoothstep((t - t0) / (t1 - t0))
    return vals[-1][1]


def tracks_channels(tracks: dict[str, Keys] | Sequence[Keys], t: float) -> Channels:
    """All (bone, axis) channels of several key-pose tracks at time t; tracks that share a channel add up."""
    out: Channels = {}
    for keys in (tracks.values() if isinstance(tracks, dict) else tracks):
        bones_axes = {(b, a) for _, pose in keys for b, ax in pose.items() for a in ax}
        for b, a in sorted(bones_axes):
            out.setdefault(b, {})[a] = out.get(b, {}).get(a, 0.0) + track_value(keys, t, b, a)
    return out


def add(*poses: Pose) -> Pose:
    """Channel-wise sum of poses (a new dict)."""
    out: Pose = {}
    for p in poses:
        for b, ch in p.items():
            dst = out.setdefault(b, {})
            for a, v in ch.items():
                dst[a] = dst.get(a, 0.0) + float(v)
    return out


def mirror(pose: Pose) -> Pose:
    """The same pose on the other side: .L <-> .R, X kept, Y and Z negated (Anny's .R bones mirror .L with bone
    X kept). Bones without a side (spine, neck, head, root) mirror too: their Y (turn) and Z (side bend) flip."""
    out: Pose = {}
    for b, ch in pose.items():
        m = b[:-2] + ".R" if b.endswith(".L") else b[:-2] + ".L" if b.endswith(".R") else b
        out[m] = {a: (v if a == "X" else -v) for a, v in ch.items()}
    return out


def both(pose_left: Pose) -> Pose:
    """A pose of left-side bones plus its mirror on the right; bones without a side are kept once, unmirrored."""
    sided = {b: ch for b, ch in pose_left.items() if b.endswith((".L", ".R"))}
    return add(pose_left, mirror(sided))


def periodic_curve(keys: Sequence[tuple[float, float]], phase: float) -> float:
    """Smooth periodic curve through (phase, value) keys, phase in [0, 1): cubic Hermite with Catmull-Rom
    tangents (non-uniform spacing), C1 everywhere including the wrap-around."""
    ph = np.array([k[0] for k in keys], dtype=float)
    val = np.array([k[1] for k in keys], dtype=float)
    n = len(ph)
    x = float(phase) % 1.0
    i = int(np.searchsorted(ph, x, side="right")) - 1  # segment [i, i+1], i in -1..n-1
    i %= n

    def p(k: int) -> tuple[float, float]:  # key k with wrap-around, phase unwrapped relative to segment i
        q, r = divmod(k, n)
        return ph[r] + q, val[r]

    (t0, v0), (t1, v1) = p(i), p(i + 1)
    (tm, vm), (t2, v2) = p(i - 1), p(i + 2)
    if x < t0:
        x += 1.0
    m0 = (v1 - vm) / (t1 - tm)
    m1 = (v2 - v0) / (t2 - t0)
    h = t1 - t0
    s = (x - t0) / h
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return float(h00 * v0 + h10 * h * m0 + h01 * v1 + h11 * h * m1)


def bump(t: float, t0: float, t1: float) -> float:
    """Smooth bump: 0 outside [t0, t1], rising to 1 at the middle (sin² shape, zero slope at the ends)."""
    if t <= t0 or t >= t1:
        return 0.0
    return math.sin(math.pi * (t - t0) / (t1 - t0)) ** 2


def window(t: float, t0: float, t1: float, t2: float, t3: float) -> float:
    """0 before t0, eases to 1 at t1, holds, eases back to 0 from t2 to t3."""
    return smoothstep((t - t0) / (t1 - t0)) * (1.0 - smoothstep((t - t2) / (t3 - t2)))


# ---------------------------------------------------------------------------------------------------------------
# Hands
# ---------------------------------------------------------------------------------------------------------------
FINGER_CURL_DEG = {1: (30.0, 40.0, 40.0), 2: (75.0, 95.0, 60.0), 3: (75.0, 95.0, 60.0), 4: (75.0, 95.0, 60.0),
                   5: (75.0, 95.0, 60.0)}  # full curl per segment (thumb folds across the palm)


def finger_curl(side: str, fingers: dict[int, float]) -> Pose:
    """Curl amount per finger (1 = thumb .. 5 = little; 0 open, 1 fist) -> per-bone X rotations in degrees."""
    out: Pose = {}
    for f, c in fingers.items():
        for seg, a in zip((1, 2, 3), FINGER_CURL_DEG[f]):
            out[f"finger{f}-{seg}.{side}"] = {"X": c * a}
    return out


def hand(side: str, thumb: float, index: float, middle: float, ring: float, little: float) -> Pose:
    return finger_curl(side, {1: thumb, 2: index, 3: middle, 4: ring, 5: little})


def finger_spread(side: str, deg: float) -> Pose:
    """Fingers spread apart by about `deg` between neighbours at the knuckles (negative: pressed together)."""
    s = 1.0 if side == "L" else -1.0
    return {f"finger2-1.{side}": {"Z": s * deg}, f"finger3-1.{side}": {"Z": s * 0.15 * deg},
            f"finger4-1.{side}": {"Z": -s * 0.8 * deg}, f"finger5-1.{side}": {"Z": -s * 1.6 * deg}}


# ---------------------------------------------------------------------------------------------------------------
# Rotation maths (numpy, float64)
# ---------------------------------------------------------------------------------------------------------------
_E = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}


def rot_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: rotation matrix (3, 3) for a unit axis and an angle in radians."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def matrix_to_axis_angle(r: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis * angle, angle in [0, pi]."""
    q = np.empty(4)  # w, x, y, z (Shepperd's method, stable near pi)
    tr = np.trace(r)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q[:] = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    if q[0] < 0:
        q = -q
    n = np.linalg.norm(q[1:])
    if n < 1e-12:
        return np.zeros(3)
    return q[1:] / n * (2.0 * np.arctan2(n, q[0]))


def local_rotation(channels: dict[str, float]) -> np.ndarray:
    """{axis: degrees} -> (3, 3) rotation R = Rz @ Rx @ Ry about the bone's own axes."""
    r = np.eye(3)
    for a in AXIS_ORDER:
        if channels.get(a, 0.0):
            r = r @ rot_axis_angle(_E[a], np.radians(channels[a]))
    return r


def yaw_matrix(deg: float) -> np.ndarray:
    """Rotation about world +Z by `deg` degrees (positive turns a subject facing -Y to its own left)."""
    return rot_axis_angle(_E["Z"], np.radians(deg))


def local_bone_fk(rest: np.ndarray, parents: np.ndarray, local_r: np.ndarray, root_world: np.ndarray,
                  reference: np.ndarray | None = None) -> np.ndarray:
    """Anny's ``"local-bone"`` forward kinematics in numpy -> world bone poses (T, J, 4, 4).

    rest (J, 4, 4) rest bone poses; parents (J,) with -1 for the root (bone 0); local_r (T, J, 3, 3) the deltas'
    rotations (the root's is ignored); root_world (T, 4, 4) the root's world pose (its delta); reference (J, 3, 3)
    Anny's ``model.reference_bone_orientations`` U (None: the rest orientations, which are within a few degrees).
    With R, h the rest rotations and heads: ``W_c = W_p [U_p^T U_c D_c | U_p^T A_p (h_c - h_p)]``, where
    ``A_p = U_p R_p^T`` (I for the root). This reproduces ``anny.Anny()(..., pose_parameterization="local-bone")``
    ``["bone_poses"]`` to float precision when given the model's reference orientations.
    """
    n_t, n_j = local_r.shape[:2]
    R, h = rest[:, :3, :3], rest[:, :3, 3]
    U = R if reference is None else reference
    W = np.zeros((n_t, n_j, 4, 4))  # (T, J, 4, 4)
    W[:, 0] = root_world
    for j in range(1, n_j):
        p = int(parents[j])
        A = np.eye(3) if p == 0 else U[p] @ R[p].T
        K = np.zeros((n_t, 4, 4))
        K[:, :3, :3] = (U[p].T @ U[j]) @ local_r[:, j]
        K[:, :3, 3] = U[p].T @ (A @ (h[j] - h[p]))
        K[:, 3, 3] = 1.0
        W[:, j] = W[:, p] @ K
    return W


# ---------------------------------------------------------------------------------------------------------------
# Key poses (left side; `both` mirrors them onto the right). Angles were chosen by posing the real Anny and
# checking joint positions and mesh clearances numerically (forearms and hands clear of the torso and thighs).
# ---------------------------------------------------------------------------------------------------------------
ARM_DOWN_L: Pose = {"upperarm01.L": {"Z": -37.0, "X": 4.0}, "lowerarm01.L": {"X": -25.0}}
HAND_RELAXED = (0.15, 0.15, 0.2, 0.25, 0.3)  # thumb .. little: the slight curl of a hand at rest
LEG_STAND_L: Pose = {"upperleg01.L": {"Z": 4.0}, "foot.L": {"Y": 2.0}}  # feet under the hips, soles flat
STAND: Pose = add(both(ARM_DOWN_L), both(LEG_STAND_L), hand("L", *HAND_RELAXED), hand("R", *HAND_RELAXED))

# Both hands up in front of the chest, palms toward the camera (-Y), fingers up: upper arm by the side, elbow
# flexed ~110 deg, forearm pronated 90 deg, wrist extended 50 deg. Wrists ~24 cm apart, ~10 cm in front of the
# chest surface, at mid-chest height.
HANDS_UP_L: Pose = {"upperarm01.L": {"X": 4.0, "Y": 16.0, "Z": -39.0}, "lowerarm01.L": {"X": 69.0, "Y": 45.0},
                    "lowerarm02.L": {"Y": 45.0}, "wrist.L": {"Z": 50.0}}


@dataclasses.dataclass(frozen=True)
class Motion:
    """A procedural motion: channel angles, whole-body yaw and lift as functions of time (seconds, clamped to
    [0, duration_s]). `phases` lists what happens when: (start_s, end_s, label)."""

    name: str
    kind: str  # "body" | "hands"
    duration_s: float
    description: str
    channels_fn: Callable[[float], Channels] = dataclasses.field(repr=False, compare=False)
    yaw_fn: Callable[[float], float] = dataclasses.field(default=lambda t: 0.0, repr=False, compare=False)
    lift_fn: Callable[[float], float] = dataclasses.field(default=lambda t: 0.0, repr=False, compare=False)
    phases: tuple[tuple[float, float, str], ...] = ()

    def _clamp(self, t: float) -> float:
        return min(max(float(t), 0.0), self.duration_s)

    def channels(self, t: float) -> Channels:
        """Per-bone channel angles at time t, degrees: {bone: {"X": deg, "Y": deg, "Z": deg}} (a new dict)."""
        return {b: {a: float(v) for a, v in ch.items()} for b, ch in self.channels_fn(self._clamp(t)).items()}

    def root_yaw_deg(self, t: float) -> float:
        """Whole-body turn about world Z, degrees (0 faces -Y, the camera; positive turns to the subject's left)."""
        return float(self.yaw_fn(self._clamp(t)))

    def root_lift_m(self, t: float) -> float:
        """Extra height of the whole body above its grounded position (a jump's flight), else 0. Metres."""
        return float(self.lift_fn(self._clamp(t)))


def local_rotations(motion: Motion, timestamps: np.ndarray, bone_names: list[str]) -> np.ndarray:
    """The motion's channel rotations at each timestamp -> (T, J, 3, 3), identity for bones it does not animate.

    The root's entry is its own channel rotation R_0 only; the whole-body yaw is separate (:meth:`Motion.root_yaw_deg`,
    see :func:`root_world_rotations`). Raises KeyError naming a channel bone missing from `bone_names`."""
    index = {n: i for i, n in enumerate(bone_names)}
    ts = np.asarray(timestamps, dtype=float).reshape(-1)
    out = np.tile(np.eye(3), (len(ts), len(bone_names), 1, 1))  # (T, J, 3, 3)
    for f, t in enumerate(ts):
        for bone, ch in motion.channels(float(t)).items():
            if bone not in index:
                raise KeyError(f"motion {motion.name!r} animates bone {bone!r}, which the skeleton does not have")
            out[f, index[bone]] = local_rotation(ch)
    return out


def root_world_rotations(motion: Motion, timestamps: np.ndarray, local_r_root: np.ndarray,
                         rest_root_rotation: np.ndarray | None = None) -> np.ndarray:
    """World rotation of the root per frame, ``Rz(yaw) @ Rest_0 @ R_0`` -> (T, 3, 3). local_r_root (T, 3, 3) is
    ``local_rotations(...)[:, 0]``; rest_root_rotation (3, 3) defaults to identity (Anny's root rest axes)."""
    rest0 = np.eye(3) if rest_root_rotation is None else np.asarray(rest_root_rotation, dtype=float)
    yaw = np.stack([yaw_matrix(motion.root_yaw_deg(float(t))) for t in np.asarray(timestamps, float).reshape(-1)])
    return yaw @ rest0 @ local_r_root


def local_bone_deltas(motion: Motion, timestamps: np.ndarray, bone_names: list[str], rest_root_pose: np.ndarray,
                      root_translation: np.ndarray | None = None) -> np.ndarray:
    """Anny ``"local-bone"`` deltas (T, J, 4, 4) for the motion at the timestamps.

    Bones: ``[R_c | 0]`` from :func:`local_rotations`; root: its world pose
    ``[Rz(yaw) @ Rest_0 @ R_0 | h_0 + root_translation]`` with rest_root_pose ``[Rest_0 | h_0]`` (4, 4) and
    root_translation (T, 3) (None: zeros, i.e. the root held at its rest position, as
    :func:`ground_root_translation` expects for its input)."""
    ts = np.asarray(timestamps, dtype=float).reshape(-1)
    local_r = local_rotations(motion, ts, bone_names)  # (T, J, 3, 3)
    deltas = np.tile(np.eye(4), (len(ts), len(bone_names), 1, 1))  # (T, J, 4, 4)
    deltas[:, :, :3, :3] = local_r
    deltas[:, 0, :3, :3] = root_world_rotations(motion, ts, local_r[:, 0], rest_root_pose[:3, :3])
    deltas[:, 0, :3, 3] = rest_root_pose[:3, 3]
    if root_translation is not None:
        deltas[:, 0, :3, 3] += np.asarray(root_translation, dtype=float).reshape(len(ts), 3)
    return deltas


def ground_root_translation(sole_points_world: np.ndarray, lift_m: np.ndarray, planted: bool = True,
                            contact_band_m: float = 0.005, switch_margin_m: float = 0.004) -> np.ndarray:
    """Root translation per frame that puts the feet on the floor and, when `planted`, keeps the stance foot still.

    sole_points_world (T, 2, P, 3): points on the soles of the [left, right] foot, world metres, computed with the
    root position held fixed (root rotation and yaw applied); lift_m (T,): height of the lowest sole point above the
    floor (0 on the ground, > 0 in a jump's flight). Returns (T, 3), to be added to the root position of every frame:

    * z puts the lowest sole point of both feet at ``z = lift_m``;
    * x, y (when `planted`) cancel the horizontal motion of the stance foot, so that it does not slide and walking
      moves the body forward: ``xy_t = xy_{t-1} - d_t`` with ``d_t`` the horizontal displacement, from frame t-1 to
      t, of the stance foot's contact patch (its sole points within `contact_band_m` of its lowest point at t-1,
      weighted toward the lowest, so a rolling heel-to-toe contact stays put). The stance foot is the lower foot;
      it changes only when the other foot is lower by more than `switch_margin_m` (hysteresis). While airborne
      (lift > 0 at t-1 or t) nothing touches the floor and xy is held. Frame 0 has xy = 0. Not planted: xy = 0.
    """
    pts = np.asarray(sole_points_world, dtype=float)  # (T, 2, P, 3)
    lift = np.asarray(lift_m, dtype=float).reshape(-1)  # (T,)
    if pts.ndim != 4 or pts.shape[1] != 2 or pts.shape[3] != 3:
        raise ValueError(f"sole_points_world must be (T, 2, P, 3), got {pts.shape}")
    if len(lift) != len(pts):
        raise ValueError(f"lift_m has {len(lift)} frames, sole_points_world {len(pts)}")
    n_t = len(pts)
    foot_low = pts[..., 2].min(axis=2)  # (T, 2) lowest point of each foot
    trans = np.zeros((n_t, 3))  # (T, 3)
    trans[:, 2] = lift - foot_low.min(axis=1)
    if not planted or n_t < 2:
        return trans
    stance = int(np.argmin(foot_low[0]))
    for t in range(1, n_t):
        prev, cur = pts[t - 1, stance], pts[t, stance]  # (P, 3)
        gap = prev[:, 2] - prev[:, 2].min()
        w = np.where(gap <= contact_band_m, np.exp(-gap / (0.25 * contact_band_m)), 0.0)
        d = (w[:, None] * (cur[:, :2] - prev[:, :2])).sum(axis=0) / w.sum()
        airborne = lift[t] > 1e-6 or lift[t - 1] > 1e-6
        trans[t, :2] = trans[t - 1, :2] - (0.0 if airborne else d)
        other = 1 - stance
        if foot_low[t, other] < foot_low[t, stance] - switch_margin_m:
            stance = other
    return trans


# ---------------------------------------------------------------------------------------------------------------
# Body motions
# ---------------------------------------------------------------------------------------------------------------
def _legs(side: str, hip_flex: float, knee_flex: float, ankle_dorsi: float, abduct: float = 0.0) -> Pose:
    """Sagittal leg pose in anatomical terms (degrees): hip flexion, knee flexion, ankle dorsiflexion, abduction."""
    s = 1.0 if side == "L" else -1.0
    return {f"upperleg01.{side}": {"X": -hip_flex, "Z": -s * abduct}, f"lowerleg01.{side}": {"X": knee_flex},
            f"foot.{side}": {"X": -ankle_dorsi}}


def _crouch(pitch: float, hip: float, knee: float, ankle: float | None = None, abduct: float = 0.0) -> Pose:
    """Both legs flexed with the pelvis pitched forward by `pitch` (root +X). With the default ankle
    (knee - hip + pitch) the shins and feet keep the feet flat on the floor."""
    a = knee - hip + pitch if ankle is None else ankle
    return add({"root": {"X": pitch}}, _legs("L", hip, knee, a, abduct), _legs("R", hip, knee, a, abduct))


def _spine(x: float = 0.0, y: float = 0.0, z: float = 0.0, bones: Sequence[str] = ("spine03", "spine02", "spine01")
           ) -> Pose:
    """A trunk bend (+x forward) / turn (+y left) / side bend (+z right) spread evenly over the given bones."""
    n = len(bones)
    return {b: {"X": x / n, "Y": y / n, "Z": z / n} for b in bones}


# walking: one gait cycle of the left leg (phase 0 = left heel strike), anatomical degrees
_GAIT_HIP = [(0.0, 14.0), (0.12, 12.0), (0.3, 5.0), (0.5, -3.0), (0.6, -5.0), (0.7, 2.5), (0.82, 11.0),
             (0.92, 14.0)]
_GAIT_KNEE = [(0.0, 4.0), (0.13, 16.0), (0.3, 7.0), (0.42, 6.0), (0.52, 14.0), (0.6, 35.0), (0.72, 58.0),
              (0.83, 42.0), (0.93, 12.0)]
_GAIT_ANKLE = [(0.0, 0.0), (0.07, -5.0), (0.3, 5.0), (0.42, 8.0), (0.52, 0.0), (0.62, -14.0), (0.74, 2.0),
               (0.86, 5.0), (0.95, 2.0)]
WALK_CYCLE_S = 1.25
_GAIT_CONTACT = 0.11  # phase at which the leading heel reaches the floor (measured: both feet equally low)
WALK_HEADING_DEG = 20.0  # toward the camera, drifting to the subject's left (the image's right)
WALK_T_FIRST = 0.5  # the starting step (left foot) ends with the left heel strike: the cyclic gait runs from here
WALK_T_LAST = WALK_T_FIRST + WALK_CYCLE_S  # the next left heel strike: the stopping step (right foot) starts
WALK_DURATION_S = WALK_T_LAST + 0.65


def _gait(phase_left: float) -> dict[str, tuple[float, float, float]]:
    """(hip flexion, knee flexion, ankle dorsiflexion) per side at a phase of the left leg's cycle."""
    return {side: (periodic_curve(_GAIT_HIP, phase_left + off), periodic_curve(_GAIT_KNEE, phase_left + off),
                   periodic_curve(_GAIT_ANKLE, phase_left + off)) for side, off in (("L", 0.0), ("R", 0.5))}


def _walk_ramp(t: float) -> float:
    return smoothstep(t / WALK_T_FIRST) * (1.0 - smoothstep((t - WALK_T_LAST) / (WALK_DURATION_S - WALK_T_LAST)))


def _walk_legs(t: float) -> dict[str, tuple[float, float, float]]:
    """Leg angles: a starting step (from standing, the right foot planted while the left one swings to its heel
    strike), the cyclic gait, and a stopping step (the left foot planted in front while the right one swings up
    beside it). In the starting and stopping steps the poses blend to and from standing, and the swinging leg
    gets an extra hip and knee flexion bump so its foot clears the floor."""
    if WALK_T_FIRST <= t <= WALK_T_LAST:
        return _gait(_GAIT_CONTACT + (t - WALK_T_FIRST) / WALK_CYCLE_S)
    if t < WALK_T_FIRST:  # the left foot lifts first, then travels; the right foot stays planted throughout
        x = t / WALK_T_FIRST
        g, u_stance, u_swing = _gait(_GAIT_CONTACT), smoothstep(x), smoothstep((x - 0.25) / 0.75)
        swing, stance = "L", "R"
    else:  # the right foot travels first, then lands beside the left one as the gait comes to rest
        x = (t - WALK_T_LAST) / (WALK_DURATION_S - WALK_T_LAST)
        g, u_stance, u_swing = _gait(_GAIT_CONTACT + 1.0), 1.0 - smoothstep(x), 1.0 - smoothstep((x - 0.2) / 0.6)
        swing, stance = "R", "L"
    b = bump(x, 0.0, 1.0)
    (hs, ks, as_), (hw, kw, aw) = g[stance], g[swing]
    return {stance: (u_stance * hs, u_stance * ks, u_stance * as_),
            swing: (u_swing * hw + 22.0 * b, u_swing * kw + 40.0 * b, u_swing * aw + 5.0 * b)}


def _walk_channels(t: float) -> Channels:
    ramp = _walk_ramp(t)
    legs = _walk_legs(t)
    pose: Pose = {}
    for side, (h, k, a) in legs.items():
        pose = add(pose, _legs(side, h, k, a))
    for side, other in (("L", "R"), ("R", "L")):  # arms swing with the opposite leg
        swing = ramp * 0.55 * (legs[other][0] - 6.0)
        pose = add(pose, {f"upperarm01.{side}": {"X": swing}, f"lowerarm01.{side}": {"X": 12.0 * ramp + 0.5 * swing}})
    # +1 at a left heel strike: left hip forward, pelvis turned right (yaw), trunk turned back left
    turn = ramp * math.cos(2.0 * math.pi * ((t - WALK_T_FIRST) / WALK_CYCLE_S + _GAIT_CONTACT))
    pose = add(pose, _spine(x=4.0 * ramp, y=7.0 * turn), {"neck01": {"Y": -3.0 * turn}})
    return add(STAND, pose)


def _walk_yaw(t: float) -> float:
    """Heading plus the pelvis rotation of gait: the pelvis turns right (-) when the left hip is forward."""
    return WALK_HEADING_DEG - 4.0 * _walk_ramp(t) * math.cos(
        2.0 * math.pi * ((t - WALK_T_FIRST) / WALK_CYCLE_S + _GAIT_CONTACT))


WALK = Motion(
    "walk", "body", WALK_DURATION_S,
    "Walks forward about 1.5 m, heading 20 deg to the subject's left of the camera direction, four steps: a "
    f"starting step with the left foot (0-{WALK_T_FIRST} s), one stride of cyclic gait ({WALK_CYCLE_S} s; right "
    f"heel strike at {WALK_T_FIRST + 0.5 * WALK_CYCLE_S:.3f} s, left at {WALK_T_LAST:.2f} s) and a stopping step "
    f"bringing the right foot beside the left ({WALK_T_LAST:.2f}-{WALK_DURATION_S:.2f} s). Legs follow normal-gait "
    "hip/knee/ankle curves, arms swing opposite to the legs, pelvis and trunk counter-rotate. Forward travel "
    "comes from ground_root_translation (planted stance foot).",
    _walk_channels, _walk_yaw,
    phases=((0.0, WALK_T_FIRST, "starting step (left foot)"), (WALK_T_FIRST, WALK_T_LAST, "walking"),
            (WALK_T_LAST, WALK_DURATION_S, "stopping step (right foot)")),
)


def _step(side: str, b: float) -> Pose:
    return _legs(side, 22.0 * b, 45.0 * b, 8.0 * b)


def _turn_channels(t: float) -> Channels:
    steps = add(_step("L", bump(t, 0.3, 0.85)), _step("R", bump(t, 0.8, 1.35)),
                _step("R", bump(t, 2.0, 2.55)), _step("L", bump(t, 2.5, 3.05)))
    look = 18.0 * (window(t, 0.15, 0.6, 1.1, 1.5) - window(t, 1.85, 2.3, 2.8, 3.2))  # the head leads the turn
    arms = add(both({"upperarm01.L": {"Z": 3.0 * bump(t, 0.3, 1.35)}}),
               both({"upperarm01.L": {"Z": 3.0 * bump(t, 2.0, 3.05)}}))
    return add(STAND, steps, arms, {"neck01": {"Y": look}}, _spine(y=0.5 * look))


def _turn_yaw(t: float) -> float:
    return 90.0 * (smoothstep((t - 0.3) / 1.1) - smoothstep((t - 2.0) / 1.1))


TURN = Motion(
    "turn", "body", 3.6,
    "Turns in place 90 deg to its left (0.3-1.4 s, stepping left foot then right) and back to face the camera "
    "(2.0-3.1 s, right foot then left); the head leads each turn.",
    _turn_channels, _turn_yaw,
    phases=((0.3, 1.4, "turn left 90 deg"), (1.4, 2.0, "hold"), (2.0, 3.1, "turn back"), (3.1, 3.6, "stand")),
)

RIGHT_WAVE: Pose = {  # right upper arm out to the side, externally rotated, forearm up, palm toward the camera
    "upperarm01.R": {"Z": -48.0, "Y": 90.0},
    "lowerarm01.R": {"X": 85.0, "Y": 8.0}, "lowerarm02.R": {"Y": 7.0},
    "wrist.R": {"X": -10.0, "Z": -20.0},
}
_WAVE_T0, _WAVE_T1, _WAVE_HZ = 0.95, 2.85, 1.8


def _wave_channels(t: float) -> Channels:
    right_arm_down = {b: ch for b, ch in STAND.items() if b.endswith(".R") and b.startswith(("upper", "lower"))}
    up = add(RIGHT_WAVE, hand("R", 0, 0, 0, 0, 0), finger_spread("R", 6.0))
    down = add(right_arm_down, hand("R", *HAND_RELAXED))
    keys = [(0.0, down), (0.3, down), (_WAVE_T0, up), (_WAVE_T1, up), (3.5, down)]
    rest = {b: ch for b, ch in STAND.items() if b not in down}
    fade = window(t, _WAVE_T0 - 0.1, _WAVE_T0 + 0.2, _WAVE_T1 - 0.2, _WAVE_T1 + 0.1)
    swing = 22.0 * fade * math.sin(2.0 * math.pi * _WAVE_HZ * (t - _WAVE_T0))
    torso = _spine(y=-5.0 * window(t, 0.3, _WAVE_T0, _WAVE_T1, 3.5), z=-3.0 * window(t, 0.3, _WAVE_T0, _WAVE_T1, 3.5))
    return add(rest, tracks_channels([keys], t), {"lowerarm01.R": {"X": swing}, "wrist.R": {"Z": -0.3 * swing}},
               torso, {"neck01": {"Z": 4.0 * fade}})


WAVE = Motion(
    "wave", "body", 3.6,
    "From standing with the arms down, raises the RIGHT arm (0.3-0.95 s) and waves with the open hand, palm toward "
    f"the camera (elbow swinging at {_WAVE_HZ} Hz, 0.95-2.85 s), then lowers it (2.85-3.5 s); the left arm stays "
    "down; the trunk leans and turns slightly toward the waving arm.",
    _wave_channels,
    phases=((0.3, _WAVE_T0, "raise right arm"), (_WAVE_T0, _WAVE_T1, "wave"), (_WAVE_T1, 3.5, "lower arm")),
)

ARMS_OVERHEAD_L: Pose = {"clavicle.L": {"Z": 14.0}, "upperarm01.L": {"Z": 112.0, "X": 25.0, "Y": -20.0},
                         "lowerarm01.L": {"X": -30.0}, "wrist.L": {"Z": 10.0}}
ARMS_FORWARD_L: Pose = {"upperarm01.L": {"Z": -30.0, "X": 80.0}, "lowerarm01.L": {"X": -15.0}}  # about horizontal


def _reach_channels(t: float) -> Channels:
    open_spread = add(hand("L", 0, 0, 0, 0, 0), hand("R", 0, 0, 0, 0, 0), finger_spread("L", 8.0),
                      finger_spread("R", 8.0))
    down = STAND
    mid = add(both({"upperarm01.L": {"Z": 45.0, "X": 10.0}, "lowerarm01.L": {"X": -20.0}}), hand("L", *HAND_RELAXED),
              hand("R", *HAND_RELAXED))
    up = add(both(ARMS_OVERHEAD_L), open_spread, _spine(x=-6.0), {"neck01": {"X": -12.0}})
    keys = [(0.0, down), (0.3, down), (0.85, mid), (1.35, up), (2.2, up), (2.75, mid), (3.3, down)]
    return tracks_channels([keys], t)


REACH_OVERHEAD = Motion(
    "reach_overhead", "body", 3.6,
    "From standing with the arms down, raises both arms sideways (horizontal at 0.85 s) and on up until the hands "
    "are above the head (0.3-1.35 s), stretches with open spread hands and the head tilted up (1.35-2.2 s), lowers "
    "them the same way (2.2-3.3 s).",
    _reach_channels,
    phases=((0.3, 1.35, "raise both arms sideways and overhead"), (1.35, 2.2, "hold overhead"),
            (2.2, 3.3, "lower arms")),
)

SQUAT_DOWN: Pose = add(_crouch(pitch=20.0, hip=100.0, knee=110.0, abduct=4.0), _spine(x=12.0),
                       {"neck01": {"X": -14.0}}, both(ARMS_FORWARD_L))


def _squat_channels(t: float) -> Channels:
    down = add(SQUAT_DOWN, hand("L", *HAND_RELAXED), hand("R", *HAND_RELAXED))
    keys = [(0.0, STAND), (0.3, STAND), (1.3, down), (1.8, down), (2.8, STAND)]
    return tracks_channels([keys], t)


SQUAT = Motion(
    "squat", "body", 3.2,
    "From standing, squats down (0.3-1.3 s: hips ~100 deg, knees ~110 deg, heels down, arms raised forward for "
    "balance), holds (1.3-1.8 s) and stands up again (1.8-2.8 s).",
    _squat_channels,
    phases=((0.3, 1.3, "squat down"), (1.3, 1.8, "hold"), (1.8, 2.8, "stand up")),
)

HANDS_ON_THIGHS_L: Pose = {"upperarm01.L": {"X": -8.0, "Y": 26.0, "Z": -29.0}, "lowerarm01.L": {"X": 54.0, "Y": 15.0},
                           "lowerarm02.L": {"Y": 15.0}}  # seated: the hands rest on the thighs (~1 cm clear)
ARMS_REACH_FORWARD_L: Pose = {"upperarm01.L": {"X": 40.0, "Z": -30.0}, "lowerarm01.L": {"X": 30.0, "Y": 15.0},
                              "lowerarm02.L": {"Y": 15.0}}  # arms forward for balance while the hips go back


def _sit_channels(t: float) -> Channels:
    relaxed = add(hand("L", *HAND_RELAXED), hand("R", *HAND_RELAXED))
    lean_down = add(_crouch(pitch=25.0, hip=70.0, knee=65.0), _spine(x=10.0), {"neck01": {"X": -10.0}},
                    both(ARMS_REACH_FORWARD_L), relaxed)
    seat_lean = add(_crouch(pitch=18.0, hip=98.0, knee=92.0), _spine(x=8.0), {"neck01": {"X": -8.0}},
                    both(add(ARM_DOWN_L, {"upperarm01.L": {"X": 45.0}, "lowerarm01.L": {"X": 45.0}})), relaxed)
    seated = add(_crouch(pitch=4.0, hip=92.0, knee=92.0), both(HANDS_ON_THIGHS_L), relaxed)
    rise_lean = add(_crouch(pitch=28.0, hip=102.0, knee=92.0), _spine(x=12.0), {"neck01": {"X": -12.0}},
                    both(ARMS_REACH_FORWARD_L), relaxed)
    rise_mid = add(_crouch(pitch=22.0, hip=60.0, knee=58.0), _spine(x=8.0), {"neck01": {"X": -8.0}},
                   both(ARMS_REACH_FORWARD_L), relaxed)
    keys = [(0.0, STAND), (0.3, STAND), (1.05, lean_down), (1.6, seat_lean), (2.0, seated), (2.45, seated),
            (2.85, rise_lean), (3.35, rise_mid), (3.85, STAND)]
    return tracks_channels([keys], t)


SIT_DOWN = Motion(
    "sit_down", "body", 4.0,
    "From standing, sits down as if onto a chair of knee height (0.3-2.0 s: leans forward with the arms forward, "
    "hips go back and down, thighs end horizontal with knees ~90 deg, hands come to rest on the thighs), sits "
    "upright (2.0-2.45 s), then leans forward, arms forward, and stands up again (2.45-3.85 s). There is no chair "
    "in the scene.",
    _sit_channels,
    phases=((0.3, 2.0, "sit down"), (2.0, 2.45, "seated"), (2.45, 3.85, "stand up")),
)

_JUMP_T_OFF, _JUMP_T_LAND, _JUMP_HEIGHT_M = 1.1, 1.5, 0.196  # flight of 0.4 s: g (0.2 s)² / 2 = 0.196 m


def _jump_channels(t: float) -> Channels:
    relaxed = add(hand("L", *HAND_RELAXED), hand("R", *HAND_RELAXED))
    crouch = add(_crouch(pitch=30.0, hip=78.0, knee=82.0), _spine(x=12.0), {"neck01": {"X": -14.0}},
                 both({"upperarm01.L": {"Z": -22.0, "X": -45.0}, "lowerarm01.L": {"X": -15.0}}), relaxed)
    push = add(_crouch(pitch=6.0, hip=4.0, knee=2.0, ankle=-30.0), _spine(x=0.0),
               both({"upperarm01.L": {"Z": -25.0, "X": 100.0}, "lowerarm01.L": {"X": -10.0}}), relaxed)
    air = add(_crouch(pitch=4.0, hip=18.0, knee=28.0, ankle=-18.0),
              both({"upperarm01.L": {"Z": -20.0, "X": 85.0}, "lowerarm01.L": {"X": 0.0}}), relaxed)
    touch = add(_crouch(pitch=6.0, hip=14.0, knee=14.0, ankle=-22.0),
                both({"upperarm01.L": {"Z": -20.0, "X": 70.0}, "lowerarm01.L": {"X": 0.0}}), relaxed)
    absorb = add(_crouch(pitch=22.0, hip=62.0, knee=72.0), _spine(x=10.0), {"neck01": {"X": -10.0}},
                 both({"upperarm01.L": {"Z": -30.0, "X": 45.0}, "lowerarm01.L": {"X": 0.0}}), relaxed)
    keys = [(0.0, STAND), (0.35, STAND), (0.85, crouch), (_JUMP_T_OFF, push), (1.3, air), (_JUMP_T_LAND, touch),
            (1.8, absorb), (2.5, STAND)]
    return tracks_channels([keys], t)


def _jump_lift(t: float) -> float:
    if t <= _JUMP_T_OFF or t >= _JUMP_T_LAND:
        return 0.0
    u = (t - _JUMP_T_OFF) / (_JUMP_T_LAND - _JUMP_T_OFF)
    return 4.0 * _JUMP_HEIGHT_M * u * (1.0 - u)  # ballistic: a parabola in time


JUMP = Motion(
    "jump", "body", 2.8,
    "From standing, crouches with the arms swinging back (0.35-0.85 s), extends legs and points the toes while "
    f"the arms swing up (0.85-{_JUMP_T_OFF} s), is airborne {_JUMP_T_OFF}-{_JUMP_T_LAND} s (ballistic, "
    f"{_JUMP_HEIGHT_M:.2f} m high via root_lift_m), lands on the toes and absorbs into a crouch "
    f"({_JUMP_T_LAND}-1.8 s), stands up (1.8-2.5 s).",
    _jump_channels, lift_fn=_jump_lift,
    phases=((0.35, 0.85, "crouch"), (0.85, _JUMP_T_OFF, "push off"), (_JUMP_T_OFF, _JUMP_T_LAND, "airborne"),
            (_JUMP_T_LAND, 1.8, "land"), (1.8, 2.5, "stand up")),
)

# Folded arms: the right forearm lies across the belly, the left one over it, in front; hands at the opposite
# upper arms.
ARMS_FOLDED: Pose = {
    "upperarm01.L": {"X": 40.0, "Y": 85.0, "Z": -47.0}, "lowerarm01.L": {"X": 28.0, "Y": 5.0},
    "wrist.L": {"Z": -15.0},
    "upperarm01.R": {"X": 24.0, "Y": -85.0, "Z": 45.0}, "lowerarm01.R": {"X": 27.0}, "wrist.R": {"Z": 15.0},
}


def _arms_cross_channels(t: float) -> Channels:
    folded = add(ARMS_FOLDED, hand("L", 0.3, 0.3, 0.35, 0.4, 0.45), hand("R", 0.3, 0.3, 0.35, 0.4, 0.45))
    keys = [(0.0, STAND), (0.3, STAND), (1.3, folded), (2.4, folded), (3.3, STAND)]
    return tracks_channels([keys], t)


ARMS_CROSS = Motion(
    "arms_cross", "body", 3.6,
    "From standing, folds the arms across the chest (0.3-1.3 s: right forearm against the belly, left forearm in "
    "front of it, hands at the opposite upper arms), holds (1.3-2.4 s), lowers them again (2.4-3.3 s). The "
    "forearms hide each other and the torso from a front camera.",
    _arms_cross_channels,
    phases=((0.3, 1.3, "fold arms"), (1.3, 2.4, "arms folded"), (2.4, 3.3, "unfold")),
)


# ---------------------------------------------------------------------------------------------------------------
# Hand motions: both hands held up in front of the chest, palms toward the camera, fingers up
# ---------------------------------------------------------------------------------------------------------------
def _sway(t: float) -> Pose:
    """A slow, small drift of both arms so the hands are never perfectly still (a person holding a pose)."""
    a = math.sin(2.0 * math.pi * 0.35 * t)
    b = math.sin(2.0 * math.pi * 0.5 * t + 1.0)
    return add({"upperarm01.L": {"X": 2.0 * a, "Z": 1.5 * b}, "upperarm01.R": {"X": 2.0 * b, "Z": -1.5 * a}},
               {"wrist.L": {"Z": 3.0 * b}, "wrist.R": {"Z": -3.0 * a}}, _spine(y=1.5 * a))


def _hand_l(thumb: float, index: float, middle: float, ring: float, little: float, spread: float = 0.0) -> Pose:
    return add(hand("L", thumb, index, middle, ring, little), finger_spread("L", spread))


OPEN_L = _hand_l(0, 0, 0, 0, 0, spread=4.0)
RELAXED_L = _hand_l(*HAND_RELAXED)
FIST_L = _hand_l(1, 1, 1, 1, 1, spread=-2.0)
COUNT_L = {  # 1..5: index, + middle, + ring, + little, + thumb; the thumb holds the folded fingers
    1: _hand_l(1, 0, 1, 1, 1),
    2: _hand_l(1, 0, 0, 1, 1, spread=3.0),
    3: _hand_l(1, 0, 0, 0, 1, spread=3.0),
    4: _hand_l(1, 0, 0, 0, 0, spread=3.0),
    5: _hand_l(0, 0, 0, 0, 0, spread=5.0),
}
# thumb and index pads touching, the other fingers loosely curled (solved so the two fingertips meet)
PINCH_L: Pose = add(_hand_l(0.0, 0.0, 0.45, 0.55, 0.65),
                    {"finger1-1.L": {"X": 18.0, "Y": -4.0, "Z": -2.0}, "finger1-2.L": {"X": 12.0},
                     "finger1-3.L": {"X": 5.0}, "finger2-1.L": {"X": 34.0}, "finger2-2.L": {"X": 29.0},
                     "finger2-3.L": {"X": 15.0}})
# OK sign: thumb and index tips meet in a ring, middle/ring/little extended and spread
OK_L: Pose = add(_hand_l(0.0, 0.0, 0.05, 0.08, 0.1, spread=6.0),
                 {"finger1-1.L": {"X": 13.0, "Y": -3.0}, "finger1-2.L": {"X": 29.0}, "finger1-3.L": {"X": 23.0},
                  "finger2-1.L": {"X": 38.0}, "finger2-2.L": {"X": 58.0}, "finger2-3.L": {"X": 34.0}})
POINT_L = _hand_l(1, 0, 1, 1, 1)
THUMBS_UP_L: Pose = add(_hand_l(0, 1, 1, 1, 1, spread=-2.0), {"finger1-1.L": {"X": -25.0}})
# handshake orientation (fingers forward, palm toward the other hand) so an extended thumb points up
THUMBS_UP_ARM_L: Pose = {"upperarm01.L": {"X": 6.0, "Y": 17.0, "Z": -36.0}, "lowerarm01.L": {"X": 49.0, "Y": -8.0},
                         "lowerarm02.L": {"Y": -8.0}, "wrist.L": {"X": 3.0, "Z": 11.0}}
HANDS_CROSSED_L: Pose = {"upperarm01.L": {"X": 45.0, "Y": 60.0, "Z": -45.0}, "lowerarm01.L": {"X": 20.0, "Y": 45.0},
                         "lowerarm02.L": {"Y": 45.0}, "wrist.L": {"X": -25.0, "Z": 50.0}}  # in front, to the right
HANDS_CROSSED_R: Pose = {"upperarm01.R": {"X": 20.0, "Y": -60.0, "Z": 40.0}, "lowerarm01.R": {"X": 65.0, "Y": -46.0},
                         "lowerarm02.R": {"Y": -46.0}, "wrist.R": {"X": -21.0, "Z": -36.0}}  # behind, to the left
HAND_FORWARD_L: Pose = {"upperarm01.L": {"X": 29.0, "Y": 24.0, "Z": -39.0}, "lowerarm01.L": {"X": 36.0, "Y": 45.0},
                        "lowerarm02.L": {"Y": 45.0}, "wrist.L": {"X": -8.0, "Z": 50.0}}  # left hand 11 cm further out


def _hand_motion(name: str, duration: float, description: str, finger_keys: Keys,
                 arm_keys: Keys | None = None, extra: Callable[[float], Pose] | None = None,
                 phases: tuple[tuple[float, float, str], ...] = ()) -> Motion:
    """A hands motion: arms held up (or following `arm_keys`), finger key poses given for the LEFT hand and
    mirrored onto the right, plus an optional procedural `extra`."""
    fingers = [(kt, both(p)) for kt, p in finger_keys]
    arms = list(arm_keys) if arm_keys is not None else [(0.0, both(HANDS_UP_L))]

    def fn(t: float) -> Channels:
        return add(tracks_channels([arms, fingers], t), _sway(t), extra(t) if extra else {})

    return Motion(name, "hands", duration, description, fn, phases=phases)


COUNT = _hand_motion(
    "count", 3.6,
    "Both hands up, palms to the camera: relaxed (0 s), fist (0.35-0.6 s), then count 1 = index (0.85-1.15 s), "
    "2 = index+middle (1.4-1.7 s), 3 = +ring (1.95-2.25 s), 4 = +little (2.5-2.8 s), 5 = +thumb, all open "
    "(3.05-3.6 s); the thumb holds the folded fingers. Both hands count together.",
    [(0.0, RELAXED_L), (0.35, FIST_L), (0.6, FIST_L), (0.85, COUNT_L[1]), (1.15, COUNT_L[1]), (1.4, COUNT_L[2]),
     (1.7, COUNT_L[2]), (1.95, COUNT_L[3]), (2.25, COUNT_L[3]), (2.5, COUNT_L[4]), (2.8, COUNT_L[4]),
     (3.05, COUNT_L[5])],
    phases=((0.35, 0.6, "fist"), (0.85, 1.15, "1"), (1.4, 1.7, "2"), (1.95, 2.25, "3"), (2.5, 2.8, "4"),
            (3.05, 3.6, "5")),
)

FIST_OPEN = _hand_motion(
    "fist_open", 3.6,
    "Both hands up, palms to the camera: open (spread) -> fist -> open, three times (fists held at 0.45-0.65, "
    "1.65-1.85, 2.85-3.05 s; open at 0, 1.05-1.25, 2.25-2.45 s).",
    [(0.0, OPEN_L), (0.45, FIST_L), (0.65, FIST_L), (1.05, OPEN_L), (1.25, OPEN_L), (1.65, FIST_L), (1.85, FIST_L),
     (2.25, OPEN_L), (2.45, OPEN_L), (2.85, FIST_L), (3.05, FIST_L), (3.6, OPEN_L)],
    phases=((0.45, 0.65, "fist"), (1.05, 1.25, "open"), (1.65, 1.85, "fist"), (2.25, 2.45, "open"),
            (2.85, 3.05, "fist")),
)

PINCH_OK = _hand_motion(
    "pinch_ok", 3.6,
    "Both hands up, palms to the camera: relaxed -> pinch, thumb tip on index tip (0.5-1.2 s) -> open "
    "(1.5 s) -> OK sign, thumb and index in a ring with the other fingers extended (2.0-3.0 s) -> relaxed.",
    [(0.0, RELAXED_L), (0.5, PINCH_L), (1.2, PINCH_L), (1.5, OPEN_L), (2.0, OK_L), (3.0, OK_L), (3.6, RELAXED_L)],
    phases=((0.5, 1.2, "pinch"), (2.0, 3.0, "OK sign")),
)

POINT_THUMBS_UP = _hand_motion(
    "point_thumbs_up", 3.6,
    "Both hands up, palms to the camera: index points up, other fingers folded (0.5-1.3 s); then the forearms "
    "turn to a handshake orientation and the hands make a thumbs-up, fist with the thumb pointing up "
    "(1.9-3.1 s); back toward relaxed.",
    [(0.0, RELAXED_L), (0.5, POINT_L), (1.3, POINT_L), (1.9, THUMBS_UP_L), (3.1, THUMBS_UP_L), (3.6, RELAXED_L)],
    arm_keys=[(0.0, both(HANDS_UP_L)), (1.3, both(HANDS_UP_L)), (1.9, both(THUMBS_UP_ARM_L)),
              (3.1, both(THUMBS_UP_ARM_L)), (3.6, both(HANDS_UP_L))],
    phases=((0.5, 1.3, "index point"), (1.9, 3.1, "thumbs up")),
)

_WIGGLE_T0, _WIGGLE_T1, _WIGGLE_HZ = 1.1, 3.1, 2.0


def _wiggle(t: float) -> Pose:
    fade = window(t, _WIGGLE_T0, _WIGGLE_T0 + 0.25, _WIGGLE_T1 - 0.25, _WIGGLE_T1)
    curls = {}
    for f in (1, 2, 3, 4, 5):  # a wave running from the thumb to the little finger
        c = 0.5 - 0.5 * math.cos(2.0 * math.pi * _WIGGLE_HZ * (t - _WIGGLE_T0) - 0.9 * (f - 1))
        curls[f] = fade * (0.35 if f == 1 else 0.55) * c
    return add(finger_curl("L", curls), finger_curl("R", curls))


SPREAD_WIGGLE = _hand_motion(
    "spread_wiggle", 3.6,
    "Both hands up, palms to the camera: from relaxed the fingers open and spread wide (0-0.6 s), hold "
    f"(0.6-{_WIGGLE_T0} s), then wiggle: each finger flexes and extends in turn, a wave from thumb to little "
    f"finger at {_WIGGLE_HZ} Hz ({_WIGGLE_T0}-{_WIGGLE_T1} s), then spread again.",
    [(0.0, RELAXED_L), (0.6, _hand_l(0, 0, 0, 0, 0, spread=12.0)), (3.6, _hand_l(0, 0, 0, 0, 0, spread=10.0))],
    extra=_wiggle,
    phases=((0.0, 0.6, "spread"), (0.6, _WIGGLE_T0, "hold spread"), (_WIGGLE_T0, _WIGGLE_T1, "wiggle")),
)

HANDS_CROSS = _hand_motion(
    "hands_cross", 3.6,
    "Both hands up, palms to the camera; the left hand comes forward, then the hands move toward each other and "
    "cross, the left hand ~14 cm in front of the right (crossed 1.2-2.0 s), and return the same way (3.1 s), "
    "while both open and close: fist at 0.6, 1.8, 3.0 s, open at 0, 1.2, 2.4, 3.6 s.",
    [(0.0, OPEN_L), (0.6, FIST_L), (1.2, OPEN_L), (1.8, FIST_L), (2.4, OPEN_L), (3.0, FIST_L), (3.6, OPEN_L)],
    arm_keys=[(0.0, both(HANDS_UP_L)), (0.2, both(HANDS_UP_L)), (0.65, add(HAND_FORWARD_L, mirror(HANDS_UP_L))),
              (1.2, add(HANDS_CROSSED_L, HANDS_CROSSED_R)), (2.0, add(HANDS_CROSSED_L, HANDS_CROSSED_R)),
              (2.55, add(HAND_FORWARD_L, mirror(HANDS_UP_L))), (3.1, both(HANDS_UP_L))],
    phases=((0.2, 1.2, "hands move to cross"), (1.2, 2.0, "hands crossed"), (2.0, 3.1, "uncross")),
)

# ---------------------------------------------------------------------------------------------------------------
# Fast motion: punches (the smoother must not smear them)
# ---------------------------------------------------------------------------------------------------------------
GUARD_L: Pose = {"upperarm01.L": {"Z": -35.0, "X": 40.0}, "lowerarm01.L": {"X": 85.0}}   # fist before the chin
JAB_L: Pose = {"upperarm01.L": {"Z": -25.0, "X": 85.0}, "lowerarm01.L": {"X": -35.0}}    # arm straight forward


def _punch_channels(t: float) -> Channels:
    relaxed = add(hand("L", *HAND_RELAXED), hand("R", *HAND_RELAXED))
    fists = add(FIST_L, mirror(FIST_L))
    hands = [(0.0, relaxed), (0.35, fists), (2.3, fists), (2.7, relaxed)]
    right = [(0.0, mirror(ARM_DOWN_L)), (0.35, mirror(GUARD_L)), (0.7, mirror(GUARD_L)), (0.8, mirror(JAB_L)),
             (0.95, mirror(JAB_L)), (1.25, mirror(GUARD_L)), (2.3, mirror(GUARD_L)), (2.7, mirror(ARM_DOWN_L))]
    left = [(0.0, ARM_DOWN_L), (0.35, GUARD_L), (1.5, GUARD_L), (1.6, JAB_L), (1.75, JAB_L), (2.05, GUARD_L),
            (2.3, GUARD_L), (2.7, ARM_DOWN_L)]
    return add(both(LEG_STAND_L), tracks_channels([hands, right, left], t))


PUNCH = Motion(
    "punch", "body", 3.0,
    "From standing, fists up into a boxing guard (0-0.35 s), a right jab thrown in 0.1 s (0.7-0.8 s: the elbow "
    "opens 120 deg, ~58 deg a frame at its fastest), held, pulled back (0.95-1.25 s), a left jab the same way "
    "(1.5-2.05 s), arms down again (2.3-2.7 s). The fastest motion of the suites: does the smoothing smear it?",
    _punch_channels,
    phases=((0.0, 0.35, "guard up"), (0.7, 1.25, "right jab"), (1.5, 2.05, "left jab"), (2.3, 2.7, "arms down")),
)

MOTIONS: dict[str, Motion] = {m.name: m for m in (
    WALK, TURN, WAVE, REACH_OVERHEAD, SQUAT, SIT_DOWN, JUMP, ARMS_CROSS,
    COUNT, FIST_OPEN, PINCH_OK, POINT_THUMBS_UP, SPREAD_WIGGLE, HANDS_CROSS, PUNCH)}
