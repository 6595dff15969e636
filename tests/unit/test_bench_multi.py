"""The benchmark's multi-person scenes: scene descriptions, framing of several people, and the tracking metrics
(bench.metrics.track_metrics, hand_track_metrics) on synthetic arrays with known answers. numpy only; no bpy."""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from bench import metrics as m
from bench.motions import MOTIONS
from bench.scenes import SUITES, Extra, Scene

T = 10


# ----------------------------------------------------------------------------------------------------------- scenes

def test_extra_people_are_validated_and_part_of_the_key():
    base = Scene("s", "wave")
    two = Scene("s", "wave", others=(Extra("count", offset_m=(1.3, 0.0)),))
    assert two.key() == Scene("s", "wave", others=(Extra("count", offset_m=(1.3, 0)),)).key()  # deterministic
    assert len({base.key(), two.key(), dataclasses.replace(two, others=(Extra("count", offset_m=(1.4, 0.0)),)).key(),
                dataclasses.replace(two, others=(Extra("count", offset_m=(1.3, 0.0), yaw_deg=10),)).key(),
                dataclasses.replace(two, others=(Extra("count", offset_m=(1.3, 0.0), framed=False),)).key()}) == 5
    assert "count" in two.describe() and "count" not in base.describe()
    assert isinstance(Scene("s", "wave", others=[Extra("count")]).others, tuple)  # hashable, frozen
    for bad in (dict(phenotype="giant"), dict(skin="green"), dict(offset_m=(1.0,)), dict(offset_m=(math.nan, 0.0)),
                dict(yaw_deg=math.inf), dict(time_offset_s=math.nan)):
        with pytest.raises(ValueError):
            Extra("count", **bad)
    with pytest.raises(ValueError):
        Extra("")
    with pytest.raises(ValueError):
        Scene("s", "wave", others=("count",))


def test_multi_suite():
    from bench.render import scene_frame_count

    scenes = {s.name: s for s in SUITES["multi"]}
    assert set(scenes) == {"multi_two_wave", "multi_cross", "multi_three"}
    assert [len(s.others) for s in scenes.values()] == [1, 1, 2]
    for s in scenes.values():
        assert s.fps == 25 and s.resolution in ((640, 480), (960, 540))
        assert 60 <= scene_frame_count(s) <= 80, s.name
        for person in (s, *s.others):
            assert person.motion in MOTIONS
    assert [o.framed for o in scenes["multi_three"].others] == [True, False]
    three = scenes["multi_three"]
    everyone = (three, *three.others)
    assert len({p.phenotype for p in everyone}) == 3 and len({p.skin for p in everyone}) == 3
    # The clip lasts until everyone's motion has ended, capped by max_frames.
    long = Scene("x", "wave", others=(Extra("walk", time_offset_s=2.0),))
    assert scene_frame_count(long) == round((2.0 + MOTIONS["walk"].duration_s) * 25)
    assert scene_frame_count(dataclasses.replace(long, max_frames=30)) == 30
    assert scene_frame_count(Scene("y", "wave")) == round(MOTIONS["wave"].duration_s * 25)


def _person(centre, framed=True, frames=4):
    """A posed-person stand-in: a 0.5 × 0.3 × 1.8 m box of points standing at `centre` (x, y)."""
    corners = np.array([[x, y, z] for x in (-0.25, 0.25) for y in (-0.15, 0.15) for z in (0.0, 1.8)])
    verts = np.repeat((corners + [centre[0], centre[1], 0.0])[None], frames, 0)
    verts = np.repeat(verts, 20, axis=1)  # the full framing keeps every 20th vertex
    poses = np.tile(np.eye(4), (frames, 1, 1, 1))
    poses[:, 0, :3, 3] = [centre[0], centre[1], 0.9]
    return {"vertices": verts.astype(np.float32), "bone_poses": poses, "names": ["root"], "framed": framed,
            "hand_points_world": np.zeros((frames, 2, 21, 3))}


@pytest.mark.parametrize("camera", ["static", "pan"])
def test_the_camera_frames_every_framed_person(camera):
    from bench.render import place_camera, project

    scene = Scene("s", "wave", camera=camera)
    people = [_person((0.0, 0.0)), _person((-1.5, 1.0)), _person((2.5, -0.5), framed=False)]
    K, R, t, _ = place_camera(scene, people)
    w, h = scene.resolution
    for i, p in enumerate(people):
        _, uv, z = project(p["vertices"].astype(float), K, R, t)
        inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
        if p["framed"]:
            assert inside.all(), i
        else:
            assert not inside.all()  # left out of the framing: this one is (partly) cut off
    # A single posed dict is person 0 alone, as before.
    np.testing.assert_allclose(place_camera(scene, people[0])[2], place_camera(scene, people[:1])[2])


# -------------------------------------------------------------------------------------------------- body tracking

