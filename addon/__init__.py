"""Reel2Rig's Blender side. ``register()`` registers the classes of :func:`classes` (one explicit tuple).

Importing this package does nothing: no bpy, no registration. That keeps its bpy-free modules (``client``,
``capture``, ``engine_session``, ``paths``, ``take_prepare``) importable in plain Python for tests and scripts.

Modules: ``preferences`` (engine Python, cache), ``properties`` (scene settings, run status), ``operators``
(capture, cancel, import take), ``panels`` (3D View › Sidebar › Reel2Rig); ``take_import`` builds Blender data from
a Take (``take_prepare`` does its arithmetic without bpy); ``capture`` and ``engine_session`` drive the engine
through ``client`` (no bpy). The engine client, the take importer and numpy load on first use.
"""
from __future__ import annotations


def classes() -> tuple[type, ...]:
    """Every class Blender registers, in registration order (property groups before what points at them)."""
    from . import export, operators, panels, preferences, preview_render, properties

    return (
        preferences.REEL2RIG_AddonPreferences,
        properties.REEL2RIG_PG_settings,
        properties.REEL2RIG_PG_status,
        operators.REEL2RIG_OT_capture,
        operators.REEL2RIG_OT_cancel,
        operators.REEL2RIG_OT_setup_engine,
        operators.REEL2RIG_OT_setup_engine_cancel,
        operators.REEL2RIG_OT_check_engine,
        operators.REEL2RIG_OT_clear_cache,
        operators.REEL2RIG_OT_import_take,
        export.REEL2RIG_OT_export,
        preview_render.REEL2RIG_OT_render_preview,
        operators.REEL2RIG_OT_apply_take,
        operators.REEL2RIG_OT_save_rig_map,
        panels.REEL2RIG_PT_capture,
        panels.REEL2RIG_PT_retarget,
        panels.REEL2RIG_PT_export,
    )


def register() -> None:
    import bpy

    from . import panels, properties

    for cls in classes():
        bpy.utils.register_class(cls)
    properties.register_pointers()
    bpy.types.STATUSBAR_HT_header.append(panels.draw_status_bar)


def unregister() -> None:
    import bpy

    from . import engine_session, panels, properties

    engine_session.shutdown()
    bpy.types.STATUSBAR_HT_header.remove(panels.draw_status_bar)
    properties.unregister_pointers()
    for cls in reversed(classes()):
        bpy.utils.unregister_class(cls)
