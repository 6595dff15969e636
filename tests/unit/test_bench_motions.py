"""bench/motions.py: the benchmark's procedural Anny motions and the root grounding. numpy only.

The checks that need the skeleton (bone names, forward kinematics) read the project's cached Anny skeleton
(inference_server.anny_skeleton) and are skipped when Anny or that cache is absent. Their forward kinematics uses
the rest orientations for Anny's reference orientations (a few degrees apart), hence the tolerances.
"""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from bench import motions as M

ROOT = Path(__file__).resolve().parents[2]
FPS = 30.0
BODY = ["walk", "turn", "wave", "reach_overhead", "squat", "sit_down", "jump", "arms_cross", "punch"]
HANDS = ["count", "fist_open", "pinch_ok", "point_thumbs_up", "spread_wiggle", "hands_cross"]


def samples(motion: M.Motion, fps: float = FPS) -> np.ndarray:
    return np.arange(0.0, motion.duration_s + 1e-9, 1.0 / fps)


def channel_table(motion: M.Motion, ts: np.ndarray) -> tuple[list[tuple[str, str]], np.ndarray]:
    frames = [motion.channels(float(t)) for t in ts]
    keys = sorted({(b, a) for ch in frames for b, axes in ch.items() for a in axes})
    values = np.array([[ch.get(b, {}).get(a, 0.0) for b, a in keys] for ch in frames])  # (T, C)
    return keys, values


