"""The actor's height (`CaptureOptions.actor_height_m`, `--actor-height`): the Anny body made that tall, and what it
changes in a capture. Real Anny, real engine pipeline on the sample clip.

One camera cannot tell a small person near it from a tall one further away; the fit lines the body up with the
picture, so a body k times as tall is placed k times as far along each line of sight, and travels k times as far.
The known answer checked here is exactly that, on the same detections.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference_server.anny_skeleton import (DEFAULT_PHENOTYPE, HEIGHT_TOLERANCE_M, _cache_path, height_range_m,
                                            load_anny_model, load_skeleton, phenotype_for_height, phenotype_key,
                                            shape_phenotype, stature_m)
from inference_server.pipeline import CaptureOptions, run_capture
from inference_server.protocol import INVALID_PARAMS, RpcError
from inference_server.take import read_take

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
FRAMES = 16


@pytest.mark.parametrize("height", [1.30, 1.52, 1.80, 2.05])
def test_the_body_is_as_tall_as_asked(height):
    phenotype = phenotype_for_height(height)
    assert phenotype.shape == DEFAULT_PHENOTYPE.shape
    others = np.delete(phenotype, 4)
    assert np.allclose(others, 0.5)                        # only Anny's "height" parameter moves
    assert abs(stature_m(load_anny_model(), phenotype_key(phenotype)) - height) <= HEIGHT_TOLERANCE_M


def test_taller_skeleton_same_bones():
    short, tall = load_skeleton(phenotype_for_height(1.45)), load_skeleton(phenotype_for_height(1.95))
    default = load_skeleton()
    assert short.names == tall.names == default.names
    assert np.array_equal(short.parents, default.parents)
    leg = [default.index(b) for b in ("upperleg01.L", "lowerleg01.L")]
    assert (tall.lengths[leg] > default.lengths[leg]).all() and (short.lengths[leg] < default.lengths[leg]).all()
    # The body markers ride the same bones, regressed from that body's own mesh.
    assert np.array_equal(short.body_marker_bone, default.body_marker_bone)
    assert not np.allclose(short.body_marker_local, default.body_marker_local)


def test_phenotype_survives_the_takes_float32_shape():
    phenotype = phenotype_for_height(1.57)
    stored = phenotype.astype(np.float32)                   # what the Take keeps
    back = shape_phenotype(stored)
    assert back is not None and _cache_path(phenotype_key(back)) == _cache_path(phenotype_key(phenotype))
    assert shape_phenotype(DEFAULT_PHENOTYPE.astype(np.float32)) is None   # an average body: the default skeleton
    assert shape_phenotype(np.zeros(10)) is None                           # another model's shape


@pytest.mark.parametrize("bad, words", [(0.0, "positive"), (-1.7, "positive"), (float("nan"), "positive"),
                                        (172.0, "metres"), (0.8, "outside"), (2.6, "outside")])
def test_heights_anny_cannot_be_are_refused(bad, words):
    with pytest.raises(ValueError, match=words):
        phenotype_for_height(bad)


def test_range_is_annys():
    lo, hi = height_range_m()
    assert 1.0 < lo < 1.3 and 2.0 < hi < 2.3


def test_option_is_checked():
    assert CaptureOptions.from_dict({"actor_height_m": 1.7}).actor_height_m == 1.7
    for bad in (0, -1.0, "tall", float("inf")):
        with pytest.raises(ValueError, match="actor_height_m"):
            CaptureOptions.from_dict({"actor_height_m": bad})


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
def test_a_height_anny_cannot_be_fails_before_detection(tmp_path):
    with pytest.raises(RpcError) as err:
        run_capture(SAMPLE, tmp_path, CaptureOptions(frame_end=FRAMES, actor_height_m=3.5), lambda *a: None,
                    lambda: False)
    assert err.value.code == INVALID_PARAMS and "metres" in err.value.fix
    assert not list(tmp_path.glob("*.take.npz"))


def _capture(out: Path, **options):
    result = run_capture(SAMPLE, out, CaptureOptions(frame_end=FRAMES, **options), lambda *a: None, lambda: False)
    return read_take(result.take_path), json.loads(result.sidecar_path.read_text()), result


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
def test_capture_of_a_shorter_actor_stands_nearer(tmp_path):
    base, _, _ = _capture(tmp_path / "default")
    height = 1.40
    take, meta, result = _capture(tmp_path / "short", actor_height_m=height)
    phenotype = phenotype_for_height(height)
    skel = load_skeleton(phenotype)
    # The Take is of that body: its phenotype, its rest, its mesh as tall as asked.
    assert np.allclose(take["shape"], phenotype, atol=1e-6)
    assert np.allclose(take["rest_matrices"], skel.rest, atol=1e-5)
    assert meta["options"]["actor_height_m"] == height
    with np.load(result.take_path.with_name(meta["mesh"]["file"])) as mesh:
        extent = float(np.ptp(mesh["vertices"][:, 2]))
    assert abs(extent - height) < 0.002
    # The known answer: a body k times as tall lines up with the same picture k times as far away.
    default = load_skeleton()

    def size(s):
        z = s.rest[:, 2, 3]
        return z[[s.index("upperarm01.L"), s.index("upperarm01.R")]].mean() - z[[s.index("foot.L"),
                                                                                s.index("foot.R")]].mean()

    k = size(skel) / size(default)
    assert 0.8 < k < 0.9
    valid = base["valid"] & take["valid"]
    depth = np.median(take["root_position_camera"][valid, 2] / base["root_position_camera"][valid, 2])
    assert abs(depth - k) < 0.03, (depth, k)
    # ... and lines up with the picture as well as the default body does.
    assert np.nanmean(take["fit_residual_px"][valid]) < 1.2 * np.nanmean(base["fit_residual_px"][valid]) + 1.0
