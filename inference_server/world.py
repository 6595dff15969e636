"""World grounding (WHAM-style, optimisation instead of a network): the fitted motion → a world with gravity up, the
floor at z = 0, foot contacts, feet that stay planted, a root trajectory the feet push, and the camera's own motion
taken out. numpy + scipy; no torch, no bpy.

Input: the fit (``fit.fit_sequence``), made in the frame of a level camera at the world origin, ``p_cam = R_L p_fit``
(``R_L`` = ``fit.R_WORLD2CAM_LEVEL``), and the camera's rotation per frame relative to the first frame
(``camera_motion.CameraMotion.R_cam_from_cam0``, identity for a still camera). Steps (:func:`ground`):

1. **Camera rotation out.** With ``p_cam(t) = R_rel(t) R_L p_world`` the fitted body moves into the world by
   ``G(t) = R_Lᵀ R_rel(t)ᵀ R_L`` (a rotation about the camera centre, which is the origin): the root's world rotation
   and position are premultiplied by ``G(t)``; every other bone is parent-relative and unchanged;
   ``R_world2cam(t) = R_rel(t) R_L``.
2. **Floor and gravity.** The floor is first the 5th percentile of the lowest sole point (heels and toes: markers
   29–32 ride on the foot bones). Sole points in contact then give the floor's slope: ``z = a x + b y + c`` by
   ridge-regularised least squares (a level camera is the prior, ``LEVEL_PRIOR``); a slope of more than
   ``MIN_TILT_DEG`` turns the world so that the floor's normal is +Z (a camera that looks down or up).
3. **Contacts** per sole point (left heel, left toe, right heel, right toe): ``p = σ((h₀ − h)/s_h) · σ((v₀ − v)/s_v)``
   · (the lower point of its foot), from the point's height ``h`` above the floor and its speed ``v`` — in the
   picture where the camera does not travel (:func:`image_foot_speed`; a foot the detector cannot see is presumed
   planted), else horizontally in the world (m/s, from the real timestamps).
4. **Trajectory.** The root's path ``x_t = r_t + δ_t`` minimises (a sparse linear least-squares problem, 3T unknowns)

       Σ_{t,k} c_{t,k} c_{t+1,k} ‖f_{t+1,k} − f_{t,k}‖² / σ_c²      planted points do not move (f = x + d: the sole
                                                                      point is the root plus the posed offset d)
     + Σ_{t,k} c_{t,k} (f_{t,k,z})² / σ_g²                           planted points are on the floor
     + Σ_t w_t ‖diag(1/σ_lat, 1/σ_lat, 1/σ_depth) R_cam(t) δ_t‖²     stay where the picture puts the body: across
                                                                      the picture tight, along the line of sight
                                                                      (depth from apparent size: noisy) loose
     + Σ_t ‖δ_{t+1} − 2 δ_t + δ_{t−1}‖² / σ_s²                       no new jitter

   (``c`` are the contact probabilities, ``w_t`` the frame's fit confidence). Contacts are re-estimated on the new
   path and the problem solved again.
5. **A camera that travels with the subject** (a tracking shot): solved without the picture term, the same problem
   gives the path the feet alone push (odometry). When that path travels more than ``TRACKING_MIN_TRAVEL_M`` and
   more than ``TRACKING_RATIO`` × the picture's, the camera is taken to be moving: the body follows its feet and the
   camera follows the body (its centre is where it must be for the root to be where the picture shows it,
   smoothed).
6. **Foot lock** (:func:`lock_feet`): the ankle's path and the foot's orientation made still during contacts
   (:func:`planted_series`), the leg swung at the hip with the knee turning at most ``knee_cap_deg``
   (``rigs.footlock.two_bone_ik`` on a capped target), the local rotations rebuilt: ``L_j = O_jᵀ W_pᵀ W_j`` with the
   parents' new world rotations (``rigs/fk.py``).
7. The world is shifted so that the floor is z = 0 and the subject starts above the origin.

``space="camera"`` skips step 1 (and with it 5): the motion as the camera saw it, the camera still.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import scratch

SOLE_MARKERS = (29, 31, 30, 32)        # MediaPipe heel.L, toe.L, heel.R, toe.R: the Take's foot_contact order
LEG_BONES = ("upperleg01", "lowerleg01", "foot")
UNSEEN_VISIBILITY = 0.5                # a sole landmark less visible than this is not seen
LEVEL_PRIOR = 4.0                      # ridge on the floor's slope (per unit weight of one contact point)
MIN_TILT_DEG = 3.0
TRACKING_MIN_TRAVEL_M = 0.5
TRACKING_RATIO = 1.6


@dataclasses.dataclass(frozen=True)
class WorldSettings:
    space: str = "world"               # "world" (camera motion taken out) or "camera" (the camera's view, still)
    foot_lock: bool = True             # plant feet in contact (lock_feet)
    contact_height_m: float = 0.15     # h₀: a sole point lower than this above the floor may be planted (loose: a
    contact_height_soft_m: float = 0.03  # squat's or jump's fitted feet float 15-25 cm while the picture shows them
                                       # still; the speed decides, and the path's floor term then grounds them)
    contact_speed_mps: float = 0.8     # v₀: ... and slower than this (a fitted planted foot still slides ~0.4 m/s)
    contact_speed_soft_mps: float = 0.12
    odometry_height_m: float = 0.06    # the feet-only contacts of the odometry (no speed to help): tighter
    odometry_height_soft_m: float = 0.012
    contact_image_speed: float = 0.25  # ... or, in the picture, slower than this (person-heights per second)
    contact_image_speed_soft: float = 0.06
    sigma_contact_m: float = 0.005     # σ_c: how still a planted point is, per frame, in the path's solve. Tight:
                                       # moving the root costs the pose nothing, while the foot lock after it bends
                                       # the legs (README › World: 0.05 → 0.005 with σ_depth 0.03 → 0.1, held-out
                                       # body PA 43.7 → 42.4 mm, sliding 10.6 → 9.4 mm/f, root path 32 → 24 %)
    sigma_floor_m: float = 0.03        # σ_g: planted points on the floor (looser than the picture across it: 5 mm
                                       # dragged bodies 2-4 % of their size off the picture on the benchmark)
    sigma_lateral_m: float = 0.01      # σ_lat: the picture's hold on the root across the line of sight
    sigma_depth_m: float = 0.1         # σ_depth: ... and along it (where the picture says little: the body's size)
    sigma_smooth_m: float = 0.01       # σ_s: root acceleration, per frame²
    iterations: int = 2                # contacts → path → contacts → path
    knee_cap_deg: float = 5.0          # foot lock: the most the knee may fold or open to reach the planted ankle
    lock_sharpness: float = 8.0        # foot lock: a frame's pull to stand still is its contact probability to this
                                       # power (0.9 → 0.43, 0.7 → 0.06): only sure contacts bend the legs (README ›
                                       # World, session 18: 1 → 8, held-out PA 42.4 → 42.2 mm, sliding 9.4 → 10.5)
    sigma_plant_fit_m: float = 0.03    # foot lock (planted_series): how far the ankle may leave the fitted one,
    sigma_plant_still_m: float = 0.0005  # how still it stands in contact (per frame),
    sigma_plant_acc_m: float = 0.004   # and its acceleration (per frame²); the foot's quaternion: ×5 each


@dataclasses.dataclass
class World:
    local_rotations_aa: np.ndarray     # (T,J,3) the Take's convention (foot-locked legs)
    root_position_world: np.ndarray    # (T,3)
    R_world2cam: np.ndarray            # (T,3,3)
    t_world2cam: np.ndarray            # (T,3)
    foot_contact: np.ndarray           # (T,4) probability [heel.L, toe.L, heel.R, toe.R]
    info: dict                         # camera kind, floor tilt, contact counts, travel (for the sidecar)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from rigs.rotations import rotation_between

    return rotation_between(np.asarray(a, float)[None], np.asarray(b, float)[None])[0]


CHUNK = 500    # frames posed at once: a (T,J,4,4) float64 pose of an hour's clip would be ~1.4 GB; 500 frames'
               # posing takes ~15 MB (2,000 took ~60 MB, above the rest of a long capture's peak; README › Batch)


def _posed(skel, local_aa: np.ndarray, root: np.ndarray, bones: list[int] | None = None) -> np.ndarray:
    """Posed world matrices (T,B,4,4) of ``bones`` (default: all), computed CHUNK frames at a time."""
    from rigs.fk import forward_kinematics

    keep = slice(None) if bones is None else list(bones)
    if not len(root):
        return np.zeros((0, 0, 4, 4))
    out = scratch.empty((len(root), len(skel.parents) if bones is None else len(bones), 4, 4))  # on disk if long
    for a, b in scratch.windows(len(root), CHUNK):   # filled chunk by chunk
        posed = forward_kinematics(skel.rest, skel.parents, local_aa[a:b], root[a:b])  # (C,J,4,4)
        out[a:b] = posed[:, keep]
    return out


def _soles(skel, local_aa: np.ndarray, root: np.ndarray) -> np.ndarray:
    """(T,4,3) sole points of a pose, posing only the foot bones' chains a chunk at a time."""
    from .anny_skeleton import attached_points

    from rigs.fk import forward_kinematics

    idx = list(SOLE_MARKERS)
    bones = sorted(set(int(b) for b in skel.body_marker_bone[idx]))
    where = np.array([bones.index(int(b)) for b in skel.body_marker_bone[idx]])
    out = np.empty((len(root), len(idx), 3))
    for a, b in scratch.windows(len(root), CHUNK):   # posed a chunk at a time; only the points are kept
        W = forward_kinematics(skel.rest, skel.parents, local_aa[a:b], root[a:b])[:, bones]   # (C,B,4,4)
        out[a:b] = attached_points(W, where, skel.body_marker_local[idx])
    return out


