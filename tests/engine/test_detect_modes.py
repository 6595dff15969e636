"""Capture modes and hand assignment (inference_server.detect) with the real MediaPipe graphs.

Known answers come from the committed sample clip's ground truth (a render of Anny: the subject's right hand waves
on the image's left, the left hand counts in front of the chest) and from geometry built here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_server import detect
from inference_server.detect import (LEFT, RIGHT, SRC_HANDS, SRC_HOLISTIC, SRC_NONE, SRC_WRIST_CROP, HandObservation,
                                     Perception, assign_to_wrists, crop_affine, hand_region, hands_by_label,
                                     subject_side)
from inference_server.video import iter_frames

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
TRUTH = ROOT / "samples" / "sample_wave_truth.npz"
FOOTAGE = ROOT.parent / "shared" / "footage"


@pytest.fixture(scope="module")
def truth():
    with np.load(TRUTH) as f:
        names = [str(n) for n in f["bone_names"]]
        wrists = f["joints_2d"][:, [names.index("wrist.L"), names.index("wrist.R")]]   # (T, 2, 2) px
    return wrists


def frames(n: int, step: int = 1):
    for index, _ts, bgr in iter_frames(SAMPLE, 0, n):
        if index % step == 0:
            yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- pure geometry --------------------------------------------------------------------------------------------

def test_handedness_labels_are_unmirrored_for_a_normal_camera():
    assert subject_side("Left") == RIGHT and subject_side("Right") == LEFT
    assert subject_side("Left", mirrored=True) == LEFT and subject_side("Right", mirrored=True) == RIGHT


def _pose_with_wrists(left_xy, right_xy) -> np.ndarray:
    pose = np.full((33, 3), np.nan)
    for side, xy in ((LEFT, left_xy), (RIGHT, right_xy)):
        w = np.asarray(xy, float)
        pose[detect.POSE_WRIST[side]] = (*w, 0.9)
        pose[detect.POSE_ELBOW[side]] = (*(w + (0, 100)), 0.9)       # forearm 100 px, pointing up
        pose[detect.POSE_INDEX[side]] = (*(w + (-5, -30)), 0.9)
        pose[detect.POSE_PINKY[side]] = (*(w + (5, -30)), 0.9)
    return pose


def _hand_at(wrist_xy, side: int, score: float = 0.9) -> HandObservation:
    pts = np.zeros((21, 3))
    pts[:, :2] = np.asarray(wrist_xy, float) + np.linspace(0, -40, 21)[:, None] * np.array([0.0, 1.0])
    return HandObservation(pts, np.zeros((21, 3)), side, score)


def test_hand_region_sits_past_the_wrist_and_fits_the_hand():
    pose = _pose_with_wrists((300, 200), (100, 200))
    centre, size = hand_region(pose, LEFT)
    np.testing.assert_allclose(centre, (300, 200 - 0.8 * 30))       # 0.8 of the way to the knuckles
    assert size == pytest.approx(max(1.4 * 100, 5 * 30))
    pose[detect.POSE_WRIST[RIGHT], 2] = 0.1                            # an unseen wrist gives no region
    assert hand_region(pose, RIGHT) is None


def test_crop_affines_are_inverse_and_map_the_region_onto_the_crop():
    fwd, inv = crop_affine(np.array([320.0, 240.0]), 100.0, 256)
    corner = fwd @ np.array([270.0, 190.0, 1.0])
    np.testing.assert_allclose(corner, (0, 0), atol=1e-9)
    np.testing.assert_allclose(inv @ np.append(fwd @ np.array([301.0, 222.0, 1.0]), 1.0), (301, 222))


def test_a_hand_goes_to_the_wrist_it_sits_on_whatever_its_label():
    pose = _pose_with_wrists((300, 200), (100, 200))
    on_left, on_right = _hand_at((302, 198), RIGHT), _hand_at((97, 205), RIGHT)   # both labelled "right"
    taken = assign_to_wrists([on_right, on_left], pose)
    assert taken[LEFT] is on_left and taken[RIGHT] is on_right
    far = _hand_at((200, 400), LEFT)
    assert assign_to_wrists([far], pose) == {}                          # on no wrist: dropped


def test_crossed_hands_follow_the_body_not_the_labels():
    # Wrists 30 px apart (hands crossed in front of the chest); each hand sits on the far side's body wrist.
    pose = _pose_with_wrists((215, 200), (185, 200))
    a, b = _hand_at((214, 201), RIGHT, 0.95), _hand_at((186, 199), LEFT, 0.95)   # labels swapped by the network
    taken = assign_to_wrists([a, b], pose)
    assert taken[LEFT] is a and taken[RIGHT] is b


def _frame_with_hands(pose: np.ndarray, hands: dict[int, HandObservation]) -> detect.FrameLandmarks:
    out = detect.empty_frame()
    out.pose_2d[:] = pose
    for side, hand in hands.items():
        detect._put_hand(out, side, hand, SRC_HOLISTIC)
    return out


def test_a_sure_label_decides_a_hand_between_wrists_that_coincide():
    """Crossed arms whose body wrists lie 5 px apart (forearms 100 px): a hand 4 px from one and 6 px from the
    other sits on both; its sure label names the side. An unsure label, or wrists far apart, leave it to the
    distances."""
    pose = _pose_with_wrists((200, 200), (205, 200))
    hand = _hand_at((204, 204), LEFT, 0.97)                        # nearer the right wrist, labelled left
    assert list(assign_to_wrists([hand], pose, sides=(RIGHT,))) == []
    assert list(assign_to_wrists([hand], pose, sides=(LEFT,))) == [LEFT]
    unsure = _hand_at((204, 204), LEFT, 0.6)
    assert list(assign_to_wrists([unsure], pose)) == [RIGHT]
    apart = _pose_with_wrists((150, 200), (205, 200))               # 55 px apart: the nearer wrist takes it
    assert list(assign_to_wrists([hand], apart)) == [RIGHT]


def test_a_hand_on_the_other_arm_is_cleared():
    """vid02's case: Holistic's 'left hand' lies on the right fist, far from the body's left wrist."""
    pose = _pose_with_wrists((300, 200), (100, 200))
    out = _frame_with_hands(pose, {LEFT: _hand_at((110, 205), LEFT), RIGHT: _hand_at((100, 195), RIGHT)})
    assert detect.drop_misplaced_hands(out) == 1
    assert out.hand_source.tolist() == [SRC_NONE, SRC_HOLISTIC]
    assert not np.isfinite(out.hands_2d[LEFT]).any()


