"""3D View › Sidebar › Reel2Rig: choose a clip, capture, watch progress, cancel, see the last result. bpy."""
from __future__ import annotations

import textwrap
from typing import Any

import bpy

from . import properties


class _SidebarPanel(bpy.types.Panel):
    """3D View › Sidebar › Reel2Rig (subclasses set bl_idname, bl_label and draw)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Reel2Rig"


class REEL2RIG_PT_capture(_SidebarPanel):
    bl_idname = "REEL2RIG_PT_capture"
    bl_label = "Capture"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = properties.settings(context)
        status = properties.status(context)

        col = layout.column()
        col.enabled = not status.running
        col.row().prop(settings, "source", expand=True)
        if settings.source == "CLIP":
            col.template_ID(settings, "movie_clip", open="clip.open")
        elif settings.source == "SEQUENCE":
            col.prop(settings, "sequence_dir", text="")
            col.prop(settings, "sequence_fps")
        else:
            col.prop(settings, "video_path", text="")
        row = col.row(align=True)
        row.prop(settings, "use_frame_range", text="")
        sub = row.row(align=True)
        sub.active = settings.use_frame_range
        sub.prop(settings, "frame_first")
        sub.prop(settings, "frame_last")
        col.prop(settings, "mode")
        col.prop(settings, "model")
        row = col.row()
        row.active = settings.mode != "hands"
        row.prop(settings, "people")
        row = col.row()
        row.active = settings.mode != "hands"
        row.prop(settings, "motion")
        col.prop(settings, "smoothing", slider=True)
        row = col.row(align=True)
        row.prop(settings, "space", expand=True)
        col.prop(settings, "plant_feet")
        col.prop(settings, "focal_px")
        col.prop(settings, "actor_height")
        col.prop(settings, "target")
        if settings.target == "SELECTED":
            ob = context.active_object
            box = col.box()
            if ob is None or ob.type != "ARMATURE":
                box.label(text="Select the armature to animate", icon="ERROR")
            else:
                box.label(text=f"Onto: {ob.name}", icon="ARMATURE_DATA")
            box.prop(settings, "rig_map")
            if ob is not None and ob.type == "ARMATURE" and settings.rig_map == "AUTO":
                box.label(text=detected_map_text(context, ob), icon="VIEWZOOM")

        if status.running:
            text = status.stage or "Running…"
            progress = getattr(layout, "progress", None)  # Blender 4.0+
            if progress is not None:
                progress(factor=status.progress, type="BAR", text=f"{status.progress * 100:.0f}%")
                layout.label(text=text, icon="TIME")
            else:
                layout.label(text=f"{text} ({status.progress * 100:.0f}%)", icon="TIME")
            layout.operator("reel2rig.cancel", icon="CANCEL")
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.operator("reel2rig.capture", icon="REC")
        row = layout.row(align=True)
        row.operator("reel2rig.import_take", icon="IMPORT")
        row.operator("reel2rig.render_preview", icon="RENDER_STILL", text="Preview")

        if status.message and not status.running:
            box = layout.box()
            for i, line in enumerate(textwrap.wrap(status.message, 48)[:8]):
                if i > 0:
                    box.label(text=line, icon="BLANK1")
                elif status.is_error:
                    box.label(text=line, icon="ERROR")
                else:
                    box.label(text=line, icon="INFO")


class REEL2RIG_PT_retarget(_SidebarPanel):
    bl_idname = "REEL2RIG_PT_retarget"
    bl_label = "Retarget"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = properties.settings(context)
        ob = context.active_object
        col = layout.column()
        if ob is None or ob.type != "ARMATURE":
            col.label(text="Select the armature to animate", icon="INFO")
        else:
            col.label(text=f"Target: {ob.name}", icon="ARMATURE_DATA")
        col.prop(settings, "retarget_take", text="")
        col.prop(settings, "rig_map")
        if ob is not None and ob.type == "ARMATURE" and settings.rig_map == "AUTO":
            col.label(text=detected_map_text(context, ob), icon="VIEWZOOM")
        col.prop(settings, "foot_lock")
        row = layout.row()
        row.scale_y = 1.3
        row.operator("reel2rig.apply_take", icon="MOD_ARMATURE")
        layout.operator("reel2rig.save_rig_map", icon="PRESET_NEW")


class REEL2RIG_PT_export(_SidebarPanel):
    bl_idname = "REEL2RIG_PT_export"
    bl_label = "Export"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        ob = context.active_object
        if ob is None or ob.type != "ARMATURE":
            layout.label(text="Select the armature to export", icon="INFO")
        col = layout.column(align=True)
        buttons: tuple[tuple[str, str, str, Any], ...] = (
            ("FBX for Unity", "FBX", "UNITY", "EXPORT"), ("FBX for Unreal", "FBX", "UNREAL", "EXPORT"),
            ("FBX", "FBX", "DEFAULT", "EXPORT"), ("BVH", "BVH", "DEFAULT", "ARMATURE_DATA"),
            ("glTF (.glb)", "GLB", "DEFAULT", "FILE_3D"))
        for label, fmt, preset, icon in buttons:
            op = col.operator("reel2rig.export", text=label, icon=icon)
            op.format = fmt
            op.preset = preset


def draw_status_bar(self: bpy.types.Header, context: bpy.types.Context) -> None:
    """Blender's status bar while a capture runs: stage, frames/s, time left and a small progress bar."""
    status = properties.status(context)
    if not status.running:
        return
    row = self.layout.row(align=True)
    progress = getattr(row, "progress", None)
    if progress is not None:
        progress(factor=status.progress, type="RING", text="")
    row.label(text=f"Reel2Rig: {status.stage or 'running'}")


_DETECTED: dict[tuple, str] = {}


def detected_map_text(context: bpy.types.Context, obj: bpy.types.Object) -> str:
    """'Detected: Mixamo (100 %)' — the bone map Auto will use for ``obj``; remembered per armature and bone set,
    since panels redraw often."""
    from . import retarget_apply
    from .preferences import presets_folder

    folder = presets_folder(context)
    key = (obj.name, obj.data.name, tuple(b.name for b in obj.data.bones), folder)
    text = _DETECTED.get(key)
    if text is None:
        try:
            matches = retarget_apply.detect_map(obj, folder)
            best = matches[0] if matches else None
            text = (f"Detected: {best.map.name} ({best.score * 100:.0f} %)" if best is not None and best.score > 0
                    else "No bone map fits: choose one, or Save Bone Map and edit it")
        except Exception as exc:  # noqa: BLE001 - drawing must not fail; applying reports the problem
            text = f"Bone map not detected: {exc}"
        if len(_DETECTED) > 64:
            _DETECTED.clear()
        _DETECTED[key] = text
    return text
