"""Forward kinematics in the Take's convention (numpy only).

For bone j with parent p, rest matrices ``Rest`` (armature space, 4x4) and a local rotation ``L_j`` (3x3, in the
bone's rest axes — Blender's ``matrix_basis``):

    W_root = [Rest_root[:3,:3] @ L_root | root_position]
    W_j    = W_p @ (Rest_p^-1 @ Rest_j) @ [L_j | 0]

which is Blender's pose-bone formula ``pose = parent_pose @ parent_rest^-1 @ rest @ basis`` with the root's
basis translation chosen so that its head lands on ``root_position``.
"""
from __future__ import annotations

import numpy as np

from .rotations import aa_to_matrix


def rigid_inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 matrices (..., 4, 4): [Rᵀ | −Rᵀ t]."""
    out = np.zeros_like(M)
    Rt = np.swapaxes(M[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, M[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def rest_offsets(rest_matrices: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Rest_p^-1 @ Rest_j per bone (J, 4, 4); the root's entry is its own rest matrix."""
    rest = np.asarray(rest_matrices, dtype=np.float64)
    offsets = rest.copy()
    for j, p in enumerate(parents):
        if p >= 0:
            offsets[j] = rigid_inverse(rest[p]) @ rest[j]
    return offsets


def forward_kinematics(rest_matrices: np.ndarray, parents: np.ndarray, local_rotations_aa: np.ndarray,
                       root_position: np.ndarray) -> np.ndarray:
    """Posed armature-space bone matrices.

    rest_matrices (J,4,4), parents (J,), local_rotations_aa (T,J,3), root_position (T,3) → (T,J,4,4).
    """
    parents = np.asarray(parents)
    local_aa = np.asarray(local_rotations_aa, dtype=np.float64)
    n_frames, n_bones = local_aa.shape[:2]
    offsets = rest_offsets(rest_matrices, parents)
    L = aa_to_matrix(local_aa)  # (T, J, 3, 3)
    W = np.zeros((n_frames, n_bones, 4, 4))
    for j in range(n_bones):
        p = int(parents[j])
        local = np.zeros((n_frames, 4, 4))
        local[:, :3, :3] = L[:, j]
        local[:, 3, 3] = 1.0
        if p < 0:
            W[:, j, :3, :3] = offsets[j, :3, :3] @ L[:, j]
            W[:, j, :3, 3] = root_position
            W[:, j, 3, 3] = 1.0
        else:
            if p >= j:
                raise ValueError(f"bone {j}'s parent {p} does not come before it")
            W[:, j] = W[:, p] @ offsets[j] @ local
    return W


#: Frames posed at once by :func:`bone_heads`: the (T,J,4,4) float64 matrices of a long clip would otherwise be
#: held whole (13 KB a frame for Anny's 104 bones; 1.4 GB for an hour at 30 fps).
HEADS_CHUNK = 1000


def bone_heads(rest_matrices, parents, local_rotations_aa, root_position, dtype=np.float64,
               out: np.ndarray | None = None, after_chunk=None) -> np.ndarray:
    """(T, J, 3) bone head positions, posed :data:`HEADS_CHUNK` frames at a time (memory bounded in T). ``dtype``:
    the result's (float32: what a Take stores; each chunk is posed in float64 and rounded once). ``out``: a (T, J, 3)
    array to fill instead (its dtype wins; an array on disk for a long clip); ``after_chunk()`` runs after each
    chunk (the engine drops the pages of its arrays on disk there)."""
    local = np.asarray(local_rotations_aa)
    root = np.asarray(root_position)
    heads = np.empty(local.shape[:2] + (3,), dtype) if out is None else out
    for a in range(0, local.shape[0], HEADS_CHUNK):
        b = a + HEADS_CHUNK
        heads[a:b] = forward_kinematics(rest_matrices, parents, local[a:b], root[a:b])[..., :3, 3]
        if after_chunk is not None:
            after_chunk()
    return heads


def local_rotations_from_world(rest_matrices: np.ndarray, parents: np.ndarray, world: np.ndarray) -> np.ndarray:
    """The inverse of :func:`forward_kinematics` for rotations: posed bone matrices (T,J,4,4) → local (T,J,3) aa.

    With O_j = Rest_p^-1 Rest_j the chain is W_j = W_p O_j [L_j | 0], hence L_j = O_jᵀ W_pᵀ W_j (rotation parts),
    and L_root = Rest_rootᵀ W_root. Translations are ignored (the Take's bones only rotate; the root's position is
    ``world[:, 0, :3, 3]``).
    """
    from .rotations import matrix_to_aa

    W = np.asarray(world, dtype=np.float64)[..., :3, :3]  # (T, J, 3, 3)
    offsets = rest_offsets(rest_matrices, parents)[:, :3, :3]  # (J, 3, 3)
    L = np.empty_like(W)
    for j, p in enumerate(np.asarray(parents)):
        if p < 0:
            L[:, j] = offsets[j].T @ W[:, j]
        else:
            L[:, j] = offsets[j].T @ np.swapaxes(W[:, p], -1, -2) @ W[:, j]
    return matrix_to_aa(L)
