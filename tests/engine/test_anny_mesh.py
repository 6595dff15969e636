"""The cached Anny mesh and numpy skinning against the real Anny model (skipped when anny is unavailable)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from inference_server.anny_skeleton import anny_available

pytestmark = pytest.mark.skipif(not anny_available(), reason="the anny package or its cache is not available")


@pytest.fixture(scope="module")
def posed():
    """A non-trivial pose (every bone rotated, root moved) run through the real Anny model."""
    import torch

    from inference_server.anny_mesh import load_mesh
    from inference_server.anny_skeleton import load_anny_model, load_skeleton
    from rigs.rotations import aa_to_matrix

    skeleton = load_skeleton()
    mesh = load_mesh()
    model = load_anny_model()
    n_bones = len(skeleton.names)
    n_frames = 4
    rng = np.random.default_rng(7)
    aa = rng.normal(size=(n_frames, n_bones, 3)) * 0.35  # (T, J, 3) ~20° per bone per axis
    aa[:, skeleton.index("lowerarm01.R")] = [1.4, 0.2, 0.0]  # a strongly bent elbow
    aa[:, skeleton.index("upperleg01.L")] = [-1.0, 0.0, 0.3]  # a raised thigh
    deltas = np.tile(np.eye(4), (n_frames, n_bones, 1, 1))  # (T, J, 4, 4) Anny "local-bone" deltas
    deltas[:, :, :3, :3] = aa_to_matrix(aa)
    deltas[:, 0, :3, :3] = skeleton.rest[0, :3, :3] @ deltas[:, 0, :3, :3]  # the root's delta is its world pose
    deltas[:, 0, :3, 3] = skeleton.rest[0, :3, 3] + np.array([0.3, -0.2, 0.1]) * np.arange(n_frames)[:, None]
    with torch.no_grad():
        out = model(pose_parameters=torch.tensor(deltas, dtype=torch.float32), pose_parameterization="local-bone")
    return dict(skeleton=skeleton, mesh=mesh, bone_poses=out["bone_poses"].double().numpy(),
                vertices=out["vertices"].double().numpy(), faces=model.get_triangular_faces().numpy())


def test_mesh_matches_the_model(posed):
    mesh = posed["mesh"]
    V = mesh.rest_vertices.shape[0]
    assert mesh.rest_vertices.dtype == np.float32 and mesh.rest_vertices.shape == (V, 3)
    assert mesh.faces.dtype == np.int32
    np.testing.assert_array_equal(mesh.faces, posed["faces"])
    assert mesh.bone_indices.shape == mesh.bone_weights.shape and mesh.bone_indices.shape[0] == V
    np.testing.assert_allclose(mesh.bone_weights.sum(axis=1), 1.0, atol=1e-5)
    # Outward-facing (counter-clockwise) triangles: the closed body's signed volume is positive.
    v = mesh.rest_vertices.astype(np.float64)[mesh.faces]
    assert np.einsum("fi,fi->f", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6 > 0.02


def test_skin_reproduces_anny_vertices(posed):
    from inference_server.anny_mesh import skin

    skinned = skin(posed["mesh"], posed["skeleton"].rest, posed["bone_poses"])
    assert skinned.dtype == np.float32 and skinned.shape == posed["vertices"].shape
    moved = np.linalg.norm(posed["vertices"] - posed["mesh"].rest_vertices, axis=-1)
    assert moved.max() > 0.3  # the pose really moves the mesh
    error = np.linalg.norm(skinned - posed["vertices"], axis=-1)
    assert error.max() < 1e-3, f"max {error.max() * 1e3:.3f} mm"  # measured ~1e-4 mm (float32 round-off)


def test_skin_follows_fk_of_take_rotations(posed):
    """Take convention: local rotations relative to the rest pose → rigs.fk → skin = Anny's own mesh."""
    from inference_server.anny_mesh import skin
    from rigs.fk import forward_kinematics
    from rigs.rotations import matrix_to_aa

    skeleton, bone_poses = posed["skeleton"], posed["bone_poses"]
    R = skeleton.rest[:, :3, :3]
    Wr = bone_poses[..., :3, :3]  # (T, J, 3, 3)
    L = np.zeros_like(Wr)
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            L[:, j] = R[j].T @ Wr[:, j]
        else:  # W_j = W_p O_j L_j with O_j = Rest_p^-1 Rest_j
            L[:, j] = (R[p].T @ R[j]).T @ np.swapaxes(Wr[:, p], -1, -2) @ Wr[:, j]
    W = forward_kinematics(skeleton.rest, skeleton.parents, matrix_to_aa(L), bone_poses[:, 0, :3, 3])
    np.testing.assert_allclose(W, bone_poses, atol=1e-4)
    error = np.linalg.norm(skin(posed["mesh"], skeleton.rest, W) - posed["vertices"], axis=-1)
    assert error.max() < 1e-3, f"max {error.max() * 1e3:.3f} mm"


