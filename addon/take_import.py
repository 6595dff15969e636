"""Build Blender data from a Take: a collection with an armature (keyed by one action) and a camera with the clip
as its background. Touches bpy — call from the main thread only.

All the arithmetic lives in ``take_prepare`` (no bpy); this module copies its arrays into Blender:

* edit bones are made with head (0, 0, 0) and tail (0, length, 0), then ``edit_bone.matrix = rest`` (Blender keeps
  the length and derives head, tail and roll from the matrix), parented, unconnected;
* keys are written in bulk through the action's channelbag (``keyframe_points.add`` + ``foreach_set``), LINEAR;
* the body mesh (Anny Takes, from the mesh sidecar): one vertex group per bone, filled in batches of equal weight
  (``vertex_group.add``), parented to the armature with an Armature modifier (linear blend skinning, like the
  engine's); a missing or unreadable mesh sidecar is a warning, the rest imports;
* on any failure everything made so far is removed and the scene settings are put back, so the file is exactly as
  before, and :class:`ImportFailed` is raised with the reason.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from . import take_prepare
from .take_prepare import PreparedTake, interleave, take_format


class ImportFailed(Exception):
    """The Take could not be imported; the scene was left as it was."""


@dataclasses.dataclass(frozen=True)
class ImportResult:
    collection: str
    armature: str  # object name
    action: str
    camera: str
    camera_action: str | None
    clip: str | None
    frames: int
    frame_start: int
    frame_end: int
    warnings: tuple[str, ...]
    mesh: str | None = None  # the body mesh object's name (Anny Takes with a mesh sidecar)

    def summary(self) -> str:
        text = (f"Imported {self.frames} frames onto '{self.armature}' (action '{self.action}', "
                f"frames {self.frame_start}–{self.frame_end})")
        return " ".join([text + "."] + list(self.warnings))


def import_take(context: bpy.types.Context, take_path: str, video: str | None = None,
                with_mesh: bool = True) -> ImportResult:
    """Read a ``.take.npz`` and build it into ``context.scene``. Raises TakeError / ImportFailed; never half-builds.
    ``with_mesh=False`` leaves out the body mesh (the batch's exports carry the armature only)."""
    take = take_format.read_take(take_path)  # TakeError: missing, unreadable, newer schema
    warnings: list[str] = []
    if video and not Path(video).is_file():
        warnings.append(f"Video '{video}' not found: the camera has no background.")
        video = None
    prepared = take_prepare.prepare_take(take, frame_start=context.scene.frame_start, video=video,
                                         with_mesh=with_mesh)
    if prepared.mesh_warning:
        warnings.append(prepared.mesh_warning)
    builder = _Builder(context)
    try:
        result = builder.build(prepared, warnings)
    except BaseException as exc:
        builder.rollback()
        raise ImportFailed(f"{take_path}: import failed, scene left unchanged: {exc}") from exc
    return result


# --------------------------------------------------------------------------------------------------------------
# keyframe writing


def _linear_value() -> int:
    return int(bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value)  # type: ignore


def fcurve_container(obj: bpy.types.Object, action: bpy.types.Action) -> Any:
    """Assign ``action`` to ``obj`` and return what holds its F-curves: the channelbag (4.4+) or the action."""
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    if hasattr(action, "layers"):  # 4.4+: layered actions; a slot must be assigned before curves are made
        slot = ad.action_slot or action.slots.new(id_type="OBJECT", name=obj.name)
        ad.action_slot = slot
        layer = action.layers[0] if action.layers else action.layers.new("Layer")
        strip: Any = layer.strips[0] if layer.strips else layer.strips.new(type="KEYFRAME")
        return strip.channelbag(slot, ensure=True)
    return action  # 4.2 / 4.3


def write_channel(container: Any, data_path: str, index: int, frames: np.ndarray, values: np.ndarray,
                  group: str) -> bpy.types.FCurve:
    """One F-curve with a key per frame, LINEAR, written in bulk."""
    if isinstance(container, bpy.types.Action):  # 4.2/4.3 legacy F-curves, grouped with `action_group`
        fc = container.fcurves.new(data_path, index=index, action_group=group)  # type: ignore[attr-defined]
    else:  # a channelbag (4.4+); `group_name` arrived after the first layered-action release
        try:
            fc = container.fcurves.new(data_path, index=index, group_name=group)
        except TypeError:
            fc = container.fcurves.new(data_path, index=index)
    points = fc.keyframe_points
    points.add(int(frames.shape[0]))
    points.foreach_set("co", interleave(frames, values))
    points.foreach_set("interpolation", np.full(frames.shape[0], _linear_value(), dtype=np.int32))
    fc.update()
    return fc


def pose_bone_path(bone_name: str, prop: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"].{prop}'


# --------------------------------------------------------------------------------------------------------------
# building with rollback


_SCENE_SETTINGS = (
    ("render", "fps"), ("render", "fps_base"), ("scene", "frame_end"),
    ("render", "resolution_x"), ("render", "resolution_y"), ("render", "resolution_percentage"),
    ("render", "pixel_aspect_x"), ("render", "pixel_aspect_y"), ("scene", "camera"),
)


class _Builder:
    """Creates the Take's data blocks, remembering each one so that :meth:`rollback` can remove them."""

    def __init__(self, context: bpy.types.Context):
        self.context = context
        self.scene = context.scene
        self.view_layer = context.view_layer
        self.objects: list[bpy.types.Object] = []
        self.ids: list[Any] = []  # armatures, cameras, actions, clips, collections — removed in reverse
        self.saved: dict[tuple[str, str], Any] = {}
        self.active = self.view_layer.objects.active
        self.selected = [ob for ob in self.view_layer.objects if ob.select_get()]
        self.edit_object: bpy.types.Object | None = None

    # -- bookkeeping -------------------------------------------------------------------------------------------
    def _target(self, owner: str) -> Any:
        return self.scene.render if owner == "render" else self.scene

    def _set(self, owner: str, name: str, value: Any) -> None:
        key = (owner, name)
        if key not in self.saved:
            self.saved[key] = getattr(self._target(owner), name)
        setattr(self._target(owner), name, value)

    def _new(self, block: Any) -> Any:
        self.ids.append(block)
        return block

    def rollback(self) -> None:
        if self.edit_object is not None:
            try:
                bpy.ops.object.mode_set(mode="OBJECT")
            except Exception:
                pass
        for ob in reversed(self.objects):
            try:
                bpy.data.objects.remove(ob, do_unlink=True)
            except ReferenceError:
                pass
        collections = {
            bpy.types.Armature: bpy.data.armatures, bpy.types.Camera: bpy.data.cameras,
            bpy.types.Action: bpy.data.actions, bpy.types.MovieClip: bpy.data.movieclips,
            bpy.types.Collection: bpy.data.collections, bpy.types.Mesh: bpy.data.meshes,
            bpy.types.Material: bpy.data.materials,
        }
        for block in reversed(self.ids):
            for kind, data in collections.items():
                try:
                    if isinstance(block, kind):
                        data.remove(block)  # type: ignore[attr-defined]
                        break
                except ReferenceError:
                    break
        for (owner, name), value in self.saved.items():
            try:
                setattr(self._target(owner), name, value)
            except (ReferenceError, AttributeError, TypeError, ValueError):
                pass
        try:
            for ob in self.view_layer.objects:
                if ob is not None:  # the view layer may list a removed object's base until it is synced
                    ob.select_set(ob in self.selected)
            self.view_layer.objects.active = self.active
        except ReferenceError:
            pass

    # -- the build ---------------------------------------------------------------------------------------------
    def build(self, take: PreparedTake, warnings: list[str]) -> ImportResult:
        active = self.view_layer.objects.active
        if active is not None and active.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        collection = self._new(bpy.data.collections.new(take.name))
        self.scene.collection.children.link(collection)

        self._set("render", "fps", take.rate.fps)
        self._set("render", "fps_base", take.rate.fps_base)
        self._set("scene", "frame_end", max(take.frame_end, take.frame_start))

        armature_obj = self._build_armature(take, collection)
        action = self._key_pose(take, armature_obj)
        if action.name != take.name:
            warnings.append(f"An action named '{take.name}' already exists: this take was written to "
                            f"'{action.name}' and the existing one was left untouched.")
        camera_obj, camera_action = self._build_camera(take, collection)
        clip = self._attach_clip(take, camera_obj, warnings)
        mesh_obj = self._build_mesh(take, armature_obj, collection) if take.mesh is not None else None

        armature_obj["reel2rig_take"] = take.take_path
        armature_obj["reel2rig_video"] = take.video or ""
        armature_obj["reel2rig_schema"] = str(take.meta.get("schema_version", ""))
        armature_obj["reel2rig_meta"] = json.dumps(take.meta, sort_keys=True, default=str)
        armature_obj["reel2rig_camera"] = camera_obj.name
        armature_obj["reel2rig_mesh"] = mesh_obj.name if mesh_obj is not None else ""
        for ob in (camera_obj, mesh_obj):
            if ob is not None:
                ob["reel2rig_take"] = take.take_path
                ob["reel2rig_armature"] = armature_obj.name

        for ob in self.view_layer.objects:
            ob.select_set(False)
        armature_obj.select_set(True)
        self.view_layer.objects.active = armature_obj
        self.scene.frame_set(self.scene.frame_current)
        return ImportResult(
            collection=collection.name, armature=armature_obj.name, action=action.name, camera=camera_obj.name,
            camera_action=camera_action.name if camera_action else None, clip=clip.name if clip else None,
            frames=int(take.frames.shape[0]), frame_start=take.frame_start, frame_end=int(self.scene.frame_end),
            warnings=tuple(warnings), mesh=mesh_obj.name if mesh_obj is not None else None)

    def _link_object(self, name: str, data: Any, collection: bpy.types.Collection) -> bpy.types.Object:
        ob = bpy.data.objects.new(name, data)
        self.objects.append(ob)
        collection.objects.link(ob)
        return ob

    def _build_armature(self, take: PreparedTake, collection: bpy.types.Collection) -> bpy.types.Object:
        armature = self._new(bpy.data.armatures.new(take.name))
        ob = self._link_object(take.name, armature, collection)
        ob.show_in_front = True
        # Edit mode needs the armature active and alone in the selection (else others join the edit session).
        for other in self.view_layer.objects:
            other.select_set(False)
        ob.select_set(True)
        self.view_layer.objects.active = ob
        bpy.ops.object.mode_set(mode="EDIT")
        self.edit_object = ob
        edit_bones = []
        for j, name in enumerate(take.bone_names):
            eb = armature.edit_bones.new(name)
            if eb.name != name:
                raise ImportFailed(f"bone name '{name}' is not usable in Blender (became '{eb.name}'; "
                                   "names are limited to 63 bytes)")
            eb.head = (0.0, 0.0, 0.0)
            eb.tail = (0.0, float(take.bone_lengths[j]), 0.0)
            eb.roll = 0.0
            eb.matrix = Matrix(take.rest_matrices[j].tolist())  # keeps the length; sets head, tail, roll
            eb.use_connect = False
            edit_bones.append(eb)
        for j, parent in enumerate(take.bone_parents):
            if parent >= 0:
                edit_bones[j].parent = edit_bones[int(parent)]
        bpy.ops.object.mode_set(mode="OBJECT")
        self.edit_object = None
        if len(armature.bones) != len(take.bone_names):
            raise ImportFailed(f"Blender kept {len(armature.bones)} of {len(take.bone_names)} bones")
        for pose_bone in ob.pose.bones:
            pose_bone.rotation_mode = "QUATERNION"
        return ob

    def _build_mesh(self, take: PreparedTake, armature_obj: bpy.types.Object,
                    collection: bpy.types.Collection) -> bpy.types.Object:
        """The body mesh at the armature's rest, skinned to it (vertex groups named after the bones + an Armature
        modifier), child of the armature, with one plain material."""
        pm = take.mesh
        assert pm is not None
        name = f"{take.name}_body"
        me = self._new(bpy.data.meshes.new(name))
        n_verts, n_faces = int(pm.vertices.shape[0]), int(pm.faces.shape[0])
        me.vertices.add(n_verts)
        me.vertices.foreach_set("co", pm.vertices.astype(np.float32).ravel())
        me.loops.add(3 * n_faces)
        me.loops.foreach_set("vertex_index", pm.faces.astype(np.int32).ravel())
        me.polygons.add(n_faces)
        me.polygons.foreach_set("loop_start", np.arange(0, 3 * n_faces, 3, dtype=np.int32))
        me.update()
        if me.validate(verbose=False):
            raise ImportFailed(f"the body mesh {pm.path} has invalid faces")
        me.polygons.foreach_set("use_smooth", np.ones(n_faces, dtype=bool))
        material = self._new(bpy.data.materials.new(name))
        material.diffuse_color = (0.45, 0.78, 0.52, 1.0)  # Solid view / Workbench: apart from skin and sky
        material.roughness = 0.6
        me.materials.append(material)

        ob = self._link_object(name, me, collection)
        ob.parent = armature_obj  # the armature sits at the identity: no parent inverse needed
        groups = [ob.vertex_groups.new(name=bone) for bone in take.bone_names]
        for bone, weight, vertices in pm.weight_batches:
            groups[bone].add(vertices.tolist(), weight, "REPLACE")
        modifier = ob.modifiers.new("Armature", "ARMATURE")
        assert isinstance(modifier, bpy.types.ArmatureModifier)
        modifier.object = armature_obj
        modifier.use_vertex_groups = True
        modifier.use_bone_envelopes = False
        modifier.use_deform_preserve_volume = False  # linear blend skinning, as the engine skins
        return ob

    def _key_pose(self, take: PreparedTake, ob: bpy.types.Object) -> bpy.types.Action:
        action = self._new(bpy.data.actions.new(take.name))
        container = fcurve_container(ob, action)
        frames = take.frames
        for j, name in enumerate(take.bone_names):
            path = pose_bone_path(name, "rotation_quaternion")
            for i in range(4):
                write_channel(container, path, i, frames, take.quaternions[:, j, i], group=name)
        root = take.bone_names[0]
        path = pose_bone_path(root, "location")
        for i in range(3):
            write_channel(container, path, i, frames, take.root_location[:, i], group=root)
        return action

    def _build_camera(self, take: PreparedTake,
                      collection: bpy.types.Collection) -> tuple[bpy.types.Object, bpy.types.Action | None]:
        cam = take.camera
        name = f"{take.name}_camera"
        data = self._new(bpy.data.cameras.new(name))
        data.sensor_fit = "HORIZONTAL"
        data.sensor_width = cam.sensor_width_mm
        data.lens_unit = "MILLIMETERS"
        data.lens = cam.lens_mm
        data.shift_x = cam.shift_x
        data.shift_y = cam.shift_y
        data.clip_start = 0.01
        data.clip_end = 1000.0
        ob = self._link_object(name, data, collection)
        ob.rotation_mode = "QUATERNION"
        ob.matrix_world = Matrix(cam.cam2world[0].tolist())

        self._set("render", "resolution_x", cam.resolution[0])
        self._set("render", "resolution_y", cam.resolution[1])
        self._set("render", "resolution_percentage", 100)
        # Blender's pixel aspects are both >= 1; their ratio y/x is fx/fy.
        aspect = cam.pixel_aspect
        self._set("render", "pixel_aspect_x", 1.0 if aspect >= 1.0 else 1.0 / aspect)
        self._set("render", "pixel_aspect_y", aspect if aspect >= 1.0 else 1.0)
        self._set("scene", "camera", ob)

        action = None
        if cam.animated:
            action = self._new(bpy.data.actions.new(name))
            container = fcurve_container(ob, action)
            for i in range(3):
                write_channel(container, "location", i, take.frames, cam.locations[:, i], group="Object Transforms")
            for i in range(4):
                write_channel(container, "rotation_quaternion", i, take.frames, cam.quaternions[:, i],
                              group="Object Transforms")
        return ob, action

    def _attach_clip(self, take: PreparedTake, camera_obj: bpy.types.Object,
                     warnings: list[str]) -> bpy.types.MovieClip | None:
        if not take.video:
            warnings.append("No source video found for this take: the camera has no background.")
            return None
        try:
            clip = self._new(bpy.data.movieclips.load(take.video, check_existing=False))
        except RuntimeError as exc:
            warnings.append(f"Could not load '{take.video}' as the camera background ({exc}).")
            return None
        # Source frame frame_ids[0] is shown at the scene's frame_start, where the first key is.
        clip.frame_start = take.frame_start - take.source_first_frame
        camera = camera_obj.data
        assert isinstance(camera, bpy.types.Camera)
        camera.show_background_images = True
        background = camera.background_images.new()
        background.source = "MOVIE_CLIP"
        background.clip = clip
        background.use_camera_clip = False
        background.alpha = 1.0
        background.frame_method = "FIT"
        return clip
