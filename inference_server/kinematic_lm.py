"""Batched Levenberg–Marquardt over a kinematic tree, in torch (CPU or CUDA). No bpy.

Every frame is its own small least-squares problem (a few dozen unknowns), so all frames are solved at once: one
batched Jacobian, one batched normal-equation solve per iteration. Frames are coupled only through a temporal term
whose target (the neighbours' current positions) is held fixed within an iteration (a Jacobi sweep), which keeps
the problems separable and the step a per-frame decision.

Unknowns per frame: the local rotations of the ``free`` bones and, optionally, the root's position.
A rotation is updated on the right, ``R_local ← R_local · exp([δ]×)`` (δ in the bone's own axes), so the bone's
posed world rotation ``A_j`` becomes ``A_j · exp([δ]×)`` and a point ``p`` carried by bone j or one of its
descendants moves by

    dp/dδ_j = −[p − h_j]× · A_j          (h_j: bone j's posed head)

and by the identity for the root's position. The rotations' own residuals (prior, limits) use the axis-angle
``a = log(R_local)``, whose derivative is the inverse right Jacobian of SO(3): ``da/dδ = J_r⁻¹(a)``.

A problem supplies *residual blocks*: functions of the posed points (and the rotations) that return residuals
``r`` (B, M) and their Jacobians (B, M, P) by the chain rule through ``dp/dparams``. The solver minimises
``½ Σ r²`` per frame with a per-frame damping that grows on rejected steps and shrinks on accepted ones.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np


import os
_DEBUG = bool(os.environ.get("REEL2RIG_DEBUG_LM"))
MAX_TURN = 0.5  # radians: the largest turn of one bone in one step


def skew(v):
    """(…,3) → (…,3,3) cross-product matrices."""
    import torch

    z = torch.zeros_like(v[..., 0])
    return torch.stack([torch.stack([z, -v[..., 2], v[..., 1]], -1),
                        torch.stack([v[..., 2], z, -v[..., 0]], -1),
                        torch.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def right_jacobian_inv(aa):
    """(…,3) axis-angle → (…,3,3) J_r⁻¹: d log(R exp(δ)) / dδ at δ = 0."""
    import torch

    theta = aa.norm(dim=-1, keepdim=True)[..., None]            # (…,1,1)
    K = skew(aa)
    small = theta < 1e-4
    t = torch.where(small, torch.ones_like(theta), theta)
    coef = 1.0 / t ** 2 - (1.0 + torch.cos(t)) / (2.0 * t * torch.sin(t).clamp(min=1e-9))
    coef = torch.where(small, torch.full_like(theta, 1.0 / 12.0), coef)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + 0.5 * K + coef * (K @ K)


@dataclasses.dataclass
class Pose:
    """The current estimate: local rotation matrices of every bone and the root's position."""
    local_R: "object"   # (B,J,3,3) torch
    root_pos: "object"  # (B,3) torch


@dataclasses.dataclass
class Posed:
    """What the residual blocks see: world points, their Jacobians, and the free bones' axis-angles."""
    points: "object"     # (B,N,3)
    dpoints: "object"    # (B,N,3,P)
    aa: "object"         # (B,F,3) log of the free bones' local rotations
    daa: "object"        # (B,F,3,3) J_r⁻¹ (d aa / d δ for each free bone's own δ)
    n_params: int
    rot_offset: int      # index of the first rotation parameter (3 when the root moves, else 0)
    param_index: "object" = None  # (F,3) parameter turning free bone k about axis c (n_params where none)


# A residual block: (posed, jac) → (H (B,P,P), g (B,P), cost (B,)) — its share of the Gauss–Newton system JᵀJ and
# Jᵀr, or (None, None, cost) when jac is False. For a robust term J and r are the iteratively reweighted ones
# (weights from the current residuals) and cost is the true robust cost.
Block = Callable[[Posed, bool], "tuple[object | None, object | None, object]"]


def normal_equations(r, J):
    """r (B,M), J (B,M,P) → JᵀJ (B,P,P), Jᵀr (B,P)."""
    Jt = J.transpose(1, 2)
    return Jt @ J, (Jt @ r[..., None])[..., 0]


