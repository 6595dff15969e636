"""Shared names for the Blender tests (imported by conftest.py and the tests; a unique module name, unlike
``conftest``, which other test folders have too)."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXTENSION_ID = "reel2rig"
REPO = "user_default"
PACKAGE = f"bl_ext.{REPO}.{EXTENSION_ID}"
#: The engine's Python (torch, mediapipe, anny): the checkout's .venv. ``./reel2rig test --blender X.Y`` runs these
#: tests with another Blender's Python (.venv-blender-X.Y, bpy only) and exports the main .venv's Python here.
ENGINE_PYTHON = os.environ.get("REEL2RIG_ENGINE_PYTHON") or sys.executable


def addon_module(name: str) -> ModuleType:
    """A submodule of the installed extension, e.g. addon_module('take_import')."""
    return importlib.import_module(f"{PACKAGE}.addon.{name}")


def set_engine_python(bpy: ModuleType) -> None:
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.engine_python = ENGINE_PYTHON  # the checkout's venv: torch, mediapipe, anny


def enable_addon(bpy: ModuleType) -> None:
    """Enable the installed extension (after factory settings disabled it) and point it at this Python."""
    import addon_utils

    if PACKAGE not in bpy.context.preferences.addons:
        addon_utils.enable(PACKAGE, default_set=True, handle_error=_raise)
    set_engine_python(bpy)


def _raise(exc: BaseException) -> None:
    raise exc


def id_counts(bpy: ModuleType) -> dict[str, int]:
    data = bpy.data
    return {name: len(getattr(data, name)) for name in
            ("objects", "armatures", "cameras", "actions", "movieclips", "collections")}


def new_armature_in_edit_mode(bpy: ModuleType, name: str) -> tuple:
    """A new armature object linked to the scene, made the only selected object and the active one, and put in edit
    mode (its transform may still be set: edit bones are in the armature's own space). Returns (object, armature)."""
    arm = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(ob)
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    bpy.context.view_layer.objects.active = ob
    ob.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    return ob, arm


def modal_stand_in(session=None, video: str = ""):
    """What the capture operator's methods need of ``self`` (headless Blender cannot run a real modal operator);
    ``reports`` collects what it reports."""
    from types import SimpleNamespace

    stand_in = SimpleNamespace(_session=session, _timer=None, _start=None, _settings=None, _on_finished=None,
                               video=video, reports=[], _remove_timer=lambda context: None)
    stand_in.report = lambda kind, text: stand_in.reports.append((kind, text))
    return stand_in


def drive_modal(bpy: ModuleType, session, events: list[str], limit_s: float = 30.0, tick_s: float = 0.01,
                on_tick=None, stand_in=None) -> tuple[set, list[tuple[set, str]]]:
    """Call the capture operator's modal() with stand-in events, as Blender's event loop would (headless Blender
    delivers no window events): ``events`` first (e.g. "ESC"), then TIMER ticks, until it stops passing through or
    ``limit_s`` passes. ``on_tick()`` runs after each call. Returns the last result and the operator's reports."""
    import time
    from types import SimpleNamespace

    operators = addon_module("operators")
    if stand_in is None:
        stand_in = modal_stand_in(session)
    reports = stand_in.reports
    deadline = time.monotonic() + limit_s
    result: set = {"RUNNING_MODAL"}
    while time.monotonic() < deadline:
        kind = events.pop(0) if events else "TIMER"
        event = SimpleNamespace(type=kind, value="PRESS" if kind == "ESC" else "NOTHING")
        result = operators.REEL2RIG_OT_capture.modal(stand_in, bpy.context, event)
        if on_tick is not None:
            on_tick()
        if result != {"PASS_THROUGH"}:
            break
        time.sleep(tick_s)
    return result, reports
