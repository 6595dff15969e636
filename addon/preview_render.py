"""Render Preview: one frame of an imported Take — the body mesh and the bones over the clip — as a PNG, rendered
with Workbench. Touches bpy — call from the main thread only.

Workbench renders leave out the camera's background images and bones (both are viewport overlays), so the preview

* renders a temporary scene that links the take's armature, its meshes and its camera (the user's scene, its
  settings and its compositor are not touched), with a temporary mesh of octahedral bones drawn in front
  (``preview_prepare.bone_octahedra`` at the frame's pose);
* renders with a transparent film and lays it over the clip's frame in the compositor (Movie Clip → Alpha Over), the
  clip placed on the timeline exactly as the camera background shows it;
* removes everything it made, whatever happens.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from .operators import Reel2RigError, _Reel2RigOperator
from .preview_prepare import bone_octahedra, default_preview_path

if TYPE_CHECKING:
    from .operators import Result

BONE_COLOUR = (1.0, 0.42, 0.05, 1.0)  # orange: apart from the green body mesh and most footage


class PreviewError(Reel2RigError):
    """The preview cannot be rendered; the message says why."""


@dataclasses.dataclass(frozen=True)
class PreviewSettings:
    filepath: str = ""           # the PNG; "" = next to the Take (``clip.preview_0042.png``)
    frame: int | None = None     # scene frame; None = the current one
    mesh: bool = True            # the body mesh(es) parented to the armature
    bones: bool = True           # octahedral bones drawn in front of the mesh
    background: bool = True      # the clip's frame behind (else a transparent PNG)
    opacity: float = 0.75        # of the render over the clip


@dataclasses.dataclass(frozen=True)
class PreviewResult:
    path: str
    frame: int
    clip: str | None  # the clip shown behind, if any
    warnings: tuple[str, ...]

    def summary(self) -> str:
        return " ".join([f"Preview of frame {self.frame} written to {self.path}."] + list(self.warnings))


def camera_of(armature_obj: bpy.types.Object, scene: bpy.types.Scene) -> bpy.types.Object | None:
    """The camera the import made for this armature (``reel2rig_camera``), else the scene's camera."""
    name = armature_obj.get("reel2rig_camera")
    camera = bpy.data.objects.get(name) if isinstance(name, str) and name else None
    if camera is not None and camera.type == "CAMERA":
        return camera
    return scene.camera


def background_clip(camera_obj: bpy.types.Object) -> bpy.types.MovieClip | None:
    data = camera_obj.data
    if not isinstance(data, bpy.types.Camera):
        return None
    for background in data.background_images:
        if background.source == "MOVIE_CLIP" and background.clip is not None:
            return background.clip
    return None


def render_preview(context: bpy.types.Context, armature_obj: bpy.types.Object,
                   settings: PreviewSettings = PreviewSettings()) -> PreviewResult:
    """Render one frame of ``armature_obj``'s take over its clip to a PNG (see the module docstring)."""
    scene = context.scene
    assert scene is not None
    camera = camera_of(armature_obj, scene)
    if camera is None:
        raise PreviewError("No camera to render from: import the take again (it makes one) or set the scene camera")
    frame = int(scene.frame_current if settings.frame is None else settings.frame)
    path = settings.filepath or default_preview_path(str(armature_obj.get("reel2rig_take") or
                                                         bpy.path.abspath("//reel2rig.take.npz")), frame)
    path = bpy.path.abspath(path)
    warnings: list[str] = []
    clip = background_clip(camera) if settings.background else None
    if settings.background and clip is None:
        warnings.append("The camera shows no clip: the preview has a transparent background.")
    meshes = [ob for ob in armature_obj.children if ob.type == "MESH" and not ob.hide_render] if settings.mesh else []

    saved_frame, saved_subframe = scene.frame_current, scene.frame_subframe
    preview = bpy.data.scenes.new("Reel2Rig Preview")
    made: list[Any] = []
    try:
        for ob in (armature_obj, camera, *meshes):
            preview.collection.objects.link(ob)
        # The user's scene goes to the frame too: a render of the preview scene was measured to show the pose the
        # objects have in the user's scene (bpy 5.0.1), and the bones below are made from it.
        scene.frame_set(frame)
        if settings.bones:
            made += _bone_object(armature_obj, preview)
        _copy_settings(scene, preview, camera, frame)
        if clip is not None:
            made += _composite_over_clip(preview, clip, settings.opacity)
        preview.render.filepath = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.render.render(write_still=True, scene=preview.name)
        if not Path(path).is_file():
            raise PreviewError(f"Blender did not write {path}; check that the folder is writable")
    finally:
        bpy.data.scenes.remove(preview)
        for block in reversed(made):
            _remove(block)
        if (scene.frame_current, scene.frame_subframe) != (saved_frame, saved_subframe):
            scene.frame_set(saved_frame, subframe=saved_subframe)
    return PreviewResult(path=path, frame=frame, clip=clip.name if clip is not None else None,
                         warnings=tuple(warnings))


def _remove(block: Any) -> None:
    try:
        if isinstance(block, bpy.types.Object):
            bpy.data.objects.remove(block, do_unlink=True)
        elif isinstance(block, bpy.types.Mesh):
            bpy.data.meshes.remove(block)
        elif isinstance(block, bpy.types.Material):
            bpy.data.materials.remove(block)
        elif isinstance(block, bpy.types.NodeTree):
            bpy.data.node_groups.remove(block)
    except ReferenceError:
        pass


