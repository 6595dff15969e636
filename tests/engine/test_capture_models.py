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


def _projected(take, points_world):
    cam = np.einsum("tij,tnj->tni", take["R_world2cam"], points_world) + take["t_world2cam"][:, None]
    uv = cam @ take["K"].T
    return uv[..., :2] / uv[..., 2:3]


def test_hands_mode_onto_anny_hands_gives_one_take_per_hand_in_the_picture(tmp_path):
    from inference_server.body_models import AnnyModel

    proc = capture(tmp_path, "--mode", "hands", "--model", "anny_hand")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    takes = sorted(out.glob("sample_wave.*_hand.take.npz"))
    assert [p.name for p in takes] == ["sample_wave.left_hand.take.npz", "sample_wave.right_hand.take.npz"]
    for path in takes:
        take = read_take(path)
        side = take.meta["hand"]["side"]
        assert path.name.startswith(f"sample_wave.{side}_hand")
        assert sorted(take.meta["hand"]["takes"]) == [p.name for p in takes]
        model = AnnyModel(hand=side)
        assert take.bone_names == model.names and take.bone_names[0] == "wrist." + side[0].upper()
        assert take.meta["model"] == f"anny_hand_{side}" and take["bone_parents"][0] == -1
        valid = take["valid"]
        s = ("left", "right").index(side)
        assert np.array_equal(valid, np.isfinite(take["hand_landmarks_2d"][:, s, 0, 0])) and valid.sum() >= 6
        # the joints are the skeleton's own (forward kinematics of the Take's rotations) ...
        from rigs.fk import bone_heads

        heads = bone_heads(take["rest_matrices"].astype(float), take["bone_parents"],
                           take["local_rotations_aa"].astype(float), take["root_position_world"].astype(float))
        assert np.abs(heads - take["joints_world"]).max() < 1e-4
        # ... and the wrist lies on the hand's wrist landmark in the picture (a hand model's hand is placed where
        # it is seen, not carried by a body at rest)
        wrist_px = _projected(take, take["joints_world"][:, :1])[valid, 0]
        landmark = take["hand_landmarks_2d"][valid, s, 0, :2]
        span = np.linalg.norm(np.ptp(take["hand_landmarks_2d"][valid, s, :, :2], axis=1), axis=-1)
        assert np.median(np.linalg.norm(wrist_px - landmark, axis=-1) / span) < 0.15
        assert np.nanmax(take["fit_residual_px"][valid]) < 0.3 * span.max()
        # the overlay's mesh is that hand's skin alone, on the hand in the picture
        from inference_server.overlay import take_mesh

        rows = np.nonzero(valid)[0][:3]
        verts, faces = take_mesh(take, rows)
        assert 500 < len(faces) < 8000                                  # one hand's faces, not the body's
        uv = verts @ take["K"].T
        centre = (uv[..., :2] / uv[..., 2:3])[:, np.unique(faces)].mean(axis=1)   # (3, 2) px, the drawn skin
        lo = np.nanmin(take["hand_landmarks_2d"][rows, s, :, :2], axis=1)
        hi = np.nanmax(take["hand_landmarks_2d"][rows, s, :, :2], axis=1)
        assert np.all((centre > lo) & (centre < hi)), (centre, lo, hi)


def test_hands_mode_onto_mano(tmp_path):
    models = tmp_path / "models"
    for side in ("left", "right"):
        write_model_file(models, "mano", "pkl", side=side)
    proc = capture(tmp_path, "--mode", "hands", "--model", "mano", "--model-dir", str(models))
    assert proc.returncode == 0, proc.stderr
    takes = sorted((tmp_path / "out").glob("sample_wave.*_hand.take.npz"))
    assert len(takes) == 2
    for path in takes:
        take = read_take(path)
        side = take.meta["hand"]["side"]
        model = load_model("mano", models, side=side)
        assert take.meta["model"] == f"mano_{side}" and take.bone_names == model.skeleton().names
        assert len(take.bone_names) == 16 and take.bone_names[0] == f"{side}_wrist"
        valid = take["valid"]
        # MANO's own library, given the Take's model-convention pose, shape and root, puts the joints where the Take
        # says they are, and they sit on the Anny hand fit's points
        joints = model.reference_joints(take["model_pose_aa"][valid], take["shape"],
                                        take["root_position_world"][valid])
        assert np.abs(joints - take["joints_world"][valid]).max() < 1e-3
        assert 0 < take["model_transfer_error_mm"][valid].mean() < 10


def test_hand_models_need_hands_mode_and_their_files(tmp_path):
    from inference_server.pipeline import CaptureOptions

    with pytest.raises(ValueError, match="hand model"):
        CaptureOptions.from_dict({"model": "mano", "mode": "body+hands"})
    assert CaptureOptions.from_dict({"model": "anny_hand", "mode": "hands"}).model == "anny_hand"
    proc = capture(tmp_path, "--mode", "body", "--model", "anny_hand")
    assert proc.returncode == 1 and "hand model" in proc.stderr and "fix:" in proc.stderr
    models = tmp_path / "models"
    write_model_file(models, "mano", "pkl", side="right")          # the left file is missing
    proc = capture(tmp_path, "--mode", "hands", "--model", "mano", "--model-dir", str(models))
    assert proc.returncode == 1 and "MANO_LEFT" in proc.stderr and "mano.is.tue.mpg.de" in proc.stderr
    assert not list((tmp_path / "out").glob("*.take.npz"))


def test_the_transfer_on_disk_gives_what_it_gives_in_memory(tmp_path, monkeypatch):
    """`transfer_from_anny` fills whole-clip arrays window by window; on disk (scratch.py, a long clip's case) they
    hold the very values the in-memory run gives."""
    from inference_server import scratch
    from inference_server.body_models import transfer_from_anny

    models = tmp_path / "models"
    write_model_file(models, "smpl", "npz")
    model = load_model("smpl", models)
    truth = np.load(SAMPLE.with_name("sample_wave_truth.npz"))
    names = [str(n) for n in truth["bone_names"]]
    heads = np.asarray(truth["joints_world"], dtype=np.float64)[:40]
    in_memory = transfer_from_anny(model, names, heads, window=16, shape_frames=8, iterations=5)
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "0")
    with scratch.opened(tmp_path / "scratch"):
        on_disk = transfer_from_anny(model, names, heads, window=16, shape_frames=8, iterations=5)
        assert scratch.on_disk(on_disk.local_aa) and scratch.on_disk(on_disk.joints)
        for name in ("local_aa", "model_pose", "root_world", "joints", "error_mm"):
            np.testing.assert_array_equal(getattr(on_disk, name), getattr(in_memory, name), err_msg=name)
