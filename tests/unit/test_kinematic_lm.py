"""The batched Levenberg–Marquardt solver over a kinematic tree: its Jacobians and a known-answer solve."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
roma = pytest.importorskip("roma")

from inference_server.anny_skeleton import Skeleton  # noqa: E402
from inference_server.fit import TorchSkeleton  # noqa: E402
from inference_server.kinematic_lm import KinematicLM, Pose, normal_equations, right_jacobian_inv  # noqa: E402

DT = torch.float64


def _tree() -> Skeleton:
    """root → a → b → c, and root → d → e (a branch): heads 10–30 cm apart, rest axes tilted."""
    parents = np.array([-1, 0, 1, 2, 0, 4])
    rng = np.random.default_rng(3)
    rest = np.zeros((6, 4, 4))
    heads = [(0, 0, 1.0), (0, 0, 1.2), (0.1, 0, 1.5), (0.2, 0.05, 1.7), (0.1, 0, 0.9), (0.15, 0, 0.6)]
    for j in range(6):
        R = roma.rotvec_to_rotmat(torch.tensor(rng.normal(0, 0.5, 3))).numpy()
        rest[j, :3, :3], rest[j, :3, 3], rest[j, 3, 3] = R, heads[j], 1.0
    z = np.zeros(33, dtype=np.int64)
    return Skeleton(names=list("rabcde"), parents=parents, rest=rest, lengths=np.full(6, 0.2),
                    body_marker_bone=z, body_marker_local=np.zeros((33, 3)),
                    hand_marker_bone=np.zeros((2, 21), dtype=np.int64), hand_marker_local=np.zeros((2, 21, 3)))


def _problem(move_root=True, dofs=None):
    skel = _tree()
    points_bone = np.array([1, 2, 3, 3, 5, 5, 4])
    points_local = np.random.default_rng(4).normal(0, 0.1, (7, 3))
    fk = TorchSkeleton(skel, DT)
    lm = KinematicLM(fk, skel.parents, [0, 1, 2, 4, 5], points_bone, points_local, move_root, DT, "cpu", dofs)
    return skel, lm


def _random_pose(n, rng, scale=0.6):
    R = roma.rotvec_to_rotmat(torch.tensor(rng.normal(0, scale, (n, 6, 3))))
    return Pose(R, torch.tensor(rng.normal(0, 0.3, (n, 3))))


@pytest.mark.parametrize("dofs", [None, [(0, 1, 2), (0,), (0, 2), (1,), (0, 1, 2)]])
@pytest.mark.parametrize("move_root", [True, False])
def test_point_jacobian_matches_finite_differences(dofs, move_root):
    _, lm = _problem(move_root, dofs)
    pose = _random_pose(4, np.random.default_rng(5))
    posed = lm.pose_points(pose, jac=True)
    eps = 1e-6
    for p in range(lm.n_params):
        d = torch.zeros(4, lm.n_params, dtype=DT)
        d[:, p] = eps
        plus = lm.pose_points(lm.step(pose, d), jac=False).points
        minus = lm.pose_points(lm.step(pose, -d), jac=False).points
        np.testing.assert_allclose(((plus - minus) / (2 * eps)).numpy(), posed.dpoints[..., p].numpy(), atol=1e-7)


def test_inverse_right_jacobian_is_the_derivative_of_the_log():
    rng = np.random.default_rng(6)
    aa = torch.tensor(rng.normal(0, 0.6, (5, 3)))
    J = right_jacobian_inv(aa)
    R = roma.rotvec_to_rotmat(aa)
    for c in range(3):
        d = torch.zeros(5, 3, dtype=DT)
        d[:, c] = 1e-6
        plus = roma.rotmat_to_rotvec(R @ roma.rotvec_to_rotmat(d))
        minus = roma.rotmat_to_rotvec(R @ roma.rotvec_to_rotmat(-d))
        np.testing.assert_allclose(((plus - minus) / 2e-6).numpy(), J[..., c].numpy(), atol=1e-6)


def test_solver_recovers_a_known_pose_from_its_points():
    # Hinges and ball joints (a two-axis bone's steps compose into a little twist, so its exact answer is not a
    # point of the family the solver walks in).
    dofs = [(0, 1, 2), (0,), (2,), (0, 1, 2), (1,)]
    skel, lm = _problem(True, dofs)
    rng = np.random.default_rng(7)
    n = 16
    # The true pose turns each bone only about its allowed axes.
    truth_R = roma.rotvec_to_rotmat(torch.zeros(n, 6, 3, dtype=DT))
    theta = torch.tensor(rng.uniform(-0.8, 0.8, (n, lm.n_params - 3)))
    rest = Pose(truth_R.clone(), torch.zeros(n, 3, dtype=DT))
    truth = lm.step(rest, torch.cat([torch.tensor(rng.normal(0, 0.2, (n, 3))), theta], 1))
    # Start 0.3 rad (per axis) and 10 cm away: LM converges locally (IK has other minima far away).
    start = lm.step(truth, torch.cat([torch.full((n, 3), 0.1, dtype=DT),
                                      torch.tensor(rng.choice([-0.3, 0.3], (n, lm.n_params - 3)))], 1))
    target = lm.pose_points(truth, jac=False).points

    def block(posed, jac):
        r = (posed.points - target).flatten(1)
        cost = 0.5 * (r ** 2).sum(1)
        if not jac:
            return None, None, cost
        return (*normal_equations(r, posed.dpoints.flatten(1, 2)), cost)

    active = np.ones(n, dtype=bool)
    active[3] = False                      # an inactive frame keeps its start
    solved = lm.solve(start, [block], 25, active)
    got = lm.pose_points(solved, jac=False).points
    err = (got - target).norm(dim=-1)
    assert float(err[torch.tensor(active)].max()) < 1e-6
    assert torch.equal(solved.local_R[3], start.local_R[3])
