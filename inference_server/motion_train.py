"""Training of the motion network (:mod:`.motion_net`) on windows from :mod:`.motion_data`. torch, CPU or GPU
(``--device``); no bpy. ::

    python -m inference_server.motion_train --out DIR [--minutes M] [--smoke] [--mocap DIR] [--seed S]
                                            [--init RUN/motion_net.pt]
    python -m inference_server.motion_train --export RUN [--out DIR] [--half]   # the .pt → the engine's ONNX

Writes into DIR: ``motion_net.pt`` (weights + config, ``torch.load(weights_only=True)``), ``motion_net.onnx`` (the
export :mod:`.motion_infer` runs; the config and data facts in its metadata), ``curves.json`` (train and held-out
losses and metrics per evaluation) and ``recipe.json`` (the command, seed, data sizes, package versions, times).

Data
----
Training windows come from the train split of both CMU packs (``--mocap``, default ../shared/mocap), or from a
made-up pack (``--synthetic``; the smoke run's default where the packs are absent). A window takes ~10 ms to make on
one core (retarget cached; FK, camera, projection, corruption), about as long as the network's step takes per
window, so a run keeps a **pool** of ``--pool`` windows in memory, made once at the start, and replaces
``--refresh`` of them with new random windows after every step (each window is then seen about batch/refresh times
before it is replaced). Held-out figures come from every window of the held-out split (motion_data.window_starts,
no speed/mirror/heading augmentation; cameras and corruption drawn from a fixed seed).

World targets are made yaw-canonical per window (motion_data_camera.level_yaw: the first frame's camera looks along
+Y), the frame the network's trajectory decoder predicts in.

Losses (WHAM §3.4; each a mean over real frames, ``valid``; weights in :class:`LossWeights`)
----------------------------------------------------------------------------------------------
* ``rot``: ‖R̂ − R‖²_F of the body bones' local rotations; ``root_cam``: the same for the root in camera axes;
* ``kp3d``: the encoder's root-relative 3D markers; ``joints3d``: Anny's markers posed by FK (:class:`BodyFK`) from
  the predicted rotations, centred on the mid-hip, against the window's (L2 distance, m);
* ``joints2d``: the posed markers placed at the predicted root position and projected through the window's K,
  against the exact projections, in box sides (L2, capped at 1);
* ``depth``: |log ẑ − log z| of the root; ``contact``: BCE; ``vel``: ‖v̂ − v‖ of the heading-frame root velocity
  (m/s); ``world``: ‖Ĝ − G‖²_F of the root's yaw-canonical world rotation.

Optimiser: Adam (``--lr``), linear warm-up then cosine decay over the run (by elapsed time with ``--minutes``, so a
slower machine decays on the same schedule), gradient norm clipped to ``--clip``. ``--init`` starts from a previous
run's weights (fine-tuning: the schedule, warm-up included, starts again; the recipe names the checkpoint).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

# Keys a training pool keeps (everything else of a window is dropped), and the ones made here.
POOL_KEYS = ("kp2d", "box", "cam_angvel", "mask", "valid", "local_aa", "root_orient_cam_aa", "root_vel_heading",
             "contact", "joints_cam", "kp2d_clean_px", "K", "image_size")
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class LossWeights:
    rot: float = 1.0
    root_cam: float = 1.0
    kp3d: float = 2.0
    joints3d: float = 4.0
    joints2d: float = 2.0
    depth: float = 1.0
    contact: float = 1.0
    vel: float = 2.0
    world: float = 1.0


# ---------------------------------------------------------------------------------------------------------------
# Data


def training_arrays(window: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A :func:`.motion_data.make_window` window → what training keeps, plus ``cam_intrinsics`` (T, 3),
    ``root_world_aa`` (T, 3) the yaw-canonical world rotation and ``root_cam_pos`` (T, 3) the root in camera axes."""
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    from . import motion_data_camera as cams
    from .motion_data_camera import intrinsics_features

    out = {k: np.asarray(window[k]) for k in POOL_KEYS}
    T = len(window["kp2d"])
    C = cams.level_yaw(window["R_world2cam"][0])
    G = C @ aa_to_matrix(window["root_orient_world_aa"].astype(np.float64))
    out["root_world_aa"] = matrix_to_aa(G).astype(np.float32)
    out["root_cam_pos"] = (np.einsum("tij,tj->ti", window["R_world2cam"], window["root_pos_world"])
                           + window["t_world2cam"]).astype(np.float32)
    out["cam_intrinsics"] = np.tile(intrinsics_features(window["K"], window["image_size"]), (T, 1)).astype(
        np.float32)
    return out


