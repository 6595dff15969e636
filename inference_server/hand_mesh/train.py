"""Training the hand-mesh network on the synthetic crops of ``synth``. torch (CPU here; ``--device cuda`` on a GPU).

``python -m inference_server.hand_mesh train --data DIR --held DIR --out RUN [--encoder ghoststack]
[--minutes M | --iterations N] [--batch 32] [--init CKPT] [--refine]``

Targets, in the network's units: vertices and 3D joints relative to the wrist (joint 0), in decimetres (metres × 10,
so values are about ±1); 2D joints as fractions of the 128-px crop. Losses as MobRecon and Tang et al. give them:

    L = |V − V*|₁ + |J·V − P*|₁ + |p − p*|₁ + 0.1·L_normal + 1.0·L_edge [+ w_sil·L_silhouette]

V the vertices, J (21 × 778) the joint regressor (``fit_joint_regressor``, fitted once on the first training shard
and kept with the network), P* the 21 ground-truth 3D points, p the 2D joints; L_normal (predicted face edges
against the ground-truth face normals) and L_edge (edge lengths) from ``refine``. The silhouette term (the soft
silhouette of the mesh placed at the ground-truth wrist, against the visible-hand mask at 32 px) is off unless
``--silhouette`` gives it a weight: on a CPU it costs seconds per crop. With ``--refine --init RUN/hand_mesh.pt``
the alignment refinement (``refine.RefinedMobRecon``: the mesh registered to the network's own 2D joints, then
per-vertex offsets from pixel-aligned features) is trained on top of the frozen network, with

    L = |V_cam − V*_cam|₁ + |J·V_cam − P*_cam|₁ + 10·|π(J·V_cam) − p*|₁/128 + 0.1·L_normal + L_edge

in the crop camera's frame (π the projection with the crop's K): the 3D mesh and, for the alignment Tang et al. are
after, its joints' projection onto the true 2D joints.

Written to RUN: ``hand_mesh.pt`` (ours: ``export.load_network`` reads it), ``hand_mesh.onnx``, ``curves.json``
(train and held-out figures at each evaluation), ``curve.png``, ``recipe.json`` (command, data, timings).
Held-out figures: MPJPE and PA-MPJPE of the 21 points (mm, wrist-relative), mesh error MPVPE and PA-MPVPE (mm),
2D joint error (px of the 128 crop).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

UNITS_PER_M = 10.0
CROP = 128
LANDMARK_NOISE_PX = 2.5   # the detector's landmark error on the benchmark's hands is ~8 px at ~1.5× this crop scale


# --- data ---------------------------------------------------------------------------------------------------------

def read_shard(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def shard_paths(folder: str | Path) -> list[Path]:
    paths = sorted(Path(folder).glob("shard_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no shard_*.npz in {folder}: make them with `python -m inference_server.hand_mesh "
                                "synth --out {folder}`")
    return paths


class ShardStream:
    """Random batches from the shards, one shard in memory at a time (shards visited in random order)."""

    def __init__(self, paths: list[Path], rng: np.random.Generator):
        self.paths, self.rng = paths, rng
        self.data: dict[str, np.ndarray] | None = None
        self.order = np.zeros(0, dtype=np.int64)
        self.shards_read = 0

    def batch(self, n: int) -> dict[str, np.ndarray]:
        if self.order.size < n:
            self.data = read_shard(self.paths[int(self.rng.integers(len(self.paths)))])
            self.order = self.rng.permutation(self.data["image"].shape[0])
            self.shards_read += 1
        idx, self.order = self.order[:n], self.order[n:]
        assert self.data is not None
        return {k: v[idx] for k, v in self.data.items()}


def fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, k: int = 24, ridge: float = 1e-6) -> np.ndarray:
    """(21, V) weights, each row summing to 1 over the k template vertices nearest that point on average, fitted by
    least squares so that J·V ≈ P over the samples (verts (N, V, 3), joints (N, 21, 3), any common frame)."""
    N, V, _ = verts.shape
    Jr = np.zeros((joints.shape[1], V))
    for j in range(joints.shape[1]):
        d = np.linalg.norm(verts - joints[:, j:j + 1], axis=2).mean(axis=0)
        cand = np.argsort(d)[:k]
        A = verts[:, cand].transpose(0, 2, 1).reshape(N * 3, k)        # (3N, k)
        b = joints[:, j].reshape(N * 3)
        # sum-to-one as a heavily weighted extra equation; a small ridge keeps the weights tame
        big = 1e3
        A2 = np.vstack([A, big * np.ones((1, k)), math.sqrt(ridge) * np.eye(k)])
        b2 = np.concatenate([b, [big], np.zeros(k)])
        Jr[j, cand] = np.linalg.lstsq(A2, b2, rcond=None)[0]
    return Jr


def to_targets(b: dict[str, np.ndarray], device) -> dict[str, Any]:
    import torch

    root = b["joints3d"][:, :1]
    t = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device)  # noqa: E731
    return {"image": t(b["image"].transpose(0, 3, 1, 2) / 127.5 - 1.0),
            "verts": t((b["verts"] - root) * UNITS_PER_M), "joints3d": t((b["joints3d"] - root) * UNITS_PER_M),
            "joints2d": t(b["joints2d"] / CROP), "root": t(root[:, 0]), "K": t(b["K"]),
            "mask": t(b["mask"].astype(np.float32)), "verts_cam": t(b["verts"]), "joints_cam": t(b["joints3d"])}


# --- losses and figures -------------------------------------------------------------------------------------------

def losses(out: dict[str, Any], tgt: dict[str, Any], Jr, faces, w_sil: float) -> dict[str, Any]:
    import torch.nn.functional as F

    from .refine import edge_length_loss, normal_loss

    v = out["verts"]
    d = {"verts": (v - tgt["verts"]).abs().mean(),
         "joints3d": (Jr @ v - tgt["joints3d"]).abs().mean(),
         "joints2d": (out["joints_2d"] - tgt["joints2d"]).abs().mean(),
         "normal": 0.1 * normal_loss(v, tgt["verts"], faces),
         "edge": edge_length_loss(v, tgt["verts"], faces)}
    if w_sil > 0:
        d["silhouette"] = w_sil * silhouette_term(v, tgt, faces, F)
    d["loss"] = sum(d.values())
    return d


def refine_losses(out: dict[str, Any], tgt: dict[str, Any], Jr, faces, w_sil: float) -> dict[str, Any]:
    """The refinement's losses: its camera-frame mesh and joints against the truth (in network units), the joints'
    projection against the true 2D joints (the alignment), and the mesh regularisers."""
    import torch.nn.functional as F

    from .refine import edge_length_loss, normal_loss, project

    v = out["verts_cam"]
    joints = Jr @ v
    d = {"verts_cam": ((v - tgt["verts_cam"]) * UNITS_PER_M).abs().mean(),
         "joints_cam": ((joints - tgt["joints_cam"]) * UNITS_PER_M).abs().mean(),
         "align2d": ((project(joints, tgt["K"]) - tgt["joints2d"] * CROP) / CROP).abs().mean() * 10,
         "normal": 0.1 * normal_loss(v, tgt["verts_cam"], faces),
         "edge": edge_length_loss(v * UNITS_PER_M, tgt["verts_cam"] * UNITS_PER_M, faces)}
    if w_sil > 0:
        d["silhouette"] = w_sil * silhouette_term((v - tgt["root"][:, None]) * UNITS_PER_M, tgt, faces, F)
    d["loss"] = sum(d.values())
    return d


def silhouette_term(verts_units, tgt, faces, F, size: int = 32):
    from .refine import project, silhouette_loss, soft_silhouette

    cam = verts_units / UNITS_PER_M + tgt["root"][:, None]
    px = project(cam, tgt["K"])
    sil = soft_silhouette(px, faces, size=size, scale=size / CROP)
    mask = F.interpolate(tgt["mask"][:, None], size=(size, size), mode="area")[:, 0]
    return silhouette_loss(sil, mask)


def figures(pred_v: np.ndarray, pred_j2d: np.ndarray, b: dict[str, np.ndarray], Jr: np.ndarray) -> dict[str, float]:
    """Held-out figures (mm, px) for predictions in network units."""
    from ..motion_train import procrustes_aligned as procrustes

    root = b["joints3d"][:, :1]
    gt_v = (b["verts"] - root) * 1000
    gt_j = (b["joints3d"] - root) * 1000
    pv = pred_v / UNITS_PER_M * 1000
    pj = np.einsum("jv,nvc->njc", Jr, pv)
    return {"mpjpe_mm": float(np.linalg.norm(pj - gt_j, axis=2).mean()),
            "pa_mpjpe_mm": float(np.linalg.norm(procrustes(pj, gt_j) - gt_j, axis=2).mean()),
            "mpvpe_mm": float(np.linalg.norm(pv - gt_v, axis=2).mean()),
            "pa_mpvpe_mm": float(np.linalg.norm(procrustes(pv, gt_v) - gt_v, axis=2).mean()),
            "joints2d_px": float(np.linalg.norm(pred_j2d * CROP - b["joints2d"], axis=2).mean())}


def evaluate(model, data: dict[str, np.ndarray], Jr: np.ndarray, device, batch: int = 64,
             landmarks: bool = False) -> dict[str, float]:
    """Held-out figures; for a refined network also the 2D error of its joints projected from the camera-frame
    mesh, before (``rough_2d_px``: the registered mesh) and after (``refined_2d_px``) the refinement, and the
    refined mesh's wrist-relative errors (``refined_*``). ``landmarks``: the decoder pools at the true 2D joints
    jittered by LANDMARK_NOISE_PX (a fixed draw), as a detector's landmarks would be given at inference."""
    import torch

    refined = hasattr(model, "refiner")
    was = model.training
    model.eval()
    vs, js, rough, fine = [], [], [], []
    with torch.no_grad():
        for s in range(0, data["image"].shape[0], batch):
            part = {k: v[s:s + batch] for k, v in data.items()}
            tgt = to_targets(part, device)
            given = None
            if landmarks:
                noise = np.random.default_rng(s).normal(0, LANDMARK_NOISE_PX, part["joints2d"].shape)
                given = torch.as_tensor((part["joints2d"] + noise) / CROP, dtype=torch.float32, device=device)
            out = model(tgt["image"], tgt["K"], given) if refined else model(tgt["image"], given)
            vs.append(out["verts"].cpu().numpy())
            js.append(out["joints_2d"].cpu().numpy())
            if refined:
                rough.append(out["verts_rough_cam"].cpu().numpy())
                fine.append(out["verts_cam"].cpu().numpy())
    model.train(was)
    if refined:
        model.base.eval()
    res = figures(np.concatenate(vs), np.concatenate(js), data, Jr)
    if refined:
        def px(v: np.ndarray) -> float:
            p = np.einsum("nij,nkj->nki", data["K"], np.einsum("jv,nvc->njc", Jr, v))
            return float(np.linalg.norm(p[..., :2] / p[..., 2:] - data["joints2d"], axis=2).mean())

        fine_v = np.concatenate(fine)
        wrist = np.einsum("v,nvc->nc", Jr[0], fine_v)[:, None]
        ref = figures((fine_v - wrist) * UNITS_PER_M, np.concatenate(js), data, Jr)
        res.update(rough_2d_px=px(np.concatenate(rough)), refined_2d_px=px(fine_v),
                   **{f"refined_{k}": v for k, v in ref.items() if k != "joints2d_px"})
    return res


