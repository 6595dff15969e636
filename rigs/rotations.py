"""Rotation conversions in numpy (no scipy: this runs inside Blender's Python).

Axis-angle ``aa`` (..., 3) in radians; matrices (..., 3, 3) acting on column vectors; quaternions (..., 4) as
(w, x, y, z) — Blender's order — used only at the keyframe writer.
"""
from __future__ import annotations

import numpy as np


def aa_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues: R = I + sin(θ) [k]× + (1 − cos θ) [k]×², k = aa/θ.  (..., 3) → (..., 3, 3)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)  # (..., 1)
    safe = np.where(theta < 1e-12, 1.0, theta)
    k = aa / safe
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    K = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), K.shape)
    R = eye + s * K + (1.0 - c) * (K @ K)
    return np.where((theta < 1e-12)[..., None], eye, R)


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) → (..., 4) unit quaternions (w, x, y, z), w ≥ 0, by the numerically stable branch choice."""
    R = np.asarray(R, dtype=np.float64)
    m = R.reshape(-1, 3, 3)
    q = np.empty((m.shape[0], 4))
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Candidates 4w², 4x², 4y², 4z²; use the largest for the division.
    cand = np.stack([1 + tr, 1 + 2 * m[:, 0, 0] - tr, 1 + 2 * m[:, 1, 1] - tr, 1 + 2 * m[:, 2, 2] - tr], axis=1)
    best = np.argmax(cand, axis=1)
    for i in range(4):
        sel = best == i
        if not np.any(sel):
            continue
        r = m[sel]
        s = np.sqrt(np.maximum(cand[sel, i], 1e-300)) * 2.0  # s = 4·component
        if i == 0:
            q[sel] = np.stack([s / 4, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                               (r[:, 1, 0] - r[:, 0, 1]) / s], axis=1)
        elif i == 1:
            q[sel] = np.stack([(r[:, 2, 1] - r[:, 1, 2]) / s, s / 4, (r[:, 0, 1] + r[:, 1, 0]) / s,
                               (r[:, 0, 2] + r[:, 2, 0]) / s], axis=1)
        elif i == 2:
            q[sel] = np.stack([(r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 0, 1] + r[:, 1, 0]) / s, s / 4,
                               (r[:, 1, 2] + r[:, 2, 1]) / s], axis=1)
        else:
            q[sel] = np.stack([(r[:, 1, 0] - r[:, 0, 1]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s,
                               (r[:, 1, 2] + r[:, 2, 1]) / s, s / 4], axis=1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1.0
    return q.reshape(R.shape[:-2] + (4,))


def quat_to_aa(q: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) → (..., 3) axis-angle with angle in [0, π]."""
    q = np.asarray(q, dtype=np.float64)
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    scale = np.where(s < 1e-12, 2.0, angle / np.where(s < 1e-12, 1.0, s))
    return v * scale


def matrix_to_aa(R: np.ndarray) -> np.ndarray:
    return quat_to_aa(matrix_to_quat(R))


