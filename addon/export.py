"""Export an armature with its action and the meshes parented to it: FBX, BVH, glTF (.glb / .gltf) or .blend.
Touches bpy — call from the main thread only.

:func:`export_armature` is the whole contract; ``REEL2RIG_OT_export`` (``reel2rig.export``) is a thin operator over
it. Every format is written the same way:

* only the armature, its assigned action and the meshes parented to it (directly or through other meshes) go into
  the file — nothing else in the scene; the frame range defaults to the action's;
* files appear atomically: the exporter writes into a hidden staging folder next to the destination (same file
  system, final file names, so a .gltf names its .bin correctly), then each file is moved into place — an
  export that fails leaves no file behind, partial or whole;
* an existing file is never replaced unless ``overwrite=True``;
* selection, active object, mode, current frame, frame range and everything else the exporters need changed is
  put back afterwards, whether the export worked or not.

Formats, and what a re-import gives back (``tests/blender/test_export.py`` measures it, in metres, world space):

* **FBX** — Blender's exporter with one of :data:`FBX_PRESETS` (``default``, ``unity``, ``unreal``). All presets
  bake every frame with ``bake_anim_simplify_factor=0``: Blender's default (1.0) drops keys it judges redundant and
  moved joints by 1.1 mm on the test rig. Blender's importer puts FBX time 0 on frame 1 (``anim_offset=1``): import
  with ``anim_offset=0`` to get the same frame numbers back.
* **BVH** — written here, not with Blender's exporter, because that one writes armature space and drops the
  object's transform (a Mixamo import is rotated 90° and scaled 0.01). This writer samples every bone in world
  space and writes metres, Y up (BVH's convention), ``Zrotation Xrotation Yrotation`` channels. Blender's BVH
  importer with its default axes (forward -Z, up Y) and ``frame_start`` = the first exported frame gives the same
  world joints back. A joint gets position channels only when it moves relative to its parent (the root always).
* **glTF** — Blender's exporter, Y up, the assigned action sampled on every frame (within the action's range:
  a wider requested range gets a warning).
* **.blend** — ``bpy.data.libraries.write`` with the armature object, its data, action and mesh children (their
  meshes, materials and images come along); append the objects to use them. Paths inside are written absolute.

What survives a round trip: every joint (bone head) on every frame, in every format. FBX and glTF also keep each
bone's direction; glTF keeps no bone lengths, FBX those of bones with one child (and of the last bones with the
default preset's leaf bones). BVH keeps the lengths and directions of bones with one child or none, and no rolls.
Importers choose the rest (a branching bone, say, reaches for the mean of its children).
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from . import armature_data
from .operators import Reel2RigError, _Reel2RigOperator

if TYPE_CHECKING:
    from .operators import Result


class ExportError(Reel2RigError):
    """The export could not be done; nothing was written and the scene is as it was. The message says why."""


EXTENSIONS = {"fbx": ".fbx", "bvh": ".bvh", "glb": ".glb", "gltf": ".gltf", "blend": ".blend"}

# Settings every FBX export uses, whatever the target.
_FBX_COMMON: dict[str, Any] = dict(
    use_selection=True,  # exactly the objects export_armature selects: the armature and its meshes
    object_types={"ARMATURE", "MESH"},
    use_mesh_modifiers=True,  # other modifiers applied (the Armature modifier never is: the mesh stays bound)
    bake_anim=True,
    bake_anim_use_all_bones=True,  # a key on every bone on every frame: engines want complete tracks
    bake_anim_use_nla_strips=False,  # the assigned action only, not the NLA strips ...
    bake_anim_use_all_actions=False,  # ... nor every action in the file
    bake_anim_force_startend_keying=True,
    bake_anim_step=1.0,
    bake_anim_simplify_factor=0.0,  # keep every baked key: the default 1.0 moved joints by 1.1 mm
    primary_bone_axis="Y",  # Blender's own bone axes: Blender, Maya, Unity and Unreal read them back correctly,
    secondary_bone_axis="X",  # and a re-import into Blender keeps the rolls
    armature_nodetype="NULL",  # the armature object as a plain node: what every importer expects
    path_mode="ABSOLUTE",  # the file is written in a staging folder first: relative texture paths would break
    embed_textures=False,
    batch_mode="OFF",
    use_metadata=True,
    bake_space_transform=False,  # "Apply Transform" is marked experimental and breaks armature animation
)

FBX_PRESETS: dict[str, dict[str, Any]] = {
    # Blender, Maya, MotionBuilder, Houdini: FBX's own conventions (Y up, -Z forward, centimetres in the file with
    # Blender's metres converted into the objects' transforms), every bone (control bones carry motion too) and a
    # leaf "_end" bone on each chain so that the last bones keep their length (import with "Ignore Leaf Bones").
    "default": dict(axis_forward="-Z", axis_up="Y", global_scale=1.0, apply_unit_scale=True,
                    apply_scale_options="FBX_SCALE_NONE", add_leaf_bones=True, use_armature_deform_only=False,
                    mesh_smooth_type="OFF"),
    # Unity: Y up, -Z forward (Unity's importer flips X for its left-handed space, so a character facing Blender's
    # -Y faces Unity's +Z). "FBX Units Scale" puts metres into the file's unit scale, so objects arrive at scale 1
    # instead of 100. No leaf bones (Unity would make them real transforms), deform bones only (the avatar needs
    # no control bones), face smoothing written (Unity warns without it).
    "unity": dict(axis_forward="-Z", axis_up="Y", global_scale=1.0, apply_unit_scale=True,
                  apply_scale_options="FBX_SCALE_UNITS", add_leaf_bones=False, use_armature_deform_only=True,
                  mesh_smooth_type="FACE"),
    # Unreal: its importer converts FBX's Y-up axes to its Z-up ones, and works in centimetres, which is what
    # "All Local" writes (file unit scale 1 = cm, no unit conversion on import). No leaf bones (they become real
    # bones of the skeleton), deform bones only (an Unreal skeleton holds skinning bones), face smoothing.
    # Unreal adds the armature object as a root bone unless the object is named "Armature".
    "unreal": dict(axis_forward="-Z", axis_up="Y", global_scale=1.0, apply_unit_scale=True,
                   apply_scale_options="FBX_SCALE_NONE", add_leaf_bones=False, use_armature_deform_only=True,
                   mesh_smooth_type="FACE"),
}

_GLTF_SETTINGS: dict[str, Any] = dict(
    use_selection=True,
    export_yup=True,  # glTF is Y up by specification
    export_animations=True,
    export_animation_mode="ACTIVE_ACTIONS",  # the assigned action, not every action that could drive the rig
    export_frame_range=True,  # within the scene range, which export_armature sets to the requested frames
    export_force_sampling=True,  # sample every frame: constraints and drivers are baked in
    export_frame_step=1,
    export_def_bones=False,  # every bone, as FBX's default preset
    export_leaf_bone=False,
    export_rest_position_armature=True,
    export_anim_slide_to_zero=False,  # keep frame numbers: time = frame / fps
    export_skins=True,
    export_cameras=False,
    export_lights=False,
    export_apply=False,  # modifiers are not applied: the skinned mesh stays bound to the armature
)


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """What to write; :func:`export_settings` validates and makes one."""

    path: str  # absolute, with the format's extension
    fmt: str  # a key of EXTENSIONS
    preset: str = "default"  # a key of FBX_PRESETS (FBX only)
    frame_range: tuple[int, int] | None = None  # None: the action's range
    overwrite: bool = False


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: str
    files: tuple[str, ...]  # every file written, the main one last (a .gltf comes with its .bin)
    fmt: str
    preset: str
    armature: str
    meshes: tuple[str, ...]
    action: str | None
    frame_start: int
    frame_end: int
    bones: int
    seconds: float
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        what = f"'{self.armature}'"
        if self.meshes:
            what += f" with {len(self.meshes)} mesh{'es' if len(self.meshes) != 1 else ''}"
        action = f"action '{self.action}'" if self.action else "no action"
        kind = self.fmt.upper() + (f" ({self.preset})" if self.fmt == "fbx" else "")
        text = (f"Exported {what} to {kind} '{self.path}': {self.bones} bones, {action}, "
                f"frames {self.frame_start}–{self.frame_end}.")
        return " ".join([text] + list(self.warnings))


def export_settings(path: str, fmt: str, preset: str = "default", frame_range: Sequence[int] | None = None,
                    overwrite: bool = False) -> ExportSettings:
    """Check the request and make :class:`ExportSettings`; adds the format's extension when the path lacks it."""
    fmt = fmt.lower()
    if fmt not in EXTENSIONS:
        raise ExportError(f"Unknown export format '{fmt}'; use one of {', '.join(EXTENSIONS)}")
    if fmt == "fbx" and preset not in FBX_PRESETS:
        raise ExportError(f"Unknown FBX preset '{preset}'; use one of {', '.join(FBX_PRESETS)}")
    if fmt != "fbx" and preset != "default":
        raise ExportError(f"Presets are for FBX; a {fmt.upper()} export has none (got '{preset}')")
    if not path:
        raise ExportError("Choose a file to export to")
    full = bpy.path.ensure_ext(os.path.abspath(bpy.path.abspath(path)), EXTENSIONS[fmt])
    if not os.path.isdir(os.path.dirname(full)):
        raise ExportError(f"Folder '{os.path.dirname(full)}' does not exist; create it or choose another")
    if os.path.isdir(full):
        raise ExportError(f"'{full}' is a folder; choose a file name")
    frames = None
    if frame_range is not None:
        start, end = (int(f) for f in frame_range)
        if end < start:
            raise ExportError(f"Frame range {start}–{end} ends before it starts")
        frames = (start, end)
    return ExportSettings(path=full, fmt=fmt, preset=preset, frame_range=frames, overwrite=bool(overwrite))


