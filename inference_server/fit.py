"""Fit of the Anny skeleton (body + fingers) to MediaPipe landmarks, batched over frames in torch. No bpy.

The unknowns per frame are the driven bones' local rotations (Blender ``matrix_basis`` convention — see
``take.py``) and the root's world position. The camera is fixed and level (``R_world2cam`` maps world +Y to the
optical axis, world +Z to image up), at the world origin during the fit.

Default solver ("lm", kinematic_lm.py), in three steps:

1. **Initialisation** (closed form): the body's facing from the hips and shoulders of the world landmarks, depth
   from the person's size in pixels; each limb and finger bone swung onto its observed 3D segment direction, the
   wrist by Kabsch on the palm (``initial_pose``).
2. **Body**: Levenberg–Marquardt on the root's position and 17 body bones (hinge knees and elbows, two-axis feet
   and clavicles; see ``DOFS``), every frame at once. Per frame it minimises
   * body 2D:  pseudo-Huber of (projected marker − landmark) / person size, weighted by landmark visibility —
               so the result lines up with the person in the picture;
   * body 3D:  |model − MediaPipe world-landmark segment direction|² (camera axes; scale-free);
   * prior:    Σ w_bone ‖aa‖² (stiff spine/clavicles, free limbs) and soft anatomical limits (``LIMITS``).
3. **Temporal**: a Whittaker smoother (smoothing.py) on each solved bone's rotation and the root's path, each frame
   weighted by the curvature of its fit (unseen frames weigh nothing and are bridged), stiffness from the
   smoothing option.
4. **Hands**, each on its own (smoothed) wrist: the swing initialisation, optionally refined by LM on the wrist and
   15 finger bones (hinge middle and end joints) against the hand's 2D shape (relative to its wrist) and 3D
   directions (``hand_iterations``, 0 by default: see the README's accuracy section), then smoothed.

The first version's fit — Adam on all of it at once, with a second-difference penalty on the bone heads — remains as
``FitSettings.adam_baseline()``, the baseline of the fit benchmarks (``_fit_window``).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Callable, Sequence

import numpy as np

from . import scratch
from .anny_skeleton import Skeleton, attached_points

# Level camera: world X → image right, world Z → image up (−y), world Y → forward (z).
R_WORLD2CAM_LEVEL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Body segments (MediaPipe pose indices) whose 3D directions constrain the fit.
BODY_SEGMENTS = [
    (11, 13), (13, 15), (12, 14), (14, 16),          # arms
    (23, 25), (25, 27), (24, 26), (26, 28),          # legs
    (27, 31), (28, 32),                              # feet (ankle → toe; MediaPipe's heel sits higher than the
                                                     # model's sole-level heel point, so heels are not used)
    (12, 11), (24, 23),                              # shoulder line, hip line (subject's right → left)
    (23, 11), (24, 12),                              # flanks (spine bend / twist)
    (8, 7), (11, 0), (12, 0),                        # head yaw and tilt
]
# Hand segments (MediaPipe hand indices).
HAND_SEGMENTS = [
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (0, 9), (9, 10), (10, 11), (11, 12),
    (0, 13), (13, 14), (14, 15), (15, 16),
    (0, 17), (17, 18), (18, 19), (19, 20),
    (5, 17), (5, 9), (9, 13), (13, 17),
]


@dataclasses.dataclass(frozen=True)
class FitSettings:
    solver: str = "lm"       # "lm": Levenberg–Marquardt (kinematic_lm.py); "adam": the first version's gradient fit,
                             # kept as the speed and accuracy baseline (use FitSettings.adam_baseline())
    iterations: int = 8      # body LM iterations (Adam: gradient steps)
    hand_iterations: int = 0  # finger LM iterations after the direct hand IK (see README › Accuracy: on the
                              # benchmark the LM refinement of the fingers lost to the IK, so it is off by default)
    learning_rate: float = 0.01  # Adam only
    smoothing: float = 0.5   # 0 = none, 1 = strong (the Whittaker smoother's stiffness is smoothing² × w_smooth)
    w_body2d: float = 100.0
    w_body3d: float = 0.3
    w_hand2d: float = 5.0
    w_hand3d: float = 1.0
    w_prior: float = 0.001
    w_smooth: float = 80.0
    realign_iterations: int = 3  # Gauss–Newton steps on the body's place alone after smoothing (0: none)
    fast_move: float = 0.4    # rad/frame: where the detector's own 3D limb direction turns this fast two frames
                              # running, the smoother lets the limb's bone turn as fast (`_fast_relax`); 0: never
    w_hand_on_body: float = 1.5  # weight of one hand's wrist + knuckles in the body fit, against one body marker
    window: int = 400  # frames fitted together; longer clips go window by window (bounded memory)
    device: str = "cpu"  # torch device of the fit: "cpu" or "cuda" (resolve_device checks it first)

    @classmethod
    def adam_baseline(cls, **changes) -> "FitSettings":
        """The first version's fit (400 Adam steps, its own weights), for benchmarks against it."""
        return dataclasses.replace(cls(solver="adam", iterations=400, w_body3d=1.0, w_hand2d=20.0), **changes)


@dataclasses.dataclass
class FitResult:
    local_rotations_aa: np.ndarray   # (T, J, 3)
    root_position_world: np.ndarray  # (T, 3)  (camera at the world origin, level)
    bone_fitted: np.ndarray          # (T, J) bool
    residual_px: np.ndarray          # (T,)
    camera_shift: np.ndarray | None = None  # (T,3) per-frame camera-space shift to add to t_world2cam (None: 0)


# Bones the fit moves; the rest (twist helpers, metacarpals, toes, eyes, lower spine segments) stay at rest.
DRIVEN_PREFIXES = ("root", "spine01", "spine03", "neck01", "head", "clavicle", "upperarm01", "lowerarm01", "wrist",
                   "finger", "upperleg01", "lowerleg01", "foot")

# Swing targets for the initial pose: bone → (from, to) landmark indices; body uses pose indices, hand uses hand
# indices (with "h").
_BODY_SWING = [("spine01", (None, None)), ("upperarm01", (11, 13)), ("lowerarm01", (13, 15)),
               ("upperleg01", (23, 25)), ("lowerleg01", (25, 27)), ("foot", (27, 31))]
_FINGER_SWING = [("finger1-1", (1, 2)), ("finger1-2", (2, 3)), ("finger1-3", (3, 4))] + [
    (f"finger{k}-{s}", (4 * (k - 1) + s, 4 * (k - 1) + s + 1)) for k in range(2, 6) for s in range(1, 4)]


def driven_mask(skel: Skeleton) -> np.ndarray:
    return np.array([name.startswith(DRIVEN_PREFIXES) for name in skel.names])