def test_hands_near_their_own_wrists_stay_even_when_close_together():
    # a clap: the wrists 20 px apart, each hand 5 px from its own wrist (the hands are 18 px long)
    pose = _pose_with_wrists((150, 200), (130, 200))
    out = _frame_with_hands(pose, {LEFT: _hand_at((145, 200), LEFT), RIGHT: _hand_at((134, 200), RIGHT)})
    assert detect.drop_misplaced_hands(out) == 0
    # far from its own wrist but not near the other one either: no evidence of the wrong arm
    pose = _pose_with_wrists((300, 200), (100, 200))
    out = _frame_with_hands(pose, {LEFT: _hand_at((240, 200), LEFT)})
    assert detect.drop_misplaced_hands(out) == 0
    # on the other wrist, but that wrist is not seen: its place is a guess
    pose[detect.POSE_WRIST[RIGHT], 2] = 0.1
    out = _frame_with_hands(pose, {LEFT: _hand_at((100, 200), LEFT)})
    assert detect.drop_misplaced_hands(out) == 0


def _chiral_hand(wrist_xy, right: bool) -> np.ndarray:
    """Landmarks (21, 3) px + depth of a hand pointing up whose thumb lies away from (right hand) or toward
    (left hand) the camera, from the palm plane: its chirality (`sides.chirality_sine`) is clear."""
    pts = np.zeros((21, 3))
    pts[:, :2] = np.asarray(wrist_xy, float) + np.linspace(0, -120, 21)[:, None] * np.array([0.0, 1.0])
    pts[5] = (wrist_xy[0] - 20, wrist_xy[1] - 60, 0)
    pts[17] = (wrist_xy[0] + 20, wrist_xy[1] - 60, 0)
    pts[9] = (wrist_xy[0], wrist_xy[1] - 60, 0)
    pts[2:5] = (wrist_xy[0] - 30, wrist_xy[1] - 20, 30.0 if right else -30.0)
    return pts