def export_armature(context: bpy.types.Context, armature_obj: bpy.types.Object, path: str, fmt: str,
                    preset: str = "default", frame_range: Sequence[int] | None = None, *,
                    overwrite: bool = False) -> ExportResult:
    """Write ``armature_obj``, its action and its mesh children to ``path`` as ``fmt`` (fbx, bvh, glb, gltf,
    blend). ``frame_range`` (first, last), inclusive; default: the action's range (the current frame when there
    is no action). Raises :class:`ExportError`; on any failure nothing is written and the scene is unchanged."""
    return export(context, armature_obj, export_settings(path, fmt, preset, frame_range, overwrite))


def export(context: bpy.types.Context, armature_obj: bpy.types.Object, settings: ExportSettings) -> ExportResult:
    """:func:`export_armature` with settings already checked."""
    began = time.perf_counter()
    if armature_obj is None or armature_obj.type != "ARMATURE":
        name = getattr(armature_obj, "name", None)
        raise ExportError(f"'{name}' is not an armature; select the armature to export" if name
                          else "Select an armature to export")
    scene, view_layer = context.scene, context.view_layer
    if scene is None or view_layer is None:
        raise ExportError("No scene to export from")
    if armature_obj.name not in view_layer.objects:
        raise ExportError(f"'{armature_obj.name}' is not in the view layer '{view_layer.name}' "
                          "(its collection is excluded); include it to export")
    dest = Path(settings.path)
    if dest.exists() and not settings.overwrite:
        raise ExportError(f"'{dest}' already exists; choose another name or allow overwriting")

    action = armature_obj.animation_data.action if armature_obj.animation_data else None
    frame_start, frame_end = _frame_range(scene, action, settings.frame_range)
    meshes, warnings = _mesh_children(armature_obj, view_layer) if settings.fmt != "bvh" else ([], [])
    try:
        staging = Path(tempfile.mkdtemp(prefix=".reel2rig-export-", dir=dest.parent))
    except OSError as exc:
        raise ExportError(f"Cannot write in '{dest.parent}' ({exc.strerror}); choose another folder") from exc
    try:
        with _SceneState(scene, view_layer, armature_obj, meshes) as state:
            unselectable = state.prepare(frame_start, frame_end)
            if unselectable and settings.fmt in ("fbx", "glb", "gltf"):  # these export the selection
                if armature_obj in unselectable:
                    raise ExportError(f"'{armature_obj.name}' cannot be selected; make it visible to export")
                meshes = [m for m in meshes if m not in unselectable]
                names = ", ".join(sorted(m.name for m in unselectable))
                warnings.append(f"Not exported (cannot be selected): {names}.")
            writer = _WRITERS[settings.fmt]
            warnings += writer(context, armature_obj, meshes, action, staging / dest.name, settings,
                               (frame_start, frame_end))
        if not (staging / dest.name).is_file():
            raise ExportError(f"the {settings.fmt.upper()} exporter wrote no file")
        files = _publish(staging, dest, settings.overwrite)
    except ExportError as exc:
        raise ExportError(f"Export to '{dest}' failed, nothing was written: {exc}") from exc
    except Exception as exc:
        raise ExportError(f"Export to '{dest}' failed, nothing was written: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        path=str(dest), files=tuple(files), fmt=settings.fmt, preset=settings.preset, armature=armature_obj.name,
        meshes=tuple(m.name for m in meshes), action=action.name if action else None, frame_start=frame_start,
        frame_end=frame_end, bones=len(armature_obj.data.bones), seconds=time.perf_counter() - began,
        warnings=tuple(warnings))


