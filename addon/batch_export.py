"""The Blender half of one batch clip: a Take onto a rig, then the requested exports. Touches bpy (headless).

Run by ``batch`` (the studio batch command) as its own process, once per clip, so a crash in Blender loses that clip
only and memory never accumulates over a batch:

    python -m addon.batch_export SPEC.json

``SPEC.json`` (written by ``batch/clip.py``)::

    {"take": "/abs/clip.take.npz", "video": "/abs/clip.mp4" | null, "out_dir": "/abs/folder", "name": "clip",
     "rig": "/abs/character.blend" | null, "rig_object": "Armature" | null, "map": "AUTO" | "mixamo" | ...,
     "formats": ["fbx", "bvh", "glb", "blend"], "fbx_preset": "default", "foot_lock": true,
     "presets_dir": null, "part_frames": 9000, "result": "/abs/result.json"}

* no ``rig``: the Take is imported as Reel2Rig's own armature (``take_import``) with its camera, as the add-on's
  Capture does;
* a ``rig``: the .blend is opened, the armature named ``rig_object`` (or its only armature) gets the Take as a new
  action (``retarget_apply.apply_take``, the bone map ``map`` or auto-detected), the scene's frame range is set to
  the action's. The rig file itself is never written;
* each format in ``formats`` is exported as ``out_dir/name.<ext>`` (``export.export_armature``, atomic files).

**Long Takes go in parts** so this process's memory does not grow with the clip: a Take longer than
``part_frames`` is cut into parts of at most that many frames, and each part is built, exported and dropped (the
file is re-read) before the next: ``name_part001.fbx``, ``name_part002.fbx`` … with actions of the same names. The
parts keep the clip's timeline: part k's keys start at the scene frame of its first frame's time, so the parts laid
end to end are the whole motion. The Take itself stays whole (each part is a slice of it, read one field at a time).

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
    from .take_prepare import take_format

    take_format.atomic_write_bytes(path, json.dumps(data, indent=1).encode("utf-8"))


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


def _part_ranges(n_frames: int, part_frames: int | None) -> list[tuple[int, int]]:
    if not part_frames or n_frames <= part_frames:
        return [(0, n_frames)]
    count = -(-n_frames // part_frames)
    size = -(-n_frames // count)  # equal parts, none longer than part_frames
    return [(a, min(a + size, n_frames)) for a in range(0, n_frames, size)]


def _slice_take(take_path: str, start: int, end: int, out_path: Path, part: int, parts: int) -> Path:
    """Frames [start, end) of a Take as a Take of their own, read one field at a time (bounded memory)."""
    import numpy as np

    from .take_prepare import take_format

    arrays = {}
    with np.load(take_path, allow_pickle=False) as data:
        for name in data.files:
            if name == "schema_version":
                continue
            field = take_format.FIELDS_BY_NAME.get(name)
            array = data[name]
            arrays[name] = array[start:end].copy() if field is not None and field.shape[:1] == ("T",) else array
            del array
    meta = {}
    sidecar = take_format.sidecar_path(take_path)
    if sidecar.is_file():
        meta = {k: v for k, v in json.loads(sidecar.read_text()).items()
                if k not in ("schema_version", "frames", "bones")}
    meta["part"] = {"index": part, "count": parts, "frames": [start, end], "of": take_path}
    return take_format.write_take(out_path, arrays, meta)


def _part_frame_start(timestamps: Any, start: int, rate: float) -> int:
    """The scene frame of the Take's frame ``start`` when its first frame is on frame 1 (keys at timestamps)."""
    return 1 + int(round(float(timestamps[start] - timestamps[0]) * rate))


