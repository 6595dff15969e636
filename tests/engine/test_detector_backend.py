"""The detector option (`CaptureOptions.detector`): MediaPipe's graphs or their torch port, through the real engine
pipeline on the sample clip, whose ground truth says where the subject's wrists are.

"auto" picks the torch port only for hands mode and only when torch sees a CUDA GPU (on a CPU MediaPipe's own
runtime is the faster one, and the torch body path swaps hands more often: README › Perception); "torch" runs it
anyway, batched over frames, on the CPU here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_server.pipeline import CaptureOptions, run_capture
from inference_server.take import read_take

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
TRUTH = ROOT / "samples" / "sample_wave_truth.npz"
FRAMES = 24


def _true_wrists() -> np.ndarray:
    with np.load(TRUTH) as f:
        names = [str(n) for n in f["bone_names"]]
        return f["joints_2d"][:FRAMES][:, [names.index("wrist.L"), names.index("wrist.R")]]   # (T, 2, 2) px


def _capture(tmp_path: Path, **options) -> tuple[dict, dict]:
    result = run_capture(SAMPLE, tmp_path, CaptureOptions(frame_end=FRAMES, use_cache=False, **options),
                         lambda *a: None, lambda: False)
    take = read_take(result.take_path)
    return take, json.loads(result.sidecar_path.read_text())


def _hands_on_own_wrists(take, min_found: float) -> None:
    hands = take["hand_landmarks_2d"][..., 0, :2]                                 # (T, 2, 2) wrist landmarks
    true = _true_wrists()
    found = np.isfinite(hands[..., 0])
    assert found.mean(axis=0).min() >= min_found, found.mean(axis=0)
    own = np.linalg.norm(hands - true, axis=-1)
    other = np.linalg.norm(hands - true[:, ::-1], axis=-1)
    assert not (found & (other < own)).any(), "a hand sits on the other wrist"
    assert np.nanmedian(own[found]) < 25.0


def test_auto_picks_torch_only_for_hands_on_a_gpu():
    assert CaptureOptions().detector == "auto"
    assert CaptureOptions().detector_backend() == "mediapipe"
    assert CaptureOptions(mode="body").detector_backend() == "mediapipe"
    assert CaptureOptions(mode="hands").detector_backend() == ("torch" if torch.cuda.is_available() else "mediapipe")
    assert CaptureOptions(detector="mediapipe").detector_backend() == "mediapipe"
    assert CaptureOptions(detector="torch").detector_backend() == "torch"
    with pytest.raises(ValueError, match="detector"):
        CaptureOptions.from_dict({"detector": "tflite"})


def test_torch_detector_body_and_hands(tmp_path):
    """One person through the torch port: the main person's track, hands on their own wrists, the camera's motion
    estimated from the background as on MediaPipe's path (the sample's camera is still)."""
    take, meta = _capture(tmp_path, detector="torch")
    assert meta["detection"]["detector"] == "torch"
    assert meta["detection"]["people"] == 1
    assert take["valid"].mean() >= 0.95
    _hands_on_own_wrists(take, min_found=0.9)
    assert "person" not in take.meta                                              # one person: no person list
    assert meta["world"]["camera_estimate"]["frames"] == FRAMES


def test_torch_detector_hands_mode(tmp_path):
    """Hands mode through the torch port's palm detector and hand landmarks, sides by track."""
    take, meta = _capture(tmp_path, detector="torch", mode="hands")
    assert meta["detection"]["detector"] == "torch"
    _hands_on_own_wrists(take, min_found=0.8)