def aa_to_quat(aa: np.ndarray) -> np.ndarray:
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * theta
    scale = np.where(theta < 1e-12, 0.5, np.sin(half) / np.where(theta < 1e-12, 1.0, theta))
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def make_continuous(quats: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along `axis` (time) so consecutive quaternions have a non-negative dot product.

    q and −q are the same rotation, but Blender interpolates the components, so a sign flip between two keys would
    swing the bone the long way round.
    """
    q = np.moveaxis(np.array(quats, dtype=np.float64, copy=True), axis, 0)
    for t in range(1, q.shape[0]):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1.0
    return np.moveaxis(q, 0, axis)


def normalize(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, eps)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` onto direction ``b`` (..., 3) → (..., 3, 3).

    Axis a × b, angle atan2(|a × b|, a · b). Opposite vectors turn π about an axis perpendicular to ``a``.
    """
    a = normalize(a)
    b = normalize(b)
    cross = np.cross(a, b)
    sin = np.linalg.norm(cross, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True)
    axis = cross / np.maximum(sin, 1e-12)
    # Opposite (or nearly): any axis perpendicular to a; pick the one from the least-aligned world axis.
    opposite = (sin[..., 0] < 1e-9) & (cos[..., 0] < 0)
    if np.any(opposite):
        helper = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
        perp = normalize(np.cross(a, helper))
        axis = np.where(opposite[..., None], perp, axis)
    angle = np.arctan2(sin, cos)
    return aa_to_matrix(axis * angle)


# Blender's Euler orders: 'XYZ' applies X first, then Y, then Z: R = Rz · Ry · Rx.
EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def _order_axes(order: str) -> tuple[int, int, int, float]:
    if order not in EULER_ORDERS:
        raise ValueError(f"unknown Euler order {order!r}; one of {EULER_ORDERS}")
    i, j, k = ("XYZ".index(c) for c in order)
    sign = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0  # even permutation
    return i, j, k, sign


def euler_to_matrix(angles: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(..., 3) angles (about X, Y, Z, as Blender stores them) → (..., 3, 3)."""
    angles = np.asarray(angles, dtype=np.float64)
    R = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for axis_name in order:  # first axis applied first: multiply on the left
        a = "XYZ".index(axis_name)
        aa = np.zeros(angles.shape)
        aa[..., a] = angles[..., a]
        R = aa_to_matrix(aa) @ R
    return R


def matrix_to_euler(R: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(..., 3, 3) → (..., 3) Euler angles about X, Y, Z for Blender's ``order``; the middle angle in [−π/2, π/2].

    For R = R_k(c) · R_j(b) · R_i(a) (order = i, j, k) with s = +1 for even and −1 for odd permutations:
    R[k, i] = −s·sin b,  a = atan2(s·R[k, j], R[k, k]),  c = atan2(s·R[j, i], R[i, i]).
    """
    R = np.asarray(R, dtype=np.float64)
    i, j, k, s = _order_axes(order)
    b = np.arcsin(np.clip(-s * R[..., k, i], -1.0, 1.0))
    a = np.arctan2(s * R[..., k, j], R[..., k, k])
    c = np.arctan2(s * R[..., j, i], R[..., i, i])
    # Gimbal lock (cos b ≈ 0): a and c share one degree of freedom; put it all in a.
    lock = np.abs(np.cos(b)) < 1e-9
    if np.any(lock):
        a_lock = np.arctan2(-s * R[..., j, k], R[..., j, j])
        a = np.where(lock, a_lock, a)
        c = np.where(lock, 0.0, c)
    out = np.empty(R.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = a, b, c
    return out


def euler_continuous(angles: np.ndarray, order: str = "XYZ", axis: int = 0) -> np.ndarray:
    """Make Euler angles continuous along ``axis`` (time), as Blender's ``to_euler(order, compat)`` does.

    Each frame picks, of the two equivalent triples (a, b, c) and (a + π, π − b, c + π), shifted by whole turns, the
    one nearest the previous frame, so F-curves never jump by 2π.
    """
    i, j, k, _ = _order_axes(order)
    e = np.moveaxis(np.array(angles, dtype=np.float64, copy=True), axis, 0)
    two_pi = 2.0 * np.pi
    for t in range(1, e.shape[0]):
        prev = e[t - 1]
        first = e[t]
        second = first.copy()
        second[..., i] += np.pi
        second[..., j] = np.pi - second[..., j]
        second[..., k] += np.pi
        best = first + two_pi * np.round((prev - first) / two_pi)
        best_dist = np.sum((best - prev) ** 2, axis=-1)
        cand = second + two_pi * np.round((prev - second) / two_pi)
        dist = np.sum((cand - prev) ** 2, axis=-1)
        closer = dist < best_dist
        e[t] = np.where(closer[..., None], cand, best)
    return np.moveaxis(e, 0, axis)
