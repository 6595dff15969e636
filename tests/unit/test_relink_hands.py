"""A lone hand that continues the other side's hand is moved there (inference_server.detect.lone_hand_runs,
relink_lone_hands): known answers built from hand tracks in pixels."""
from __future__ import annotations

import numpy as np

from inference_server.detect import (LEFT, RIGHT, SRC_HOLISTIC, SRC_NONE, SRC_WRIST_CROP, FrameStore, empty_frame,
                                     lone_hand_runs, relink_lone_hands)

LENGTH = 18.0   # px, wrist → middle knuckle


def _tracks(n: int) -> np.ndarray:
    return np.full((n, 2, 2), np.nan)


def _runs(wrist: np.ndarray) -> list[tuple[list[int], int]]:
    return [(run.tolist(), side) for run, side in lone_hand_runs(wrist, np.full(wrist.shape[:2], LENGTH))]


def test_a_waving_hand_read_on_the_wrong_side_for_a_few_frames_goes_back():
    """`wave`: the right hand waves (x swings 290 → 320 px); in frames 14–17 Holistic's left-hand crop lands on
    it, with two empty frames before and one inside; the left hand is not found anywhere near."""
    wrist = _tracks(30)
    for t in range(30):
        wrist[t, RIGHT] = (305 + 15 * np.sin(t / 3), 100 + 0.3 * t)
    wrist[12:14, RIGHT] = np.nan
    wrist[14:18, LEFT], wrist[14:18, RIGHT] = wrist[14:18, RIGHT], np.nan
    wrist[15, LEFT] = np.nan
    assert _runs(wrist) == [([14, 16, 17], LEFT)]


def test_one_frame_of_the_right_hand_on_the_left_hand_goes_back():
    """`turn`: both hands tracked, 90 px apart; in one frame only the 'right' hand is found, where the left is."""
    wrist = _tracks(20)
    wrist[:, LEFT], wrist[:, RIGHT] = (357, 229), (263, 229)
    wrist[9, LEFT], wrist[9, RIGHT] = np.nan, (356, 226)
    assert _runs(wrist) == [([9], RIGHT)]


def test_hands_together_and_single_hands_stay():
    # a clap: the left hand is lost for two frames while both hands touch; the right one continues its own track
    clap = _tracks(20)
    for t in range(20):
        gap = abs(t - 10) * 6.0
        clap[t, LEFT], clap[t, RIGHT] = (320 + gap, 200), (320 - gap, 200)
    clap[9:11, LEFT] = np.nan
    assert _runs(clap) == []
    # one hand in the whole clip, wherever it goes
    single = _tracks(20)
    single[:, RIGHT] = np.linspace((100, 100), (300, 100), 20)
    assert _runs(single) == []
    # a lone hand that continues neither side (the left hand comes back after a long absence, far from the right)
    back = _tracks(30)
    back[:, RIGHT] = (100, 100)
    back[:10, LEFT] = (300, 100)
    back[10:20] = np.nan
    back[20:, RIGHT] = np.nan
    back[20:, LEFT] = (400, 120)
    assert _runs(back) == []


def test_a_hand_that_its_own_side_continues_stays_even_when_the_other_side_does_too():
    """Crossing hands: the lone hand lies near where the other hand was a frame before and near its own track."""
    wrist = _tracks(20)
    wrist[:, LEFT] = np.linspace((340, 200), (300, 200), 20)
    wrist[:, RIGHT] = np.linspace((300, 200), (340, 200), 20)
    wrist[10, LEFT] = np.nan
    assert _runs(wrist) == []


def test_relink_moves_every_field_of_the_hand_and_counts_the_frames():
    frames = []
    for t in range(12):
        lm = empty_frame()
        lm.hands_2d[LEFT, :, :2], lm.hands_2d[RIGHT, :, :2] = (357.0, 229.0), (263.0, 229.0)
        lm.hands_2d[:, 9, 1] -= LENGTH
        lm.hands_2d[..., 2] = 0.0
        lm.hands_world[:] = 0.01 * t
        lm.hand_score[:], lm.hand_source[:] = 1.0, SRC_HOLISTIC
        frames.append(lm)
    wrong = frames[6]
    wrong.hands_2d[RIGHT] = wrong.hands_2d[LEFT] + (1.0, -2.0, 0.0)
    wrong.hands_world[RIGHT] = 0.5
    wrong.hand_score[RIGHT], wrong.hand_source[RIGHT] = 0.7, SRC_WRIST_CROP
    wrong.hands_2d[LEFT], wrong.hands_world[LEFT], wrong.hand_score[LEFT], wrong.hand_source[LEFT] = \
        np.nan, np.nan, 0.0, SRC_NONE
    moved_hand = wrong.hands_2d[RIGHT].copy()
    store = FrameStore(expected=12)
    for lm in frames:
        store.append(lm)
    for held in (frames, store):
        assert relink_lone_hands(held) == 1
        fixed = held[6]
        np.testing.assert_array_equal(fixed.hands_2d[LEFT], moved_hand)
        assert (fixed.hands_world[LEFT] == 0.5).all() and fixed.hand_score[LEFT] == 0.7
        assert fixed.hand_source[LEFT] == SRC_WRIST_CROP and fixed.hand_source[RIGHT] == SRC_NONE
        assert np.isnan(fixed.hands_2d[RIGHT]).all() and fixed.hand_score[RIGHT] == 0.0
        assert relink_lone_hands(held) == 0                      # nothing left to move
