"""Exports: FBX (every preset), BVH, glTF (.glb, .gltf) and .blend of a Mixamo-like rig re-import with the same
motion — every joint within 1 mm of the original on every frame, in metres, world space; the file holds only the
rig, its action and its meshes; files appear whole or not at all, never over an existing one unless asked; and the
scene is exactly as before the export."""
from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from blender_env import addon_module, id_counts, new_armature_in_edit_mode
from roundtrip import reimport

MM = 1e-3
FRAMES = np.arange(1, 31)

# Armature space is Y up and in centimetres, like a Mixamo import; the object turns it Z up and scales it by 0.01.
# Tails of single-child bones sit on their child's head (what FBX, glTF and BVH importers assume); Hips and Chest
# branch; Shin points straight down in the world; rolls are all different.
BONES = [  # name, parent, head, tail, roll
    ("Hips", None, (0, 100, 0), (0, 110, 1), 0.3),
    ("Spine", "Hips", (0, 110, 1), (0, 130, 3), -0.5),
    ("Chest", "Spine", (0, 130, 3), (0, 150, 0), 1.0),
    ("Neck", "Chest", (0, 150, 0), (0, 160, -1), 0.2),
    ("Head", "Neck", (0, 160, -1), (0, 178, -1), -2.5),
    ("Shoulder.L", "Chest", (5, 148, 0), (15, 147, 2), 0.7),
    ("UpperArm.L", "Shoulder.L", (15, 147, 2), (40, 140, 3), -1.2),
    ("Forearm.L", "UpperArm.L", (40, 140, 3), (62, 138, 10), 2.0),
    ("Shoulder.R", "Chest", (-5, 148, 0), (-15, 147, 2), -0.7),
    ("UpperArm.R", "Shoulder.R", (-15, 147, 2), (-40, 140, 3), 1.2),
    ("Thigh.L", "Hips", (9, 100, 0), (9, 55, 1), 0.1),
    ("Shin.L", "Thigh.L", (9, 55, 1), (9, 10, 1), -0.4),
    ("Foot.L", "Shin.L", (9, 10, 1), (9, 2, -12), 1.6),
]
EULER_BONE = "UpperArm.L"  # keyed in an Euler mode; every other bone with quaternions
BRANCHES = {"Hips", "Chest"}
LEAVES = {"Head", "Forearm.L", "UpperArm.R", "Foot.L"}