def stack(items: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


class WindowPool:
    """A fixed-size pool of training windows, refreshed a few at a time from an endless stream."""

    def __init__(self, stream: Iterator[dict[str, np.ndarray]], size: int, rng: np.random.Generator):
        self.stream = stream
        self.rng = rng
        self.data = stack([training_arrays(next(stream)) for _ in range(size)])
        self.size = size
        self.made = size

    def batch(self, n: int) -> dict[str, np.ndarray]:
        idx = self.rng.choice(self.size, size=min(n, self.size), replace=False)
        return {k: v[idx] for k, v in self.data.items()}

    def refresh(self, n: int) -> None:
        for i in self.rng.choice(self.size, size=min(n, self.size), replace=False):
            w = training_arrays(next(self.stream))
            for k, v in w.items():
                self.data[k][i] = v
            self.made += 1


def to_torch(batch: dict[str, np.ndarray], device) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for k, v in batch.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        out[k] = t.to(device=device, dtype=torch.float32) if v.dtype.kind in "fb" or k == "image_size" else t
    return out


# ---------------------------------------------------------------------------------------------------------------
# Losses and metrics


def _wmean(x, w):
    """Weighted mean of x (any shape) with weights w broadcast to it."""
    import torch

    w = torch.broadcast_to(w, x.shape)
    return (x * w).sum() / torch.clamp(w.sum(), min=1.0)


def mid_hip(points):
    return 0.5 * (points[..., 23, :] + points[..., 24, :])


def compute_losses(out: dict[str, Any], b: dict[str, Any], fk, weights: LossWeights = LossWeights()
                   ) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """(total loss tensor, each term as a float, a few intermediate tensors for metrics) for a batch ``b`` (torch
    tensors of :func:`training_arrays`) and the network's output ``out``."""
    import torch
    import torch.nn.functional as F

    from .motion_net import aa_to_matrix, project

    valid = b["valid"]                                                          # (N, T)
    R_gt = aa_to_matrix(b["local_aa"][:, :, 1:])                               # (N, T, B−1, 3, 3)
    Rc_gt = aa_to_matrix(b["root_orient_cam_aa"])
    Gw_gt = aa_to_matrix(b["root_world_aa"])
    terms: dict[str, Any] = {}
    terms["rot"] = _wmean(((out["pose_rotmat"] - R_gt) ** 2).sum(dim=(-1, -2)), valid[..., None])
    terms["root_cam"] = _wmean(((out["root_cam_rotmat"] - Rc_gt) ** 2).sum(dim=(-1, -2)), valid)
    terms["world"] = _wmean(((out["root_world_rotmat"] - Gw_gt) ** 2).sum(dim=(-1, -2)), valid)

    present = b["joints_present"] if "joints_present" in b else None
    if present is None:
        present = (b["joints_cam"].abs().sum(dim=(1, 3)) > 0).float()               # (N, 33)
    jw = valid[..., None] * present[:, None, :]                                      # (N, T, 33)
    j_gt = b["joints_cam"]
    j_gt_rel = j_gt - mid_hip(j_gt)[..., None, :]
    terms["kp3d"] = _wmean(torch.linalg.vector_norm(out["kp3d"] - j_gt_rel, dim=-1), jw)
    zero = torch.zeros_like(out["root_cam_pos"])
    markers, _ = fk(out["root_cam_rotmat"], out["pose_rotmat"], zero)                # (N, T, 33, 3), root at 0
    m_rel = markers - mid_hip(markers)[..., None, :]
    terms["joints3d"] = _wmean(torch.linalg.vector_norm(m_rel - j_gt_rel, dim=-1), jw)
    uv = project(markers + out["root_cam_pos"][..., None, :], b["K"])
    side = torch.clamp(b["box"][..., 2] * b["image_size"].max(dim=-1).values[:, None], min=1.0)   # (N, T) px
    err2d = torch.linalg.vector_norm(uv - b["kp2d_clean_px"], dim=-1) / side[..., None]
    terms["joints2d"] = _wmean(torch.clamp(err2d, max=1.0), jw * (j_gt[..., 2] > 0.2).float())
    z_gt = torch.clamp(b["root_cam_pos"][..., 2], min=0.1)
    terms["depth"] = _wmean((torch.log(out["root_cam_pos"][..., 2]) - torch.log(z_gt)).abs(), valid)
    terms["contact"] = _wmean(F.binary_cross_entropy_with_logits(out["contact_logit"], b["contact"],
                                                                 reduction="none"), valid[..., None])
    terms["vel"] = _wmean(torch.linalg.vector_norm(out["root_vel"] - b["root_vel_heading"], dim=-1), valid)
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}, {"markers_rel": m_rel, "gt_rel": j_gt_rel,
                                                                      "weights": jw}


