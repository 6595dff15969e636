"""Offline multi-object tracking (inference_server/tracking.py) on synthetic clips with known identities.

Every scene is built from "actors": functions of the frame index that return a Detection (or None when the actor is
not detected). Detections of a frame are shuffled, so the list order never carries identity. Ground-truth ids run
parallel to the detections (−1 for a false detection).
"""
from __future__ import annotations

import itertools
from typing import Callable, Optional

import numpy as np
import pytest

from inference_server import tracking as trk
from inference_server.tracking import Detection, track

W, H = 1280, 720
Actor = Callable[[int], Optional[Detection]]

# MediaPipe pose order (33), in units of body height, origin at mid-height, y down; the subject's left at +x.
BODY = np.array([
    (0.0, -0.42), (0.01, -0.44), (0.02, -0.44), (0.03, -0.44), (-0.01, -0.44), (-0.02, -0.44), (-0.03, -0.44),
    (0.05, -0.43), (-0.05, -0.43), (0.015, -0.40), (-0.015, -0.40),
    (0.12, -0.32), (-0.12, -0.32), (0.15, -0.15), (-0.15, -0.15), (0.16, 0.0), (-0.16, 0.0),
    (0.17, 0.04), (-0.17, 0.04), (0.16, 0.05), (-0.16, 0.05), (0.15, 0.03), (-0.15, 0.03),
    (0.07, 0.02), (-0.07, 0.02), (0.08, 0.25), (-0.08, 0.25), (0.08, 0.46), (-0.08, 0.46),
    (0.07, 0.48), (-0.07, 0.48), (0.11, 0.49), (-0.11, 0.49)])          # (33, 2)
SWING = {13: 1, 15: 1, 17: 1, 19: 1, 21: 1, 14: -1, 16: -1, 18: -1, 20: -1, 22: -1,       # arms swing in antiphase
         25: -1, 27: -1, 29: -1, 31: -1, 26: 1, 28: 1, 30: 1, 32: 1}                      # with the legs


def _hand_template() -> np.ndarray:
    """21 MediaPipe hand keypoints of a RIGHT hand (palm to camera), units of hand size, wrist at the origin."""
    pts = [(0.0, 0.0)]
    for angle, lengths in ((-65, (0.2, 0.35, 0.48, 0.58)), (-20, (0.45, 0.65, 0.78, 0.88)),
                           (0, (0.45, 0.68, 0.83, 0.95)), (18, (0.43, 0.64, 0.77, 0.87)),
                           (38, (0.4, 0.55, 0.65, 0.74))):
        a = np.radians(angle)
        pts += [(r * np.sin(a), -r * np.cos(a)) for r in lengths]
    return np.array(pts)                                                    # (21, 2)


HAND_RIGHT = _hand_template()
HAND_LEFT = HAND_RIGHT * [-1.0, 1.0]                                       # mirror image


def person(rng: np.random.Generator, path: Callable[[int], tuple[float, float]], height: float,
           present: Callable[[int], bool] = lambda t: True, noise: float = 1.5, kp_drop: float = 0.0,
           det_drop: float = 0.0) -> Actor:
    """A walking person whose body centre follows ``path(t)``."""
    def at(t: int) -> Optional[Detection]:
        if not present(t) or rng.random() < det_drop:
            return None
        shape = BODY.copy()
        swing = 0.05 * np.sin(0.4 * t)
        for k, sign in SWING.items():
            shape[k, 0] += sign * swing
        xy = np.asarray(path(t)) + height * shape + rng.normal(0, noise, (33, 2))
        conf = rng.uniform(0.6, 1.0, 33)
        kp = np.column_stack([xy, conf])
        kp[rng.random(33) < kp_drop] = np.nan
        return Detection(kp, score=float(rng.uniform(0.7, 1.0)))
    return at


def hand(rng: np.random.Generator, path: Callable[[int], tuple[float, float]], side: str, size: float = 90.0,
         label: Callable[[int], str] | None = None, noise: float = 1.0) -> Actor:
    template = HAND_LEFT if side == "left" else HAND_RIGHT

    def at(t: int) -> Optional[Detection]:
        a = 0.15 * np.sin(0.2 * t)                                         # the hand turns a little
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        xy = np.asarray(path(t)) + size * template @ rot.T + rng.normal(0, noise, (21, 2))
        kp = np.column_stack([xy, rng.uniform(0.7, 1.0, 21)])
        return Detection(kp, score=0.9, label=label(t) if label else side)
    return at


