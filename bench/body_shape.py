"""An experiment, measured and not in the product: the actor's body from the pictures, Anny's phenotype chosen so that
its proportions match what the detected 2D landmarks show (`./reel2rig bench shape`; README › Fitting › Body shape).

Result (session 19): with MediaPipe's landmarks the proportions a clip shows vary from scene to scene by 2–6 % per
segment (``DETECTOR_NOISE``), as much as Anny's phenotypes differ (2–9 %), and the estimate did not beat Anny's
average body on the standard suite, left one scene out at a time. The capture keeps the average body (or the
actor's height, ``--actor-height``). The known-answer tests (tests/engine/test_body_shape.py) show the solve
itself recovers a body from clean proportions: what is missing is a cleaner measurement.

One camera cannot measure a person's size (a small person near it looks like a tall one further away), but it can
measure their *proportions*: how long the thighs are against the torso, the shoulders against the hips. In Anny
those follow the phenotype (a tall body has longer legs for its size and narrower shoulders, an older one a shorter
neck, a woman wider hips), so the proportions choose a phenotype and with it a stature.

How
---
1. A first fit of the body with Anny's average skeleton (the capture's fit, hands left out, no smoothing).
2. For each segment (shoulder width, hip width, upper arm, forearm, thigh, shin, torso), in frames where the detector
   is confident of both ends and the fitted segment lies nearly parallel to the picture (foreshortened by less than
   ``MIN_PARALLEL``), the ratio of its length in the detected 2D landmarks to its length in the fit's projection:
   the fit has placed the body at the depth that makes it the right size overall, so what is left is the segment's
   length against the others'. Left and right are pooled; the median over frames is kept where there are at least
   ``MIN_FRAMES`` such frames.
3. ``DETECTOR_BIAS`` is taken off: where MediaPipe puts a landmark is not exactly where Anny's keypoint regressor
   does (its hip landmarks sit wider apart, for one), so even a body of Anny's average proportions shows ratios away
   from 1.
4. Gauss–Newton over ``ESTIMATED`` (the rest of the phenotype stays average): the log segment lengths of Anny's rest
   keypoints, each less their mean over the segments seen (scale-free), against the observed log ratios; a prior
   ``PRIOR_WEIGHT`` pulls each parameter to the average. The result is rounded to ``ROUND_TO`` (so skeletons cache).

Measured on the benchmark's renders: `./reel2rig bench shape standard|heldout [--calibrate]`.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from inference_server.anny_skeleton import ANNY_PHENOTYPE, BODY_MARKER_COCO, DEFAULT_PHENOTYPE

# segment → MediaPipe landmark pairs ("shoulders"/"hips": the midpoints of 11–12 / 23–24); both sides pooled.
SEGMENTS: dict[str, tuple[tuple[object, object], ...]] = {
    "shoulder width": ((11, 12),),
    "hip width": ((23, 24),),
    "upper arm": ((11, 13), (12, 14)),
    "forearm": ((13, 15), (14, 16)),
    "thigh": ((23, 25), (24, 26)),
    "shin": ((25, 27), (26, 28)),
    "torso": (("shoulders", "hips"),),
    "neck": ((0, "shoulders"),),
}
ESTIMATED = ("gender", "age", "height", "proportions")   # weight and muscle move the joints by under 1 % (not seen)
MIN_VISIBILITY = 0.7     # both ends' MediaPipe visibility
MIN_PARALLEL = 0.85      # the fitted segment's length in the picture plane over its length (cos of its tilt)
MIN_FRAMES = 10          # frames a segment needs to count
MIN_SEGMENTS = 4         # segments needed for an estimate at all
PRIOR_WEIGHT = 10.0      # on (p - 0.5)² per parameter, against the residuals in units of DETECTOR_NOISE, squared
ROUND_TO = 0.01
# log(MediaPipe's length / Anny's keypoints' length) per segment for the same body, less its mean: measured on the
# standard suite's renders (`./reel2rig bench shape standard --calibrate`), per segment in SEGMENTS' order.
DETECTOR_BIAS = np.array([-0.0523, -0.0118, 0.0093, 0.0182, 0.0224, 0.0339, -0.0042, -0.0155])
# The spread of that log ratio from scene to scene (standard deviation, the same calibration): how far one clip's
# median can be trusted; the solve weighs each segment by its inverse square.
DETECTOR_NOISE = np.array([0.026, 0.04, 0.057, 0.022, 0.018, 0.03, 0.017, 0.041])


@dataclasses.dataclass
class Proportions:
    """What the pictures show: per segment the log of (detected length / fitted length), NaN where not seen."""
    log_ratio: np.ndarray    # (S,)
    frames: np.ndarray       # (S,) frames each median is over

    @property
    def seen(self) -> np.ndarray:
        return np.isfinite(self.log_ratio) & (self.frames >= MIN_FRAMES)


def _points(x: np.ndarray, name: object) -> np.ndarray:
    if name == "shoulders":
        return 0.5 * (x[..., 11, :] + x[..., 12, :])
    if name == "hips":
        return 0.5 * (x[..., 23, :] + x[..., 24, :])
    return x[..., int(name), :]  # type: ignore[call-overload]


def _visibility(v: np.ndarray, name: object) -> np.ndarray:
    if name == "shoulders":
        return np.fmin(v[..., 11], v[..., 12])
    if name == "hips":
        return np.fmin(v[..., 23], v[..., 24])
    return v[..., int(name)]  # type: ignore[call-overload]


def observed_proportions(pose_2d: np.ndarray, fitted_2d: np.ndarray, fitted_cam: np.ndarray) -> Proportions:
    """pose_2d (T,33,3) detected px + visibility; fitted_2d (T,33,2) the fit's projected markers; fitted_cam
    (T,33,3) the same markers in camera axes (for the tilt)."""
    log_ratio = np.full(len(SEGMENTS), np.nan)
    frames = np.zeros(len(SEGMENTS), dtype=np.int64)
    vis = np.nan_to_num(pose_2d[..., 2], nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        for s, pairs in enumerate(SEGMENTS.values()):
            logs = []
            for a, b in pairs:
                seen = np.linalg.norm(_points(pose_2d[..., :2], a) - _points(pose_2d[..., :2], b), axis=-1)
                fitted = np.linalg.norm(_points(fitted_2d, a) - _points(fitted_2d, b), axis=-1)
                d = _points(fitted_cam, a) - _points(fitted_cam, b)
                parallel = np.linalg.norm(d[:, :2], axis=-1) / np.linalg.norm(d, axis=-1)
                ok = ((np.fmin(_visibility(vis, a), _visibility(vis, b)) > MIN_VISIBILITY) & (parallel > MIN_PARALLEL)
                      & np.isfinite(seen) & np.isfinite(fitted) & (seen > 0) & (fitted > 0))
                logs.append(np.log(seen[ok] / fitted[ok]))
            pooled = np.concatenate(logs)
            frames[s] = len(pooled)
            if len(pooled):
                log_ratio[s] = float(np.median(pooled))
    return Proportions(log_ratio, frames)


FIRST_FIT_FRAMES = 400   # frames of the first fit, spread evenly over those with a body


def first_fit_proportions(det, skel, K: np.ndarray, device: str = "cpu") -> Proportions:
    """What a first fit of the body with ``skel`` (hands left out, no smoothing, at most FIRST_FIT_FRAMES frames
    spread over the clip) leaves unexplained in the proportions of the detected 2D landmarks."""
    from inference_server.anny_skeleton import attached_points
    from inference_server.fit import R_WORLD2CAM_LEVEL, FitSettings, fit_sequence
    from rigs.fk import forward_kinematics

    seen = np.flatnonzero(np.isfinite(det.pose_2d[:, 0, 0]))
    pick = np.unique(seen[np.linspace(0, len(seen) - 1, min(len(seen), FIRST_FIT_FRAMES)).round().astype(np.int64)])
    pose_2d = np.asarray(det.pose_2d[pick], np.float64)
    fit = fit_sequence(skel, pose_2d, np.asarray(det.pose_world[pick], np.float64),
                       np.full((len(pick), 2, 21, 3), np.nan), K, FitSettings(smoothing=0.0, device=device))
    W = forward_kinematics(skel.rest, skel.parents, fit.local_rotations_aa, fit.root_position_world)
    body = attached_points(W, np.maximum(skel.body_marker_bone, 0), skel.body_marker_local)
    body[:, skel.body_marker_bone < 0] = np.nan
    shift = fit.camera_shift if fit.camera_shift is not None else np.zeros((len(pick), 3))
    cam = body @ R_WORLD2CAM_LEVEL.T + shift[:, None]
    uvw = cam @ K.T
    return observed_proportions(pose_2d, uvw[..., :2] / uvw[..., 2:3], cam)


class RestProportions:
    """Log segment lengths of Anny's rest keypoints per phenotype (each an Anny forward pass, ~20 ms)."""

    def __init__(self):
        import anny

        from inference_server.anny_skeleton import load_anny_model

        self.model = load_anny_model()
        self.regressor = anny.KeypointsRegressor.coco(self.model)

    def log_lengths(self, phenotype: Sequence[float]) -> np.ndarray:
        from inference_server.anny_skeleton import anny_forward, rest_keypoints

        coco = rest_keypoints(self.model, anny_forward(self.model, tuple(float(v) for v in phenotype)),
                              self.regressor)
        points = np.full((33, 3), np.nan)
        for mp, c in BODY_MARKER_COCO.items():
            points[mp] = coco[c]
        return np.array([np.mean([np.log(np.linalg.norm(_points(points, a) - _points(points, b)))
                                  for a, b in pairs]) for pairs in SEGMENTS.values()])


