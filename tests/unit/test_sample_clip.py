"""The embedded sample clip (samples/sample_wave.mp4) and its ground truth are present and self-consistent.

Plain pytest, numpy + OpenCV only (no bpy, torch or anny). Regenerate the files with
``.venv/bin/python samples/make_sample_clip.py --out samples/``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
VIDEO = SAMPLES / "sample_wave.mp4"
TRUTH_NPZ = SAMPLES / "sample_wave_truth.npz"
TRUTH_JSON = SAMPLES / "sample_wave_truth.json"
MAX_TOTAL_BYTES = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def truth() -> dict[str, np.ndarray]:
    with np.load(TRUTH_NPZ, allow_pickle=False) as z:  # no pickles: object arrays would raise here
        return {k: z[k] for k in z.files}


def test_files_exist_and_are_small():
    files = [VIDEO, TRUTH_NPZ, TRUTH_JSON, SAMPLES / "README.md", SAMPLES / "make_sample_clip.py"]
    for f in files:
        assert f.is_file(), f"missing {f}: run samples/make_sample_clip.py"
    total = sum(f.stat().st_size for f in SAMPLES.glob("sample_wave*"))
    assert total <= MAX_TOTAL_BYTES, f"sample files take {total} bytes, more than 3 MB"


def test_json_describes_the_clip(truth):
    meta = json.loads(TRUTH_JSON.read_text())
    assert meta["video"]["frames"] == len(truth["frame_ids"])
    assert meta["video"]["fps"] == pytest.approx(float(truth["fps"]))
    assert [meta["video"]["width"], meta["video"]["height"]] == truth["image_size"].tolist()
    assert "make_sample_clip.py" in meta["command"]


def test_clip_decodes_to_the_truth_frame_count_and_size(truth):
    cap = cv2.VideoCapture(str(VIDEO))
    assert cap.isOpened(), f"OpenCV cannot open {VIDEO}"
    n = 0
    shapes = set()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        shapes.add(frame.shape)
        n += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    w, h = truth["image_size"].tolist()
    assert n == len(truth["frame_ids"])
    assert shapes == {(h, w, 3)}
    assert fps == pytest.approx(float(truth["fps"]), rel=1e-3)


def test_truth_shapes_are_consistent(truth):
    t = len(truth["frame_ids"])
    j = len(truth["bone_names"])
    assert truth["bone_names"].dtype.kind == "U"
    expected = {
        "frame_ids": (t,), "timestamps": (t,), "fps": (), "image_size": (2,), "K": (3, 3),
        "R_world2cam": (t, 3, 3), "t_world2cam": (t, 3), "bone_names": (j,), "bone_parents": (j,),
        "rest_matrices": (j, 4, 4), "local_rotations_aa": (t, j, 3), "root_position_world": (t, 3),
        "joints_world": (t, j, 3), "joints_2d": (t, j, 2), "seed": (),
    }
    for key, shape in expected.items():
        assert truth[key].shape == shape, key
        if truth[key].dtype.kind == "f":
            assert np.isfinite(truth[key]).all(), key
    assert len(set(truth["bone_names"].tolist())) == j
    np.testing.assert_array_equal(truth["frame_ids"], np.arange(t))
    np.testing.assert_allclose(truth["timestamps"], truth["frame_ids"] / truth["fps"], atol=1e-9)
    r = truth["R_world2cam"]
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    k = truth["K"]
    assert k[0, 0] > 0 and k[1, 1] > 0 and k[2].tolist() == [0.0, 0.0, 1.0]
    # the root bone's head is the root position
    np.testing.assert_allclose(truth["joints_world"][:, 0], truth["root_position_world"], atol=1e-5)


def test_joints_2d_are_the_projection_of_joints_world(truth):
    p_cam = np.einsum("tij,tnj->tni", truth["R_world2cam"], truth["joints_world"]) + truth["t_world2cam"][:, None]
    assert (p_cam[..., 2] > 0).all(), "every joint is in front of the camera"
    uvw = p_cam @ truth["K"].T
    uv = uvw[..., :2] / uvw[..., 2:3]
    np.testing.assert_allclose(truth["joints_2d"], uv, atol=0.01)
    w, h = truth["image_size"].tolist()
    names = truth["bone_names"].tolist()
    wrists = [names.index("wrist.L"), names.index("wrist.R")]
    inside = (uv[:, wrists] >= 0).all(-1) & (uv[:, wrists] < [w, h]).all(-1)
    assert inside.all(), "both wrists stay in the image"


def test_bone_parents_come_before_children(truth):
    parents = truth["bone_parents"]
    assert parents[0] == -1
    assert all(0 <= p < c for c, p in enumerate(parents) if c > 0)
