"""The benchmark renderer with several people: a tiny two-person scene rendered with the real bpy + Anny.

Renders in a subprocess (Blender's state stays out of this test process) into a temporary folder, about half a minute.
Checks the multi-person ground truth: the ``people_*`` fields exist with person 0 equal to the single-person fields,
every person is grounded and in the picture, and a person standing right behind another is hidden by it (the ray
cast meets every person's mesh) while the person in front is not.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / ".cache" / "anny").exists(), reason="the Anny cache is not built")

SCRIPT = """
import sys
from pathlib import Path
from inference_server.config import prepare_environment
prepare_environment()
from bench.render import render_scene
from bench.scenes import Extra, Scene

scene = Scene("tiny_multi", "wave", resolution=(320, 240), max_frames=4, seed=3, others=(
    Extra("count", phenotype="female", skin="dark", offset_m=(-0.3, 1.5)),  # behind the subject in the line of sight
    Extra("walk", phenotype="tall_heavy_male", skin="light", offset_m=(1.2, 0.4), yaw_deg=70.0,
          time_offset_s=-0.8),
))
render_scene(scene, Path(sys.argv[1]), log=lambda *a: None)
"""


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi") / "tiny_multi"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "clip.mp4").stat().st_size > 1000
    with np.load(out / "truth.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_people_fields_have_a_person_axis_with_the_subject_first(truth):
    P, T, J = 3, 4, len(truth["bone_names"])
    assert truth["people_body_markers_2d"].shape == (P, T, 33, 2)
    assert truth["people_body_visible"].shape == (P, T, 33)
    assert truth["people_hand_points_2d"].shape == (P, T, 2, 21, 2)
    assert truth["people_hand_visible"].shape == (P, T, 2, 21)
    assert truth["people_joints_world"].shape == (P, T, J, 3)
    assert truth["people_root_position_world"].shape == (P, T, 3)
    assert truth["people_phenotype"].shape == (P, 6) and truth["people_framed"].all()
    for field, single in (("people_body_markers_2d", "body_markers_2d"), ("people_body_visible", "body_visible"),
                          ("people_hand_points_2d", "hand_points_2d"), ("people_hand_visible", "hand_visible"),
                          ("people_joints_world", "joints_world"),
                          ("people_root_position_world", "root_position_world")):
        np.testing.assert_array_equal(truth[field][0], truth[single], err_msg=field)


def test_every_person_is_placed_grounded_and_framed(truth):
    roots = truth["people_root_position_world"]  # (P, T, 3)
    np.testing.assert_allclose(roots[0, 0, :2], [0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(roots[1, 0, :2], [-0.3, 1.5], atol=0.05)
    np.testing.assert_allclose(roots[2, 0, :2], [1.2, 0.4], atol=0.5)  # 0.8 s into its walk: it has moved
    lowest = truth["people_joints_world"][..., 2].min(-1)  # (P, T) the lowest bone head: an ankle or a toe
    assert ((lowest > -0.01) & (lowest < 0.15)).all()  # everyone stands on the floor
    w, h = truth["image_size"]
    uv = truth["people_body_markers_2d"]
    ok = np.isfinite(uv).all(-1)
    assert ((uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h))[ok].all()


def test_people_hide_each_other(truth):
    vis = truth["people_body_visible"]
    torso = [11, 12, 23, 24]  # shoulders and hips
    assert vis[0][:, torso].all()  # the subject, in front, is seen
    assert not vis[1][:, torso].any()  # the person right behind it is hidden by it
    assert vis[2][:, torso].any(1).all()  # the walker, beside them, is seen (side on: its far side is hidden)
