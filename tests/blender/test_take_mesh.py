"""The body mesh an Anny Take brings (its mesh sidecar): imported skinned to the armature, deformed by Blender as the
engine skins it, part of the all-or-nothing import, and only a warning when its file is missing or damaged."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import synthetic_take as synthetic
from blender_env import addon_module, id_counts

MM = 1e-3


@pytest.fixture(scope="module")
def anny_take(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 40-frame Take on the real Anny skeleton (known motion of every part) with its mesh sidecar."""
    folder = tmp_path_factory.mktemp("anny_take")
    path, arrays = synthetic.anny_motion_take(folder / "walkwave.take.npz")
    synthetic.add_anny_mesh(path, arrays)
    return path, arrays


def _copy_take(src: Path, folder: Path) -> Path:
    """The Take, its sidecar and its mesh in another folder (so a test may damage them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".take.npz", ".take.json", ".mesh.npz"):
        shutil.copy(src.with_name(src.name.replace(".take.npz", suffix)), folder)
    return folder / src.name


def _counts(bpy: ModuleType) -> dict[str, int]:
    return {**id_counts(bpy), "meshes": len(bpy.data.meshes), "materials": len(bpy.data.materials)}


def evaluated_vertices(bpy: ModuleType, obj) -> np.ndarray:
    """World-space vertices of ``obj`` as the depsgraph evaluates it (modifiers applied)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]


def test_anny_take_imports_a_mesh_skinned_like_the_engine(empty_scene: ModuleType, anny_take) -> None:
    bpy = empty_scene
    path, arrays = anny_take
    take_import = addon_module("take_import")
    started = time.perf_counter()
    result = take_import.import_take(bpy.context, str(path))
    seconds = time.perf_counter() - started
    assert result.mesh == "walkwave_body" and not [w for w in result.warnings if "mesh" in w]

    armature = bpy.data.objects[result.armature]
    body = bpy.data.objects[result.mesh]
    assert body.type == "MESH" and body.parent == armature
    assert body.users_collection[0].name == result.collection == armature.users_collection[0].name
    assert armature["reel2rig_mesh"] == body.name and body["reel2rig_take"] == str(path)
    modifiers = [m for m in body.modifiers if m.type == "ARMATURE"]
    assert len(modifiers) == 1 and modifiers[0].object == armature and modifiers[0].use_vertex_groups
    assert [g.name for g in body.vertex_groups] == [str(n) for n in arrays["bone_names"]]
    assert len(body.data.materials) == 1 and body.data.materials[0] is not None
    # Blender's deformation against the engine's numpy skinning of the Take's forward kinematics
    rows = [0, 13, 26, 39]
    skinned = synthetic.anny_skinning(arrays, rows)
    expected, n_faces = skinned["vertices"], int(skinned["n_faces"])     # (4, V, 3)
    assert len(body.data.vertices) == expected.shape[1] and len(body.data.polygons) == n_faces
    scene = bpy.context.scene
    worst = 0.0
    for i, row in enumerate(rows):
        scene.frame_set(scene.frame_start + row)
        worst = max(worst, float(np.abs(evaluated_vertices(bpy, body) - expected[i]).max()))
    print(f"mesh import: {expected.shape[1]} vertices, {n_faces} triangles, import {seconds:.2f} s; "
          f"worst vertex vs numpy skinning {worst * 1000:.4f} mm")
    assert worst < 0.1 * MM, f"Blender's skinned mesh is {worst * 1000:.3f} mm off the engine's"


def test_import_without_mesh_is_an_option(empty_scene: ModuleType, anny_take) -> None:
    bpy = empty_scene
    result = addon_module("take_import").import_take(bpy.context, str(anny_take[0]), with_mesh=False)
    assert result.mesh is None and not [o for o in bpy.data.objects if o.type == "MESH"]


@pytest.mark.parametrize("damage, message", [
    (lambda mesh: mesh.unlink(), "mesh file not found"),
    (lambda mesh: mesh.write_bytes(mesh.read_bytes()[:5000]), "not a readable mesh file"),
])
def test_missing_or_damaged_mesh_only_warns(empty_scene: ModuleType, anny_take, tmp_path: Path, damage,
                                            message: str) -> None:
    bpy = empty_scene
    path = _copy_take(anny_take[0], tmp_path / "take")
    damage(path.with_name("walkwave.mesh.npz"))
    result = addon_module("take_import").import_take(bpy.context, str(path))
    assert result.mesh is None
    assert any(message in w for w in result.warnings), result.warnings
    armature = bpy.data.objects[result.armature]
    assert armature.type == "ARMATURE" and armature.animation_data.action is not None
    assert not [o for o in bpy.data.objects if o.type == "MESH"]
    # the operator reports it and still finishes
    assert bpy.ops.reel2rig.import_take(filepath=str(path)) == {"FINISHED"}


def test_failed_import_removes_the_mesh_too(empty_scene: ModuleType, anny_take, monkeypatch) -> None:
    bpy = empty_scene
    take_import = addon_module("take_import")
    before = _counts(bpy)
    built = []

    def build_then_fail(self, take, armature_obj, collection):
        built.append(real(self, take, armature_obj, collection).name)
        raise RuntimeError("injected failure after the mesh was built")

    real = take_import._Builder._build_mesh
    monkeypatch.setattr(take_import._Builder, "_build_mesh", build_then_fail)
    with pytest.raises(take_import.ImportFailed, match="injected failure"):
        take_import.import_take(bpy.context, str(anny_take[0]))
    assert built == ["walkwave_body"]
    assert _counts(bpy) == before
    assert "walkwave_body" not in bpy.data.meshes and "walkwave_body" not in bpy.data.materials