def _frame_range(scene: bpy.types.Scene, action: bpy.types.Action | None,
                 requested: tuple[int, int] | None) -> tuple[int, int]:
    if requested is not None:
        return requested
    if action is None:
        return scene.frame_current, scene.frame_current
    start, end = action.frame_range[0], action.frame_range[1]  # the manual range if set, else the keys' extent
    return int(math.floor(start + 1e-6)), int(math.ceil(end - 1e-6))


def _mesh_children(armature_obj: bpy.types.Object,
                   view_layer: bpy.types.ViewLayer) -> tuple[list[bpy.types.Object], list[str]]:
    """Meshes parented to the armature, directly or through other such meshes (eyes on a head mesh)."""
    meshes: list[bpy.types.Object] = []
    skipped: list[str] = []
    pending = list(armature_obj.children)
    while pending:
        child = pending.pop(0)
        if child.type != "MESH":
            continue
        if child.name in view_layer.objects:
            meshes.append(child)
            pending.extend(child.children)
        else:
            skipped.append(child.name)
    warnings = []
    if skipped:
        warnings.append(f"Not exported (not in the view layer): {', '.join(sorted(skipped))}.")
    return meshes, warnings


def _publish(staging: Path, dest: Path, overwrite: bool) -> list[str]:
    """Move every file the exporter wrote in ``staging`` next to ``dest``, the main file last, each in one step
    (a rename on the same file system). Without ``overwrite``, a file that exists is an error and nothing moves."""
    main = staging / dest.name
    extra = sorted(p for p in staging.rglob("*") if p.is_file() and p != main)
    moves = [(p, dest.parent / p.relative_to(staging)) for p in extra] + [(main, dest)]
    if not overwrite:
        taken = [str(target) for _, target in moves if target.exists()]
        if taken:
            raise ExportError(f"'{taken[0]}' already exists; choose another name or allow overwriting")
    done: list[Path] = []
    try:
        for source, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            if overwrite:
                os.replace(source, target)
            else:
                _move_no_clobber(source, target)
            done.append(target)
    except BaseException:
        for target in done:  # a file appeared under our feet: take back what this export had put in place
            target.unlink(missing_ok=True)
        raise
    return [str(t) for t in done]