def test_one_hand_on_both_sides_stays_on_the_side_its_shape_names():
    """hands_cross_closeup's case: Holistic puts the left hand on both sides in a close-up whose body wrists are
    less than a hand length apart (the old rule kept both there)."""
    from inference_server.sides import chirality_sine
    assert chirality_sine(_chiral_hand((0, 0), True)) > 0.3 and chirality_sine(_chiral_hand((0, 0), False)) < -0.3
    pose = _pose_with_wrists((300, 200), (250, 200))                   # 50 px apart, hands 60 px long
    out = _frame_with_hands(pose, {})
    for side, dx in ((LEFT, 0.0), (RIGHT, 8.0)):
        out.hands_2d[side] = _chiral_hand((290 + dx, 200), right=False)
        out.hand_source[side] = SRC_HOLISTIC
    detect.drop_duplicate_hands(out)
    assert out.hand_source.tolist() == [SRC_HOLISTIC, SRC_NONE]
    # the same place but opposite shapes: two hands (a clap, a side-on walk), both stay
    out.hands_2d[RIGHT] = _chiral_hand((298, 200), right=True)
    out.hand_source[RIGHT] = SRC_HOLISTIC
    detect.drop_duplicate_hands(out)
    assert out.hand_source.tolist() == [SRC_HOLISTIC, SRC_HOLISTIC]
    # mirrored input (a selfie camera) reads the shapes the other way round
    out.hands_2d[RIGHT] = _chiral_hand((298, 200), right=False)
    detect.drop_duplicate_hands(out, mirrored=True)
    assert out.hand_source.tolist() == [SRC_NONE, SRC_HOLISTIC]


def test_hands_of_frames_without_a_body_get_their_sides_by_track():
    """body+hands mode, a close-up without a body: each frame's labels put the hands on sides (`hands_by_label`);
    `finish` gives every hand its track's side instead, so two frames whose labels flipped are put right."""
    perception = Perception.__new__(Perception)
    perception.mode, perception.mirrored, perception._image_size = "body+hands", False, (640, 480)
    perception._observed = detect.HandStore()
    frames_out = []
    for t in range(12):
        flip = t in (5, 6)                                               # the network swaps its labels here
        hands = [HandObservation(_chiral_hand((200 + 2 * t, 300), False), np.zeros((21, 3)), RIGHT if flip else LEFT,
                                 0.9),
                 HandObservation(_chiral_hand((440 - 2 * t, 300), True), np.zeros((21, 3)), LEFT if flip else RIGHT,
                                 0.9)]
        out = detect.empty_frame()
        detect._read_without_body(out, hands)
        perception._observed.append(hands)
        frames_out.append(out)
    assert frames_out[5].hands_2d[LEFT, 0, 0] > 400                     # before: the flipped frames are swapped
    perception.finish(frames_out)
    for t, out in enumerate(frames_out):
        assert out.hands_2d[LEFT, 0, 0] == pytest.approx(200 + 2 * t), t
        assert out.hands_2d[RIGHT, 0, 0] == pytest.approx(440 - 2 * t), t


