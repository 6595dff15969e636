"""bench/detector_errors.py: the detector's failure figures, on detections made from a known truth."""
from __future__ import annotations

import numpy as np

from bench.detector_errors import scene_errors, summarise


def test_the_figures_are_the_failures_put_in():
    from inference_server.motion_data_camera import BOX_PAD

    rng = np.random.default_rng(0)
    n = 400
    gt = np.zeros((n, 33, 2))
    gt[:] = rng.uniform(100, 300, (33, 2))                      # a still person, 200 px wide
    gt[:, 11:23, 0] = np.array([150, 250, 140, 260, 130, 270, 125, 275, 128, 272, 132, 268])[None]   # arms and
    #                                                          hands: the left on the left, clearly apart
    gt[:, 23:29, 0] = np.array([180, 220, 175, 225, 170, 230])[None]      # legs likewise
    visible = np.ones((n, 33), dtype=bool)
    visible[:, 30] = False                                     # one hidden marker: the detector still "sees" it
    side = BOX_PAD * (gt[0][visible[0]].max(0) - gt[0][visible[0]].min(0)).max()
    det = np.concatenate([gt + rng.normal(0, 0.01 * side, gt.shape), np.ones((n, 33, 1))], axis=-1)
    det[50:53] = np.nan                                        # a 3-frame burst of missed frames ...
    det[200] = np.nan                                          # ... and a single one
    det[100:110, 5, 2] = 0.1                                   # a visible marker marked unseen on 10 frames
    arms = list(range(11, 23))
    det[300:302, arms] = det[300:302, [a + 1 if a % 2 else a - 1 for a in arms]]   # the arms swapped on 2 frames
    part = scene_errors({"body_markers_2d": gt, "body_visible": visible}, det)
    s = summarise([part])
    assert s["frame_dropout"] == 4 / n
    assert s["burst_rate"] == 2 / n and s["burst_mean_frames"] == 2.0 and s["burst_max_frames"] == 3
    assert s["landmark_dropout"] == 10 / part["visible"]
    assert s["phantom"] == 1.0                                  # the hidden marker was reported seen
    assert abs(s["noise_sigma"] - 0.01) < 0.001
    assert s["swap_rate"] == 2 / part["detected"] and s["swap_mean_frames"] == 2.0
