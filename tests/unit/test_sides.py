"""Left/right consistency over a clip (inference_server.sides): mirrored pose frames and traded hands are found
exactly on synthetic sequences with known answers, and nothing is swapped where nothing was wrong."""
from __future__ import annotations

import numpy as np
import pytest

from inference_server.detect import FrameLandmarks, empty_frame
from inference_server.sides import POSE_MIRROR, mirrored_frames, swap_hands, swapped_hands, unmirror


def walking_pose(n: int, seed: int = 0) -> np.ndarray:
    """A frontal person 300 px tall whose left side is at larger x, swaying slowly; visibility 0.9."""
    rng = np.random.default_rng(seed)
    base = np.zeros((33, 2))
    base[:, 1] = np.linspace(100, 400, 33)
    for left, right in [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20),
                        (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)]:
        spread = 25 if left < 11 else 60 + 2 * left
        base[left, 0], base[right, 0] = 320 + spread, 320 - spread
        base[right, 1] = base[left, 1]
    base[0, 0] = 320
    out = np.empty((n, 33, 3))
    for t in range(n):
        out[t, :, :2] = base + [3 * np.sin(t / 10), 0] + rng.normal(0, 1.0, (33, 2))
        out[t, :, 2] = 0.9
    return out


def test_no_swap_on_a_clean_sequence():
    assert not mirrored_frames(walking_pose(60)).any()


def test_a_run_of_mirrored_low_confidence_frames_is_found():
    pose = walking_pose(60)
    truth = np.zeros(60, dtype=bool)
    truth[20:26] = True
    pose[truth] = pose[truth][:, POSE_MIRROR]
    pose[truth, :, 2] = 0.2          # the network is unsure where it mirrors
    assert np.array_equal(mirrored_frames(pose), truth)


def test_hand_labels_decide_a_confident_mirror():
    """Frames the network is sure of stay unless the hands' own labels say otherwise."""
    pose = walking_pose(40)
    flipped = np.zeros(40, dtype=bool)
    flipped[10:14] = True
    pose[flipped] = pose[flipped][:, POSE_MIRROR]
    votes = np.full((40, 2), 0.95)
    votes[flipped] = -0.95
    assert np.array_equal(mirrored_frames(pose, votes), flipped)


def test_gaps_are_bridged_and_stay_unswapped():
    pose = walking_pose(50)
    pose[15:30] = np.nan
    out = mirrored_frames(pose)
    assert not out.any() and out.shape == (50,)


def hands_sequence(n: int) -> np.ndarray:
    """Two hands 120 px apart moving smoothly; (T, 2, 21, 3)."""
    hands = np.zeros((n, 2, 21, 3))
    shape = np.stack([np.linspace(0, 10, 21), np.linspace(0, -60, 21)], axis=1)
    for t in range(n):
        hands[t, 0, :, :2] = shape + [380 + 2 * t, 300]
        hands[t, 1, :, :2] = shape + [260 + 2 * t, 300]
    return hands


def test_traded_hands_are_found_from_motion_and_labels():
    hands = hands_sequence(50)
    traded = np.zeros(50, dtype=bool)
    traded[30:33] = True
    hands[traded] = hands[traded][:, ::-1]
    votes = np.full((50, 2), 0.9)
    votes[traded] = -0.9
    assert np.array_equal(swapped_hands(hands, votes), traded)
    # Motion alone (no labels) also undoes a short trade: two jumps cost more than three swapped frames.
    assert np.array_equal(swapped_hands(hands, np.zeros((50, 2))), traded)


def test_a_missing_hand_does_not_trade():
    hands = hands_sequence(30)
    hands[10:20, 1] = np.nan
    assert not swapped_hands(hands, np.zeros((30, 2))).any()


@pytest.mark.parametrize("fn", [unmirror, swap_hands])
def test_swapping_a_frame_twice_restores_it(fn):
    rng = np.random.default_rng(3)
    lm: FrameLandmarks = empty_frame()
    lm.pose_2d[:] = rng.normal(size=(33, 3))
    lm.pose_world[:] = rng.normal(size=(33, 3))
    lm.hands_2d[0] = 1.0
    lm.hand_score[:] = (0.9, 0.0)
    lm.hand_source[:] = (2, 0)
    before = [a.copy() for a in (lm.pose_2d, lm.pose_world, lm.hands_2d, lm.hand_score, lm.hand_source)]
    fn(lm)
    assert np.isnan(lm.hands_2d[0]).all() and (lm.hands_2d[1] == 1.0).all() and lm.hand_source[1] == 2
    if fn is unmirror:
        assert np.array_equal(lm.pose_2d[15], before[0][16])
    fn(lm)
    for a, b in zip((lm.pose_2d, lm.pose_world, lm.hands_2d, lm.hand_score, lm.hand_source), before):
        assert np.array_equal(a, b, equal_nan=True)