def scene(rng: np.random.Generator, n_frames: int, actors: list[tuple[int, Actor]]
          ) -> tuple[list[list[Detection]], list[list[int]]]:
    """Frames of shuffled detections and the parallel ground-truth ids (−1: false detection)."""
    frames, truth = [], []
    for t in range(n_frames):
        items = [(gt, det) for gt, actor in actors if (det := actor(t)) is not None]
        order = rng.permutation(len(items))
        frames.append([items[i][1] for i in order])
        truth.append([items[i][0] for i in order])
    return frames, truth


def id_switches(ids: list[list[int]], truth: list[list[int]]) -> int:
    """Times a true track's tracked id changes between consecutive detections of it (−1 ids skipped)."""
    seqs: dict[int, list[int]] = {}
    for frame_ids, frame_truth in zip(ids, truth):
        for got, gt in zip(frame_ids, frame_truth):
            if gt >= 0 and got >= 0:
                seqs.setdefault(gt, []).append(got)
    return sum(sum(a != b for a, b in zip(s, s[1:])) for s in seqs.values())


def ids_of(ids: list[list[int]], truth: list[list[int]]) -> dict[int, set[int]]:
    """True id → the set of tracked ids its detections got (−1 included)."""
    out: dict[int, set[int]] = {}
    for frame_ids, frame_truth in zip(ids, truth):
        for got, gt in zip(frame_ids, frame_truth):
            out.setdefault(gt, set()).add(got)
    return out


def one_id_each(mapping: dict[int, set[int]]) -> bool:
    """Every true track got exactly one id (never −1), and no two true tracks share it."""
    true = [ids for gt, ids in mapping.items() if gt >= 0]
    return all(len(ids) == 1 and -1 not in ids for ids in true) and len(set().union(*true)) == len(true)


def walk(x0: float, y0: float, vx: float, vy: float = 0.0) -> Callable[[int], tuple[float, float]]:
    return lambda t: (x0 + vx * t, y0 + vy * t)


# ----------------------------------------------------------------------------------------------------------------


def test_helper_counts_switches():
    truth = [[0, 1], [0, 1], [1, 0], [0]]
    assert id_switches([[5, 6], [5, 6], [6, 5], [5]], truth) == 0
    assert id_switches([[5, 6], [6, 5], [6, 5], [5]], truth) == 4          # swapped for two frames, then back
    assert id_switches([[5, -1], [5, 6], [6, 5], [7]], truth) == 1


def test_assignment_matches_brute_force():
    rng = np.random.default_rng(1)
    for n, m in [(1, 1), (3, 3), (4, 2), (2, 5), (5, 5), (6, 4)]:
        for _ in range(5):
            cost = rng.integers(0, 6, (n, m)).astype(float) + rng.random((n, m)) * 0.1
            rows, cols = trk._hungarian(cost)
            assert len(rows) == min(n, m) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
            if n <= m:
                best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
            else:
                best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
            assert cost[rows, cols].sum() == pytest.approx(best)


def test_gated_assignment_leaves_costly_pairs_unmatched():
    cost = np.array([[0.1, 0.9], [0.2, np.inf]])
    assert trk._gated_assignment(cost, gate=0.5) == [(0, 0)]               # row 1 only fits column 0, taken
    assert trk._gated_assignment(np.zeros((0, 3)), gate=0.5) == []


def test_two_people_crossing_keep_their_ids():
    rng = np.random.default_rng(2)
    # Two people of (nearly) the same build heading towards each other at 10 px/frame: the boxes (~130 px wide)
    # overlap for ~13 frames around frame 40, and the person behind is not detected on the 4 frames of fullest
    # overlap. Shape cannot tell them apart; only their motion can.
    a = person(rng, walk(240, 360, 10), 385)
    b = person(rng, walk(1040, 366, -10), 380, present=lambda t: not 38 <= t < 42)
    frames, truth = scene(rng, 80, [(0, a), (1, b)])
    overlapping = 0
    for dets in frames:
        boxes = [np.r_[np.nanmin(d.keypoints[:, :2], 0), np.nanmax(d.keypoints[:, :2], 0)] for d in dets]
        if len(boxes) == 2 and trk._iou(boxes[0], boxes[1]) > 0:
            overlapping += 1
    assert overlapping >= 8                                                 # the scene really is a crossing
    result = track(frames, kind="body", image_size=(W, H))
    assert id_switches(result.ids, truth) == 0
    mapping = ids_of(result.ids, truth)
    assert one_id_each(mapping) and sorted(result.tracks) == [0, 1]
    # Both start on frame 0, so which one is track 0 depends on the (shuffled) detection order of that frame.
    assert [result.tracks[next(iter(mapping[g]))].n_frames for g in (0, 1)] == [80, 76]


