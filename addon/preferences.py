"""Add-on preferences: which Python runs the engine and where it caches. bpy; the resolution rules are in paths.py."""
from __future__ import annotations

import os
import time
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from . import engine_setup, paths

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

    # -- Set up Engine --------------------------------------------------------------------------------------------
    engine_folder: StringProperty(  # type: ignore[valid-type]
        name="Engine Folder",
        description="Where Set up Engine creates the engine's own Python environment (about 3 GB). Empty: Blender's "
        "user folder for this extension (engine)",
        subtype="DIR_PATH", default="")
    base_python: StringProperty(  # type: ignore[valid-type]
        name="Base Python",
        description="The Python that creates the engine's environment (3.10-3.12). Empty: Blender's own Python",
        subtype="FILE_PATH", default="")
    torch_build: EnumProperty(  # type: ignore[valid-type]
        name="PyTorch",
        description="Which PyTorch build Set up Engine installs",
        items=(("AUTO", "Auto", "CUDA when an NVIDIA GPU is found, else the CPU build"),
               ("CPU", "CPU", "The CPU build (a few hundred MB)"),
               ("CUDA", "CUDA", "The NVIDIA CUDA build (a few GB)"),
               ("PIP", "pip's Configuration", "No index chosen here: pip.conf (a mirror or a wheel folder) decides")),
        default="AUTO")
    pip_options: StringProperty(  # type: ignore[valid-type]
        name="Extra pip Options",
        description="Added to every pip install, e.g. '--find-links /wheels --no-index' for a machine offline, or "
        "'--proxy http://host:port'",
        default="")

    default_device: EnumProperty(  # type: ignore[valid-type]
        name="Device",
        description="Where captures run",
        items=(("auto", "Auto", "The GPU when the engine sees one, else the CPU"),
               ("cpu", "CPU", "Always the CPU"),
               ("cuda", "GPU (CUDA)", "The NVIDIA GPU; a capture fails with a clear message when there is none")),
        default="auto")
    detector: EnumProperty(  # type: ignore[valid-type]
        name="Detector",
        description="Which runtime runs the landmark networks (the same MediaPipe networks either way)",
        items=(("auto", "Auto", "The torch port for hands-only captures when the engine sees an NVIDIA GPU, "
                "MediaPipe's own runtime otherwise (the faster one on a CPU, and the more reliable for bodies)"),
               ("mediapipe", "MediaPipe", "MediaPipe's own runtime, frame by frame"),
               ("torch", "Torch (GPU)", "The networks ported to torch, many frames at once, on the GPU when there "
                "is one; swaps hands more often on body clips")),
        default="auto")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        status = context.window_manager.reel2rig_status  # type: ignore[attr-defined]

        box = layout.box()
        box.label(text="Engine", icon="SETTINGS")
        box.prop(self, "engine_python")
        try:
            config = engine_config(context)
            box.label(text=f"Runs: {config.python}", icon="CHECKMARK")
        except paths.EngineSetupError as exc:
            config = None
            box.label(text=str(exc), icon="ERROR")
        if status.setup_running:
            progress = getattr(box, "progress", None)
            if progress is not None:
                progress(factor=status.setup_progress, type="BAR", text=status.setup_stage or "Setting up…")
            else:
                box.label(text=f"{status.setup_stage} ({status.setup_progress * 100:.0f}%)", icon="TIME")
            if status.setup_line:
                box.label(text=status.setup_line[:90], icon="CONSOLE")
            box.operator("reel2rig.setup_engine_cancel", icon="CANCEL")
        else:
            row = box.row(align=True)
            row.operator("reel2rig.setup_engine", icon="IMPORT")
            row.operator("reel2rig.check_engine", icon="VIEWZOOM")
        if status.setup_message and not status.setup_running:
            _wrapped(box, status.setup_message, "ERROR" if status.setup_is_error else "INFO")
        if status.check_report:
            try:
                report = engine_setup.EngineReport.from_json(status.check_report)
            except (ValueError, TypeError, KeyError):
                report = None
            if report is not None:
                col = box.column(align=True)
                for item in report.items:
                    col.label(text=f"{item.name}: {item.detail}"[:110], icon="CHECKMARK" if item.ok else "ERROR")
                    if item.fix and not item.ok:
                        col.label(text=f"Fix: {item.fix}"[:110], icon="BLANK1")

        sub = box.column()
        sub.use_property_split = True
        sub.prop(self, "engine_folder")
        sub.prop(self, "base_python")
        sub.prop(self, "torch_build")
        sub.label(text=engine_setup.describe_gpus(_gpus()), icon="INFO")
        sub.prop(self, "pip_options")

        box = layout.box()
        box.label(text="Files", icon="FILE_FOLDER")
        col = box.column()
        col.use_property_split = True
        col.prop(self, "cache_dir")
        cache = config.cache_dir if config is not None else None
        row = col.row()
        row.label(text=f"Cache: {_cache_usage(cache).text()}" if cache else "Cache: the engine's default folder")
        row.operator("reel2rig.clear_cache", icon="TRASH")
        col.prop(self, "model_dir")
        col.prop(self, "presets_dir")

        box = layout.box()
        box.label(text="Captures", icon="REC")
        col = box.column()
        col.use_property_split = True
        col.prop(self, "default_device")
        col.prop(self, "detector")


