"""The detection stage's per-clip landmark store (inference_server.detect.FrameStore): the same arrays a list of
frames stacked gives, edits through its frames land in it, and the chirality pass swaps the same frames in it as
in a list."""
from __future__ import annotations

import numpy as np

from inference_server.detect import FrameStore, empty_frame, stacked, unmirror_by_chirality
from test_sides import hand_facing_camera, walking_pose


def _frames(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        lm = empty_frame()
        for name in ("pose_2d", "pose_world", "hands_2d", "hands_world"):
            getattr(lm, name)[:] = rng.normal(size=getattr(lm, name).shape)
        lm.hand_score[:] = rng.random(2)
        lm.hand_source[:] = rng.integers(0, 4, 2)
        frames.append(lm)
    return frames


def test_the_store_holds_what_a_stacked_list_holds_and_grows_past_its_guess():
    frames = _frames(40)
    store = FrameStore(expected=16)              # a frame count that was too low: the arrays grow
    for lm in frames:
        store.append(lm)
    assert len(store) == 40
    for name in FrameStore.FIELDS:
        want = np.stack([getattr(f, name) for f in frames])
        got = stacked(store, name)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), name
    assert np.array_equal(store[-1].pose_2d, frames[-1].pose_2d)
    view = store[3]
    view.hands_2d[1] = np.nan                    # edits in place land in the store ...
    assert np.isnan(store.array("hands_2d")[3, 1]).all()
    view.pose_2d = np.zeros((33, 3))             # ... a replaced field goes back with store[t] = frame
    store[3] = view
    assert (store.array("pose_2d")[3] == 0).all()
    assert len(stacked(FrameStore(), "pose_2d")) == 0 and len(list(FrameStore())) == 0


def test_chirality_swaps_the_same_frames_in_a_store_as_in_a_list():
    n = 40
    pose = walking_pose(n)
    pose[:, 11, 0], pose[:, 12, 0] = 340, 300
    hands = np.stack([np.stack([hand_facing_camera(pose[t, 15, :2], 0), hand_facing_camera(pose[t, 16, :2], 1)])
                      for t in range(n)])
    from inference_server.sides import POSE_MIRROR

    truth = np.zeros(n, dtype=bool)
    truth[10:25] = True
    pose[truth] = pose[truth][:, POSE_MIRROR]
    hands[truth] = hands[truth][:, ::-1]
    hands[truth, 1] = np.nan
    listed, store = [], FrameStore(n)
    for t in range(n):
        lm = empty_frame()
        lm.pose_2d[:], lm.hands_2d[:] = pose[t], hands[t]
        listed.append(lm)
        store.append(lm)
    swapped = unmirror_by_chirality(listed)
    assert swapped == truth.sum() and unmirror_by_chirality(store) == swapped
    for name in FrameStore.FIELDS:
        assert np.array_equal(stacked(listed, name), store.array(name), equal_nan=True), name
