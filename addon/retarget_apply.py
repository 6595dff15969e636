"""Apply a Take to a user's armature: a new action with the retargeted motion. Touches bpy — main thread only.

The arithmetic is in ``retarget_prepare`` and ``rigs/`` (no bpy). This module reads the armature's rest pose out of
Blender, and writes the prepared channels as one new action:

* never replaces an action silently: the armature's previous action stays in the file (with a fake user, so saving
  keeps it) and the report names it;
* on any failure the new action is removed and the previous assignment restored, so the file is as before;
* called from an operator with ``UNDO``, the whole apply is one undo step.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import bpy
import numpy as np

from . import armature_data, retarget_prepare
from .retarget_prepare import AUTO, PreparedRetarget, RetargetFailed
from .take_import import fcurve_container, pose_bone_path, write_channel
from .take_prepare import take_format

try:
    from ..rigs import bonemap, retarget
except ImportError:  # checkout on sys.path
    from rigs import bonemap, retarget  # type: ignore[no-redef]


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    armature: str
    action: str
    previous_action: str | None
    map_id: str
    map_name: str
    score: float
    frames: int
    frame_start: int
    frame_end: int
    report: str
    unmatched: tuple[str, ...]
    warnings: tuple[str, ...]
    prepared: PreparedRetarget = dataclasses.field(repr=False, compare=False)  # the solve, for checks and benchmarks

    def summary(self) -> str:
        text = (f"Applied {self.frames} frames to '{self.armature}' as action '{self.action}' "
                f"(frames {self.frame_start}–{self.frame_end}). {self.report}")
        if self.previous_action:
            text += f" Its previous action '{self.previous_action}' is kept in the file."
        return " ".join([text] + list(self.warnings))


#: Constraints that replace a bone's rotation: keys on such a bone do not show.
_OVERRIDING = {"COPY_TRANSFORMS", "COPY_ROTATION", "CHILD_OF", "ARMATURE", "DAMPED_TRACK", "TRACK_TO",
               "LOCKED_TRACK", "IK", "SPLINE_IK", "STRETCH_TO"}


def constraint_driven(obj: bpy.types.Object, bones: list[str]) -> list[str]:
    """The bones among ``bones`` whose own constraints override their rotation (so keys on them would not show)."""
    out = []
    for name in bones:
        pb = obj.pose.bones.get(name)
        if pb is None:
            continue
        if any(c.type in _OVERRIDING and c.enabled and c.influence > 0.5 for c in pb.constraints):
            out.append(name)
    return out


def armature_skeleton(obj: bpy.types.Object) -> retarget.Skeleton:
    """The armature's rest pose: bone names, parents, ``bone.matrix_local`` and the object's world matrix."""
    if obj is None or obj.type != "ARMATURE":
        raise RetargetFailed("select an armature to apply the take to")
    bones = obj.data.bones
    if len(bones) == 0:
        raise RetargetFailed(f"armature '{obj.name}' has no bones")
    names = [b.name for b in bones]
    parents = [b.parent.name if b.parent else None for b in bones]
    return retarget_prepare.target_skeleton(names, parents, armature_data.rest_matrices(obj),
                                            np.array(obj.matrix_world, dtype=np.float64))


def known_maps(presets_dir: str | None = None, errors: list[str] | None = None) -> dict[str, bonemap.BoneMap]:
    return bonemap.all_maps(presets_dir or None, errors)


def detect_map(obj: bpy.types.Object, presets_dir: str | None = None) -> list[bonemap.Match]:
    """Every known map scored against ``obj``, best first."""
    skel = armature_skeleton(obj)
    return bonemap.detect(list(skel.names), retarget_prepare.parent_names(skel),
                          known_maps(presets_dir).values())


def apply_take(context: bpy.types.Context, obj: bpy.types.Object, take_path: str, map_id: str = AUTO,
               presets_dir: str | None = None, action_name: str | None = None,
               foot_lock: bool = False) -> ApplyResult:
    """Retarget the Take at ``take_path`` onto armature ``obj`` as a new action. Raises TakeError/RetargetFailed."""
    take = take_format.read_take(take_path)
    skeleton = armature_skeleton(obj)
    modes = {pb.name: pb.rotation_mode for pb in obj.pose.bones}
    scene = context.scene
    rate = scene.render.fps / scene.render.fps_base
    prepared = retarget_prepare.prepare(take, skeleton, modes, known_maps(presets_dir), map_id,
                                        frame_start=scene.frame_start, rate=rate, take_path=take_path,
                                        foot_lock=foot_lock)
    for bone, prop, _ in prepared.properties:
        if obj.pose.bones[bone].get(prop) is None:
            raise RetargetFailed(f"the '{prepared.target_map.map.name}' map keys '{prop}' on bone '{bone}', which "
                                 "this armature does not have; is it the rig the map is for?")
    mapped = [skeleton.names[p.target] for p in prepared.result.plan.pairs]
    driven = constraint_driven(obj, mapped)
    warnings = []
    if driven:
        warnings.append(f"{len(driven)} of the keyed bones are driven by constraints and will not follow their keys "
                        f"({', '.join(driven[:4])}{'…' if len(driven) > 4 else ''}): choose the map for the rig's "
                        "controls (e.g. Rigify's FK controls rather than its DEF bones).")
    return _write(context, obj, prepared, action_name or f"{prepared.name} on {obj.name}", tuple(warnings))


def _write(context: bpy.types.Context, obj: bpy.types.Object, prepared: PreparedRetarget,
           name: str, warnings: tuple[str, ...] = ()) -> ApplyResult:
    ad = obj.animation_data
    previous = ad.action if ad is not None else None
    previous_slot = getattr(ad, "action_slot", None) if ad is not None else None
    had_animation_data = ad is not None
    saved_props = {(b, p): obj.pose.bones[b][p] for b, p, _ in prepared.properties}
    action = bpy.data.actions.new(name)
    try:
        container = fcurve_container(obj, action)
        frames = prepared.frames
        for ch in prepared.channels:
            path = pose_bone_path(ch.bone, ch.prop)
            for i in range(ch.values.shape[1]):
                write_channel(container, path, i, frames, ch.values[:, i], group=ch.bone)
        for bone, prop, value in prepared.properties:
            obj.pose.bones[bone][prop] = value
            data_path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"]["{bpy.utils.escape_identifier(prop)}"]'
            write_channel(container, data_path, 0, frames[:1], np.array([value]), group=bone)
        if previous is not None:
            previous.use_fake_user = True  # saving the file keeps it even though nothing uses it now
        context.scene.frame_set(context.scene.frame_current)
    except BaseException:
        bpy.data.actions.remove(action)
        if had_animation_data and obj.animation_data is not None:
            obj.animation_data.action = previous
            if previous_slot is not None and hasattr(obj.animation_data, "action_slot"):
                obj.animation_data.action_slot = previous_slot
        elif obj.animation_data is not None:
            obj.animation_data_clear()
        for (bone, prop), value in saved_props.items():
            obj.pose.bones[bone][prop] = value
        raise
    match = prepared.target_map
    return ApplyResult(armature=obj.name, action=action.name, previous_action=previous.name if previous else None,
                       map_id=match.map.id, map_name=match.map.name, score=match.score,
                       frames=int(prepared.frames.shape[0]), frame_start=int(np.floor(prepared.frames[0])),
                       frame_end=int(np.ceil(prepared.frames[-1])), report=prepared.report(),
                       unmatched=prepared.unmatched, warnings=warnings, prepared=prepared)


def save_map_preset(obj: bpy.types.Object, presets_dir: str, preset_id: str, name: str = "",
                    overwrite: bool = False) -> Path:
    """Write the map that fits ``obj`` best as a user preset (``<presets_dir>/<preset_id>.toml``) to edit by hand."""
    if not presets_dir:
        raise RetargetFailed("set a presets folder in the Reel2Rig preferences first")
    best = detect_map(obj, presets_dir)[0]
    bones = {j: bonemap.strip_namespace(b) for j, b in best.bones.items()}
    preset = dataclasses.replace(best.map, id=preset_id, name=name or preset_id, bones=bones, builtin=False,
                                 path=None, description=f"Saved from armature '{obj.name}'")
    try:
        return bonemap.save(preset, presets_dir, overwrite=overwrite)
    except bonemap.MapError as exc:
        raise RetargetFailed(str(exc)) from exc