def _wrapped(layout: bpy.types.UILayout, text: str, icon: Any, width: int = 100) -> None:
    import textwrap

    for i, line in enumerate(textwrap.wrap(text, width)[:10]):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


_GPU_CACHE: list[list[engine_setup.GpuInfo]] = []
_USAGE_CACHE: dict[str, tuple[float, engine_setup.CacheUsage]] = {}
USAGE_REFRESH_S = 10.0


def _gpus() -> list[engine_setup.GpuInfo]:
    """The NVIDIA GPUs, asked once per Blender session (the preferences redraw often)."""
    if not _GPU_CACHE:
        _GPU_CACHE.append(engine_setup.detect_nvidia(timeout=5.0))
    return _GPU_CACHE[0]


def _cache_usage(cache_dir: str) -> engine_setup.CacheUsage:
    """The cache folder's size, measured at most every USAGE_REFRESH_S seconds (drawing must stay fast)."""
    now = time.monotonic()
    hit = _USAGE_CACHE.get(cache_dir)
    if hit is None or now - hit[0] > USAGE_REFRESH_S:
        hit = (now, engine_setup.cache_usage(cache_dir))
        _USAGE_CACHE[cache_dir] = hit
    return hit[1]


def forget_cache_usage() -> None:
    _USAGE_CACHE.clear()


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


def setup_plan(context: bpy.types.Context, requirements: str = "", pip_options: str | None = None,
               warm: bool = True) -> engine_setup.SetupPlan:
    """What Set up Engine will do, from the preferences (raises engine_setup.SetupError)."""
    import shlex
    from pathlib import Path

    prefs = get_preferences(context)
    folder = bpy.path.abspath(prefs.engine_folder) if prefs and prefs.engine_folder else ""
    if not folder:
        try:
            folder = str(bpy.utils.extension_path_user(ADDON_PACKAGE, path="engine", create=False))
        except (ValueError, AttributeError, OSError):
            checkout = paths.checkout_root()
            folder = str((checkout or paths.PACKAGE_ROOT) / ".engine")
    base = bpy.path.abspath(prefs.base_python) if prefs and prefs.base_python else engine_setup.default_base_python()
    options = prefs.pip_options if (prefs is not None and pip_options is None) else (pip_options or "")
    try:
        pip_args = tuple(shlex.split(options))
    except ValueError as exc:
        raise engine_setup.SetupError(f"Extra pip Options cannot be read ({exc}): check the quotes") from exc
    build = engine_setup.resolve_torch_build(prefs.torch_build if prefs else "AUTO", _gpus())
    cache = paths.resolve_cache_dir(bpy.path.abspath(prefs.cache_dir) if prefs and prefs.cache_dir else "",
                                    fallback=_user_cache_fallback())
    return engine_setup.SetupPlan(
        folder=Path(folder).resolve(), base_python=base,
        requirements=Path(requirements) if requirements else paths.PACKAGE_ROOT / engine_setup.REQUIREMENTS_NAME,
        torch_build=build, pip_args=pip_args, root=paths.PACKAGE_ROOT, cache_dir=cache, warm=warm)


def default_device(context: bpy.types.Context) -> str:
    prefs = get_preferences(context)
    return str(prefs.default_device) if prefs is not None else "auto"


def detector(context: bpy.types.Context) -> str:
    prefs = get_preferences(context)
    return str(prefs.detector) if prefs is not None else "auto"
