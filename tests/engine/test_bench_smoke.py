"""The ground-truth benchmark's smoke suite, end to end: render (real bpy + Anny), capture (real engine), score.

Runs ``python -m bench smoke`` as a subprocess (Blender's state stays out of this test process). The rendered
scenes are cached in ``<cache>/bench/scenes``; the first run renders them (about a minute here).
Checks, on the real rendered ground truth:
* the truth is self-consistent (FK of its rotations gives its joints; its projections land on the body's pixels);
* the scoring code gives a perfect prediction zero and a known offset exactly that offset;
* the three methods were all scored, the pictures were written, and our capture is in a sane accuracy range.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / ".cache" / "anny").exists(), reason="the Anny cache is not built")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bench", "smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "smoke.json").read_text())
    return report, proc.stdout


def scene_truth(name: str) -> dict:
    from bench.run import scene_dir
    from bench.scenes import suite

    scene = next(s for s in suite("smoke") if s.name == name)
    with np.load(scene_dir(scene) / "truth.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def perfect(truth: dict):
    from bench.evaluate import FOOT_POINTS, Prediction, truth_root_cam0

    return Prediction("perfect", truth["body_markers_cam"].copy(), truth["body_markers_2d"].copy(),
                      truth["hand_points_cam"].copy(), truth["hand_points_2d"].copy(), True,
                      truth_root_cam0(truth), truth["body_markers_world"][:, FOOT_POINTS].copy(),
                      R_world2cam=truth["R_world2cam"].copy(), foot_contact=truth["foot_contact"].astype(float))


def test_report_has_every_method_and_picture(smoke):
    report, stdout = smoke
    assert report["scenes"] == 2 and report["frames"] == 72
    for scene in report["per_scene"]:
        assert set(scene["methods"]) == {"raw-mediapipe", "direct-mapping", "reel2rig"}
        assert "error" not in scene["capture"], scene["capture"]
        for picture in scene["pictures"]:
            assert Path(picture).stat().st_size > 10_000
    for picture in report["pictures"]:
        assert Path(picture).stat().st_size > 10_000
    assert "| reel2rig |" in stdout and "| raw-mediapipe |" in stdout


def test_our_capture_is_in_a_sane_range(smoke):
    ours = smoke[0]["summary"]["reel2rig"]
    assert ours["body_detection_rate"] > 0.9
    assert 5 < ours["body_pa_mpjpe_mm"] < 90
    assert ours["hands_pa_mpjpe_mm"] < 30
    assert ours["fps_end_to_end"] > 0 and ours["fps"]["detect"] > 0


@pytest.mark.parametrize("name", ["smoke_wave", "smoke_count"])
def test_ground_truth_is_consistent(smoke, name):
    import cv2

    from bench.scenes import suite
    from bench.run import scene_dir
    from rigs.fk import bone_heads

    g = scene_truth(name)
    heads = bone_heads(g["rest_matrices"], g["bone_parents"], g["local_rotations_aa"], g["root_position_world"])
    np.testing.assert_allclose(heads, g["joints_world"], atol=1e-5)
    cam = np.einsum("tij,tnj->tni", g["R_world2cam"], g["joints_world"]) + g["t_world2cam"][:, None]
    uv = cam @ g["K"].T
    np.testing.assert_allclose(uv[..., :2] / uv[..., 2:], g["joints_2d"], atol=1e-6)
    # The projections land on the body: the pixels at visible torso points differ from the frame's corners.
    scene = next(s for s in suite("smoke") if s.name == name)
    cap = cv2.VideoCapture(str(scene_dir(scene) / "clip.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    corner = frame[:8, :8].reshape(-1, 3).mean(0)
    on_body = [frame[int(v), int(u)].astype(float) for u, v in g["body_markers_2d"][0, [11, 12, 23, 24]]]
    assert all(np.abs(p - corner).sum() > 40 for p in on_body)
    assert g["body_visible"][:, [11, 12]].mean() > 0.9
    assert g["foot_contact"].mean() > 0.5  # standing scenes: the feet stay on the floor


def test_perfect_prediction_scores_zero_and_offsets_score_the_offset(smoke):
    from bench.evaluate import BODY_JOINTS, evaluate

    g = scene_truth("smoke_wave")  # full-body framing: every scored joint is inside the picture
    w, h = g["image_size"]
    assert ((g["body_markers_2d"][:, BODY_JOINTS] >= 0) & (g["body_markers_2d"][:, BODY_JOINTS] < [w, h])).all()
    p = perfect(g)
    r = evaluate(g, p)
    for key in ("body_mpjpe_mm", "body_pa_mpjpe_mm", "body_2d_px", "accel_error_mm_f2", "hand_L_pa_mpjpe_mm",
                "hand_R_mpjpe_wrist_mm", "hand_L_2d_px"):
        assert abs(r[key]) < 1e-6, key
    assert r["body_detection_rate"] == 1.0 and r["hand_L_f5"] == 1.0 and r["handedness"]["swap_frames"] == 0
    assert abs(r["camera_rotation_deg"]) < 1e-6 and r["foot_contact_f1"] == 1.0

    shifted = perfect(g)
    moved = [j for j in BODY_JOINTS if j not in (23, 24)]  # every joint but the hips (the root) moves 20 mm
    shifted.body_cam[:, moved] += [0.0, 0.0, 0.020]
    shifted.body_2d += [3.0, 4.0]
    shifted.hands_cam[:, 0, 1:] += [0.010, 0.0, 0.0]  # left hand fingers 10 mm off, wrist in place
    r = evaluate(g, shifted)
    assert r["body_mpjpe_mm"] == pytest.approx(20.0 * 10 / 12, abs=1e-6)
    assert r["body_2d_px"] == pytest.approx(5.0, abs=1e-9)
    assert r["hand_L_mpjpe_wrist_mm"] == pytest.approx(10.0 * 20 / 21, abs=1e-6)
    assert r["hand_R_mpjpe_wrist_mm"] == pytest.approx(0.0, abs=1e-9)

    crossed = perfect(g)
    crossed.hands_2d = crossed.hands_2d[:, ::-1].copy()  # left and right swapped on every frame
    assert evaluate(g, crossed)["handedness"]["swap_frames"] == len(g["frame_ids"])


def test_footage_mode_without_ground_truth(smoke, tmp_path):
    """``bench --footage DIR`` on a folder holding one clip (the rendered smoke clip, used as plain footage)."""
    import shutil

    from bench.run import scene_dir
    from bench.scenes import suite

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(scene_dir(suite("smoke")[0]) / "clip.mp4", folder / "wave.mp4")
    (folder / "notes.txt").write_text("not a video")  # other files are ignored
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bench", "--footage", str(folder), "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "footage.json").read_text())
    (clip,) = report["clips"]
    assert clip["clip"] == "wave.mp4" and clip["frames"] == 36
    assert clip["coverage"]["body"] == 1.0
    assert clip["hand_label_flips"]["swap_events"] == 0
    ours = clip["methods"]["reel2rig"]
    assert ours["body_2d_vs_detector_px"] < 15  # the fit lines up with what the detector saw
    assert ours["jitter_mm_f3"] < clip["methods"]["raw-mediapipe"]["jitter_mm_f3"]  # and is smoother
    assert all(Path(p).stat().st_size > 10_000 for p in clip["pictures"])
    assert "| wave.mp4 |" in proc.stdout


def test_footage_mode_needs_a_folder_of_videos(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bench", "--footage", str(tmp_path), "--out", str(tmp_path / "o")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no video files" in proc.stderr
