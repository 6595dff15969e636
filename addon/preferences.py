"""Add-on preferences: which Python runs the engine and where it caches. bpy; the resolution rules are in paths.py."""
from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from . import paths

#: The extension's package (``bl_ext.user_default.reel2rig`` when installed): the parent of this ``addon`` package.
ADDON_PACKAGE = (__package__ or "addon").rpartition(".")[0] or (__package__ or "addon")


class REEL2RIG_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    engine_python: StringProperty(  # type: ignore[valid-type]
        name="Engine Python",
        description=("Python interpreter with the engine's packages (the checkout's .venv/bin/python). "
                     "Empty: $REEL2RIG_ENGINE_PYTHON, then the checkout this add-on was built from"),
        subtype="FILE_PATH", default="")
    cache_dir: StringProperty(  # type: ignore[valid-type]
        name="Cache Folder",
        description="Where the engine keeps models, stage caches and takes. Empty: the checkout's .cache",
        subtype="DIR_PATH", default="")

    model_dir: StringProperty(  # type: ignore[valid-type]
        name="Model Files",
        description="Folder with your licensed MANO / SMPL / SMPL-H / SMPL-X files (optional; Anny needs none). "
        "Empty: $REEL2RIG_MODEL_DIR",
        subtype="DIR_PATH", default="")

    presets_dir: StringProperty(  # type: ignore[valid-type]
        name="Bone Map Presets",
        description="Folder of your own bone maps (TOML), listed beside the built-in ones. Empty: Blender's "
        "user folder for this extension (rig_maps)",
        subtype="DIR_PATH", default="")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_python")
        layout.prop(self, "cache_dir")
        layout.prop(self, "model_dir")
        layout.prop(self, "presets_dir")
        box = layout.box()
        try:
            config = engine_config(context)
        except paths.EngineSetupError as exc:
            box.label(text=str(exc), icon="ERROR")
            return
        box.label(text=f"Engine Python: {config.python}", icon="CHECKMARK")
        box.label(text=f"Cache: {config.cache_dir or '(engine default)'}")


def get_preferences(context: bpy.types.Context) -> REEL2RIG_AddonPreferences | None:
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    prefs = addon.preferences if addon is not None else None
    return prefs if isinstance(prefs, REEL2RIG_AddonPreferences) else None


def _user_cache_fallback() -> str | None:
    """Blender's per-extension user folder (survives updates of the extension); None outside an extension."""
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path="cache", create=True)
    except (ValueError, AttributeError, OSError):
        return None


def engine_config(context: bpy.types.Context) -> paths.EngineConfig:
    """The engine configuration from the preferences (raises paths.EngineSetupError with what to set)."""
    prefs = get_preferences(context)
    python_pref = bpy.path.abspath(prefs.engine_python) if prefs and prefs.engine_python else ""
    cache_pref = bpy.path.abspath(prefs.cache_dir) if prefs and prefs.cache_dir else ""
    fallback = None
    if not (cache_pref or os.environ.get(paths.CACHE_ENV) or paths.checkout_root()):
        fallback = _user_cache_fallback()
    return paths.engine_config(python_pref, cache_pref, cache_fallback=fallback)


def presets_folder(context: bpy.types.Context | None) -> str | None:
    """Where user bone-map presets live: the preference, else the extension's user folder (None if neither)."""
    prefs = get_preferences(context) if context is not None else None
    if prefs is not None and prefs.presets_dir:
        return str(bpy.path.abspath(prefs.presets_dir))
    try:
        return str(bpy.utils.extension_path_user(ADDON_PACKAGE, path="rig_maps", create=True))
    except (ValueError, AttributeError, OSError):
        return None


def model_folder(context: bpy.types.Context) -> str:
    """The licensed model files' folder: the preference, else $REEL2RIG_MODEL_DIR, else ""."""
    prefs = get_preferences(context)
    if prefs is not None and prefs.model_dir:
        return str(bpy.path.abspath(prefs.model_dir))
    return os.environ.get("REEL2RIG_MODEL_DIR", "")
