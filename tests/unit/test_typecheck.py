"""mypy over addon/ against fake-bpy-module's stubs (config: mypy.ini). No bpy needed."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


HAS_STUBS = any(Path(p, "bpy-stubs").is_dir() for p in sys.path if p)


@pytest.mark.skipif(not _installed("mypy"), reason="mypy is not installed (pip install mypy)")
@pytest.mark.skipif(not HAS_STUBS, reason="fake-bpy-module is not installed (pip install fake-bpy-module-5.0)")
def test_addon_typechecks(tmp_path: Path) -> None:
    cwd, target = ROOT, "addon"
    if not ROOT.name.isidentifier():
        # mypy names the add-on after the checkout folder (the root is a package: the extension's __init__.py);
        # a checkout folder like "reel2rig-main" is not a valid package name, so check it through a symlink.
        link = tmp_path / "reel2rig"
        link.symlink_to(ROOT, target_is_directory=True)
        cwd, target = tmp_path, "reel2rig/addon"
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(cwd / target / ".." / "mypy.ini"),
                           "--cache-dir", str(tmp_path / "mypy_cache"), target],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
