"""The extension zip: Blender's CLI validates it, it installs, registers its classes, and unregisters cleanly."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from blender_env import ENGINE_PYTHON, PACKAGE, ROOT, addon_module, enable_addon

sys.path.insert(0, str(ROOT / "tools"))
import build_extension  # noqa: E402

OPERATORS = ("capture", "import_take", "cancel")


def test_zip_passes_blenders_validation(extension_zip: Path) -> None:
    cli = build_extension.find_blender_ext()
    proc = subprocess.run([sys.executable, str(cli), "validate", str(extension_zip)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zip_contents(extension_zip: Path) -> None:
    with zipfile.ZipFile(extension_zip) as zf:
        names = set(zf.namelist())
        info = json.loads(zf.read("build_info.json"))
    for required in ("blender_manifest.toml", "__init__.py", "LICENSE", "addon/__init__.py",
                     "addon/take_import.py", "addon/client/engine.py", "inference_server/take.py",
                     "inference_server/protocol.py", "rigs/rotations.py",
                     "addon/engine_setup.py", "requirements.txt"):  # Set up Engine installs requirements.txt
        assert required in names, required
    for name in names:
        top = name.split("/")[0]
        assert top not in {"tests", "bench", "tools", "docs", "samples", ".venv", ".cache", ".ci", "dist", "out"}, name
        assert "__pycache__" not in name and not name.endswith((".pyc", ".blend1")), name
        assert not top.startswith(".git") and name not in {"mypy.ini", "pytest.ini", "requirements-blender.txt"}, name
    assert Path(info["checkout"]) == ROOT
    assert info["version"] == "0.1.0" and info["built"]


def test_installed_and_registered(bpy: ModuleType, addon: ModuleType) -> None:
    assert addon.__name__ == PACKAGE
    for op in OPERATORS:
        assert getattr(bpy.ops.reel2rig, op).get_rna_type().identifier == f"REEL2RIG_OT_{op}"
    assert bpy.ops.reel2rig.capture.idname_py() == "reel2rig.capture"
    assert hasattr(bpy.types, "REEL2RIG_PT_capture")
    assert bpy.types.REEL2RIG_PT_capture.bl_category == "Reel2Rig"
    assert hasattr(bpy.types.Scene, "reel2rig") and hasattr(bpy.types.WindowManager, "reel2rig_status")
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    assert type(prefs).bl_idname == PACKAGE
    assert {"engine_python", "cache_dir"} <= set(prefs.bl_rna.properties.keys())


def test_engine_config_from_preferences(bpy: ModuleType, empty_scene: ModuleType) -> None:
    preferences = addon_module("preferences")
    config = preferences.engine_config(bpy.context)
    assert config.python == ENGINE_PYTHON
    assert (Path(config.root) / "inference_server" / "protocol.py").is_file()
    assert Path(config.root).name == "reel2rig" and Path(config.root) != ROOT  # the installed copy
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.engine_python = "/nonexistent/python"
    try:
        with pytest.raises(addon_module("paths").EngineSetupError, match="Engine Python"):
            preferences.engine_config(bpy.context)
    finally:
        prefs.engine_python = ENGINE_PYTHON


def test_panel_draws(bpy: ModuleType, empty_scene: ModuleType) -> None:
    """Panels cannot be drawn without a window; check the draw code runs against a recording layout."""
    panels = addon_module("panels")
    calls: list[tuple] = []

    class Layout:
        def __getattr__(self, name):
            def record(*args, **kwargs):
                calls.append((name, args, kwargs))
                return self
            return record

    status = bpy.context.window_manager.reel2rig_status
    for running in (False, True):
        status.running, status.progress, status.stage = running, 0.4, "fit: 2/5"
        status.message, status.is_error = ("boom", True) if not running else ("", False)
        calls.clear()
        _draw(panels.REEL2RIG_PT_capture, Layout(), bpy.context)
        ops = [args[0] for name, args, _ in calls if name == "operator"]
        assert ("reel2rig.cancel" in ops) == running and ("reel2rig.capture" in ops) != running
        if running:
            assert any(name == "progress" and kw.get("factor") == pytest.approx(0.4) for name, _, kw in calls)
        else:
            assert any(name == "label" and kw.get("text") == "boom" for name, _, kw in calls)
    status.running, status.message = False, ""


def _draw(panel_cls: type, layout: object, context: object) -> None:
    """Call Panel.draw with a stand-in `self` that only carries `layout`."""
    stand_in = type("StandIn", (), {"layout": layout})()
    panel_cls.draw(stand_in, context)  # type: ignore[arg-type]


def test_disable_unregisters_and_enable_restores(bpy: ModuleType, addon: ModuleType) -> None:
    import addon_utils

    addon_utils.disable(PACKAGE, default_set=True)
    try:
        assert PACKAGE not in bpy.context.preferences.addons
        assert not hasattr(bpy.types, "REEL2RIG_PT_capture")
        assert not hasattr(bpy.types.Scene, "reel2rig")
        with pytest.raises(KeyError):
            bpy.ops.reel2rig.capture.get_rna_type()
    finally:
        enable_addon(bpy)
    assert bpy.ops.reel2rig.capture.get_rna_type().identifier == "REEL2RIG_OT_capture"


def test_factory_reset_then_reenable(reset_factory: ModuleType) -> None:
    bpy = reset_factory
    assert bpy.ops.reel2rig.import_take.get_rna_type().identifier == "REEL2RIG_OT_import_take"
    assert bpy.context.scene.reel2rig.mode == "body+hands"
