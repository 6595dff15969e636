"""Tang et al.'s alignment refinement and its geometry (inference_server/hand_mesh/refine.py): projection, the
closed-form translation, the refiner (identity at start, trainable, ONNX), the soft silhouette, the mesh losses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inference_server.hand_mesh.refine import (AlignmentRefiner, edge_length_loss, normal_loss, project,
                                               register_translation, silhouette_loss, soft_silhouette)
from inference_server.hand_mesh.template import anny_template

FOCAL = 330.0      # crop pixels: a 15 cm hand half a metre away spans ~100 of the crop's 128 px
CENTRE = 63.5      # the crop's centre in the integer-pixel-centre convention


@pytest.fixture(scope="module")
def template():
    return anny_template()


def crop_K(batch: int, f: float = FOCAL, dtype=torch.float32) -> torch.Tensor:
    K = torch.tensor([[f, 0.0, CENTRE], [0.0, f, CENTRE], [0.0, 0.0, 1.0]], dtype=dtype)
    return K.expand(batch, 3, 3).clone()


def hand_in_front(template, batch: int = 1, depth: float = 0.5) -> torch.Tensor:
    """The template centred on the optical axis at ``depth`` metres: (batch, 778, 3)."""
    v = torch.as_tensor(template.vertices, dtype=torch.float32)
    v = v - v.mean(dim=0) + torch.tensor([0.0, 0.0, depth])
    return v.expand(batch, -1, -1).clone()


# --- projection and registration -----------------------------------------------------------------------------

def test_project_known_points():
    K = torch.tensor([[[100.0, 0.0, 64.0], [0.0, 200.0, 32.0], [0.0, 0.0, 1.0]]])
    pts = torch.tensor([[[0.1, -0.2, 2.0],      # u = 100·0.05 + 64 = 69, v = 200·(−0.1) + 32 = 12
                         [0.0, 0.0, 5.0],       # on the axis: the principal point
                         [-0.3, 0.6, 3.0],      # u = 100·(−0.1) + 64 = 54, v = 200·0.2 + 32 = 72
                         [1e-6, 0.0, 0.0]]])    # Z clamped to 1e-4: u = 100·0.01 + 64 = 65
    uv = project(pts, K)
    expect = torch.tensor([[[69.0, 12.0], [64.0, 32.0], [54.0, 72.0], [65.0, 32.0]]])
    assert uv.shape == (1, 4, 2)
    assert torch.allclose(uv, expect, atol=1e-4)


def _registration_problem(seed: int, batch: int = 3, V: int = 120):
    g = torch.Generator().manual_seed(seed)
    verts_rel = (torch.rand(batch, V, 3, generator=g, dtype=torch.float64) - 0.5) * 0.15      # a hand-sized cloud
    # each joint the mean of two vertices: joints spread like a hand's (~3 cm per axis), rows summing to 1
    reg = torch.zeros(21, V, dtype=torch.float64)
    reg.scatter_add_(1, torch.randint(0, V, (21, 2), generator=g), torch.full((21, 2), 0.5, dtype=torch.float64))
    t_true = torch.tensor([[0.05, -0.03, 0.6], [-0.1, 0.02, 0.45], [0.0, 0.08, 0.9]], dtype=torch.float64)[:batch]
    K = crop_K(batch, dtype=torch.float64)
    K[:, 0, 0] = 310.0                                                                         # fx ≠ fy
    px = project(reg @ verts_rel + t_true[:, None], K)
    return verts_rel, reg, px, K, t_true


def test_register_translation_recovers_a_known_translation():
    verts_rel, reg, px, K, t_true = _registration_problem(0)
    t = register_translation(verts_rel, reg, px, K)
    assert t.shape == (3, 3)
    assert torch.allclose(t, t_true, atol=1e-9)
    # a corrupted joint with weight 0 changes nothing
    bad = px.clone()
    bad[:, 4] += 40.0
    w = torch.ones(3, 21, dtype=torch.float64)
    w[:, 4] = 0.0
    assert torch.allclose(register_translation(verts_rel, reg, bad, K, w), t_true, atol=1e-9)
    assert (register_translation(verts_rel, reg, bad, K) - t_true).abs().max() > 1e-3
    # float32 too
    t32 = register_translation(verts_rel.float(), reg.float(), px.float(), K.float())
    assert torch.allclose(t32.double(), t_true, atol=1e-4)


def test_register_translation_with_one_pixel_noise():
    verts_rel, reg, px, K, t_true = _registration_problem(1)
    g = torch.Generator().manual_seed(7)
    noisy = px + torch.randn(px.shape, generator=g, dtype=torch.float64)                      # σ = 1 px
    t = register_translation(verts_rel, reg, noisy, K)
    err = (t - t_true).abs()
    assert err[:, :2].max() < 5e-3              # lateral: millimetres
    assert (err[:, 2] / t_true[:, 2]).max() < 0.04      # depth, the weak direction: within a few per cent
    reproj = (project(reg @ verts_rel + t[:, None], K) - noisy).norm(dim=-1)
    assert reproj.mean() < 1.5                  # the fit leaves about the noise


def test_register_translation_is_differentiable():
    verts_rel, reg, px, K, _ = _registration_problem(2, batch=1, V=12)
    verts_rel.requires_grad_(True)
    px = px.clone().requires_grad_(True)
    w = torch.rand(1, 21, dtype=torch.float64).add(0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, p, ww: register_translation(v, reg, p, K, ww), (verts_rel, px, w))


# --- the refiner ---------------------------------------------------------------------------------------------

def refiner_inputs(template, batch: int = 2, shallow_channels: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    verts = hand_in_front(template, batch)
    verts = verts + 0.01 * torch.randn(verts.shape, generator=g)                               # not two equal hands
    return (torch.rand(batch, 3, 128, 128, generator=g) * 2 - 1,
            torch.randn(batch, shallow_channels, 64, 64, generator=g),
            torch.randn(batch, 21, 16, 16, generator=g),
            torch.randn(batch, 256, 4, 4, generator=g),
            verts, crop_K(batch))


def make_refiner(template, shallow_channels: int = 32) -> AlignmentRefiner:
    torch.manual_seed(0)
    return AlignmentRefiner(torch.as_tensor(template.hierarchy.spirals[0]), shallow_channels)


def test_untrained_refiner_is_the_identity(template):
    refiner = make_refiner(template)
    inputs = refiner_inputs(template)
    out = refiner(*inputs)
    assert out["offsets"].shape == (2, 778, 3)
    assert torch.count_nonzero(out["offsets"]) == 0
    assert torch.equal(out["verts"], inputs[4])


def test_refiner_trains(template):
    refiner = make_refiner(template, shallow_channels=128)     # densestack's shallow width
    inputs = refiner_inputs(template, shallow_channels=128)
    target = inputs[4] + 0.003
    opt = torch.optim.SGD(refiner.parameters(), lr=0.01)

    loss = (refiner(*inputs)["verts"] - target).pow(2).mean()
    loss.backward()
    assert refiner.head.weight.grad.abs().max() > 0 and refiner.head.bias.grad.abs().max() > 0
    # the zero head passes no gradient below it on the first step (the price of starting as the identity)
    assert refiner.input_fc.weight.grad is not None
    assert refiner.input_fc.weight.grad.abs().max() == 0
    opt.step()
    opt.zero_grad()

    out = refiner(*inputs)
    assert out["offsets"].abs().max() > 0
    loss2 = (out["verts"] - target).pow(2).mean()
    assert loss2 < loss
    loss2.backward()
    assert refiner.input_fc.weight.grad.abs().max() > 0                  # now it reaches the input layer
    assert refiner.global_fc.weight.grad.abs().max() > 0
    assert refiner.blocks[0].channel_layer.weight.grad.abs().max() > 0


def test_refiner_samples_where_vertices_project(template):
    """A vertex projected onto pixel (u, v)'s centre reads exactly that pixel of the image (integer pixel centres,
    grid 2(u + 0.5)/128 − 1 with align_corners=False): checked through a refiner whose input layer passes the
    sampled image straight to the head."""
    refiner = make_refiner(template)
    with torch.no_grad():
        for block in refiner.blocks:
            block.channel_layer.weight.zero_()                    # residual blocks add nothing
        refiner.input_fc.weight.zero_()
        refiner.input_fc.bias.zero_()
        refiner.input_fc.weight[:3, :3] = torch.eye(3)            # h[:3] = ReLU(sampled image)
        refiner.head.weight[:, :3] = torch.eye(3)                 # offsets = h[:3]
    image, shallow, maps, latent, verts, K = refiner_inputs(template, batch=1)
    image = image.abs()                                            # ReLU passes it whole
    cols = torch.randint(0, 128, (778,), generator=torch.Generator().manual_seed(3)).double()
    rows = torch.randint(0, 128, (778,), generator=torch.Generator().manual_seed(4)).double()
    z = verts[0, :, 2].double()
    verts = torch.stack([(cols - CENTRE) * z / FOCAL, (rows - CENTRE) * z / FOCAL, z], dim=-1)[None].float()
    out = refiner(image, shallow, maps, latent, verts, K)["offsets"][0]          # (778, 3)
    expect = image[0][:, rows.long(), cols.long()].T
    assert torch.allclose(out, expect, atol=1e-4)


def test_refiner_onnx_matches_torch(template, tmp_path):
    import onnxruntime as ort

    refiner = make_refiner(template)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in refiner.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))       # the head included: no longer zero
    refiner.eval()
    inputs = refiner_inputs(template, batch=2, seed=1)
    names = ["image", "shallow", "joint_maps", "latent", "verts_cam", "K"]

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            out = self.m(*args)
            return out["offsets"], out["verts"]

    path = tmp_path / "refine.onnx"
    with torch.no_grad():
        torch.onnx.export(Wrapper(refiner).eval(), inputs, str(path), dynamo=False, opset_version=17,
                          input_names=names, output_names=["offsets", "verts"],
                          dynamic_axes={n: {0: "batch"} for n in names + ["offsets", "verts"]})
        ref = refiner(*inputs)
        inputs3 = refiner_inputs(template, batch=3, seed=2)
        ref3 = refiner(*inputs3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert ref["offsets"].abs().max() > 1e-2
    for x, r in ((inputs, ref), (inputs3, ref3)):
        offsets, verts = session.run(None, {n: t.numpy() for n, t in zip(names, x)})
        assert np.abs(offsets - r["offsets"].numpy()).max() < 1e-4
        assert np.abs(verts - r["verts"].numpy()).max() < 1e-4


# --- soft silhouette -----------------------------------------------------------------------------------------

def test_soft_silhouette_of_one_triangle():
    # a big triangle in the 128-px crop; both windings
    tri = torch.tensor([[[10.0, 10.0], [118.0, 20.0], [40.0, 110.0]]])
    for faces in (torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])):
        sil = soft_silhouette(tri, faces, size=64, scale=0.5, sigma=0.5)
        assert sil.shape == (1, 64, 64)
        assert sil.min() >= 0 and sil.max() <= 1
        # output pixel (row i, col j) is crop point (2j + 0.5, 2i + 0.5)
        assert sil[0, 25, 25] > 0.999          # crop (50.5, 50.5): well inside
        assert sil[0, 60, 60] < 1e-3           # crop (120.5, 120.5): well outside
        assert sil[0, 2, 60] < 1e-3            # above the top edge
        assert sil[0, 0, 0] < 1e-3


def test_soft_silhouette_has_no_halo_beyond_a_slivers_tip():
    """Outside a triangle the distance is to its nearest edge segment: beyond a needle's tip it is the distance to the
    tip, not the (tiny) distance to the long edges' lines."""
    needle = torch.tensor([[[10.0, 58.5], [120.0, 62.5], [10.0, 66.5]]])
    sil = soft_silhouette(needle, torch.tensor([[0, 1, 2]]), sigma=0.5)[0]
    assert sil[31, 20] > 0.9                   # crop (40.5, 62.5): on the axis, 1.45 output px from either edge
    assert sil[31, 63] < 0.01                  # crop (126.5, 62.5): 6.5 crop px beyond the tip
    assert sil[25, 20] < 0.01                  # crop (40.5, 50.5): beside it


