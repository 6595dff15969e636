"""The benchmark's reading of our Takes (bench/methods.py): what is scored as a body, from the real engine's Takes
of the sample clip."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import methods
from inference_server.anny_skeleton import load_skeleton
from inference_server.pipeline import CaptureOptions, run_capture

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"

pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")


def _take(tmp_path: Path, mode: str) -> Path:
    return run_capture(SAMPLE, tmp_path / mode, CaptureOptions(mode=mode, frame_end=8), lambda *a: None,
                       lambda: False).take_path


def test_a_hands_only_take_has_no_body_to_score(tmp_path):
    # Hands mode on Anny: the hands ride a body at rest whose bones the Take marks unfitted. Scored as a body it
    # would count a rest pose as a prediction where raw MediaPipe makes none (the benchmark's close-ups).
    pred = methods.reel2rig(_take(tmp_path, "hands"), load_skeleton(), {})
    assert np.isnan(pred.body_cam).all() and np.isnan(pred.root_cam0).all()
    assert np.isfinite(pred.hands_cam).any()


def test_a_body_take_is_scored(tmp_path):
    pred = methods.reel2rig(_take(tmp_path, "body+hands"), load_skeleton(), {})
    assert np.isfinite(pred.body_cam[:, 11]).all() and np.isfinite(pred.root_cam0).all()