def contact_probability(points: np.ndarray, timestamps: np.ndarray, floor_z: float, valid: np.ndarray,
                        s: WorldSettings, image_speed: np.ndarray | None = None) -> np.ndarray:
    """(T,K) contact probability of sole points (T,K,3) from their height above ``floor_z`` and horizontal speed —
    in the picture when ``image_speed`` (T,K) person-heights/s is given (a still or turning camera; see
    :func:`image_foot_speed`; frames without it fall back to the world speed), else in the world."""
    t = np.asarray(timestamps, dtype=np.float64)
    n = len(t)
    if n < 2:
        return np.zeros(points.shape[:2])
    xy = points[..., :2]
    if not np.all(np.diff(t) > 0):
        t = np.arange(n) / 30.0
    # Speed over ±2 frames of the real timestamps (variable frame rate safe; frame-to-frame jitter averages out).
    a, b = np.maximum(np.arange(n) - 2, 0), np.minimum(np.arange(n) + 2, n - 1)
    speed = np.linalg.norm(xy[b] - xy[a], axis=-1) / (t[b] - t[a])[:, None]
    h = points[..., 2] - floor_z
    p_speed = _sigmoid((s.contact_speed_mps - speed) / s.contact_speed_soft_mps)
    if image_speed is not None:
        v = np.asarray(image_speed, dtype=np.float64)
        if n >= 3:   # a 3-frame mean: the detector's frame-to-frame jitter averages out
            v = np.concatenate([v[:1], (v[:-2] + v[1:-1] + v[2:]) / 3.0, v[-1:]])
        p_img = _sigmoid((s.contact_image_speed - v) / s.contact_image_speed_soft)
        p_speed = np.where(np.isfinite(v), p_img, p_speed)
        # A foot the detector cannot see (+inf) is presumed planted: a person in an upper-body shot or a close-up
        # stands. Its height still decides (the fit's legs stay near their rest there).
        p_speed = np.where(np.isposinf(v), 1.0, p_speed)
    p = _sigmoid((s.contact_height_m - h) / s.contact_height_soft_m) * p_speed * _rolling(h)
    return np.where(valid[:, None], p, 0.0)