def procrustes_aligned(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(F, P, 3), (F, P, 3) → pred aligned to gt per frame by the best similarity transform (rotation, scale,
    translation; Umeyama)."""
    mp, mg = pred.mean(axis=1, keepdims=True), gt.mean(axis=1, keepdims=True)
    X, Y = pred - mp, gt - mg
    U, S, Vt = np.linalg.svd(np.einsum("fpi,fpj->fij", X, Y))
    d = np.sign(np.linalg.det(np.einsum("fij,fjk->fik", U, Vt)))
    D = np.ones_like(S)
    D[:, -1] = d
    R = np.einsum("fij,fj,fjk->fik", U, D, Vt)                                   # X R ≈ Y
    scale = (S * D).sum(axis=1) / np.maximum((X ** 2).sum(axis=(1, 2)), 1e-12)
    return scale[:, None, None] * np.einsum("fpi,fij->fpj", X, R) + mg


def evaluate(net, fk, data: dict[str, np.ndarray], device, weights: LossWeights = LossWeights(),
             batch: int = 32) -> dict[str, float]:
    """Losses and metrics over a set of windows (eval mode, no gradients): ``mpjpe_mm`` and ``pa_mpjpe_mm`` of
    Anny's body markers (camera axes, mid-hip centred), ``contact_acc``, ``root_vel_err_mps``,
    ``world_orient_err_deg``, ``root_depth_rel_err`` and ``root_cam_err_mm`` (the root in camera axes)."""
    import torch

    was = net.training
    net.eval()
    sums: dict[str, float] = {}
    n_windows = len(data["kp2d"])
    errs, pa_errs, c_ok, c_n, v_err, w_err, d_err, p_err, n_valid = [], [], 0.0, 0.0, [], [], [], [], 0
    with torch.no_grad():
        for a in range(0, n_windows, batch):
            b = to_torch({k: v[a:a + batch] for k, v in data.items()}, device)
            out = net(b["kp2d"], b["box"], b["cam_angvel"], b["mask"], b["cam_intrinsics"])
            total, terms, extra = compute_losses(out, b, fk, weights)
            m = len(b["kp2d"])
            for k, v in {"loss": float(total), **terms}.items():
                sums[k] = sums.get(k, 0.0) + v * m
            valid = b["valid"].cpu().numpy() > 0.5                                         # (n, T)
            present = data["joints_cam"][a:a + batch].any(axis=(1, 3)) if "joints_present" not in data else \
                data["joints_present"][a:a + batch]
            pred = extra["markers_rel"].cpu().numpy()
            gt = extra["gt_rel"].cpu().numpy()
            for i in range(m):
                p, g = pred[i][valid[i]][:, present[i]], gt[i][valid[i]][:, present[i]]
                errs.append(np.linalg.norm(p - g, axis=-1).ravel())
                pa_errs.append(np.linalg.norm(procrustes_aligned(p, g) - g, axis=-1).ravel())
            prob = out["contact"].cpu().numpy()
            c_gt = data["contact"][a:a + batch]
            c_ok += float(((prob > 0.5) == (c_gt > 0.5))[valid].sum())
            c_n += float(valid.sum() * 4)
            v_err.append(np.linalg.norm(out["root_vel"].cpu().numpy() - data["root_vel_heading"][a:a + batch],
                                        axis=-1)[valid])
            from rigs.rotations import aa_to_matrix as aa2m

            Gp = out["root_world_rotmat"].cpu().numpy().astype(np.float64)
            Gg = aa2m(data["root_world_aa"][a:a + batch].astype(np.float64))
            cos = (np.einsum("ntij,ntij->nt", Gp, Gg) - 1.0) / 2.0
            w_err.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))[valid])
            pc, gc = out["root_cam_pos"].cpu().numpy(), data["root_cam_pos"][a:a + batch]
            d_err.append((np.abs(pc[..., 2] - gc[..., 2]) / np.maximum(gc[..., 2], 0.1))[valid])
            p_err.append(np.linalg.norm(pc - gc, axis=-1)[valid])
            n_valid += int(valid.sum())
    net.train(was)
    res = {k: v / max(n_windows, 1) for k, v in sums.items()}
    res.update(mpjpe_mm=1000 * float(np.mean(np.concatenate(errs))),
               pa_mpjpe_mm=1000 * float(np.mean(np.concatenate(pa_errs))),
               contact_acc=c_ok / max(c_n, 1.0), root_vel_err_mps=float(np.mean(np.concatenate(v_err))),
               world_orient_err_deg=float(np.mean(np.concatenate(w_err))),
               root_depth_rel_err=float(np.mean(np.concatenate(d_err))),
               root_cam_err_mm=1000 * float(np.mean(np.concatenate(p_err))), windows=n_windows, frames=n_valid)
    return res


def mark_joints_present(skel, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adds ``joints_present`` (N,33): which of the 33 landmarks Anny's body carries (the losses' and metrics' mask)."""
    present = np.asarray(skel.body_marker_bone) >= 0
    data["joints_present"] = np.broadcast_to(present, (len(data["kp2d"]), 33)).copy()
    return data


def held_out_set(skel, prep, body, seed: int, limit: int | None = None, settings=None) -> dict[str, np.ndarray]:
    """Every window of the held-out split, un-augmented, stacked as :func:`training_arrays` (with
    ``joints_present``): what a run with ``seed`` evaluates on (its windows draw from ``10_000 + seed``)."""
    from . import motion_data as md

    fixed = dataclasses.replace(settings or md.WindowSettings(), augment=False)
    windows = [training_arrays(w) for w in md.iter_windows(prep, body, held_out=True, seed=10_000 + seed,
                                                           settings=fixed, count=limit)]
    return mark_joints_present(skel, stack(windows))


class OnnxNet:
    """An exported network (a ``motion_net.onnx`` run by ONNX Runtime through :class:`.motion_infer.MotionModel`,
    as the engine runs it) with :class:`.motion_net.MotionNet`'s call: so :func:`evaluate` scores the very file the
    engine ships. Each window starts from zero states with its first frame as the lead frame (a clip's start)."""

    training = False

    def __init__(self, path: Path, skel=None):
        from .motion_infer import MotionModel

        self.model = MotionModel.load(path, skel=skel)

    def eval(self) -> "OnnxNet":
        return self

    def train(self, mode: bool = True) -> "OnnxNet":
        return self

    def __call__(self, kp2d, box, cam_angvel, mask, cam_intrinsics) -> dict[str, Any]:
        import torch

        lead = [np.concatenate([x[:, :1], x], axis=1) for x in
                (t.detach().cpu().numpy().astype(np.float32) for t in (kp2d, box, cam_angvel, mask, cam_intrinsics))]
        outs, _ = self.model.run(*lead)
        out = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in outs.items()}
        p = out["contact"].clamp(1e-6, 1 - 1e-6)
        out["contact_logit"] = torch.log(p) - torch.log1p(-p)
        return out