def skeleton_2d(centre, seed, frames=T, scale=100.0):
    """(frames, 33, 2) pixels: a random 2D 'body' of about scale px around centre, drifting right 2 px a frame."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.5, 0.5, (33, 2)) * [0.5 * scale, scale] + centre
    return base[None] + np.arange(frames)[:, None, None] * [2.0, 0.0]


def two_people():
    truth = np.stack([skeleton_2d((150, 200), 0), skeleton_2d((450, 200), 1)])  # (2, T, 33, 2)
    visible = np.ones((2, T, 33), bool)
    return truth, visible


def as_pred(*tracks):
    """Tracks (T, 33, 2) → (N, T, 33, 3) with a score channel of 1."""
    arr = np.stack(tracks)
    return np.concatenate([arr, np.ones(arr.shape[:-1] + (1,))], -1)


def test_perfect_tracks():
    truth, visible = two_people()
    r = m.track_metrics(truth, visible, as_pred(truth[1], truth[0]))  # track ids need not follow person order
    assert r["mean_coverage"] == 1.0 and r["id_switches"] == 0 and r["false_track_frames"] == 0
    assert r["pred_track_frames"] == 2 * T and r["hidden_track_frames"] == 0
    assert [q["tracks"] for q in r["per_person"]] == [[1], [0]]
    np.testing.assert_array_equal(r["person_match"], [[1] * T, [0] * T])


def test_id_switch_dropout_and_false_track():
    truth, visible = two_people()
    a = truth[0].copy()
    a[5:] = np.nan  # track 0 follows person 0 until frame 4 ...
    b = np.full_like(a, np.nan)
    b[5:] = truth[0, 5:]  # ... then track 1 takes over: one id switch
    c = truth[1] + [3.0, -2.0]  # person 1, a few px off, dropped on frames 3-5
    c[3:6] = np.nan
    ghost = np.full_like(a, np.nan)
    ghost[2:6] = skeleton_2d((300, 50), 7)[2:6]  # a track on nobody for 4 frames
    r = m.track_metrics(truth, visible, as_pred(a, b, c, ghost))
    p0, p1 = r["per_person"]
    assert p0 == dict(frames_visible=T, frames_covered=T, coverage=1.0, id_switches=1, tracks=[0, 1])
    assert p1 == dict(frames_visible=T, frames_covered=T - 3, coverage=0.7, id_switches=0, tracks=[2])
    assert r["mean_coverage"] == pytest.approx(0.85)
    assert r["id_switches"] == 1
    assert r["false_track_frames"] == 4 and r["hidden_track_frames"] == 0
    assert r["pred_track_frames"] == 5 + 5 + 7 + 4


def test_switching_back_and_forth_counts_every_change():
    truth, visible = two_people()
    a, b = truth[0].copy(), truth[0].copy()
    a[[2, 3, 6]] = np.nan
    b[[0, 1, 4, 5, 7, 8, 9]] = np.nan  # person 0: tracks a a b b a a b a a a → 4 switches
    r = m.track_metrics(truth[:1], visible[:1], as_pred(a, b))
    assert r["per_person"][0]["id_switches"] == 4 and r["per_person"][0]["coverage"] == 1.0


def test_the_match_threshold_is_a_fifth_of_the_box_diagonal():
    truth, visible = two_people()
    diag = np.linalg.norm(truth[0].max(1) - truth[0].min(1), axis=-1)  # (T,)
    near = truth[0] + (0.19 * diag)[:, None, None] * [1.0, 0.0]
    far = truth[0] + (0.21 * diag)[:, None, None] * [1.0, 0.0]
    assert m.track_metrics(truth[:1], visible[:1], as_pred(near))["mean_coverage"] == 1.0
    r = m.track_metrics(truth[:1], visible[:1], as_pred(far))
    assert r["mean_coverage"] == 0.0 and r["false_track_frames"] == T


def test_two_tracks_on_one_person_the_closer_wins_the_other_is_false():
    truth, visible = two_people()
    r = m.track_metrics(truth[:1], visible[:1], as_pred(truth[0] + 5.0, truth[0] + 1.0))
    assert r["per_person"][0]["tracks"] == [1] and r["false_track_frames"] == T


def test_hidden_person_a_track_carried_through_the_occlusion_is_not_false():
    truth, visible = two_people()
    visible[1, 3:6] = False  # person 1 hidden behind something on frames 3-5
    visible[1, 6, 5:] = False  # and only 5 markers seen on frame 6: under min_visible
    r = m.track_metrics(truth, visible, as_pred(truth[0], truth[1]))
    p1 = r["per_person"][1]
    assert p1["frames_visible"] == T - 4 and p1["coverage"] == 1.0 and p1["id_switches"] == 0
    assert r["hidden_track_frames"] == 3 and r["false_track_frames"] == 0  # frame 6 still matches (5 markers ≥ 3)
    np.testing.assert_array_equal(r["person_match"][1], [1, 1, 1, -1, -1, -1, 1, 1, 1, 1])


def test_nobody_and_no_tracks():
    truth, visible = two_people()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = m.track_metrics(truth, visible, np.zeros((0, T, 33, 3)))
        assert r["mean_coverage"] == 0.0 and r["pred_track_frames"] == 0
        r = m.track_metrics(truth, np.zeros_like(visible), as_pred(truth[0]))
        assert math.isnan(r["mean_coverage"]) and r["hidden_track_frames"] == T and r["false_track_frames"] == 0


# ---------------------------------------------------------------------------------------------------- hand tracking

def hands_2d(centre, frames=T):
    """(frames, 2, 21, 2): a left and a right 'hand' 120 px apart, each a fan of points ~60 px long, palm up."""
    rng = np.random.default_rng(3)
    one = np.zeros((21, 2))
    one[1:] = rng.uniform([-25, -60], [25, -10], (20, 2))
    one[[9, 10, 11, 12]] = [[0, -25], [0, -40], [0, -50], [0, -60]]  # middle finger straight up: length 60 px
    pair = np.stack([one + [60, 0], one + [-60, 0]]) + centre  # left hand on the image's right (facing the camera)
    return np.repeat(pair[None], frames, 0)


def test_hand_coverage_swaps_and_dropouts():
    truth = np.stack([hands_2d((150, 300)), hands_2d((450, 300))])  # (P=2, T, 2, 21, 2)
    visible = np.ones(truth.shape[:-1], bool)
    match = np.array([[0] * T, [1] * T])
    pred = truth.copy()
    pred[0, 2:5] = pred[0, 2:5, ::-1]  # person 0: left and right swapped on frames 2-4
    pred[1, 7:, 0] = np.nan  # person 1: left hand lost from frame 7
    pred[1, :, 1] += [20.0, 0.0]  # person 1: right hand 20 px off (< half its size): still found
    r = m.hand_track_metrics(truth, visible, np.concatenate([pred, np.ones(pred.shape[:-1] + (1,))], -1), match)
    (p0, p1) = r["per_person"]
    assert p0["L"] == dict(frames_visible=T, frames_found=T - 3, coverage=0.7, swap_frames=3)
    assert p0["R"] == dict(frames_visible=T, frames_found=T - 3, coverage=0.7, swap_frames=3)
    assert p1["L"] == dict(frames_visible=T, frames_found=7, coverage=0.7, swap_frames=0)
    assert p1["R"] == dict(frames_visible=T, frames_found=T, coverage=1.0, swap_frames=0)
    assert r["swap_frames"] == 6 and r["frames_visible"] == 4 * T and r["frames_found"] == 3 * 7 + T
    assert r["mean_coverage"] == pytest.approx((0.7 * 3 + 1.0) / 4)

    # The hand size is max(wrist → middle fingertip polyline (60 px), the hand's box diagonal): a hand 0.45 of it
    # off is found, 0.55 of it off is not; a person matched to no track finds nothing.
    one = truth[1, 0, 1]
    size = max(60.0, float(np.linalg.norm(one.max(0) - one.min(0))))
    near = truth.copy()
    near[1, :, 1] += [0.45 * size, 0.0]
    assert m.hand_track_metrics(truth, visible, near, match)["per_person"][1]["R"]["frames_found"] == T
    far = truth.copy()
    far[1, :, 1] += [0.55 * size, 0.0]
    match2 = match.copy()
    match2[0, :4] = -1
    r = m.hand_track_metrics(truth, visible, far, match2)
    assert r["per_person"][1]["R"]["frames_found"] == 0
    assert r["per_person"][0]["L"]["frames_found"] == T - 4
    # Hands with too few visible points are not scored.
    hidden = visible.copy()
    hidden[0, :, 0, :11] = False  # 10 of 21 left-hand points visible
    r = m.hand_track_metrics(truth, hidden, truth, match)
    assert r["per_person"][0]["L"]["frames_visible"] == 0 and math.isnan(r["per_person"][0]["L"]["coverage"])
    assert r["mean_coverage"] == 1.0


def test_hand_tracks_follow_the_person_match_from_track_metrics():
    body, visible = two_people()
    hands = np.stack([hands_2d((150, 300)), hands_2d((450, 300))])
    pred_body = as_pred(body[1], body[0])  # track 0 is person 1, track 1 is person 0
    pred_hands = hands[::-1].copy()
    match = m.track_metrics(body, visible, pred_body)["person_match"]
    r = m.hand_track_metrics(hands, np.ones(hands.shape[:-1], bool), pred_hands, match)
    assert r["mean_coverage"] == 1.0 and r["swap_frames"] == 0