def test_two_people_crossing_behind_an_occluder_keep_their_ids_by_motion():
    rng = np.random.default_rng(16)
    # Neither is detected on the 7 frames around the crossing point (x = 640 at frame 40): when they come out,
    # each is nearer the other's last position, so only the velocities can pair them up again.
    hidden = lambda t: not 37 <= t < 44                                   # noqa: E731
    a = person(rng, walk(240, 360, 10), 385, present=hidden)
    b = person(rng, walk(1040, 366, -10), 380, present=hidden)
    frames, truth = scene(rng, 80, [(0, a), (1, b)])
    result = track(frames, kind="body", image_size=(W, H))
    assert id_switches(result.ids, truth) == 0 and one_id_each(ids_of(result.ids, truth))


def test_occlusion_of_ten_frames_keeps_the_id():
    rng = np.random.default_rng(3)
    frames, truth = scene(rng, 60, [(0, person(rng, walk(200, 360, 8, 1), 380, present=lambda t: not 20 <= t < 30))])
    assert all(not frames[t] for t in range(20, 30))
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {0: {0}}
    info = result.tracks[0]
    assert (info.first, info.last, info.n_frames) == (0, 59, 50)
    assert info.label is None and 0.7 <= info.mean_score <= 1.0


def test_occlusion_longer_than_the_online_gap_is_stitched_offline():
    rng = np.random.default_rng(4)
    frames, truth = scene(rng, 90, [(0, person(rng, walk(150, 360, 9), 380, present=lambda t: not 25 <= t < 55))])
    result = track(frames, kind="body", image_size=(W, H), max_gap=15)      # 30 missing frames > max_gap
    assert ids_of(result.ids, truth) == {0: {0}}
    # Without the offline pass the same clip gives two tracks (so the stitching is what links them).
    unstitched = track(frames, kind="body", image_size=(W, H), max_gap=15, max_stitch_gap=0)
    assert ids_of(unstitched.ids, truth) == {0: {0, 1}}


def test_person_back_from_a_long_occlusion_with_the_legs_hidden_is_stitched():
    rng = np.random.default_rng(17)
    walker = person(rng, walk(150, 360, 9), 380, present=lambda t: not 25 <= t < 55)

    def legs_hidden_after(t: int) -> Optional[Detection]:
        det = walker(t)
        if det is not None and t >= 55:
            det.keypoints[23:] = np.nan                 # behind a desk: hips, legs and feet unseen from now on
        return det

    frames, truth = scene(rng, 90, [(0, legs_hidden_after)])
    result = track(frames, kind="body", image_size=(W, H), max_gap=15)
    assert ids_of(result.ids, truth) == {0: {0}}


def test_stitching_refuses_a_path_that_does_not_continue():
    rng = np.random.default_rng(5)
    # Same gap, but the person reappears 300 px off the extrapolated path, walking back: a different person.
    first = person(rng, walk(150, 360, 9), 380, present=lambda t: t < 25)
    second = person(rng, walk(150 + 9 * 55 + 300 + 9 * 55, 360, -9), 380, present=lambda t: t >= 55)
    frames, truth = scene(rng, 90, [(0, first), (1, second)])
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {0: {0}, 1: {1}}


def test_person_leaving_and_another_entering_elsewhere_get_new_ids():
    rng = np.random.default_rng(6)
    leaving = person(rng, walk(900, 360, 12), 380, present=lambda t: t < 30)          # exits on the right
    entering = person(rng, walk(-60, 400, 10), 360, present=lambda t: t >= 33)        # enters on the left
    frames, truth = scene(rng, 70, [(0, leaving), (1, entering)])
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {0: {0}, 1: {1}}
    assert (result.tracks[0].last, result.tracks[1].first) == (29, 33)


def test_sparse_detections_before_a_steady_track_join_it():
    rng = np.random.default_rng(15)
    # Detected only every third frame at first (each detection a one-frame fragment online), steadily from frame 12.
    frames, truth = scene(rng, 40, [(0, person(rng, walk(200, 360, 7), 380, present=lambda t: t >= 12 or t % 3 == 0))])
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {0: {0}}
    assert result.tracks[0].first == 0 and result.tracks[0].n_frames == 32


