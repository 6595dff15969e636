"""A capture with the learned motion network (``--motion network``, inference_server/motion_stage.py): the real
engine in-process on the sample clip with a network trained here by the smoke run (seconds; its accuracy is not the
point: the wiring is). The body is the network's, the hands stay the fit's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("motion_net")
    proc = subprocess.run([sys.executable, "-m", "inference_server.motion_train", "--out", str(out), "--smoke"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "motion_net.onnx"


def _capture(out: Path, **options):
    from inference_server.pipeline import CaptureOptions, run_capture
    from inference_server.take import read_take

    result = run_capture(SAMPLE, out, CaptureOptions(**options), lambda *a: None, lambda: False)
    return read_take(result.take_path)


def test_the_network_drives_the_body_and_the_fit_keeps_the_hands(network, tmp_path):
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.capture import camera_intrinsics, detect_stage
    from inference_server.motion_infer import MotionModel
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe

    fitted = _capture(tmp_path / "fit", motion="fit")
    net = _capture(tmp_path / "net", motion="network", motion_model=str(network), foot_lock=False)
    assert net.meta["world"]["motion"] == "network" and net.meta["options"]["motion"] == "network"
    assert fitted.meta["world"].get("motion") is None
    skel = load_skeleton()
    names = net.bone_names
    hands = [j for j, n in enumerate(names) if n.startswith(("finger", "wrist"))]
    np.testing.assert_array_equal(net["local_rotations_aa"][:, hands], fitted["local_rotations_aa"][:, hands])
    # the body bones are the adapter's own prediction on the same detections
    info = probe(SAMPLE)
    det = detect_stage(SAMPLE, info, CaptureOptions(), lambda *a: None, lambda: False)[0]
    model = MotionModel.load(network, skel)
    K = camera_intrinsics(info, None)
    pred = model.predict(det.pose_2d, (info.width, info.height), K, det.camera_R, det.timestamps)
    body = [names.index(b) for b in model.bone_names if not b.startswith("wrist")]
    np.testing.assert_allclose(net["local_rotations_aa"][:, body], pred.local_rotations_aa[:, body], atol=1e-6)
    np.testing.assert_allclose(net["root_position_world"], pred.root_position_world, atol=1e-6)
    np.testing.assert_allclose(net["R_world2cam"], pred.R_world2cam, atol=1e-6)
    np.testing.assert_allclose(net["foot_contact"], pred.foot_contact, atol=1e-6)
    assert np.abs(net["local_rotations_aa"][:, body] - fitted["local_rotations_aa"][:, body]).max() > 0.05


def test_a_missing_network_is_a_clear_error(tmp_path):
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    proc = subprocess.run([sys.executable, "-m", "inference_server", "capture", str(SAMPLE), "--out",
                           str(tmp_path / "out"), "--motion", "network", "--motion-model",
                           str(tmp_path / "nowhere.onnx")], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode != 0
    assert f"motion network not found: {tmp_path / 'nowhere.onnx'}" in proc.stderr
    assert "motion_train" in proc.stderr   # the fix says how to make one
    assert not (tmp_path / "out" / "sample_wave.take.npz").exists()


def test_the_motion_option_is_checked():
    from inference_server.pipeline import CaptureOptions

    assert CaptureOptions.from_dict({}).motion == "prior"                       # the default ...
    assert CaptureOptions.from_dict({"mode": "hands"}).motion == "prior"         # ... meaning the fit in hands mode
    assert CaptureOptions.from_dict({"motion": "network", "motion_model": "/x.onnx"}).motion == "network"
    with pytest.raises(ValueError, match="'motion' must be one of"):
        CaptureOptions.from_dict({"motion": "wham"})
    with pytest.raises(ValueError, match="body or body\\+hands mode"):
        CaptureOptions.from_dict({"motion": "network", "mode": "hands"})


def test_the_prior_is_the_networks_body_in_the_fits_frame(network):
    """`network_prior` puts the network's body where the fit works (a level camera at the origin): seen from the
    camera, every bone points where the network's own world pose, seen from its camera, points; the root sits at
    the network's camera-space root."""
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.capture import camera_intrinsics, detect_stage
    from inference_server.fit import R_WORLD2CAM_LEVEL as R_L
    from inference_server.motion_infer import MotionModel
    from inference_server.motion_stage import network_prior
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe
    from rigs.fk import bone_heads

    skel = load_skeleton()
    info = probe(SAMPLE)
    det = detect_stage(SAMPLE, info, CaptureOptions(), lambda *a: None, lambda: False)[0]
    K = camera_intrinsics(info, None)
    size = (info.width, info.height)
    model = MotionModel.load(network, skel)
    (local, root), start = network_prior(skel, det, size, K, model)
    assert start == "the motion network's body"
    pred = model.predict(det.pose_2d, size, K, det.camera_R, det.timestamps)
    assert np.isfinite(local[:, 0]).all() and np.isnan(local[:, skel.index("finger2-1.L")]).all()
    filled = np.where(np.isfinite(local), local, pred.local_rotations_aa)
    heads_fit = bone_heads(skel.rest, skel.parents, filled, root) @ R_L.T                  # (T,J,3) camera
    heads_net = np.einsum("tij,tkj->tki", pred.R_world2cam.astype(float),
                          bone_heads(skel.rest, skel.parents, pred.local_rotations_aa, pred.root_position_world))
    np.testing.assert_allclose(heads_fit - heads_fit[:, :1], heads_net - heads_net[:, :1], atol=1e-4)
    np.testing.assert_allclose(heads_fit[:, 0], pred.root_position_camera, atol=1e-5)


def test_a_capture_started_from_the_network(network, tmp_path):
    if not SAMPLE.exists():
        pytest.skip("the sample clip is missing")
    take = _capture(tmp_path / "prior", motion="prior", motion_model=str(network))
    assert take.meta["options"]["motion"] == "prior" and take["valid"].all()
    assert take.meta["world"].get("motion") is None            # the fit's own world stage
    assert take.meta["world"]["fit_start"] == "the motion network's body"
    assert np.isfinite(take["local_rotations_aa"]).all()


def test_an_upper_body_shot_keeps_the_fits_own_start(network):
    """Legs out of the picture in most frames: no prior (the network learnt whole bodies and guesses legs); the
    share is counted over the frames with a body, a leg point outside the picture or barely visible is unseen."""

    from inference_server.motion_infer import MotionModel
    from inference_server.motion_stage import legs_seen, network_prior

    rng = np.random.default_rng(0)
    pose = np.concatenate([rng.uniform(100, 400, (40, 33, 2)), np.full((40, 33, 1), 0.9)], axis=-1)
    pose[30:] = np.nan                                                       # no body at all
    assert legs_seen(pose, (640, 480)) == 1.0
    pose[:12, 27, 1] = 700                                                   # an ankle below the picture
    pose[12:16, 25, 2] = 0.1                                                 # a knee barely visible
    assert legs_seen(pose, (640, 480)) == pytest.approx(14 / 30)
    det = type("Det", (), {})()
    det.pose_2d, det.camera_R, det.timestamps = pose, None, np.arange(40) / 30.0
    prior, start = network_prior(None, det, (640, 480), np.eye(3), MotionModel.load(network))
    assert prior is None and "47 %" in start and "its own" in start
