"""scratch.py: whole-clip arrays on disk, and their pages dropped from the process's resident memory."""
from __future__ import annotations

import os

import numpy as np
import pytest

from inference_server import scratch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_only_long_arrays_go_to_disk_and_only_while_a_scratch_is_open(tmp_path, monkeypatch):
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "100")
    assert not scratch.on_disk(scratch.empty((500, 3)))           # no scratch open
    with scratch.opened(tmp_path) as opened:
        assert scratch.current() is opened
        long, short = scratch.empty((500, 3)), scratch.empty((99, 3))
        assert scratch.on_disk(long) and not scratch.on_disk(short)
        assert scratch.on_disk(long[10:20])                         # views too
        assert opened.bytes == long.nbytes
        folder = opened.folder
        assert folder.parent == tmp_path and folder.exists()
    assert scratch.current() is None and not folder.exists()
    long[:] = 1.0                                                   # the mapping outlives the folder
    assert long.sum() == 1500.0


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="resident memory is read from /proc (Linux)")
def test_trim_gives_the_pages_back_and_keeps_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "0")
    with scratch.opened(tmp_path):
        array = scratch.empty((200, 1000, 100), np.float64)            # 160 MB on disk
        before = _rss_mb()
        for a, b in scratch.windows(len(array), 20):                     # filled a window at a time, trimmed after each
            array[a:b] = np.arange(a, b, dtype=np.float64)[:, None, None]
            assert _rss_mb() - before < 60, "more than a window's pages stayed resident"
        array[:] = 7.0                                                   # touched all at once: resident ...
        assert _rss_mb() - before > 120
        scratch.trim()                                                   # ... until trimmed
        assert _rss_mb() - before < 20
        assert float(array[123, 456, 78]) == 7.0 and float(array.sum()) == 7.0 * array.size


def test_copy_of_converts_window_by_window(tmp_path, monkeypatch):
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "0")
    source = np.random.default_rng(0).normal(size=(2500, 4, 3))
    with scratch.opened(tmp_path):
        copy = scratch.copy_of(source, np.float32)
        assert scratch.on_disk(copy) and copy.dtype == np.float32
        np.testing.assert_array_equal(copy, source.astype(np.float32))
        assert list(scratch.windows(2500)) == [(0, 1000), (1000, 2000), (2000, 2500)]


def test_a_dead_engines_scratch_folder_is_removed_by_the_next(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f"{proc.pid}-abc"
    dead.mkdir()
    (dead / "a1.bin").write_bytes(b"x" * 100)
    alive = tmp_path / f"{os.getppid()}-def"                            # a live process's (pytest's parent)
    alive.mkdir()
    with scratch.opened(tmp_path):
        assert not dead.exists() and alive.exists()


def test_an_empty_or_zero_length_array_is_fine(tmp_path, monkeypatch):
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "0")
    with scratch.opened(tmp_path):
        assert scratch.empty((0, 3)).shape == (0, 3)
        assert list(scratch.windows(0)) == []
        scratch.trim()