def test_spurious_two_frame_detection_is_dropped():
    rng = np.random.default_rng(7)
    real = person(rng, walk(200, 360, 6), 380)
    ghost_xy = np.column_stack([rng.uniform(900, 1100, 33), rng.uniform(100, 500, 33), np.full(33, 0.5)])
    ghost: Actor = lambda t: Detection(ghost_xy + [t, 0, 0], score=0.4) if t in (30, 31) else None
    frames, truth = scene(rng, 60, [(0, real), (-1, ghost)])
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {0: {0}, -1: {-1}}
    assert list(result.tracks) == [0]


def test_spurious_detection_on_the_path_during_a_gap_does_not_join_the_track():
    rng = np.random.default_rng(8)
    real = person(rng, walk(200, 360, 6), 380, present=lambda t: not 20 <= t < 28)
    # Junk keypoints scattered over the box where the hidden person is (x ≈ 340, y 170..550 on frames 23-24):
    # the boxes overlap, the keypoints do not fit a person.
    ghost: Actor = lambda t: (Detection(np.column_stack([rng.uniform(280, 400, 33), rng.uniform(170, 550, 33),
                                                         np.full(33, 0.5)]), score=0.3) if t in (23, 24) else None)
    frames, truth = scene(rng, 50, [(0, real), (-1, ghost)])
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {0: {0}, -1: {-1}}


def test_hands_crossing_follow_motion_when_labels_flip():
    rng = np.random.default_rng(9)
    flipped = {28, 30, 31}                                                  # around the crossing at frame ~30
    other = {"left": "right", "right": "left"}

    def label_of(side: str) -> Callable[[int], str]:
        return lambda t: other[side] if t in flipped else side

    # The subject's left hand (image right when facing the camera) moves left, the right hand moves right.
    left = hand(rng, walk(940, 420, -10), "left", label=label_of("left"))
    right = hand(rng, walk(340, 440, 10), "right", label=label_of("right"))
    frames, truth = scene(rng, 60, [(0, left), (1, right)])
    result = track(frames, kind="hand", image_size=(W, H))
    assert id_switches(result.ids, truth) == 0
    mapping = ids_of(result.ids, truth)
    assert one_id_each(mapping)
    assert result.tracks[mapping[0].pop()].label == "left"
    assert result.tracks[mapping[1].pop()].label == "right"


def test_hand_labels_alone_would_swap_but_motion_wins():
    """Labels wrong for a long stretch (but a minority of the clip): ids still follow the motion."""
    rng = np.random.default_rng(10)
    wrong = set(range(20, 32))
    other = {"left": "right", "right": "left"}
    left = hand(rng, walk(900, 420, -8), "left", label=lambda t: other["left"] if t in wrong else "left")
    right = hand(rng, walk(380, 430, 8), "right", label=lambda t: other["right"] if t in wrong else "right")
    frames, truth = scene(rng, 64, [(0, left), (1, right)])
    result = track(frames, kind="hand", image_size=(W, H))
    assert id_switches(result.ids, truth) == 0
    mapping = ids_of(result.ids, truth)
    assert one_id_each(mapping)
    assert result.tracks[next(iter(mapping[0]))].label == "left"
    assert result.tracks[next(iter(mapping[1]))].label == "right"


def test_hand_waving_fast_in_circles_with_dropouts_keeps_one_id():
    rng = np.random.default_rng(18)
    # 150 px circles once every 36 frames: 26 px/frame for a hand ~45 px across, turning 10° per frame; 10 % of
    # its detections are missing (a fast hand blurs). Another hand rests nearby.
    w = 2 * np.pi / 36
    waving = hand(rng, lambda t: (640 + 150 * np.cos(w * t), 360 + 150 * np.sin(w * t)), "right", size=60, noise=1.5)
    flaky: Actor = lambda t: None if rng.random() < 0.1 else waving(t)
    resting = hand(rng, walk(300, 500, 0.5), "left", size=60)
    frames, truth = scene(rng, 120, [(0, flaky), (1, resting)])
    result = track(frames, kind="hand", image_size=(W, H))
    assert one_id_each(ids_of(result.ids, truth)) and len(result.tracks) == 2