def evaluate_onnx(path: Path, seed: int = 0, mocap_dir: str | None = None, synthetic: bool = False,
                  limit: int | None = None, log=print) -> dict[str, Any]:
    """:func:`evaluate` of an exported network on the held-out windows a run with ``seed`` scores (the CMU packs,
    or the synthetic pack), through ONNX Runtime as the engine runs it."""
    from . import motion_data as md
    from .anny_skeleton import load_skeleton
    from .motion_net import BodyFK

    skel = load_skeleton()
    prep, source = load_data(skel, mocap_dir, synthetic, smoke=False)
    body = md.AnnyBody.of(skel)
    held = held_out_set(skel, prep, body, seed, limit=limit)
    log(f"held-out: {len(held['kp2d'])} windows, {int(held['valid'].sum())} frames of {source}")
    fk = BodyFK.of(skel, body.bones)
    return evaluate(OnnxNet(path, skel=skel), fk, held, "cpu")


# ---------------------------------------------------------------------------------------------------------------
# The run


@dataclasses.dataclass(frozen=True)
class RunSettings:
    minutes: float = 40.0
    iterations: int | None = None     # a cap on the steps (the smoke run); None: until the time is up
    batch: int = 32
    pool: int = 6000
    refresh: int = 4
    lr: float = 1e-3
    lr_min_fraction: float = 0.05
    warmup: int = 300
    clip: float = 1.0
    weight_decay: float = 1e-5
    eval_every_s: float = 180.0
    eval_every_it: int | None = None
    probe: int = 128                  # fixed training windows scored at each evaluation
    threads: int = 1                  # one: a second thread stalls (3 s spikes) when another process holds a core

    @classmethod
    def smoke(cls) -> "RunSettings":
        return cls(minutes=2.0, iterations=40, batch=8, pool=12, refresh=0, lr=3e-3, warmup=0, eval_every_s=1e9,
                   eval_every_it=40, probe=12, threads=1)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("torch", "numpy", "onnx", "onnxruntime", "anny"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def load_data(skel, mocap_dir: str | None, synthetic: bool, smoke: bool):
    """(prepared pack, what it is) — both CMU packs combined (MB first), or the synthetic pack."""
    from . import motion_data as md
    from . import motion_data_mocap as mocap

    if synthetic:
        n = 6 if smoke else 40
        return md.synthetic_pack(skel, n_clips=n, n_frames=120, held_out=(n - 1,)), "synthetic"
    preps = [md.prepare_pack(md.load_pack(name, mocap_dir), skel) for name in ("mb", "daz")]
    both = md.combine(preps)
    return both, f"CMU packs {', '.join(str(mocap.pack_path(n, mocap_dir)) for n in ('mb', 'daz'))}"


def onnx_metadata(config: dict[str, Any], data_meta: dict[str, Any], held_out: dict[str, Any] | None,
                  iterations: int, iterations_total: int, seed: int) -> dict[str, Any]:
    """What the ONNX file says about itself (motion_infer reads the bones, landmarks, frame rate and root rest)."""
    keys = ("mpjpe_mm", "pa_mpjpe_mm", "contact_acc", "root_vel_err_mps")
    return {"format_version": FORMAT_VERSION, "config": config, **data_meta,
            "held_out": {k: held_out[k] for k in keys} if held_out else None,
            "iterations": iterations, "iterations_total": iterations_total, "seed": seed}


def export_checkpoint(checkpoint: Path, onnx_path: Path | None = None, half: bool = False) -> Path:
    """Export a training run's ``motion_net.pt`` to the engine's ONNX file (default: beside it), written
    atomically; the held-out figures come from the run's ``curves.json`` when it is there. ``half``: the weights
    stored as float16 (:func:`.motion_net.half_weights`; the shipped network)."""
    import tempfile

    import torch

    from .motion_net import MotionNet, NetConfig, export_onnx, half_weights

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / "motion_net.pt"
    onnx_path = Path(onnx_path) if onnx_path else checkpoint.with_name("motion_net.onnx")
    saved = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    net = MotionNet(NetConfig.from_json(saved["config"]))
    net.load_state_dict(saved["state_dict"])
    curves_file = checkpoint.with_name("curves.json")
    held = json.loads(curves_file.read_text())[-1]["held_out"] if curves_file.is_file() else None
    total = int(saved.get("iterations_total", 0))
    meta = onnx_metadata(saved["config"], saved["data"], held, total, total, int(saved.get("seed", 0)))
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=onnx_path.name + ".", suffix=".tmp", dir=onnx_path.parent)
    os.close(fd)
    try:
        export_onnx(net, tmp, {"reel2rig_motion": json.dumps(meta)})
        if half:
            half_weights(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, onnx_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return onnx_path


def train(out_dir: Path, settings: RunSettings, seed: int = 0, mocap_dir: str | None = None,
          synthetic: bool = False, smoke: bool = False, device: str = "cpu", argv: Sequence[str] = (),
          log=print, init: Path | None = None) -> dict[str, Any]:
    """One training run into ``out_dir`` (module docstring). Returns the recipe. ``init``: a previous run's
    ``motion_net.pt`` to start from (its network's configuration is kept; the schedule starts again)."""
    import torch

    from . import motion_data as md
    from .anny_skeleton import load_skeleton
    from .motion_net import BodyFK, MotionNet, NetConfig, count_parameters, export_onnx

    t_start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(seed)
    dev = torch.device(device)

    skel = load_skeleton()
    prep, source = load_data(skel, mocap_dir, synthetic, smoke)
    body = md.AnnyBody.of(skel)
    wset = md.WindowSettings()
    train_stream = md.iter_windows(prep, body, held_out=False, seed=seed, settings=wset)
    t0 = time.time()
    pool = WindowPool(train_stream, settings.pool, rng)
    t_pool = time.time() - t0
    per_window = t_pool / settings.pool
    log(f"data: {source}: {len(prep)} clips, {prep.n_frames} frames; pool of {settings.pool} windows in "
        f"{t_pool:.1f} s ({1000 * per_window:.1f} ms a window)")
    if smoke:
        probe = {k: v.copy() for k, v in pool.data.items()}                        # the set it overfits
    else:
        probe_stream = md.iter_windows(prep, body, held_out=False, seed=seed + 7919, settings=wset)
        probe = stack([training_arrays(next(probe_stream)) for _ in range(settings.probe)])
    held = held_out_set(skel, prep, body, seed, limit=8 if smoke else None, settings=wset)
    for d in (pool.data, probe):
        mark_joints_present(skel, d)
    log(f"held-out: {len(held['kp2d'])} windows, {int(held['valid'].sum())} frames")

    config = NetConfig.tiny(len(body.bones)) if smoke else NetConfig(n_bones=len(body.bones))
    start = None
    if init is not None:
        start = torch.load(str(init), map_location="cpu", weights_only=True)
        config = NetConfig.from_json(start["config"])
        if config.n_bones != len(body.bones):
            raise ValueError(f"{init} was trained for {config.n_bones} bones, this data has {len(body.bones)}")
    net = MotionNet(config).to(dev)
    if start is not None:
        net.load_state_dict(start["state_dict"])
        log(f"starting from {init} ({start.get('iterations_total', '?')} iterations before)")
    before = int(start.get("iterations_total", 0)) if start is not None else 0
    fk = BodyFK.of(skel, body.bones).to(dev)
    n_params = count_parameters(net)
    log(f"network: {n_params:,} parameters ({config})")
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    weights = LossWeights()
    budget = settings.minutes * 60.0

    def lr_at(it: int, frac: float) -> float:
        warm = min(1.0, (it + 1) / settings.warmup) if settings.warmup else 1.0
        cos = settings.lr_min_fraction + (1 - settings.lr_min_fraction) * 0.5 * (1 + math.cos(math.pi * frac))
        return settings.lr * warm * cos

    curves: list[dict[str, Any]] = []
    running: list[float] = []

    def record(it: int, elapsed: float) -> None:
        tr = evaluate(net, fk, probe, dev, weights)
        ho = evaluate(net, fk, held, dev, weights)
        entry = {"iteration": it, "elapsed_s": round(elapsed, 1), "lr": opt.param_groups[0]["lr"],
                 "train_batch_loss": float(np.mean(running)) if running else None, "train": tr, "held_out": ho}
        curves.append(entry)
        running.clear()
        log(f"[{it:6d} {elapsed / 60:5.1f} min] train loss {tr['loss']:.4f} (batches {entry['train_batch_loss']}) "
            f"held-out loss {ho['loss']:.4f} MPJPE {ho['mpjpe_mm']:.1f} PA {ho['pa_mpjpe_mm']:.1f} mm, contact "
            f"{ho['contact_acc']:.3f}, vel {ho['root_vel_err_mps']:.3f} m/s, world {ho['world_orient_err_deg']:.1f}"
            f" deg, depth {ho['root_depth_rel_err']:.3f}")
        (out_dir / "curves.json").write_text(json.dumps(curves, indent=1))

    t_train = time.time()
    record(0, 0.0)
    eval_time = time.time() - t_train
    it, last_eval, step_time, refresh_time = 0, time.time(), 0.0, 0.0
    net.train()
    while True:
        elapsed = time.time() - t_train - eval_time
        if settings.iterations is not None and it >= settings.iterations:
            break
        if settings.iterations is None and elapsed >= budget:
            break
        frac = min(elapsed / budget, 1.0) if settings.iterations is None else it / settings.iterations
        for g in opt.param_groups:
            g["lr"] = lr_at(it, frac)
        ts = time.time()
        b = to_torch(pool.batch(settings.batch), dev)
        out = net(b["kp2d"], b["box"], b["cam_angvel"], b["mask"], b["cam_intrinsics"])
        loss, _, _ = compute_losses(out, b, fk, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip)
        opt.step()
        running.append(float(loss.detach()))
        step_time += time.time() - ts
        ts = time.time()
        if settings.refresh:
            pool.refresh(settings.refresh)
        refresh_time += time.time() - ts
        it += 1
        due = (settings.eval_every_it is not None and it % settings.eval_every_it == 0) or (
            settings.eval_every_it is None and time.time() - last_eval >= settings.eval_every_s)
        if due:
            te = time.time()
            record(it, time.time() - t_train - eval_time)
            eval_time += time.time() - te
            last_eval = time.time()
    if not curves or curves[-1]["iteration"] != it:
        te = time.time()
        record(it, time.time() - t_train - eval_time)
        eval_time += time.time() - te
    train_s = time.time() - t_train - eval_time

    net.eval()
    bone_names = [str(n) for n in prep.bone_names]
    data_meta = {"bone_names": bone_names, "joints_present": [bool(p) for p in held["joints_present"][0]], "fps": float(prep.fps),
                 "window": int(wset.length), "world": "yaw-canonical: frame 0's camera looks along +Y, Z up",
                 "root_rest_R": np.asarray(skel.rest[body.bones[0], :3, :3]).tolist()}
    torch.save({"format_version": FORMAT_VERSION, "config": config.to_json(), "data": data_meta,
                "iterations_total": before + it, "seed": seed,
                "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}},
               out_dir / "motion_net.pt")
    final = curves[-1]["held_out"]
    net.cpu()
    export_onnx(net, out_dir / "motion_net.onnx", {"reel2rig_motion": json.dumps(
        onnx_metadata(config.to_json(), data_meta, final, it, before + it, seed))})
    recipe = {
        "command": "python -m inference_server.motion_train " + " ".join(argv),
        "seed": seed, "device": device, "smoke": smoke, "settings": dataclasses.asdict(settings),
        "loss_weights": dataclasses.asdict(weights), "window_settings": repr(wset),
        "data": {"source": source, "clips": len(prep), "frames": int(prep.n_frames),
                 "train_clips": int((~prep.held_out).sum()),
                 "train_frames": int(prep.clip_len[~prep.held_out].sum()),
                 "held_out_clips": int(prep.held_out.sum()), "held_out_frames": int(prep.clip_len[prep.held_out].sum()),
                 "held_out_windows": int(len(held["kp2d"])), "pool": settings.pool, "windows_made": pool.made,
                 "ms_per_window": round(1000 * per_window, 2)},
        "network": {"parameters": n_params, "config": config.to_json()},
        "iterations": it, "windows_seen": it * settings.batch,
        "init": None if init is None else {"checkpoint": str(init), "iterations_before": before},
        "iterations_per_s": round(it / max(step_time, 1e-9), 3),
        "iterations_per_s_with_refresh": round(it / max(step_time + refresh_time, 1e-9), 3),
        "wall_time_s": {"total": round(time.time() - t_start, 1), "pool": round(t_pool, 1),
                        "train_steps": round(step_time, 1), "refresh": round(refresh_time, 1),
                        "evaluation": round(eval_time, 1), "train_loop": round(train_s, 1)},
        "final_held_out": final, "versions": _versions(),
        "acknowledgement": "The data used in this project was obtained from mocap.cs.cmu.edu. The database was "
                           "created with funding from NSF EIA-0196217." if source.startswith("CMU") else None,
    }
    (out_dir / "recipe.json").write_text(json.dumps(recipe, indent=1))
    log(f"done: {it} iterations, {recipe['iterations_per_s']} it/s (steps only), wall {recipe['wall_time_s']}")
    return recipe


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m inference_server.motion_train",
                                description="Train the WHAM-style motion network on the CMU packs.")
    p.add_argument("--out", help="output folder (checkpoint, ONNX, curves, recipe)")
    p.add_argument("--minutes", type=float, default=None, help="training time (default 40; smoke: its iterations)")
    p.add_argument("--smoke", action="store_true", help="a tiny run of a few iterations (tests)")
    p.add_argument("--mocap", default=None, help="folder of the CMU packs (default $REEL2RIG_MOCAP_DIR or "
                                                 "../shared/mocap)")
    p.add_argument("--synthetic", action="store_true", help="made-up motion instead of the packs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--pool", type=int, default=None)
    p.add_argument("--refresh", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--eval-every", type=float, default=None, help="seconds between evaluations")
    p.add_argument("--init", default=None, help="start from a previous run's motion_net.pt (fine-tuning)")
    p.add_argument("--export", metavar="CHECKPOINT", default=None,
                   help="only export a run's motion_net.pt (or its folder) to ONNX (into --out, default beside it)")
    p.add_argument("--half", action="store_true", help="with --export: store the weights as float16 (half the file)")
    p.add_argument("--evaluate", metavar="MODEL.onnx", default=None,
                   help="only score an exported network on the held-out windows of a run with --seed (JSON out)")
    args = p.parse_args(args_list)
    if args.evaluate:
        from .motion_data_mocap import MocapError

        try:
            res = evaluate_onnx(Path(args.evaluate), seed=args.seed, mocap_dir=args.mocap, synthetic=args.synthetic,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
        except MocapError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}, indent=1))
        return 0
    if args.export:
        out = Path(args.out) / "motion_net.onnx" if args.out else None
        print(f"wrote {export_checkpoint(Path(args.export), out, half=args.half)}")
        return 0
    if not args.out:
        p.error("--out is required (where the run writes its files)")

    from .motion_data_mocap import MocapError, pack_path

    settings = RunSettings.smoke() if args.smoke else RunSettings()
    over = {"minutes": args.minutes, "iterations": args.iterations, "batch": args.batch, "pool": args.pool,
            "refresh": args.refresh, "lr": args.lr, "threads": args.threads, "eval_every_s": args.eval_every}
    settings = dataclasses.replace(settings, **{k: v for k, v in over.items() if v is not None})
    synthetic = args.synthetic
    if args.smoke and not synthetic and not all(pack_path(n, args.mocap).is_file() for n in ("mb", "daz")):
        print("smoke: the CMU packs are absent; using the synthetic pack", flush=True)
        synthetic = True
    try:
        train(Path(args.out), settings, seed=args.seed, mocap_dir=args.mocap, synthetic=synthetic, smoke=args.smoke,
              device=args.device, argv=args_list, log=lambda m: print(m, flush=True),
              init=Path(args.init) if args.init else None)
    except MocapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