# ---------------------------------------------------------------------------------------------------------------
# The module and its registry
# ---------------------------------------------------------------------------------------------------------------
def test_module_imports_only_numpy_and_the_standard_library():
    tree = ast.parse((ROOT / "bench" / "motions.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "dataclasses", "math", "typing", "numpy"}, imported


def test_registry_holds_the_benchmark_motions():
    assert sorted(M.MOTIONS) == sorted(BODY + HANDS)
    for name, m in M.MOTIONS.items():
        assert m.name == name
        assert m.kind == ("body" if name in BODY else "hands")
        assert 2.4 <= m.duration_s <= 4.0, (name, m.duration_s)
        assert len(m.description) > 40
        assert m.phases, name
        for t0, t1, label in m.phases:
            assert 0.0 <= t0 < t1 <= m.duration_s + 1e-9 and label, (name, t0, t1, label)


def test_time_is_clamped_to_the_motion():
    m = M.MOTIONS["jump"]
    assert m.channels(-1.0) == m.channels(0.0)
    assert m.channels(m.duration_s + 5.0) == m.channels(m.duration_s)
    assert m.root_lift_m(-1.0) == 0.0


@pytest.mark.parametrize("name", BODY + HANDS)
def test_channels_are_finite_continuous_and_within_joint_limits(name):
    m = M.MOTIONS[name]
    ts = samples(m)
    keys, values = channel_table(m, ts)
    assert np.isfinite(values).all()
    assert set(a for _, a in keys) <= {"X", "Y", "Z"}
    step = np.abs(np.diff(values, axis=0)).max(axis=0)  # degrees per frame at 30 fps
    worst = int(step.argmax())
    limit = 60.0 if name == "punch" else 30.0  # a jab opens the elbow ~58 deg a frame on purpose
    assert step[worst] < limit, f"{name}: {keys[worst]} jumps {step[worst]:.1f} deg between frames"
    # a jump between samples would not shrink with a finer sampling: at 240 fps the steps are ~8x smaller
    fine = np.abs(np.diff(channel_table(m, samples(m, 8 * FPS))[1], axis=0)).max()
    assert fine < step.max() / 4.0
    assert np.abs(values).max() <= 120.0
    yaw = np.array([m.root_yaw_deg(t) for t in ts])
    lift = np.array([m.root_lift_m(t) for t in ts])
    assert np.isfinite(yaw).all() and np.isfinite(lift).all()
    assert np.abs(np.diff(yaw)).max() < 6.0
    assert (lift >= 0.0).all() and np.abs(np.diff(lift)).max() < 0.08  # take-off at ~2 m/s


@pytest.mark.parametrize("name", BODY)
def test_body_motions_start_and_end_standing_relaxed(name):
    m = M.MOTIONS[name]
    keys = sorted({(b, a) for b, ax in M.STAND.items() for a in ax})
    for t in (0.0, m.duration_s):
        ch = m.channels(t)
        extra = {(b, a): v for b, axes in ch.items() for a, v in axes.items() if (b, a) not in set(keys)}
        assert all(abs(v) < 1e-6 for v in extra.values()), (name, t, extra)
        for b, a in keys:
            assert ch.get(b, {}).get(a, 0.0) == pytest.approx(M.STAND[b][a], abs=1e-6), (name, t, b, a)
    assert m.root_lift_m(0.0) == 0.0 and m.root_lift_m(m.duration_s) == 0.0


def test_turn_goes_90_degrees_left_and_back_and_jump_flies_about_20_cm():
    turn = M.MOTIONS["turn"]
    yaw = np.array([turn.root_yaw_deg(t) for t in samples(turn)])
    assert yaw.max() == pytest.approx(90.0, abs=0.5) and abs(yaw[0]) < 1e-6 and abs(yaw[-1]) < 1e-6
    jump = M.MOTIONS["jump"]
    lift = np.array([jump.root_lift_m(t) for t in samples(jump, 240.0)])
    assert 0.15 <= lift.max() <= 0.25
    flight = np.nonzero(lift > 0)[0] / 240.0
    assert 0.3 < flight[-1] - flight[0] < 0.5


# ---------------------------------------------------------------------------------------------------------------
# Helpers shared with samples/make_sample_clip.py
# ---------------------------------------------------------------------------------------------------------------
def test_easing_and_key_tracks():
    assert M.smoothstep(-1) == 0.0 and M.smoothstep(0.5) == 0.5 and M.smoothstep(2) == 1.0
    keys = [(0.0, {"a": {"X": 0.0}}), (1.0, {"a": {"X": 10.0}}), (2.0, {})]
    assert M.track_value(keys, -1.0, "a", "X") == 0.0
    assert M.track_value(keys, 0.5, "a", "X") == pytest.approx(5.0)
    assert M.track_value(keys, 1.0, "a", "X") == 10.0
    assert M.track_value(keys, 2.5, "a", "X") == 0.0  # a pose without the channel is 0
    both = M.tracks_channels({"one": keys, "two": [(0.0, {"a": {"X": 1.0, "Y": 2.0}})]}, 1.0)
    assert both == {"a": {"X": 11.0, "Y": 2.0}}


def test_finger_helpers_and_mirroring():
    fist = M.hand("L", 1, 1, 1, 1, 1)
    assert fist["finger1-1.L"] == {"X": 30.0} and fist["finger2-2.L"] == {"X": 95.0}
    assert M.finger_curl("R", {3: 0.5})["finger3-3.R"] == {"X": 30.0}
    assert M.mirror({"upperarm01.L": {"X": 1.0, "Y": 2.0, "Z": 3.0}}) == {"upperarm01.R": {"X": 1.0, "Y": -2.0,
                                                                                           "Z": -3.0}}
    assert M.mirror(M.finger_spread("L", 10.0)) == M.finger_spread("R", 10.0)
    both = M.both({"upperarm01.L": {"Z": -30.0}, "spine01": {"X": 5.0}})
    assert both == {"upperarm01.L": {"Z": -30.0}, "upperarm01.R": {"Z": 30.0}, "spine01": {"X": 5.0}}


def test_periodic_curve_passes_through_its_keys_and_wraps_smoothly():
    keys = [(0.0, 1.0), (0.3, 5.0), (0.6, -2.0), (0.85, 0.0)]
    for ph, v in keys:
        assert M.periodic_curve(keys, ph) == pytest.approx(v)
        assert M.periodic_curve(keys, ph + 2.0) == pytest.approx(v)
    eps = 1e-5
    for ph in (0.0, 0.3, 0.999):  # C1: slopes agree on both sides of keys and of the wrap-around
        left = (M.periodic_curve(keys, ph) - M.periodic_curve(keys, ph - eps)) / eps
        right = (M.periodic_curve(keys, ph + eps) - M.periodic_curve(keys, ph)) / eps
        assert left == pytest.approx(right, rel=1e-3, abs=1e-2)


def test_rotation_helpers():
    rx = M.rot_axis_angle(np.array([1.0, 0, 0]), 0.3)
    rz = M.rot_axis_angle(np.array([0, 0, 1.0]), -0.7)
    ry = M.rot_axis_angle(np.array([0, 1.0, 0]), 1.1)
    r = M.local_rotation({"X": math.degrees(0.3), "Y": math.degrees(1.1), "Z": math.degrees(-0.7)})
    np.testing.assert_allclose(r, rz @ rx @ ry, atol=1e-12)  # R = Rz @ Rx @ Ry
    aa = M.matrix_to_axis_angle(r)
    back = M.rot_axis_angle(aa / np.linalg.norm(aa), np.linalg.norm(aa))
    np.testing.assert_allclose(back, r, atol=1e-10)
    np.testing.assert_allclose(M.matrix_to_axis_angle(M.rot_axis_angle(np.array([0, 1.0, 0]), math.pi)),
                               [0, math.pi, 0], atol=1e-9)
    np.testing.assert_allclose(M.yaw_matrix(90.0) @ [0, -1.0, 0], [1.0, 0, 0], atol=1e-12)  # facing -Y -> +X


def test_local_rotations_and_deltas():
    m = M.MOTIONS["squat"]
    names = ["root", "spine01", "upperleg01.L", "no_such_bone"] + sorted(set(m.channels(1.0)) - {"root", "spine01",
                                                                                                  "upperleg01.L"})
    ts = np.array([0.0, 1.3])
    r = M.local_rotations(m, ts, names)
    assert r.shape == (2, len(names), 3, 3)
    np.testing.assert_allclose(r[:, 3], np.eye(3)[None].repeat(2, 0))  # not animated: identity
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.eye(3)[None, None].repeat(2, 0).repeat(len(names), 1),
                               atol=1e-12)
    np.testing.assert_allclose(r[1, 2], M.local_rotation(m.channels(1.3)["upperleg01.L"]))
    with pytest.raises(KeyError, match="upperarm01.L"):
        M.local_rotations(m, ts, [n for n in names if n != "upperarm01.L"])
    rest_root = np.eye(4)
    rest_root[:3, 3] = [0.0, -0.01, 0.05]
    turn = M.MOTIONS["turn"]
    bones = ["root"] + sorted({b for t in (0.0, 1.6) for b in turn.channels(t)} - {"root"})
    d = M.local_bone_deltas(turn, np.array([0.0, 1.6]), bones, rest_root,
                            root_translation=np.array([[0, 0, 0.8], [0.1, 0, 0.8]]))
    np.testing.assert_allclose(d[1, 0, :3, :3] @ [0, -1.0, 0], [1.0, 0, 0], atol=1e-9)  # turned 90 deg left
    np.testing.assert_allclose(d[:, 0, :3, 3], [[0, -0.01, 0.85], [0.1, -0.01, 0.85]])


def test_local_bone_fk_reproduces_the_rest_pose_and_rotates_children_about_their_parents():
    rest = np.tile(np.eye(4), (3, 1, 1))
    rest[1, :3, 3] = [0, 0, 1.0]
    rest[2, :3, 3] = [0, 0, 2.0]
    rest[2, :3, :3] = M.rot_axis_angle(np.array([1.0, 0, 0]), 0.4)  # a bone with its own rest axes
    parents = np.array([-1, 0, 1])
    local_r = np.tile(np.eye(3), (1, 3, 1, 1))
    w = M.local_bone_fk(rest, parents, local_r, rest[:1])
    np.testing.assert_allclose(w[0], rest, atol=1e-12)
    local_r[0, 1] = M.rot_axis_angle(np.array([0, 1.0, 0]), math.pi / 2)  # bone 1 turns about its Y
    w = M.local_bone_fk(rest, parents, local_r, rest[:1])
    np.testing.assert_allclose(w[0, 2, :3, 3], [1.0, 0, 1.0], atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# ground_root_translation: known answers on synthetic feet
# ---------------------------------------------------------------------------------------------------------------
def flat_foot(center_xy, z, n=4) -> np.ndarray:
    """(n, 3) sole points of a 20 cm x 8 cm foot around center_xy at height z."""
    x, y = center_xy
    return np.array([[x - 0.04 + 0.08 * (i % 2), y - 0.1 + 0.2 * (i // 2), z] for i in range(n)])


def test_stance_foot_dragged_back_moves_the_body_forward():
    n = 20
    soles = np.zeros((n, 2, 4, 3))
    for t in range(n):
        soles[t, 0] = flat_foot((0.1, 0.01 * t), -0.80)  # left: on the floor, dragged back (+Y) 1 cm per frame
        soles[t, 1] = flat_foot((-0.1, -0.02 * t), -0.75)  # right: 5 cm up, swinging forward
    tr = M.ground_root_translation(soles, np.zeros(n))
    np.testing.assert_allclose(tr[:, 1], -0.01 * np.arange(n), atol=1e-12)  # advances 1 cm per frame toward -Y
    np.testing.assert_allclose(tr[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(tr[:, 2], 0.80)  # the lowest sole point lands on z = 0
    world = soles + tr[:, None, None]
    np.testing.assert_allclose(world[:, 0], world[:1, 0].repeat(n, 0), atol=1e-12)  # the stance foot stays put
    assert tr[0].tolist()[:2] == [0.0, 0.0]
    flat = M.ground_root_translation(soles, np.zeros(n), planted=False)
    np.testing.assert_allclose(flat[:, :2], 0.0)
    np.testing.assert_allclose(flat[:, 2], 0.80)


def test_stance_alternates_with_hysteresis_and_each_stance_foot_stays_put():
    """A synthetic walk under a fixed root: each foot moves back 1 cm per frame while it is down (15 frames), then
    swings forward in the air (15 frames, lifted up to 5 cm). The body must advance 1 cm per frame."""
    n, half = 60, 15
    soles = np.zeros((n, 2, 4, 3))
    y = np.array([0.0, -0.15])
    stance_true = []
    for t in range(n):
        left_down = (t // half) % 2 == 0
        u = (t % half) / half
        stance_true.append(0 if left_down else 1)
        for side in (0, 1):
            down = (side == 0) == left_down
            if t > 0:
                y[side] += 0.01 if down else -0.02 * math.sin(math.pi * u) ** 2  # swing starts and ends slowly
            z = -0.8 if down else -0.8 + 0.05 * math.sin(math.pi * u)
            soles[t, side] = flat_foot((0.1 - 0.2 * side, y[side]), z)
    tr = M.ground_root_translation(soles, np.zeros(n), switch_margin_m=0.004)
    world = soles + tr[:, None, None]
    assert np.abs(world[..., 2].min(axis=(1, 2))).max() < 1e-12
    checked = 0
    for t in range(1, n):
        s = stance_true[t]
        if stance_true[t - 1] == s and min(world[t - 1, 1 - s, :, 2].min(), world[t, 1 - s, :, 2].min()) > 0.004:
            np.testing.assert_allclose(world[t, s, :, :2], world[t - 1, s, :, :2], atol=1e-9)
            checked += 1
    assert checked > 40
    # walked forward (-Y) 1 cm per frame, except for a frame or two at each of the 3 stance changes (both feet down)
    assert -0.60 < tr[-1, 1] < -0.50


def test_a_foot_pivoting_on_its_toes_does_not_move_the_body():
    n = 10
    soles = np.zeros((n, 2, 5, 3))
    toe = np.array([0.1, -0.1, -0.8])
    for t in range(n):  # heel rises: the sole rotates about the toe edge (x axis through the toe)
        a = 0.05 * t
        offsets = np.array([[dx, 0.2 * k / 4, 0.0] for k, dx in enumerate((0, 0.01, -0.01, 0.0, 0.0))])
        rot = M.rot_axis_angle(np.array([1.0, 0, 0]), a)
        soles[t, 0] = toe + offsets @ rot.T
        soles[t, 1] = flat_foot((-0.1, 0.3 * t), -0.6, n=5)  # the other foot is high up
    tr = M.ground_root_translation(soles, np.zeros(n))
    assert np.abs(tr[:, :2]).max() < 5e-4  # the contact (toe) does not move, so neither does the body
    assert np.ptp(soles[:, 0].mean(axis=1)[:, 1]) > 0.008  # while the centroid of the sole moves by ~1 cm


def test_airborne_frames_hold_xy_and_put_the_soles_at_the_lift():
    n = 12
    lift = np.array([0, 0, 0, 0.05, 0.15, 0.2, 0.15, 0.05, 0, 0, 0, 0])
    soles = np.zeros((n, 2, 4, 3))
    for t in range(n):
        soles[t, 0] = flat_foot((0.1, 0.01 * t), -0.8)
        soles[t, 1] = flat_foot((-0.1, 0.01 * t), -0.8)
    tr = M.ground_root_translation(soles, lift)
    world = soles + tr[:, None, None]
    np.testing.assert_allclose(world[..., 2].min(axis=(1, 2)), lift, atol=1e-12)
    np.testing.assert_allclose(tr[3:9, 1], tr[2, 1])  # in the air (lift > 0 at t-1 or t): no contact, xy held
    np.testing.assert_allclose(np.diff(tr[:3, 1]), -0.01)
    np.testing.assert_allclose(np.diff(tr[9:, 1]), -0.01)


def test_ground_root_translation_rejects_bad_shapes():
    with pytest.raises(ValueError, match="T, 2, P, 3"):
        M.ground_root_translation(np.zeros((5, 3, 4, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="lift_m"):
        M.ground_root_translation(np.zeros((5, 2, 4, 3)), np.zeros(4))


# ---------------------------------------------------------------------------------------------------------------
# With the cached Anny skeleton: bone names and approximate forward kinematics
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def skeleton():
    anny_skeleton = pytest.importorskip("inference_server.anny_skeleton")
    if not anny_skeleton.anny_available():
        pytest.skip("Anny is not installed (or its cache is not built)")
    if not anny_skeleton._cache_path().exists():
        pytest.skip("the Anny skeleton cache is not built (run the engine once)")
    return anny_skeleton.load_skeleton()


def pose(skeleton, motion: M.Motion, ts) -> np.ndarray:
    """World bone poses (T, J, 4, 4) with the root held at its rest position (model frame, pelvis at the origin)."""
    ts = np.asarray(ts, dtype=float)
    local_r = M.local_rotations(motion, ts, skeleton.names)
    root = np.tile(np.eye(4), (len(ts), 1, 1))
    root[:, :3, :3] = M.root_world_rotations(motion, ts, local_r[:, 0], skeleton.rest[0, :3, :3])
    root[:, :3, 3] = skeleton.rest[0, :3, 3]
    return M.local_bone_fk(skeleton.rest, skeleton.parents, local_r, root)


def test_every_animated_bone_exists_in_anny(skeleton):
    names = set(skeleton.names)
    for m in M.MOTIONS.values():
        used = {b for t in samples(m, 5.0) for b in m.channels(float(t))}
        assert used <= names, (m.name, sorted(used - names))


def test_reach_overhead_puts_the_wrists_above_the_head(skeleton):
    j = skeleton.index
    w = pose(skeleton, M.MOTIONS["reach_overhead"], [0.0, 1.4, 2.1])
    head_top = w[:, j("head"), :3, 3] + skeleton.lengths[j("head")] * w[:, j("head"), :3, 1]
    for side in "LR":
        assert (w[1:, j(f"wrist.{side}"), 2, 3] > head_top[1:, 2] + 0.05).all()
        assert w[0, j(f"wrist.{side}"), 2, 3] < w[0, j("root"), 2, 3] + 0.1  # arms down at the start


def test_squat_and_sit_lower_the_pelvis_relative_to_the_ankles(skeleton):
    j = skeleton.index
    for name, t, drop in (("squat", 1.5, 0.30), ("sit_down", 2.2, 0.30)):
        w = pose(skeleton, M.MOTIONS[name], [0.0, t])
        height = w[:, j("root"), 2, 3] - w[:, j("foot.L"), 2, 3]
        assert height[0] - height[1] >= drop, (name, height)
    w = pose(skeleton, M.MOTIONS["sit_down"], [2.2])[0]  # seated: thighs about horizontal, knees about 90 deg
    thigh = w[j("lowerleg01.L"), :3, 3] - w[j("upperleg01.L"), :3, 3]
    shin = w[j("foot.L"), :3, 3] - w[j("lowerleg01.L"), :3, 3]
    assert abs(math.degrees(math.asin(thigh[2] / np.linalg.norm(thigh)))) < 15.0
    knee = math.degrees(math.acos(thigh @ shin / np.linalg.norm(thigh) / np.linalg.norm(shin)))
    assert 75.0 < knee < 110.0


def fingertip(skeleton, w, bone):
    j = skeleton.index(bone)
    return w[..., j, :3, 3] + skeleton.lengths[j] * w[..., j, :3, 1]


def extended_fingers(skeleton, w, side) -> list[int]:
    """Which fingers (1 = thumb .. 5) are extended in one posed frame w (J, 4, 4)."""
    j = skeleton.index
    hand_dir = w[j(f"finger3-1.{side}"), :3, 3] - w[j(f"wrist.{side}"), :3, 3]
    out = []
    if np.linalg.norm(fingertip(skeleton, w, f"finger1-3.{side}") - w[j(f"finger5-1.{side}"), :3, 3]) > 0.08:
        out.append(1)
    for f in (2, 3, 4, 5):
        d = fingertip(skeleton, w, f"finger{f}-3.{side}") - w[j(f"finger{f}-1.{side}"), :3, 3]
        if d @ hand_dir > 0:  # within 90 deg of the hand's direction
            out.append(f)
    return out


def test_count_shows_one_to_five_fingers_on_both_hands(skeleton):
    m = M.MOTIONS["count"]
    phases = {label: 0.5 * (t0 + t1) for t0, t1, label in m.phases}
    expected = {"fist": [], "1": [2], "2": [2, 3], "3": [2, 3, 4], "4": [2, 3, 4, 5], "5": [1, 2, 3, 4, 5]}
    w = pose(skeleton, m, [phases[k] for k in expected])
    for frame, fingers in zip(w, expected.values()):
        for side in "LR":
            assert extended_fingers(skeleton, frame, side) == fingers


def test_hand_motions_hold_the_hands_in_front_of_the_chest_facing_the_camera(skeleton):
    j = skeleton.index
    for name in HANDS:
        m = M.MOTIONS[name]
        w = pose(skeleton, m, samples(m, 10.0))
        chest = w[:, j("spine01"), :3, 3]  # (T, 3) upper-chest bone head
        wl, wr = w[:, j("wrist.L"), :3, 3], w[:, j("wrist.R"), :3, 3]
        for wrist in (wl, wr):
            assert (wrist[:, 1] < chest[:, 1] - 0.2).all(), name  # well in front of the chest (toward -Y)
            assert (np.abs(wrist[:, 2] - chest[:, 2]) < 0.15).all(), name  # at chest height
        if name not in ("point_thumbs_up", "hands_cross"):  # those turn the hands; the others keep palms forward
            for side, sign in (("L", -1.0), ("R", 1.0)):  # the palm normal from the knuckles and the wrist
                across = w[:, j(f"finger2-1.{side}"), :3, 3] - w[:, j(f"finger5-1.{side}"), :3, 3]
                along = w[:, j(f"finger3-1.{side}"), :3, 3] - w[:, j(f"wrist.{side}"), :3, 3]
                palm = sign * np.cross(across, along)
                facing = -palm[:, 1] / np.linalg.norm(palm, axis=1)  # cosine to -Y, toward the camera
                assert (facing > 0.75).all(), (name, side, facing.min())
        gap = np.linalg.norm(wl - wr, axis=1)
        if name == "hands_cross":
            crossed = w[[int(10 * 1.6)]]
            assert crossed[0, j("wrist.L"), 0, 3] < crossed[0, j("wrist.R"), 0, 3]  # the hands have crossed
            assert crossed[0, j("wrist.L"), 1, 3] < crossed[0, j("wrist.R"), 1, 3] - 0.08  # left one in front
        else:
            assert ((gap > 0.18) & (gap < 0.32)).all(), (name, gap.min(), gap.max())


def test_pinch_ok_and_thumbs_up(skeleton):
    m = M.MOTIONS["pinch_ok"]
    w = pose(skeleton, m, [0.9, 2.5])
    for frame in w:
        for side in "LR":
            gap = np.linalg.norm(fingertip(skeleton, frame, f"finger1-3.{side}")
                                 - fingertip(skeleton, frame, f"finger2-3.{side}"))
            assert gap < 0.03, gap
    assert extended_fingers(skeleton, w[1], "L")[-3:] == [3, 4, 5]  # OK: the other three fingers extended
    w = pose(skeleton, M.MOTIONS["point_thumbs_up"], [0.9, 2.5])
    j = skeleton.index
    for side in "LR":
        assert extended_fingers(skeleton, w[0], side) == [2]
        thumb = fingertip(skeleton, w[1], f"finger1-3.{side}") - w[1, j(f"finger1-1.{side}"), :3, 3]
        assert thumb[2] / np.linalg.norm(thumb) > 0.85  # thumbs up