class KinematicLM:
    """Levenberg–Marquardt on the free bones of a skeleton for a set of attached points.

    fk: an object with ``forward(local_R (B,J,3,3), root_pos (B,3)) → (A (B,J,3,3), heads (B,J,3))``;
    parents: (J,) parent indices; free: bone indices to solve for; point_bones (N,), point_local (N,3): points
    rigidly attached to bones (offsets in the bone's rest frame); move_root: solve for the root's position too.
    """

    def __init__(self, fk, parents: np.ndarray, free: Sequence[int], point_bones: np.ndarray,
                 point_local: np.ndarray, move_root: bool, dtype, device,
                 dofs: Sequence[Sequence[int]] | None = None):
        import torch

        self.dtype, self.device = dtype, device
        self.free = torch.tensor(list(free), device=device, dtype=torch.long)
        self.move_root = move_root
        self.rot_offset = 3 if move_root else 0
        # Degrees of freedom: the bone-local axes each free bone may turn about (all three by default; a hinge
        # such as a finger's middle joint has one). Parameter p turns bone param_bone[p] about its axis param_axis[p].
        dofs = [tuple(d) for d in dofs] if dofs is not None else [(0, 1, 2)] * len(free)
        param_bone = [k for k, d in enumerate(dofs) for _ in d]
        param_axis = [a for d in dofs for a in d]
        self.n_params = self.rot_offset + len(param_axis)
        self.param_bone = torch.tensor(param_bone, device=device, dtype=torch.long)
        basis = np.zeros((len(param_axis), 3))
        basis[np.arange(len(param_axis)), param_axis] = 1.0
        self.param_basis = torch.tensor(basis, dtype=dtype, device=device)     # (R,3) bone-local axis per param
        # param_index[k, c]: the parameter turning free bone k about axis c, or n_params (a dropped column)
        index = np.full((len(free), 3), self.n_params)
        for p, (k, a) in enumerate(zip(param_bone, param_axis)):
            index[k, a] = self.rot_offset + p
        self.param_index = torch.tensor(index, device=device, dtype=torch.long)
        point_bones = np.asarray(point_bones)
        parents = np.asarray(parents)
        # Only the bones that carry a point or lead to one are posed; of those, the ones with no free bone above
        # them do not move during a solve and are posed once ("fixed").
        needed: set[int] = set()
        for b in list(point_bones) + list(free):
            j = int(b)
            while j >= 0 and j not in needed:
                needed.add(j)
                j = int(parents[j])
        order = sorted(needed)                      # parents come before children
        slot = {j: k for k, j in enumerate(order)}
        free_set = set(int(f) for f in free)
        moving = {}
        for j in order:
            moving[j] = j in free_set or (parents[j] >= 0 and moving[int(parents[j])])
        depth = {}
        for j in order:
            depth[j] = 0 if parents[j] < 0 else depth[int(parents[j])] + 1
        self.order = torch.tensor(order, device=device)
        self.n_slots = len(order)
        self.fixed_slots = torch.tensor([slot[j] for j in order if not moving[j]], device=device, dtype=torch.long)
        self.fixed_bones = torch.tensor([j for j in order if not moving[j]], device=device, dtype=torch.long)
        self.levels = []
        for d in sorted({depth[j] for j in order if moving[j]}):
            bones = [j for j in order if moving[j] and depth[j] == d]
            self.levels.append((torch.tensor(bones, device=device), torch.tensor([slot[j] for j in bones], device=device),
                                torch.tensor([slot.get(int(parents[j]), -1) for j in bones], device=device),
                                parents[bones[0]] < 0))
        self.off_R, self.off_t = fk.off_R, fk.off_t
        self.fk = fk
        self.point_slots = torch.tensor([slot[int(b)] for b in point_bones], device=device)
        self.free_slots = torch.tensor([slot[int(f)] for f in free], device=device)
        self._fixed = None                          # (A, heads) of the fixed bones for the pose being solved
        self.point_local = torch.tensor(np.asarray(point_local, dtype=np.float64), dtype=dtype, device=device)
        # ancestor[n, p]: rotation parameter p moves point n (its bone is the point's bone or one of its ancestors)
        anc = np.zeros((len(point_bones), len(free)), dtype=bool)
        for n, b in enumerate(point_bones):
            chain = set()
            j = int(b)
            while j >= 0:
                chain.add(j)
                j = int(parents[j])
            anc[n] = [f in chain for f in free]
        self.ancestor = torch.tensor(anc[:, param_bone], dtype=dtype, device=device)   # (N,R)

    def forward(self, pose: Pose):
        """World rotations (B,S,3,3) and heads (B,S,3) of the posed bones (slots in skeleton order)."""
        import torch

        B = pose.root_pos.shape[0]
        if self._fixed is None or self._fixed[0].shape[0] != B:
            A_all, h_all = self.fk.forward(pose.local_R, pose.root_pos)
            self._fixed = (A_all[:, self.fixed_bones], h_all[:, self.fixed_bones])
        A = torch.empty(B, self.n_slots, 3, 3, dtype=self.dtype, device=self.device)
        h = torch.empty(B, self.n_slots, 3, dtype=self.dtype, device=self.device)
        A[:, self.fixed_slots], h[:, self.fixed_slots] = self._fixed
        for bones, slots, pslots, is_root in self.levels:
            if is_root:
                A[:, slots] = self.off_R[bones] @ pose.local_R[:, bones]
                h[:, slots] = pose.root_pos[:, None, :]
            else:
                Ap = A[:, pslots]
                A[:, slots] = Ap @ self.off_R[bones] @ pose.local_R[:, bones]
                h[:, slots] = h[:, pslots] + (Ap @ self.off_t[bones][..., None])[..., 0]
        return A, h

    def pose_points(self, pose: Pose, jac: bool) -> Posed:
        import roma
        import torch

        A, heads = self.forward(pose)
        Ab = A[:, self.point_slots]                                          # (B,N,3,3)
        pts = heads[:, self.point_slots] + (Ab @ self.point_local[..., None])[..., 0]   # (B,N,3)
        aa = roma.rotmat_to_rotvec(pose.local_R[:, self.free])                # (B,F,3)
        if not jac:
            return Posed(pts, None, aa, None, self.n_params, self.rot_offset)
        B, N = pts.shape[0], pts.shape[1]
        # dp/dθ_p = (A_j e_p) × (p − h_j): the world axis of parameter p crossed with the lever arm.
        slots = self.free_slots[self.param_bone]                             # (R,)
        axis = (A[:, slots] @ self.param_basis[..., None])[..., 0]          # (B,R,3)
        rel = pts[:, :, None, :] - heads[:, None, slots, :]                  # (B,N,R,3)
        J = torch.linalg.cross(axis[:, None].expand_as(rel), rel) * self.ancestor[None, :, :, None]
        J = J.transpose(2, 3)                                                # (B,N,3,R)
        if self.move_root:
            eye = torch.eye(3, dtype=self.dtype, device=self.device).expand(B, N, 3, 3)
            J = torch.cat([eye, J], dim=-1)
        return Posed(pts, J, aa, right_jacobian_inv(aa), self.n_params, self.rot_offset, self.param_index)

    def step(self, pose: Pose, delta) -> Pose:
        import roma
        import torch

        R = pose.local_R.clone()
        theta = delta[:, self.rot_offset:]                                   # (B,R)
        d = torch.zeros(delta.shape[0], len(self.free), 3, dtype=delta.dtype, device=delta.device)
        d.index_add_(1, self.param_bone, theta[..., None] * self.param_basis)
        R[:, self.free] = R[:, self.free] @ roma.rotvec_to_rotmat(d)
        root = pose.root_pos + delta[:, :3] if self.move_root else pose.root_pos
        return Pose(R, root)

    def solve(self, pose: Pose, blocks: Sequence[Block], iterations: int, active,
              before_iteration: Callable[[Pose, int], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> Pose:
        """Run LM; ``active`` (B,) bool: frames to solve (others stay as given). ``before_iteration(pose, it)``
        may update the blocks' targets (e.g. the temporal neighbours) from the current estimate."""
        import torch

        B = pose.root_pos.shape[0]
        self._fixed = None
        mu = torch.full((B,), 1e-2, dtype=self.dtype, device=self.device)
        nu = torch.full((B,), 2.0, dtype=self.dtype, device=self.device)
        act = torch.as_tensor(active, device=self.device)
        for it in range(iterations):
            if cancelled is not None and cancelled():
                from .pipeline import Cancelled

                raise Cancelled("cancelled during fit")
            if before_iteration is not None:
                before_iteration(pose, it)
            posed = self.pose_points(pose, jac=True)
            Hs, gs, costs = zip(*(block(posed, True) for block in blocks))
            H, g, cost = sum(Hs), sum(gs), sum(costs)
            diag = torch.diagonal(H, dim1=1, dim2=2)
            self.information = diag.clone()   # (B,P) curvature of the cost per parameter (for the smoother)
            damp = mu[:, None] * (diag + 1e-6) + 1e-9
            delta = -torch.linalg.solve(H + torch.diag_embed(damp), g)
            # A step turns no bone by more than MAX_TURN (the linearisation holds over small turns only).
            turn = delta[:, self.rot_offset:].abs().amax(dim=1) if self.n_params > self.rot_offset else mu * 0
            delta = delta * (MAX_TURN / turn.clamp(min=MAX_TURN))[:, None]
            delta = torch.where(act[:, None], delta, torch.zeros_like(delta))
            predicted = -(delta * g).sum(1) - 0.5 * (delta * (H @ delta[..., None])[..., 0]).sum(1)
            trial = self.step(pose, delta)
            posed_t = self.pose_points(trial, jac=False)
            cost_t = sum(block(posed_t, False)[2] for block in blocks)
            gain = (cost - cost_t) / predicted.clamp(min=1e-30)
            better = (cost_t < cost) & act
            if _DEBUG:
                import sys
                print(f"it {it}: cost {float(cost[act].mean()):.6f} -> {float(torch.where(better, cost_t, cost)[act].mean()):.6f}  accepted {float(better[act].float().mean()):.2f} mu {float(mu[act].median()):.2g}", file=sys.stderr)
            pose = Pose(torch.where(better[:, None, None, None], trial.local_R, pose.local_R),
                        torch.where(better[:, None], trial.root_pos, pose.root_pos))
            # Nielsen's update: shrink the damping by how well the model predicted the decrease, grow it
            # geometrically on failures.
            shrink = torch.clamp(1 - (2 * gain - 1) ** 3, min=1.0 / 3.0)
            mu = torch.where(better, mu * shrink, mu * nu).clamp(1e-7, 1e7)
            nu = torch.where(better, torch.full_like(nu, 2.0), nu * 2)
        return pose
