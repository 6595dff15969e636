"""The numpy side of the motion network's adapter (inference_server/motion_infer.py) and the camera helpers it
shares with training (motion_data_camera): observation and normalisation, camera angular velocity from timestamps,
the yaw-canonical world, the contact-aware trajectory. No torch, no onnxruntime, no Anny."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from inference_server import motion_data_augment as aug
from inference_server import motion_data_camera as cams
from inference_server import motion_infer as mi
from rigs.rotations import aa_to_matrix

ROOT = Path(__file__).resolve().parents[2]


def test_the_adapter_imports_neither_torch_nor_onnxruntime():
    code = ("import sys; import inference_server.motion_infer; "
            "print(any(m in sys.modules for m in ('torch', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_observe_normalises_as_the_training_windows():
    rng = np.random.default_rng(0)
    T, size = 5, (1280, 720)
    present = np.zeros(33, dtype=bool)
    present[[0, 11, 12, 23, 24, 27, 28]] = True
    pose = np.zeros((T, 33, 3))
    pose[..., 0] = 600 + rng.normal(0, 50, (T, 33))
    pose[..., 1] = 400 + rng.normal(0, 100, (T, 33))
    pose[..., 2] = 0.9
    pose[1, 11] = np.nan                               # unseen (NaN)
    pose[2, 12, 2] = 0.2                               # low visibility
    pose[3, 23, 0] = -5.0                              # outside the picture
    pose[4] = np.nan                                   # no detection at all
    kp2d, box, ok, seen = mi.observe(pose, size, present)
    assert kp2d.shape == (T, 33, 3) and box.shape == (T, 3) and kp2d.dtype == np.float32
    assert not seen[:, ~present].any() and np.all(kp2d[:, ~present] == 0)     # points Anny lacks: zeroed
    assert not seen[1, 11] and not seen[2, 12] and not seen[3, 23] and seen[0, 11]
    assert list(ok) == [True, True, True, True, False]
    # the same numbers as motion_data's windows: boxes from the seen points, then (k − c) / s
    boxes, _ = cams.boxes_from_keypoints(np.nan_to_num(pose[..., :2]), seen)
    k, b = cams.normalize_keypoints(np.nan_to_num(pose[..., :2]), boxes, size)
    np.testing.assert_allclose(kp2d[..., :2], np.where(seen[..., None], k, 0.0), atol=1e-6)
    np.testing.assert_allclose(box, b, atol=1e-6)
    np.testing.assert_allclose(box[4], box[3])                                # an empty frame holds the box
    assert np.all(kp2d[..., 2] == seen)


def test_angular_velocity_from_timestamps():
    rng = np.random.default_rng(1)
    R = aa_to_matrix(np.cumsum(rng.normal(0, 0.02, (20, 3)), axis=0))
    fps = 30.0
    np.testing.assert_allclose(mi.angular_velocity(R, np.arange(20) / fps), cams.angular_velocity(R, fps),
                               atol=1e-9)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 20))                              # variable frame rate
    w = mi.angular_velocity(R, ts)
    from rigs.rotations import matrix_to_aa

    np.testing.assert_allclose(w[5] * (ts[5] - ts[4]), matrix_to_aa(R[5] @ R[4].T), atol=1e-12)


def test_intrinsics_features_and_level_yaw():
    K = cams.intrinsics(60.0, (1080, 1920))
    f = cams.intrinsics_features(K, (1080, 1920))
    np.testing.assert_allclose(f, [0.5 / np.tan(np.radians(30)), 0.0, 0.0], atol=1e-12)
    R = cams.look_at(np.array([3.0, 1.0, 1.5]), np.array([0.0, 0.0, 1.0]), roll=0.05)
    C = cams.level_yaw(R)
    R2 = R @ C.T
    assert abs(R2[2, 0]) < 1e-12 and R2[2, 1] > 0                             # now looks along +Y
    np.testing.assert_allclose(C[2], [0, 0, 1]) and np.testing.assert_allclose(np.linalg.det(C), 1.0)
    down = cams.look_at(np.array([0.0, 0.0, 5.0]), np.array([0.0, 1e-6, 0.0]))  # straight down: its image up
    np.testing.assert_allclose((down @ cams.level_yaw(down).T)[1] @ [0, 1, 0], -1.0, atol=1e-4)


def test_contact_refinement_on_a_hand_made_foot():
    """A foot swinging back under a root that moves forward at 1 m/s: while it is planted, the refined root moves
    exactly as the foot pushes it (the foot's world position stays put) even if the velocity is wrong."""
    T, fps = 31, 30.0
    t = np.arange(T) / fps
    true_root = np.stack([np.zeros(T), -1.0 * t, np.full(T, 0.9)], axis=-1)  # walking toward −Y at 1 m/s
    foot_world = np.array([0.1, -0.2, 0.0])                                  # planted
    soles = np.tile((foot_world - true_root)[:, None, :], (1, 4, 1))         # all four points: the same one
    contact = np.zeros((T, 4))
    contact[:, 1] = 1.0
    v_wrong = np.tile([0.3, -0.5, 0.0], (T, 1))
    path, v = mi.refine_trajectory(v_wrong, soles, contact, t)
    np.testing.assert_allclose(path - path[0] * [1, 1, 0], true_root - true_root[0] * [1, 1, 0], atol=1e-9)
    np.testing.assert_allclose(v[:, :2], np.tile([0.0, -1.0], (T, 1)), atol=1e-9)
    # without contacts the velocity is integrated as given and the lowest point set on the floor
    path, v = mi.refine_trajectory(v_wrong, soles, np.zeros((T, 4)), t)
    np.testing.assert_allclose(path[:, :2], (v_wrong[:, :2] * t[:, None]), atol=1e-9)
    np.testing.assert_allclose(np.percentile(path[:, 2] + soles[..., 2].min(axis=1), 5), 0.0, atol=1e-9)


def test_heading_frame_velocity_turns_back_into_the_world():
    psi = np.array([0.0, 0.5, -2.0])
    G = aug.rot_z(psi) @ aa_to_matrix(np.array([0.1, 0.0, 0.0]))
    np.testing.assert_allclose(aug.heading_angle(G), psi, atol=1e-12)
    v = np.array([[0.2, -1.0, 0.1]] * 3)
    world = np.einsum("tij,tj->ti", aug.rot_z(psi), v)
    np.testing.assert_allclose(np.einsum("tji,tj->ti", aug.rot_z(psi), world), v, atol=1e-12)
