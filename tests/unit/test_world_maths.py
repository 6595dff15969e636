"""The world stage's small pieces that need no skeleton (inference_server/world.py): the soles' speed in the picture
with the camera's turn taken out, the still-in-contact series, the floor's slope, the leg's capped reach."""
from __future__ import annotations

import numpy as np
import pytest

from inference_server import world

K = np.array([[800.0, 0.0, 640.0], [0.0, 800.0, 360.0], [0.0, 0.0, 1.0]])


def _pan(deg: np.ndarray) -> np.ndarray:
    """Camera-from-camera0 rotations of a camera turning about its own y axis (down)."""
    a = np.radians(deg)
    R = np.zeros((len(a), 3, 3))
    R[:, 0, 0], R[:, 0, 2], R[:, 1, 1], R[:, 2, 0], R[:, 2, 2] = np.cos(a), -np.sin(a), 1.0, np.sin(a), np.cos(a)
    return R


def _landmarks(points_cam0: np.ndarray, R: np.ndarray) -> np.ndarray:
    """(T,33,3) pose landmarks whose soles (29–32) are the projections of points (T,4,3) given in camera-0 axes, seen
    by cameras R (T,3,3); a head and a heel 400 px apart in height so the person is 400 px tall."""
    n = len(R)
    cam = np.einsum("tij,tkj->tki", R, points_cam0)
    uv = cam[..., :2] / cam[..., 2:3] * 800.0 + [640.0, 360.0]
    out = np.full((n, 33, 3), np.nan)
    out[:, [29, 31, 30, 32], :2] = uv
    out[:, [29, 31, 30, 32], 2] = 0.99                          # visibility
    out[:, 0, :2] = uv[:, 0] - [0.0, 400.0]
    return out


def test_a_still_foot_is_still_in_a_panning_picture():
    n = 30
    stamps = np.arange(n) / 30.0
    R = _pan(np.linspace(0.0, 20.0, n))                          # the camera turns 20° in a second
    feet = np.tile([[0.0, 0.5, 4.0], [0.1, 0.5, 4.0], [0.3, 0.5, 4.0], [0.4, 0.5, 4.0]], (n, 1, 1))
    lm = _landmarks(feet, R)
    still = world.image_foot_speed(lm, K, R, stamps)
    naive = world.image_foot_speed(lm, K, None, stamps)
    assert np.nanmax(still) < 1e-6                               # person-heights per second
    assert np.nanmin(naive) > 0.5                                # the pan alone moves it ~280 px/s = 0.7 heights/s


def test_a_moving_foot_has_its_speed():
    n = 30
    stamps = np.arange(n) / 30.0
    R = _pan(np.zeros(n))
    feet = np.tile([[0.0, 0.5, 4.0]] * 4, (n, 1, 1)).astype(float)
    feet[:, :, 0] += 1.0 * stamps[:, None]                      # 1 m/s across the picture at 4 m: 200 px/s
    speed = world.image_foot_speed(_landmarks(feet, R), K, R, stamps)
    np.testing.assert_allclose(speed[1:], 200.0 / 400.0, rtol=1e-6)


def test_an_unseen_foot_has_no_speed_and_is_presumed_planted():
    n = 10
    stamps = np.arange(n) / 30.0
    R = _pan(np.zeros(n))
    lm = _landmarks(np.tile([[0.0, 0.5, 4.0]] * 4, (n, 1, 1)).astype(float), R)
    lm[:, 29, 2] = 0.1                                           # the left heel out of the picture
    speed = world.image_foot_speed(lm, K, R, stamps)
    assert np.isposinf(speed[:, 0]).all() and np.isfinite(speed[:, 1:]).all()
    soles = np.zeros((n, 4, 3))                                  # all on the floor, still
    p = world.contact_probability(soles, stamps, 0.0, np.ones(n, bool), world.WorldSettings(), speed)
    assert (p > 0.8).all()


def test_planted_series_stands_still_in_contact_and_follows_elsewhere():
    n = 60
    x = np.stack([np.linspace(0.0, 0.6, n), np.zeros(n), np.zeros(n)], axis=1)   # a foot sliding 1 cm/frame
    c = np.zeros(n)
    c[20:40] = 1.0
    y = world.planted_series(x, c, 0.03, 0.0005, 0.004)
    assert np.abs(np.diff(y[21:39, 0])).max() < 5e-4            # planted: under half a millimetre per frame
    assert np.abs(y[:5] - x[:5]).max() < 0.02 and np.abs(y[-5:] - x[-5:]).max() < 0.02
    # It stands at the mean of where the fit slid (10 cm ahead of the fit when the contact starts), so it gets there
    # beforehand, eased: at most 2.6 cm/frame, no jump.
    assert np.abs(np.diff(y[:, 0])).max() < 0.03


def test_floor_tilt_finds_a_sloped_floor_and_keeps_a_level_one():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1.5, 1.5, (400, 2))
    slope = np.tan(np.radians(8.0))
    pts = np.column_stack([xy, slope * xy[:, 1]])                # 8° up along +Y
    R, angle = world.floor_tilt(pts, np.ones(len(pts)))
    normal = R @ (np.array([0.0, -slope, 1.0]) / np.hypot(slope, 1.0))
    assert 6.0 < angle < 8.5 and normal[2] > 0.9999              # the ridge shrinks it a little toward level
    level = np.column_stack([xy, rng.normal(0, 0.005, len(xy))])
    assert world.floor_tilt(level, np.ones(len(xy)))[1] < 0.5


def test_capped_reach_turns_the_knee_by_at_most_the_cap():
    H, Kn, A = np.array([[0.0, 0.0, 0.9]]), np.array([[0.0, 0.05, 0.5]]), np.array([[0.0, 0.0, 0.1]])
    l1, l2 = np.linalg.norm(Kn - H), np.linalg.norm(A - Kn)
    inner = lambda d: np.degrees(np.arccos((l1 ** 2 + l2 ** 2 - d ** 2) / (2 * l1 * l2)))  # noqa: E731
    far = A + [0.0, 0.0, -0.2]                                   # 20 cm lower: far beyond a 5° change
    got = world._capped_reach(H, Kn, A, far, np.radians(5.0))
    assert inner(np.linalg.norm(got)) == pytest.approx(inner(np.linalg.norm(A - H)) + 5.0, abs=1e-6)
    near = A + [0.0, 0.0, -0.001]                                # 1 mm: within reach
    np.testing.assert_allclose(world._capped_reach(H, Kn, A, near, np.radians(5.0)), near - H, atol=1e-9)
