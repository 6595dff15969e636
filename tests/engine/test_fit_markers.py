"""The body markers sit where Anny's keypoint regressor puts the landmarks, the hand network's wrists pull the body's
arms, and a shaking camera's residual goes to the camera, not the body. Synthetic detections with known answers,
made from the sample clip's true motion (real Anny skeleton, real fit)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.metrics import project, to_camera

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "samples" / "sample_wave_truth.npz"


@pytest.fixture(scope="module")
def skel():
    from inference_server.anny_skeleton import anny_available, load_skeleton

    if not anny_available():
        pytest.skip("Anny is not set up here")
    return load_skeleton()


def test_body_markers_at_rest_are_the_regressed_keypoints(skel):
    """At rest the markers are exactly Anny's COCO keypoints of the rest mesh (cache v3 and earlier had them 5 cm
    off: regressed from the posed output, whose root sits at the origin)."""
    import anny
    import torch

    from inference_server.anny_skeleton import BODY_MARKER_COCO, attached_points, load_anny_model
    from rigs.fk import forward_kinematics

    model = load_anny_model()
    with torch.no_grad():
        out = model.forward()
        coco = anny.KeypointsRegressor.coco(model)({"vertices": out["rest_vertices"]})[0].double().numpy()
    W = forward_kinematics(skel.rest, skel.parents, np.zeros((1, len(skel.names), 3)), skel.rest[None, 0, :3, 3])
    for mp, c in BODY_MARKER_COCO.items():
        got = attached_points(W, skel.body_marker_bone[[mp]], skel.body_marker_local[[mp]])[0, 0]
        np.testing.assert_allclose(got, coco[c], atol=1e-5, err_msg=f"MediaPipe landmark {mp}")


def _detections(skel):
    """Perfect detections of the sample's true motion: pose 2D + hip-centred world, hand 2D with relative depth."""
    from bench.methods import _markers
    from rigs.fk import forward_kinematics

    if not TRUTH.exists():
        pytest.skip("the sample clip's ground truth is missing")
    t = np.load(TRUTH)
    W = forward_kinematics(skel.rest, skel.parents, t["local_rotations_aa"], t["root_position_world"])
    body_w, hands_w = _markers(skel, W)
    n = len(body_w)
    body_c = to_camera(body_w, t["R_world2cam"], t["t_world2cam"])
    hands_c = to_camera(hands_w.reshape(n, 42, 3), t["R_world2cam"], t["t_world2cam"]).reshape(n, 2, 21, 3)
    pose_2d = np.concatenate([project(body_c, t["K"]), np.ones((n, 33, 1))], -1)
    pose_2d[:, skel.body_marker_bone < 0] = np.nan
    pose_world = body_c - body_c[:, [23, 24]].mean(1, keepdims=True)
    depth = (hands_c[..., 2:] - hands_c[..., :1, 2:]) * t["K"][0, 0] / hands_c[..., :1, 2:]
    hands_2d = np.concatenate([project(hands_c, t["K"]), depth], -1)
    return t, pose_2d, pose_world, hands_2d


def _fit(skel, t, pose_2d, pose_world, hands_2d, **changes):
    import dataclasses

    from inference_server.fit import FitSettings, fit_sequence

    settings = dataclasses.replace(FitSettings(), **changes)
    return fit_sequence(skel, pose_2d, pose_world, hands_2d, t["K"], settings)


def _wrists_2d(skel, fit, K):
    from bench.methods import _markers
    from inference_server.fit import R_WORLD2CAM_LEVEL
    from rigs.fk import forward_kinematics

    W = forward_kinematics(skel.rest, skel.parents, fit.local_rotations_aa, fit.root_position_world)
    _, hands = _markers(skel, W)
    n = len(hands)
    cam = to_camera(hands[:, :, 0], np.broadcast_to(R_WORLD2CAM_LEVEL, (n, 3, 3)), fit.camera_shift)
    return project(cam, K)   # (T, 2, 2)


def test_the_hand_networks_wrists_pull_the_arms(skel):
    """The pose network's wrists one hand length off (inside the 1.5 lengths within which a hand is still taken to
    be that wrist's), the hands right: with the hands pulling, the fitted wrists land near the hands; without, near
    the wrong pose wrists."""
    t, pose_2d, pose_world, hands_2d = _detections(skel)
    hand_length = np.linalg.norm(hands_2d[:, :, 9, :2] - hands_2d[:, :, 0, :2], axis=-1)   # (T, 2) px
    pose_2d[:, [15, 16], 0] += hand_length
    true = hands_2d[:, :, 0, :2]
    pulled = np.linalg.norm(_wrists_2d(skel, _fit(skel, t, pose_2d, pose_world, hands_2d), t["K"]) - true, axis=-1)
    alone = np.linalg.norm(_wrists_2d(skel, _fit(skel, t, pose_2d, pose_world, hands_2d, w_hand_on_body=0.0),
                                      t["K"]) - true, axis=-1)
    assert alone.mean() > 0.5 * hand_length.mean()   # the body follows its own wrists (measured 17.6 px of 28)
    assert pulled.mean() < 0.6 * alone.mean()         # measured 8.1 px


def test_camera_shake_goes_to_the_camera_not_the_body(skel):
    """Every frame's detections shifted together (a handheld camera's shake): the fit's smooth body stays smooth
    in the world and the per-frame camera shift takes the shake, so the overlay still lines up."""
    t, pose_2d, pose_world, hands_2d = _detections(skel)
    rng = np.random.default_rng(3)
    shake = rng.normal(0.0, 6.0, (len(pose_2d), 2))
    pose_2d[..., :2] += shake[:, None]
    hands_2d[..., :2] += shake[:, None, None]
    fit = _fit(skel, t, pose_2d, pose_world, hands_2d)
    assert np.abs(fit.camera_shift).max() > 1e-3
    true = hands_2d[:, :, 0, :2]
    lined_up = np.linalg.norm(_wrists_2d(skel, fit, t["K"]) - true, axis=-1).mean()
    import dataclasses

    unshifted = dataclasses.replace(fit, camera_shift=np.zeros_like(fit.camera_shift))
    without = np.linalg.norm(_wrists_2d(skel, unshifted, t["K"]) - true, axis=-1).mean()
    assert lined_up < 0.7 * without                   # the shift follows the shake
    from inference_server.fit import R_WORLD2CAM_LEVEL

    root = fit.root_position_world
    moved = root - fit.camera_shift @ R_WORLD2CAM_LEVEL   # the same shake given to the body instead
    accel = lambda p: np.linalg.norm(np.diff(p, 2, axis=0), axis=-1).mean()  # noqa: E731
    assert accel(root) < 0.5 * accel(moved)
