"""bench/metrics.py: every metric is zero on a perfect prediction, equals a known offset, and ignores missing data."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bench import metrics as m

T, N = 12, 8


def skeleton(seed: int = 0, frames: int = T, joints: int = N) -> np.ndarray:
    """A random non-planar 'skeleton' (frames, joints, 3) metres, in front of the camera, moving a little."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.3, size=(joints, 3)) + [0.0, 0.0, 3.0]
    return base[None] + rng.normal(scale=0.02, size=(frames, joints, 3))


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    Kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx


def quadratic_path(frames: int = T, joints: int = N) -> np.ndarray:
    """Smooth motion of constant acceleration: x_t = x0 + v t + a t² / 2 (no jitter)."""
    t = np.arange(frames, dtype=float)[:, None, None]
    x0 = skeleton(1, 1, joints)
    return x0 + 0.01 * t * np.array([1.0, 0.5, 0.0]) + 0.5 * 0.001 * t ** 2 * np.array([0.0, 1.0, 0.0])


# ------------------------------------------------------------------------------------------------- perfect and empty

def test_perfect_prediction_scores_zero_on_every_metric():
    true = quadratic_path()
    pred = true.copy()
    for align, root in (("none", None), ("root", 0), ("root", [1, 2]), ("procrustes", None)):
        assert np.allclose(m.joint_errors(pred, true, align, root), 0.0, atol=1e-9), align
    assert m.mpjpe(pred, true) == 0.0
    assert m.mpjpe(pred, true, align=3) == 0.0
    assert m.pa_mpjpe(pred, true) == pytest.approx(0.0, abs=1e-9)
    assert m.pck_3d(pred, true, 0.005) == 1.0
    px = m.project(true, np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]))
    assert m.error_2d(px, px) == 0.0
    assert m.error_2d_box_percent(px, px) == 0.0
    assert m.acceleration_error(pred, true) == pytest.approx(0.0, abs=1e-12)
    assert m.jitter(pred) == pytest.approx(0.0, abs=1e-12)  # GT of constant acceleration: a perfect pred has none
    feet = np.repeat(true[:1, :2], T, axis=0)  # planted feet
    assert m.foot_sliding(feet, np.ones((T, 2), bool)) == 0.0
    assert m.root_trajectory_error(true[:, 0] * 20, true[:, 0] * 20) == 0.0
    wrists = px[:, :2]
    assert m.handedness_swaps(wrists, wrists) == dict(swap_frames=0, frames_compared=T, swap_events=0)
    assert m.detection_rate(np.ones(T, bool)) == 1.0


