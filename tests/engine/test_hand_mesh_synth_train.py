"""Synthetic hand crops (inference_server/hand_mesh/synth.py) and the training script (train.py): the renderer on a
known triangle, the crops' ground truth agreeing with itself, determinism and resuming, and a short training run
that learns (it overfits a few crops) and exports."""
from __future__ import annotations

import json

import numpy as np
import pytest

from inference_server.hand_mesh import synth


def test_render_draws_a_known_triangle_with_lambert_shading():
    K = np.array([[100.0, 0, 64], [0, 100.0, 64], [0, 0, 1]])
    # a triangle at z = 1 facing the camera (counter-clockwise seen from the camera side: normal towards -z)
    verts = np.array([[-0.3, -0.3, 1.0], [-0.3, 0.3, 1.0], [0.3, 0.3, 1.0]])
    faces = np.array([[0, 1, 2]])
    n = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    assert n[2] < 0
    bg = np.zeros((synth.CROP * synth.SUPERSAMPLE,) * 2 + (3,), np.float32)
    light = np.array([0.0, 0.0, -1.0])                 # straight from the camera
    img, mask = synth.render(verts, faces, np.array([True]), K, np.array([0.5, 0.25, 1.0]), light,
                             ambient=0.2, diffuse=0.6, specular=0.0, bg=bg)
    # the triangle covers half of the 60×60 px square [34, 94]²: 1800 px
    assert abs(mask.sum() - 1800) < 60
    inside = mask > 0.99
    assert np.allclose(img[inside], np.array([0.5, 0.25, 1.0]) * 0.8, atol=1e-3)
    assert mask[40, 90] == 0 and mask[90, 40] == 1.0   # below-left of the diagonal is the triangle (y down)
    # seen from behind it is culled
    img2, mask2 = synth.render(verts[[0, 2, 1]], faces, np.array([True]), K, np.ones(3), light, 0.2, 0.6, 0.0, bg)
    assert mask2.sum() == 0


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    paths = synth.write_shards(folder, 40, seed=3, shard_size=20)
    return folder, paths


def test_shards_hold_consistent_ground_truth(shards):
    from inference_server.hand_mesh.template import anny_template

    _, paths = shards
    assert len(paths) == 2
    with np.load(paths[0]) as z:
        d = {k: z[k] for k in z.files}
    assert d["image"].shape == (20, 128, 128, 3) and d["image"].dtype == np.uint8
    assert d["verts"].shape == (20, 778, 3) and d["joints3d"].shape == (20, 21, 3)
    # 2D joints are the 3D joints through K
    proj = np.einsum("nij,nkj->nki", d["K"], d["joints3d"])
    assert np.allclose(proj[..., :2] / proj[..., 2:], d["joints2d"], atol=1e-2)
    # the crop frames the hand: joints inside, about 1/1.5 of the crop across (with the jitter)
    span = np.ptp(d["joints2d"], axis=1).max(axis=1)
    assert np.all(span > 128 / 1.5 / 1.3) and np.all(span < 128 / 1.5 / 0.8)
    # the mesh is a posed Anny hand of a teenager or adult: wrist to middle knuckle 6.5-14 cm
    palm = np.linalg.norm(d["joints3d"][:, 9] - d["joints3d"][:, 0], axis=1)
    assert np.all((palm > 0.065) & (palm < 0.14)), palm
    # the skin is on that skeleton: every template vertex within 4 cm of a bone (wrist→knuckles, phalanges, the
    # knuckle line), half of them within 1.5 cm
    v, j = d["verts"], d["joints3d"]
    bones = [(0, 1), (1, 2), (2, 3), (3, 4), (5, 9), (9, 13), (13, 17)] + [
        (a, a + 1) for f in range(1, 5) for a in [4 * f + 1, 4 * f + 2, 4 * f + 3]] + [(0, 4 * f + 1) for f in range(1, 5)]

    def to_segment(a, b):
        A, B = j[:, a][:, None], j[:, b][:, None]
        t = np.clip(((v - A) * (B - A)).sum(-1) / ((B - A) ** 2).sum(-1), 0, 1)
        return np.linalg.norm(v - (A + t[..., None] * (B - A)), axis=-1)

    dist = np.min([to_segment(a, b) for a, b in bones], axis=0)
    assert dist.max() < 0.04 and np.median(dist) < 0.015
    # the mask is the visible hand: it is there, and most projected template vertices land on it
    assert all(m.sum() > 200 for m in d["mask"])
    v = np.einsum("nij,nkj->nki", d["K"], d["verts"])
    px = np.round(v[..., :2] / v[..., 2:]).astype(int)
    inside = (px >= 0).all(-1) & (px < 128).all(-1)
    hit = [d["mask"][i][px[i, inside[i], 1], px[i, inside[i], 0]].mean() for i in range(20)]
    assert np.median(hit) > 0.6          # hidden (back-side) and occluded vertices fall off the mask
    assert len(anny_template().anny_vertex) == 778