def _move_no_clobber(source: Path, target: Path) -> None:
    """A hard link fails if the target exists (atomically, unlike a check then a rename); some file systems have
    no hard links, where the check-then-rename has to do."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise ExportError(f"'{target}' already exists; choose another name or allow overwriting") from None
    except OSError:
        if target.exists():
            raise ExportError(f"'{target}' already exists; choose another name or allow overwriting") from None
        os.replace(source, target)
    else:
        source.unlink()


# --------------------------------------------------------------------------------------------------------------
# the scene, as the exporters need it and as it was


class _SceneState:
    """Select exactly the export set, visible, in object mode, on the requested frame range with the assigned
    action alone evaluated; put everything back on exit (selection, active object and its mode, frame, range,
    visibility of the objects and of the collections holding them)."""

    def __init__(self, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, armature_obj: bpy.types.Object,
                 meshes: list[bpy.types.Object]):
        self.scene = scene
        self.view_layer = view_layer
        self.armature_obj = armature_obj
        self.export_set = [armature_obj] + meshes
        self.active = self.view_layer.objects.active
        self.mode = self.active.mode if self.active is not None else "OBJECT"
        self.selected = [ob for ob in self.view_layer.objects if ob.select_get()]
        self.frame = (self.scene.frame_current, self.scene.frame_subframe)
        self.range = (self.scene.frame_start, self.scene.frame_end)
        self.hidden = [(ob, ob.hide_get(), ob.hide_viewport, ob.hide_select) for ob in self.export_set]
        # the layer collections on the way to each exported object: their eye, monitor and arrow flags
        self.collections = {lc.name: (lc, lc.hide_viewport, lc.collection.hide_viewport, lc.collection.hide_select)
                            for ob in self.export_set for lc in _layer_collections_holding(self.view_layer, ob)}
        ad = armature_obj.animation_data
        self.use_nla = ad.use_nla if ad is not None else None

    def __enter__(self) -> _SceneState:
        return self

    def prepare(self, frame_start: int, frame_end: int) -> list[bpy.types.Object]:
        """Returns the objects of the export set that could still not be selected."""
        if self.active is not None and self.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")  # writes edit-mode bones and meshes back to their data
        ad = self.armature_obj.animation_data
        if ad is not None and ad.use_tweak_mode:
            raise ExportError(f"'{self.armature_obj.name}' is in NLA tweak mode; leave it to export its action")
        if ad is not None and ad.action is not None and len(ad.nla_tracks):
            ad.use_nla = False  # evaluate the assigned action alone
        # Exporters take the selected objects, and only visible objects can be selected (FBX also skips hidden
        # ones): show the export set for the export. Other objects this reveals stay unselected, so not exported.
        for lc, *_ in self.collections.values():
            lc.hide_viewport = False
            lc.collection.hide_viewport = False
            lc.collection.hide_select = False
        for ob, *_ in self.hidden:
            ob.hide_set(False)
            ob.hide_viewport = False
            ob.hide_select = False
        for ob in self.view_layer.objects:
            ob.select_set(False)
        for ob in self.export_set:
            ob.select_set(True)
        self.view_layer.objects.active = self.armature_obj
        # exporters take the scene's range: FBX bakes it, glTF clips the action to it
        self.scene.frame_start, self.scene.frame_end = frame_start, frame_end
        self.scene.frame_start = frame_start  # again: setting the end first may have clamped the start
        return [ob for ob in self.export_set if not (ob.select_get() and ob.visible_get())]

    def __exit__(self, *exc: object) -> None:
        scene = self.scene
        ad = self.armature_obj.animation_data
        if ad is not None and self.use_nla is not None and ad.use_nla != self.use_nla:
            ad.use_nla = self.use_nla
        scene.frame_start, scene.frame_end = self.range
        scene.frame_start = self.range[0]
        self._restore_selection()  # while everything is still selectable
        if self.active is not None and self.mode != "OBJECT" and self.active.mode != self.mode:
            bpy.ops.object.mode_set(mode=self.mode)
        for ob, hide, hide_viewport, hide_select in self.hidden:
            ob.hide_viewport, ob.hide_select = hide_viewport, hide_select
            ob.hide_set(hide)
        for lc, hide, collection_hide, collection_hide_select in self.collections.values():
            lc.hide_viewport = hide
            lc.collection.hide_viewport, lc.collection.hide_select = collection_hide, collection_hide_select
        self._restore_selection()  # hiding may have deselected
        scene.frame_set(self.frame[0], subframe=self.frame[1])

    def _restore_selection(self) -> None:
        for ob in self.view_layer.objects:
            if ob.select_get() != (ob in self.selected):
                ob.select_set(ob in self.selected)
        self.view_layer.objects.active = self.active


def _layer_collections_holding(view_layer: bpy.types.ViewLayer, ob: bpy.types.Object) -> list[Any]:
    """Every layer collection (below the scene's own) on a path down to one that holds ``ob``."""
    found: list[Any] = []

    def walk(lc: Any, path: list[Any]) -> None:
        if ob.name in lc.collection.objects:
            found.extend(path)
        for child in lc.children:
            if not child.exclude:
                walk(child, path + [child])

    walk(view_layer.layer_collection, [])
    return found


# --------------------------------------------------------------------------------------------------------------
# writers: (context, armature, meshes, action, file in the staging folder, settings, frames) -> warnings


def _fbx(context: bpy.types.Context, armature_obj: bpy.types.Object, meshes: list[bpy.types.Object],
         action: bpy.types.Action | None, path: Path, settings: ExportSettings, frames: tuple[int, int]) -> list[str]:
    options = dict(_FBX_COMMON, **FBX_PRESETS[settings.preset])
    _run_operator(bpy.ops.export_scene.fbx, filepath=str(path), check_existing=False, **options)
    warnings = []
    if options["use_armature_deform_only"] and not any(b.use_deform for b in armature_obj.data.bones):
        warnings.append("No bone of the armature deforms: the engine preset exported deform bones only.")
    return warnings


def _gltf(context: bpy.types.Context, armature_obj: bpy.types.Object, meshes: list[bpy.types.Object],
          action: bpy.types.Action | None, path: Path, settings: ExportSettings, frames: tuple[int, int]) -> list[str]:
    options = dict(_GLTF_SETTINGS)
    options["export_format"] = "GLB" if settings.fmt == "glb" else "GLTF_SEPARATE"
    options["export_texture_dir"] = ""  # images next to the .gltf
    warnings = []
    if action is not None:
        options["export_nla_strips_merged_animation_name"] = action.name  # the glTF animation's name
        first, last = action.frame_range[0], action.frame_range[1]
        if frames[0] < first - 1e-6 or frames[1] > last + 1e-6:  # the exporter clips to the action's range
            warnings.append(f"glTF holds the action's frames only: {max(frames[0], math.ceil(first - 1e-6))}–"
                            f"{min(frames[1], math.floor(last + 1e-6))} were written.")
    _run_operator(bpy.ops.export_scene.gltf, filepath=str(path), check_existing=False, **options)
    return warnings


def _blend(context: bpy.types.Context, armature_obj: bpy.types.Object, meshes: list[bpy.types.Object],
           action: bpy.types.Action | None, path: Path, settings: ExportSettings, frames: tuple[int, int]) -> list[str]:
    armature = armature_obj.data
    assert isinstance(armature, bpy.types.Armature)
    blocks: set[bpy.types.ID] = {armature_obj, armature, *meshes}
    if action is None:
        bpy.data.libraries.write(str(path), blocks, path_remap="ABSOLUTE")
        return []
    blocks.add(action)
    saved = (action.use_frame_range, action.frame_start, action.frame_end)
    try:
        if settings.frame_range is not None:  # a requested range travels as the action's manual frame range
            action.use_frame_range = True
            action.frame_start, action.frame_end = frames
            action.frame_start = frames[0]
        bpy.data.libraries.write(str(path), blocks, path_remap="ABSOLUTE")
    finally:
        action.frame_start, action.frame_end = saved[1], saved[2]
        action.frame_start = saved[1]
        action.use_frame_range = saved[0]
    return []


def _bvh(context: bpy.types.Context, armature_obj: bpy.types.Object, meshes: list[bpy.types.Object],
         action: bpy.types.Action | None, path: Path, settings: ExportSettings, frames: tuple[int, int]) -> list[str]:
    scene = context.scene
    frame_numbers = np.arange(frames[0], frames[1] + 1)
    bones = armature_obj.data.bones
    names = [b.name for b in bones]
    index = {b.name: i for i, b in enumerate(bones)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones])
    objects, poses = armature_data.pose_matrices(armature_obj, frame_numbers, scene)  # (F, 4, 4), (F, B, 4, 4)
    world = objects[:, None] @ poses  # (F, B, 4, 4)
    rest_world = objects[0] @ armature_data.rest_matrices(armature_obj)  # object as on frame 1, bones at rest
    lengths = np.array([b.length for b in bones])
    rest_tails = (rest_world @ np.array([[0.0, 1.0, 0.0, 0.0]]).T)[..., :3, 0] * lengths[:, None] \
        + rest_world[:, :3, 3]
    motion = bvh_motion(names, parents, rest_world, rest_tails, world)
    fps = scene.render.fps / scene.render.fps_base
    path.write_text(bvh_text(motion, 1.0 / fps), encoding="utf-8", newline="\n")
    return list(motion.warnings)


