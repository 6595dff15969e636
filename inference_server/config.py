"""Paths and environment for the engine: one place for the cache folder and the caches packages write.

No bpy. Standard library only. Call :func:`prepare_environment` before importing anny, warp, matplotlib or
onnxruntime so that nothing is written into the user's home directory.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The engine's cache: ``$REEL2RIG_CACHE`` or ``<project>/.cache``."""
    return Path(os.environ.get("REEL2RIG_CACHE") or PROJECT_ROOT / ".cache").resolve()


def prepare_environment() -> Path:
    """Point package caches into our cache folder (only where the user has not set them). Returns the cache dir."""
    root = cache_dir()
    defaults = {
        "ANNY_CACHE_DIR": root / "anny",
        "WARP_CACHE_PATH": root / "warp",
        "MPLCONFIGDIR": root / "matplotlib",
    }
    for name, path in defaults.items():
        os.environ.setdefault(name, str(path))
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: warnings and errors only
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return root


def stage_cache_dir() -> Path:
    return cache_dir() / "stages"