def test_shards_are_deterministic_and_resume(shards, tmp_path):
    folder, paths = shards
    stamp = paths[0].stat().st_mtime_ns
    synth.write_shards(folder, 40, seed=3, shard_size=20)
    assert paths[0].stat().st_mtime_ns == stamp                       # kept, not made again
    paths[1].write_bytes(b"broken")                                   # a damaged shard is made again, identically
    again = synth.write_shards(folder, 40, seed=3, shard_size=20)
    with np.load(again[1]) as z:
        assert z["image"].shape[0] == 20
    other = synth.write_shards(tmp_path, 20, seed=3, shard_size=20)
    with np.load(other[0]) as a, np.load(paths[0]) as b:
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["verts"], b["verts"])


def test_a_short_run_learns_and_exports(shards, tmp_path):
    from inference_server.hand_mesh.export import OnnxHandMesh
    from inference_server.hand_mesh.train import train

    folder, _ = shards
    recipe = train(folder, folder, tmp_path / "run", encoder="ghoststack", iterations=60, batch=8, lr=2e-3,
                   eval_every_it=60, held_limit=16, warmup=0, log=lambda *_: None)
    curves = json.loads((tmp_path / "run" / "curves.json").read_text())
    assert [c["iteration"] for c in curves] == [0, 60]
    first, last = curves[0]["held_out"], curves[-1]["held_out"]
    # on crops it has seen, 60 steps bring the joints, the mesh and the 2D joints closer
    assert last["mpjpe_mm"] < 0.85 * first["mpjpe_mm"]
    assert last["mpvpe_mm"] < first["mpvpe_mm"]
    assert last["joints2d_px"] < first["joints2d_px"]
    assert recipe["iterations"] == 60 and (tmp_path / "run" / "curve.png").stat().st_size > 1000
    runner = OnnxHandMesh(tmp_path / "run" / "hand_mesh.onnx")
    with np.load(folder / "shard_00000.npz") as z:
        img = z["image"][:2].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    with pytest.raises(ValueError, match="landmarks"):
        runner(img)                                   # it pools at given landmarks: they must be given
    with np.load(folder / "shard_00000.npz") as z:
        out = runner(img, landmarks_2d=z["joints2d"][:2] / 128)
    assert out["verts"].shape == (2, 778, 3) and out["joints3d"].shape == (2, 21, 3)


def test_the_refinement_trains_on_top_and_exports_with_K(shards, tmp_path):
    from inference_server.hand_mesh.export import OnnxHandMesh
    from inference_server.hand_mesh.train import train

    folder, _ = shards
    train(folder, folder, tmp_path / "base", encoder="ghoststack", iterations=30, batch=8, lr=2e-3,
          eval_every_it=30, held_limit=8, warmup=0, log=lambda *_: None)
    train(folder, folder, tmp_path / "ref", encoder="ghoststack", iterations=30, batch=8, lr=3e-3, eval_every_it=30,
          held_limit=16, init=tmp_path / "base" / "hand_mesh.pt", refine=True, warmup=0, log=lambda *_: None)
    curves = json.loads((tmp_path / "ref" / "curves.json").read_text())
    first, last = curves[0]["held_out"], curves[-1]["held_out"]
    # at the start the refinement changes nothing (its head is zero); 30 steps later it lines the crops' joints up
    # better than the registered rough mesh
    assert first["refined_2d_px"] == pytest.approx(first["rough_2d_px"], rel=1e-4)
    assert last["refined_2d_px"] < 0.9 * last["rough_2d_px"]
    assert last["mpjpe_mm"] == pytest.approx(first["mpjpe_mm"], rel=1e-5)     # the base network stayed frozen
    runner = OnnxHandMesh(tmp_path / "ref" / "hand_mesh.onnx")
    assert runner.takes_K and runner.metadata["refined"] == "true"
    with np.load(folder / "shard_00000.npz") as z:
        img = z["image"][:2].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        K = z["K"][:2]
    with np.load(folder / "shard_00000.npz") as z:
        given = z["joints2d"][:2] / 128
    out = runner(img, K, given)
    assert out["joints_cam"].shape == (2, 21, 3) and np.all(out["joints_cam"][..., 2] > 0)
    with pytest.raises(ValueError, match="intrinsics"):
        runner(img, landmarks_2d=given)


def test_the_silhouette_loss_pulls_the_mesh_onto_the_mask(shards):
    """train's silhouette term: the mesh placed at the true wrist, soft-rasterised at 32 px against the visible-hand
    mask. The true mesh scores better than a shifted one, and the term has a gradient for the vertices."""
    import torch
    import torch.nn.functional as F

    from inference_server.hand_mesh.template import anny_template
    from inference_server.hand_mesh.train import silhouette_term, to_targets

    folder, _ = shards
    with np.load(folder / "shard_00000.npz") as z:
        batch = {k: z[k][:2] for k in z.files}
    tgt = to_targets(batch, "cpu")
    faces = torch.as_tensor(anny_template().faces)
    verts = tgt["verts"].clone().requires_grad_(True)               # the truth, wrist-relative, network units
    true_loss = silhouette_term(verts, tgt, faces, F)
    true_loss.backward()
    assert torch.isfinite(true_loss) and verts.grad is not None and verts.grad.abs().sum() > 0
    shifted = silhouette_term(tgt["verts"] + torch.tensor([0.4, 0.0, 0.0]), tgt, faces, F)   # 4 cm sideways
    assert shifted > true_loss