def _rolling(h: np.ndarray) -> np.ndarray:
    """(T,4) weight of each sole point by how low it is against the other point of its foot: a heel lifting as the
    foot rolls onto its toes (or toes coming down after a heel strike) turns about the planted point and must not
    count as planted itself. Heel and toe level: ~0.9 each; 2 cm higher than the other: ~0.1."""
    other = h.reshape(len(h), 2, 2)[:, :, ::-1].reshape(h.shape)
    return _sigmoid((other - h + 0.01) / 0.005)


def image_foot_speed(pose_2d: np.ndarray, K: np.ndarray, R_cam_from_cam0: np.ndarray | None,
                     timestamps: np.ndarray) -> np.ndarray:
    """(T,4) speed of the detector's heel and toe landmarks in the picture [heel.L, toe.L, heel.R, toe.R], in
    person-heights per second, with the camera's own turning taken out: a pixel x of frame t−1 is where a still
    point would be at t after ``x' ~ K R_step K⁻¹ x``, R_step = R_t R_{t−1}ᵀ. NaN where a landmark is missing.
    A planted foot stands still in the picture whatever the fit makes of its depth — the contacts' most direct
    evidence for a camera that does not travel. A sole landmark the detector does not see (visibility under
    ``UNSEEN_VISIBILITY``: out of the picture in an upper-body shot, hidden) gets +inf: no evidence either way
    (:func:`contact_probability` then presumes a foot it cannot see is planted)."""
    sole = list(SOLE_MARKERS)
    pts = np.empty((len(pose_2d), 4, 2))                                      # (T,4,2)
    unseen = np.empty((len(pose_2d), 4), dtype=bool)
    height = np.empty(len(pose_2d))                                           # (T,) px, the person's extent
    for a, b in scratch.windows(len(pose_2d)):   # a window at a time (a long clip's landmarks are on disk)
        p = np.asarray(pose_2d[a:b], dtype=np.float64)
        pts[a:b] = p[:, sole, :2]
        unseen[a:b] = ~(np.nan_to_num(p[:, sole, 2]) >= UNSEEN_VISIBILITY)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN frames: no person
            height[a:b] = np.nanmax(p[..., 1], axis=1) - np.nanmin(p[..., 1], axis=1)
    n = len(pts)
    out = np.full((n, 4), np.nan)
    if n < 2:
        return out
    t = np.asarray(timestamps, dtype=np.float64)
    dt = np.diff(t) if np.all(np.diff(t) > 0) else np.full(n - 1, 1.0 / 30.0)
    prev = pts[:-1]
    if R_cam_from_cam0 is not None:
        R = np.asarray(R_cam_from_cam0, dtype=np.float64)
        H = K @ (R[1:] @ np.swapaxes(R[:-1], 1, 2)) @ np.linalg.inv(K)          # (T-1,3,3)
        h = np.einsum("tij,tkj->tki", H, np.concatenate([prev, np.ones((n - 1, 4, 1))], axis=2))
        prev = h[..., :2] / h[..., 2:3]
    height = np.where(np.isfinite(height) & (height > 10), height, np.nan)
    step = np.linalg.norm(pts[1:] - prev, axis=-1) / dt[:, None] / height[1:, None]  # (T-1,4)
    out[1:] = step
    out[0] = step[0]
    out[unseen | np.isnan(np.nan_to_num(pts[..., 0], nan=np.nan))] = np.inf
    return out