def _build(bpy: Any, spec: dict, take: str, name: str, frame_start: int | None, result: dict) -> tuple[Any, Any]:
    """The Take (or a part of it) onto the rig, or as Reel2Rig's armature, in a freshly loaded file."""
    from . import retarget_apply, take_import
    from .retarget_prepare import RetargetFailed
    from .take_prepare import take_format

    if spec.get("rig"):
        obj = _rig_armature(bpy, spec["rig"], spec.get("rig_object"))
        context = bpy.context
        scene = context.scene
        if frame_start is not None:
            scene.frame_start = frame_start
        try:
            applied = retarget_apply.apply_take(context, obj, take, spec.get("map") or "AUTO",
                                                presets_dir=spec.get("presets_dir"), action_name=name,
                                                foot_lock=bool(spec.get("foot_lock", True)))
        except (RetargetFailed, take_format.TakeError) as exc:
            raise StepFailed("retarget", str(exc), "choose the bone map with --map (see rigs/maps/), or save "
                             "one for the rig with the add-on's Save Bone Map") from exc
        scene.frame_start, scene.frame_end = applied.frame_start, applied.frame_end
        result.update(armature=obj.name, map_id=applied.map_id, map_name=applied.map_name,
                      map_score=applied.score, unmatched=list(applied.unmatched))
        result["warnings"] += list(applied.warnings)
        result["actions"].append(applied.action)
        return context, obj
    bpy.ops.wm.read_homefile(use_empty=True)
    context = bpy.context
    if frame_start is not None:
        context.scene.frame_start = frame_start
    try:
        imported = take_import.import_take(context, take, spec.get("video"), with_mesh=False)  # armature only
    except (take_import.ImportFailed, take_format.TakeError) as exc:
        raise StepFailed("import", str(exc), "re-run the clip with --force; if it fails again, report it with "
                         "the clip's log") from exc
    obj = bpy.data.objects[imported.armature]
    action = obj.animation_data.action
    if action is not None and action.name != name:
        action.name = name
    result.update(armature=obj.name, map_id=None, map_name=None, unmatched=[])
    result["warnings"] += list(imported.warnings)
    result["actions"].append(action.name if action is not None else None)
    return context, obj


def _scene_rate(bpy: Any, spec: dict, take_fps: float) -> float:
    """Frames per second the keys land at: the rig file's scene, or the Take's own rate for Reel2Rig's armature."""
    from .take_prepare import scene_rate

    if spec.get("rig"):
        _rig_armature(bpy, spec["rig"], spec.get("rig_object"))
        render = bpy.context.scene.render
        return render.fps / render.fps_base
    return scene_rate(take_fps).rate


def run(spec: dict) -> dict:
    import bpy
    import numpy as np

    from . import export

    out_dir = Path(spec["out_dir"])
    name = spec["name"]
    result: dict[str, Any] = {"ok": True, "warnings": [], "exports": [], "actions": [], "parts": []}
    with np.load(spec["take"], allow_pickle=False) as data:
        timestamps, take_fps = data["timestamps"], float(data["fps"])   # (T,)
    n_frames = len(timestamps)
    ranges = _part_ranges(n_frames, spec.get("part_frames"))
    rate = _scene_rate(bpy, spec, take_fps) if len(ranges) > 1 else None
    for k, (start, end) in enumerate(ranges, start=1):
        part_name = name if len(ranges) == 1 else f"{name}_part{k:03d}"
        take, frame_start = spec["take"], None
        if rate is not None:
            take = str(_slice_take(spec["take"], start, end, out_dir / f".{part_name}.take.npz", k, len(ranges)))
            frame_start = _part_frame_start(timestamps, start, rate)
        try:
            context, obj = _build(bpy, spec, take, part_name, frame_start, result)
        finally:
            if take != spec["take"]:
                Path(take).unlink(missing_ok=True)
                Path(take).with_name(Path(take).name.replace(".take.npz", ".take.json")).unlink(missing_ok=True)
        action = obj.animation_data.action if obj.animation_data else None
        part: dict[str, Any] = {"name": part_name, "frames": [start, end]}
        if action is not None:
            first, last = (int(round(f)) for f in action.frame_range)
            part["frame_range"] = [first, last]
            result["scene_fps"] = context.scene.render.fps / context.scene.render.fps_base
        result["parts"].append(part)
        for fmt in spec.get("formats", []):
            path = out_dir / f"{part_name}.{export.EXTENSIONS[fmt].lstrip('.')}"
            preset = spec.get("fbx_preset", "default") if fmt == "fbx" else "default"
            try:
                done = export.export_armature(context, obj, str(path), fmt, preset, overwrite=True)
            except export.ExportError as exc:
                raise StepFailed("export", str(exc), "see the clip's log; other formats can still be asked for "
                                 "with --format") from exc
            result["exports"].append({"fmt": fmt, "part": k, "path": done.path, "files": list(done.files),
                                      "bones": done.bones, "frame_start": done.frame_start,
                                      "frame_end": done.frame_end, "seconds": round(done.seconds, 3)})
            result["warnings"] += list(done.warnings)
    result["action"] = result["actions"][0] if len(result["actions"]) == 1 else None
    result["frames"] = n_frames
    first_range = result["parts"][0].get("frame_range")
    last_range = result["parts"][-1].get("frame_range")
    if first_range and last_range:
        result["frame_range"] = [first_range[0], last_range[1]]
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
