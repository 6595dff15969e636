"""Rotation conversions and forward kinematics (numpy only), checked against Anny's own kinematics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rigs import fk, rotations as rot

SAMPLE_TRUTH = Path(__file__).resolve().parents[2] / "samples" / "sample_wave_truth.npz"


def test_axis_angle_matrix_quaternion_round_trips():
    rng = np.random.default_rng(1)
    aa = rng.normal(size=(500, 3))
    aa *= (rng.uniform(0, np.pi - 1e-3, size=(500, 1)) / np.linalg.norm(aa, axis=1, keepdims=True))
    R = rot.aa_to_matrix(aa)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_aa(R), aa, atol=1e-9)
    q = rot.aa_to_quat(aa)
    np.testing.assert_allclose(rot.quat_to_aa(q), aa, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(rot.matrix_to_quat(R) * q, axis=1)), 1.0, atol=1e-9)
    assert np.allclose(rot.aa_to_matrix(np.zeros(3)), np.eye(3))


def test_make_continuous_removes_sign_flips_only():
    q = rot.aa_to_quat(np.linspace([0, 0, 0], [0, 0, 6.0], 50))  # crosses angle π: components change sign
    q[::3] *= -1
    c = rot.make_continuous(q)
    assert np.all(np.sum(c[1:] * c[:-1], axis=1) > 0)
    np.testing.assert_allclose(np.abs(np.sum(c * q, axis=1)), 1.0)


def test_rotation_about_z_moves_a_child_as_expected():
    rest = np.tile(np.eye(4), (2, 1, 1))
    rest[1, :3, 3] = [0.0, 1.0, 0.0]  # child 1 m along +Y
    local = np.zeros((1, 2, 3))
    local[0, 0] = [0, 0, np.pi / 2]  # root turns 90° about Z: +Y goes to −X
    heads = fk.bone_heads(rest, np.array([-1, 0]), local, np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(heads[0], [[1.0, 2.0, 3.0], [0.0, 2.0, 3.0]], atol=1e-12)


def test_fk_reproduces_anny_on_the_sample_ground_truth():
    """The Take's kinematics equal Anny's own ('local-bone') on the sample's known motion."""
    if not SAMPLE_TRUTH.exists():
        pytest.skip("samples/sample_wave_truth.npz is missing")
    g = np.load(SAMPLE_TRUTH)
    heads = fk.bone_heads(g["rest_matrices"], g["bone_parents"], g["local_rotations_aa"], g["root_position_world"])
    np.testing.assert_allclose(heads, g["joints_world"], atol=1e-6)


def test_local_rotations_from_world_inverts_fk():
    rng = np.random.default_rng(3)
    n_bones = 6
    parents = np.array([-1, 0, 1, 1, 3, 0])
    rest = np.tile(np.eye(4), (n_bones, 1, 1))
    for j in range(n_bones):
        rest[j, :3, :3] = rot.aa_to_matrix(rng.normal(size=3))
        rest[j, :3, 3] = rng.normal(size=3)
    local = rng.normal(scale=0.8, size=(4, n_bones, 3))
    W = fk.forward_kinematics(rest, parents, local, rng.normal(size=(4, 3)))
    back = fk.local_rotations_from_world(rest, parents, W)
    np.testing.assert_allclose(rot.aa_to_matrix(back), rot.aa_to_matrix(local), atol=1e-9)
    assert not np.allclose(back[:, 1:], 0)  # the pose is non-trivial
