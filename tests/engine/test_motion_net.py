"""The motion network (inference_server/motion_net.py), its training script (motion_train.py), ONNX export and the
inference adapter (motion_infer.py), on small synthetic windows (motion_data.synthetic_pack: no CMU packs needed).
torch and onnxruntime on CPU; the tests that pose Anny skip without its cache. About a minute in all on 2 cores."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_server import motion_data as md
from inference_server import motion_data_camera as cams
from inference_server import motion_infer as mi
from inference_server import motion_net as mn
from inference_server import motion_train as mt
from inference_server.anny_skeleton import anny_available

ROOT = Path(__file__).resolve().parents[2]
needs_anny = pytest.mark.skipif(not anny_available(), reason="the anny package or its cache is not available")


def random_inputs(n: int, t: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(n, t, 33, 3, generator=g) - 0.5
    kp[..., 2] = (kp[..., 2] > -0.3).float()
    box = torch.stack([torch.rand(n, t, generator=g) * 0.4 - 0.2, torch.rand(n, t, generator=g) * 0.4 - 0.2,
                       0.2 + 0.6 * torch.rand(n, t, generator=g)], dim=-1)
    angvel = 0.3 * torch.randn(n, t, 3, generator=g)
    mask = (torch.rand(n, t, generator=g) > 0.1).float()
    intr = torch.cat([0.6 + torch.rand(n, t, 1, generator=g), torch.zeros(n, t, 2)], dim=-1)
    return kp, box, angvel, mask, intr


@pytest.fixture(scope="module")
def skel():
    if not anny_available():
        pytest.skip("the anny package or its cache is not available")
    from inference_server.anny_skeleton import load_skeleton

    return load_skeleton()


@pytest.fixture(scope="module")
def windows(skel):
    prep = md.synthetic_pack(skel, n_clips=3, n_frames=100, seed=2)
    body = md.AnnyBody.of(skel)
    return prep, body, list(md.iter_windows(prep, body, seed=5, count=4))


# ---------------------------------------------------------------------------------------------------------------
# The network


def test_forward_shapes_and_finite_outputs():
    torch.manual_seed(0)
    net = mn.MotionNet(mn.NetConfig()).eval()
    n_params = mn.count_parameters(net)
    assert 1_000_000 < n_params < 3_000_000, n_params
    with torch.no_grad():
        out = net(*random_inputs(2, 23))
    B = net.config.n_bones
    shapes = {"pose_rotmat": (2, 23, B - 1, 3, 3), "root_cam_rotmat": (2, 23, 3, 3), "root_world_rotmat": (2, 23, 3, 3),
              "root_vel": (2, 23, 3), "root_cam_pos": (2, 23, 3), "cam": (2, 23, 3), "contact_logit": (2, 23, 4),
              "contact": (2, 23, 4), "kp3d": (2, 23, 33, 3)}
    state = out.pop("state")
    assert [tuple(h.shape) for h in state] == list(net.state_shapes(2))
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    for k, v in out.items():
        assert torch.isfinite(v).all(), k
    assert (out["root_cam_pos"][..., 2] > 0).all()                       # depth from the box: in front
    assert ((out["contact"] >= 0) & (out["contact"] <= 1)).all()
    # untrained, the rotation heads start near the identity
    assert (out["pose_rotmat"] - torch.eye(3)).abs().max() < 0.5


def test_the_network_is_causal():
    """Online: a frame's outputs depend on earlier frames only."""
    net = mn.MotionNet(mn.NetConfig.tiny()).eval()
    a = random_inputs(1, 30, seed=1)
    b = tuple(x.clone() for x in a)
    for x in b:
        x[:, 20:] = torch.rand_like(x[:, 20:])
    with torch.no_grad():
        oa, ob = net(*a), net(*b)
    for k in set(oa) - {"state"}:
        torch.testing.assert_close(oa[k][:, :20], ob[k][:, :20])
        assert not torch.allclose(oa[k][:, 20:], ob[k][:, 20:]), k


