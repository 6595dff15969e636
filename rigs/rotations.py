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