def _rasterised_mask(px: np.ndarray, faces: np.ndarray, size: int, scale: float) -> np.ndarray:
    import cv2

    shift = 4
    p = np.round(((px + 0.5) * scale - 0.5) * (1 << shift)).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [p[f] for f in faces], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def test_soft_silhouette_of_the_template_matches_rasterisation(template):
    verts = hand_in_front(template)
    px = project(verts, crop_K(1))
    faces = torch.as_tensor(template.faces)
    mask = _rasterised_mask(px[0].numpy(), template.faces, 64, 0.5)
    assert 200 < mask.sum() < 64 * 64 - 200                     # a hand-shaped area, not nothing or everything
    sil = soft_silhouette(px, faces, size=64, scale=0.5, sigma=0.05)[0].numpy()
    hard = sil > 0.5
    iou = (hard & mask).sum() / (hard | mask).sum()
    soft_iou = np.minimum(sil, mask).sum() / np.maximum(sil, mask).sum()
    assert iou > 0.8 and soft_iou > 0.8, (iou, soft_iou)
    # a wider sigma blurs, but stays in [0, 1] and grows the coverage
    wide = soft_silhouette(px, faces, sigma=1.0)[0]
    assert 0 <= wide.min() and wide.max() <= 1 and wide.sum() > float(sil.sum())


