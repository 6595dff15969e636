"""Applying a Take to an armature in real Blender: the motion lands on the rig as Blender evaluates it (directions
within 2°, root path within 1 %), as a new action, with user presets, rotation modes, and nothing lost on failure."""
from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from blender_env import addon_module, id_counts, new_armature_in_edit_mode
from synthetic_take import SAMPLE_TRUTH, anny_motion_take
from rigs import bonemap, fk, rotations

pytestmark = pytest.mark.skipif(not SAMPLE_TRUTH.is_file(), reason="samples/sample_wave_truth.npz missing")

DIRECTION_BAR_DEG = 2.0
Y_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # rotation −90° about X
ROOT_BAR = 0.01


@pytest.fixture(scope="module")
def take_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = anny_motion_take(tmp_path_factory.mktemp("takes") / "walkwave.take.npz")
    return path


def build_prefixed_rig(bpy: ModuleType, take_file: Path, prefix: str = "T_", euler: str = "YXZ") -> ModuleType:
    """An armature unlike the Take's: renamed bones, arms lowered and fingers bent at rest, every bone rolled,
    spine02/shoulder01 missing, a 0.01-scale object turned 90° about X, and Euler/axis-angle rotation modes."""
    d = np.load(take_file)
    names = [str(n) for n in d["bone_names"]]
    parents = d["bone_parents"].astype(int)
    rest = d["rest_matrices"].astype(np.float64)
    idx = {n: i for i, n in enumerate(names)}
    pose = np.zeros((1, len(names), 3))
    pose[0, idx["upperarm01.L"]] = [0.0, 0.0, -0.6]
    pose[0, idx["upperarm01.R"]] = [0.0, 0.0, 0.6]
    for n in names:
        if n.startswith("finger"):
            pose[0, idx[n]] = [0.3, 0.0, 0.0]
    posed = fk.forward_kinematics(rest, parents, pose, rest[0, :3, 3][None])[0]
    rng = np.random.default_rng(5)
    drop = {"spine02", "shoulder01.L", "shoulder01.R"}
    ob, arm = new_armature_in_edit_mode(bpy, "Target")
    from mathutils import Matrix

    made = {}
    for j, n in enumerate(names):
        if n in drop:
            continue
        eb = arm.edit_bones.new(prefix + n)
        eb.head, eb.tail = (0, 0, 0), (0, 0.06, 0)
        m = posed[j].copy()
        m[:3, :3] = m[:3, :3] @ rotations.aa_to_matrix(np.array([0.0, rng.uniform(-3, 3), 0.0]))
        m[:3, 3] *= 100.0  # centimetres, like an FBX import at 0.01
        m = Y_UP @ m  # armature space Y up: the object's 90° turn about X stands the character up again
        eb.matrix = Matrix(m.tolist())
        eb.length = 6.0
        made[j] = eb
    for j, eb in made.items():
        p = int(parents[j])
        while p >= 0 and p not in made:
            p = int(parents[p])
        if p >= 0:
            eb.parent = made[p]
    bpy.ops.object.mode_set(mode="OBJECT")
    ob.rotation_euler = (math.pi / 2, 0.0, 0.0)
    ob.scale = (0.01, 0.01, 0.01)
    ob.location = (0.3, 0.5, 0.0)
    for pb in ob.pose.bones:
        if "finger" in pb.name:
            pb.rotation_mode = euler
        elif pb.name.endswith("head"):
            pb.rotation_mode = "AXIS_ANGLE"
    bpy.context.view_layer.update()
    return ob


def prefixed_map(prefix: str = "T_") -> bonemap.BoneMap:
    anny = bonemap.builtin_maps()["anny"]
    bones = {j: prefix + b for j, b in anny.bones.items() if b not in {"spine02"}}
    return bonemap.BoneMap(id="prefixed_test_rig", name="Prefixed test rig", bones=bones,
                           translation_bone=prefix + "root")


def measure(ob, result, take_file: Path) -> tuple[float, float, float]:
    """(worst bone direction error °, worst root path error m, root path extent m) as Blender poses the rig."""
    apply = addon_module("retarget_apply")
    prepared = result.prepared
    plan = prepared.result.plan
    _, posed = addon_module("armature_data").pose_matrices(ob, prepared.frames)
    names = [b.name for b in ob.data.bones]
    order = [names.index(n) for n in plan.target.names]
    posed = posed[:, order]
    from rigs import retarget

    d = np.load(take_file)
    src = fk.forward_kinematics(d["rest_matrices"], d["bone_parents"], d["local_rotations_aa"],
                                d["root_position_world"])
    err = retarget.aim_errors_deg(plan, src, posed)
    worst_root, extent = retarget.root_path_error(plan, src, posed)
    return float(err.max()), worst_root, extent


