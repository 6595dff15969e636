"""Re-importing an exported armature with Blender's own importers (shared by the export and rig tests)."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any


def reimport(bpy: ModuleType, path: Path, fmt: str, preset: str = "default", first_frame: int = 1) -> Any:
    """Load ``path`` into a clean file with Blender's importers; returns the one armature object."""
    bpy.ops.wm.read_homefile(use_empty=True)
    if fmt == "fbx":
        # FBX time 0 is frame 0 on export; the importer's default offset would put it on frame 1. The default
        # preset's leaf bones carry the last bones' lengths and are dropped here.
        assert bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0,
                                        ignore_leaf_bones=preset == "default") == {"FINISHED"}
    elif fmt == "bvh":  # the importer's default axes (forward -Z, up Y) undo the writer's Y-up conversion
        assert bpy.ops.import_anim.bvh(filepath=str(path), frame_start=first_frame) == {"FINISHED"}
    elif fmt in ("glb", "gltf"):
        assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
    else:
        with bpy.data.libraries.load(str(path)) as (source, target):
            target.objects = list(source.objects)
        for ob in target.objects:
            bpy.context.scene.collection.objects.link(ob)
    armatures = [ob for ob in bpy.data.objects if ob.type == "ARMATURE"]
    assert len(armatures) == 1, [ob.name for ob in bpy.data.objects]
    return armatures[0]
