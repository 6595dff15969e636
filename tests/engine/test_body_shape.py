"""The body's shape from the pictures (issue 5: "shape shared across the sequence"): `body_shape` on known answers
with the real Anny model, `phenotype_for_height` on an estimated body, and a real capture that estimates one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference_server.anny_skeleton import (ANNY_PHENOTYPE, DEFAULT_PHENOTYPE, HEIGHT_TOLERANCE_M, load_anny_model,
                                            load_skeleton, phenotype_for_height, phenotype_key, stature_m)
from inference_server.body_shape import (DETECTOR_BIAS, ESTIMATED, MIN_FRAMES, SEGMENTS, Proportions,
                                         RestProportions, estimate_phenotype, observed_proportions)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
FRAMES = 16


@pytest.fixture(scope="module")
def rest():
    return RestProportions()


def _phenotype(**values) -> np.ndarray:
    p = DEFAULT_PHENOTYPE.copy()
    for name, v in values.items():
        p[ANNY_PHENOTYPE.index(name)] = v
    return p


def _seen_as(rest, phenotype, noise=None) -> Proportions:
    """What the detector would show for this body: its proportions against the average's, plus the detector's bias."""
    log_ratio = rest.log_lengths(phenotype) - rest.log_lengths(DEFAULT_PHENOTYPE) + DETECTOR_BIAS
    if noise is not None:
        log_ratio = log_ratio + noise
    return Proportions(log_ratio, np.full(len(SEGMENTS), 100))


@pytest.mark.parametrize("truth", [dict(height=0.85, gender=0.0), dict(height=0.2, gender=0.9),
                                   dict(age=0.85, gender=0.1), dict(proportions=0.9)])
def test_known_proportions_give_back_their_body(rest, truth):
    p_true = _phenotype(**truth)
    # Without the prior the solve finds the body itself ...
    exact = estimate_phenotype(_seen_as(rest, p_true), rest, prior_weight=1e-6, iterations=20)
    assert exact is not None
    assert np.abs(rest.log_lengths(exact) - rest.log_lengths(p_true)).max() < 0.004
    model = rest.model
    s_true, s_avg = stature_m(model, phenotype_key(p_true)), stature_m(model, None)
    assert abs(stature_m(model, phenotype_key(exact)) - s_true) < 0.05
    # ... and with it (the product's), it moves from the average towards it: the proportions' error and the
    # stature's at least halve.
    shrunk = estimate_phenotype(_seen_as(rest, p_true), rest)

    def proportion_error(p):
        d = rest.log_lengths(p) - rest.log_lengths(p_true)
        return np.sqrt(np.mean((d - d.mean()) ** 2))

    assert proportion_error(shrunk) < 0.5 * proportion_error(DEFAULT_PHENOTYPE)
    if abs(s_avg - s_true) > 0.1:   # (a change of proportions alone barely changes the stature)
        assert abs(stature_m(model, phenotype_key(shrunk)) - s_true) < 0.5 * abs(s_avg - s_true)
    # Only the estimated parameters move.
    fixed = [i for i, n in enumerate(ANNY_PHENOTYPE) if n not in ESTIMATED]
    assert np.array_equal(shrunk[fixed], DEFAULT_PHENOTYPE[fixed])


def test_the_average_body_stays_average(rest):
    estimate = estimate_phenotype(_seen_as(rest, DEFAULT_PHENOTYPE), rest)
    assert np.abs(estimate - DEFAULT_PHENOTYPE).max() <= 0.011


def test_noise_at_the_calibrated_level_moves_the_average_body_little(rest):
    from inference_server.body_shape import DETECTOR_NOISE

    rng = np.random.default_rng(5)
    statures = [stature_m(rest.model, phenotype_key(estimate_phenotype(
        _seen_as(rest, DEFAULT_PHENOTYPE, rng.normal(0, DETECTOR_NOISE)), rest))) for _ in range(8)]
    assert np.std(statures) < 0.12 and abs(np.mean(statures) - stature_m(rest.model, None)) < 0.08


def test_too_little_seen_keeps_the_average(rest):
    seen = _seen_as(rest, _phenotype(height=0.9))
    seen.frames[:] = 0
    seen.frames[:3] = MIN_FRAMES
    assert estimate_phenotype(seen, rest) is None


def test_observed_proportions_measure_a_longer_thigh():
    rng = np.random.default_rng(0)
    T = 40
    K = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])
    cam = np.zeros((T, 33, 3))
    cam[:] = rng.normal(0, 0.3, (33, 3)) * [1, 1, 0.05]      # a body nearly parallel to the picture ...
    cam[..., 2] += 3.0                                         # ... 3 m away
    seen_cam = cam.copy()
    for hip, knee, leg in ((23, 25, (25, 27, 29, 31)), (24, 26, (26, 28, 30, 32))):
        grow = 0.08 * (cam[:, knee] - cam[:, hip])             # thighs 8 % longer: knee and below move with it
        for k in leg:
            seen_cam[:, k] += grow
    project = lambda x: (x @ K.T)[..., :2] / x[..., 2:3]       # noqa: E731
    pose_2d = np.concatenate([project(seen_cam), np.ones((T, 33, 1))], axis=-1)
    out = observed_proportions(pose_2d, project(cam), cam)
    names = list(SEGMENTS)
    thigh = names.index("thigh")
    assert out.frames[thigh] >= 2 * T * 0.5
    assert out.log_ratio[thigh] == pytest.approx(np.log(1.08), abs=0.01)
    for other in ("upper arm", "forearm", "shin", "shoulder width", "hip width"):
        assert abs(out.log_ratio[names.index(other)]) < 0.01, other
    # Low visibility and a segment pointing at the camera are not measured.
    pose_2d[:, [25, 26], 2] = 0.2
    assert np.isnan(observed_proportions(pose_2d, project(cam), cam).log_ratio[thigh])


def test_height_on_an_estimated_body(rest):
    base = _phenotype(gender=0.2, age=0.7, proportions=0.3)
    for height in (1.55, 1.80):
        p = phenotype_for_height(height, base=base)
        assert abs(stature_m(rest.model, phenotype_key(p)) - height) <= HEIGHT_TOLERANCE_M
        keep = [i for i, n in enumerate(ANNY_PHENOTYPE) if n != "height"]
        assert np.allclose(p[keep], base[keep])


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
def test_capture_estimates_the_body_and_carries_it_through(tmp_path):
    from inference_server.anny_mesh import load_mesh
    from inference_server.pipeline import CaptureOptions, run_capture
    from inference_server.take import read_take

    def capture(out: str, **options):
        result = run_capture(SAMPLE, tmp_path / out, CaptureOptions(frame_end=FRAMES, **options), lambda *a: None,
                             lambda: False)
        return read_take(result.take_path), json.loads(result.sidecar_path.read_text()), result

    take, meta, result = capture("estimated")
    shape = meta["shape"]
    assert shape["source"] == "estimated from the pictures" and len(shape["segments_seen"]) >= 4
    p = np.array([shape["phenotype"][n] for n in ANNY_PHENOTYPE])
    assert np.allclose(take["shape"], p, atol=1e-5)
    skel = load_skeleton(p)
    assert np.allclose(take["rest_matrices"], skel.rest, atol=1e-5)
    with np.load(result.take_path.with_name(meta["mesh"]["file"])) as mesh:
        assert abs(float(np.ptp(mesh["vertices"][:, 2])) - shape["stature_m"]) < 0.002
    assert shape["stature_m"] == pytest.approx(stature_m(load_anny_model(), phenotype_key(p)), abs=1e-3)
    # "average" keeps Anny's average body; an actor's height makes the estimated body that tall.
    average, meta_avg, _ = capture("average", shape="average")
    assert np.allclose(average["shape"], DEFAULT_PHENOTYPE) and meta_avg["shape"]["source"] == "average"
    tall, meta_tall, _ = capture("tall", actor_height_m=1.85)
    assert meta_tall["shape"]["source"] == "estimated from the pictures, actor height"
    assert meta_tall["shape"]["stature_m"] == pytest.approx(1.85, abs=HEIGHT_TOLERANCE_M + 1e-4)
    keep = [i for i, n in enumerate(ANNY_PHENOTYPE) if n != "height"]
    assert np.allclose(tall["shape"][keep], p[keep], atol=1e-5)
