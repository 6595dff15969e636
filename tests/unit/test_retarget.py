"""The retarget solver (rigs/retarget.py) on the Anny ground-truth motion, onto a target built to differ from the
source in every way the solver must absorb: names, fewer and extra bones, rest pose (arms lowered), bone rolls,
proportions and an object transform (rotated, 0.01 scale, like a Mixamo import)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rigs import bonemap, fk, humanoid, retarget
from rigs import rotations as rot

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "samples" / "sample_wave_truth.npz"

# Source bones the target drops (its parent becomes the nearest kept ancestor).
DROPPED = {"spine04", "spine02", "shoulder01.L", "shoulder01.R", "upperarm02.L", "lowerarm02.R", "neck02",
           "metacarpal2.L", "eye.L", "eye.R"}


def _source() -> tuple[retarget.Skeleton, np.ndarray, dict[str, str]]:
    d = np.load(TRUTH)
    names = [str(n) for n in d["bone_names"]]
    skel = retarget.Skeleton(names, d["bone_parents"].astype(int), d["rest_matrices"].astype(np.float64))
    t = np.linspace(0.0, 1.0, len(d["timestamps"]))[:, None]
    path = np.concatenate([0.8 * t, 0.3 * t ** 2, 0.05 * np.sin(6 * t)], axis=1)  # the sample stands still: walk it
    world = fk.forward_kinematics(skel.rest, skel.parents, d["local_rotations_aa"], d["root_position_world"] + path)
    anny = bonemap.load(bonemap.BUILTIN_DIR / "anny.toml")
    return skel, world, dict(anny.bones)


def _target(source: retarget.Skeleton, seed: int = 3):
    """A different rig: posed-source rest (arms down, fingers bent), rolled bones, 1.08 proportions, extra twist
    bones, renamed, under an object rotated 90° about X at 0.01 scale."""
    rng = np.random.default_rng(seed)
    n = len(source.names)
    pose = np.zeros((1, n, 3))
    idx = source.index()
    pose[0, idx["upperarm01.L"]] = [0.0, 0.0, -0.5]
    pose[0, idx["upperarm01.R"]] = [0.0, 0.0, 0.5]
    pose[0, idx["lowerarm01.L"]] = [0.3, 0.0, 0.0]
    for name in source.names:
        if name.startswith("finger"):
            pose[0, idx[name]] = [0.25, 0.0, 0.05]
    posed = fk.forward_kinematics(source.rest, source.parents, pose, source.rest[0, :3, 3][None])[0]
    keep = [j for j, name in enumerate(source.names) if name not in DROPPED]
    new_index = {j: k for k, j in enumerate(keep)}
    parents = []
    for j in keep:
        p = int(source.parents[j])
        while p >= 0 and p not in new_index:
            p = int(source.parents[p])
        parents.append(new_index[p] if p >= 0 else -1)
    rest_world = posed[keep].copy()
    rest_world[:, :3, 3] *= 1.08
    for k in range(len(keep)):  # roll each bone about its own Y axis
        rest_world[k, :3, :3] = rest_world[k, :3, :3] @ rot.aa_to_matrix(np.array([0.0, rng.uniform(-3, 3), 0.0]))
    names = [f"T_{source.names[j]}" for j in keep]
    # two twist bones the map does not know
    for parent in ("T_upperarm01.R", "T_lowerleg01.L"):
        p = names.index(parent)
        names.append(parent + "_twist")
        parents.append(p)
        rest_world = np.concatenate([rest_world, rest_world[p:p + 1]], axis=0)
    obj = np.eye(4)
    obj[:3, :3] = 0.01 * rot.aa_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
    obj[:3, 3] = [0.5, -0.2, 0.0]
    inv_obj = np.linalg.inv(obj)
    rest_arm = inv_obj[None] @ rest_world
    rest_arm[:, :3, :3] /= np.linalg.norm(rest_arm[:, :3, :3], axis=1, keepdims=True)  # undo the 1/0.01 scale
    return retarget.Skeleton(names, np.array(parents), rest_arm, obj)


def _pose_like_blender(target: retarget.Skeleton, eff: np.ndarray, local: np.ndarray, trans_bone: int,
                       location: np.ndarray) -> np.ndarray:
    """Armature-space pose from matrix_basis values: W_j = W_p (Rest_p⁻¹ Rest_j) [L_j | loc_j] (an independent FK)."""
    T, J = local.shape[:2]
    W = np.zeros((T, J, 4, 4))
    done: set[int] = set()
    while len(done) < J:
        for j in range(J):
            p = int(eff[j])
            if j in done or (p >= 0 and p not in done):
                continue
            basis = np.zeros((T, 4, 4))
            basis[:, :3, :3] = local[:, j]
            basis[:, 3, 3] = 1.0
            if j == trans_bone:
                basis[:, :3, 3] = location
            off = target.rest[j] if p < 0 else np.linalg.inv(target.rest[p]) @ target.rest[j]
            W[:, j] = (off[None] if p < 0 else W[:, p] @ off) @ basis
            done.add(j)
    return W


@pytest.fixture(scope="module")
def setup():
    if not TRUTH.is_file():
        pytest.skip("samples/sample_wave_truth.npz missing")
    source, world, source_map = _source()
    target = _target(source)
    target_map = {j: "T_" + b for j, b in source_map.items() if b not in DROPPED}
    plan = retarget.plan(source, source_map, target, target_map)
    return source, world, target, plan


def test_every_mapped_bone_points_where_the_source_does(setup):
    source, world, target, plan = setup
    result = retarget.solve(plan, world)
    # Re-pose the target from the keys alone, the way Blender will, and measure.
    posed = _pose_like_blender(target, plan.effective_parents, result.local_rotations, plan.translation_bone,
                               result.location)
    np.testing.assert_allclose(posed, result.armature_matrices, atol=1e-9)
    err = retarget.aim_errors_deg(plan, world, posed)
    assert err.shape == (world.shape[0], len(plan.pairs))
    assert err.max() < 1e-4, f"worst {err.max():.2e}° at {plan.pairs[int(np.argmax(err.max(0)))].joint}"
    # Fingers, hands and feet are all paired.
    joints = {p.joint for p in plan.pairs}
    assert {"thumb_3.L", "little_3.R", "index_1.L", "toes.R", "head"} <= joints
    assert "middle_0.L" not in joints  # metacarpal2.L was dropped by the target
    assert plan.unmatched_source == ("middle_0.L",)


def test_root_path_scaled_by_leg_ratio(setup):
    source, world, target, plan = setup
    assert plan.leg_ratio == pytest.approx(1.08, rel=1e-6)  # proportions were scaled by 1.08
    result = retarget.solve(plan, world)
    worst, extent = retarget.root_path_error(plan, world, result.armature_matrices)
    assert extent > 0.05  # the sample moves its hips
    assert worst < 1e-9 * max(extent, 1.0)


def test_unmapped_bones_keep_their_rest_relation(setup):
    source, world, target, plan = setup
    result = retarget.solve(plan, world)
    twist = list(target.names).index("T_upperarm01.R_twist")
    np.testing.assert_allclose(result.local_rotations[:, twist], np.broadcast_to(np.eye(3), (world.shape[0], 3, 3)))
    assert twist not in plan.keyed
    # The kept bones between mapped ones are keyed (at rest) so an old pose cannot leak in.
    assert list(target.names).index("T_upperleg02.L") in plan.keyed


def test_identity_retarget_reproduces_the_source_rotations(setup):
    source, world, _, _ = setup
    anny = bonemap.load(bonemap.BUILTIN_DIR / "anny.toml")
    plan = retarget.plan(source, anny.bones, source, anny.bones, translation_bone="root")
    result = retarget.solve(plan, world)
    # Where nothing unmapped sits between a bone and its aim, the bone turns exactly as the source's (elsewhere the
    # source's unmapped bones, e.g. spine04, bend while the target's copies stay at rest: only directions agree).
    by_joint = {p.joint: p.target for p in plan.pairs}
    exact = [p.target for p in plan.pairs
             if p.aim is None or int(source.parents[by_joint[p.aim]]) == p.target]
    assert len(exact) > 40
    np.testing.assert_allclose(result.armature_matrices[:, exact, :3, :3], world[:, exact, :3, :3], atol=1e-6)
    np.testing.assert_allclose(result.armature_matrices[:, 0, :3, 3], world[:, 0, :3, 3], atol=1e-9)


def test_non_uniform_object_scale_is_refused(setup):
    source, world, target, _ = setup
    obj = np.diag([1.0, 2.0, 1.0, 1.0])
    bad = retarget.Skeleton(target.names, target.parents, target.rest, obj)
    with pytest.raises(retarget.RetargetError, match="non-uniform scale"):
        retarget.plan(source, {"hips": "root"}, bad, {"hips": "T_root"})


def test_no_common_joints_is_a_clear_error(setup):
    source, _, target, _ = setup
    with pytest.raises(retarget.RetargetError, match="share no mapped joints"):
        retarget.plan(source, {"hips": "root"}, target, {"head": "T_head"})


def test_topological_order_and_cycles():
    assert retarget.topological_order([-1, 2, 0]) == [0, 2, 1]
    with pytest.raises(retarget.RetargetError, match="cycle"):
        retarget.topological_order([-1, 2, 1])


# --------------------------------------------------------------------------------------------------------------
# rotations used by the solver and the key writer


@pytest.mark.parametrize("order", rot.EULER_ORDERS)
def test_euler_round_trip_every_order(order):
    rng = np.random.default_rng(7)
    angles = rng.uniform(-np.pi, np.pi, size=(400, 3))
    i = "XYZ".index(order[1])
    angles[:, i] = rng.uniform(-np.pi / 2 + 1e-3, np.pi / 2 - 1e-3, size=400)
    R = rot.euler_to_matrix(angles, order)
    back = rot.matrix_to_euler(R, order)
    np.testing.assert_allclose(rot.euler_to_matrix(back, order), R, atol=1e-9)
    np.testing.assert_allclose(back, angles, atol=1e-8)
    # gimbal lock: the middle angle at ±90°
    angles[:, i] = np.pi / 2 * np.sign(rng.normal(size=400))
    R = rot.euler_to_matrix(angles, order)
    np.testing.assert_allclose(rot.euler_to_matrix(rot.matrix_to_euler(R, order), order), R, atol=1e-7)


def test_euler_order_convention_is_blenders():
    # Blender 'XYZ': X applied first, so R = Rz · Ry · Rx.
    a = np.array([0.3, -0.4, 0.5])
    Rx, Ry, Rz = (rot.aa_to_matrix(np.eye(3)[k] * a[k]) for k in range(3))
    np.testing.assert_allclose(rot.euler_to_matrix(a, "XYZ"), Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(rot.euler_to_matrix(a, "ZYX"), Rx @ Ry @ Rz, atol=1e-12)


def test_euler_continuous_removes_wraps_and_flips():
    t = np.linspace(0, 4 * np.pi, 200)
    aa = np.stack([np.zeros_like(t), np.zeros_like(t), t], axis=1)  # two full turns about Z
    e = rot.matrix_to_euler(rot.aa_to_matrix(aa), "XYZ")
    assert np.abs(np.diff(e, axis=0)).max() > 3  # raw angles wrap
    c = rot.euler_continuous(e, "XYZ")
    assert np.abs(np.diff(c, axis=0)).max() < 0.1
    np.testing.assert_allclose(rot.euler_to_matrix(c, "XYZ"), rot.aa_to_matrix(aa), atol=1e-9)
    np.testing.assert_allclose(c[-1, 2], 4 * np.pi, atol=1e-6)


def test_rotation_between_including_opposite_vectors():
    rng = np.random.default_rng(2)
    a = rot.normalize(rng.normal(size=(100, 3)))
    b = rot.normalize(rng.normal(size=(100, 3)))
    b[0] = -a[0]
    b[1] = a[1]
    R = rot.rotation_between(a, b)
    np.testing.assert_allclose(np.einsum("kij,kj->ki", R, a), b, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)


# --------------------------------------------------------------------------------------------------------------
# foot locking


def test_locked_foot_stays_put_and_nothing_else_moves(setup):
    from rigs import footlock

    source, world, target, plan = setup
    result = retarget.solve(plan, world)
    contacts = np.zeros((world.shape[0], 2), bool)
    contacts[6:16, 0] = True  # left foot planted for 10 frames while the hips travel ~0.1 m (within reach)
    locked, segments = footlock.lock_feet(result, contacts, blend_frames=3)
    assert segments == {"L": [(6, 16)], "R": []}
    by_joint = {p.joint: p.target for p in plan.pairs}
    ankle = locked.armature_matrices[:, by_joint["foot.L"], :3, 3]
    before = result.armature_matrices[:, by_joint["foot.L"], :3, 3]
    R_obj, sigma, _ = target.decomposed_object()
    pin = np.median(before[6:16], axis=0)
    arm = result.armature_matrices
    hip, knee = arm[:, by_joint["upper_leg.L"], :3, 3], arm[:, by_joint["lower_leg.L"], :3, 3]
    reach = np.linalg.norm(knee - hip, axis=1) + np.linalg.norm(before - knee, axis=1)
    reachable = np.arange(6, 16)[np.linalg.norm(pin - hip[6:16], axis=1) < reach[6:16] - 0.1]  # 1 mm in cm units
    assert len(reachable) >= 6
    spread = sigma * np.linalg.norm(ankle[reachable] - pin, axis=1).max()
    slide = sigma * np.linalg.norm(before[6:16] - pin, axis=1).max()
    assert slide > 0.01 and spread < 1e-6, (slide, spread)  # it slid before, it is pinned now
    # where the pin is out of reach the leg straightens towards it
    assert sigma * np.linalg.norm(ankle[6:16] - pin, axis=1).max() < 0.01
    # the foot keeps its world orientation, the hips their path, the other leg and the arms their pose
    for joint in ("foot.L", "upper_leg.R", "lower_leg.R", "hand.L", "head"):
        j = by_joint[joint]
        np.testing.assert_allclose(locked.armature_matrices[:, j, :3, :3], result.armature_matrices[:, j, :3, :3],
                                   atol=1e-9, err_msg=joint)
    np.testing.assert_allclose(locked.location, result.location, atol=1e-9)
    # leg segments keep their lengths; outside the contact (and its blend) nothing changed
    for joint in ("upper_leg.L", "lower_leg.L"):
        j = by_joint[joint]
        np.testing.assert_allclose(locked.armature_matrices[:30, j, :3, :3][25:],
                                   result.armature_matrices[:30, j, :3, :3][25:], atol=1e-9)
    # the keys reproduce the locked pose
    posed = _pose_like_blender(target, plan.effective_parents, locked.local_rotations, plan.translation_bone,
                               locked.location)
    np.testing.assert_allclose(posed, locked.armature_matrices, atol=1e-9)


def test_contact_segments_and_estimate(setup):
    from rigs import footlock

    c = np.array([0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1], bool)
    assert footlock.contact_segments(c, min_frames=3, max_gap=1) == [(1, 7), (9, 15)]
    assert footlock.contact_segments(c, min_frames=3, max_gap=0) == [(4, 7), (11, 15)]
    source, world, target, plan = setup
    est = footlock.estimate_contacts(plan, world, fps=25.0)
    assert est.shape == (world.shape[0], 2)


def test_two_bone_ik_reaches_and_clamps():
    from rigs import footlock

    H = np.zeros((2, 3))
    K = np.array([[0.0, -0.1, -0.4], [0.0, -0.1, -0.4]])
    A = np.array([[0.0, 0.0, -0.8], [0.0, 0.0, -0.8]])
    target = np.array([[0.1, 0.05, -0.7], [0.0, 0.0, -5.0]])  # reachable; far out of reach
    Q1, Q2 = footlock.two_bone_ik(H, K, A, target)
    K_new = np.einsum("tij,tj->ti", Q1, K - H) + H
    A_new = K_new + np.einsum("tij,tj->ti", Q2 @ Q1, A - K)
    np.testing.assert_allclose(A_new[0], target[0], atol=1e-9)
    assert np.linalg.norm(A_new[1] - H[1]) == pytest.approx(np.linalg.norm(K[1]) + np.linalg.norm(A[1] - K[1]),
                                                             rel=1e-6)  # straightened towards it
    assert (K_new[0] - H[0])[1] < 0  # the knee still bends forward (−Y), as it did
