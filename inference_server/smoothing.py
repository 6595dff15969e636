"""Confidence-weighted temporal smoothing of fitted motion (offline, both directions). numpy + scipy, no torch.

Each series ``x_t`` (a root coordinate, a component of a bone's rotation quaternion) is replaced by the ``y`` that
minimises

    Σ_t w_t (y_t − x_t)²  +  λ Σ_t (y_{t+1} − 2 y_t + y_{t−1})²

— a Whittaker / Hodrick–Prescott smoother. ``w_t`` is how much the frame's fit is worth (the curvature of the fit's
cost, zero where nothing was seen, so gaps are bridged by the smoothest curve through their neighbours) and λ sets
the stiffness relative to the series' typical ``w``. The system is pentadiagonal and symmetric positive definite,
solved exactly in O(T) with ``scipy.linalg.solveh_banded``.

Rotations are smoothed as unit quaternions made sign-continuous over time, then renormalised; for the small
frame-to-frame steps of video motion this is the same as smoothing on the rotation group.

**Fast moves** (a jab, a clap). The penalty spreads any sudden acceleration over many frames: a jab smoothed at the
default stiffness keeps about half its peak speed. ``relax`` (T−2, D) scales each frame's acceleration penalty by a
factor in (0, 1]: where the caller has independent evidence of a fast move there (the fit uses the detector's own 3D
landmarks, `fit._fast_relax`), the curve may turn as sharply as its data does, and elsewhere it is as smooth as
before. (Relaxing where the *smoothed curve itself* accelerates — iteratively reweighted, ℓ1 trend filtering's way —
was tried: it kept the jabs, but it also kept the fit's occasional flips between two arm poses, which the detector
never shows; the standard suite's acceleration error rose from 2.6 to 9–12 mm/f².)
"""
from __future__ import annotations

import numpy as np


def _second_difference_bands(n: int) -> np.ndarray:
    """DᵀD of the second-difference operator as upper bands (3, n) for solveh_banded."""
    bands = np.zeros((3, n))
    if n < 3:
        return bands
    main = np.full(n, 6.0)
    main[[0, -1]] = 1.0
    main[[1, -2]] = 5.0
    off1 = np.full(n - 1, -4.0)
    off1[[0, -1]] = -2.0
    bands[2] = main
    bands[1, 1:] = off1
    bands[0, 2:] = 1.0
    if n == 3:  # the general pattern overlaps at n = 3: D = [1 −2 1]
        bands[2] = [1.0, 4.0, 1.0]
        bands[1, 1:] = [-2.0, -2.0]
    return bands


def _weighted_second_difference_bands(u: np.ndarray) -> np.ndarray:
    """DᵀUD as upper bands (3, n) for solveh_banded, U = diag(u) over the n − 2 second differences."""
    n = len(u) + 2
    bands = np.zeros((3, n))
    for k, c in enumerate((1.0, -2.0, 1.0)):          # row r of D: +1 at r, −2 at r+1, +1 at r+2
        bands[2, k:k + n - 2] += c * c * u
    bands[1, 1:n - 1] += -2.0 * u                     # (r, r+1) and (r+1, r+2)
    bands[1, 2:n] += -2.0 * u
    bands[0, 2:n] += u                                # (r, r+2)
    return bands


def smooth_series(x: np.ndarray, w: np.ndarray, stiffness: float, relax: np.ndarray | None = None) -> np.ndarray:
    """x (T,D), w (T,D) ≥ 0 → smoothed (T,D). λ per column = stiffness × the median positive weight of that column.
    ``relax`` (T−2, D) in (0, 1]: each frame's acceleration penalty scaled by it (see the module's notes).

    Frames before the first and after the last weighted one hold those frames' values. Columns with no positive
    weight, or clips shorter than 3 frames, are returned unchanged."""
    from scipy.linalg import solveh_banded

    x = np.asarray(x, dtype=np.float64)
    w = np.where(np.isfinite(x), np.asarray(w, dtype=np.float64), 0.0)
    x = np.nan_to_num(x)
    n = x.shape[0]
    out = x.copy()
    if n < 3 or stiffness <= 0:
        return out
    dtd = _second_difference_bands(n)
    for d in range(x.shape[1]):
        wd = w[:, d]
        positive = wd[wd > 0]
        if positive.size == 0:
            continue
        lam = stiffness * float(np.median(positive))
        ab = lam * (dtd if relax is None or np.all(relax[:, d] >= 1.0)
                    else _weighted_second_difference_bands(np.asarray(relax[:, d], dtype=np.float64)))
        ab[2] = ab[2] + wd + 1e-9 * lam
        y = solveh_banded(ab, wd * x[:, d])
        seen = np.nonzero(wd > 0)[0]
        y[:seen[0]] = y[seen[0]]          # before the first and after the last weighted frame: hold, do not
        y[seen[-1] + 1:] = y[seen[-1]]    # extrapolate
        out[:, d] = y
    return out


def smooth_rotations(R: np.ndarray, w: np.ndarray, stiffness: float, relax: np.ndarray | None = None) -> np.ndarray:
    """R (T,F,3,3) rotations, w (T,F) weights → smoothed rotations (T,F,3,3); ``relax`` (T−2, F) as in
    :func:`smooth_series`, per bone."""
    from scipy.spatial.transform import Rotation

    n, f = R.shape[:2]
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat().reshape(n, f, 4)
    for t in range(1, n):  # sign continuity: each quaternion on the same side as the previous frame's
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t, flip] *= -1
    ws = np.repeat(np.asarray(w, dtype=np.float64)[:, :, None], 4, axis=2).reshape(n, 4 * f)
    rel = None if relax is None or n < 3 else np.repeat(np.asarray(relax, np.float64)[:, :, None], 4, axis=2
                                                        ).reshape(n - 2, 4 * f)
    qs = smooth_series(q.reshape(n, 4 * f), ws, stiffness, rel).reshape(n, f, 4)
    norm = np.linalg.norm(qs, axis=-1, keepdims=True)
    qs = np.where(norm > 1e-9, qs / np.maximum(norm, 1e-12), q)
    return Rotation.from_quat(qs.reshape(-1, 4)).as_matrix().reshape(n, f, 3, 3)