def test_three_people_with_noise_and_dropouts():
    rng = np.random.default_rng(11)
    paths = [lambda t: (640 + 420 * np.sin(0.03 * t), 360 + 20 * np.sin(0.05 * t)),
             lambda t: (640 + 420 * np.sin(0.03 * t + 2.2), 380),
             lambda t: (300 + 3 * t, 340 + 30 * np.cos(0.04 * t))]
    actors = [(g, person(rng, p, h, noise=3.0, kp_drop=0.1, det_drop=0.1))
              for g, (p, h) in enumerate(zip(paths, (400, 360, 330)))]
    frames, truth = scene(rng, 200, actors)
    n_dets = sum(map(len, frames))
    assert 0.85 * 600 < n_dets < 0.95 * 600                                 # ~10 % of detections dropped
    result = track(frames, kind="body", image_size=(W, H))
    assert id_switches(result.ids, truth) == 0
    assert one_id_each(ids_of(result.ids, truth)) and len(result.tracks) == 3


def test_hand_parent_maps_to_the_body_track():
    rng = np.random.default_rng(12)
    frames: list[list[Detection]] = []
    body_ids: list[list[int]] = []
    truth: list[list[int]] = []
    for t in range(30):
        # Two people (body track ids 0 and 1) listed in a random order each frame; each has a right hand.
        order = rng.permutation(2)
        body_ids.append([int(o) for o in order])
        dets, gts = [], []
        for person_id, x in ((0, 300), (1, 900)):
            det = hand(rng, walk(x, 400, 2), "right")(t)
            assert det is not None
            det.parent = int(np.nonzero(order == person_id)[0][0])
            dets.append(det)
            gts.append(person_id)
        frames.append(dets)
        truth.append(gts)
    result = track(frames, kind="hand", image_size=(W, H), body_ids=body_ids)
    mapping = ids_of(result.ids, truth)
    for person_id in (0, 1):
        (tid,) = mapping[person_id]
        assert result.tracks[tid].parent == person_id and result.tracks[tid].label == "right"


def test_empty_inputs():
    empty = track([], kind="body", image_size=(W, H))
    assert empty.ids == [] and empty.tracks == {}
    blank = track([[], [], []], kind="hand", image_size=(W, H))
    assert blank.ids == [[], [], []] and blank.tracks == {}
    # A detection with nothing seen and no box is unusable: −1, and it does not disturb the frame's others.
    rng = np.random.default_rng(13)
    frames, truth = scene(rng, 12, [(0, person(rng, walk(300, 360, 5), 380))])
    frames[5].append(Detection(np.full((33, 3), np.nan), score=0.9))
    result = track(frames, kind="body", image_size=(W, H))
    assert result.ids[5][-1] == -1 and all(ids[:1] == [0] for ids in result.ids)


def test_box_only_detections_are_tracked():
    frames = []
    for t in range(20):
        a = Detection(np.full((21, 3), np.nan), 0.8, box=np.array([100 + 5 * t, 100, 180 + 5 * t, 190]))
        b = Detection(np.full((21, 3), np.nan), 0.8, box=np.array([800 - 5 * t, 300, 880 - 5 * t, 390]))
        frames.append([a, b] if t % 2 else [b, a])
    result = track(frames, kind="hand", image_size=(W, H))
    # Frame 0 lists b first, so b is track 0 and a track 1; the list order flips every frame.
    assert [ids if t % 2 else ids[::-1] for t, ids in enumerate(result.ids)] == [[1, 0]] * 20


def test_first_appearance_order_and_min_length():
    rng = np.random.default_rng(14)
    late = person(rng, walk(900, 360, -4), 380, present=lambda t: t >= 10)
    early = person(rng, walk(200, 360, 4), 380)
    short = person(rng, walk(600, 200, 0), 300, present=lambda t: 40 <= t < 44)     # 4 frames < min_length 5
    frames, truth = scene(rng, 50, [(0, late), (1, early), (2, short)])
    result = track(frames, kind="body", image_size=(W, H))
    assert ids_of(result.ids, truth) == {1: {0}, 0: {1}, 2: {-1}}
    kept = track(frames, kind="body", image_size=(W, H), min_length=4)
    assert ids_of(kept.ids, truth)[2] == {2}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        track([], kind="face", image_size=(W, H))
    with pytest.raises(ValueError, match="image_size"):
        track([], kind="body", image_size=(0, H))
    with pytest.raises(ValueError, match="frame 0, detection 0"):
        track([[Detection(np.zeros((33, 2)), 0.9)]], kind="body", image_size=(W, H))
    with pytest.raises(ValueError, match="keypoints"):
        track([[Detection(np.ones((33, 3)), 0.9), Detection(np.ones((21, 3)), 0.9)]], kind="body",
              image_size=(W, H))
