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


#: glibc ``mallopt`` parameters (malloc.h): allocations from this size up get their own ``mmap`` (and go back to the
#: system when freed) instead of coming from the heap, and at most this many heap arenas.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
MMAP_THRESHOLD_BYTES = 64 * 1024
ARENA_MAX = 2


def limit_heap_growth() -> bool:
    """Keep a long capture's memory from creeping: large buffers (frames, per-window arrays, tensors) are mapped and
    unmapped instead of left in a fragmented heap, and the heap arenas are few. Measured on a 6,000-frame clip
    (``./reel2rig bench batch``): the engine's peak grew 64 MB per 1,000 frames without this. glibc only (Linux);
    elsewhere, or where the user set ``MALLOC_*`` variables, nothing is changed. Returns whether it applied."""
    import sys

    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(_M_ARENA_MAX, ARENA_MAX))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False


def stage_cache_dir() -> Path:
    return cache_dir() / "stages"
