"""Hands alone (hands mode with a hand model): each hand fitted where it is in the picture. Synthetic hands with a
known pose and place, projected through a known camera, come back in place (fit.fit_hands_in_camera)."""
from __future__ import annotations

import numpy as np
import pytest

from inference_server.anny_skeleton import attached_points, load_skeleton
from inference_server.fit import (R_WORLD2CAM_LEVEL, FitSettings, _translation_onto_image,
                                  fit_hands_in_camera)
from rigs.fk import forward_kinematics

K = np.array([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]])


def test_translation_onto_image_is_exact_for_noiseless_points():
    rng = np.random.default_rng(1)
    pts = rng.normal(scale=0.05, size=(4, 21, 3))                 # a hand-sized cloud, camera axes, any origin
    t_true = np.array([[0.1, -0.05, 0.6], [-0.2, 0.1, 0.9], [0.0, 0.0, 0.4], [0.3, 0.2, 1.5]])
    cam = pts + t_true[:, None]
    uv = cam @ K.T
    uv = uv[..., :2] / uv[..., 2:3]
    assert np.allclose(_translation_onto_image(pts, uv, K), t_true, atol=1e-9)


def _synthetic_hands(skel, n=6):
    """Landmarks of both hands of a known pose: the left hand curled and turned, the right one open, each body
    placed so its hands are 0.5-0.7 m in front of the camera."""
    local = np.zeros((n, len(skel.names), 3))
    for name in skel.names:
        if name.startswith("finger") and not name.startswith("finger1"):
            j = skel.index(name)
            local[:, j, 0] = np.where(name.endswith(".L"), 0.5, 0.1) + np.linspace(0.0, 0.15, n)   # a slow curl
    local[:, skel.index("wrist.L")] = [0.3, -0.4, 0.2]
    root = np.stack([np.linspace(-0.1, 0.1, n), np.full(n, 0.9), np.full(n, -1.0)], axis=1)  # world, camera at 0
    W = forward_kinematics(skel.rest, skel.parents, local, root)
    hands_2d = np.zeros((n, 2, 21, 3))
    hands_world = np.zeros((n, 2, 21, 3))
    truth = np.zeros((n, 2, 21, 3))
    for side in (0, 1):
        cam = attached_points(W, skel.hand_marker_bone[side], skel.hand_marker_local[side]) @ R_WORLD2CAM_LEVEL.T
        uv = cam @ K.T
        hands_2d[:, side, :, :2] = uv[..., :2] / uv[..., 2:3]
        hands_2d[:, side, :, 2] = (cam[..., 2] - cam[:, :1, 2]) * K[0, 0] / cam[:, :1, 2]   # relative depth, px
        hands_world[:, side] = cam - cam.mean(axis=1, keepdims=True)
        truth[:, side] = cam
    return hands_2d, hands_world, truth


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_each_hand_comes_back_where_it_was(smoothing):
    skel = load_skeleton()
    hands_2d, hands_world, truth = _synthetic_hands(skel)
    assert truth[..., 2].min() > 0.4                               # both hands in front of the camera
    fits = fit_hands_in_camera(skel, hands_2d, hands_world, K, FitSettings(smoothing=smoothing))
    for side in (0, 1):
        f = fits[side]
        assert f is not None and f.side == side and f.seen.all()
        W = forward_kinematics(skel.rest, skel.parents, f.local_rotations_aa, f.root_position_world)
        cam = attached_points(W, skel.hand_marker_bone[side], skel.hand_marker_local[side]) @ R_WORLD2CAM_LEVEL.T
        err_mm = 1000 * np.linalg.norm(cam - truth[:, side], axis=-1)
        assert err_mm.max() < 2.0, (side, err_mm.max())            # place, turn and fingers, in the camera
        assert np.nanmax(f.residual_px) < 0.5


def test_an_unseen_hand_is_none_and_gaps_are_bridged():
    skel = load_skeleton()
    hands_2d, hands_world, truth = _synthetic_hands(skel)
    hands_2d[:, 0] = np.nan                                        # the left hand never seen
    hands_2d[2, 1] = np.nan                                        # the right one missing on frame 2
    fits = fit_hands_in_camera(skel, hands_2d, hands_world, K, FitSettings(smoothing=0.5))
    assert fits[0] is None
    right = fits[1]
    assert right.seen.tolist() == [True, True, False, True, True, True]
    assert np.isnan(right.residual_px[2]) and np.nanmax(right.residual_px) < 1.0
    W = forward_kinematics(skel.rest, skel.parents, right.local_rotations_aa, right.root_position_world)
    wrist = W[:, skel.index("wrist.R"), :3, 3] @ R_WORLD2CAM_LEVEL.T
    # the missing frame's wrist lies between its neighbours (bridged, not left at the start pose)
    assert np.linalg.norm(wrist[2] - 0.5 * (wrist[1] + wrist[3])) < 0.01