def test_all_missing_gives_nan_without_warnings():
    nan3, nan2 = np.full((T, N, 3), np.nan), np.full((T, N, 2), np.nan)
    true3, true2 = skeleton(), skeleton()[..., :2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [m.mpjpe(nan3, true3), m.mpjpe(nan3, true3, align=0), m.pa_mpjpe(nan3, true3),
                   m.pck_3d(nan3, true3, 0.015), m.error_2d(nan2, true2), m.error_2d_box_percent(nan2, true2),
                   m.acceleration_error(nan3, true3), m.jitter(nan3),
                   m.foot_sliding(nan3[:, :2], np.ones((T, 2), bool)),
                   m.root_trajectory_error(nan3[:, 0], true3[:, 0] * 100),
                   m.detection_rate(np.ones(T, bool), np.zeros(T, bool))]
        swaps = m.handedness_swaps(nan2[:, :2], true2[:, :2])
    assert all(math.isnan(r) for r in results), results
    assert swaps == dict(swap_frames=0, frames_compared=0, swap_events=0)
    assert np.isnan(m.procrustes_align(nan3, true3)).all()


# --------------------------------------------------------------------------------------------------------- 3D joints

def test_translation_by_10mm():
    true = skeleton()
    pred = true + [0.006, 0.0, 0.008]  # |offset| = 10 mm
    assert m.mpjpe(pred, true) == pytest.approx(0.010)
    assert m.mpjpe(pred, true, align=0) == pytest.approx(0.0, abs=1e-12)
    assert m.mpjpe(pred, true, align=[2, 5]) == pytest.approx(0.0, abs=1e-12)
    assert m.pa_mpjpe(pred, true) == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(m.joint_errors(pred, true), 0.010)


def test_one_displaced_joint_root_aligned_is_d_over_n():
    true = skeleton()
    pred = true.copy()
    d = 0.03
    pred[:, 4] += [0.0, d, 0.0]
    assert m.mpjpe(pred, true, align=0) == pytest.approx(d / N)
    err = m.joint_errors(pred, true, "root", root=0)
    assert np.allclose(err[:, 4], d) and np.allclose(np.delete(err, 4, axis=1), 0.0)
    # a root made of two joints (the hips → pelvis): moving one hip by d moves the root by d/2
    pred2 = true.copy()
    pred2[:, 1] += [d, 0.0, 0.0]
    err2 = m.joint_errors(pred2, true, "root", root=[1, 2])
    assert np.allclose(err2[:, 0], d / 2) and np.allclose(err2[:, 1], d / 2)


def test_similarity_transform_is_removed_by_procrustes_only():
    true = skeleton(3)
    R = rotation([0.3, -1.0, 0.5], 0.9)
    pred = 1.3 * true @ R.T + [0.2, -0.1, 0.5]
    assert m.pa_mpjpe(pred, true) == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(m.procrustes_align(pred, true), true, atol=1e-9)
    assert m.mpjpe(pred, true) > 0.1
    assert m.mpjpe(pred, true, align=0) > 0.05


def test_procrustes_does_not_reflect():
    true = skeleton(4)
    pred = true * [-1.0, 1.0, 1.0]  # mirror image: no rotation maps it back
    assert m.pa_mpjpe(pred, true) > 0.02


@pytest.mark.parametrize("mirror", [1.0, -1.0])
def test_procrustes_is_the_least_squares_similarity(mirror):
    # noisy data (and a mirror image, where the reflection guard is active): no small change of rotation, scale or
    # translation of the aligned points lowers the sum of squared distances to the truth
    rng = np.random.default_rng(11)
    true = skeleton(9, frames=1)
    pred = (true + rng.normal(scale=0.05, size=true.shape)) * [mirror, 1.0, 1.0] * 0.7
    aligned = m.procrustes_align(pred, true)[0]
    sse = ((aligned - true[0]) ** 2).sum()
    c = aligned.mean(0)
    for eps in (1e-3, -1e-3):
        for axis in np.eye(3):
            assert (((aligned - c) @ rotation(axis, eps).T + c - true[0]) ** 2).sum() >= sse
            assert ((aligned + eps * axis - true[0]) ** 2).sum() >= sse
        assert (((aligned - c) * (1 + eps) + c - true[0]) ** 2).sum() >= sse


def test_procrustes_skips_missing_joints_and_needs_three():
    true = skeleton(5)
    R = rotation([1.0, 2.0, 0.0], 0.4)
    pred = 0.8 * true @ R.T + [0.1, 0.0, 0.0]
    pred[:, 2] = np.nan  # missing joint: excluded from every frame's fit
    pred[3, 3:] = np.nan  # frame 3 keeps joints 0, 1 only → < 3 → whole frame NaN
    aligned = m.procrustes_align(pred, true)
    assert np.isnan(aligned[:, 2]).all() and np.isnan(aligned[3]).all()
    keep = np.ones(T, bool)
    keep[3] = False
    assert np.allclose(np.delete(aligned[keep], 2, axis=1), np.delete(true[keep], 2, axis=1), atol=1e-9)
    assert m.pa_mpjpe(pred, true) == pytest.approx(0.0, abs=1e-9)


def test_pck_with_known_per_joint_errors():
    true = skeleton(frames=1, joints=4)
    pred = true + np.array([[0.001, 0.003, 0.010, 0.020]]).reshape(1, 4, 1) * [1.0, 0.0, 0.0]  # 1, 3, 10, 20 mm
    assert m.pck_3d(pred, true, 0.005, align="none") == 0.5
    assert m.pck_3d(pred, true, 0.015, align="none") == 0.75
    assert m.pck_3d(pred, true, 0.0005, align="none") == 0.0
    pred[0, 3] = np.nan  # a missing joint is not counted
    assert m.pck_3d(pred, true, 0.005, align="none") == pytest.approx(2 / 3)


def test_missing_frames_and_joints_are_ignored():
    rng = np.random.default_rng(7)
    true = skeleton(8)
    pred = true + rng.normal(scale=0.01, size=true.shape)
    pred_missing = pred.copy()
    pred_missing[[2, 6]] = np.nan
    keep = np.setdiff1d(np.arange(T), [2, 6])
    for f in (m.mpjpe, m.pa_mpjpe, lambda a, b: m.mpjpe(a, b, align=0),
              lambda a, b: m.pck_3d(a, b, 0.015), lambda a, b: m.error_2d(a[..., :2], b[..., :2]),
              lambda a, b: m.error_2d_box_percent(a[..., :2], b[..., :2])):
        assert f(pred_missing, true) == pytest.approx(f(pred[keep], true[keep]))
    # a NaN in the ground truth counts as missing as well, and single joints drop out of the mean
    true_missing = true.copy()
    true_missing[:, 5, 1] = np.nan
    assert m.mpjpe(pred, true_missing) == pytest.approx(m.mpjpe(np.delete(pred, 5, 1), np.delete(true, 5, 1)))


def test_bad_align_is_refused():
    with pytest.raises(ValueError):
        m.joint_errors(skeleton(), skeleton(), "root")
    with pytest.raises(ValueError):
        m.joint_errors(skeleton(), skeleton(), "pelvis")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------- 2D

def test_2d_offset_of_3_4_px():
    true = np.zeros((T, 3, 2))
    true[:, 1] = [60.0, 0.0]
    true[:, 2] = [0.0, 80.0]  # bounding box 60 × 80 → diagonal 100 px
    pred = true + [3.0, 4.0]
    assert m.error_2d(pred, true) == pytest.approx(5.0)
    assert m.error_2d_box_percent(pred, true) == pytest.approx(5.0 / 100.0 * 100)
    true[T // 2:] *= 2  # a subject twice the size in the second half: 2.5 %
    pred = true + [3.0, 4.0]
    assert m.error_2d_box_percent(pred, true) == pytest.approx((5.0 + 2.5) / 2)
    one_point = true.copy()
    one_point[0, 1:] = np.nan  # frame 0: a single true point has no box → left out (without a division warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert m.error_2d_box_percent(true + [3.0, 4.0], one_point) == pytest.approx(
            m.error_2d_box_percent(true[1:] + [3.0, 4.0], true[1:]))
    # the box is the true points' box, not the prediction's: one point off by (30, 40) → mean 50/3 px of a 200 px box
    pred = true[T // 2:].copy()
    pred[:, 2] += [30.0, 40.0]
    assert m.error_2d(pred, true[T // 2:]) == pytest.approx(50.0 / 3)
    assert m.error_2d_box_percent(pred, true[T // 2:]) == pytest.approx(50.0 / 3 / 200.0 * 100)


# ---------------------------------------------------------------------------------------------------------- temporal

def test_acceleration_error():
    true = quadratic_path()
    t = np.arange(T, dtype=float)[:, None, None]
    drift = true + 0.004 * t * [1.0, 0.0, 0.0]  # constant velocity: no acceleration error
    assert m.acceleration_error(drift, true) == pytest.approx(0.0, abs=1e-12)
    assert m.mpjpe(drift, true) > 0.01
    a = np.array([0.0, 0.003, 0.004])  # |a| = 5 mm/frame²
    accel = true + 0.5 * t ** 2 * a
    assert m.acceleration_error(accel, true) == pytest.approx(0.005)
    accel[5] = np.nan  # frames 4, 5, 6 lose their central difference; the rest still give |a|
    assert m.acceleration_error(accel, true) == pytest.approx(0.005)


def test_jitter_of_cubic_is_six_c():
    c = np.array([0.002, 0.0, 0.0])
    t = np.arange(T, dtype=float)[:, None, None]
    path = skeleton(2, 1) + c * t ** 3
    assert m.jitter(path) == pytest.approx(6 * 0.002)
    noisy = quadratic_path().copy()
    noisy[6, 0, 0] += 0.001  # a one-frame spike: Δ³ = ±1, ±3 mm around it, zero elsewhere
    assert m.jitter(noisy) == pytest.approx((0.001 + 0.003 + 0.003 + 0.001) / ((T - 3) * N))


def test_foot_sliding_counts_contact_pairs_only():
    t = np.arange(T, dtype=float)[:, None, None]
    feet = np.zeros((T, 2, 3)) + 0.002 * t * [1.0, 0.0, 0.0]  # both feet slide 2 mm/frame
    contact = np.zeros((T, 2), bool)
    contact[2:7, 0] = True  # 4 pairs on the left foot
    swing = np.ones(T, bool)
    swing[2:7] = False
    feet[swing] += t[swing] ** 2 * [0.5, 0.0, 0.0]  # fast swing outside contact (into and out of it): ignored
    assert m.foot_sliding(feet, contact) == pytest.approx(0.002)
    contact[9, 1] = True  # an isolated contact frame makes no pair
    assert m.foot_sliding(feet, contact) == pytest.approx(0.002)
    assert math.isnan(m.foot_sliding(feet, np.zeros((T, 2), bool)))


def test_root_trajectory_overshoot():
    t = np.arange(T, dtype=float)[:, None]
    true = [1.0, 2.0, 0.0] + 0.1 * t * [1.0, 0.0, 0.0]  # walks 1.1 m
    pred = [5.0, 0.0, 0.0] + 1.1 * (true - true[0])  # 10 % overshoot from another origin
    # error_t = 0.1 · 0.1 t, mean = 0.01 (T-1)/2, path = 0.1 (T-1) → 5 %
    assert m.root_trajectory_error(pred, true) == pytest.approx(5.0)
    pred_late = pred.copy()
    pred_late[:3] = np.nan  # p_0 / g_0 move to frame 3; error_t = 0.01 (t-3), mean 0.01 (T-4)/2
    assert m.root_trajectory_error(pred_late, true) == pytest.approx(100 * 0.01 * (T - 4) / 2 / (0.1 * (T - 1)))
    in_place = np.zeros((T, 3)) + 0.01 * np.sin(t)
    assert math.isnan(m.root_trajectory_error(in_place * 2, in_place))


# ------------------------------------------------------------------------------------------------- detection, hands

def test_handedness_swaps():
    true = np.zeros((T, 2, 2))
    true[:, 0] = [100.0, 200.0]  # left wrist
    true[:, 1] = [300.0, 200.0]  # right wrist
    pred = true + 5.0
    pred[3:6] = pred[3:6, ::-1]  # frames 3, 4, 5 swapped
    assert m.handedness_swaps(pred, true) == dict(swap_frames=3, frames_compared=T, swap_events=1)
    pred[9, 0] = np.nan  # one hand only: the right hand at the left wrist → swapped
    pred[9, 1] = true[9, 0]
    pred[10] = np.nan  # no hand: not compared, does not split a run
    pred[11] = true[11, ::-1]
    assert m.handedness_swaps(pred, true) == dict(swap_frames=5, frames_compared=T - 1, swap_events=2)
    pred[0] = pred[0, ::-1]  # a swapped first frame is an event of its own
    true[1, 1] = np.nan  # a missing true wrist: frame 1 not compared
    assert m.handedness_swaps(pred, true) == dict(swap_frames=6, frames_compared=T - 2, swap_events=3)
    # hands together: a 2 px difference is no swap with a 10 px margin
    close = true.copy()
    close[:, 1] = [104.0, 200.0]
    pred_close = close.copy()
    pred_close[:, 0] = [103.0, 200.0]  # 3 px from its own wrist, 1 px from the other
    pred_close[:, 1] = np.nan
    assert m.handedness_swaps(pred_close, close)["swap_frames"] == T
    assert m.handedness_swaps(pred_close, close, margin_px=10.0)["swap_frames"] == 0


def test_handedness_swaps_of_whole_hands_tell_crossed_wrists_apart():
    """Crossed hands whose wrists lie 12 px apart: a detector's wrist 9 px off makes a correct hand look swapped by
    the wrists alone; its whole hand (fingers pointing away from each other) does not."""
    k = np.arange(21, dtype=float)[:, None]
    true = np.zeros((T, 2, 21, 2))
    true[:, 0] = np.array([600.0, 500.0]) + k * [-5.0, -4.0]       # left hand: fingers up and to the image's left
    true[:, 1] = np.array([612.0, 500.0]) + k * [5.0, -4.0]        # right hand: up and to the right
    pred = true.copy()
    pred[:, 0, 0] += [9.0, 0.0]                                     # the left wrist 9 px toward the right one
    pred[:, 1] = np.nan                                             # the right hand not found
    assert m.handedness_swaps(pred[:, :, 0], true[:, :, 0])["swap_frames"] == T
    assert m.handedness_swaps(pred, true)["swap_frames"] == 0
    pred[:, 1] = true[:, 1]
    pred[2:4] = pred[2:4, ::-1]                                     # two frames really swapped
    pred[6, 1] = np.nan                                             # a hand not found: the other is still compared
    assert m.handedness_swaps(pred, true) == dict(swap_frames=2, frames_compared=T, swap_events=1)


def test_wrong_hands_counts_a_hand_reported_where_its_hand_is_not():
    k = np.arange(21, dtype=float)[:, None]
    true = np.zeros((T, 2, 21, 2))
    true[:, 0] = np.array([300.0, 500.0]) + k * [0.0, -5.0]        # hand length (points 0 → 9) 45 px
    true[:, 1] = np.array([600.0, 500.0]) + k * [0.0, -5.0]
    pred = true + 10.0                                              # 14 px off on average: right
    assert m.wrong_hands(pred, true) == 0
    pred[3, 1] = pred[3, 0]                                         # the left hand read on both sides
    pred[5] = pred[5, ::-1]                                         # a swap: both sides wrong
    pred[7, 0] = np.nan                                             # a hand not found is not a wrong one
    assert m.wrong_hands(pred, true) == 3
    assert m.wrong_hands(pred, true, max_apart=10.0) == 0
    # a hand pointing at the camera is short in the picture: its length as if it faced the camera decides
    pointing = true.copy()
    pointing[:, 0] = np.array([300.0, 500.0]) + k * [0.0, -0.3]    # 3 px long in the picture
    near = pointing + 10.0
    assert m.wrong_hands(near, pointing) == T                      # every left hand "wrong" by its 2D length
    assert m.wrong_hands(near, pointing, length_px=np.full((T, 2), 45.0)) == 0


def test_hand_length_px_is_the_length_facing_the_camera():
    cam = np.zeros((2, 2, 21, 3))
    cam[..., 2] = 2.0
    cam[0, :, 9] = [0.0, 0.09, 2.0]                                 # 9 cm, facing the camera at 2 m
    cam[1, :, 9] = [0.0, 0.0, 2.09]                                 # 9 cm, pointing away from it
    np.testing.assert_allclose(m.hand_length_px(cam, 1000.0), 45.0)


def test_detection_rate():
    detected = np.array([1, 1, 0, 1, 0, 0], bool)
    assert m.detection_rate(detected) == pytest.approx(0.5)
    eligible = np.array([1, 1, 1, 1, 0, 0], bool)
    assert m.detection_rate(detected, eligible) == pytest.approx(0.75)


def test_2d_error_relative_to_a_given_box():
    """The error is divided by the diagonal of the box of ``box_px`` when given (the person's whole box), else of the
    scored true points: a 3-4-5 box of 50 px diagonal against a 10 px error."""
    true = np.array([[[0.0, 0.0], [30.0, 40.0]]])             # scored points: box diagonal 50
    pred = true + [[[6.0, 8.0], [6.0, 8.0]]]                   # 10 px off each
    assert m.error_2d_box_percent(pred, true) == pytest.approx(20.0)
    person = np.array([[[0.0, 0.0], [60.0, 80.0], [np.nan, np.nan]]])   # the whole person: diagonal 100
    assert m.error_2d_box_percent(pred, true, person) == pytest.approx(10.0)


# --------------------------------------------------------------------------------------------- world: camera, feet

def camera_path(frames: int = T, step_deg: float = 1.0) -> np.ndarray:
    """(frames, 3, 3) world→camera rotations of a camera that tilts a little and pans step_deg per frame."""
    tilt = rotation([1.0, 0.0, 0.0], math.radians(-8.0))
    return np.stack([tilt @ rotation([0.0, 1.0, 0.0], math.radians(step_deg * t)) for t in range(frames)])


def test_rotation_angle_is_exact_at_small_and_large_angles():
    axis = [0.3, -0.5, 0.8]
    for deg in (0.0, 1e-4, 0.5, 10.0, 90.0, 179.0, 180.0):
        assert m.rotation_angle_deg(rotation(axis, math.radians(deg))) == pytest.approx(deg, abs=1e-9)


def test_camera_rotation_perfect_and_turned_world_score_zero():
    true = camera_path()
    assert m.camera_rotation_error_deg(true, true) == pytest.approx(0.0, abs=1e-9)
    world_turn = rotation([0.2, 0.1, 1.0], 1.3)  # the method's world is turned: R_t W^T for every frame
    assert m.camera_rotation_error_deg(true @ world_turn.T, true) == pytest.approx(0.0, abs=1e-9)


def test_camera_rotation_known_offset_on_every_frame_but_the_first():
    true = camera_path()
    off = rotation([0.4, 1.0, -0.3], math.radians(10.0))
    pred = true.copy()
    pred[1:] = off @ true[1:]  # the relative rotation of frames 1.. is off by 10° (frame 0 is the reference: 0°)
    assert m.camera_rotation_error_deg(pred, true) == pytest.approx(10.0 * (T - 1) / T, abs=1e-9)


def test_camera_rotation_static_assumption_costs_the_pan():
    true = camera_path(step_deg=1.0)  # pans 1° per frame: t° away from frame 0 at frame t
    static = np.broadcast_to(np.eye(3), (T, 3, 3))
    assert m.camera_rotation_error_deg(static, true) == pytest.approx((T - 1) / 2, abs=1e-9)


def test_camera_rotation_skips_missing_frames():
    true = camera_path(step_deg=1.0)
    static = np.broadcast_to(np.eye(3), (T, 3, 3)).copy()
    static[:2] = np.nan  # reference moves to frame 2; errors |t - 2|° over frames 2..T-1
    assert m.camera_rotation_error_deg(static, true) == pytest.approx((T - 3) / 2, abs=1e-9)
    true_gap = true.copy()
    true_gap[5, 1, 1] = np.nan
    left = [t for t in range(2, T) if t != 5]
    assert m.camera_rotation_error_deg(static, true_gap) == pytest.approx(np.mean([t - 2 for t in left]), abs=1e-9)
    assert math.isnan(m.camera_rotation_error_deg(np.full((T, 3, 3), np.nan), true))


def test_contact_f1_known_counts():
    true = np.zeros((T, 2), bool)
    true[:6, 0] = True   # 6 left contacts
    true[4:, 1] = True   # 8 right contacts → 14 in all
    perfect = m.contact_f1(true, true)
    assert perfect == dict(precision=1.0, recall=1.0, f1=1.0, scored=2 * T)
    pred = true.copy()
    pred[:2, 0] = False  # 2 misses (FN)
    pred[0, 1] = True    # 1 false alarm (FP); TP = 12
    r = m.contact_f1(pred, true)
    assert r["precision"] == pytest.approx(12 / 13) and r["recall"] == pytest.approx(12 / 14)
    assert r["f1"] == pytest.approx(2 * 12 / (2 * 12 + 1 + 2))
    # float predictions: NaN = no answer (not scored), > 0.5 = contact
    prob = np.where(true, 0.9, 0.2)
    prob[:3] = np.nan
    r = m.contact_f1(prob, true)
    assert r == dict(precision=1.0, recall=1.0, f1=1.0, scored=2 * (T - 3))
    none_pred = m.contact_f1(np.zeros((T, 2), bool), true)
    assert none_pred["f1"] == 0.0 and none_pred["recall"] == 0.0 and math.isnan(none_pred["precision"])
    empty = m.contact_f1(np.zeros((T, 2), bool), np.zeros((T, 2), bool))
    assert all(math.isnan(empty[k]) for k in ("precision", "recall", "f1"))
    with pytest.raises(ValueError, match="shape"):
        m.contact_f1(np.zeros((T, 4), bool), true)


def test_peak_speed_percent_known_answers():
    t = np.arange(20, dtype=float)
    true = np.zeros((20, 1, 3))
    true[:, 0, 0] = np.clip(t - 8, 0, 4) * 0.05          # 5 cm a frame for 4 frames
    half = true.copy()
    half[:, 0, 0] = np.clip(t - 6, 0, 8) * 0.025         # the same distance at half the speed
    assert m.peak_speed_percent(true, true) == pytest.approx(100.0)
    assert m.peak_speed_percent(half, true) == pytest.approx(50.0)
    assert np.isnan(m.peak_speed_percent(true, np.zeros_like(true)))
