"""The body-shape experiment (bench/body_shape.py, issue 5's "shape shared across the sequence"): the solve on known
answers with the real Anny model, the measurement on synthetic projections and on a real clip."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.body_shape import (DETECTOR_BIAS, ESTIMATED, MIN_FRAMES, SEGMENTS, Proportions, RestProportions,
                               estimate_phenotype, observed_proportions)
from inference_server.anny_skeleton import ANNY_PHENOTYPE, DEFAULT_PHENOTYPE, load_skeleton, phenotype_key, stature_m

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
    from bench.body_shape import DETECTOR_NOISE

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


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
def test_first_fit_of_a_real_clip_measures_its_segments(rest):
    from bench.body_shape import first_fit_proportions
    from inference_server.capture import camera_intrinsics, detect_stage
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe

    info = probe(SAMPLE)
    det = detect_stage(SAMPLE, info, CaptureOptions(frame_end=FRAMES), lambda *a: None, lambda: False)[0]
    seen = first_fit_proportions(det, load_skeleton(), camera_intrinsics(info, None))
    assert seen.seen.sum() >= 4
    # Anny's average body fitted to a clip of a body of Anny's proportions: every segment within a few per cent.
    assert np.nanmax(np.abs(seen.log_ratio[seen.seen] - DETECTOR_BIAS[seen.seen])) < 0.15
    assert estimate_phenotype(seen, rest) is not None
