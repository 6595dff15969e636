"""The Anny body model's mesh (the default phenotype, or a given one) with its skinning, and linear blend skinning in numpy. No bpy.

Built once from the real Anny model and cached next to the skeleton (``anny_skeleton``) as a small compressed
``.npz`` in the stage cache: rest vertices in the same armature space as ``Skeleton.rest``, triangle faces, and
Anny's own sparse skinning (``vertex_bone_indices`` / ``vertex_bone_weights``, all K = 9 influences kept; they sum to
1 per vertex). torch and anny are imported only when the cache is (re)built; :func:`skin` is numpy only.

Skinning (what Anny itself does with its default "warp_lbs" / "lbs" methods): for posed bone matrices ``W`` and rest
matrices ``Rest`` (both armature space, 4x4),

    v' = Σ_k w_k · W_{b_k} · Rest_{b_k}^-1 · v

so with ``W`` from ``rigs.fk.forward_kinematics`` of a Take's rotations (whose rest is ``Skeleton.rest``) the mesh
follows the Take. All 9 influences are kept: with them the numpy skinning reproduces Anny's own vertices to ~1e-4 mm;
keeping only the 4 largest (renormalised) was measured at 0.25 mm mean, 5.5 mm at the 99th percentile and 24 mm
worst vertex on random ~20°-per-axis poses. The compressed cache is ~390 kB.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .config import prepare_environment, stage_cache_dir

MESH_CACHE_VERSION = 1
_FRAME_CHUNK = 32  # frames skinned at once: bounds the (chunk, V, 12) blend buffer to ~40 MB for Anny's mesh


@dataclasses.dataclass(frozen=True, eq=False)
class AnnyMesh:
    rest_vertices: np.ndarray  # (V, 3) float32, armature space (the space of Skeleton.rest)
    faces: np.ndarray          # (F, 3) int32 triangles, counter-clockwise seen from outside
    bone_indices: np.ndarray   # (V, K) int64 bone per influence (padding influences have weight 0)
    bone_weights: np.ndarray   # (V, K) float32, each row sums to 1

    @property
    def n_vertices(self) -> int:
        return int(self.rest_vertices.shape[0])


def _cache_path(key: tuple[float, ...] | None = None) -> Path:
    from .anny_skeleton import phenotype_tag
    from .npz_cache import versioned_path

    return versioned_path(stage_cache_dir(), "anny_mesh" + phenotype_tag(key), MESH_CACHE_VERSION)


def _build(key: tuple[float, ...] | None = None) -> dict[str, np.ndarray]:
    from .anny_skeleton import anny_forward, load_anny_model

    model = load_anny_model()
    out = anny_forward(model, key)
    verts = out["rest_vertices"][0].double().numpy().astype(np.float32)  # (V, 3)
    faces = model.get_triangular_faces().cpu().numpy().astype(np.int32)   # (F, 3)
    indices = model.vertex_bone_indices.long().cpu().numpy()              # (V, K)
    weights = model.vertex_bone_weights.double().cpu().numpy()            # (V, K)
    n_bones = len(model.bone_labels)
    if n_bones > 255 or indices.min() < 0 or indices.max() >= n_bones:
        raise ValueError(f"Anny's skinning indices do not fit the {n_bones}-bone rig")
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return dict(rest_vertices=verts, faces=faces, bone_indices=indices.astype(np.uint8),
                bone_weights=weights.astype(np.float32), n_bones=np.array(n_bones))


def _validate(data: dict[str, np.ndarray]) -> None:
    V = data["rest_vertices"].shape[0]
    if data["rest_vertices"].shape != (V, 3) or data["faces"].ndim != 2 or data["faces"].shape[1] != 3:
        raise ValueError("bad mesh arrays")
    if data["bone_indices"].shape != data["bone_weights"].shape or data["bone_indices"].shape[0] != V:
        raise ValueError("bad skinning arrays")
    if data["faces"].min() < 0 or data["faces"].max() >= V:
        raise ValueError("face index out of range")


def load_mesh(phenotype=None) -> AnnyMesh:
    """The Anny mesh and skinning of a phenotype (default: the average body; the rest of
    ``anny_skeleton.load_skeleton(phenotype)``), from the cache or built from the model (a few seconds; the write is
    atomic). A cache entry that cannot be read (truncated, damaged) is rebuilt.
    """
    from .anny_skeleton import phenotype_key
    from .npz_cache import load_or_build

    prepare_environment()
    key = phenotype_key(phenotype)
    data = load_or_build(_cache_path(key), lambda: _build(key), _validate)
    return AnnyMesh(rest_vertices=data["rest_vertices"].astype(np.float32),
                    faces=data["faces"].astype(np.int32),
                    bone_indices=data["bone_indices"].astype(np.int64),
                    bone_weights=data["bone_weights"].astype(np.float32))


def dense_weights(mesh: AnnyMesh, n_bones: int) -> np.ndarray:
    """(V, J) float64 weight matrix from the sparse (V, K) influences (repeated bones add up)."""
    V, K = mesh.bone_indices.shape
    if mesh.bone_indices.size and int(mesh.bone_indices.max()) >= n_bones:
        raise ValueError(f"the mesh's skinning uses bone {int(mesh.bone_indices.max())} but the rig has {n_bones}")
    flat = (np.arange(V)[:, None] * n_bones + mesh.bone_indices).ravel()
    return np.bincount(flat, weights=mesh.bone_weights.astype(np.float64).ravel(),
                       minlength=V * n_bones).reshape(V, n_bones)


def skin(mesh: AnnyMesh, rest: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Linear blend skinning: rest (J,4,4) and posed W (T,J,4,4) armature-space bone matrices → (T,V,3) float32.

    ``v' = Σ_k w_k · W_{b_k} · Rest_{b_k}^-1 · v``. ``W`` is typically ``rigs.fk.forward_kinematics(Skeleton.rest,
    ...)`` of a Take's rotations, or Anny's own ``bone_poses``. A single pose (J,4,4) gives (1,V,3).
    """
    from rigs.fk import rigid_inverse

    rest = np.asarray(rest, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 3:
        W = W[None]
    n_bones = rest.shape[0]
    if rest.shape != (n_bones, 4, 4) or W.shape[1:] != (n_bones, 4, 4):
        raise ValueError(f"rest {rest.shape} and W {W.shape} must be (J,4,4) and (T,J,4,4) with the same J")
    dense = dense_weights(mesh, n_bones)                      # (V, J)
    M = (W @ rigid_inverse(rest))[:, :, :3, :]                # (T, J, 3, 4) skinning matrices
    v = mesh.rest_vertices.astype(np.float64)                 # (V, 3)
    T, V = W.shape[0], v.shape[0]
    out = np.empty((T, V, 3), dtype=np.float32)
    for start in range(0, T, _FRAME_CHUNK):
        m = M[start:start + _FRAME_CHUNK]                     # (C, J, 3, 4)
        C = m.shape[0]
        blend = (dense @ m.transpose(1, 0, 2, 3).reshape(n_bones, C * 12)).reshape(V, C, 3, 4)
        out[start:start + C] = (np.einsum("vcab,vb->cva", blend[..., :3], v) + blend[..., 3].transpose(1, 0, 2))
    return out


def take_mesh_arrays(bone_names: list[str], phenotype=None) -> dict[str, np.ndarray] | None:
    """The mesh sidecar's arrays (``take.MESH_FIELDS``) for a Take on Anny's skeleton, or None when its bones are not
    Anny's (SMPL family, MANO).

    The Take's bones may be all of Anny's (body Takes: the same rest as this mesh, of the Take's ``phenotype``, so
    the vertices are used as they are) or one hand's (hand-model Takes: the bones of ``body_models.hand_bones``, with the rest of
    the skeleton's rest). For a subset, only the faces skinned mostly (> 1/2) to the subset are kept and every other
    bone's influence goes to the subset's root (the wrist), as the overlay does: the skin near the wrist follows it.
    """
    from .anny_skeleton import load_skeleton

    skel = load_skeleton(phenotype)
    index = {name: j for j, name in enumerate(skel.names)}
    if not bone_names or any(name not in index for name in bone_names):
        return None
    keep = np.array([index[name] for name in bone_names], dtype=np.int64)
    mesh = load_mesh(phenotype)
    vertices, faces = mesh.rest_vertices, mesh.faces
    indices, weights = mesh.bone_indices, mesh.bone_weights
    if keep.shape[0] != len(skel.names) or not np.array_equal(keep, np.arange(len(skel.names))):
        to_sub = np.zeros(len(skel.names), dtype=np.int64)       # bones outside the subset → its root (index 0)
        to_sub[keep] = np.arange(keep.shape[0])
        inside = np.zeros(len(skel.names), dtype=bool)
        inside[keep] = True
        on_subset = (weights * inside[indices]).sum(axis=1) > 0.5      # (V,)
        faces = faces[on_subset[faces].all(axis=1)]
        used = np.unique(faces)
        remap = np.full(vertices.shape[0], -1, dtype=np.int64)
        remap[used] = np.arange(used.shape[0])
        vertices, faces = vertices[used], remap[faces]
        indices, weights = to_sub[indices[used]], weights[used]
    rest = skel.rest[keep]
    return dict(vertices=vertices.astype(np.float32), faces=faces.astype(np.int32),
                bone_indices=indices.astype(np.uint8), bone_weights=weights.astype(np.float32),
                bone_names=np.array(bone_names), rest_matrices=rest.astype(np.float32))


def write_take_mesh(take_path: str | Path, bone_names: list[str], phenotype=None) -> dict | None:
    """Write the mesh sidecar next to a Take about to be written (``take.mesh_path``) and return its sidecar JSON
    entry ``{"file", "model", "vertices", "faces"}``; None (nothing written) when the bones are not Anny's."""
    from .take import mesh_path, write_mesh

    arrays = take_mesh_arrays(bone_names, phenotype)
    if arrays is None:
        return None
    path = write_mesh(mesh_path(take_path), arrays)
    return {"file": path.name, "model": "anny", "vertices": int(arrays["vertices"].shape[0]),
            "faces": int(arrays["faces"].shape[0])}
