"""The MobRecon hand-mesh network (inference_server/hand_mesh/): the Anny template and its hierarchy, the sizes
against the paper's table, ONNX export, and the authors' checkpoint layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_server.hand_mesh import checkpoint as ckpt
from inference_server.hand_mesh.counts import PAPER, count
from inference_server.hand_mesh.export import OnnxHandMesh, export_onnx, load_network, save_checkpoint
from inference_server.hand_mesh.mobrecon import MobRecon
from inference_server.hand_mesh.template import anny_template, mano_template


@pytest.fixture(scope="module")
def template():
    return anny_template()


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights and BatchNorm statistics far from their initial values, so outputs are not near zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                else:
                    t.copy_(t + 0.1 * torch.randn(t.shape, generator=g))
    return model.eval()


def test_anny_template_is_a_mano_sized_subset_of_annys_hand(template):
    from inference_server.anny_mesh import load_mesh

    h = template.hierarchy
    assert h.sizes == [778, 389, 195, 98, 49]
    whole = load_mesh().rest_vertices
    assert np.allclose(whole[template.anny_vertex], template.vertices, atol=1e-6)
    # the hand spans a hand's size (wrist to fingertip 15-25 cm)
    extent = np.ptp(template.vertices, axis=0).max()
    assert 0.12 < extent < 0.3
    assert all(s.shape == (n, 9) for s, n in zip(h.spirals, h.sizes))


@pytest.mark.parametrize("encoder", ["densestack", "ghoststack"])
def test_sizes_are_within_ten_percent_of_the_papers_table(template, encoder):
    c = count(template.hierarchy, encoder)
    p, m = PAPER[encoder]
    assert abs(c.params_used / p - 1) < 0.10, c
    assert abs(c.mult_adds / m - 1) < 0.10, c
    if encoder == "densestack":       # the authors' never-called modules are stored (their checkpoint has them)
        assert c.params_stored - c.params_used > 2.5e6


def test_forward_shapes_and_joint_pooling(template):
    model = randomise(MobRecon(template.hierarchy, "ghoststack"))
    with torch.no_grad():
        out = model(torch.rand(3, 3, 128, 128) * 2 - 1)
    assert out["verts"].shape == (3, 778, 3) and out["joints_2d"].shape == (3, 21, 2)
    assert out["latent"].shape == (3, 256, 4, 4)
    # pose pooling samples the latent map where the joints are: at a map cell's centre it is that cell's value
    latent = torch.randn(1, 256, 4, 4)
    at = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [1 / 3, 2 / 3]] + [[0.5, 0.5]] * 18])   # align_corners grid
    pooled = model.decoder3d.pool(latent, at)
    assert torch.allclose(pooled[0, 0], latent[0, :, 0, 0])
    assert torch.allclose(pooled[0, 1], latent[0, :, 3, 3])
    assert torch.allclose(pooled[0, 2], latent[0, :, 2, 1], atol=1e-6)     # x = 1/3 → column 1, y = 2/3 → row 2


def test_onnx_export_matches_torch(template, tmp_path):
    model = randomise(MobRecon(template.hierarchy, "ghoststack"), seed=1)
    Jr = np.random.default_rng(0).dirichlet(np.ones(778), size=21)
    export_onnx(model, tmp_path / "hm.onnx", joint_regressor=Jr)
    assert not model.training
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        ref = model(x)
    runner = OnnxHandMesh(tmp_path / "hm.onnx")
    assert runner.metadata["encoder"] == "ghoststack" and runner.metadata["vertices"] == "778"
    res = runner(x.numpy())
    verts, joints = res["verts"], res["joints_2d"]
    scale = float(ref["verts"].abs().max())
    assert np.allclose(res["joints3d"], np.einsum("jv,bvc->bjc", Jr, ref["verts"].numpy()), atol=1e-4 * scale + 1e-6)
    assert scale > 1e-3
    assert np.abs(verts - ref["verts"].numpy()).max() < 1e-4 * scale + 1e-6
    assert np.abs(joints - ref["joints_2d"].numpy()).max() < 1e-4
    # a file that is not ours is refused
    import onnx

    proto = onnx.load(str(tmp_path / "hm.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not a Reel2Rig hand-mesh"):
        OnnxHandMesh(tmp_path / "plain.onnx")


# Names and shapes from the authors' MobRecon-DenseStack (github.com/SeanChenxy/HandMesh, mobrecon/models), read
# off their module definitions: the layout their checkpoint has.
AUTHORS_LAYOUT = {
    "backbone.pre_layer.0.0.weight": (64, 3, 3, 3),
    "backbone.pre_layer.1.conv3x3.0.0.weight": (64, 1, 3, 3),
    "backbone.pre_layer.1.conv1x1.0.weight": (128, 64, 1, 1),
    "backbone.thrink.0.weight": (128, 512, 1, 1),
    "backbone.dense_stack1.dense1.conv2.conv1x1.0.weight": (64, 192, 1, 1),
    "backbone.dense_stack1.senet1.fc1.0.weight": (128, 256),
    "backbone.dense_stack1.senet3.fc2.1.running_var": (1024,),
    "backbone.dense_stack1.dense5.conv2.conv3x3.0.0.weight": (1792, 1, 3, 3),
    "backbone.dense_stack1.thrink1.1.conv3x3.1.1.weight": (512,),
    "backbone.dense_stack2.dense4.conv1.conv1x1.0.weight": (768, 1024, 1, 1),
    "backbone.dense_stack2.senet6.fc1.0.weight": (12, 24),
    "backbone.stack1_remap.0.weight": (24, 24, 1, 1),
    "backbone.thrink2.0.weight": (128, 152, 1, 1),
    "backbone.mid_proj.0.weight": (256, 1024, 1, 1),
    "backbone.reduce.0.weight": (21, 24, 1, 1),
    "backbone.uv_reg.0.0.weight": (128, 256),
    "backbone.uv_reg.2.0.weight": (2, 64),
    "decoder3d.upsample": (49, 21),
    "decoder3d.de_layer.0.conv.spatial_layer.weight": (256, 1, 3, 3),
    "decoder3d.de_layer.0.conv.channel_layer.weight": (256, 256),
    "decoder3d.de_layer.1.conv.channel_layer.weight": (128, 256),
    "decoder3d.de_layer.3.conv.channel_layer.weight": (32, 64),
    "decoder3d.head.spatial_layer.weight": (32, 1, 3, 3),
    "decoder3d.head.channel_layer.weight": (3, 32),
}


def test_densestack_has_the_authors_layout(template):
    state = MobRecon(template.hierarchy, "densestack", uv_skip=False).state_dict()
    for name, shape in AUTHORS_LAYOUT.items():
        assert name in state, name
        assert tuple(state[name].shape) == shape, name
    # ours adds only the 2D skip to it
    ours = MobRecon(template.hierarchy, "densestack").state_dict()
    assert set(ours) - set(state) == {"decoder3d.uv_lift.weight", "decoder3d.uv_lift.bias"}


def test_an_authors_style_checkpoint_loads_and_a_wrong_one_is_refused(template, tmp_path):
    model = randomise(MobRecon(template.hierarchy, "densestack", leak=0.0, uv_skip=False), seed=2)   # their layout
    # as their training writes it: wrapped, DataParallel-prefixed, and with the released demo's "conv" name
    theirs = {("module." + k).replace("backbone.reduce.", "backbone.conv."): v for k, v in model.state_dict().items()}
    torch.save({"model_state_dict": theirs, "epoch": 37}, tmp_path / "mobrecon_densestack.pt")
    loaded = ckpt.load_authors_checkpoint(tmp_path / "mobrecon_densestack.pt", template.hierarchy)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x)["verts"], model(x)["verts"])
    # through load_network too (not our format: no "encoder" entry)
    assert isinstance(load_network(template.hierarchy, weights=tmp_path / "mobrecon_densestack.pt"), MobRecon)

    bad = dict(theirs)
    bad["module.decoder3d.upsample"] = torch.zeros(50, 21)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"decoder3d.upsample: \(50, 21\) in the file, \(49, 21\) here"):
        ckpt.load_authors_checkpoint(tmp_path / "bad.pt", template.hierarchy)
    del bad["module.decoder3d.upsample"]
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ckpt.CheckpointError, match="1 missing"):
        ckpt.load_authors_checkpoint(tmp_path / "bad.pt", template.hierarchy)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="not a readable torch checkpoint"):
        ckpt.load_authors_checkpoint(tmp_path / "junk.pt", template.hierarchy)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_authors_checkpoint(tmp_path / "absent.pt", template.hierarchy)


def test_our_checkpoint_round_trips(template, tmp_path):
    model = randomise(MobRecon(template.hierarchy, "ghoststack"), seed=3)
    save_checkpoint(model, tmp_path / "ours.pt", {"iterations": 5})
    back = load_network(template.hierarchy, weights=tmp_path / "ours.pt")
    assert back.encoder_name == "ghoststack"
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back(x)["verts"], model(x)["verts"])


def test_mano_template_from_the_users_file(template, tmp_path):
    """A MANO-structured file (synthetic: the arrays of the official file, here with a manifold 778-vertex hand as
    its template) gives a hierarchy of MANO's sizes; a missing file names what to put where."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from synthetic_models import build_arrays

    from inference_server.protocol import RpcError

    arrays = build_arrays("mano")
    arrays["v_template"] = template.vertices.astype(np.float64)
    arrays["f"] = template.faces.astype(np.uint32)
    (tmp_path / "mano").mkdir()
    np.savez(tmp_path / "mano" / "MANO_RIGHT.npz", **arrays)
    t = mano_template(tmp_path)
    assert t.name == "mano" and t.hierarchy.sizes == [778, 389, 195, 98, 49]
    (tmp_path / "empty").mkdir()
    with pytest.raises(RpcError, match="MANO"):
        mano_template(tmp_path / "empty")