def _run_operator(op: Any, **kwargs: Any) -> None:
    result = op(**kwargs)
    if "FINISHED" not in result:
        raise ExportError(f"{op.idname_py()} returned {sorted(result)}")


_WRITERS = {"fbx": _fbx, "glb": _gltf, "gltf": _gltf, "blend": _blend, "bvh": _bvh}


# --------------------------------------------------------------------------------------------------------------
# sampling joints (exports, tests and benchmarks)


@dataclasses.dataclass(frozen=True)
class JointTrack:
    """World-space bones over frames, metres: heads are the joints, tails the bones' far ends."""

    names: tuple[str, ...]
    frames: np.ndarray  # (F,)
    heads: np.ndarray  # (F, B, 3)
    tails: np.ndarray  # (F, B, 3)

    @property
    def directions(self) -> np.ndarray:
        """Unit vectors from head to tail  # (F, B, 3)"""
        d = self.tails - self.heads
        return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)

    def select(self, names: Iterable[str]) -> JointTrack:
        """The same track with bones in the order of ``names`` (KeyError names a missing bone)."""
        names = tuple(names)
        where = {n: i for i, n in enumerate(self.names)}
        idx = [where[n] for n in names]
        return JointTrack(names, self.frames, self.heads[:, idx], self.tails[:, idx])