def test_searches_for_a_hand_that_stays_missing_back_off():
    perception = Perception.__new__(Perception)          # the back-off's bookkeeping alone, no graphs
    perception._misses, perception.searches_skipped = [0, 0], 0
    searched = []
    for frame in range(16):
        searched.append(perception._may_search(LEFT))
        perception._misses[LEFT] += 1                     # never found
    after, every = Perception.SEARCH_BACKOFF_AFTER, Perception.SEARCH_BACKOFF_EVERY
    assert searched[:after + 1] == [True] * (after + 1)
    assert [f for f, s in enumerate(searched) if s][after:] == list(range(after, 16, every))
    assert perception.searches_skipped == 16 - sum(searched)
    perception._misses[RIGHT] = 0
    assert perception._may_search(RIGHT)                  # the other side is not affected


def test_wrist_crops_that_keep_finding_nothing_back_off():
    perception = Perception.__new__(Perception)          # the back-off's bookkeeping alone, no graphs
    perception._crop_misses, perception.searches_skipped = [0, 0], 0
    tried = []
    for frame in range(30):
        if perception._may_crop(LEFT):
            tried.append(frame)
            perception._crop_misses[LEFT] += 1            # never found (what `_rescue` counts)
    after, every = Perception.RESCUE_BACKOFF_AFTER, Perception.RESCUE_BACKOFF_EVERY
    assert tried[:after] == list(range(after))
    assert tried[after:] == list(range(after, 30, every))
    assert perception.searches_skipped == 30 - len(tried)
    perception._crop_misses[LEFT] = 0                     # found again: every frame once more
    assert perception._may_crop(LEFT) and perception._may_crop(RIGHT)


def test_hands_by_label_keeps_two_hands_when_both_carry_one_label():
    a, b = _hand_at((10, 10), LEFT, 0.9), _hand_at((50, 10), LEFT, 0.6)
    out = hands_by_label([b, a])
    assert out[LEFT] is a and out[RIGHT] is b


# --- real MediaPipe on the sample clip ------------------------------------------------------------------------

def _nearest_side(xy: np.ndarray, wrists: np.ndarray) -> int:
    return int(np.argmin(np.linalg.norm(wrists - xy, axis=-1)))


def test_hands_mode_finds_both_hands_on_their_own_sides(truth):
    """An upper-body close-up (rows 100-400 of the sample, doubled). The sample's left hand counts palm-out in front
    of the chest and the hand network labels it a right hand on most of those frames (a flat-shaded palm looks like
    the back of the other hand), so sides come from tracks (`Perception.finish`)."""
    y0, y1 = 100, 400
    wrists = (truth - (0, y0)) * 2.0                                   # (T, 2, 2) in the close-up's pixels
    found = np.zeros(2, int)
    with Perception("hands") as perception:
        indices, outs = [], []
        for index, rgb in frames(90, step=1):
            close = np.ascontiguousarray(cv2.resize(rgb[y0:y1], None, fx=2.0, fy=2.0))
            indices.append(index)
            outs.append(perception.process(close, (close.shape[1], close.shape[0])))
        perception.finish(outs)
    n = len(outs)
    for index, out in zip(indices, outs):
        for side in (LEFT, RIGHT):
            if out.hand_source[side] == SRC_NONE:
                continue
            assert out.hand_source[side] == SRC_HANDS
            assert np.isfinite(out.hands_world[side]).all()           # metric landmarks come with hands
            assert _nearest_side(out.hands_2d[side, 0, :2], wrists[index]) == side, (index, side)
            found[side] += 1
    assert (found >= 0.8 * n).all(), found                             # measured 84 and 76 of 90


def test_body_and_hands_mode_keeps_each_hand_on_its_own_wrist(truth):
    with Perception("body+hands") as perception:
        for index, rgb in frames(30, step=3):
            out = perception.process(rgb, (rgb.shape[1], rgb.shape[0]))
            assert np.isfinite(out.pose_2d[:, 0]).all()
            for side in (LEFT, RIGHT):
                if out.hand_source[side] != SRC_NONE:
                    assert _nearest_side(out.hands_2d[side, 0, :2], truth[index]) == side, (index, side)


