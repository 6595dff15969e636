"""DESIGN §1 import rules, enforced on the source: who may import bpy, torch and the heavy packages."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "mediapipe", "cv2", "anny", "roma", "onnxruntime", "smplx", "warp", "scipy"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def py_files(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    return [base] if base.is_file() else sorted(base.rglob("*.py"))


def offenders(files: list[Path], banned: set[str]) -> dict[str, set[str]]:
    found = {str(f.relative_to(ROOT)): imported_modules(f) & banned for f in files}
    return {k: v for k, v in found.items() if v}


def test_only_the_addon_imports_bpy():
    others = [f for f in py_files("inference_server") + py_files("rigs")]
    assert offenders(others, {"bpy", "bmesh", "mathutils", "bpy_extras"}) == {}


def test_rigs_and_addon_client_stay_numpy_only():
    files = py_files("rigs") + py_files("addon", "client") + py_files("addon", "take_prepare.py")
    assert files, "expected rigs/ and addon/client/ to exist"
    assert offenders(files, HEAVY | {"bpy"}) == {}


def test_addon_never_imports_the_engine_stack():
    assert offenders(py_files("addon"), HEAVY) == {}


def test_modules_shared_with_blender_are_light():
    """The add-on imports these from inside Blender's Python: standard library + numpy only."""
    shared = [ROOT / "inference_server" / name for name in ("__init__.py", "protocol.py", "take.py", "config.py")]
    assert offenders(shared, HEAVY | {"bpy"}) == {}


def test_the_checker_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\nfrom bpy import types\ndef f():\n    import cv2\n")
    assert imported_modules(probe) == {"torch", "bpy", "cv2"}


def test_the_batch_driver_runs_the_engine_and_blender_only_as_subprocesses():
    """batch/ spawns the engine and `addon.batch_export` (Blender); it never loads bpy or the network stack."""
    files = py_files("batch")
    assert files, "expected batch/ to exist"
    assert offenders(files, {"bpy", "torch", "mediapipe", "anny", "smplx", "warp", "onnxruntime", "roma"}) == {}