def world_bone_matrices(armature_obj: bpy.types.Object, frames: Iterable[int],
                        scene: bpy.types.Scene | None = None) -> np.ndarray:
    """``matrix_world @ pose_bone.matrix`` for every bone (armature order) on every frame  # (F, B, 4, 4).
    Sets each frame with ``scene.frame_set`` and goes back to the current frame afterwards."""
    objects, poses = armature_data.pose_matrices(armature_obj, frames, scene)
    return objects[:, None] @ poses


def joint_track(armature_obj: bpy.types.Object, frames: Iterable[int], names: Iterable[str] | None = None,
                scene: bpy.types.Scene | None = None) -> JointTrack:
    """World-space bone heads and tails of ``armature_obj`` on each frame (after ``scene.frame_set``), bones in
    armature order or in the order of ``names``."""
    frames = np.asarray([int(f) for f in frames])
    matrices = world_bone_matrices(armature_obj, frames, scene)  # (F, B, 4, 4)
    lengths = np.array([b.length for b in armature_obj.data.bones])  # (B,)
    heads = matrices[..., :3, 3]
    tails = heads + matrices[..., :3, 1] * lengths[None, :, None]  # the bone's Y axis, scaled by the pose
    track = JointTrack(tuple(b.name for b in armature_obj.data.bones), frames, heads, tails)
    return track.select(names) if names is not None else track


def joint_positions(armature_obj: bpy.types.Object, frames: Iterable[int], names: Iterable[str] | None = None,
                    scene: bpy.types.Scene | None = None) -> np.ndarray:
    """World-space bone heads (the joints), metres  # (F, B, 3); bones in armature order or that of ``names``."""
    return joint_track(armature_obj, frames, names, scene).heads


# --------------------------------------------------------------------------------------------------------------
# BVH (no bpy below: arrays in, text out)
#
# BVH joints have no rest orientation: at rest every joint frame is aligned with the file's axes. A joint's world
# transform is   M_j = M_parent · T(p_j) · E_j   with p_j its OFFSET (or its position channels) and E_j its Euler
# rotation. Writing the world rotation of bone j at frame t relative to its rest as  D_j = R_j(t) · R_j(rest)^T
# (R: the orthonormal part of matrix_world @ pose_bone.matrix), the BVH rotation is  E_j = D_parent^T · D_j  and
# the product down the chain gives back D_j, so every joint lands where the bone's head is. Everything is turned
# from Blender's Z-up world into BVH's Y-up with  C: (x, y, z) -> (x, z, -y)  (Blender's BVH importer undoes it with
# its default axes, forward -Z, up Y):  E_bvh = C E C^T,  positions C v.

BLENDER_TO_BVH = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
POSITION_TOLERANCE_M = 1e-5  # a joint drifting from its rest offset by more than this gets position channels


@dataclasses.dataclass(frozen=True)
class BvhMotion:
    names: tuple[str, ...]  # joint names as written (whitespace -> "_"), depth-first order
    parents: np.ndarray  # (J,) index into names, -1 for the root
    offsets: np.ndarray  # (J, 3) rest offset from the parent joint, BVH axes, metres
    end_sites: dict[int, np.ndarray]  # joint -> (3,) offset of its end site (the bone's tail), for leaves
    positions: dict[int, np.ndarray]  # joint -> (F, 3) position channels, for joints that have them
    euler_zxy_deg: np.ndarray  # (F, J, 3) Z, X, Y rotation channels in degrees
    warnings: tuple[str, ...] = ()