def test_holistic_without_its_face_branch_gives_the_same_body_and_hands():
    """The capture runs Holistic's graph without the face nodes (`detect.holistic_graph(face=False)`): the pose and
    hand landmarks must be the shipped graph's to the bit, frame by frame in tracking mode; the face is gone."""
    config = detect.holistic_graph(face=False)
    calculators = [node.calculator for node in config.node]
    assert "PoseLandmarkCpu" in calculators and "HandLandmarksLeftAndRightCpu" in calculators
    assert not set(detect.HOLISTIC_FACE_NODES) & set(calculators)
    assert not any(name.startswith("FACE") for name in config.output_stream)
    assert set(detect.HOLISTIC_FACE_NODES) <= {node.calculator for node in detect.holistic_graph(face=True).node}
    outs = {}
    for face in (True, False):
        with detect.HolisticDetector(hands=True, face=face) as graph:
            outs[face] = [graph.process(rgb, (rgb.shape[1], rgb.shape[0])) for _, rgb in frames(20)]
    hands = 0
    for shipped, ours in zip(outs[True], outs[False]):
        for field in ("pose_2d", "pose_world", "hands_2d", "hand_source"):
            np.testing.assert_array_equal(getattr(shipped, field), getattr(ours, field))
        hands += int((ours.hand_source != SRC_NONE).sum())
    assert np.isfinite(outs[False][0].pose_2d).all() and hands >= 20     # something was compared


def test_wrist_crop_rescue_finds_a_hand_that_holistic_missed(truth):
    """Holistic's hand is removed by hand; the rescue must find it again from the body's wrist alone, on the wrist
    it belongs to, in a frame scaled down so the hands are small (about 20 px wrist to knuckles)."""
    rescued = 0
    with Perception("body+hands") as perception:
        for index, rgb in frames(30, step=6):
            small = cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            size = (rgb.shape[1], rgb.shape[0])                       # landmarks stay in full-frame pixels
            out = perception._holistic.process(small, size)
            for side in (LEFT, RIGHT):
                detect._clear_hand(out, side)
            perception._rescue(small, size, out)
            for side in (LEFT, RIGHT):
                if out.hand_source[side] == SRC_WRIST_CROP:
                    rescued += 1
                    assert _nearest_side(out.hands_2d[side, 0, :2], truth[index]) == side
                    assert np.linalg.norm(out.hands_2d[side, 0, :2] - truth[index, side]) < 40.0
    assert rescued >= 6, rescued                                        # of 10 hands in 5 frames