def lower_foot_contact(soles: np.ndarray, valid: np.ndarray, s: WorldSettings) -> np.ndarray:
    """(T,4) contact probability from heights alone (floor at z = 0): a sole point is planted when it is low and its
    foot is the lower of the two (a 4 mm softness: a swing foot that passes 2 cm up must not count) — speeds are not used."""
    h = soles[..., 2]                                                         # (T,4)
    foot = np.minimum(h[:, 0::2], h[:, 1::2])                                 # (T,2) each foot's lowest point
    lower = _sigmoid((foot[:, ::-1] - foot) / 0.004)                         # (T,2) this foot under the other
    p = _sigmoid((s.odometry_height_m - h) / s.odometry_height_soft_m) * np.repeat(lower, 2, axis=1) * _rolling(h)
    return np.where(valid[:, None], p, 0.0)


def floor_tilt(points: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
    """The rotation (3,3) that makes the floor under weighted sole points (N,3), weights (N,) level, and its angle
    in degrees. Ridge-regularised plane z = a x + b y + c (a level floor is the prior)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.sum() < 10:
        return np.eye(3), 0.0
    centre = (points * w[:, None]).sum(0) / w.sum()
    q = points - centre
    A = np.stack([q[:, 0], q[:, 1], np.ones(len(q))], 1)
    H = (A * w[:, None]).T @ A + np.diag([LEVEL_PRIOR * w.sum() * 0.01, LEVEL_PRIOR * w.sum() * 0.01, 0.0])
    a, b, _ = np.linalg.solve(H, (A * w[:, None]).T @ q[:, 2])
    normal = np.array([-a, -b, 1.0]) / np.sqrt(a * a + b * b + 1.0)
    angle = float(np.degrees(np.arccos(np.clip(normal[2], -1, 1))))
    return _rot_between(normal, np.array([0.0, 0.0, 1.0])), angle


def solve_trajectory(root: np.ndarray, offsets: np.ndarray, contact: np.ndarray, confidence: np.ndarray,
                     R_cam: np.ndarray, s: WorldSettings, use_picture: bool = True) -> np.ndarray:
    """The root path x (T,3) of step 4 in the module docstring. root (T,3) the fitted path; offsets (T,K,3) sole
    points minus root; contact (T,K) 0..1; confidence (T,) 0..1; R_cam (T,3,3) world→camera rotations.

    Least squares in the corrections δ = x − root, unknowns ordered (t, axis) → 3t + axis. Every term couples
    frames at most two apart, so the normal equations JᵀJ δ = Jᵀb are banded (half-bandwidth 6) and are built and
    solved in that form (``scipy.linalg.solveh_banded``, a banded Cholesky): memory O(T) with 7 bands, no sparse
    Jacobian of a long clip's."""
    from scipy.linalg import solveh_banded

    n, k = contact.shape
    if n < 3:
        return root.copy()
    u = 6
    ab = np.zeros((u + 1, 3 * n))          # upper bands: ab[u + i − j, j] = (JᵀJ)[i, j], i ≤ j
    rhs = np.zeros(3 * n)                  # Jᵀb

    def add(i: np.ndarray, j: np.ndarray, v: np.ndarray) -> None:   # (JᵀJ)[i, j] += v (and [j, i]), i ≤ j
        ab[u + i - j, j] += v   # each (i, j) once per call

    axis = np.arange(3)
    f = root[:, None] + offsets                                               # (T,K,3) sole points now
    # planted points stay: w (δ_{t+1} − δ_t) = −w (f_{t+1} − f_t), per axis
    still = np.sqrt(contact[1:] * contact[:-1]) / s.sigma_contact_m          # (T-1,K)
    still = np.where(still > 1e-3, still, 0.0)
    w2 = (still ** 2).sum(axis=1)                                             # (T-1,) Σ_K w²
    w2_step = np.einsum("tk,tka->ta", still ** 2, f[1:] - f[:-1])            # (T-1,3) Σ_K w² (f_{t+1} − f_t)
    t = np.arange(n - 1)
    for a in axis:
        add(3 * t + a, 3 * t + a, w2)
        add(3 * (t + 1) + a, 3 * (t + 1) + a, w2)
        add(3 * t + a, 3 * (t + 1) + a, -w2)
        rhs[3 * t + a] += w2_step[:, a]
        rhs[3 * (t + 1) + a] -= w2_step[:, a]
    # planted points on the floor (z = 0 here): on δ_z = −on f_z
    on = contact / s.sigma_floor_m
    on = np.where(on > 1e-3, on, 0.0)                                         # (T,K)
    ab[u, 2::3] += (on ** 2).sum(axis=1)
    rhs[2::3] -= (on ** 2 * f[..., 2]).sum(axis=1)
    # the picture: δ_t small across the line of sight, loose along it: A_t δ_t = 0, A_t = √c diag(scale) R_cam[t]
    if use_picture:
        c = np.where(confidence > 1e-3, confidence, 0.0)
        scale = np.array([1 / s.sigma_lateral_m, 1 / s.sigma_lateral_m, 1 / s.sigma_depth_m])
        t = np.arange(n)
        for a in axis:
            for b in range(a, 3):   # (A_tᵀ A_t)[a, b] = c Σ_r scale_r² R[r, a] R[r, b]
                add(3 * t + a, 3 * t + b, c * np.einsum("r,tr,tr->t", scale ** 2, R_cam[:, :, a], R_cam[:, :, b]))
    # smooth: (δ_{t−1} − 2 δ_t + δ_{t+1}) / σ = 0 for t = 1 .. n−2
    v = np.array([1.0, -2.0, 1.0]) / s.sigma_smooth_m
    t = np.arange(1, n - 1)
    for a in axis:
        for p in range(3):
            for q in range(p, 3):
                add(3 * (t - 1 + p) + a, 3 * (t - 1 + q) + a, np.full(len(t), v[p] * v[q]))
    # a weak pull to no change (keeps the system definite where nothing else speaks: unseen frames, no contacts)
    ab[u] += 1e-6
    delta = solveh_banded(ab, rhs)
    return root + delta.reshape(n, 3)


def planted_series(x: np.ndarray, contact: np.ndarray, sigma_fit: float, sigma_still: float,
                   sigma_acc: float) -> np.ndarray:
    """The series y (T,D) nearest x (T,D) that stands still while in contact: minimises

        Σ_t ‖y_t − x_t‖² / σ_fit²  +  Σ_t c_t c_{t+1} ‖y_{t+1} − y_t‖² / σ_still²  +  Σ_t ‖Δ²y_t‖² / σ_acc²

    (c (T,) contact probability). No pin is chosen by hand: where the foot stands, the solution is the weighted
    mean of where the fit put it; the soft contacts and the acceleration term ease it in and out without a step.
    A symmetric positive-definite pentadiagonal system, solved once for all D columns in its banded form (O(T)
    memory: 3 bands, no sparse matrix and factor of a long clip's)."""
    from scipy.linalg import solveh_banded

    from .smoothing import _second_difference_bands

    n = len(x)
    if n < 3:
        return np.asarray(x, dtype=np.float64).copy()
    c = np.clip(np.nan_to_num(np.asarray(contact, dtype=np.float64)), 0.0, 1.0)
    ab = _second_difference_bands(n) / sigma_acc ** 2                     # (3, n) upper bands: D2ᵀD2 / σ_acc²
    still = c[1:] * c[:-1] / sigma_still ** 2                              # D1ᵀ diag(still) D1
    ab[2] += 1.0 / sigma_fit ** 2
    ab[2, :-1] += still
    ab[2, 1:] += still
    ab[1, 1:] -= still
    return solveh_banded(ab, np.asarray(x, dtype=np.float64) / sigma_fit ** 2)


def _capped_reach(H: np.ndarray, Kn: np.ndarray, A: np.ndarray, target: np.ndarray, cap: float) -> np.ndarray:
    """target − H (T,3) shortened or lengthened to what the leg reaches when its knee angle changes by ≤ cap rad:
    with thigh l1 = |K − H|, shin l2 = |A − K| and the knee's inner angle φ, |A − H|² = l1² + l2² − 2 l1 l2 cos φ."""
    l1 = np.linalg.norm(Kn - H, axis=-1)
    l2 = np.linalg.norm(A - Kn, axis=-1)
    reach = lambda phi: np.sqrt(np.maximum(l1 ** 2 + l2 ** 2 - 2 * l1 * l2 * np.cos(phi), 1e-12))  # noqa: E731
    inner = lambda d: np.arccos(np.clip((l1 ** 2 + l2 ** 2 - d ** 2) / (2 * l1 * l2), -1.0, 1.0))  # noqa: E731
    to = target - H
    d_want = np.linalg.norm(to, axis=-1)
    phi_now = inner(np.linalg.norm(A - H, axis=-1))
    phi = np.clip(inner(d_want), phi_now - cap, phi_now + cap)
    return to / np.maximum(d_want, 1e-12)[:, None] * reach(phi)[:, None]


def lock_feet(skel, local_aa: np.ndarray, root: np.ndarray, contact: np.ndarray, s: WorldSettings,
              in_place: bool = False) -> tuple[np.ndarray, int]:
    """Plant each foot while it is in contact (T,2) probabilities [left, right]. Returns new local rotations and the
    frames planted (c > 0.5); ``in_place``: the new rotations are written into ``local_aa`` (no copy of a long clip's).

    1. Targets: the ankle's path and the foot's orientation made still during contacts (:func:`planted_series`,
       each frame's pull the contact probability to the power ``lock_sharpness``: a doubtful contact must not drag
       a moving foot back to where it stood; the orientation as sign-continuous quaternions, renormalised).
    2. Each leg swings about the hip onto its target's direction, and the knee folds or opens by at most
       ``knee_cap_deg`` to take up the target's distance from the hip (near full extension the ankle's distance
       hardly changes with the knee: a free two-bone IK folds a straight leg by ~18° to take up 1 cm, and on the
       benchmark the knees' error doubled).
    What the legs cannot reach (mostly along the leg: up and down) stays. Tried and dropped: raising or lowering
    the whole body by the planted ankles' remaining height error (sliding 2.7 → 2.4 mm/frame on the benchmark, but
    the body bobbed by up to 7 cm on a noisy fit).
    """
    from scipy.spatial.transform import Rotation

    from rigs.fk import rest_offsets
    from rigs.footlock import two_bone_ik
    from rigs.rotations import make_continuous, matrix_to_aa

    legs = [skel.index(b + sfx) for sfx in (".L", ".R") for b in LEG_BONES]
    need = sorted(set(legs) | {int(skel.parents[b]) for b in legs})
    Wb = _posed(skel, local_aa, root, need)                                   # (T,B,4,4) legs and their parents
    W = {b: Wb[:, k] for k, b in enumerate(need)}
    O = rest_offsets(skel.rest, skel.parents)[:, :3, :3]
    cap = np.radians(s.knee_cap_deg)
    n = len(root)
    sides = []
    for side, suffix in enumerate((".L", ".R")):
        c = np.asarray(contact[:, side], dtype=np.float64)
        if not (c > 0.5).any():
            continue
        thigh, shin, foot = (skel.index(b + suffix) for b in LEG_BONES)
        # The foot's path (T,3) and orientation (T,4), read a window at a time (a long clip's poses are on disk).
        A = np.concatenate([W[foot][a:b, :3, 3] for a, b in scratch.windows(n)])
        q = np.concatenate([Rotation.from_matrix(W[foot][a:b, :3, :3]).as_quat()   # x, y, z, w
                            for a, b in scratch.windows(n)])
        sure = np.clip(np.nan_to_num(c), 0.0, 1.0) ** s.lock_sharpness
        target = planted_series(A, sure, s.sigma_plant_fit_m, s.sigma_plant_still_m, s.sigma_plant_acc_m)
        q = planted_series(make_continuous(q), sure, s.sigma_plant_fit_m * 5, s.sigma_plant_still_m * 5,
                           s.sigma_plant_acc_m * 5)
        sides.append((c, thigh, shin, foot, target, q / np.linalg.norm(q, axis=1, keepdims=True)))
    out = local_aa if in_place else local_aa.copy()
    T = lambda M: np.swapaxes(M, -1, -2)  # noqa: E731
    for c, thigh, shin, foot, target, q_new in sides:
        p_thigh, p_shin, p_foot = (int(skel.parents[b]) for b in (thigh, shin, foot))
        for a, b in scratch.windows(n, CHUNK):   # the legs' new rotations, a chunk of frames at a time
            Wc = {j: W[j][a:b] for j in (thigh, shin, foot, p_thigh, p_shin, p_foot)}
            H, Kn, A = (Wc[j][:, :3, 3] for j in (thigh, shin, foot))
            Q1, Q2 = two_bone_ik(H, Kn, A, H + _capped_reach(H, Kn, A, target[a:b], cap))
            F_new = Rotation.from_quat(q_new[a:b]).as_matrix()
            # New world rotations: the thigh turns by Q1 (and everything below it), the shin by Q2 after Q1; the
            # foot takes F_new. Locals from L_j = O_jᵀ W_pᵀ W_j with the parents' new world rotations.
            Wp_thigh = Wc[p_thigh][:, :3, :3]
            Wp_shin = Q1 @ Wc[p_shin][:, :3, :3]
            Wp_foot = Q2 @ Q1 @ Wc[p_foot][:, :3, :3]
            new = {thigh: T(O[thigh]) @ T(Wp_thigh) @ (Q1 @ Wc[thigh][:, :3, :3]),
                   shin: T(O[shin]) @ T(Wp_shin) @ (Q2 @ Q1 @ Wc[shin][:, :3, :3]),
                   foot: T(O[foot]) @ T(Wp_foot) @ F_new}
            for j, L in new.items():
                out[a:b, j] = matrix_to_aa(L)
    pinned = int(sum((c > 0.5).sum() for c, *_ in sides))
    return out, pinned


def _rotate_root(skel, local_aa: np.ndarray, root: np.ndarray, G: np.ndarray, in_place: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The whole posed body turned by world rotations G (T,3,3) about the origin (``in_place``: into ``local_aa``)."""
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    rest_root = skel.rest[0, :3, :3]
    out = local_aa if in_place else scratch.copy_of(local_aa)
    for a, b in scratch.windows(len(root)):   # a window at a time (a long clip's rotations are on disk)
        L0 = aa_to_matrix(local_aa[a:b, 0])
        out[a:b, 0] = matrix_to_aa(rest_root.T @ G[a:b] @ rest_root @ L0)     # W_root' = G W_root
    return out, np.einsum("tij,tj->ti", G, root)


def ground(skel, local_aa: np.ndarray, root_fit: np.ndarray, timestamps: np.ndarray, valid: np.ndarray,
           confidence: np.ndarray, R_cam_from_cam0: np.ndarray | None = None,
           settings: WorldSettings = WorldSettings(), image_speed: np.ndarray | None = None,
           camera_may_travel: bool = True, consume: bool = False) -> World:
    """Steps 1–7 of the module docstring. local_aa (T,J,3) and root_fit (T,3) are the fit's (level camera at the
    origin); valid (T,) frames with a fitted body; confidence (T,) 0..1; R_cam_from_cam0 (T,3,3) or None (still);
    image_speed (T,4) or None: the soles' speed in the picture (:func:`image_foot_speed`), the contacts' evidence
    unless the camera travels. camera_may_travel: False when the background, seen well, showed no translation
    (``capture.camera_may_travel``): the feet's odometry then never declares a tracking shot. consume: the caller
    gives ``local_aa`` up: it becomes the World's rotations, changed in place (no copy of a long clip's)."""
    from .fit import R_WORLD2CAM_LEVEL as R_L

    s = settings
    n = len(root_fit)
    valid = np.asarray(valid, dtype=bool)
    conf = np.where(valid, np.clip(np.nan_to_num(confidence), 0.0, 1.0), 0.0)
    R_rel = np.broadcast_to(np.eye(3), (n, 3, 3)).copy() if R_cam_from_cam0 is None or s.space == "camera" \
        else np.asarray(R_cam_from_cam0, dtype=np.float64)
    moving = bool(np.any(np.abs(R_rel - np.eye(3)) > 1e-9))
    # 1. camera rotation out
    G = R_L.T @ np.swapaxes(R_rel, 1, 2) @ R_L                                 # (T,3,3)
    local, root = _rotate_root(skel, np.asarray(local_aa, np.float64), np.asarray(root_fit, np.float64), G,
                               in_place=consume)
    R_w2c = R_rel @ R_L
    centre = np.zeros((n, 3))                                                 # camera centre (the fit's origin)
    info: dict = {"space": s.space, "camera": "rotating" if moving else "still"}

    # 2. floor (first guess) and its slope from planted soles
    soles = _soles(skel, local, root)                                         # (T,4,3)
    lowest = np.where(valid, soles[..., 2].min(axis=1), np.nan)
    floor = float(np.nanpercentile(lowest, 5)) if np.isfinite(lowest).any() else float(soles[..., 2].min())
    contact = contact_probability(soles, timestamps, floor, valid, s, image_speed)
    # One point per foot (mid-sole): a foot's own pitch (a fit's toes pointing down) must not read as a slope.
    mids = 0.5 * (soles[:, 0::2] + soles[:, 1::2])                            # (T,2,3)
    tilt, angle = floor_tilt(mids.reshape(-1, 3), np.minimum(contact[:, 0::2], contact[:, 1::2]).reshape(-1))
    info["floor_tilt_deg"] = round(angle, 2)
    if angle > MIN_TILT_DEG:
        Gt = np.broadcast_to(tilt, (n, 3, 3))
        local, root = _rotate_root(skel, local, root, Gt, in_place=True)   # `local` is this function's own
        R_w2c = R_w2c @ tilt.T
        soles = _soles(skel, local, root)
        lowest = np.where(valid, soles[..., 2].min(axis=1), np.nan)
        floor = float(np.nanpercentile(lowest, 5))
    root = root - np.array([0.0, 0.0, floor])
    centre = centre - np.array([0.0, 0.0, floor])
    soles = soles - np.array([0.0, 0.0, floor])

    # 3–5. contacts and the path. First the path the feet alone push (odometry), from contacts that do not trust
    # the picture's speeds (a camera that travels with the subject makes the planted foot move in the picture):
    # a sole point is planted when it is low and its foot is the lower one.
    offsets = soles - root[:, None]
    path_fit = root.copy()
    tracking = False
    if s.space == "world":
        odo = solve_trajectory(path_fit, offsets, lower_foot_contact(soles, valid, s), conf, R_w2c, s,
                               use_picture=False)
        travel_odo, travel_pic = _travel(odo[valid]), _travel(path_fit[valid])
        info.update(travel_feet_m=round(travel_odo, 2), travel_picture_m=round(travel_pic, 2))
        tracking = (camera_may_travel and travel_odo > TRACKING_MIN_TRAVEL_M
                    and travel_odo > TRACKING_RATIO * travel_pic)
        if tracking:
            root = odo
    seen_speed = None if tracking else image_speed
    # Only soles the detector sees move the path: a foot out of the picture (an upper-body shot) is presumed
    # planted for the foot lock, but its fitted place is a guess and must not drag the body across the picture.
    seen_feet = np.ones((n, 4)) if image_speed is None else np.isfinite(image_speed).astype(float)
    for _ in range(max(1, s.iterations)):
        contact = contact_probability(root[:, None] + offsets, timestamps, 0.0, valid, s, seen_speed)
        root = solve_trajectory(path_fit, offsets, contact * seen_feet, conf, R_w2c, s, use_picture=not tracking)
    if tracking:
        # The camera moved with the subject: it is where it must be for the root to sit where the picture shows.
        from .smoothing import smooth_series

        root_cam = np.einsum("tij,tj->ti", R_w2c, path_fit - centre)          # the fitted root, camera frame
        c = root - np.einsum("tji,tj->ti", R_w2c, root_cam)                  # C = x − R_c2w p_cam
        centre = smooth_series(c, np.repeat(conf[:, None], 3, 1) + 1e-6, 50.0)
        info["camera"] = "travelling"
    contact = contact_probability(root[:, None] + offsets, timestamps, 0.0, valid, s, seen_speed)

    # 6. foot lock
    if s.foot_lock:
        feet = np.stack([contact[:, :2].max(axis=1), contact[:, 2:].max(axis=1)], axis=1)
        local, info["pinned_frames"] = lock_feet(skel, local, root, feet, s, in_place=True)
    info["contact_frames"] = {"left": int((contact[:, :2].max(1) > 0.5).sum()),
                              "right": int((contact[:, 2:].max(1) > 0.5).sum())}

    # 7. start above the origin
    first = int(np.argmax(valid)) if valid.any() else 0
    shift = np.array([root[first, 0], root[first, 1], 0.0])
    root = root - shift
    centre = centre - shift
    t_w2c = -np.einsum("tij,tj->ti", R_w2c, centre)
    return World(local, root, R_w2c, t_w2c, contact.astype(np.float32), info)


def _travel(path: np.ndarray) -> float:
    """Horizontal distance between the start and the farthest point of a path (m)."""
    if len(path) < 2:
        return 0.0
    return float(np.max(np.linalg.norm(path[:, :2] - path[0, :2], axis=1)))