def bvh_motion(names: Sequence[str], parents: np.ndarray, rest_world: np.ndarray, rest_tails: np.ndarray,
               world: np.ndarray) -> BvhMotion:
    """BVH channels from world-space bone matrices (Blender axes, metres).

    names, parents (B,): bones, parents before children. rest_world (B, 4, 4): rest matrices in world space.
    rest_tails (B, 3): rest tails in world space. world (F, B, 4, 4): posed matrices in world space.
    """
    parents = np.asarray(parents)
    n_frames, n_bones = world.shape[:2]
    warnings: list[str] = []
    if np.any(np.linalg.det(world[..., :3, :3]) < 0) or np.any(np.linalg.det(rest_world[:, :3, :3]) < 0):
        raise ExportError("BVH cannot hold a mirrored (negative scale) armature; apply the scale first")
    rest_rot = _orthonormal(rest_world[:, :3, :3])  # (B, 3, 3)
    rot = _orthonormal(world[..., :3, :3])  # (F, B, 3, 3)
    scaled = _scaled_bones(names, rest_world, world)
    if scaled:
        warnings.append("BVH has no scale: the lengths of scaled bones are lost "
                        f"({', '.join(scaled[:5])}{', …' if len(scaled) > 5 else ''}).")

    C = BLENDER_TO_BVH
    delta = C @ rot @ np.swapaxes(rest_rot, -1, -2) @ C.T  # (F, B, 3, 3) world rotation since rest, BVH axes
    heads = world[..., :3, 3] @ C.T  # (F, B, 3)
    rest_heads = rest_world[:, :3, 3] @ C.T  # (B, 3)

    # one root: several parentless bones hang under an added one, fixed at the origin
    roots = [j for j in range(n_bones) if parents[j] < 0]
    order: list[int] = []  # depth-first, children in armature order
    children = {j: [k for k in range(n_bones) if parents[k] == j] for j in range(-1, n_bones)}

    def visit(j: int) -> None:
        order.append(j)
        for k in children[j]:
            visit(k)

    for r in roots:
        visit(r)
    add_root = len(roots) != 1
    written = [_bvh_name(names[j]) for j in order]
    if add_root:
        root_name = "root"
        while root_name in written:
            root_name += "_"
        written.insert(0, root_name)
    shift = 1 if add_root else 0
    slot = {j: i + shift for i, j in enumerate(order)}  # bone index -> joint index in the file

    n_joints = len(written)
    out_parents = np.full(n_joints, -1)
    offsets = np.zeros((n_joints, 3))
    local = np.tile(np.eye(3), (n_frames, n_joints, 1, 1))  # (F, J, 3, 3)
    positions: dict[int, np.ndarray] = {}
    end_sites: dict[int, np.ndarray] = {}
    if add_root:
        positions[0] = np.zeros((n_frames, 3))
    for j in order:
        i, p = slot[j], int(parents[j])
        if p >= 0 or add_root:
            out_parents[i] = slot[p] if p >= 0 else 0
        if p >= 0:
            offsets[i] = rest_heads[j] - rest_heads[p]
            local[:, i] = np.swapaxes(delta[:, p], -1, -2) @ delta[:, j]
            relative = (np.swapaxes(delta[:, p], -1, -2) @ (heads[:, j] - heads[:, p])[..., None])[..., 0]
            if np.abs(relative - offsets[i]).max() > POSITION_TOLERANCE_M:
                positions[i] = relative
        else:  # a root: absolute position
            offsets[i] = rest_heads[j]
            local[:, i] = delta[:, j]
            positions[i] = heads[:, j]
        if not children[j]:
            end_sites[i] = (rest_tails[j] @ C.T) - rest_heads[j]
    renamed = sorted({names[j] for j in order if _bvh_name(names[j]) != names[j]})
    if renamed:
        warnings.append(f"BVH names cannot hold spaces: {len(renamed)} bone names use '_' instead.")
    return BvhMotion(tuple(written), out_parents, offsets, end_sites, positions, _euler_zxy_deg(local),
                     tuple(warnings))


