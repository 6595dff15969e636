"""A long capture's whole-clip arrays on disk, so that an hour of video does not grow the engine's memory.

No bpy, no GPU. numpy and the standard library only.

A capture opens one :class:`Scratch` (a private folder under the cache's ``scratch/``) for the job's thread
(:func:`opened`). While it is open, :func:`empty` gives arrays of at least :data:`MIN_FRAMES` frames as
``numpy.memmap`` files in that folder instead of memory; everything else is a plain ``numpy.empty``. The code that
fills or reads those arrays works a window of frames at a time and calls :func:`trim` after each window: the pages
it touched leave the process (``madvise(MADV_DONTNEED)`` on the shared file mapping; the data stays in the file,
through the page cache, and is read back when touched again). What the engine keeps resident is then a window's
worth, not the clip's (README › Batch figures).

The folder is deleted when the capture ends, however it ends; one left by a killed engine (its process gone) is
deleted by the next :class:`Scratch` opened under the same cache.
"""
from __future__ import annotations

import contextlib
import contextvars
import mmap
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Iterator

import numpy as np

#: Arrays of fewer frames stay in memory (a short clip gains nothing from the disk). ``REEL2RIG_SCRATCH_MIN_FRAMES``
#: overrides it (0: every whole-clip array on disk; the tests compare both paths).
MIN_FRAMES = 1500
#: Frames per window for the loops that read or fill scratch arrays.
WINDOW = 1000

_current: contextvars.ContextVar["Scratch | None"] = contextvars.ContextVar("reel2rig_scratch", default=None)


def min_frames() -> int:
    value = os.environ.get("REEL2RIG_SCRATCH_MIN_FRAMES", "")
    return int(value) if value.strip().isdigit() else MIN_FRAMES


class Scratch:
    """One capture's scratch folder and the memory maps made in it."""

    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(parent)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))
        self._maps: list[weakref.ref] = []   # the arrays made here, as long as something holds them
        self._count = 0
        self.bytes = 0   # the size of every file made here (what a capture puts on disk)

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` backed by a new file in this folder."""
        self._count += 1
        path = self.folder / f"a{self._count}.bin"
        if int(np.prod(shape)) == 0:
            return np.empty(shape, dtype)
        array = np.memmap(path, dtype=dtype, mode="w+", shape=tuple(int(s) for s in shape))
        os.unlink(path)   # the mapping keeps the data; the file goes when the last view of it does
        self._maps.append(weakref.ref(array))
        self.bytes += array.nbytes
        return array

    def trim(self) -> None:
        """Drop every resident page of this folder's arrays from the process (the data stays on disk)."""
        alive = [(ref, ref()) for ref in self._maps]
        self._maps = [ref for ref, array in alive if array is not None]
        for _, array in alive:
            if array is not None:
                _dontneed(array)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _dontneed(array: np.ndarray) -> None:
    handle = getattr(array, "_mmap", None)
    if handle is not None and not handle.closed and hasattr(handle, "madvise"):
        handle.madvise(mmap.MADV_DONTNEED)


def _remove_orphans(parent: Path) -> None:
    """Delete scratch folders whose engine process is gone (``<pid>-...``)."""
    for folder in parent.glob("*-*"):
        pid = folder.name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:   # another user's live process
            pass


@contextlib.contextmanager
def opened(parent: Path) -> Iterator[Scratch]:
    """Open a scratch folder under ``parent`` for the code this thread runs inside the ``with``."""
    scratch = Scratch(parent)
    token = _current.set(scratch)
    try:
        yield scratch
    finally:
        _current.reset(token)
        scratch.close()


def current() -> Scratch | None:
    return _current.get()


def empty(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """``numpy.empty(shape, dtype)``, on disk when a scratch is open and ``shape[0]`` (frames) ≥ :func:`min_frames`."""
    scratch = _current.get()
    if scratch is None or not shape or shape[0] < min_frames():
        return np.empty(shape, dtype)
    return scratch.empty(shape, dtype)


def on_disk(array: np.ndarray) -> bool:
    """Whether ``array`` is (a view of) a scratch memory map."""
    return getattr(array, "_mmap", None) is not None


def trim() -> None:
    """Drop the open scratch's resident pages (nothing when none is open)."""
    scratch = _current.get()
    if scratch is not None:
        scratch.trim()


def windows(n: int, size: int = WINDOW) -> Iterator[tuple[int, int]]:
    """``(a, b)`` frame windows over ``n`` frames; the scratch is trimmed after each."""
    for a in range(0, n, size):
        yield a, min(a + size, n)
        trim()


def copy_of(array: np.ndarray, dtype=None) -> np.ndarray:
    """A copy of ``array`` (as ``dtype``), made window by window: on disk when it is long (:func:`empty`)."""
    out = empty(array.shape, dtype or array.dtype)
    if not array.ndim:
        return np.array(array, dtype=dtype or array.dtype)
    for a, b in windows(len(array)):
        out[a:b] = array[a:b]
    return out