def test_silhouette_loss_pulls_the_mesh_towards_the_mask(template):
    verts = hand_in_front(template)
    faces = torch.as_tensor(template.faces)
    K = crop_K(1)
    target = torch.as_tensor(_rasterised_mask(project(verts, K)[0].numpy(), template.faces, 64, 0.5)).float()[None]
    assert silhouette_loss(target.clamp(0.01, 0.99), target) < silhouette_loss(1 - target, target)
    shift = torch.zeros(1, 1, 3, requires_grad=True)
    loss = silhouette_loss(soft_silhouette(project(verts + shift + torch.tensor([0.01, 0, 0]), K), faces), target)
    loss.backward()
    loss = loss.detach()
    assert math.isfinite(loss.item()) and shift.grad[0, 0, 0] > 0        # moved right: the gradient says go left


# --- mesh losses ---------------------------------------------------------------------------------------------

def test_mesh_losses(template):
    gt = hand_in_front(template, batch=2)
    faces = torch.as_tensor(template.faces)
    assert float(normal_loss(gt, gt, faces)) < 1e-6
    assert float(edge_length_loss(gt, gt, faces)) == 0.0
    g = torch.Generator().manual_seed(0)
    bent = gt + 0.002 * torch.randn(gt.shape, generator=g)
    assert normal_loss(bent, gt, faces) > 0.05
    assert edge_length_loss(bent, gt, faces) > 1e-4
    # a rigid rotation (and translation) of the prediction keeps every edge's length
    c, s = math.cos(0.7), math.sin(0.7)
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    moved = gt @ R.T + torch.tensor([0.1, -0.2, 0.3])
    assert float(edge_length_loss(moved, gt, faces)) < 1e-6
    assert normal_loss(moved, gt, faces) > 0.05               # … but not the faces' directions
    # numpy faces work as well
    assert torch.isclose(edge_length_loss(bent, gt, template.faces), edge_length_loss(bent, gt, faces))