def test_single_pose_and_rest_pose(posed):
    from inference_server.anny_mesh import skin

    mesh, rest = posed["mesh"], posed["skeleton"].rest
    at_rest = skin(mesh, rest, rest)  # W = Rest: every skinning matrix is the identity
    assert at_rest.shape == (1,) + mesh.rest_vertices.shape
    np.testing.assert_allclose(at_rest[0], mesh.rest_vertices, atol=1e-6)
    with pytest.raises(ValueError):
        skin(mesh, rest, posed["bone_poses"][:, :10])


def test_cache_round_trips_small_and_rebuilds_when_damaged(posed, tmp_path, monkeypatch):
    from inference_server import anny_mesh

    monkeypatch.setenv("ANNY_CACHE_DIR", os.environ["ANNY_CACHE_DIR"])  # keep the real Anny cache
    monkeypatch.setenv("REEL2RIG_CACHE", str(tmp_path / "cache"))
    path = anny_mesh._cache_path()
    assert str(path).startswith(str(tmp_path)) and not path.exists()
    built = anny_mesh.load_mesh()
    assert path.exists()
    assert path.stat().st_size < 1_000_000  # measured 388 kB
    again = anny_mesh.load_mesh()
    for field in ("rest_vertices", "faces", "bone_indices", "bone_weights"):
        np.testing.assert_array_equal(getattr(again, field), getattr(built, field))
        np.testing.assert_array_equal(getattr(built, field), getattr(posed["mesh"], field))
        assert getattr(again, field).dtype == getattr(built, field).dtype
    path.write_bytes(path.read_bytes()[:1000])  # truncated by a crash
    rebuilt = anny_mesh.load_mesh()
    np.testing.assert_array_equal(rebuilt.rest_vertices, built.rest_vertices)
    with np.load(path, allow_pickle=False) as f:
        assert f["rest_vertices"].shape == built.rest_vertices.shape


def test_take_mesh_sidecar_for_body_and_hand_takes(tmp_path):
    """The mesh sidecar the engine writes next to an Anny Take (``anny_mesh.write_take_mesh``): the whole mesh for a
    body Take; for one hand's Take the faces on that hand, skinned to its bones only (the rest follows the wrist)."""
    from inference_server.anny_mesh import load_mesh, write_take_mesh
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.body_models import hand_bones
    from inference_server.take import mesh_path, read_mesh

    skel, mesh = load_skeleton(), load_mesh()
    take_path = tmp_path / "clip.take.npz"
    entry = write_take_mesh(take_path, list(skel.names))
    assert entry == {"file": "clip.mesh.npz", "model": "anny", "vertices": mesh.n_vertices,
                     "faces": int(mesh.faces.shape[0])}
    body = read_mesh(mesh_path(take_path))
    assert np.array_equal(body["vertices"], mesh.rest_vertices) and np.array_equal(body["faces"], mesh.faces)
    assert [str(n) for n in body["bone_names"]] == list(skel.names)
    assert np.abs(body["rest_matrices"] - skel.rest).max() < 1e-6
    assert mesh_path(take_path).stat().st_size < 600_000

    keep = hand_bones(skel.names, skel.parents, "left")
    names = [skel.names[j] for j in keep]
    hand_path = tmp_path / "clip.left_hand.take.npz"
    assert write_take_mesh(hand_path, names)["file"] == "clip.left_hand.mesh.npz"
    hand = read_mesh(mesh_path(hand_path))
    V = hand["vertices"].shape[0]
    assert 0 < V < mesh.n_vertices // 4 and hand["faces"].max() == V - 1
    assert hand["bone_indices"].max() < len(names)
    assert np.allclose(hand["bone_weights"].sum(axis=1), 1.0, atol=1e-5)
    wrist = hand["vertices"].mean(axis=0) - skel.rest[keep[0], :3, 3]
    assert np.linalg.norm(wrist) < 0.15  # the hand's vertices are around its wrist

    assert write_take_mesh(tmp_path / "smpl.take.npz", ["pelvis", "left_hip"]) is None   # not Anny's bones
    assert not (tmp_path / "smpl.mesh.npz").exists()