def test_apply_to_a_different_rig_through_a_user_preset(empty_scene: ModuleType, take_path: Path, tmp_path: Path):
    bpy = empty_scene
    apply = addon_module("retarget_apply")
    presets = tmp_path / "presets"
    bonemap.save(prefixed_map(), presets)
    ob = build_prefixed_rig(bpy, take_path)
    ranked = apply.detect_map(ob, str(presets))
    assert ranked[0].map.id == "prefixed_test_rig" and ranked[0].score > 0.95
    result = apply.apply_take(bpy.context, ob, str(take_path), "AUTO", str(presets))
    assert result.map_id == "prefixed_test_rig"
    assert result.previous_action is None and ob.animation_data.action.name == result.action
    worst, root_err, extent = measure(ob, result, take_path)
    print(f"prefixed rig: worst direction {worst:.2e}°, root path {root_err:.2e} m of {extent:.2f} m")
    assert worst < DIRECTION_BAR_DEG, f"worst bone direction error {worst:.3f}°"
    # the character stands up in the world: head above the hips
    heads = {b.name: (ob.matrix_world @ b.head_local) for b in ob.data.bones}
    assert heads["T_head"].z > heads["T_root"].z + 0.3
    assert extent > 0.5 and root_err < ROOT_BAR * extent, f"root path off by {root_err:.4f} m of {extent:.2f} m"
    # rotation modes were honoured
    fcurves = {fc.data_path for fc in _fcurves(ob)}
    assert 'pose.bones["T_finger2-1.L"].rotation_euler' in fcurves
    assert 'pose.bones["T_head"].rotation_axis_angle' in fcurves
    assert 'pose.bones["T_upperarm01.L"].rotation_quaternion' in fcurves
    assert 'pose.bones["T_root"].location' in fcurves


def _fcurves(ob):
    from bpy_extras import anim_utils

    ad = ob.animation_data
    if hasattr(anim_utils, "animdata_get_channelbag_for_assigned_slot"):  # 5.0+ (no Action.fcurves)
        return list(anim_utils.animdata_get_channelbag_for_assigned_slot(ad).fcurves)
    return list(ad.action.fcurves)  # 4.2-4.5: the legacy API (4.4/4.5: the first slot's curves)


def test_existing_action_is_kept_and_a_second_apply_makes_a_new_one(empty_scene: ModuleType, take_path: Path,
                                                                     tmp_path: Path):
    bpy = empty_scene
    apply = addon_module("retarget_apply")
    presets = tmp_path / "presets"
    bonemap.save(prefixed_map(), presets)
    ob = build_prefixed_rig(bpy, take_path)
    ob.animation_data_create()
    old = bpy.data.actions.new("hand keyed")
    ob.animation_data.action = old
    first = apply.apply_take(bpy.context, ob, str(take_path), "prefixed_test_rig", str(presets))
    assert first.previous_action == "hand keyed" and old.use_fake_user
    assert "hand keyed" in bpy.data.actions and ob.animation_data.action.name == first.action
    second = apply.apply_take(bpy.context, ob, str(take_path), "prefixed_test_rig", str(presets))
    assert second.action != first.action and first.action in bpy.data.actions
    assert second.previous_action == first.action


def test_failures_leave_the_file_as_it_was(empty_scene: ModuleType, take_path: Path, tmp_path: Path):
    bpy = empty_scene
    apply = addon_module("retarget_apply")
    ob = build_prefixed_rig(bpy, take_path)
    before = id_counts(bpy)
    # no map fits (the built-in maps do not know T_ names): a clear error listing the best candidates
    with pytest.raises(apply.RetargetFailed, match="no bone map fits"):
        apply.apply_take(bpy.context, ob, str(take_path), "AUTO", str(tmp_path / "none"))
    # a map keying a property the rig does not have
    presets = tmp_path / "presets"
    bad = prefixed_map()
    bad = bonemap.BoneMap(id="bad", name="bad", bones=bad.bones,
                          properties=(bonemap.PropertyKey("T_root", "IK_FK", 1.0),))
    bonemap.save(bad, presets)
    with pytest.raises(apply.RetargetFailed, match="IK_FK"):
        apply.apply_take(bpy.context, ob, str(take_path), "bad", str(presets))
    # a missing take
    with pytest.raises(Exception, match="missing.take.npz"):
        apply.apply_take(bpy.context, ob, str(tmp_path / "missing.take.npz"), "AUTO", str(presets))
    assert id_counts(bpy) == before and ob.animation_data is None


def test_operator_applies_and_reports(empty_scene: ModuleType, take_path: Path, tmp_path: Path):
    bpy = empty_scene
    prefs = bpy.context.preferences.addons[addon_module("preferences").ADDON_PACKAGE].preferences
    presets = tmp_path / "presets"
    bonemap.save(prefixed_map(), presets)
    prefs.presets_dir = str(presets)
    try:
        ob = build_prefixed_rig(bpy, take_path)
        bpy.context.scene.reel2rig.retarget_take = str(take_path)
        items = [i[0] for i in addon_module("operators").rig_map_items(None, bpy.context)]
        assert items[0] == "AUTO" and "prefixed_test_rig" in items and "anny" in items
        assert bpy.ops.reel2rig.apply_take() == {"FINISHED"}
        assert ob.animation_data.action is not None
        assert bpy.ops.reel2rig.save_rig_map(preset_id="saved_from_test") == {"FINISHED"}
        saved = bonemap.load(presets / "saved_from_test.toml")
        assert saved.bones["upper_arm.L"] == "T_upperarm01.L"
        with pytest.raises(RuntimeError, match="already exists"):
            bpy.ops.reel2rig.save_rig_map(preset_id="saved_from_test")
    finally:
        prefs.presets_dir = ""
