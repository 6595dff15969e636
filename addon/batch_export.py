"""The Blender half of one batch clip: a Take onto a rig, then the requested exports. Touches bpy (headless).

Run by ``batch`` (the studio batch command) as its own process, once per clip, so a crash in Blender loses that clip
only and memory never accumulates over a batch:

    python -m addon.batch_export SPEC.json

``SPEC.json`` (written by ``batch/clip.py``)::

    {"take": "/abs/clip.take.npz", "video": "/abs/clip.mp4" | null, "out_dir": "/abs/folder", "name": "clip",
     "rig": "/abs/character.blend" | null, "rig_object": "Armature" | null, "map": "AUTO" | "mixamo" | ...,
     "formats": ["fbx", "bvh", "glb", "blend"], "fbx_preset": "default", "foot_lock": true,
     "presets_dir": null, "result": "/abs/result.json"}

* no ``rig``: the Take is imported as Reel2Rig's own armature (``take_import``) with its camera, as the add-on's
  Capture does;
* a ``rig``: the .blend is opened, the armature named ``rig_object`` (or its only armature) gets the Take as a new
  action (``retarget_apply.apply_take``, the bone map ``map`` or auto-detected), the scene's frame range is set to
  the action's. The rig file itself is never written;
* each format in ``formats`` is exported as ``out_dir/name.<ext>`` (``export.export_armature``, atomic files).

The outcome goes to ``result`` as JSON (Blender prints its own chatter on stdout): ``{"ok": true, "armature": …,
"action": …, "map_id": …, "unmatched": […], "warnings": […], "exports": [{"fmt", "path", "files", …}],
"peak_rss_mb": …}`` or ``{"ok": false, "stage": "rig" | "retarget" | "import" | "export", "error": …, "fix": …}``.
The exit status is 0 on success, 1 on a reported failure.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any


class StepFailed(Exception):
    def __init__(self, stage: str, error: str, fix: str):
        super().__init__(error)
        self.stage, self.error, self.fix = stage, error, fix


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _rig_armature(bpy: Any, rig: str, name: str | None) -> Any:
    if not Path(rig).is_file():
        raise StepFailed("rig", f"the rig file {rig} does not exist",
                         "give --rig the path of a .blend that holds your character's armature")
    try:
        bpy.ops.wm.open_mainfile(filepath=rig, load_ui=False)
    except RuntimeError as exc:
        raise StepFailed("rig", f"Blender cannot open {rig}: {str(exc).strip()}",
                         "give --rig a .blend file saved by Blender 4.2 or newer") from exc
    armatures = [ob for ob in bpy.data.objects if ob.type == "ARMATURE"]
    if name:
        ob = bpy.data.objects.get(name)
        if ob is None or ob.type != "ARMATURE":
            found = ", ".join(sorted(a.name for a in armatures)) or "none"
            raise StepFailed("rig", f"{rig} has no armature object named '{name}' (armatures: {found})",
                             f"write the armature's object name after the colon: --rig {rig}:NAME")
        return ob
    if len(armatures) != 1:
        found = ", ".join(sorted(a.name for a in armatures)) or "none"
        raise StepFailed("rig", f"{rig} holds {len(armatures)} armatures ({found}); which one is the character?",
                         f"name it after a colon: --rig {rig}:ARMATURE" if armatures else
                         "save the character's armature in the file")
    return armatures[0]


def run(spec: dict) -> dict:
    import bpy

    from . import export, retarget_apply, take_import
    from .retarget_prepare import RetargetFailed
    from .take_prepare import take_format

    out_dir = Path(spec["out_dir"])
    name = spec["name"]
    result: dict[str, Any] = {"ok": True, "warnings": [], "exports": []}
    if spec.get("rig"):
        obj = _rig_armature(bpy, spec["rig"], spec.get("rig_object"))
        context = bpy.context
        try:
            applied = retarget_apply.apply_take(context, obj, spec["take"], spec.get("map") or "AUTO",
                                                presets_dir=spec.get("presets_dir"), action_name=name,
                                                foot_lock=bool(spec.get("foot_lock", True)))
        except (RetargetFailed, take_format.TakeError) as exc:
            raise StepFailed("retarget", str(exc), "choose the bone map with --map (see rigs/maps/), or save "
                             "one for the rig with the add-on's Save Bone Map") from exc
        context.scene.frame_start, context.scene.frame_end = applied.frame_start, applied.frame_end
        result.update(armature=obj.name, action=applied.action, map_id=applied.map_id, map_name=applied.map_name,
                      map_score=applied.score, unmatched=list(applied.unmatched), frames=applied.frames)
        result["warnings"] += list(applied.warnings)
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
        context = bpy.context
        try:
            imported = take_import.import_take(context, spec["take"], spec.get("video"))
        except (take_import.ImportFailed, take_format.TakeError) as exc:
            raise StepFailed("import", str(exc), "re-run the clip with --force; if it fails again, report it with "
                             "the clip's log") from exc
        obj = bpy.data.objects[imported.armature]
        result.update(armature=obj.name, action=imported.action, map_id=None, map_name=None, unmatched=[],
                      frames=imported.frames)
        result["warnings"] += list(imported.warnings)

    action = obj.animation_data.action if obj.animation_data else None
    if action is not None:
        first, last = (int(round(f)) for f in action.frame_range)
        result["frame_range"] = [first, last]
        result["scene_fps"] = context.scene.render.fps / context.scene.render.fps_base
    for fmt in spec.get("formats", []):
        path = out_dir / f"{name}.{export.EXTENSIONS[fmt].lstrip('.')}"
        preset = spec.get("fbx_preset", "default") if fmt == "fbx" else "default"
        try:
            done = export.export_armature(context, obj, str(path), fmt, preset, overwrite=True)
        except export.ExportError as exc:
            raise StepFailed("export", str(exc), "see the clip's log; other formats can still be asked for with "
                             "--format") from exc
        result["exports"].append({"fmt": fmt, "path": done.path, "files": list(done.files), "bones": done.bones,
                                  "frame_start": done.frame_start, "frame_end": done.frame_end,
                                  "seconds": round(done.seconds, 3)})
        result["warnings"] += list(done.warnings)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m addon.batch_export SPEC.json\n")
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result_path = Path(spec["result"])
    # Blender's user folder: a throw-away one, set before bpy loads (nothing goes to ~/.config/blender).
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="reel2rig-batch-blender-"))
    try:
        result = run(spec)
    except StepFailed as exc:
        result = {"ok": False, "stage": exc.stage, "error": exc.error, "fix": exc.fix}
    except Exception as exc:  # noqa: BLE001 - reported to the batch, which goes on with the next clip
        traceback.print_exc()
        result = {"ok": False, "stage": "blender", "error": f"{type(exc).__name__}: {exc}",
                  "fix": "see the clip's log (log.txt) for Blender's traceback"}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    _write_json(result_path, result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
