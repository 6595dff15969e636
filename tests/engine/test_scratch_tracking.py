"""Hands-mode and multi-person captures whose tracker columns live on disk (scratch.py) write the very same Takes as
captures held in memory.

The real pipeline in-process, twice per mode under one fresh cache with detection run each time: every whole-clip
array in memory (``REEL2RIG_SCRATCH_MIN_FRAMES`` large), then every one on disk (0): the hands of every frame
(`detect.HandStore`), the tracker's observations (`tracking.ArrayRows`), every person of every frame
(`people.PeopleStore`) and each person's frames.
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


@pytest.fixture
def capture(tmp_path, monkeypatch, scratch_capture_cache):
    """capture(clip, name, min_frames, **options) → ([Take arrays, main person first], shapes made on disk)."""
    from inference_server.pipeline import CaptureOptions, run_capture

    _, made = scratch_capture_cache

    def run(clip: Path, name: str, min_frames: int, **options) -> tuple[list[dict], list[tuple]]:
        monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", str(min_frames))
        made.clear()
        result = run_capture(clip, tmp_path / name, CaptureOptions(use_cache=False, **options), lambda *a: None,
                             lambda: False)
        takes = result.people or [result.take_path]
        return [_arrays(path) for path in takes], [shape for shape, disk in made if disk]

    return run


def _same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert sorted(x) == sorted(y)
        for name, value in x.items():
            np.testing.assert_array_equal(y[name], value, err_msg=name)


def test_a_hands_capture_on_disk_writes_the_same_take_as_one_in_memory(capture):
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    memory, made_m = capture(SAMPLE, "memory", 10 ** 9, mode="hands")
    disk, made_d = capture(SAMPLE, "disk", 0, mode="hands")
    assert made_m == []
    assert any(shape[1:] == (21, 3) for shape in made_d), made_d       # the hands of every frame (HandStore)
    assert any(shape[1:] == (21, 2) for shape in made_d), made_d       # the tracker's observations
    assert (memory[0]["hand_source"] > 0).any()
    _same(memory, disk)


def test_a_multi_person_capture_on_disk_writes_the_same_takes_as_one_in_memory(capture, tmp_path):
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    import cv2

    from inference_server.video import iter_frames

    frames = [f for _, _, f in iter_frames(SAMPLE, 0, None)]
    clip = tmp_path / "two_people.mp4"   # the sample twice side by side, the right one 45 frames later
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (2 * frames[0].shape[1],
                                                                                 frames[0].shape[0]))
    for t in range(24):
        writer.write(np.hstack([frames[t], frames[(t + 45) % len(frames)]]))
    writer.release()
    memory, made_m = capture(clip, "memory", 10 ** 9, people=0)
    disk, made_d = capture(clip, "disk", 0, people=0)
    assert made_m == [] and len(memory) == 2
    assert any(shape[1:] == (33, 2) for shape in made_d), made_d       # the tracker's observations
    assert sum(shape == (24, 33, 3) for shape in made_d) >= 2, made_d  # each person's pose (FrameStore)
    _same(memory, disk)