def _swing(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(T,3),(T,3) → (T,3,3) smallest rotations taking direction v onto direction u (identity where undefined)."""
    from rigs.rotations import aa_to_matrix

    v, u = _unit(v), _unit(u)
    axis = np.cross(v, u)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    c = np.sum(v * u, axis=-1, keepdims=True)
    angle = np.arctan2(s, c)
    aa = axis / np.where(s < 1e-9, 1.0, s) * angle
    aa = np.where(np.isfinite(aa), aa, 0.0)
    return aa_to_matrix(aa)


def _kabsch(model: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T,N,3),(T,N,3) direction sets → (T,3,3) rotations R minimising Σ‖R m − t‖² (identity where invalid)."""
    H = np.einsum("tni,tnj->tij", model, target)
    out = np.broadcast_to(np.eye(3), H.shape).copy()
    ok = np.all(np.isfinite(H), axis=(1, 2))
    if ok.any():
        U, _, Vt = np.linalg.svd(H[ok])
        d = np.sign(np.linalg.det(np.einsum("tij,tjk->tik", U, Vt)))
        D = np.zeros_like(U)
        D[:, 0, 0] = 1
        D[:, 1, 1] = 1
        D[:, 2, 2] = d
        out[ok] = np.einsum("tji,tjk,tlk->til", Vt, D, U)
    return out


def initial_pose(skel: Skeleton, local_aa: np.ndarray, root_pos: np.ndarray, pose_world: np.ndarray,
                 pose_vis: np.ndarray, hands_dir: np.ndarray, hand_seen: np.ndarray, R_w2c: np.ndarray) -> np.ndarray:
    """Bone-direction initialisation: swing each limb and finger bone onto the observed segment direction.

    For bone j with posed world rotation A_j, a world swing S gives A_j' = S A_j, i.e. the local rotation
    L_j' = L_j (A_jᵀ S A_j). Body targets come from the world landmarks, finger targets from the hand landmarks
    (x, y, relative z), both in camera axes and converted to world axes here. The wrist takes the rotation that
    best maps the palm's two directions (wrist → middle knuckle, index knuckle → little knuckle).
    """
    from rigs.fk import forward_kinematics
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    R_c2w = R_w2c.T
    local = local_aa.copy()
    pw = pose_world @ R_c2w.T                     # (T,33,3) world axes
    hd = hands_dir @ R_c2w.T                      # (T,2,21,3) world axes (scale irrelevant)
    markers = skel.body_marker_bone

    def apply(W, j, S, frames):
        A = W[:, j, :3, :3]
        delta = np.einsum("tji,tjk,tkl->til", A, S, A)  # Aᵀ S A
        new = np.einsum("tij,tjk->tik", aa_to_matrix(local[:, j]), delta)
        local[frames, j] = matrix_to_aa(new[frames])

    def body_swing(W, name, a, b, side):
        """Swing of a body bone onto the world landmarks' segment a → b (index tuples are averaged)."""
        ia, ib = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        if side == ".R" and not isinstance(a, tuple):
            ia, ib = (a + 1,), (b + 1,)
        idx = list(ia) + list(ib)
        vis = np.min(pose_vis[:, idx], axis=1)
        frames = (vis > 0.5) & np.all(np.isfinite(pw[:, idx]), axis=(1, 2))
        if frames.any():
            mpts = attached_points(W, markers[idx], skel.body_marker_local[idx])
            v = mpts[:, len(ia):].mean(1) - mpts[:, :len(ia)].mean(1)
            u = pw[:, list(ib)].mean(1) - pw[:, list(ia)].mean(1)
            apply(W, skel.index(name + side), _swing(v, u), frames)

    # Bones are swung in rounds, parents before children; one forward kinematics per round.
    fk = lambda: forward_kinematics(skel.rest, skel.parents, local, root_pos)  # noqa: E731
    body = dict(_BODY_SWING)
    body_swing(fk(), "spine01", (23, 24), (11, 12), "")   # torso lean: mid-hip → mid-shoulder
    for names in (("upperarm01", "upperleg01"), ("lowerarm01", "lowerleg01"), ("foot",)):
        W = fk()
        for name in names:
            for side in (".L", ".R"):
                body_swing(W, name, *body[name], side)

    W = fk()
    for side, suffix in enumerate((".L", ".R")):
        frames = hand_seen[:, side]
        if frames.any():
            mp = attached_points(W, skel.hand_marker_bone[side], skel.hand_marker_local[side])
            model_dirs = np.stack([_unit(mp[:, 9] - mp[:, 0]), _unit(mp[:, 17] - mp[:, 5])], axis=1)
            target_dirs = np.stack([_unit(hd[:, side, 9] - hd[:, side, 0]),
                                    _unit(hd[:, side, 17] - hd[:, side, 5])], 1)
            apply(W, skel.index("wrist" + suffix), _kabsch(model_dirs, target_dirs), frames)
    # Fingers, knuckle to tip: each bone swung onto its observed direction — except the thumb's first bone. The
    # detector's thumb-base landmark (CMC, inside the ball of the thumb) is its least reliable point (13.5 mm
    # PA on the standard suite, against 8 mm for the model's own, rigid with the palm), so the direction from
    # it is too: that bone is aimed from the model's own base at the observed thumb knuckle (MCP), with the
    # observed hand laid onto the model's palm first (a similarity on the wrist and the four knuckles).
    W = fk()
    placed = np.full_like(hd, np.nan)
    for side in (0, 1):
        if hand_seen[:, side].any():
            mp = attached_points(W, skel.hand_marker_bone[side], skel.hand_marker_local[side])
            placed[:, side] = _laid_onto(hd[:, side], mp, list(PALM_POINTS))
    for segment in ("-1", "-2", "-3"):
        W = fk()
        for side, suffix in enumerate((".L", ".R")):
            frames = hand_seen[:, side] & np.all(np.isfinite(placed[:, side]), axis=(1, 2))
            if not frames.any():
                continue
            mp = attached_points(W, skel.hand_marker_bone[side], skel.hand_marker_local[side])
            for name, (a, b) in _FINGER_SWING:
                if name.endswith(segment):
                    target = (placed[:, side, b] - mp[:, a] if name in AIMED_AT_POINT else
                              hd[:, side, b] - hd[:, side, a])
                    apply(W, skel.index(name + suffix), _swing(mp[:, b] - mp[:, a], target), frames)
    return local


PALM_POINTS = (0, 5, 9, 13, 17)   # hand landmarks that move with the palm: wrist and the four knuckles
AIMED_AT_POINT = ("finger1-1",)   # finger bones aimed at their observed end point rather than along a direction


def _laid_onto(obs: np.ndarray, model: np.ndarray, idx: list[int]) -> np.ndarray:
    """obs (T,N,3) moved by the per-frame similarity (scale, rotation, shift) that best lays its points idx onto
    model's (T,N,3); NaN frames stay NaN."""
    o, m = obs[:, idx], model[:, idx]
    oc, mc = o - o.mean(1, keepdims=True), m - m.mean(1, keepdims=True)
    R = _kabsch(oc, mc)                                                      # R oc ≈ mc
    ro = np.einsum("tij,tnj->tni", R, oc)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.einsum("tni,tni->t", ro, mc) / np.einsum("tni,tni->t", oc, oc)
    moved = np.einsum("tij,tnj->tni", R, obs - o.mean(1, keepdims=True))
    return scale[:, None, None] * moved + m.mean(1, keepdims=True)


def _prior_weights(skel: Skeleton) -> np.ndarray:
    """Per-bone stiffness of the ‖aa‖² prior."""
    w = np.full(len(skel.names), 1.0)
    for j, name in enumerate(skel.names):
        base = name.split(".")[0]
        if name == "root":
            w[j] = 0.0
        elif base.startswith(("upperarm01", "lowerarm01", "upperleg01", "lowerleg01", "wrist", "finger",
                              "shoulder01", "neck", "head", "foot")):
            w[j] = 0.3
        elif base.startswith(("spine", "pelvis", "clavicle")):
            w[j] = 3.0
        elif base.startswith(("upperarm02", "lowerarm02", "upperleg02", "lowerleg02", "metacarpal")):
            w[j] = 10.0
        else:  # toes, eyes
            w[j] = 30.0
    return w


class TorchSkeleton:
    """Forward kinematics in torch, one batched product per depth level of the hierarchy."""

    def __init__(self, skel: Skeleton, dtype, device="cpu"):
        import torch

        parents = skel.parents
        rest = skel.rest
        offsets = rest.copy()
        for j, p in enumerate(parents):
            if p >= 0:
                Rp, hp = rest[p, :3, :3], rest[p, :3, 3]
                inv = np.eye(4)
                inv[:3, :3] = Rp.T
                inv[:3, 3] = -Rp.T @ hp
                offsets[j] = inv @ rest[j]
        self.off_R = torch.tensor(offsets[:, :3, :3], dtype=dtype, device=device)
        self.off_t = torch.tensor(offsets[:, :3, 3], dtype=dtype, device=device)
        depth = np.zeros(len(parents), dtype=int)
        for j, p in enumerate(parents):
            depth[j] = 0 if p < 0 else depth[p] + 1
        self.levels = []
        position = {}  # bone → (level, index within level)
        for d in range(depth.max() + 1):
            bones = [j for j in range(len(parents)) if depth[j] == d]
            for k, j in enumerate(bones):
                position[j] = (d, k)
            parent_pos = [position[parents[j]][1] if parents[j] >= 0 else 0 for j in bones]
            self.levels.append((torch.tensor(bones, device=device), torch.tensor(parent_pos, device=device)))
        order = torch.cat([b for b, _ in self.levels])
        self.inverse = torch.argsort(order)

    def forward(self, local_R, root_pos):
        """local_R (T,J,3,3), root_pos (T,3) → world rotations (T,J,3,3) and heads (T,J,3)."""
        import torch

        rots, heads = [], []
        for d, (bones, parent_pos) in enumerate(self.levels):
            if d == 0:
                A = self.off_R[bones] @ local_R[:, bones]
                b = root_pos[:, None, :].expand(-1, len(bones), -1)
            else:
                Ap, bp = rots[-1][:, parent_pos], heads[-1][:, parent_pos]
                A = Ap @ self.off_R[bones] @ local_R[:, bones]
                b = bp + (Ap @ self.off_t[bones][..., None])[..., 0]
            rots.append(A)
            heads.append(b)
        A = torch.cat(rots, dim=1)[:, self.inverse]
        b = torch.cat(heads, dim=1)[:, self.inverse]
        return A, b


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n < 1e-9, 1.0, n)