def bvh_text(motion: BvhMotion, frame_time: float) -> str:
    """The BVH file for ``motion``: HIERARCHY then MOTION, one line per frame."""
    lines = ["HIERARCHY"]
    n_joints = len(motion.names)
    children = {j: [k for k in range(n_joints) if motion.parents[k] == j] for j in range(-1, n_joints)}
    columns: list[np.ndarray] = []  # (F,) each, in file order

    def write(j: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {motion.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {_floats(motion.offsets[j])}")
        rotation = "Zrotation Xrotation Yrotation"
        if j in motion.positions:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rotation}")
            columns.extend(motion.positions[j].T)
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rotation}")
        columns.extend(motion.euler_zxy_deg[:, j].T)
        for k in children[j]:
            write(k, depth + 1)
        if j in motion.end_sites:
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {_floats(motion.end_sites[j])}",
                          f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    for root in children[-1]:
        write(root, 0)
    table = np.stack(columns, axis=1) if columns else np.zeros((0, 0))  # (F, channels)
    table = np.where(np.abs(table) < 5e-7, 0.0, table)  # no "-0.000000"
    lines += ["MOTION", f"Frames: {table.shape[0]}", f"Frame Time: {frame_time:.9f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in table]
    return "\n".join(lines) + "\n"


def _floats(values: np.ndarray) -> str:
    return " ".join(f"{0.0 if abs(v) < 5e-7 else v:.6f}" for v in values)


def _bvh_name(name: str) -> str:
    return "_".join(name.split()) or "_"


def _orthonormal(m: np.ndarray) -> np.ndarray:
    """The rotation nearest to each 3×3 matrix (polar decomposition): drops scale, keeps the orientation."""
    u, _, vt = np.linalg.svd(m)
    return u @ vt  # a rotation for matrices with a positive determinant (bvh_motion refuses the others)


def _scaled_bones(names: Sequence[str], rest_world: np.ndarray, world: np.ndarray) -> list[str]:
    """Bones whose world scale differs from their rest scale, or is not uniform, on some frame."""
    rest_scale = np.linalg.svd(rest_world[:, :3, :3], compute_uv=False)  # (B, 3)
    scale = np.linalg.svd(world[..., :3, :3], compute_uv=False)  # (F, B, 3)
    ratio = scale / rest_scale.mean(axis=-1)[None, :, None]
    off = np.abs(ratio - 1.0).max(axis=(0, 2)) > 1e-4
    return [names[j] for j in np.flatnonzero(off)]


def _euler_zxy_deg(rotations: np.ndarray) -> np.ndarray:
    """BVH "Zrotation Xrotation Yrotation" angles (degrees) of rotation matrices  # (F, J, 3) from (F, J, 3, 3).

    R = Rz(a) · Rx(b) · Ry(c) has  R[2,1] = sin b,  R[0,1] = -sin a cos b,  R[1,1] = cos a cos b,
    R[2,0] = -cos b sin c,  R[2,2] = cos b cos c.  At cos b = 0 only a + c is defined: c = 0, a = atan2(R[1,0], R[0,0]).
    The other solution (a + π, π - b, c + π) and whole turns are picked frame by frame to stay closest to the
    previous frame, so the curves have no jumps.
    """
    r = rotations
    cos_b = np.hypot(r[..., 0, 1], r[..., 1, 1])
    b = np.arctan2(r[..., 2, 1], cos_b)
    gimbal = cos_b < 1e-9
    a = np.where(gimbal, np.arctan2(r[..., 1, 0], r[..., 0, 0]), np.arctan2(-r[..., 0, 1], r[..., 1, 1]))
    c = np.where(gimbal, 0.0, np.arctan2(-r[..., 2, 0], r[..., 2, 2]))
    first = np.stack([a, b, c], axis=-1)  # (F, J, 3)
    second = np.stack([a + np.pi, np.pi - b, c + np.pi], axis=-1)
    out = np.empty_like(first)
    out[0] = _wrap_near(first[0], np.zeros_like(first[0]))
    for t in range(1, first.shape[0]):
        prev = out[t - 1]
        one, two = _wrap_near(first[t], prev), _wrap_near(second[t], prev)
        closer = np.abs(two - prev).sum(axis=-1) < np.abs(one - prev).sum(axis=-1)
        out[t] = np.where(closer[:, None], two, one)
    return np.degrees(out)


def _wrap_near(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``angles`` plus whole turns, each as close as possible to ``reference``."""
    return angles + 2 * np.pi * np.round((reference - angles) / (2 * np.pi))


# --------------------------------------------------------------------------------------------------------------
# the operator


_FORMAT_ITEMS = (
    ("FBX", "FBX (.fbx)", "Autodesk FBX: Unity, Unreal, Maya, MotionBuilder (see Target)"),
    ("BVH", "BVH (.bvh)", "Biovision motion capture: the skeleton and its motion, world space, Y up, metres"),
    ("GLB", "glTF Binary (.glb)", "glTF 2.0 in one file: web, Godot, three.js"),
    ("GLTF", "glTF Separate (.gltf + .bin)", "glTF 2.0 as JSON with its buffer beside it"),
    ("BLEND", "Blender (.blend)", "The armature, its action and meshes in a .blend, to append elsewhere"),
)
_PRESET_ITEMS = (
    ("DEFAULT", "Blender / DCC", "FBX's own conventions, every bone, leaf bones keep the last bones' length"),
    ("UNITY", "Unity", "Metres in the unit scale (objects at scale 1), deform bones only, no leaf bones"),
    ("UNREAL", "Unreal Engine", "Centimetres, deform bones only, no leaf bones"),
)


class REEL2RIG_OT_export(_Reel2RigOperator, ExportHelper):  # type: ignore[misc]
    bl_idname = "reel2rig.export"
    bl_label = "Export Animation"
    bl_description = ("Write the active armature, its action and the meshes parented to it as FBX, BVH, glTF "
                      "or .blend")

    filter_glob: StringProperty(  # type: ignore[valid-type]
        default="*.fbx;*.bvh;*.glb;*.gltf;*.blend", options={"HIDDEN"})
    filepath: StringProperty(  # type: ignore[valid-type]
        name="File", description="File to write; the format's extension is added when missing",
        subtype="FILE_PATH", default="")
    format: EnumProperty(  # type: ignore[valid-type]
        name="Format", description="File format to write", items=_FORMAT_ITEMS, default="FBX")
    preset: EnumProperty(  # type: ignore[valid-type]
        name="Target", description="FBX settings for the application that will read the file",
        items=_PRESET_ITEMS, default="DEFAULT")
    overwrite: BoolProperty(  # type: ignore[valid-type]
        name="Overwrite", description="Replace the file if it exists (otherwise an existing file is an error)",
        default=False, options={"SKIP_SAVE"})
    use_frame_range: BoolProperty(  # type: ignore[valid-type]
        name="Custom Range", description="Export these frames instead of the action's range", default=False)
    frame_start: IntProperty(name="Start", description="First frame to export", default=1)  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", description="Last frame to export", default=250)  # type: ignore[valid-type]

    @property
    def filename_ext(self) -> str:  # ExportHelper uses it for the default name and to fix the extension
        return EXTENSIONS[str(self.format).lower()]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        ob = context.active_object
        return ob is not None and ob.type == "ARMATURE"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "format")
        row = layout.row()
        row.enabled = self.format == "FBX"
        row.prop(self, "preset")
        layout.prop(self, "overwrite")
        layout.prop(self, "use_frame_range")
        col = layout.column(align=True)
        col.enabled = self.use_frame_range
        col.prop(self, "frame_start")
        col.prop(self, "frame_end")

    def settings(self) -> ExportSettings:
        fmt = str(self.format).lower()
        return export_settings(
            self.filepath, fmt, preset=str(self.preset).lower() if fmt == "fbx" else "default",
            frame_range=(self.frame_start, self.frame_end) if self.use_frame_range else None,
            overwrite=self.overwrite)

    def run(self, context: bpy.types.Context) -> Result:
        armature_obj = context.active_object
        if armature_obj is None or armature_obj.type != "ARMATURE":
            raise ExportError("Make the armature to export the active object")
        result = export(context, armature_obj, self.settings())
        self.report({"WARNING"} if result.warnings else {"INFO"}, result.summary())
        return {"FINISHED"}
