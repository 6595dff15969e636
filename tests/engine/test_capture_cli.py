"""The capture command's machine-facing options: --json summary, --no-cache, --device. Real engine, real clip."""
from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, capture_sample

pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")


capture = capture_sample


def test_json_summary_and_no_cache(tmp_path):
    first = capture(tmp_path, "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 12
    assert summary["stages"]["detect"]["cached"] is False and summary["stages"]["detect"]["seconds"] > 0
    assert set(summary["stages"]) == {"decode", "detect", "fit", "world", "write"}
    assert summary["peak_rss_mb"] > 100  # torch + MediaPipe are loaded: a real process, not a stub
    again = json.loads(capture(tmp_path, "--json").stdout.strip().splitlines()[-1])
    assert again["stages"]["detect"]["cached"] is True  # the second run reuses the detections
    fresh = json.loads(capture(tmp_path, "--json", "--no-cache").stdout.strip().splitlines()[-1])
    assert fresh["stages"]["detect"]["cached"] is False and fresh["stages"]["detect"]["seconds"] > 0


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = capture(tmp_path, "--device", "cuda")
    assert proc.returncode == 1
    assert "CUDA" in proc.stderr and "fix:" in proc.stderr
