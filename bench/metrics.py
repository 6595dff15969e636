"""Accuracy metrics shared by the benchmark and the tests. numpy only.

All joint arrays are (T, N, 3) in metres, in the same frame (use camera coordinates to compare a capture with ground
truth whose world frame differs: ``to_camera``).
"""
from __future__ import annotations

import numpy as np


def to_camera(points_world: np.ndarray, R_world2cam: np.ndarray, t_world2cam: np.ndarray) -> np.ndarray:
    """(T,N,3) world → camera coordinates with per-frame (T,3,3), (T,3)."""
    return np.einsum("tij,tnj->tni", R_world2cam, points_world) + t_world2cam[:, None]


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    uvw = points_cam @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


def mpjpe(pred: np.ndarray, true: np.ndarray, align: int | None = None) -> float:
    """Mean per-joint position error (m); with `align`, both are first translated so that joint `align` is at 0."""
    if align is not None:
        pred = pred - pred[:, [align]]
        true = true - true[:, [align]]
    return float(np.linalg.norm(pred - true, axis=-1).mean())


def pa_mpjpe(pred: np.ndarray, true: np.ndarray) -> float:
    """MPJPE after the best similarity transform (rotation, translation, scale) per frame (Procrustes)."""
    errors = []
    for X, Y in zip(pred, true):
        X0, Y0 = X - X.mean(0), Y - Y.mean(0)
        U, S, Vt = np.linalg.svd(X0.T @ Y0)
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
        R = (U @ D @ Vt).T
        scale = (S * np.diag(D)).sum() / max((X0 ** 2).sum(), 1e-12)
        errors.append(np.linalg.norm(scale * X0 @ R.T - Y0, axis=1).mean())
    return float(np.mean(errors))


def error_2d(pred_px: np.ndarray, true_px: np.ndarray) -> float:
    return float(np.linalg.norm(pred_px - true_px, axis=-1).mean())
