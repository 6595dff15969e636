"""Skeletons, bone maps and retarget maths. numpy only: no bpy, no torch (runs in Blender's Python and in pytest)."""