def plot_curves(curves: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [c["iteration"] for c in curves]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("pa_mpjpe_mm", "PA-MPJPE"), ("mpjpe_mm", "MPJPE"), ("pa_mpvpe_mm", "PA-MPVPE")):
        ax[0].plot(it, [c["held_out"][key] for c in curves], label=label)
    ax[0].set(xlabel="iteration", ylabel="held-out error (mm)", title="3D")
    ax[0].legend()
    ax[1].plot(it, [c["held_out"]["joints2d_px"] for c in curves])
    ax[1].set(xlabel="iteration", ylabel="px (128 crop)", title="2D joints, held out")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the run ------------------------------------------------------------------------------------------------------

def train(data_dir: str | Path, held_dir: str | Path, out_dir: str | Path, encoder: str = "ghoststack",
          minutes: float | None = None, iterations: int | None = None, batch: int = 32, lr: float = 1e-3,
          seed: int = 0, device: str = "cpu", threads: int = 2, eval_every_s: float = 300.0,
          eval_every_it: int | None = None, held_limit: int | None = None, init: str | Path | None = None,
          w_sil: float = 0.0, refine: bool = False, landmarks: bool = True, warmup: int = 100,
          argv: Sequence[str] = (), log=print) -> dict[str, Any]:
    import torch

    from .export import export_onnx, load_network, save_checkpoint
    from .template import anny_template

    if (minutes is None) == (iterations is None):
        raise ValueError("give either minutes or iterations")
    t_start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    dev = torch.device(device)
    template = anny_template()
    train_paths = shard_paths(data_dir)
    held = read_shard(shard_paths(held_dir)[0])
    if held_limit:
        held = {k: v[:held_limit] for k, v in held.items()}
    from .export import load_joint_regressor

    if refine and init is None:
        raise ValueError("--refine trains the refinement of a trained network: give it with --init")
    stored = load_joint_regressor(init) if init else None
    if stored is not None:
        Jr = stored
    else:
        first = read_shard(train_paths[0])
        Jr = fit_joint_regressor(first["verts"].astype(np.float64), first["joints3d"].astype(np.float64))
        del first
    fit_err = np.linalg.norm(np.einsum("jv,nvc->njc", Jr, held["verts"]) - held["joints3d"], axis=2).mean() * 1000
    log(f"joint regressor: {fit_err:.2f} mm from the true points on held-out meshes")

    model = load_network(template.hierarchy, encoder, init).to(dev) if init else None
    if model is None:
        from .mobrecon import MobRecon

        model = MobRecon(template.hierarchy, encoder).to(dev)
    if not hasattr(model, "refiner"):
        model.landmark_input = landmarks
    elif landmarks != bool(getattr(model.base, "landmark_input", False)):
        raise ValueError("--init's network and this run disagree on --own-2d")
    if refine and not hasattr(model, "refiner"):
        from .refine import RefinedMobRecon

        model = RefinedMobRecon(model, Jr).to(dev)
    if refine:      # the base network stays as it was trained: only the refinement learns
        for p_ in model.base.parameters():
            p_.requires_grad_(False)
    model.train()
    if refine:
        model.base.eval()
    Jr_t = torch.as_tensor(Jr, dtype=torch.float32, device=dev)
    faces = torch.as_tensor(template.faces, dtype=torch.long, device=dev)
    opt = torch.optim.Adam([p_ for p_ in model.parameters() if p_.requires_grad], lr=lr)
    stream = ShardStream(train_paths, rng)
    budget = (minutes or 0) * 60.0
    curves: list[dict[str, Any]] = []
    running: dict[str, list[float]] = {}

    def record(it: int, elapsed: float) -> None:
        ho = evaluate(model, held, Jr, dev, landmarks=landmarks)
        entry = {"iteration": it, "elapsed_s": round(elapsed, 1), "lr": opt.param_groups[0]["lr"],
                 "train": {k: float(np.mean(v)) for k, v in running.items()}, "held_out": ho}
        running.clear()
        curves.append(entry)
        (out / "curves.json").write_text(json.dumps(curves, indent=1))
        log(f"[{it:6d} {elapsed / 60:5.1f} min] loss {entry['train'].get('loss', float('nan')):.4f}  held-out "
            f"MPJPE {ho['mpjpe_mm']:.1f} PA {ho['pa_mpjpe_mm']:.1f} MPVPE {ho['mpvpe_mm']:.1f} "
            f"PA-V {ho['pa_mpvpe_mm']:.1f} mm, 2D {ho['joints2d_px']:.2f} px"
            + (f"; refined MPJPE {ho['refined_mpjpe_mm']:.1f} PA {ho['refined_pa_mpjpe_mm']:.1f} mm, projected 2D "
               f"{ho['rough_2d_px']:.2f} → {ho['refined_2d_px']:.2f} px" if "refined_2d_px" in ho else ""))

    t_train = time.time()
    record(0, 0.0)
    eval_time = time.time() - t_train
    it, last_eval, step_time = 0, time.time(), 0.0
    while True:
        elapsed = time.time() - t_train - eval_time
        if iterations is not None and it >= iterations:
            break
        if iterations is None and elapsed >= budget:
            break
        frac = it / iterations if iterations else min(elapsed / budget, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (it + 1) / max(warmup, 1)) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        ts = time.time()
        tgt = to_targets(stream.batch(batch), dev)
        given = None
        if landmarks:   # the decoder pools at the true joints, jittered like a detector's landmarks
            given = tgt["joints2d"] + torch.randn_like(tgt["joints2d"]) * (LANDMARK_NOISE_PX / CROP)
        if refine:
            res = refine_losses(model(tgt["image"], tgt["K"], given), tgt, Jr_t, faces, w_sil)
        else:
            res = losses(model(tgt["image"], given), tgt, Jr_t, faces, w_sil)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p_ for p_ in model.parameters() if p_.requires_grad], 5.0)
        opt.step()
        for k, v in res.items():
            running.setdefault(k, []).append(float(v.detach()))
        step_time += time.time() - ts
        it += 1
        due = (eval_every_it is not None and it % eval_every_it == 0) or (
            eval_every_it is None and time.time() - last_eval >= eval_every_s)
        if due:
            te = time.time()
            record(it, time.time() - t_train - eval_time)
            save_checkpoint(model, out / "hand_mesh.pt", {"joint_regressor": torch.as_tensor(Jr), "iterations": it})
            eval_time += time.time() - te
            last_eval = time.time()
    if curves[-1]["iteration"] != it:
        record(it, time.time() - t_train - eval_time)
    model.eval().cpu()
    save_checkpoint(model, out / "hand_mesh.pt", {"joint_regressor": torch.as_tensor(Jr), "iterations": it})
    export_onnx(model, out / "hand_mesh.onnx", {"iterations": str(it), "template": template.name,
                                               "held_out": json.dumps(curves[-1]["held_out"])}, joint_regressor=Jr)
    plot_curves(curves, out / "curve.png")
    recipe = {"command": "python -m inference_server.hand_mesh train " + " ".join(argv), "encoder": encoder,
              "refine": refine, "init": None if init is None else str(init), "landmark_input": landmarks,
              "seed": seed, "device": device, "batch": batch, "lr": lr, "silhouette_weight": w_sil,
              "iterations": it, "samples_seen": it * batch, "train_shards": len(train_paths),
              "shards_read": stream.shards_read, "held_out_samples": int(held["image"].shape[0]),
              "joint_regressor_error_mm": round(float(fit_err), 2),
              "seconds_per_iteration": round(step_time / max(it, 1), 3),
              "wall_time_s": round(time.time() - t_start, 1), "final_held_out": curves[-1]["held_out"]}
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1))
    log(f"done: {it} iterations, {recipe['seconds_per_iteration']} s each; wrote {out}")
    return recipe


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m inference_server.hand_mesh train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="training shards (from `synth`)")
    p.add_argument("--held", required=True, help="held-out shards (a different --seed); the first shard is used")
    p.add_argument("--out", required=True)
    p.add_argument("--encoder", choices=("densestack", "ghoststack"), default="ghoststack")
    p.add_argument("--minutes", type=float)
    p.add_argument("--iterations", type=int)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=float, default=300.0, help="seconds between held-out evaluations")
    p.add_argument("--held-limit", type=int, help="score only the first N held-out samples")
    p.add_argument("--init", help="a checkpoint to start from (ours or the authors')")
    p.add_argument("--silhouette", type=float, default=0.0, help="weight of the silhouette loss (0: off)")
    p.add_argument("--own-2d", action="store_true",
                   help="the decoder pools at the network's own 2D joints (the paper) rather than at given landmarks")
    p.add_argument("--refine", action="store_true",
                   help="train the alignment refinement on top of the --init network (which stays frozen)")
    a = p.parse_args(argv)
    if a.minutes is None and a.iterations is None:
        a.minutes = 30.0
    from ..config import prepare_environment

    prepare_environment()
    train(a.data, a.held, a.out, a.encoder, a.minutes, a.iterations, a.batch, a.lr, a.seed, a.device, a.threads,
          a.eval_every, held_limit=a.held_limit, init=a.init, w_sil=a.silhouette, refine=a.refine,
          landmarks=not a.own_2d, argv=argv)
    return 0
