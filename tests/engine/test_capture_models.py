"""Capturing onto the user's SMPL-family model through the real engine (synthetic model files with the official
structure): the Take carries that model's skeleton, its pose in the model's own convention and its shape, and a
missing file fails before any detection work, naming the file and the fix."""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import SAMPLE, capture_sample
from synthetic_models import write_model_file

from inference_server.body_models import load_model
from inference_server.take import read_take

pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")


capture = capture_sample


def test_capture_onto_smplh(tmp_path):
    models = tmp_path / "models"
    write_model_file(models, "smplh", "pkl")
    proc = capture(tmp_path, "--model", "smplh", "--model-dir", str(models))
    assert proc.returncode == 0, proc.stderr
    take = read_take(tmp_path / "out" / "sample_wave.take.npz")
    model = load_model("smplh", models)
    assert take.bone_names == model.skeleton().names and len(take.bone_names) == 52
    assert take.meta["model"] == "smplh" and take.meta["model_info"]["convention"] == "parent-aligned"
    valid = take["valid"]
    assert valid.sum() >= 10
    # the model's own library, given the Take's model-convention pose, shape and root, puts the joints where the
    # Take says they are
    joints = model.reference_joints(take["model_pose_aa"][valid], take["shape"],
                                    take["root_position_world"][valid])
    assert np.abs(joints - take["joints_world"][valid]).max() < 1e-3
    # ... and they sit on the Anny fit's corresponding points (the transfer), within a few centimetres
    err = take["model_transfer_error_mm"][valid]
    assert 0 < err.mean() < 30, err.mean()
    # camera-space root = world root through the camera
    cam = np.einsum("tij,tj->ti", take["R_world2cam"], take["root_position_world"]) + take["t_world2cam"]
    assert np.allclose(cam, take["root_position_camera"], atol=1e-4)
    conf = take["fit_confidence"]
    assert np.all((conf >= 0) & (conf <= 1)) and conf[valid].mean() > 0.3 and np.all(conf[~valid] == 0)
    # the wave: the right wrist moves, in the SMPL-H Take as in the picture
    rw = take["joints_world"][valid, take.bone_names.index("right_wrist")]
    assert np.ptp(rw, axis=0).max() > 0.05


def test_missing_model_file_fails_fast(tmp_path):
    started = time.monotonic()
    proc = capture(tmp_path, "--model", "smplx", "--model-dir", str(tmp_path))
    assert proc.returncode == 1
    assert "SMPLX_NEUTRAL" in proc.stderr and "smpl-x.is.tue.mpg.de" in proc.stderr and "fix:" in proc.stderr
    assert not (tmp_path / "out" / "sample_wave.take.npz").exists()
    assert not (tmp_path / "cache" / "stages").exists() or not any((tmp_path / "cache" / "stages").glob("det*"))
    assert time.monotonic() - started < 120


def test_unknown_model_option_is_refused():
    from inference_server.pipeline import CaptureOptions

    with pytest.raises(ValueError, match="'model' must be one of"):
        CaptureOptions.from_dict({"model": "mixamo"})
    assert CaptureOptions.from_dict({"model": "smplx", "model_dir": "/x"}).model == "smplx"
