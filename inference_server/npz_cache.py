"""Small derived-data caches (skeleton, mesh) as ``.npz`` files: load, or build and write atomically. numpy only."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np


def versioned_path(folder: Path, stem: str, version: int) -> Path:
    """``folder/<stem>_v<version>_<anny version>.npz``: a cache of data derived from the installed Anny."""
    try:
        from importlib.metadata import version as package_version
        anny_version = package_version("anny")
    except Exception:
        anny_version = "unknown"
    return folder / f"{stem}_v{version}_{anny_version}.npz"


def load_or_build(path: Path, build: Callable[[], dict[str, np.ndarray]],
                  validate: Callable[[dict[str, np.ndarray]], None] | None = None) -> dict[str, np.ndarray]:
    """The arrays cached at `path`, or `build()`'s, written atomically (temp file + rename) for next time.

    An entry that cannot be read or that `validate` rejects (by raising) is rebuilt, so a damaged file never sticks.
    """
    from .take import atomic_write_bytes

    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
            if validate is not None:
                validate(data)
            return data
        except Exception:
            pass  # a damaged cache entry is rebuilt
    data = build()
    buf = io.BytesIO()
    np.savez_compressed(buf, **data)
    atomic_write_bytes(path, buf.getvalue())
    return data
