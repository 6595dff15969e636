"""The Whittaker smoother of fitted motion: known answers."""
from __future__ import annotations

import numpy as np
import pytest

from inference_server.smoothing import _second_difference_bands, smooth_rotations, smooth_series


def _dense(n):
    D = np.zeros((n - 2, n))
    for t in range(n - 2):
        D[t, t:t + 3] = (1, -2, 1)
    return D.T @ D


@pytest.mark.parametrize("n", [3, 4, 5, 9])
def test_bands_are_the_second_difference_normal_matrix(n):
    bands = _second_difference_bands(n)
    full = np.zeros((n, n))
    for k, off in ((2, 0), (1, 1), (0, 2)):
        for i in range(n - off):
            full[i, i + off] = full[i + off, i] = bands[k, i + off]
    np.testing.assert_allclose(full, _dense(n))


def test_matches_the_dense_solution():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    w = rng.uniform(0.5, 2.0, size=(40, 2))
    out = smooth_series(x, w, 3.0)
    for d in range(2):
        lam = 3.0 * np.median(w[:, d])
        A = np.diag(w[:, d]) + lam * _dense(40) + 1e-9 * lam * np.eye(40)
        np.testing.assert_allclose(out[:, d], np.linalg.solve(A, w[:, d] * x[:, d]), atol=1e-8)


def test_straight_lines_pass_unchanged_and_noise_shrinks():
    t = np.arange(100, dtype=float)[:, None]
    line = 0.3 * t - 2.0
    np.testing.assert_allclose(smooth_series(line, np.ones_like(line), 50.0), line, atol=1e-6)
    rng = np.random.default_rng(0)
    noisy = np.sin(t / 15.0) + rng.normal(0, 0.1, t.shape)
    out = smooth_series(noisy, np.ones_like(noisy), 20.0)
    assert np.abs(out - np.sin(t / 15.0)).mean() < 0.5 * np.abs(noisy - np.sin(t / 15.0)).mean()


def test_gaps_are_bridged_and_ends_held():
    t = np.arange(30, dtype=float)
    x = (2.0 * t)[:, None]
    w = np.ones_like(x)
    w[10:15] = 0.0          # a dropout: filled along the line
    w[:3] = 0.0             # not seen at the start: held at the first seen value
    w[-4:] = 0.0
    x[w == 0] = 999.0       # whatever the fit left there must not leak through
    out = smooth_series(x, w, 10.0)[:, 0]
    np.testing.assert_allclose(out[10:15], 2.0 * t[10:15], atol=1e-4)
    np.testing.assert_allclose(out[:3], out[3], atol=1e-9)
    np.testing.assert_allclose(out[-4:], out[-5], atol=1e-9)


def test_unweighted_columns_and_short_clips_are_left_alone():
    x = np.arange(6.0).reshape(3, 2) ** 2
    np.testing.assert_array_equal(smooth_series(x, np.zeros_like(x), 5.0), x)
    np.testing.assert_array_equal(smooth_series(x[:2], np.ones((2, 2)), 5.0), x[:2])


def test_rotations_stay_rotations_and_cross_the_quaternion_sign_flip():
    from scipy.spatial.transform import Rotation

    angles = np.linspace(0, 1.9 * np.pi, 60)        # a full turn about Z: the quaternion's sign flips halfway
    R = Rotation.from_rotvec(np.stack([np.zeros(60), np.zeros(60), angles], 1)).as_matrix()[:, None]
    out = smooth_rotations(R, np.ones((60, 1)), 30.0)
    np.testing.assert_allclose(out[:, 0] @ out[:, 0].transpose(0, 2, 1), np.broadcast_to(np.eye(3), (60, 3, 3)),
                               atol=1e-9)
    err = np.degrees(np.linalg.norm(Rotation.from_matrix(out[:, 0] @ R[:, 0].transpose(0, 2, 1)).as_rotvec(), axis=1))
    assert err.max() < 2.0   # a steady turn is kept, not averaged away