def test_wrist_crops_track_a_small_hand_from_frame_to_frame(truth):
    """Consecutive small frames (the sample at a third of its size: hands about 12 px wrist to knuckles) with
    Holistic's hands removed: the crops' tracking graph keeps reading a hand it found without the palm detector,
    and finds at least as many hands, on their own wrists, as palm detection on every crop."""
    found, tracked_calls = {}, 0
    for tracking in (False, True):
        with Perception("body+hands") as perception:
            perception.RESCUE_TRACKING = tracking
            perception.RESCUE_BACKOFF_AFTER = 10 ** 6
            hits = 0
            for index, rgb in frames(40):
                small = cv2.resize(rgb, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
                size = (rgb.shape[1], rgb.shape[0])
                out = perception._holistic.process(small, size)
                for side in (LEFT, RIGHT):
                    detect._clear_hand(out, side)
                tracked_calls += int(tracking) * sum(perception._crop_tracked)
                perception._rescue(small, size, out)
                for side in (LEFT, RIGHT):
                    if out.hand_source[side] == SRC_WRIST_CROP:
                        hits += 1
                        assert _nearest_side(out.hands_2d[side, 0, :2], truth[index]) == side, (index, side)
            found[tracking] = hits
    assert found[True] >= found[False] and found[True] >= 40, found
    assert tracked_calls >= 20                                          # crops read from the previous landmarks


def test_the_pipelined_stream_gives_what_process_gives_frame_by_frame():
    """`Perception.stream` runs Holistic on the next frame while it completes this one (two threads): each frame's
    landmarks, and the counters, must be what `process` gives, frame by frame. Frames at a third of their size, so
    that Holistic misses hands and the wrist crops run too."""
    small = [cv2.resize(rgb, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA) for _, rgb in frames(40)]
    size = (small[0].shape[1] * 3, small[0].shape[0] * 3)
    with Perception("body+hands") as perception:
        one_by_one = [perception.process(rgb, size) for rgb in small]
        counts = (perception.rescued, perception.searches_skipped, perception.misplaced)
    with Perception("body+hands") as perception:
        streamed = list(perception.stream((rgb, size) for rgb in small))
        assert (perception.rescued, perception.searches_skipped, perception.misplaced) == counts
    assert counts[0] >= 1                                               # the second stage had work to do
    assert [rgb is frame for (rgb, _), frame in zip(streamed, small)] == [True] * len(small)
    for a, (_, b) in zip(one_by_one, streamed):
        for field in ("pose_2d", "pose_world", "hands_2d", "hands_world", "hand_score", "hand_source"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_a_failure_in_the_second_stage_reaches_the_caller_and_stops_the_stream(monkeypatch):
    calls = []

    def broken(self, rgb, scale_to, out):
        calls.append(1)
        raise RuntimeError("hand graph failed")

    monkeypatch.setattr(Perception, "_complete", broken)
    with Perception("body+hands") as perception:
        with pytest.raises(RuntimeError, match="hand graph failed"):
            for _ in perception.stream((rgb, (rgb.shape[1], rgb.shape[0])) for _, rgb in frames(10)):
                pass
    assert 1 <= len(calls) <= 2                                         # no frame completed past the failure


def test_body_and_hands_mode_falls_back_to_the_hand_detector_in_a_close_up(truth):
    """A crop around the waving hand holds no body: the hand detector on the whole frame finds the hand."""
    close = _close_up(truth)
    with Perception("body+hands") as perception:
        out = perception.process(close, (360, 360))
    assert not np.isfinite(out.pose_2d[:, 0]).any()
    assert perception.fallback_frames == 1
    assert out.hand_source.tolist() == [SRC_NONE, SRC_HANDS]            # the subject's right hand


def test_a_body_too_small_for_the_hands_cannot_hold_them():
    pose = _pose_with_wrists((100, 100), (140, 100))
    pose[[11, 12]] = [(95, 60, 0.9), (145, 60, 0.9)]                    # shoulders 50 px apart
    assert detect._cannot_hold(pose, [_hand_at((400, 300), RIGHT)]) is False   # a 20 px hand (wrist → knuckle)
    big = _hand_at((400, 300), RIGHT)
    big.landmarks[:, :2] = big.landmarks[0, :2] + (big.landmarks[:, :2] - big.landmarks[0, :2]) * 4
    assert detect._cannot_hold(pose, [big]) is True                     # an 80 px hand
    pose[[11, 12], 2] = 0.1                                              # shoulders not seen: no body to hold them
    assert detect._cannot_hold(pose, [_hand_at((400, 300), RIGHT)]) is True


def _close_up(truth):
    """A crop around the waving hand (the subject's right), scaled up: the hand and a bit of forearm, no head."""
    index, rgb = list(frames(36))[35]
    cx, cy = truth[index, RIGHT]
    x0, y0 = int(max(cx - 70, 0)), int(max(cy - 110, 0))
    return np.ascontiguousarray(cv2.resize(rgb[y0:y0 + 130, x0:x0 + 130], (360, 360)))


def test_a_phantom_body_in_a_close_up_of_a_hand_is_dropped(truth):
    """The pose network sometimes finds a small body in a close-up of hands (the benchmark's pinch_ok_closeup: 16
    of 90 frames, 1000 px off). A body that holds no hand, with a hand in the frame far bigger than it can hold,
    is dropped and the frame is read like one without a body; a body whose (unsure) wrist sits on the hand keeps
    it."""
    close = _close_up(truth)
    with Perception("body+hands") as perception:
        phantom = detect.empty_frame()
        phantom.pose_2d[:] = _pose_with_wrists((300, 40), (320, 40))
        phantom.pose_2d[[11, 12]] = [(300, 20, 0.6), (320, 20, 0.6)]   # a body 20 px wide in the corner
        phantom.pose_world[:] = 0.0
        assert perception._doubt(phantom.pose_2d, [LEFT, RIGHT], (360, 360))   # its hand region is a close-up's
        perception._whole_frame(close, (360, 360), phantom, [LEFT, RIGHT])
        assert perception.phantom_bodies == 1
        assert not np.isfinite(phantom.pose_2d).any() and not np.isfinite(phantom.pose_world).any()
        assert phantom.hand_source.tolist() == [SRC_NONE, SRC_HANDS]

        hand = perception._hands.process(close, (360, 360))[0]
        holder = detect.empty_frame()
        holder.pose_2d[:] = _pose_with_wrists(hand.landmarks[0, :2] + 80, hand.landmarks[0, :2])
        holder.pose_2d[detect.POSE_WRIST[RIGHT], 2] = 0.3                  # unsure: the wrist-crop rescue skips it
        holder.pose_2d[[11, 12]] = [(40, 300, 0.9), (340, 300, 0.9)]
        perception._whole_frame(close, (360, 360), holder, [LEFT, RIGHT])
        assert perception.phantom_bodies == 1                              # unchanged: this body holds the hand
        assert np.isfinite(holder.pose_2d[detect.POSE_WRIST[RIGHT]]).all()   # the body stays
        assert holder.hand_source[RIGHT] == SRC_HANDS
        assert np.linalg.norm(holder.hands_2d[RIGHT, 0, :2] - hand.landmarks[0, :2]) < 1.0


@pytest.mark.skipif(not (FOOTAGE / "vid01_hand_single_closeup.mp4").exists(), reason="../shared/footage absent")
def test_hands_mode_on_a_real_single_hand_close_up():
    """vid01: one hand held out toward the camera; Holistic found it in 2% of the frames (no body in view)."""
    seen = 0
    with Perception("hands") as perception:
        for index, _ts, bgr in iter_frames(FOOTAGE / "vid01_hand_single_closeup.mp4", 0, 30):
            out = perception.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (bgr.shape[1], bgr.shape[0]))
            seen += int((out.hand_source == SRC_HANDS).sum() == 1)
    assert seen >= 28


@pytest.mark.skipif(not (FOOTAGE / "vid02_upper_body_thumbs_up_gesture.mp4").exists(),
                    reason="../shared/footage absent")
def test_body_and_hands_mode_reports_no_hand_that_is_not_there():
    """vid02: her right hand holds a thumbs-up in front of the camera, her left arm stays below the picture
    (bench/footage_hands.json). Holistic reports a 'left hand' on the right fist in 47% of the frames; ours must
    not (measured: 1 frame of 195), and must keep the right hand (measured: 100% of its visible frames)."""
    truth = json.loads((ROOT / "bench" / "footage_hands.json").read_text())["clips"]
    clip = truth["vid02_upper_body_thumbs_up_gesture.mp4"]
    from bench.perception import footage_scores
    hands = []
    with Perception("body+hands") as perception:
        for _index, _ts, bgr in iter_frames(FOOTAGE / "vid02_upper_body_thumbs_up_gesture.mp4", 0, 120):
            hands.append(perception.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (bgr.shape[1], bgr.shape[0])
                                            ).hands_2d)
    scores = footage_scores(np.stack(hands), clip, 1280)
    assert scores["false_L"] <= 2, scores
    assert scores["coverage_R"] >= 0.95 and scores["false_R"] == 0, scores


