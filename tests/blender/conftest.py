"""Real Blender (the `bpy` module), headless, with Reel2Rig installed from the extension zip this checkout builds.

* ``BLENDER_USER_RESOURCES`` points at a temp folder *before* bpy is imported, so nothing touches ~/.config/blender.
* The zip is built once per session with tools/build_extension.py (Blender's own CLI validates and builds it) and
  installed with ``bpy.ops.extensions.package_install_files`` into the ``user_default`` repository.
* Each test starts from an empty file (``wm.read_homefile(use_empty=True)``, which keeps the preferences and the
  enabled extension); ``reset_factory`` re-enables the extension for tests that need factory settings.
* Headless Blender has no event loop: timers and modal handlers never run, so tests call ``execute`` (bpy.ops in
  background) or drive ``CaptureSession.pump`` directly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

_USER_RESOURCES = tempfile.mkdtemp(prefix="reel2rig-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES  # before the first `import bpy`

from blender_env import PACKAGE, REPO, addon_module, enable_addon, set_engine_python  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    mod = sys.modules.get(f"{PACKAGE}.addon.engine_session")
    if mod is not None:
        mod.shutdown()
    shutil.rmtree(_USER_RESOURCES, ignore_errors=True)
    _skip_broken_bpy_teardown(int(exitstatus))


def _skip_broken_bpy_teardown(exitstatus: int) -> None:
    """bpy 4.2 and 4.5 as Python modules fail in their C++ static destructors after Python has finished: 4.2.23
    segfaults in ``SpaceType::~SpaceType`` -> ``bpy_class_free`` (e.g. after any glTF export), 4.5.15 deadlocks in
    a ``GlobalState`` destructor waiting on its ``delayed_close`` thread. Blender itself exits through ``WM_exit``
    and is not affected, nor are bpy 5.0.1 and 5.2.4. So under those modules, end the process from an ``atexit``
    handler (registered last, so run first) with pytest's own exit status, once all output is flushed."""
    bpy = sys.modules.get("bpy")
    if bpy is None or bpy.app.version >= (5, 0, 0):
        return
    import atexit

    def exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exitstatus)

    atexit.register(exit_now)


@pytest.fixture(scope="session")
def bpy() -> ModuleType:
    return pytest.importorskip("bpy", reason="Blender as a Python module is not installed (pip install bpy==5.0.1)")


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="session")
def extension_zip(bpy: ModuleType, build_dir: Path) -> Path:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_extension.py"), "--out", str(build_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"build_extension.py failed:\n{proc.stdout}\n{proc.stderr}"
    zip_path = Path(proc.stdout.strip().splitlines()[-1])
    assert zip_path.is_file() and zip_path.suffix == ".zip", proc.stdout
    return zip_path





@pytest.fixture(scope="session")
def addon(bpy: ModuleType, extension_zip: Path) -> ModuleType:
    """The installed, enabled extension's package (bl_ext.user_default.reel2rig)."""
    result = bpy.ops.extensions.package_install_files(filepath=str(extension_zip), repo=REPO,
                                                       enable_on_install=True)
    assert result == {"FINISHED"}, result
    # The operator reports some failures (e.g. a bad archive) without failing: check the outcome itself.
    assert PACKAGE in sys.modules and PACKAGE in bpy.context.preferences.addons, \
        f"{extension_zip} did not install/enable as {PACKAGE}"
    set_engine_python(bpy)
    return sys.modules[PACKAGE]



@pytest.fixture
def empty_scene(bpy: ModuleType, addon: ModuleType) -> Iterator[ModuleType]:
    """An empty file with the extension enabled; yields bpy."""
    bpy.ops.wm.read_homefile(use_empty=True)
    enable_addon(bpy)
    yield bpy
    session = addon_module("engine_session").active_session()
    if session is not None and session.running:
        session.cancel()
        addon_module("engine_session").set_active_session(None)


@pytest.fixture
def reset_factory(bpy: ModuleType, addon: ModuleType) -> Iterator[ModuleType]:
    """Factory settings (which disable extensions), then the extension re-enabled."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    enable_addon(bpy)
    yield bpy
