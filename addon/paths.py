"""Where the engine lives: its Python, its code root and its cache folder. Pure functions, no bpy.

The add-on runs the engine as a child process of Blender with a Python that has torch, mediapipe and anny
installed (the checkout's ``.venv``, made by ``./reel2rig setup``). This module decides which Python, in this
order (first match wins):

1. the add-on preference *Engine Python* when set (an error if that file does not exist);
2. the environment variable ``REEL2RIG_ENGINE_PYTHON`` when set (an error if that file does not exist);
3. ``<package root>/.venv/bin/python`` — the add-on is running straight from a dev checkout;
4. ``<checkout>/.venv/bin/python`` where ``checkout`` is read from the ``build_info.json`` that
   ``tools/build_extension.py`` writes into the extension zip;
5. otherwise :class:`EngineSetupError` telling the user what to set.

The engine's code root is the add-on's own package root: the extension zip ships ``inference_server/`` next to
``addon/``, so engine and add-on always come from the same build. The cache folder defaults to the checkout's
``.cache`` (where ``./reel2rig setup`` put the model caches) so an installed extension reuses them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

#: Folder holding ``blender_manifest.toml``, ``addon/``, ``inference_server/`` and ``rigs/``.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
BUILD_INFO_NAME = "build_info.json"
ENGINE_PYTHON_ENV = "REEL2RIG_ENGINE_PYTHON"
CACHE_ENV = "REEL2RIG_CACHE"
ENGINE_PYTHON_HELP = (
    "Press Set up Engine in Preferences › Add-ons › Reel2Rig (it installs the engine in its own environment), or "
    "set Engine Python there to an existing engine (a checkout's .venv/bin/python)")


class EngineSetupError(Exception):
    """The engine cannot be started as configured. The message says what to set."""


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Everything needed to start the engine process; the key of the shared client."""

    python: str
    root: str
    cache_dir: str | None


def env_python(env: Path, platform: str = sys.platform) -> Path:
    """The interpreter of the virtual environment ``env`` (POSIX or Windows layout)."""
    return env / ("Scripts/python.exe" if platform == "win32" else "bin/python")


def venv_python(folder: Path) -> Path:
    """The interpreter of a virtual environment in ``folder/.venv``."""
    return env_python(folder / ".venv")


def read_build_info(package_root: Path = PACKAGE_ROOT) -> dict[str, Any]:
    """The ``build_info.json`` written by tools/build_extension.py, or {} when absent or unreadable."""
    path = package_root / BUILD_INFO_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def checkout_root(package_root: Path = PACKAGE_ROOT) -> Path | None:
    """The source checkout: the package root itself when it has a ``.venv``, else the one build_info names."""
    if venv_python(package_root).exists():
        return package_root
    checkout = read_build_info(package_root).get("checkout")
    if isinstance(checkout, str) and checkout and Path(checkout).is_dir():
        return Path(checkout)
    return None


def resolve_engine_python(pref: str, environ: Mapping[str, str] | None = None,
                          package_root: Path = PACKAGE_ROOT) -> Path:
    """Pick the engine's Python (see the module docstring for the order). Raises EngineSetupError."""
    environ = os.environ if environ is None else environ
    if pref.strip():
        path = Path(pref.strip()).expanduser()
        if not path.is_file():
            raise EngineSetupError(f"Engine Python '{path}' (add-on preferences) does not exist. {ENGINE_PYTHON_HELP}")
        return path
    env_value = environ.get(ENGINE_PYTHON_ENV, "").strip()
    if env_value:
        path = Path(env_value).expanduser()
        if not path.is_file():
            raise EngineSetupError(f"{ENGINE_PYTHON_ENV}='{path}' does not exist. {ENGINE_PYTHON_HELP}")
        return path
    dev = venv_python(package_root)
    if dev.is_file():
        return dev
    checkout = read_build_info(package_root).get("checkout")
    if isinstance(checkout, str) and checkout:
        built = venv_python(Path(checkout))
        if built.is_file():
            return built
    raise EngineSetupError(f"No engine Python found. {ENGINE_PYTHON_HELP}")


def resolve_cache_dir(pref: str, environ: Mapping[str, str] | None = None,
                      package_root: Path = PACKAGE_ROOT, fallback: str | None = None) -> str | None:
    """Cache folder: preference → $REEL2RIG_CACHE → <checkout>/.cache → ``fallback`` (may be None: engine default)."""
    environ = os.environ if environ is None else environ
    if pref.strip():
        return str(Path(pref.strip()).expanduser())
    if environ.get(CACHE_ENV, "").strip():
        return str(Path(environ[CACHE_ENV].strip()).expanduser())
    checkout = checkout_root(package_root)
    if checkout is not None:
        return str(checkout / ".cache")
    return fallback


def engine_config(python_pref: str, cache_pref: str, environ: Mapping[str, str] | None = None,
                  package_root: Path = PACKAGE_ROOT, cache_fallback: str | None = None) -> EngineConfig:
    python = resolve_engine_python(python_pref, environ, package_root)
    if not (package_root / "inference_server").is_dir():
        raise EngineSetupError(f"{package_root} has no inference_server/ folder; reinstall the Reel2Rig extension")
    cache = resolve_cache_dir(cache_pref, environ, package_root, cache_fallback)
    return EngineConfig(python=str(python), root=str(package_root), cache_dir=cache)
