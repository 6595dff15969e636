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


def hand_facing_camera(wrist_xy, side: int) -> np.ndarray:
    """A hand held up, palm to the camera, in image axes (x right, y down, z away): (21, 3). A right hand's thumb
    is on the image's right and toward the camera; a left hand is its mirror image."""
    right = np.zeros((21, 3))
    right[[5, 6, 7, 8]] = [(15, -60 - 20 * k, 0) for k in range(4)]       # index
    right[[9, 10, 11, 12]] = [(5, -62 - 22 * k, 0) for k in range(4)]     # middle
    right[[13, 14, 15, 16]] = [(-5, -60 - 20 * k, 0) for k in range(4)]   # ring
    right[[17, 18, 19, 20]] = [(-15, -55 - 15 * k, 0) for k in range(4)]  # pinky
    right[[1, 2, 3, 4]] = [(15, -10, -10), (25, -20, -25), (32, -32, -35), (38, -45, -40)]  # thumb
    hand = right if side == 1 else right * [-1, 1, 1]
    return hand + [*wrist_xy, 0.0]


def test_chirality_names_the_hand_whatever_wrist_holds_it():
    from inference_server.sides import chirality_votes

    pose = walking_pose(3)                       # subject's left wrist at x = 320 + 90, right at 320 - 90 ...
    pose[:, 11, 0], pose[:, 12, 0] = 340, 300    # ... shoulders 40 px apart: the wrists are 4.5 shoulders apart
    hands = np.stack([np.stack([hand_facing_camera(pose[t, 15, :2], 0), hand_facing_camera(pose[t, 16, :2], 1)])
                      for t in range(3)])
    hands[1] = hands[1][::-1]                    # frame 1: each wrist holds the other side's hand
    votes = chirality_votes(pose, hands)
    assert np.allclose(votes[[0, 2]], 1.0) and np.allclose(votes[1], -1.0)
    assert np.allclose(chirality_votes(pose, hands, mirrored=True), -votes)   # a selfie image flips chirality
    flat = hands.copy()
    flat[..., 2] = 0.0                           # a thumb in the palm plane says nothing
    assert np.allclose(chirality_votes(pose, flat), 0.0)
    close = pose.copy()
    close[:, 11, 0], close[:, 12, 0] = 420, 220  # shoulders 200 px apart: the wrists are under one shoulder apart
    assert np.allclose(chirality_votes(close, hands), 0.0)    # hands held close may sit on each other's wrist
    hands[2, 0] = np.nan
    assert chirality_votes(pose, hands)[2, 0] == 0.0           # no hand, no vote


def test_chirality_undoes_a_confident_mirror_that_visibility_alone_keeps():
    """The wave scene's failure: the network mirrors the body for runs of frames while sure of it (visibility
    0.9); only the hands' chirality tells. With the Holistic path's weights the runs are swapped back."""
    from inference_server.sides import CHIRALITY_LAMBDA, CHIRALITY_MU, chirality_votes

    n = 60
    pose = walking_pose(n)
    pose[:, 11, 0], pose[:, 12, 0] = 340, 300
    hands = np.stack([np.stack([hand_facing_camera(pose[t, 15, :2], 0), hand_facing_camera(pose[t, 16, :2], 1)])
                      for t in range(n)])
    truth = np.zeros(n, dtype=bool)
    truth[10:30] = truth[40:52] = True
    pose[truth] = pose[truth][:, POSE_MIRROR]
    hands[truth] = hands[truth][:, ::-1]
    hands[truth, 1] = np.nan                     # as in the wave: the mirrored frames show one hand
    votes = chirality_votes(pose, hands)
    assert not mirrored_frames(pose, votes).any()              # the default weights trust the network
    assert np.array_equal(mirrored_frames(pose, votes, lam=CHIRALITY_LAMBDA, mu=CHIRALITY_MU), truth)