def _bone_object(armature_obj: bpy.types.Object, preview: bpy.types.Scene) -> list[Any]:
    """A mesh of octahedral bones at the current pose, drawn in front, linked to ``preview``. Returns what it made."""
    world = np.array(armature_obj.matrix_world)
    pose_bones = list(armature_obj.pose.bones) if armature_obj.pose is not None else []
    matrices = np.array([world @ np.array(pb.matrix) for pb in pose_bones]).reshape(-1, 4, 4)
    lengths = np.array([pb.length for pb in pose_bones], dtype=np.float64)
    vertices, faces = bone_octahedra(matrices, lengths)
    me = bpy.data.meshes.new("Reel2Rig Preview Bones")
    made: list[Any] = [me]
    me.vertices.add(int(vertices.shape[0]))
    me.vertices.foreach_set("co", vertices.ravel())
    me.loops.add(int(faces.size))
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(int(faces.shape[0]))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.update()
    material = bpy.data.materials.new("Reel2Rig Preview Bones")
    made.append(material)
    material.diffuse_color = BONE_COLOUR
    me.materials.append(material)
    ob = bpy.data.objects.new("Reel2Rig Preview Bones", me)
    made.append(ob)
    ob.show_in_front = True  # Workbench draws in-front objects over the rest, in renders too
    preview.collection.objects.link(ob)
    return made


def _copy_settings(scene: bpy.types.Scene, preview: bpy.types.Scene, camera: bpy.types.Object, frame: int) -> None:
    preview.camera = camera
    src, dst = scene.render, preview.render
    for name in ("resolution_x", "resolution_y", "resolution_percentage", "pixel_aspect_x", "pixel_aspect_y", "fps",
                 "fps_base"):
        setattr(dst, name, getattr(src, name))
    preview.frame_start, preview.frame_end = scene.frame_start, scene.frame_end
    preview.frame_current = frame
    dst.engine = "BLENDER_WORKBENCH"  # type: ignore[assignment]  # (the stubs' Literal lists one engine)
    dst.film_transparent = True
    dst.use_file_extension = False
    dst.image_settings.file_format = "PNG"
    dst.image_settings.color_mode = "RGBA"
    dst.image_settings.color_depth = "8"
    dst.image_settings.compression = 90
    shading = preview.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    preview.view_settings.view_transform = "Standard"  # the clip's colours come out as they went in


def _composite_over_clip(preview: bpy.types.Scene, clip: bpy.types.MovieClip, opacity: float) -> list[Any]:
    """The compositor: the render (transparent film) alpha-over the clip at the scene frame. Blender 5.0 composites
    through a node group assigned to the scene; 4.x through the scene's own node tree. Returns what it made."""
    made: list[Any] = []
    if hasattr(preview, "compositing_node_group"):  # 5.0+
        tree: Any = bpy.data.node_groups.new("Reel2Rig Preview", "CompositorNodeTree")
        made.append(tree)
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        preview.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput")
    else:  # 4.2 – 4.5
        preview.use_nodes = True
        tree = preview.node_tree  # type: ignore[attr-defined]  # (gone from 5.0's stubs)
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite")
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = preview
    movie = tree.nodes.new("CompositorNodeMovieClip")
    movie.clip = clip
    over = tree.nodes.new("CompositorNodeAlphaOver")
    names = [socket.name for socket in over.inputs]
    if "Background" in names:  # 5.0: Background, Foreground, Factor
        background, foreground, factor = (over.inputs["Background"], over.inputs["Foreground"],
                                          over.inputs["Factor"])
    else:  # 4.x: Fac, Image (background), Image (foreground)
        factor, background, foreground = over.inputs[0], over.inputs[1], over.inputs[2]
    factor.default_value = float(min(max(opacity, 0.0), 1.0))
    tree.links.new(movie.outputs["Image"], background)
    tree.links.new(layers.outputs["Image"], foreground)
    tree.links.new(over.outputs[0], output.inputs[0])
    preview.render.use_compositing = True
    preview.render.image_settings.color_mode = "RGB"
    return made


class REEL2RIG_OT_render_preview(_Reel2RigOperator):
    bl_idname = "reel2rig.render_preview"
    bl_label = "Render Preview"
    bl_description = ("Render the current frame of the active take — body mesh and bones over the clip — with "
                      "Workbench and save it as a PNG next to the take")

    filepath: StringProperty(  # type: ignore[valid-type]
        name="File", description="PNG to write; empty: next to the take (clip.preview_0001.png)",
        subtype="FILE_PATH", default="")
    frame: IntProperty(  # type: ignore[valid-type]
        name="Frame", description="Frame to render; -1: the current frame", default=-1)
    bones: BoolProperty(name="Bones", description="Draw the bones over the mesh", default=True)  # type: ignore[valid-type]
    background: BoolProperty(  # type: ignore[valid-type]
        name="Clip", description="Put the clip behind (else a transparent PNG)", default=True)
    opacity: FloatProperty(  # type: ignore[valid-type]
        name="Opacity", description="Opacity of the mesh and bones over the clip", default=0.75, min=0.0, max=1.0)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        ob = context.active_object
        return ob is not None and (ob.type == "ARMATURE" or (ob.parent is not None and ob.parent.type == "ARMATURE"))

    def run(self, context: bpy.types.Context) -> Result:
        ob = context.active_object
        if ob is not None and ob.type != "ARMATURE" and ob.parent is not None:
            ob = ob.parent
        if ob is None or ob.type != "ARMATURE":
            raise PreviewError("Make an imported take's armature the active object")
        result = render_preview(context, ob, PreviewSettings(
            filepath=self.filepath, frame=None if self.frame < 0 else int(self.frame), bones=self.bones,
            background=self.background, opacity=float(self.opacity)))
        self.report({"WARNING"} if result.warnings else {"INFO"}, result.summary())
        return {"FINISHED"}