def estimate_phenotype(seen: Proportions, rest: RestProportions | None = None, *, bias: np.ndarray | None = None,
                       noise: np.ndarray | None = None, prior_weight: float = PRIOR_WEIGHT,
                       iterations: int = 6) -> np.ndarray | None:
    """The phenotype whose proportions best explain ``seen`` (see the module's notes), or None when too few
    segments were seen to tell (the caller keeps Anny's average body)."""
    use = seen.seen
    if use.sum() < MIN_SEGMENTS:
        return None
    rest = rest or RestProportions()
    bias = DETECTOR_BIAS if bias is None else np.asarray(bias, np.float64)
    weight = 1.0 / np.square(DETECTOR_NOISE if noise is None else np.asarray(noise, np.float64))[use]
    index = [ANNY_PHENOTYPE.index(name) for name in ESTIMATED]

    def centred(x: np.ndarray) -> np.ndarray:
        x = x[use]
        return x - x.mean()

    base = centred(rest.log_lengths(DEFAULT_PHENOTYPE))
    target = centred(seen.log_ratio - bias)   # what the average body's proportions must change by
    p = DEFAULT_PHENOTYPE.copy()
    step = 0.02
    for _ in range(iterations):
        now = centred(rest.log_lengths(p)) - base
        J = np.empty((len(now), len(index)))
        for k, i in enumerate(index):
            q = p.copy()
            q[i] += step if q[i] + step <= 1.0 else -step
            J[:, k] = (centred(rest.log_lengths(q)) - base - now) / (q[i] - p[i])
        A = J.T @ (weight[:, None] * J) + prior_weight * np.eye(len(index))
        g = J.T @ (weight * (target - now)) - prior_weight * (p[index] - DEFAULT_PHENOTYPE[index])
        delta = np.linalg.solve(A, g)
        p[index] = np.clip(p[index] + delta, 0.0, 1.0)
        if np.abs(delta).max() < 1e-3:
            break
    return np.round(p / ROUND_TO) * ROUND_TO