def build_rig(bpy: ModuleType, name: str = "Rig") -> Any:
    """The armature (object rotated and scaled 0.01), its action over frames 1–30 and a mesh skinned to it."""
    ob, arm = new_armature_in_edit_mode(bpy, name)
    ob.location = (0.3, -0.2, 0.05)
    ob.rotation_euler = (math.pi / 2, 0.0, 0.3)
    ob.scale = (0.01, 0.01, 0.01)
    edit_bones = {}
    for bone, parent, head, tail, roll in BONES:
        eb = arm.edit_bones.new(bone)
        eb.head, eb.tail, eb.roll = head, tail, roll
        if parent:
            eb.parent = edit_bones[parent]
            eb.use_connect = bone in {"Chest", "Neck", "Head", "Forearm.L", "Shin.L"}
        edit_bones[bone] = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    assert [b.name for b in arm.bones] == [b[0] for b in BONES]

    from mathutils import Euler

    action = bpy.data.actions.new(f"{name}Walk")
    ob.animation_data_create().action = action
    for pb in ob.pose.bones:
        pb.rotation_mode = "YZX" if pb.name == EULER_BONE else "QUATERNION"
    rng = np.random.default_rng(7)
    phases = rng.uniform(0.0, 2 * math.pi, (len(BONES), 3))
    for frame in list(range(1, 31, 3)) + [30]:
        for j, pb in enumerate(ob.pose.bones):
            angles = 0.9 * np.sin(frame / 6.0 + phases[j])
            if pb.rotation_mode == "QUATERNION":
                pb.rotation_quaternion = Euler(angles.tolist(), "XYZ").to_quaternion()
                pb.keyframe_insert("rotation_quaternion", frame=frame)
            else:
                pb.rotation_euler = angles.tolist()
                pb.keyframe_insert("rotation_euler", frame=frame)
        hips = ob.pose.bones["Hips"]  # armature units: centimetres
        hips.location = (20 * math.sin(frame / 7), 5 * math.cos(frame / 5), 60 * frame / 30)
        hips.keyframe_insert("location", frame=frame)

    mesh = bpy.data.meshes.new(f"{name}Body")
    corners = [(x, y, z) for x in (-0.2, 0.2) for y in (-0.1, 0.1) for z in (0.0, 1.7)]
    mesh.from_pydata(corners, [], [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4),
                                   (1, 5, 7, 3)])
    body = bpy.data.objects.new(f"{name}Body", mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = ob
    body.matrix_parent_inverse = ob.matrix_world.inverted()
    body.vertex_groups.new(name="Hips").add(list(range(4)), 1.0, "REPLACE")
    body.vertex_groups.new(name="Chest").add(list(range(4, 8)), 1.0, "REPLACE")
    body.modifiers.new("Armature", "ARMATURE").object = ob
    bpy.context.scene.frame_set(1)
    return ob


def add_bystanders(bpy: ModuleType) -> tuple[Any, Any]:
    """Objects that are not the rig's and must stay out of the files: a mesh and an empty."""
    mesh = bpy.data.meshes.new("Prop")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    prop = bpy.data.objects.new("Prop", mesh)
    bpy.context.scene.collection.objects.link(prop)
    empty = bpy.data.objects.new("Marker", None)
    bpy.context.scene.collection.objects.link(empty)
    return prop, empty


def worst(errors: np.ndarray, names: tuple[str, ...]) -> tuple[float, str]:
    """Largest distance in (F, B) and where it is."""
    t, j = np.unravel_index(int(np.argmax(errors)), errors.shape)
    return float(errors[t, j]), f"{names[j]} on frame {FRAMES[t]}"


def bones_with_length(fmt: str, preset: str) -> set[str]:
    """Bones whose length the format carries: FBX and BVH importers make a bone reach its child (so a branching
    bone gets the mean of its children's distances); FBX leaf lengths need leaf bones; BVH has End Sites for
    leaves; glTF has no lengths (the importer picks them); .blend has everything."""
    names = {b[0] for b in BONES}
    if fmt == "blend":
        return names
    if fmt == "bvh" or (fmt == "fbx" and preset == "default"):
        return names - BRANCHES
    if fmt == "fbx":
        return names - BRANCHES - LEAVES
    return set()


def bones_with_direction(fmt: str) -> set[str]:
    """Bones whose direction the format carries: all, except that BVH gives a bone's direction only through its
    child or End Site, so a BVH importer points a branching bone at the mean of its children."""
    names = {b[0] for b in BONES}
    return names - BRANCHES if fmt == "bvh" else names


ROUND_TRIPS = [("fbx", "default"), ("fbx", "unity"), ("fbx", "unreal"), ("bvh", "default"), ("glb", "default"),
               ("gltf", "default"), ("blend", "default")]


@pytest.mark.parametrize("fmt, preset", ROUND_TRIPS, ids=[f"{f}-{p}" for f, p in ROUND_TRIPS])
def test_round_trip_keeps_every_joint_within_1mm(empty_scene: ModuleType, tmp_path: Path, fmt: str,
                                                 preset: str) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    _, marker = add_bystanders(bpy)
    marker.parent = rig  # a child, but not a mesh: stays out
    before = export.joint_track(rig, FRAMES)
    assert np.ptp(before.heads[:, 0], axis=0).max() > 0.3  # the root really travels (metres)

    result = export.export_armature(bpy.context, rig, str(tmp_path / "walk"), fmt, preset)
    path = Path(result.path)
    assert path.name == f"walk{export.EXTENSIONS[fmt]}" and path.is_file()
    assert (result.frame_start, result.frame_end, result.action) == (1, 30, "RigWalk")
    assert result.meshes == (() if fmt == "bvh" else ("RigBody",)) and result.bones == len(BONES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(f).name for f in result.files)
    if fmt == "gltf":
        assert {Path(f).suffix for f in result.files} == {".gltf", ".bin"}

    imported = reimport(bpy, path, fmt, preset)
    assert {b.name for b in imported.data.bones} == set(before.names)  # names survive in every format
    after = export.joint_track(imported, FRAMES, names=before.names)

    head_error = np.linalg.norm(after.heads - before.heads, axis=-1)  # (F, B) metres
    error, where = worst(head_error, before.names)
    assert error < MM, f"{fmt}/{preset}: a joint moved {error / MM:.4f} mm ({where})"

    # where the bone points: the original bone's length along the imported bone's direction
    pointing = [before.names.index(n) for n in sorted(bones_with_direction(fmt))]
    reach = before.heads + after.directions * np.linalg.norm(before.tails - before.heads, axis=-1)[..., None]
    tip_error = np.linalg.norm(reach - before.tails, axis=-1)[:, pointing]
    error, where = worst(tip_error, tuple(before.names[j] for j in pointing))
    assert error < MM, f"{fmt}/{preset}: a bone turned, its tip is {error / MM:.4f} mm off ({where})"

    # tails, where the format carries the bone's length
    exact = [before.names.index(n) for n in sorted(bones_with_length(fmt, preset))]
    if exact:
        tail_error = np.linalg.norm(after.tails - before.tails, axis=-1)[:, exact]
        error, where = worst(tail_error, tuple(before.names[j] for j in exact))
        assert error < MM, f"{fmt}/{preset}: a bone tail moved {error / MM:.4f} mm ({where})"

    # only the rig and its mesh came back
    names = {ob.name for ob in bpy.data.objects if ob.type in ("MESH", "ARMATURE", "EMPTY", "CAMERA", "LIGHT")}
    assert "Prop" not in names and "Marker" not in names
    if fmt != "bvh":
        body = bpy.data.objects["RigBody"]
        assert body.parent == imported and body.type == "MESH"
        assert {vg.name for vg in body.vertex_groups} >= {"Hips", "Chest"}


@pytest.mark.parametrize("fmt", ["bvh", "glb", "fbx"])
def test_frame_range_is_honoured(empty_scene: ModuleType, tmp_path: Path, fmt: str) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    frames = np.arange(5, 13)
    before = export.joint_track(rig, frames)
    result = export.export_armature(bpy.context, rig, str(tmp_path / "part"), fmt, frame_range=(5, 12))
    assert (result.frame_start, result.frame_end) == (5, 12)
    if fmt == "bvh":
        text = Path(result.path).read_text()
        assert "\nFrames: 8\n" in text and "Frame Time: 0.041666667" in text  # 24 fps
        bpy.ops.wm.read_homefile(use_empty=True)
        assert bpy.ops.import_anim.bvh(filepath=result.path, frame_start=5) == {"FINISHED"}
        imported = next(ob for ob in bpy.data.objects if ob.type == "ARMATURE")
    else:
        imported = reimport(bpy, Path(result.path), fmt, "default")
    action = imported.animation_data.action
    assert tuple(round(f) for f in action.frame_range) == (5, 12)
    after = export.joint_track(imported, frames, names=before.names)
    assert np.linalg.norm(after.heads - before.heads, axis=-1).max() < MM


def test_never_overwrites_unless_asked(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    target = tmp_path / "take.fbx"
    target.write_bytes(b"the user's file")
    with pytest.raises(export.ExportError, match="already exists") as info:
        export.export_armature(bpy.context, rig, str(target), "fbx")
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.fbx"]

    # a .gltf's other files count too: an existing walk.bin blocks the export, and nothing else is written
    (tmp_path / "walk.bin").write_bytes(b"keep")
    with pytest.raises(export.ExportError, match="walk.bin' already exists"):
        export.export_armature(bpy.context, rig, str(tmp_path / "walk.gltf"), "gltf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.fbx", "walk.bin"]
    assert (tmp_path / "walk.bin").read_bytes() == b"keep"

    result = export.export_armature(bpy.context, rig, str(target), "fbx", overwrite=True)
    assert result.path == str(target) and target.read_bytes()[:18] == b"Kaydara FBX Binary"


def test_failed_export_leaves_no_file(empty_scene: ModuleType, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    snapshot = scene_snapshot(bpy)

    def half_then_crash(context, armature_obj, meshes, action, path, settings, frames):
        path.write_bytes(b"Kaydara FBX Binary  \x00half a file")
        bpy.context.scene.frame_set(9)  # the exporter had moved on when it died
        raise RuntimeError("disk full")

    monkeypatch.setitem(export._WRITERS, "fbx", half_then_crash)
    with pytest.raises(export.ExportError, match="disk full") as info:
        export.export_armature(bpy.context, rig, str(tmp_path / "take.fbx"), "fbx")
    assert "nothing was written" in str(info.value) and str(tmp_path / "take.fbx") in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor the staging folder
    assert scene_snapshot(bpy) == snapshot

    # through the operator: an ERROR report, CANCELLED (a RuntimeError for a script), still nothing on disk
    with pytest.raises(RuntimeError, match="disk full"):
        bpy.ops.reel2rig.export(filepath=str(tmp_path / "take.fbx"), format="FBX")
    assert list(tmp_path.iterdir()) == []


def scene_snapshot(bpy: ModuleType) -> dict[str, Any]:
    scene = bpy.context.scene
    view_layer = bpy.context.view_layer
    return {
        "ids": id_counts(bpy),
        "objects": sorted(ob.name for ob in bpy.data.objects),
        "selected": sorted(ob.name for ob in view_layer.objects if ob.select_get()),
        "active": view_layer.objects.active.name if view_layer.objects.active else None,
        "mode": bpy.context.mode,
        "frame": (scene.frame_current, scene.frame_subframe),
        "range": (scene.frame_start, scene.frame_end),
        "hidden": sorted(ob.name for ob in view_layer.objects if ob.hide_get()),
        "actions": {ob.name: ob.animation_data.action.name for ob in bpy.data.objects
                    if ob.animation_data and ob.animation_data.action},
        "nla": {ob.name: ob.animation_data.use_nla for ob in bpy.data.objects if ob.animation_data},
        "action_ranges": {a.name: (a.use_frame_range, tuple(a.frame_range)) for a in bpy.data.actions},
        "pose": [tuple(round(v, 6) for v in pb.matrix.col[3]) for ob in bpy.data.objects if ob.type == "ARMATURE"
                 for pb in ob.pose.bones],
    }


@pytest.mark.parametrize("fmt", ["fbx", "bvh", "glb", "gltf", "blend"])
@pytest.mark.parametrize("situation", ["other-object-active", "rig-in-pose-mode", "rig-in-edit-mode"])
def test_scene_is_unchanged_after_export(empty_scene: ModuleType, tmp_path: Path, fmt: str,
                                         situation: str) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    prop, marker = add_bystanders(bpy)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 3, 40
    scene.frame_set(17)
    rig.children[0].hide_set(True)  # a hidden mesh child is still exported, and stays hidden
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    if situation.startswith("rig-in-"):
        bpy.context.view_layer.objects.active = rig
        rig.select_set(True)
        bpy.ops.object.mode_set(mode="POSE" if situation == "rig-in-pose-mode" else "EDIT")
        assert bpy.context.mode in ("POSE", "EDIT_ARMATURE")
    else:
        prop.select_set(True)
        marker.select_set(True)
        bpy.context.view_layer.objects.active = prop
    snapshot = scene_snapshot(bpy)

    result = export.export_armature(bpy.context, rig, str(tmp_path / "walk"), fmt, frame_range=(1, 30))
    assert scene_snapshot(bpy) == snapshot
    assert result.meshes == (() if fmt == "bvh" else ("RigBody",))
    if fmt == "blend":  # the hidden mesh went into the file
        with bpy.data.libraries.load(result.path) as (source, _):
            assert sorted(source.objects) == ["Rig", "RigBody"]
            assert list(source.actions) == ["RigWalk"]


def test_operator_exports_the_active_armature(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    rig = build_rig(bpy)
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.reel2rig.export(filepath=str(tmp_path / "walk"), format="BVH") == {"FINISHED"}
    text = (tmp_path / "walk.bvh").read_text()
    assert text.startswith("HIERARCHY\nROOT Hips\n") and "\nFrames: 30\n" in text
    with pytest.raises(RuntimeError, match="already exists"):
        bpy.ops.reel2rig.export(filepath=str(tmp_path / "walk.bvh"), format="BVH")
    assert bpy.ops.reel2rig.export(filepath=str(tmp_path / "walk.bvh"), format="BVH", overwrite=True,
                                   use_frame_range=True, frame_start=3, frame_end=7) == {"FINISHED"}
    assert "\nFrames: 5\n" in (tmp_path / "walk.bvh").read_text()
    assert bpy.ops.reel2rig.export(filepath=str(tmp_path / "walk_unity.fbx"), format="FBX",
                                   preset="UNITY") == {"FINISHED"}
    assert (tmp_path / "walk_unity.fbx").is_file()

    # not an armature: the operator is not available
    bpy.context.view_layer.objects.active = rig.children[0]
    assert not bpy.ops.reel2rig.export.poll()


def test_bad_requests_are_clear(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    with pytest.raises(export.ExportError, match="Unknown export format 'obj'"):
        export.export_armature(bpy.context, rig, str(tmp_path / "a.obj"), "obj")
    with pytest.raises(export.ExportError, match="Unknown FBX preset 'godot'"):
        export.export_armature(bpy.context, rig, str(tmp_path / "a.fbx"), "fbx", preset="godot")
    with pytest.raises(export.ExportError, match="does not exist"):
        export.export_armature(bpy.context, rig, str(tmp_path / "missing" / "a.fbx"), "fbx")
    with pytest.raises(export.ExportError, match="'RigBody' is not an armature"):
        export.export_armature(bpy.context, rig.children[0], str(tmp_path / "a.fbx"), "fbx")
    assert list(tmp_path.iterdir()) == []


def _zxy(z: float, x: float, y: float) -> np.ndarray:
    """Rz(z) · Rx(x) · Ry(y), radians, float64."""
    cz, sz, cx, sx, cy, sy = math.cos(z), math.sin(z), math.cos(x), math.sin(x), math.cos(y), math.sin(y)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rz @ rx @ ry


def test_bvh_euler_angles_rebuild_the_rotations(empty_scene: ModuleType) -> None:
    """The ZXY decomposition, gimbal lock included, and its frame-to-frame continuity."""
    export = addon_module("export")
    rng = np.random.default_rng(1)
    angles = np.cumsum(rng.normal(0.0, 0.3, (200, 3)), axis=0)  # a wandering rotation over many turns: z, x, y
    angles[50] = (0.4, math.pi / 2, -0.3)  # gimbal lock: X at 90°
    mats = np.array([_zxy(*a) for a in angles])
    got = export._euler_zxy_deg(mats[:, None])[:, 0]  # (F, 3): Z, X, Y degrees
    rebuilt = np.array([_zxy(*np.radians(a)) for a in got])
    assert np.abs(rebuilt - mats).max() < 1e-9
    steps = np.abs(np.diff(np.delete(got, [50, 51], axis=0), axis=0)).max()
    assert steps < 90.0, f"Euler curves jump by {steps:.1f}°"
    # the same rotation as Blender's BVH importer reads it: Euler (x, y, z) in order "YXZ"
    from mathutils import Euler

    z, x, y = np.radians(got[10])
    assert np.abs(np.array(Euler((x, y, z), "YXZ").to_matrix()) - mats[10]).max() < 1e-6


def test_bvh_adds_a_root_and_position_channels_where_needed(empty_scene: ModuleType, tmp_path: Path) -> None:
    """Two parentless bones hang under an added root; a bone that slides away from its parent gets position
    channels (the others rotation only); names with spaces are written with '_'."""
    bpy = empty_scene
    export = addon_module("export")
    rig, arm = new_armature_in_edit_mode(bpy, "Pair")
    bones = [("Left Arm", None, (0.5, 0, 1), (0.5, 0.3, 1)), ("Hand", "Left Arm", (0.5, 0.3, 1), (0.5, 0.4, 1)),
             ("Right", None, (-0.5, 0, 1), (-0.5, 0, 1.4)), ("Slider", "Right", (-0.5, 0, 1.4), (-0.5, 0, 1.6))]
    for name, parent, head, tail in bones:
        eb = arm.edit_bones.new(name)
        eb.head, eb.tail = head, tail
        if parent:
            eb.parent = arm.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    rig.animation_data_create().action = bpy.data.actions.new("PairMove")
    for frame in (1, 10):
        for pb in rig.pose.bones:
            pb.rotation_mode = "XYZ"
            pb.rotation_euler = (0.05 * frame, -0.03 * frame, 0.02 * frame)
            pb.keyframe_insert("rotation_euler", frame=frame)
        slider = rig.pose.bones["Slider"]
        slider.location = (0.0, 0.02 * frame, 0.01 * frame)
        slider.keyframe_insert("location", frame=frame)
    frames = np.arange(1, 11)
    before = export.joint_track(rig, frames)

    result = export.export_armature(bpy.context, rig, str(tmp_path / "pair.bvh"), "bvh")
    assert any("'_' instead" in w for w in result.warnings)
    text = Path(result.path).read_text()
    assert text.startswith("HIERARCHY\nROOT root\n")
    lines = [line.strip() for line in text.splitlines()]
    count = {lines[i].split()[1]: int(lines[i + 3].split()[1]) for i in range(len(lines))  # CHANNELS n ...
             if lines[i].startswith(("ROOT", "JOINT"))}
    assert count == {"root": 6, "Left_Arm": 6, "Hand": 3, "Right": 6, "Slider": 6}

    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_anim.bvh(filepath=result.path, frame_start=1) == {"FINISHED"}
    imported = next(ob for ob in bpy.data.objects if ob.type == "ARMATURE")
    renamed = tuple(name.replace(" ", "_") for name in before.names)
    after = export.joint_track(imported, frames, names=renamed)
    error = np.linalg.norm(after.heads - before.heads, axis=-1).max()
    assert error < MM, f"BVH joints moved {error / MM:.4f} mm"


def test_exports_the_assigned_action_not_the_nla_mix(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    layer = bpy.data.actions.new("ShoulderSlide")  # on an NLA track: moves a bone the assigned action leaves alone
    ad = rig.animation_data
    walk = ad.action
    ad.action = layer
    shoulder = rig.pose.bones["Shoulder.L"]  # not connected: it can slide
    for frame, z in ((1, 0.0), (30, 20.0)):
        shoulder.location = (0.0, 0.0, z)
        shoulder.keyframe_insert("location", frame=frame)
    ad.action = None
    strip = ad.nla_tracks.new().strips.new("ShoulderSlide", 1, layer)
    if hasattr(strip, "action_slot"):  # 4.4+: a strip animates through a slot of its action
        strip.action_slot = layer.slots[0]
    ad.action = walk
    mixed = export.joint_track(rig, FRAMES)
    ad.use_nla = False
    alone = export.joint_track(rig, FRAMES)
    ad.use_nla = True
    assert np.abs(mixed.heads - alone.heads).max() > 0.05  # the track matters

    result = export.export_armature(bpy.context, rig, str(tmp_path / "walk.fbx"), "fbx")
    assert ad.use_nla and result.action == "RigWalk"
    imported = reimport(bpy, Path(result.path), "fbx", "default")
    after = export.joint_track(imported, FRAMES, names=alone.names)
    assert np.linalg.norm(after.heads - alone.heads, axis=-1).max() < MM


@pytest.mark.parametrize("fmt", ["fbx", "glb"])
@pytest.mark.parametrize("how", ["eye", "monitor", "unselectable", "excluded"])
def test_mesh_in_a_hidden_collection(empty_scene: ModuleType, tmp_path: Path, fmt: str, how: str) -> None:
    """A mesh whose collection is hidden or unselectable is exported all the same, and the collection stays as it
    was; a collection excluded from the view layer keeps its mesh out, with a warning."""
    bpy = empty_scene
    export = addon_module("export")
    rig = build_rig(bpy)
    body = rig.children[0]
    outer = bpy.data.collections.new("Geometry")
    inner = bpy.data.collections.new("Body")
    bpy.context.scene.collection.children.link(outer)
    outer.children.link(inner)
    inner.objects.link(body)
    bpy.context.scene.collection.objects.unlink(body)
    layer = bpy.context.view_layer.layer_collection.children["Geometry"]
    if how == "eye":
        layer.hide_viewport = True
    elif how == "monitor":
        inner.hide_viewport = True
    elif how == "unselectable":
        outer.hide_select = True
    else:
        layer.children["Body"].exclude = True

    def flags() -> list[Any]:
        return [(lc.name, lc.hide_viewport, lc.exclude, lc.collection.hide_viewport, lc.collection.hide_select)
                for lc in (layer, layer.children["Body"])]

    snapshot, before = scene_snapshot(bpy), flags()
    result = export.export_armature(bpy.context, rig, str(tmp_path / "walk"), fmt)
    assert scene_snapshot(bpy) == snapshot and flags() == before
    if how == "excluded":
        assert result.meshes == () and any("RigBody" in w for w in result.warnings)
    else:
        assert result.meshes == ("RigBody",) and not result.warnings
    reimport(bpy, Path(result.path), fmt, "default")
    assert ("RigBody" in bpy.data.objects) == (how != "excluded")