def test_6d_to_matrix_gives_rotations():
    x = torch.randn(1000, 6, dtype=torch.float64) * torch.tensor([1, 1, 1, 3, 3, 3], dtype=torch.float64)
    R = mn.rot6d_to_matrix(x)
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(1000, dtype=torch.float64), atol=1e-10, rtol=0)
    # its first column is a₁'s direction, and a rotation survives the round trip through 6D
    torch.testing.assert_close(R[..., 0], x[:, :3] / x[:, :3].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(mn.rot6d_to_matrix(mn.matrix_to_rot6d(R)), R)
    # Rodrigues agrees with rigs.rotations
    from rigs.rotations import aa_to_matrix

    aa = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_allclose(mn.aa_to_matrix(torch.from_numpy(aa)).numpy(), aa_to_matrix(aa), atol=1e-12)


def test_root_camera_position_inverts_the_projection():
    """The root placed by (d, δ) projects where the box centre plus d puts it, at depth f̂/b_s · S."""
    cam = torch.tensor([[0.1, -0.2, 0.3]])
    box = torch.tensor([[0.05, -0.1, 0.4]])
    size = (1920, 1080)
    K = cams.intrinsics(60.0, size)
    K[0, 2] += 30.0                                                      # an off-centre principal point
    intr = torch.tensor(mn.intrinsics_features(K, size)[None], dtype=torch.float32)
    p = mn.root_camera_position(cam, box, intr, 2.0)[0].numpy().astype(np.float64)
    L = 1920.0
    u = p[:2] / p[2] * K[0, 0] + K[:2, 2]
    centre = np.array([0.05 * L + 960, -0.1 * L + 540])
    np.testing.assert_allclose(u, centre + 0.4 * L * np.array([0.1, -0.2]), atol=1e-2)
    np.testing.assert_allclose(p[2], K[0, 0] / L / 0.4 * 2.0 * np.exp(0.3), rtol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_onnx_export_matches_torch_on_two_lengths(tmp_path):
    import onnxruntime

    torch.manual_seed(3)
    net = mn.MotionNet(mn.NetConfig()).eval()
    path = tmp_path / "m.onnx"
    mn.export_onnx(net, path, {"reel2rig_motion": json.dumps({"x": 1})})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(mn.ONNX_INPUTS + mn.STATE_INPUTS)
    assert (mi.STATE_INPUTS, mi.STATE_OUTPUTS) == (mn.STATE_INPUTS, mn.STATE_OUTPUTS)
    assert json.loads(session.get_modelmeta().custom_metadata_map["reel2rig_motion"]) == {"x": 1}
    g = torch.Generator().manual_seed(5)
    for n, t in ((1, 37), (2, 90)):                                       # neither is the traced length (16)
        args = random_inputs(n, t + 1, seed=t) + tuple(torch.randn(s, generator=g) for s in net.state_shapes(n))
        got = session.run(list(mn.ONNX_OUTPUTS + mn.STATE_OUTPUTS),
                          {k: a.numpy() for k, a in zip(mn.ONNX_INPUTS + mn.STATE_INPUTS, args)})
        with torch.no_grad():
            ref = mn.MotionNetExport(net)(*args)
        for name, g_, r in zip(mn.ONNX_OUTPUTS + mn.STATE_OUTPUTS, got, ref):
            assert g_.shape == tuple(r.shape), name
            np.testing.assert_allclose(g_, r.numpy(), atol=1e-4 * max(1.0, float(r.abs().max())), err_msg=name)


def test_running_in_pieces_with_the_carried_state_is_running_at_once():
    """The streaming face: a sequence run in two pieces (the second led by the first's last frame, from the first's
    states) gives the outputs of one run over the whole sequence (first frame leading itself, zero states)."""
    torch.manual_seed(4)
    net = mn.MotionNet(mn.NetConfig.tiny()).eval()
    x = random_inputs(2, 40, seed=9)
    with torch.no_grad():
        whole = net(*x)
        lead = tuple(torch.cat([a[:, :1], a], dim=1) for a in x)
        led = net(*lead, lead=True)
        first = net(*(a[:, :25] for a in x))
        second = net(*(a[:, 24:] for a in x), state=first["state"], lead=True)
    for k in ("pose_rotmat", "root_vel", "root_cam_pos", "contact", "kp3d"):
        torch.testing.assert_close(led[k], whole[k], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.cat([first[k], second[k]], dim=1), whole[k], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Geometry on Anny


@needs_anny
def test_body_fk_poses_the_windows_markers(skel, windows):
    """Torch FK of the body bones (root in camera axes) puts Anny's markers where the window has them."""
    from rigs.rotations import aa_to_matrix

    _, body, ws = windows
    fk = mn.BodyFK.of(skel, body.bones)
    for w in ws[:2]:
        Gc = torch.tensor(aa_to_matrix(w["root_orient_cam_aa"].astype(np.float64)))
        L = torch.tensor(aa_to_matrix(w["local_aa"][:, 1:].astype(np.float64)))
        p = torch.tensor(np.einsum("tij,tj->ti", w["R_world2cam"], w["root_pos_world"]) + w["t_world2cam"])
        markers, heads = fk.double()(Gc, L, p)
        present = w["joints_present"]
        np.testing.assert_allclose(markers.numpy()[:, present], w["joints_cam"][:, present], atol=2e-5)
        assert np.all(markers.numpy()[:, ~present] == 0) and heads.shape == (len(p), len(body.bones), 3)
        np.testing.assert_allclose(heads.numpy()[:, 0], p.numpy(), atol=1e-12)


@needs_anny
def test_training_arrays_make_a_yaw_canonical_world(windows):
    from rigs.rotations import aa_to_matrix

    _, _, ws = windows
    for w in ws:
        a = mt.training_arrays(w)
        G = aa_to_matrix(a["root_world_aa"].astype(np.float64))
        C = cams.level_yaw(w["R_world2cam"][0])
        R0 = w["R_world2cam"][0] @ C.T                                    # frame 0's camera in that world
        assert abs(R0[2, 0]) < 1e-6 and R0[2, 1] > 0                      # looks along +Y
        # the camera-space rotation is unchanged: R_w2c Cᵀ · C G = R_w2c G
        np.testing.assert_allclose(w["R_world2cam"] @ C.T @ G, aa_to_matrix(w["root_orient_cam_aa"].astype(
            np.float64)), atol=1e-4)
        hips = w["joints_cam"][:, 23:25].mean(axis=1)                     # the hip markers sit around the root
        assert np.linalg.norm(a["root_cam_pos"] - hips, axis=-1).max() < 0.2
        assert a["cam_intrinsics"].shape == (len(w["kp2d"]), 3) and np.all(a["cam_intrinsics"][:, 1:] == 0)


# ---------------------------------------------------------------------------------------------------------------
# Training (the smoke run) and the adapter


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, skel):
    out = tmp_path_factory.mktemp("motion_smoke")
    proc = subprocess.run([sys.executable, "-m", "inference_server.motion_train", "--out", str(out), "--smoke",
                           "--synthetic", "--seed", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_smoke_training_writes_its_files_and_overfits(smoke_run):
    out, log = smoke_run
    assert {p.name for p in out.iterdir()} >= {"motion_net.pt", "motion_net.onnx", "curves.json", "recipe.json"}
    curves = json.loads((out / "curves.json").read_text())
    assert len(curves) >= 2 and curves[0]["iteration"] == 0
    first, last = curves[0]["train"], curves[-1]["train"]       # the fixed pool it trains on
    assert last["loss"] < 0.7 * first["loss"], (first["loss"], last["loss"])
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "contact_acc", "root_vel_err_mps"):
        assert np.isfinite(curves[-1]["held_out"][key]), key
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["seed"] == 1 and "--smoke" in recipe["command"] and recipe["versions"]["torch"] == torch.__version__
    assert recipe["data"]["source"] == "synthetic" and recipe["iterations"] == mt.RunSettings.smoke().iterations
    ckpt = torch.load(out / "motion_net.pt", weights_only=True)
    net = mn.MotionNet(mn.NetConfig.from_json(ckpt["config"]))
    net.load_state_dict(ckpt["state_dict"])
    assert ckpt["data"]["bone_names"][0] == "root"


def test_the_exported_file_scores_as_the_network_it_came_from(smoke_run, skel):
    """motion_train.evaluate through ONNX Runtime (OnnxNet, as the engine runs the file) gives the figures the torch
    network gives on the same held-out windows: so `--evaluate` measures the shipped file itself."""
    out, _ = smoke_run
    ckpt = torch.load(out / "motion_net.pt", weights_only=True)
    net = mn.MotionNet(mn.NetConfig.from_json(ckpt["config"]))
    net.load_state_dict(ckpt["state_dict"])
    prep = md.synthetic_pack(skel, n_clips=4, n_frames=120, held_out=(3,))
    body = md.AnnyBody.of(skel)
    held = mt.held_out_set(skel, prep, body, seed=1, limit=3)
    fk = mn.BodyFK.of(skel, body.bones)
    ref = mt.evaluate(net, fk, held, "cpu")
    got = mt.evaluate(mt.OnnxNet(out / "motion_net.onnx", skel=skel), fk, held, "cpu")
    assert ref["frames"] == got["frames"] > 0
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "root_vel_err_mps", "world_orient_err_deg", "root_cam_err_mm"):
        assert got[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-3), key
    assert abs(got["contact_acc"] - ref["contact_acc"]) < 0.01
    assert got["contact"] == pytest.approx(ref["contact"], rel=1e-3, abs=1e-4)


def _as_detections(w: dict) -> np.ndarray:
    """A window's observation back in pixels, NaN where unseen: what the detector stage hands over."""
    kp, _ = cams.denormalize_keypoints(w["kp2d"][..., :2].astype(np.float64), w["box"].astype(np.float64),
                                       tuple(int(s) for s in w["image_size"]))
    pose = np.concatenate([kp, w["kp2d"][..., 2:]], axis=-1)
    pose[w["kp2d"][..., 2] == 0] = np.nan
    return pose


def test_the_adapter_returns_the_documented_shapes(smoke_run, skel, windows):
    out, _ = smoke_run
    model = mi.MotionModel.load(out, skel=skel)                          # the run's folder
    assert model.providers[-1] == "CPUExecutionProvider"
    _, _, ws = windows
    w = ws[0]
    T, J = len(w["kp2d"]), len(skel.names)
    R_rel = w["R_world2cam"] @ w["R_world2cam"][0].T
    for R, fps, stride in ((R_rel, 30.0, 1), (None, 60.0, 2)):
        r = model.predict(_as_detections(w), tuple(w["image_size"]), w["K"], R, np.arange(T) / fps)
        shapes = {"local_rotations_aa": (T, J, 3), "root_position_world": (T, 3), "root_orientation_world_aa": (T, 3),
                  "root_position_camera": (T, 3), "R_world2cam": (T, 3, 3), "t_world2cam": (T, 3),
                  "foot_contact": (T, 4), "confidence": (T,)}
        for key, shape in shapes.items():
            v = getattr(r, key)
            assert v.shape == shape and v.dtype == np.float32 and np.all(np.isfinite(v)), key
        assert r.frame_stride == stride and r.bone_names == tuple(skel.names)
        body = [skel.index(b) for b in model.bone_names]
        rest = np.setdiff1d(np.arange(J), body)
        assert np.all(r.local_rotations_aa[:, rest] == 0)
        np.testing.assert_allclose(r.root_position_world[0, :2], 0.0, atol=1e-6)
        # the camera is a rotation and puts the root where the network placed it in the picture
        np.testing.assert_allclose(r.R_world2cam @ np.swapaxes(r.R_world2cam, -1, -2), np.broadcast_to(
            np.eye(3), (T, 3, 3)), atol=1e-5)
        if R is not None:
            p = np.einsum("tij,tj->ti", r.R_world2cam, r.root_position_world) + r.t_world2cam
            np.testing.assert_allclose(p, r.root_position_camera, atol=1e-3)
            np.testing.assert_allclose(r.R_world2cam @ r.R_world2cam[0].T, R_rel, atol=1e-5)
        else:
            centres = -np.einsum("tji,tj->ti", r.R_world2cam, r.t_world2cam)
            np.testing.assert_allclose(centres, centres[:1].repeat(T, 0), atol=1e-4)
        assert np.all((r.confidence >= 0) & (r.confidence <= 1)) and r.confidence.max() > 0.5


def _long_clip(ws, fps_scale: int = 1):
    """Three windows one after another (camera rotations chained), with undetected stretches at the start and in
    the middle: the detections, the camera's rotations from frame 0 and the image size / K of the first."""
    poses, Rs = [], []
    R_last = np.eye(3)
    for w in ws[:3]:
        R_rel = w["R_world2cam"] @ w["R_world2cam"][0].T
        poses.append(_as_detections(w))
        Rs.append(R_rel @ R_last)
        R_last = Rs[-1][-1]
    pose = np.concatenate(poses)
    pose[:6] = np.nan
    pose[100:111] = np.nan
    return pose, np.concatenate(Rs), tuple(ws[0]["image_size"]), ws[0]["K"]


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_a_long_clip_run_a_chunk_at_a_time_gives_the_same_motion(smoke_run, skel, windows, fps, monkeypatch,
                                                                   tmp_path):
    """The network's GRU states carried from chunk to chunk, the boxes and the camera's angular velocity carried
    over, the trajectory integrated a window at a time: the same result as one chunk for the whole clip — and, with
    a scratch folder open, every per-frame array of the result is on disk."""
    from inference_server import scratch

    out, _ = smoke_run
    _, _, ws = windows
    pose, R, size, K = _long_clip(ws)
    ts = np.arange(len(pose)) / fps
    model = mi.MotionModel.load(out, skel=skel)
    whole = model.predict(pose, size, K, R, ts)
    model.chunk = 37
    monkeypatch.setattr(scratch, "WINDOW", 50)
    parts = model.predict(pose, size, K, R, ts)
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "0")
    with scratch.opened(tmp_path):
        stored = model.predict(pose, size, K, None, ts)
        on_disk = {f.name: scratch.on_disk(getattr(stored, f.name)) for f in dataclasses.fields(stored)
                   if isinstance(getattr(stored, f.name), np.ndarray)}
        still = {f.name: np.array(getattr(stored, f.name)) for f in dataclasses.fields(stored)
                 if isinstance(getattr(stored, f.name), np.ndarray)}
    model.chunk = mi.CHUNK
    still_whole = model.predict(pose, size, K, None, ts)
    for f in dataclasses.fields(whole):
        a, b = getattr(whole, f.name), getattr(parts, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(b, a, atol=2e-4, err_msg=f.name)
            np.testing.assert_allclose(still[f.name], getattr(still_whole, f.name), atol=2e-4, err_msg=f.name)
        else:
            assert a == b, f.name
    assert all(on_disk.values()), on_disk
    assert whole.frame_stride == (2 if fps == 60.0 else 1)
    assert np.all(whole.confidence[:6] == 0) and np.all(whole.confidence[100:111] == 0)


def test_an_earlier_export_without_the_states_is_refused(tmp_path):
    """A network exported before the streaming states: a clear error with the command that exports it again."""
    import onnx

    class Old(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mn.MotionNet(mn.NetConfig.tiny()).eval()

        def forward(self, kp2d, box, cam_angvel, mask, cam_intrinsics):
            return self.net(kp2d, box, cam_angvel, mask, cam_intrinsics)["contact"]

    path = tmp_path / "old.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Old().eval(), random_inputs(1, 8), str(path), dynamo=False, opset_version=17,
                          input_names=list(mn.ONNX_INPUTS), output_names=["contact"])
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = mi.METADATA_KEY, json.dumps({"bone_names": ["root"], "joints_present": [True] * 33,
                                                          "fps": 30.0})
    onnx.save(proto, str(path))
    with pytest.raises(mi.MotionModelError, match=r"old\.onnx is an earlier export") as info:
        mi.MotionModel.load(path)
    assert "motion_train --export" in info.value.fix


def test_a_checkpoint_exports_to_the_network_the_run_wrote(smoke_run, skel, windows, tmp_path):
    """`motion_train --export RUN --out DIR`: the run's .pt becomes an ONNX file that predicts what the run's own
    export does."""
    out, _ = smoke_run
    proc = subprocess.run([sys.executable, "-m", "inference_server.motion_train", "--export", str(out), "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "motion_net.onnx").is_file() and not list(tmp_path.glob("*.tmp"))
    _, _, ws = windows
    w = ws[0]
    args = (_as_detections(w), tuple(w["image_size"]), w["K"], None, np.arange(len(w["kp2d"])) / 30.0)
    a = mi.MotionModel.load(out, skel=skel).predict(*args)
    b = mi.MotionModel.load(tmp_path, skel=skel)
    assert b.meta["held_out"] is not None and b.meta["bone_names"][0] == "root"
    np.testing.assert_allclose(b.predict(*args).local_rotations_aa, a.local_rotations_aa, atol=1e-5)
    # --half: float16 weights, half the file, the same motion to a fraction of a degree
    proc = subprocess.run([sys.executable, "-m", "inference_server.motion_train", "--export", str(out), "--out",
                           str(tmp_path / "half"), "--half"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    half = tmp_path / "half" / "motion_net.onnx"
    assert half.stat().st_size < 0.7 * (tmp_path / "motion_net.onnx").stat().st_size
    c = mi.MotionModel.load(half, skel=skel).predict(*args)
    np.testing.assert_allclose(c.local_rotations_aa, a.local_rotations_aa, atol=0.02)
    assert np.abs(c.local_rotations_aa - a.local_rotations_aa).max() > 0      # it is another file


def test_a_missing_or_broken_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "motion_net.onnx"
    with pytest.raises(mi.MotionModelError, match=r"nowhere/motion_net\.onnx.*motion_train --out"):
        mi.MotionModel.load(missing)
    with pytest.raises(mi.MotionModelError, match=r"motion_net\.onnx"):
        mi.MotionModel.load(tmp_path)                                    # a folder without the network
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a network")
    with pytest.raises(mi.MotionModelError, match=r"cannot read the motion network .*broken\.onnx") as info:
        mi.MotionModel.load(broken)
    assert info.value.code == mi.MODEL_MISSING and "motion_train" in (info.value.fix or "")
    with pytest.raises(mi.MotionModelError, match=r"checkpoint.*motion_net\.onnx"):
        mi.MotionModel.load(tmp_path / "motion_net.pt")


class OracleModel(mi.MotionModel):
    """The adapter around a 'network' that answers with a window's own targets."""

    def __init__(self, skel, w: dict, body_bones: tuple[str, ...]):
        present = [bool(p) for p in w["joints_present"]]
        super().__init__(Path("oracle.onnx"), None, {"bone_names": list(body_bones), "joints_present": present,
                                                      "fps": 30.0, "root_rest_R": np.eye(3).tolist()}, skel)
        from rigs.rotations import aa_to_matrix

        a = mt.training_arrays(w)
        self.answer = {
            "pose_rotmat": aa_to_matrix(w["local_aa"][:, 1:].astype(np.float64))[None],
            "root_cam_rotmat": aa_to_matrix(w["root_orient_cam_aa"].astype(np.float64))[None],
            "root_world_rotmat": aa_to_matrix(a["root_world_aa"].astype(np.float64))[None],
            "root_vel": w["root_vel_heading"][None], "root_cam_pos": a["root_cam_pos"][None],
            "contact": np.zeros((1,) + w["contact"].shape), "kp3d": np.zeros((1,) + w["joints_cam"].shape)}

    def zero_state(self, n):
        return (np.zeros(1),)

    def run(self, kp2d, box, cam_angvel, mask, cam_intrinsics, state=None):
        """The answer's next frames (the state counts the frames given so far)."""
        done = int(state[0][0])
        t = kp2d.shape[1] - 1                                            # less the lead frame
        return {k: v[:, done:done + t] for k, v in self.answer.items()}, (np.array([done + t]),)


@needs_anny
def test_the_adapter_recovers_the_world_from_exact_network_outputs(skel, windows):
    """With the window's own targets as the network's answer, the adapter's camera, world rotation and path are
    the window's, in the yaw-canonical world (frame 0's camera looking along +Y), the root starting over the
    origin."""
    from rigs.rotations import aa_to_matrix

    prep, body, ws = windows
    w = ws[1]
    T = len(w["kp2d"])
    model = OracleModel(skel, w, prep.bone_names)
    R_rel = w["R_world2cam"] @ w["R_world2cam"][0].T
    r = model.predict(_as_detections(w), tuple(w["image_size"]), w["K"], R_rel, np.arange(T) / prep.fps)
    C = cams.level_yaw(w["R_world2cam"][0])
    np.testing.assert_allclose(r.R_world2cam, w["R_world2cam"] @ C.T, atol=1e-4)
    np.testing.assert_allclose(aa_to_matrix(r.root_orientation_world_aa.astype(np.float64)),
                               C @ aa_to_matrix(w["root_orient_world_aa"].astype(np.float64)), atol=1e-4)
    expect = (w["root_pos_world"] - w["root_pos_world"][0] * [1, 1, 0]) @ C.T
    err = np.linalg.norm(r.root_position_world - expect, axis=-1)
    assert err.max() < 0.05, err.max()                                   # the velocity integrated: a few cm
    # body bones: the window's; the root's local rotation: its world rotation (Anny's root rests in world axes)
    bones = [skel.index(b) for b in prep.bone_names]
    np.testing.assert_allclose(aa_to_matrix(r.local_rotations_aa[:, bones[1:]].astype(np.float64)),
                               aa_to_matrix(w["local_aa"][:, 1:].astype(np.float64)), atol=1e-4)


@needs_anny
def test_contact_refinement_keeps_a_planted_foot_still(skel, windows):
    """A root velocity that is wrong by a constant drift: where the network says a foot is planted, the refined
    path moves so that the planted sole point stays where it is."""
    from rigs.fk import forward_kinematics

    from inference_server import motion_data_mocap as mocap

    prep, body, _ = windows
    aa, root = prep.clip(0)
    T = 60
    aa, root = aa[:T].astype(np.float64), root[:T].astype(np.float64)
    W = forward_kinematics(skel.rest, skel.parents, mocap.expand_body(aa, body.bones, len(skel.names)),
                           np.zeros((T, 3)))
    soles = mocap.anny_sole_points(skel, W)                                            # (T, 4, 3) root at 0
    t = np.arange(T) / prep.fps
    v_true = mi._rate(root, t)
    contact = np.zeros((T, 4))
    contact[:, 0] = 0.9                                                                # heel.L planted throughout
    path, _ = mi.refine_trajectory(v_true + [0.4, -0.3, 0.0], soles, contact, t)
    heel = path + soles[:, 0]
    drift = np.linalg.norm(heel[:, :2] - heel[0, :2], axis=-1)
    assert drift.max() < 0.01, drift.max()                                             # the heel stays put
    np.testing.assert_allclose(heel[:, 2], 0.0, atol=1e-9)                             # ... on the floor