def _initial_root(skel: Skeleton, pose_world: np.ndarray, pose_2d: np.ndarray, K: np.ndarray,
                  R_w2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root local rotation (T,3) and root position (T,3) from the torso landmarks.

    Facing: the rotation G that takes Anny's rest torso frame (left = +X, up = +Z) onto the observed one
    (left = hip_L − hip_R, up = mid-shoulder − mid-hip, converted from camera to world axes); the root's local
    rotation is then Rest_root^T G Rest_root (so that W_root = G Rest_root).
    """
    from rigs.rotations import matrix_to_aa

    n_frames = pose_world.shape[0]
    R_c2w = R_w2c.T
    lhip, rhip, lsh, rsh = (pose_world[:, i] for i in (23, 24, 11, 12))
    left = (lhip - rhip) + (lsh - rsh)
    up = 0.5 * (lsh + rsh) - 0.5 * (lhip + rhip)
    left_w, up_w = left @ R_c2w.T, up @ R_c2w.T
    ok = np.all(np.isfinite(left_w), axis=1) & np.all(np.isfinite(up_w), axis=1)
    rest_root = skel.rest[0, :3, :3]
    aa = np.zeros((n_frames, 3))
    for t in range(n_frames):
        if not ok[t]:
            continue
        x = _unit(left_w[t])
        z = _unit(up_w[t] - (up_w[t] @ x) * x)
        y = np.cross(z, x)
        G = np.stack([x, y, z], axis=1)  # columns: where rest X, Y, Z go
        aa[t] = matrix_to_aa(rest_root.T @ G @ rest_root)
    aa = _fill_invalid(aa, ok)

    # Depth from size: pixels per metre from the torso height (0.50 m) and the shoulder width (0.31 m), taking the
    # larger (foreshortening only shrinks a segment); position from the hip centre, or the shoulders when the hips
    # are out of the picture.
    vis = np.nan_to_num(pose_2d[..., 2])
    p2 = pose_2d[..., :2]
    sh_ok = (vis[:, 11] > 0.5) & (vis[:, 12] > 0.5)
    hip_ok = (vis[:, 23] > 0.5) & (vis[:, 24] > 0.5)
    mid_sh, mid_hip = 0.5 * (p2[:, 11] + p2[:, 12]), 0.5 * (p2[:, 23] + p2[:, 24])
    with np.errstate(invalid="ignore"):
        ppm_torso = np.where(sh_ok & hip_ok, np.linalg.norm(mid_sh - mid_hip, axis=1) / 0.50, np.nan)
        ppm_sh = np.where(sh_ok, np.linalg.norm(p2[:, 11] - p2[:, 12], axis=1) / 0.31, np.nan)
        ppm = np.fmax(ppm_torso, ppm_sh)
    depth = K[0, 0] / np.where(ppm > 1, ppm, np.nan)
    anchor_px = np.where(hip_ok[:, None], mid_hip, mid_sh)
    # The same anchors on the model at rest, relative to the root bone's head (world axes).
    markers_rest = _body_markers_rest(skel)
    anchor_rest = np.where(hip_ok[:, None], 0.5 * (markers_rest[23] + markers_rest[24]),
                           0.5 * (markers_rest[11] + markers_rest[12])) - skel.rest[0, :3, 3]
    ray = np.stack([(anchor_px[:, 0] - K[0, 2]) / K[0, 0], (anchor_px[:, 1] - K[1, 2]) / K[1, 1],
                    np.ones(n_frames)], axis=1)
    anchor_world = (ray * depth[:, None]) @ R_c2w.T
    from rigs.rotations import aa_to_matrix
    G = np.einsum("ij,tjk,kl->til", rest_root, aa_to_matrix(aa), rest_root.T)  # world rotation of the body
    pos = anchor_world - np.einsum("tij,tj->ti", G, anchor_rest)
    good = np.all(np.isfinite(pos), axis=1)
    if not good.any():
        pos[:] = np.array([0.0, 0.0, 3.0]) @ R_c2w.T
    pos = _fill_invalid(pos, good)
    return aa, pos


def _body_markers_rest(skel: Skeleton) -> np.ndarray:
    """(33,3) rest positions of the body markers (zeros where unused)."""
    out = np.zeros((33, 3))
    for i, (j, local) in enumerate(zip(skel.body_marker_bone, skel.body_marker_local)):
        if j >= 0:
            out[i] = skel.rest[j, :3, :3] @ local + skel.rest[j, :3, 3]
    return out


def gate_hands(pose_2d: np.ndarray, hands_2d: np.ndarray) -> np.ndarray:
    """Drop a hand whose wrist is far from the body's wrist of the same side (a duplicate or the other hand).

    Far = more than 1.5 hand lengths (wrist → middle-finger knuckle) when the body's wrist is visible.
    """
    out = hands_2d.copy()
    for side, body_wrist in ((0, 15), (1, 16)):
        hand = hands_2d[:, side]
        size = np.linalg.norm(hand[:, 9, :2] - hand[:, 0, :2], axis=-1)
        dist = np.linalg.norm(hand[:, 0, :2] - pose_2d[:, body_wrist, :2], axis=-1)
        visible = np.nan_to_num(pose_2d[:, body_wrist, 2]) > 0.5
        with np.errstate(invalid="ignore"):
            bad = visible & (dist > 1.5 * np.maximum(size, 1.0))
        out[bad, side] = np.nan
    return out


def _fill_invalid(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Replace rows where ok is False by linear interpolation between valid rows (hold at the ends)."""
    if ok.all() or not ok.any():
        return values
    idx = np.arange(len(values))
    out = values.copy()
    for c in range(values.shape[1]):
        out[~ok, c] = np.interp(idx[~ok], idx[ok], values[ok, c])
    return out


def resolve_device(name: str) -> str:
    """"cpu", "cuda" or "auto" (CUDA when torch sees a GPU) → a torch device name; RpcError when CUDA is missing."""
    import torch

    from .protocol import JOB_FAILED, RpcError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RpcError(JOB_FAILED, "the fit was asked to run on CUDA but torch sees no CUDA GPU here",
                       fix="use device \"cpu\" (or \"auto\"), or install a CUDA build of torch on a GPU machine")
    if name not in ("cpu", "cuda"):
        raise RpcError(JOB_FAILED, f"unknown device {name!r}", fix='use "cpu", "cuda" or "auto"')
    return name


def fit_sequence(skel: Skeleton, pose_2d: np.ndarray, pose_world: np.ndarray, hands_2d: np.ndarray,
                 K: np.ndarray, settings: FitSettings = FitSettings(),
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None, hands_world: np.ndarray | None = None,
                 hands_only: bool = False, prior: tuple[np.ndarray, np.ndarray] | None = None) -> FitResult:
    """Fit every frame. pose_2d (T,33,3), pose_world (T,33,3), hands_2d (T,2,21,3), K (3,3). NaN = unseen.

    hands_world (T,2,21,3): the hand network's metric landmarks (camera axes) where it ran; their directions
    replace the image landmarks' (x, y, relative depth) ones for the finger shapes.
    hands_only: no body was observed (hands mode). The body stays at rest where the camera looks at it; only the
    wrists (their orientation in the camera) and the fingers move, from the hands' 3D shape alone (a body at rest
    cannot put both hands where they are in the picture, so the 2D term is off). The Take marks the body unfitted.
    prior: (local_aa (T,J,3), root (T,3)) in the fit's frame (level camera at the origin), NaN where not given:
    where given, the solve starts from it instead of the closed-form initial pose (the motion network's body as
    the fit's initialisation, ``motion="prior"``), and the smoother smooths the fit's correction to it rather than
    the motion itself (:func:`_smooth`'s ``base``).
    """
    n_frames = pose_2d.shape[0]
    if hands_world is None:
        hands_world = np.full_like(hands_2d, np.nan)
    windows = [(s, min(s + settings.window, n_frames)) for s in range(0, n_frames, settings.window)]
    total = 1000 * len(windows)
    if not windows:
        raise ValueError("fit_sequence: no frames to fit")
    out: FitResult | None = None   # the whole clip's, filled window by window (no copy of every window's at the end)
    for w, (a, b) in enumerate(windows):
        def window_progress(i: int, n: int, offset=w * 1000) -> None:
            if progress:
                progress(offset + int(1000 * i / max(n, 1)), total)
        fit_window = _fit_window_lm if settings.solver == "lm" else _fit_window
        part = fit_window(skel, pose_2d[a:b], pose_world[a:b], hands_2d[a:b], K, settings,
                          window_progress, cancelled, hands_world[a:b], hands_only,
                          None if prior is None else (prior[0][a:b], prior[1][a:b]))
        if out is None:
            whole = lambda x: scratch.empty((n_frames, *x.shape[1:]), x.dtype)  # noqa: E731   # on disk if long
            out = FitResult(local_rotations_aa=whole(part.local_rotations_aa),
                            root_position_world=whole(part.root_position_world),
                            bone_fitted=whole(part.bone_fitted), residual_px=whole(part.residual_px),
                            camera_shift=np.zeros((n_frames, 3)))
        out.local_rotations_aa[a:b] = part.local_rotations_aa
        out.root_position_world[a:b] = part.root_position_world
        out.bone_fitted[a:b] = part.bone_fitted
        out.residual_px[a:b] = part.residual_px
        if part.camera_shift is not None:
            out.camera_shift[a:b] = part.camera_shift   # type: ignore[index]
        del part
        scratch.trim()   # the window's landmarks read and rotations written leave memory (scratch.py)
    assert out is not None
    return out


_OBSERVATION_KEYS = ("body_vis", "body_used", "w_b2", "size", "seg_a", "seg_b", "w_b3", "obs_b3", "hands_2d",
                     "hand_seen", "hand_size", "hseg_a", "hseg_b", "obs_h3", "pos0", "init")


def _observations(skel, pose_2d, pose_world, hands_2d, hands_world, K, R_w2c, prior=None) -> dict:
    """The fit's observations, their weights and the closed-form initial pose (both solvers use them). ``prior``:
    (local_aa (T,J,3), root (T,3)) to start from instead where they are finite (`fit_sequence`)."""
    body_vis = np.clip(np.nan_to_num(pose_2d[..., 2]), 0.0, 1.0)          # (T,33)
    body_used = skel.body_marker_bone >= 0
    body_used[[29, 30]] = False  # heels: different landmark semantics (see BODY_SEGMENTS)
    body_vis[:, ~body_used] = 0.0
    body_valid = np.isfinite(pose_2d[..., 0]) & (body_vis > 0.3)
    w_b2 = body_vis * body_valid                                         # (T,33)
    ys = np.where(body_valid, pose_2d[..., 1], np.nan)
    xs = np.where(body_valid, pose_2d[..., 0], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without a person: all-NaN rows give NaN
        size = np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1)
        size = np.maximum(size, np.nanmax(xs, axis=1) - np.nanmin(xs, axis=1))
    size = np.where(np.isfinite(size) & (size > 10), size, np.nan)
    size = np.nan_to_num(size, nan=np.nanmedian(size) if np.isfinite(size).any() else 100.0)
    seg_a = np.array([a for a, _ in BODY_SEGMENTS])
    seg_b = np.array([b for _, b in BODY_SEGMENTS])
    w_b3 = np.minimum(body_vis[:, seg_a], body_vis[:, seg_b]) * \
        np.all(np.isfinite(pose_world[:, seg_a]) & np.isfinite(pose_world[:, seg_b]), axis=-1)
    obs_b3 = _unit(pose_world[:, seg_b] - pose_world[:, seg_a])        # camera axes

    hands_2d = gate_hands(pose_2d, hands_2d)
    hand_seen = np.all(np.isfinite(hands_2d[..., 0]), axis=-1)          # (T,2)
    hand_size = np.linalg.norm(hands_2d[:, :, 9, :2] - hands_2d[:, :, 0, :2], axis=-1)
    hand_size = np.where(hand_seen & (hand_size > 2), hand_size, 1.0)
    hseg_a = np.array([a for a, _ in HAND_SEGMENTS])
    hseg_b = np.array([b for _, b in HAND_SEGMENTS])
    # 3D shape of each hand: metric world landmarks where the hand network gave them, else the image landmarks
    # with MediaPipe's relative depth (both in camera axes; only directions are used).
    metric = np.all(np.isfinite(hands_world[..., 0]), axis=-1) & hand_seen  # (T,2)
    hands_dir = np.where(metric[..., None, None], hands_world, hands_2d)   # (T,2,21,3)
    obs_h3 = _unit(hands_dir[:, :, hseg_b] - hands_dir[:, :, hseg_a])      # (T,2,S,3) camera axes

    aa0, pos0 = _initial_root(skel, pose_world, pose_2d, K, R_w2c)
    init = np.zeros((len(pose_2d), len(skel.names), 3))
    init[:, 0] = aa0
    init = initial_pose(skel, init, pos0, pose_world, body_vis, hands_dir, hand_seen, R_w2c)
    if prior is not None:
        given_aa, given_root = prior
        init = np.where(np.isfinite(given_aa), given_aa, init)
        pos0 = np.where(np.isfinite(given_root), given_root, pos0)

    return {k: v for k, v in locals().items() if k in _OBSERVATION_KEYS}


def _fit_window(skel, pose_2d, pose_world, hands_2d, K, settings, progress, cancelled, hands_world,
                hands_only, prior=None) -> FitResult:
    import roma
    import torch

    from .pipeline import Cancelled

    dtype = torch.float32
    n_frames, n_bones = pose_2d.shape[0], len(skel.names)
    R_w2c = R_WORLD2CAM_LEVEL
    dev = torch.device(settings.device)
    tsk = TorchSkeleton(skel, dtype, dev)
    T = lambda a: torch.tensor(np.nan_to_num(np.asarray(a, dtype=np.float64)), dtype=dtype, device=dev)  # noqa: E731

    # --- observations and weights ---------------------------------------------------------------------------
    o = _observations(skel, pose_2d, pose_world, hands_2d, hands_world, K, R_w2c, prior)
    (body_vis, body_used, w_b2, size, seg_a, seg_b, w_b3, obs_b3, hands_2d, hand_seen, hand_size, hseg_a, hseg_b,
     obs_h3, pos0, init) = (o[k] for k in _OBSERVATION_KEYS)

    # --- parameters -----------------------------------------------------------------------------------------
    local_aa = T(init).clone().requires_grad_(True)
    driven = driven_mask(skel)
    if hands_only:
        driven &= np.array([name.startswith(("wrist", "finger")) for name in skel.names])
    frozen = torch.tensor(~driven, device=dev)
    # Root position in camera coordinates (x, y, log z): depth stays positive and its steps are relative.
    pos0_cam = pos0 @ R_w2c.T
    root_xy = T(pos0_cam[:, :2]).clone().requires_grad_(True)
    root_logz = T(np.log(np.maximum(pos0_cam[:, 2], 0.1))).clone().requires_grad_(True)
    R_c2w_t = T(R_w2c.T)
    opt = torch.optim.Adam([local_aa, root_xy, root_logz], lr=settings.learning_rate)

    K_t, R_t = T(K), T(R_w2c)
    obs_b2, w_b2_t, size_t = T(pose_2d[..., :2]), T(w_b2), T(size)
    obs_b3_t, w_b3_t = T(obs_b3), T(w_b3)
    obs_h2 = T(hands_2d[..., :2])
    w_h_t = T(hand_seen.astype(float))
    w_hand2d = 0.0 if hands_only else settings.w_hand2d
    hand_size_t = T(hand_size)
    obs_h3_t = T(obs_h3)
    prior_w = T(_prior_weights(skel))
    body_bone = torch.tensor(np.maximum(skel.body_marker_bone, 0), device=dev)
    body_local = T(skel.body_marker_local)
    hand_bone = torch.tensor(skel.hand_marker_bone, device=dev)  # (2,21)
    hand_local = T(skel.hand_marker_local)                 # (2,21,3)
    n_seen = hand_seen.any(axis=1).sum() if hands_only else (w_b2.sum(axis=1) > 0).sum()   # frames with data
    n_valid = max(1.0, float(n_seen))
    smooth_w = 50.0 * settings.smoothing ** 2

    def project(p_world):  # (..., 3) → pixels (..., 2), camera axes (..., 3)
        p_cam = p_world @ R_t.T
        uvw = p_cam @ K_t.T
        return uvw[..., :2] / uvw[..., 2:3].clamp(min=1e-3), p_cam

    def pseudo_huber(r, delta):
        return delta ** 2 * (torch.sqrt(1 + (r / delta) ** 2) - 1)

    debug_fit = bool(os.environ.get("REEL2RIG_DEBUG_FIT"))
    debug = False

    def root_world():
        cam = torch.cat([root_xy, torch.exp(root_logz)[:, None]], dim=1)
        return cam @ R_c2w_t.T

    def evaluate():
        Rl = roma.rotvec_to_rotmat(local_aa)
        root_pos = root_world()
        A, heads = tsk.forward(Rl, root_pos)
        body_pts = heads[:, body_bone] + (A[:, body_bone] @ body_local[..., None])[..., 0]   # (T,33,3)
        hand_pts = heads[:, hand_bone] + (A[:, hand_bone] @ hand_local[..., None])[..., 0]   # (T,2,21,3)
        uv_b, cam_b = project(body_pts)
        uv_h, cam_h = project(hand_pts)
        r_b2 = torch.linalg.norm(uv_b - obs_b2, dim=-1) / size_t[:, None]
        l_b2 = (w_b2_t * pseudo_huber(r_b2, 0.05)).sum() / n_valid / 33
        d_b = cam_b[:, seg_b] - cam_b[:, seg_a]
        cos_b = (d_b * obs_b3_t).sum(-1) / d_b.norm(dim=-1).clamp(min=1e-6)
        l_b3 = (w_b3_t * (1 - cos_b)).sum() / n_valid / len(BODY_SEGMENTS)
        r_h2 = torch.linalg.norm(uv_h - obs_h2, dim=-1) / hand_size_t[..., None]
        l_h2 = (w_h_t[..., None] * pseudo_huber(r_h2, 0.2)).sum() / n_valid / 21
        d_h = cam_h[:, :, hseg_b] - cam_h[:, :, hseg_a]
        cos_h = (d_h * obs_h3_t).sum(-1) / d_h.norm(dim=-1).clamp(min=1e-6)
        l_h3 = (w_h_t[..., None] * (1 - cos_h)).sum() / n_valid / len(HAND_SEGMENTS)
        l_prior = ((local_aa ** 2).sum(-1) * prior_w).sum() / n_frames
        l_smooth = torch.zeros((), dtype=dtype, device=dev)
        if n_frames >= 3 and smooth_w > 0:
            acc = heads[2:] - 2 * heads[1:-1] + heads[:-2]
            l_smooth = smooth_w * 1e3 * (acc ** 2).sum(-1).mean()
        loss = (settings.w_body2d * l_b2 + settings.w_body3d * l_b3 + w_hand2d * l_h2 +
                settings.w_hand3d * l_h3 + settings.w_prior * l_prior + l_smooth)
        if debug:
            terms = dict(b2=l_b2, b3=l_b3, h2=l_h2, h3=l_h3, prior=l_prior, smooth=l_smooth)
            print(" ".join(f"{k}={float(v):.4f}" for k, v in terms.items()), file=sys.stderr)
        return loss, uv_b

    # Stage 1 (first third): root only, so the limbs do not absorb the global error.
    for it in range(settings.iterations):
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled during fit")
        opt.zero_grad()
        debug = debug_fit and it % 50 == 0
        loss, _ = evaluate()
        loss.backward()
        local_aa.grad[:, frozen] = 0.0
        if hands_only:
            root_xy.grad.zero_()
            root_logz.grad.zero_()
        elif it < settings.iterations // 4:
            local_aa.grad[:, 1:] = 0.0
        opt.step()
        if progress is not None and (it % 10 == 0 or it == settings.iterations - 1):
            progress(it + 1, settings.iterations)

    with torch.no_grad():
        _, uv_b = evaluate()
        err = torch.linalg.norm(uv_b - obs_b2, dim=-1).cpu().numpy()
    used = w_b2 > 0
    return _result(skel, local_aa, root_world(), err, used, hand_seen, hands_only)


def _result(skel, local_aa, root_pos, err, used, hand_seen, hands_only) -> FitResult:
    """FitResult from the solved torch tensors: err (T,33) px per body marker, used (T,33) the markers fitted."""
    residual = np.where(used.any(axis=1), (err * used).sum(axis=1) / np.maximum(used.sum(axis=1), 1), np.nan)
    fitted = np.zeros((len(err), len(skel.names)), dtype=bool)
    body_seen = used.any(axis=1)
    for j, name in enumerate(skel.names):
        side = 0 if name.endswith(".L") else 1
        if name.startswith(("finger", "metacarpal")) or (hands_only and name.startswith("wrist")):
            fitted[:, j] = hand_seen[:, side]
        elif not name.startswith(("toe", "eye")):
            fitted[:, j] = body_seen
    return FitResult(local_rotations_aa=local_aa.detach().double().cpu().numpy(),
                     root_position_world=root_pos.detach().double().cpu().numpy(),
                     bone_fitted=fitted, residual_px=residual)


# ---------------------------------------------------------------------------------------------------------------
# Levenberg–Marquardt fit (kinematic_lm): body first, then each hand on the body's wrist
# ---------------------------------------------------------------------------------------------------------------
BODY_FREE = ("root", "spine03", "spine01", "neck01", "head", "clavicle.L", "clavicle.R", "upperarm01.L",
             "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "upperleg01.L", "upperleg01.R", "lowerleg01.L",
             "lowerleg01.R", "foot.L", "foot.R")
HAND_ON_BODY = (0, 5, 17)   # hand landmarks (wrist, index and pinky knuckles) that also pull the body's arms
HAND_FREE = ("wrist",) + tuple(f"finger{k}-{s}" for k in range(1, 6) for s in range(1, 4))

# The bone-local axes each solved bone turns about (0 = X, 1 = Y, 2 = Z; see bench/motions.py): hinges have one,
# which keeps knees, elbows and finger joints bending the one way they can.
DOFS: dict[str, tuple[int, ...]] = {
    "clavicle": (0, 2), "lowerarm01": (0, 1), "lowerleg01": (0,), "foot": (0, 2),
    "finger1-1": (0, 1, 2), "finger1-2": (0, 2), "finger1-3": (0,),
    **{f"finger{k}-1": (0, 2) for k in range(2, 6)},
    **{f"finger{k}-{s}": (0,) for k in range(2, 6) for s in (2, 3)},
}


def _dofs(names: Sequence[str]) -> list[tuple[int, ...]]:
    return [DOFS.get(name.split(".")[0], (0, 1, 2)) for name in names]


# Soft anatomical limits on a bone's axis-angle components (radians, the bone's own axes; see bench/motions.py for
# what each axis does on Anny): (bone prefix, axis, low, high). Outside the interval a stiff penalty applies.
LIMITS: tuple[tuple[str, int, float, float], ...] = (
    ("lowerarm01", 0, -0.9, 2.4),     # elbow: flexion only (rest is ~43° flexed already)
    ("lowerarm01", 2, -0.3, 0.3),     # no sideways bend
    ("lowerleg01", 0, -0.1, 2.7),     # knee: flexion only
    ("lowerleg01", 1, -0.5, 0.5),
    ("lowerleg01", 2, -0.2, 0.2),
    ("finger1-1", 0, -0.6, 1.2),      # thumb base: free-ish
    ("finger1-2", 0, -0.3, 1.2), ("finger1-2", 1, -0.4, 0.4), ("finger1-2", 2, -0.4, 0.4),
    ("finger1-3", 0, -0.3, 1.5), ("finger1-3", 1, -0.2, 0.2), ("finger1-3", 2, -0.2, 0.2),
) + tuple(item for k in range(2, 6) for item in (
    (f"finger{k}-1", 0, -0.5, 1.8), (f"finger{k}-1", 1, -0.3, 0.3), (f"finger{k}-1", 2, -0.5, 0.5),
    (f"finger{k}-2", 0, -0.1, 2.0), (f"finger{k}-2", 1, -0.15, 0.15), (f"finger{k}-2", 2, -0.15, 0.15),
    (f"finger{k}-3", 0, -0.1, 1.7), (f"finger{k}-3", 1, -0.15, 0.15), (f"finger{k}-3", 2, -0.15, 0.15)))
LIMIT_WEIGHT = 30.0
LIMIT_SOFTNESS = 0.05  # radians


def _limit_table(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(F,3) low and high bounds for the given bones (±inf where unlimited)."""
    lo = np.full((len(names), 3), -np.inf)
    hi = np.full((len(names), 3), np.inf)
    for k, name in enumerate(names):
        base = name.split(".")[0]
        for prefix, axis, a, b in LIMITS:
            if base == prefix:
                lo[k, axis], hi[k, axis] = a, b
    return lo, hi


def normal_equations(r, J):
    from .kinematic_lm import normal_equations as ne

    return ne(r, J)


class _Blocks:
    """Residual blocks for kinematic_lm, on the camera of the fit (at the world origin, rotation R_w2c)."""

    def __init__(self, K, R_w2c, dtype, dev):
        import torch

        self.torch = torch
        self.K = torch.tensor(K, dtype=dtype, device=dev)
        self.R = torch.tensor(R_w2c, dtype=dtype, device=dev)
        self.dtype, self.dev = dtype, dev

    def reprojection(self, idx, obs, weight, scale, delta, anchor=None):
        """Robust (pseudo-Huber on the scale-normalised pixel error) reprojection of points idx.
        obs (B,n,2) px, weight (B,n), scale (B,) or (B,n) px. With an anchor (a point index and its observation
        (B,2)), the offsets from the anchor's projection are compared instead: the shape, not the place."""
        torch = self.torch
        K, R = self.K, self.R
        scale = scale if scale.dim() == 2 else scale[:, None].expand_as(weight)
        idx = list(idx) + ([anchor[0]] if anchor is not None else [])

        def block(posed, jac):
            p = posed.points[:, idx] @ R.T                                  # (B,n,3) camera
            z = p[..., 2].clamp(min=1e-3)
            u = torch.stack([K[0, 0] * p[..., 0] / z + K[0, 2], K[1, 1] * p[..., 1] / z + K[1, 2]], -1)
            if anchor is not None:
                e = ((u[:, :-1] - u[:, -1:]) - (obs - anchor[1][:, None])) / scale[..., None]
            else:
                e = (u - obs) / scale[..., None]                            # (B,n,2)
            en = e.norm(dim=-1)
            cost = (weight * delta ** 2 * (torch.sqrt(1 + (en / delta) ** 2) - 1)).sum(1)
            if not jac:
                return None, None, cost
            omega = 1.0 / torch.sqrt(1 + (en / delta) ** 2)
            s = torch.sqrt(weight * omega)                                  # (B,n)
            r = (s[..., None] * e).flatten(1)
            zero = torch.zeros_like(z)
            du = torch.stack([torch.stack([K[0, 0] / z, zero, -K[0, 0] * p[..., 0] / z ** 2], -1),
                              torch.stack([zero, K[1, 1] / z, -K[1, 1] * p[..., 1] / z ** 2], -1)], -2)  # (B,n,2,3)
            Ju = du @ R @ posed.dpoints[:, idx]                             # (B,n,2,P)
            if anchor is not None:
                Ju = Ju[:, :-1] - Ju[:, -1:]
            J = (s / scale)[..., None, None] * Ju
            return (*normal_equations(r, J.flatten(1, 2)), cost)
        return block

    def directions(self, a_idx, b_idx, obs, weight):
        """Unit directions a→b against observed unit directions obs (B,S,3) in camera axes, weight (B,S)."""
        torch = self.torch
        R = self.R
        sw = torch.sqrt(weight)[..., None]

        def block(posed, jac):
            d = (posed.points[:, b_idx] - posed.points[:, a_idx]) @ R.T     # (B,S,3)
            n = d.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            u = d / n
            r = sw * (u - obs)
            cost = 0.5 * (r ** 2).sum((1, 2))
            if not jac:
                return None, None, cost
            eye = torch.eye(3, dtype=self.dtype, device=self.dev)
            P = (eye - u[..., :, None] * u[..., None, :]) / n[..., None]     # (B,S,3,3)
            dd = R @ (posed.dpoints[:, b_idx] - posed.dpoints[:, a_idx])     # (B,S,3,P)
            J = sw[..., None] * (P @ dd)
            return (*normal_equations(r.flatten(1), J.flatten(1, 2)), cost)
        return block

    def rotations(self, prior_w, lo, hi, limit_w):
        """Prior ‖a‖² per free bone (prior_w (F,)) and soft interval limits on a's components (lo, hi (F,3))."""
        torch = self.torch
        spw = torch.sqrt(torch.as_tensor(prior_w, dtype=self.dtype, device=self.dev))[None, :, None]
        lo_t = torch.as_tensor(np.nan_to_num(lo, neginf=-1e3), dtype=self.dtype, device=self.dev)
        hi_t = torch.as_tensor(np.nan_to_num(hi, posinf=1e3), dtype=self.dtype, device=self.dev)
        slw = float(np.sqrt(limit_w))
        soft = LIMIT_SOFTNESS
        F_ = torch.nn.functional

        def block(posed, jac):
            a = posed.aa                                                     # (B,F,3)
            r_p = spw * a
            # Soft limits: s·softplus(excess / s) on each side, so the penalty is felt (and modelled) just before
            # the bound instead of appearing out of nowhere beyond it.
            over = soft * (F_.softplus((a - hi_t) / soft) + F_.softplus((lo_t - a) / soft))
            r_l = slw * over
            cost = 0.5 * ((r_p ** 2).sum((1, 2)) + (r_l ** 2).sum((1, 2)))
            if not jac:
                return None, None, cost
            B, F = a.shape[:2]
            slope = torch.sigmoid((a - hi_t) / soft) - torch.sigmoid((lo_t - a) / soft)
            # JᵀJ is block diagonal in the rotation columns: per bone Dᵀ diag(w_p + w_l·slope²) D, D = J_r⁻¹.
            wdiag = spw ** 2 + limit_w * slope ** 2                          # (B,F,3) per component
            Hb = posed.daa.transpose(-1, -2) @ (wdiag[..., None] * posed.daa)   # (B,F,3,3)
            gb = (posed.daa.transpose(-1, -2) @ (spw ** 2 * a + limit_w * over * slope)[..., None])[..., 0]
            # Scatter each bone's 3×3 block into the rows/columns of its parameters (column P collects the axes a
            # bone cannot turn about, and is dropped).
            P = posed.n_params
            idx = posed.param_index                                              # (F,3)
            H = torch.zeros(B, P + 1, P + 1, dtype=a.dtype, device=a.device)
            b = torch.arange(B, device=a.device)
            H.index_put_((b[:, None, None, None], idx[:, :, None], idx[:, None, :]), Hb, accumulate=True)
            g = torch.zeros(B, P + 1, dtype=a.dtype, device=a.device)
            g.index_put_((b[:, None, None], idx), gb, accumulate=True)
            H, g = H[:, :P, :P], g[:, :P]
            return H, g, cost
        return block


BASE_STIFFNESS = 1.0   # the network's motion is smoothed as stiffly as the fit (measured 0.15, 0.3, 1: README)


# Limb bones whose swing the detector's 3D landmarks show: bone → (from, to) MediaPipe pose indices, subject's left;
# the right side's are one more.
_FAST_SEGMENTS = {"upperarm01": (11, 13), "lowerarm01": (13, 15), "upperleg01": (23, 25), "lowerleg01": (25, 27)}
FAST_RELAX = 0.003   # the acceleration penalty's factor around a fast move (measured: README › World › Fast moves)


def _fast_relax(skel: Skeleton, free: list[int], pose_world: np.ndarray, vis: np.ndarray, scale: float
                ) -> np.ndarray | None:
    """(T−2, F) factors for the smoother's acceleration penalty (smoothing.py's ``relax``), from the detector's own 3D
    direction of each limb (world landmarks, confident ends): a limb that turns by ``scale`` rad/frame or more for
    at least two frames running, the same way, is making a fast move (a jab), and around those frames its bone's
    penalty is cut to FAST_RELAX. A jump out and straight back (a landmark glitch, an arm-crossing swap) turns the
    other way at once and is not relaxed. None when ``scale`` is 0 or the clip is under 4 frames."""
    n = len(pose_world)
    if scale <= 0 or n < 4:
        return None
    out = np.ones((n - 2, len(free)))
    for k, j in enumerate(free):
        name = skel.names[j]
        base, side = name[:-2], name[-2:]
        if base not in _FAST_SEGMENTS or side not in (".L", ".R"):
            continue
        a, b = (i + (side == ".R") for i in _FAST_SEGMENTS[base])
        d = _unit(pose_world[:, b] - pose_world[:, a])
        d[~((vis[:, a] > 0.5) & (vis[:, b] > 0.5))] = np.nan
        v = np.nan_to_num(d[1:] - d[:-1])                                        # (T−1,) steps
        speed = np.linalg.norm(v, axis=-1)
        fast = speed > scale
        along = np.einsum("ti,ti->t", v[1:], v[:-1]) > 0.5 * speed[1:] * speed[:-1]   # step t+1 goes on as t did
        run = np.zeros(n - 1, dtype=bool)
        both = fast[1:] & fast[:-1] & along
        run[1:] |= both
        run[:-1] |= both
        # Second difference r spans steps r and r+1: relax the rows touching a fast run, and one more each side.
        rows = run[:-1] | run[1:]
        rows[1:] |= rows[:-1].copy()
        rows[:-1] |= rows[1:].copy()
        out[rows, k] = FAST_RELAX
    return out


def _smooth(lm, pose, free, seen, stiffness, move_root, base=None, relax=None):
    """Whittaker-smooth the solved bones' rotations (and the root's position) over time, each frame weighted by the
    curvature of its fit (smoothing.py); frames that were not seen weigh nothing and are bridged.

    ``base`` (T,J,3) axis-angle, NaN where not given (the motion network's body, ``motion="prior"``): what is
    smoothed is then the fit's correction to it, R = B · smooth(Bᵀ R_fit), with B the base itself smoothed as stiffly
    (uniform weights, missing frames bridged) — so the motion the network saw, a jab's snap included, is not flattened
    with the fit's jitter (README › The learned motion network: the `fast` suite's jabs keep 56 % of their peak
    wrist speed instead of 50 %). Bones the base never gives are smoothed as they are."""
    import torch

    from .kinematic_lm import Pose
    from .smoothing import smooth_rotations, smooth_series

    if stiffness <= 0 or pose.root_pos.shape[0] < 3:
        return pose
    info = getattr(lm, "information", None)
    info = info.detach().double().cpu().numpy() if info is not None else np.ones((len(seen), lm.n_params))  # (T,P)
    info = info * np.asarray(seen, dtype=float)[:, None]
    o = lm.rot_offset
    bone_of = lm.param_bone.cpu().numpy()
    w_bone = np.stack([info[:, o:][:, bone_of == k].mean(axis=1) for k in range(len(free))], axis=1)  # (T,F)
    R = pose.local_R.detach().double().cpu().numpy()
    if base is None:
        R[:, free] = smooth_rotations(R[:, free], w_bone, stiffness, relax)
    else:
        from rigs.rotations import aa_to_matrix

        given = np.asarray(base, dtype=np.float64)[:, free]                             # (T,F,3)
        w_base = np.isfinite(given).all(axis=-1).astype(np.float64)                     # (T,F)
        unused = ~w_base.any(axis=0)
        w_base[:, unused] = 1.0
        B = aa_to_matrix(np.where(w_base[..., None] > 0, np.nan_to_num(given), 0.0))    # missing: identity, weight 0
        B = smooth_rotations(B, w_base, stiffness * BASE_STIFFNESS, relax)
        B[:, unused] = np.eye(3)
        rel = np.einsum("tfji,tfjk->tfik", B, R[:, free])                               # Bᵀ R
        R[:, free] = np.einsum("tfij,tfjk->tfik", B, smooth_rotations(rel, w_bone, stiffness, relax))
    local_R = torch.as_tensor(R, dtype=pose.local_R.dtype, device=pose.local_R.device)
    root = pose.root_pos
    if move_root:
        w_root = np.repeat(info[:, :3].mean(axis=1, keepdims=True), 3, axis=1)
        root_np = smooth_series(root.detach().double().cpu().numpy(), w_root, stiffness)
        root = torch.as_tensor(root_np, dtype=root.dtype, device=root.device)
    return Pose(local_R, root)


def _realign_translation(p, obs, weight, size, K, iterations: int, delta: float = 0.05):
    """Per frame, the camera-space shift t (B,3) that best lines up points p (B,N,3, camera) with their observations
    obs (B,N,2) px: Gauss–Newton on the same pseudo-Huber reprojection cost as the fit (weights (B,N), scale
    delta × size (B,) px)."""
    import torch

    t = torch.zeros(p.shape[0], 3, dtype=p.dtype, device=p.device)
    scale = (size * delta)[:, None]
    for _ in range(iterations):
        q = p + t[:, None]
        z = q[..., 2].clamp(min=1e-3)
        u = torch.stack([K[0, 0] * q[..., 0] / z + K[0, 2], K[1, 1] * q[..., 1] / z + K[1, 2]], -1)
        e = (u - obs) / scale[..., None]
        w = weight / torch.sqrt(1 + (e.norm(dim=-1)) ** 2)                       # IRLS weight of pseudo-Huber
        zero = torch.zeros_like(z)
        J = torch.stack([torch.stack([K[0, 0] / z, zero, -K[0, 0] * q[..., 0] / z ** 2], -1),
                         torch.stack([zero, K[1, 1] / z, -K[1, 1] * q[..., 1] / z ** 2], -1)], -2)
        J = J / scale[..., None, None]                                           # (B,N,2,3)
        H = torch.einsum("bn,bnki,bnkj->bij", w, J, J) + 1e-9 * torch.eye(3, dtype=p.dtype, device=p.device)
        g = torch.einsum("bn,bnki,bnk->bi", w, J, e)
        t = t - torch.linalg.solve(H, g[..., None])[..., 0]
    return t


def _fit_window_lm(skel, pose_2d, pose_world, hands_2d, K, settings, progress, cancelled, hands_world,
                   hands_only, prior=None) -> FitResult:
    import roma
    import torch

    from .kinematic_lm import KinematicLM, Pose

    dtype = torch.float64 if settings.device == "cpu" else torch.float32
    dev = torch.device(settings.device)
    n_frames, n_bones = pose_2d.shape[0], len(skel.names)
    R_w2c = R_WORLD2CAM_LEVEL
    tsk = TorchSkeleton(skel, dtype, dev)
    blocks = _Blocks(K, R_w2c, dtype, dev)
    T = lambda a: torch.tensor(np.nan_to_num(np.asarray(a, dtype=np.float64)), dtype=dtype, device=dev)  # noqa: E731
    prior_all = _prior_weights(skel)

    o = _observations(skel, pose_2d, pose_world, hands_2d, hands_world, K, R_w2c, prior)
    (body_vis, body_used, w_b2, size, seg_a, seg_b, w_b3, obs_b3, hands_2d, hand_seen, hand_size, hseg_a, hseg_b,
     obs_h3, pos0, init) = (o[k] for k in _OBSERVATION_KEYS)

    pose = Pose(roma.rotvec_to_rotmat(T(init)), T(pos0))
    iters, hand_iters = settings.iterations, settings.hand_iterations
    smooth = settings.smoothing ** 2 * settings.w_smooth
    total = max(1, (0 if hands_only else iters) + 2 * hand_iters)
    done = 0

    def tick(n=1):
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    # --- body ---
    camera_shift = torch.zeros(n_frames, 3, dtype=dtype, device=dev)
    body_seen = w_b2.sum(axis=1) > 0
    if not hands_only and body_seen.any():
        free = [skel.index(n) for n in BODY_FREE]
        pts = np.nonzero(body_used)[0]                       # body markers carried by the model
        # The hand network's wrists and knuckles pull the arms too: on a close or fast hand they are far better
        # placed than the pose network's wrist, and hand and body then agree.
        hk = np.array(HAND_ON_BODY)
        h_bone = np.concatenate([skel.hand_marker_bone[s][hk] for s in (0, 1)])
        h_local = np.concatenate([skel.hand_marker_local[s][hk] for s in (0, 1)])
        lm_bones = np.concatenate([skel.body_marker_bone[pts], h_bone])
        lm_local = np.concatenate([skel.body_marker_local[pts], h_local])
        lm = KinematicLM(tsk, skel.parents, free, lm_bones, lm_local, True, dtype, dev, _dofs(BODY_FREE))
        where = {int(m): k for k, m in enumerate(pts)}
        a_idx = [where[a] for a in seg_a]
        b_idx = [where[b] for b in seg_b]
        lo, hi = _limit_table([skel.names[j] for j in free])
        h_obs = np.concatenate([hands_2d[:, s][:, hk, :2] for s in (0, 1)], axis=1)          # (T, 2·k, 2)
        h_w = np.concatenate([np.repeat(hand_seen[:, s:s + 1].astype(float), len(hk), 1) for s in (0, 1)], 1)
        bl = [blocks.reprojection(list(range(len(pts))), T(pose_2d[:, pts, :2]),
                                  T(settings.w_body2d * w_b2[:, pts] / 33), T(size), 0.05),
              blocks.reprojection(list(range(len(pts), len(pts) + len(h_bone))), T(h_obs),
                                  T(settings.w_body2d * settings.w_hand_on_body * h_w / 33 / len(hk)), T(size), 0.05),
              blocks.directions(a_idx, b_idx, T(obs_b3), T(settings.w_body3d * w_b3 / len(BODY_SEGMENTS))),
              blocks.rotations(2 * settings.w_prior * prior_all[free], lo, hi, LIMIT_WEIGHT)]
        pose = lm.solve(pose, bl, iters, body_seen, lambda p, it: tick(), cancelled)
        pose = _smooth(lm, pose, free, body_seen, smooth, move_root=True,
                       base=None if prior is None else prior[0],
                       relax=_fast_relax(skel, free, pose_world, body_vis, settings.fast_move))
        if smooth > 0 and settings.realign_iterations > 0:
            # The smoother takes out jitter, and with it the shake of a handheld camera that the picture still has.
            # What is left between the smooth body and each frame is given to the camera (a per-frame shift of
            # t_world2cam), not to the body: the body keeps its smooth path and planted feet, and still lines up.
            obs = np.concatenate([pose_2d[:, pts, :2], h_obs], axis=1)
            wts = np.concatenate([w_b2[:, pts] / 33, settings.w_hand_on_body * h_w / 33 / len(hk)], axis=1)
            pts_w = lm.pose_points(pose, jac=False).points
            shift = _realign_translation(pts_w @ T(R_w2c).T, T(obs), T(wts), T(size), T(K),
                                         settings.realign_iterations)
            camera_shift = torch.where(torch.as_tensor(body_seen, device=dev)[:, None], shift,
                                       torch.zeros_like(shift))
    else:
        tick(0)

    # --- hands, each on its own wrist ---
    for side, suffix in enumerate((".L", ".R")):
        seen = hand_seen[:, side]
        if not seen.any():
            tick(hand_iters)
            continue
        free = [skel.index(n + suffix) for n in HAND_FREE]
        lm = KinematicLM(tsk, skel.parents, free, skel.hand_marker_bone[side], skel.hand_marker_local[side], False,
                         dtype, dev, _dofs(HAND_FREE))
        lo, hi = _limit_table([skel.names[j] for j in free])
        w2d = 0.0 if hands_only else settings.w_hand2d
        wseen = seen.astype(float)[:, None]
        bl = [blocks.reprojection(list(range(1, 21)), T(hands_2d[:, side, 1:, :2]),
                                  T(w2d * wseen / 20 * np.ones(20)), T(hand_size[:, side]), 0.2,
                                  anchor=(0, T(hands_2d[:, side, 0, :2]))),
              blocks.directions(list(hseg_a), list(hseg_b), T(obs_h3[:, side]),
                                T(settings.w_hand3d * wseen / len(HAND_SEGMENTS) * np.ones(len(HAND_SEGMENTS)))),
              blocks.rotations(2 * settings.w_prior * prior_all[free], lo, hi, LIMIT_WEIGHT)]
        pose = lm.solve(pose, bl, hand_iters, seen, lambda p, it: tick(), cancelled)
        pose = _smooth(lm, pose, free, seen, smooth, move_root=False)

    local_aa = roma.rotmat_to_rotvec(pose.local_R)
    A, heads = tsk.forward(pose.local_R, pose.root_pos)
    body_bone = torch.tensor(np.maximum(skel.body_marker_bone, 0), device=dev)
    body_pts = heads[:, body_bone] + (A[:, body_bone] @ T(skel.body_marker_local)[..., None])[..., 0]
    p_cam = body_pts @ T(R_w2c).T + camera_shift[:, None]
    uv = (p_cam @ T(K).T)
    uv = uv[..., :2] / uv[..., 2:3].clamp(min=1e-3)
    err = torch.linalg.norm(uv - T(pose_2d[..., :2]), dim=-1).cpu().numpy()
    result = _result(skel, local_aa, pose.root_pos, err, w_b2 > 0, hand_seen, hands_only)
    result.camera_shift = camera_shift.detach().double().cpu().numpy()
    return result


# ---------------------------------------------------------------------------------------------------------------
# Hands alone, each placed in the camera (hands mode with a hand model: Anny's hand or MANO)
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class HandFit:
    """One hand fitted on its own: the full Anny skeleton's pose whose ``side`` hand lies where the hand is in the
    camera (the rest of the body is at rest and only carries the hand; ``hand_bones`` cuts the hand out)."""
    side: int                        # 0 = the subject's left, 1 = right
    local_rotations_aa: np.ndarray   # (T, J, 3) the full Anny skeleton, Take convention
    root_position_world: np.ndarray  # (T, 3) the full skeleton's root (camera at the world origin, level)
    seen: np.ndarray                 # (T,) bool: the hand was detected
    residual_px: np.ndarray          # (T,) mean 2D distance of the 21 hand points to the landmarks (NaN unseen)


HAND_PLACE_ITERATIONS = 6   # LM steps on the wrist's place and turn after the closed-form start


def _translation_onto_image(points_cam: np.ndarray, uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Per frame, the camera-space shift t (T,3) that best puts points (T,N,3) (camera axes, any origin) onto
    their pixels uv (T,N,2): the linear least squares of f(X + t) = (u − c)(Z + t_z) on both image axes (exact
    for noiseless points; the LM refines it under the true reprojection error)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[..., 0] - cx, uv[..., 1] - cy                                    # (T,N)
    zero, X, Y, Z = np.zeros_like(du), points_cam[..., 0], points_cam[..., 1], points_cam[..., 2]
    A = np.concatenate([np.stack([np.full_like(du, fx), zero, -du], -1),
                        np.stack([zero, np.full_like(dv, fy), -dv], -1)], axis=1)  # (T,2N,3)
    b = np.concatenate([du * Z - fx * X, dv * Z - fy * Y], axis=1)                 # (T,2N)
    AtA = np.einsum("tni,tnj->tij", A, A) + 1e-9 * np.eye(3)
    return np.linalg.solve(AtA, np.einsum("tni,tn->ti", A, b)[..., None])[..., 0]


def fit_hands_in_camera(skel: Skeleton, hands_2d: np.ndarray, hands_world: np.ndarray, K: np.ndarray,
                        settings: FitSettings = FitSettings(),
                        progress: Callable[[int, int], None] | None = None,
                        cancelled: Callable[[], bool] | None = None) -> list[HandFit | None]:
    """Fit each hand alone where it is in the picture (hands mode with a hand model): per frame its fingers, the
    wrist's turn and the wrist's place in the camera. None for a hand never seen.

    1. The closed-form start of the body fit (``initial_pose``): the wrist turned by Kabsch onto the palm's
       observed directions, each finger bone swung onto its observed direction (the finger shapes are this IK's,
       as in the body fit; see ``FitSettings.hand_iterations``).
    2. Place: the camera-space shift that puts the model's 21 hand points onto the landmarks
       (``_translation_onto_image``; depth comes from the model hand's size, so a bigger hand than the model's
       reads as nearer).
    3. LM on the wrist's place and turn (``HAND_PLACE_ITERATIONS``): robust 2D reprojection of all 21 points
       against the hand's 3D directions and a small prior, then the Whittaker smoother (smoothing option) on the
       wrist's turn and path and on the fingers.
    """
    results: list[HandFit | None] = []
    n_frames = hands_2d.shape[0]
    windows = [(s, min(s + settings.window, n_frames)) for s in range(0, n_frames, settings.window)]
    per_side: list[list] = [[], []]
    for w, (a, b) in enumerate(windows):
        for side in (0, 1):
            per_side[side].append(_fit_hand_window(skel, hands_2d[a:b], hands_world[a:b], K, settings, side,
                                                   cancelled))
            if progress is not None:
                progress(2 * w + side + 1, 2 * len(windows))
    for side in (0, 1):
        parts = per_side[side]
        seen = np.concatenate([p[2] for p in parts])
        if not seen.any():
            results.append(None)
            continue
        results.append(HandFit(side, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                               seen, np.concatenate([p[3] for p in parts])))
    return results


def _fit_hand_window(skel, hands_2d, hands_world, K, settings, side, cancelled):
    """(local_aa (T,J,3), root_pos (T,3), seen (T,), residual_px (T,)) of one hand over one window."""
    import roma
    import torch

    from .kinematic_lm import KinematicLM, Pose

    n_frames = hands_2d.shape[0]
    R_w2c = R_WORLD2CAM_LEVEL
    nan_pose = np.full((n_frames, 33, 3), np.nan)
    one = np.full_like(hands_2d, np.nan)
    one[:, side] = hands_2d[:, side]
    o = _observations(skel, nan_pose, nan_pose, one, hands_world, K, R_w2c)
    seen = o["hand_seen"][:, side]
    local0, pos0 = o["init"], o["pos0"]
    if not seen.any():
        return local0, pos0, seen, np.full(n_frames, np.nan)

    from rigs.fk import forward_kinematics

    bones, offsets = skel.hand_marker_bone[side], skel.hand_marker_local[side]
    W = forward_kinematics(skel.rest, skel.parents, local0, pos0)
    pts = attached_points(W, bones, offsets)                                      # (T,21,3) world
    cam = pts @ R_w2c.T
    uv = np.nan_to_num(hands_2d[:, side, :, :2])
    t = _translation_onto_image(cam - cam[:, :1], uv, K)                          # wrist's place, camera
    move = (t - cam[:, 0]) @ R_w2c                                                # camera → world axes
    pos = _fill_invalid(pos0 + np.where(seen[:, None], move, 0.0), seen)

    dtype = torch.float64 if settings.device == "cpu" else torch.float32
    dev = torch.device(settings.device)
    T_ = lambda a: torch.tensor(np.nan_to_num(np.asarray(a, dtype=np.float64)), dtype=dtype, device=dev)  # noqa: E731
    tsk = TorchSkeleton(skel, dtype, dev)
    blocks = _Blocks(K, R_w2c, dtype, dev)
    wrist = skel.index("wrist" + (".L", ".R")[side])
    lm = KinematicLM(tsk, skel.parents, [wrist], bones, offsets, True, dtype, dev)
    wseen = seen.astype(float)[:, None]
    size = o["hand_size"][:, side]
    obs_h3 = o["obs_h3"][:, side]
    bl = [blocks.reprojection(list(range(21)), T_(hands_2d[:, side, :, :2]),
                              T_(settings.w_hand2d * wseen / 21 * np.ones(21)), T_(size), 0.2),
          blocks.directions(list(o["hseg_a"]), list(o["hseg_b"]), T_(obs_h3),
                            T_(settings.w_hand3d * wseen / len(HAND_SEGMENTS) * np.ones(len(HAND_SEGMENTS)))),
          blocks.rotations(np.array([2 * settings.w_prior]), np.full((1, 3), -np.inf), np.full((1, 3), np.inf),
                           0.0)]
    pose = Pose(roma.rotvec_to_rotmat(T_(local0)), T_(pos))
    pose = lm.solve(pose, bl, HAND_PLACE_ITERATIONS, seen, None, cancelled)
    smooth = settings.smoothing ** 2 * settings.w_smooth
    pose = _smooth(lm, pose, [wrist], seen, smooth, move_root=True)
    if smooth > 0 and n_frames >= 3:   # the fingers keep the IK's shapes, smoothed like the body fit's
        from .smoothing import smooth_rotations

        fingers = [skel.index(n + (".L", ".R")[side]) for n in HAND_FREE[1:]]
        R = pose.local_R.detach().double().cpu().numpy()
        R[:, fingers] = smooth_rotations(R[:, fingers], np.repeat(wseen, len(fingers), axis=1), smooth)
        pose = Pose(torch.as_tensor(R, dtype=dtype, device=dev), pose.root_pos)

    local_aa = roma.rotmat_to_rotvec(pose.local_R).detach().double().cpu().numpy()
    root = pose.root_pos.detach().double().cpu().numpy()
    W = forward_kinematics(skel.rest, skel.parents, local_aa, root)
    uv_fit = attached_points(W, bones, offsets) @ R_w2c.T @ K.T
    uv_fit = uv_fit[..., :2] / np.maximum(uv_fit[..., 2:3], 1e-6)
    err = np.linalg.norm(uv_fit - hands_2d[:, side, :, :2], axis=-1).mean(axis=1)
    return local_aa, root, seen, np.where(seen, err, np.nan)
