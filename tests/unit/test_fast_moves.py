"""Fast moves through the smoother (issue 6: "fast motion (a punch, a clap) must not be smeared"): smoothing.py's
``relax`` and fit._fast_relax, which relaxes it where the detector's own 3D landmarks show a limb turning fast for
two frames running. Known answers on a made-up jab, a one-frame glitch and slow motion."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from inference_server import fit
from inference_server.kinematic_lm import Pose
from inference_server.smoothing import _second_difference_bands, _weighted_second_difference_bands, smooth_series
from rigs.rotations import aa_to_matrix, matrix_to_aa

T_FRAMES = 60
STIFFNESS = 0.5 ** 2 * fit.FitSettings().w_smooth     # the default smoothing's stiffness
SKEL = types.SimpleNamespace(names=["root", "upperarm01.L", "lowerarm01.L", "lowerarm01.R", "spine01"])
FREE = [1, 2, 3, 4]


def _jab_angle() -> np.ndarray:
    """(T,) still, a snap through 90° over frames 30-33, still."""
    return np.radians(np.clip((np.arange(T_FRAMES) - 30) / 3.0, 0.0, 1.0) * 90.0)


def _pose_world(forearm_angle: np.ndarray, side: int = 0) -> np.ndarray:
    """(T,33,3) world landmarks whose forearm (13 → 15, or 14 → 16 for side 1) turns by ``forearm_angle`` in the
    x-y plane; every other landmark still."""
    rng = np.random.default_rng(1)
    pw = np.tile(rng.normal(0, 0.3, (1, 33, 3)), (len(forearm_angle), 1, 1))
    elbow, wrist = 13 + side, 15 + side
    pw[:, wrist] = pw[:, elbow] + 0.25 * np.stack([np.cos(forearm_angle), np.sin(forearm_angle),
                                                    np.zeros_like(forearm_angle)], axis=1)
    return pw


def test_weighted_bands_are_the_plain_ones_at_one():
    for n in range(3, 9):
        assert np.array_equal(_weighted_second_difference_bands(np.ones(n - 2)), _second_difference_bands(n))


def test_relax_of_one_changes_nothing_and_a_relaxed_step_stays_sharp():
    rng = np.random.default_rng(0)
    truth = np.where(np.arange(T_FRAMES) < 30, 0.0, 1.0)
    x = (truth + rng.normal(0, 0.02, T_FRAMES))[:, None]
    w = np.ones_like(x)
    plain = smooth_series(x, w, 20.0)
    assert np.array_equal(smooth_series(x, w, 20.0, np.ones((T_FRAMES - 2, 1))), plain)
    relax = np.ones((T_FRAMES - 2, 1))
    relax[26:31] = 0.003                                    # the rows around the step
    sharp = smooth_series(x, w, 20.0, relax)
    assert np.abs(np.diff(plain[:, 0])).max() < 0.4         # the quadratic smoother spreads the step ...
    assert np.abs(np.diff(sharp[:, 0])).max() > 0.7         # ... the relaxed one keeps most of it
    far = np.r_[0:20, 40:T_FRAMES]                          # and away from it smooths the jitter as before
    assert np.abs(sharp[far] - plain[far]).max() < 0.02
    assert np.abs(sharp[far, 0] - truth[far]).mean() < np.abs(x[far, 0] - truth[far]).mean()


def test_a_sustained_fast_turn_is_relaxed_a_glitch_and_slow_motion_are_not():
    n = T_FRAMES
    vis = np.ones((n, 33))
    # The left forearm snaps through 90° in 3 frames; the right one jumps 90° for one frame and back (a glitch).
    pw = _pose_world(_jab_angle())
    glitch = np.zeros(n)
    glitch[40] = np.radians(90.0)
    pw[:, [14, 16]] = _pose_world(glitch, side=1)[:, [14, 16]]
    relax = fit._fast_relax(SKEL, FREE, pw, vis, 0.4)
    assert relax.shape == (n - 2, len(FREE))
    left, right = relax[:, 1], relax[:, 2]
    assert (left[28:33] == fit.FAST_RELAX).all() and (left[:25] == 1).all() and (left[38:] == 1).all()
    assert (right == 1).all()                               # out and straight back: not a move
    assert (relax[:, 0] == 1).all() and (relax[:, 3] == 1).all()   # the upper arm did not move; spine not a limb
    # Slow motion (90° over 30 frames) and an unseen wrist are not relaxed; scale 0 turns it off.
    slow = _pose_world(np.radians(np.clip((np.arange(n) - 20) / 30.0, 0, 1) * 90.0))
    assert (fit._fast_relax(SKEL, FREE, slow, vis, 0.4) == 1).all()
    unseen = vis.copy()
    unseen[:, 15] = 0.2
    assert (fit._fast_relax(SKEL, FREE, pw, unseen, 0.4)[:, 1] == 1).all()
    assert fit._fast_relax(SKEL, FREE, pw, vis, 0.0) is None


class _Solved:
    """What `fit._smooth` reads of a solved KinematicLM (no curvature: every parameter weighs 1)."""

    def __init__(self, n_free: int):
        self.information = None
        self.rot_offset = 3
        self.n_params = 3 + 3 * n_free
        self.param_bone = torch.arange(n_free).repeat_interleave(3)


def _smoothed(angle_fit: np.ndarray, relax) -> np.ndarray:
    aa = np.zeros((T_FRAMES, 5, 3))
    aa[:, 2, 2] = angle_fit                                  # the left forearm turns about z
    pose = Pose(torch.as_tensor(aa_to_matrix(aa)), torch.zeros(T_FRAMES, 3, dtype=torch.float64))
    out = fit._smooth(_Solved(len(FREE)), pose, FREE, np.ones(T_FRAMES, bool), STIFFNESS, move_root=False,
                      relax=relax)
    return matrix_to_aa(out.local_R.numpy())[:, 2, 2]


def test_the_fit_keeps_a_jab_the_detector_saw_and_smooths_a_flip_it_did_not():
    rng = np.random.default_rng(3)
    truth = _jab_angle()
    fitted = truth + rng.normal(0, np.radians(3.0), T_FRAMES)
    vis = np.ones((T_FRAMES, 33))
    relax = fit._fast_relax(SKEL, FREE, _pose_world(truth), vis, 0.4)
    peak = np.abs(np.diff(truth)).max()
    kept = np.abs(np.diff(_smoothed(fitted, relax))).max() / peak
    smeared = np.abs(np.diff(_smoothed(fitted, None))).max() / peak
    assert smeared < 0.6 and kept > 0.85, (smeared, kept)
    # The fit flips for two frames where the detector shows nothing: smoothed as before, not kept.
    flipped = fitted.copy()
    flipped[45:47] += np.radians(120.0)
    still = fit._fast_relax(SKEL, FREE, _pose_world(truth), vis, 0.4)
    out = _smoothed(flipped, still)
    assert np.abs(out[45:47] - truth[45:47]).max() < np.radians(45.0)
    assert np.abs(out[45:47] - truth[45:47]).max() == pytest.approx(
        np.abs(_smoothed(flipped, None)[45:47] - truth[45:47]).max(), abs=np.radians(2.0))
