"""A capture whose whole-clip arrays live on disk (scratch.py) writes the very same Take as one held in memory.

The real pipeline in-process on the sample clip, three times under one fresh cache: in memory (detections computed
and cached), every long array on disk with detection run again (`detect.FrameStore` on disk), and on disk with the
detections read back from the cache (the streaming npz reader).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_a_capture_on_disk_writes_the_same_take_as_one_in_memory(tmp_path, monkeypatch, scratch_capture_cache):
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    from inference_server.pipeline import CaptureOptions, run_capture

    _, on_disk = scratch_capture_cache

    def capture(name: str, min_frames: int, **options) -> tuple[dict, dict]:
        monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", str(min_frames))
        on_disk.clear()
        result = run_capture(SAMPLE, tmp_path / name, CaptureOptions(**options), lambda *a: None, lambda: False)
        return _arrays(result.take_path), {"stages": result.stages, "made": list(on_disk)}

    memory, info_m = capture("memory", 10 ** 9)
    assert info_m["made"] == [] and not info_m["stages"]["detect"]["cached"]
    fresh, info_f = capture("disk-fresh", 0, use_cache=False)
    cached, info_c = capture("disk-cached", 0)
    assert not info_f["stages"]["detect"]["cached"] and info_c["stages"]["detect"]["cached"]
    n = len(memory["frame_ids"])
    for info in (info_f, info_c):   # the landmarks, the fit's rotations and the Take's joints were all on disk
        shapes = [shape for shape, disk in info["made"] if disk]
        assert (n, 33, 3) in shapes and (n, 104, 3) in shapes, shapes
    for other in (fresh, cached):
        assert sorted(other) == sorted(memory)
        for name, value in memory.items():
            np.testing.assert_array_equal(other[name], value, err_msg=name)