@pytest.mark.skipif(not (FOOTAGE / "vid01_hand_single_closeup.mp4").exists(), reason="../shared/footage absent")
def test_body_and_hands_mode_keeps_the_hand_of_a_real_close_up():
    """vid01: one hand held out toward the camera; the pose network finds a small phantom body in most frames, which
    must be dropped so that the hand is read (measured: 99% of the frames; a Holistic back-off tried in session 20
    let the phantoms through and kept 76%)."""
    truth = json.loads((ROOT / "bench" / "footage_hands.json").read_text())["clips"]["vid01_hand_single_closeup.mp4"]
    from bench.perception import footage_scores
    clip = FOOTAGE / "vid01_hand_single_closeup.mp4"
    with Perception("body+hands") as perception:
        outs = [lm for _, lm in perception.stream((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (bgr.shape[1], bgr.shape[0]))
                                                  for _, _, bgr in iter_frames(clip, 0, None))]
        perception.finish(outs)
    scores = footage_scores(np.stack([out.hands_2d for out in outs]), truth, cv2.VideoCapture(str(clip)).get(3))
    assert scores["coverage_R"] >= 0.95 and scores["false_R"] == 0, scores


def test_capture_cli_hands_mode_writes_a_hands_only_take(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "inference_server", "capture", str(SAMPLE), "--out", str(tmp_path),
                           "--mode", "hands", "--frames", "0:12", "--json", "--no-overlay", "--no-cache"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(summary["take"]) as take:
        names = [str(n) for n in take["bone_names"]]
        assert (take["hand_source"] == SRC_HANDS).any(axis=0).all()
        assert take["valid"].all()
        fitted = take["bone_fitted"]
        assert fitted[:, names.index("finger2-1.L")].any() and not fitted[:, names.index("upperleg01.L")].any()
        rest = np.abs(take["local_rotations_aa"][:, names.index("upperarm01.L")]).max()
        assert rest < 1e-6                                              # the body stays at rest
    meta = json.loads(Path(summary["sidecar"]).read_text())
    assert meta["hands_only"] is True and meta["options"]["mode"] == "hands"


def test_body_mode_gives_the_pose_and_no_hands(truth):
    with Perception("body") as perception:
        for index, rgb in frames(10, step=5):
            out = perception.process(rgb, (rgb.shape[1], rgb.shape[0]))
            assert np.isfinite(out.pose_world).all() and (out.hand_source == SRC_NONE).all()
            for side in (LEFT, RIGHT):                                  # pose wrists on the true wrists
                assert np.linalg.norm(out.pose_2d[detect.POSE_WRIST[side], :2] - truth[index, side]) < 40.0


def test_body_and_hands_mode_swaps_back_a_body_the_pose_network_mirrored():
    """The sample clip's frames, a run of them mirrored as the pose network does on a front/back-ambiguous
    silhouette (every left/right label swapped, hands with them): `finish` finds the run from the hands' chirality
    and swaps it back; an untouched clip stays as it is."""
    from inference_server.sides import unmirror

    with Perception("body+hands") as perception:
        found = [perception.process(rgb, (rgb.shape[1], rgb.shape[0])) for _, rgb in frames(60)]
        clean = [(f.pose_2d.copy(), f.hands_2d.copy()) for f in found]
        perception.finish(found)
        assert perception.unmirrored == 0
        for t in range(25, 41):
            unmirror(found[t])
        perception.finish(found)
    assert perception.unmirrored == 16
    for f, (pose, hands) in zip(found, clean):
        assert np.array_equal(f.pose_2d, pose, equal_nan=True) and np.array_equal(f.hands_2d, hands, equal_nan=True)
