"""Fit benchmark: accuracy and frames/s of the fitting stage alone, on the same detections, against the baselines
measured in the same run.

    ./reel2rig bench fit [smoke|standard] [--any-render] [--frames N]

Accuracy: for every scene of the suite, the detections (the capture's cache; detected once if missing) are fitted
by ``lm`` (the default fit: FitSettings()), ``adam`` (the first version's fit: FitSettings.adam_baseline()) and
``direct`` (the closed-form initialisation alone), and scored by bench/evaluate.py beside ``raw-mediapipe``.
Means over scenes, as in the main benchmark.

With ``--hand-mesh FILE.onnx`` (or the shipped network, when there is one) two more rows: ``hand-mesh`` (the
hand-mesh network's 21 points on crops around the detected hands, unfitted: scored like raw MediaPipe, PA per
hand) and ``lm+hand-mesh`` (the lm fit with the network's points in place of MediaPipe's world landmarks as the
fingers' 3D shape: the network as the fit's initialisation; inference_server/hand_mesh/stage.py).

Speed: the first scene's detections repeated to N frames (default 400, one fit window), fitted body-only (hands
removed) and hands-only with one hand, by ``lm`` and ``adam``; frames/s of the fit call, best of two runs, torch on
this machine's CPU (or ``--device cuda``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from inference_server.take import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("body_pa_mpjpe_mm", "hands_pa_mpjpe_mm", "hands_2d_px", "body_2d_box_pct", "accel_error_mm_f2",
        "foot_sliding_mm_f", "root_trajectory_pct", "camera_rotation_deg", "foot_contact_f1", "wrist_peak_speed_pct")


def _settings(method: str, device: str):
    from inference_server.fit import FitSettings

    if method == "adam":
        return FitSettings.adam_baseline(device=device)
    if method == "direct":
        return FitSettings(iterations=0, hand_iterations=0, smoothing=0.0, device=device)
    return FitSettings(device=device)


def _fit(det, skel, K, settings, hands_only=False):
    from inference_server.fit import fit_sequence

    t0 = time.perf_counter()
    fit = fit_sequence(skel, det.pose_2d, det.pose_world, det.hands_2d, K, settings, hands_world=det.hands_world,
                       hands_only=hands_only)
    return fit, time.perf_counter() - t0


def _fit_row(method: str, det, skel, K, settings, seconds: dict | None = None):
    """One fit of the detections scored as a row: (Prediction, the fit, its hands' fitted mask, fit seconds)."""
    from bench import methods as M
    from inference_server.fit import R_WORLD2CAM_LEVEL

    fit, fit_s = _fit(det, skel, K, settings)
    n = len(det.frame_ids)
    hand_ok = fit.bone_fitted[:, [skel.index("finger2-1.L"), skel.index("finger2-1.R")]]
    shift = fit.camera_shift if fit.camera_shift is not None else np.zeros((n, 3))
    pred = M._from_pose(method, skel, fit.local_rotations_aa, fit.root_position_world, K,
                        np.broadcast_to(R_WORLD2CAM_LEVEL, (n, 3, 3)), shift, hand_ok,
                        np.isfinite(det.pose_2d[:, 0, 0]), {"fit": fit_s, **(seconds or {})})
    return pred, fit, hand_ok, fit_s


def hands_alone(det, skel, K, device: str = "cpu"):
    """The ``hands-alone`` method: each hand fitted on its own where it is in the picture, as hands mode with a
    hand model does (``fit.fit_hands_in_camera``), with the body ignored; a Prediction with hands only."""
    from bench.evaluate import Prediction
    from bench.metrics import project
    from inference_server.anny_skeleton import attached_points
    from inference_server.fit import R_WORLD2CAM_LEVEL, fit_hands_in_camera
    from rigs.fk import forward_kinematics

    t0 = time.perf_counter()
    fits = fit_hands_in_camera(skel, det.hands_2d, det.hands_world, K, _settings("lm", device))
    seconds = time.perf_counter() - t0
    n = len(det.frame_ids)
    hands = np.full((n, 2, 21, 3), np.nan)
    for f in fits:
        if f is None:
            continue
        W = forward_kinematics(skel.rest, skel.parents, f.local_rotations_aa, f.root_position_world)
        pts = attached_points(W, skel.hand_marker_bone[f.side], skel.hand_marker_local[f.side]) @ R_WORLD2CAM_LEVEL.T
        hands[f.seen, f.side] = pts[f.seen]
    body = np.full((n, 33, 3), np.nan)
    return Prediction("hands-alone", body, body[..., :2], hands, project(hands, K), True, None, None,
                      {"fit": seconds})


def _with_world(det, skel, fit, K, hand_ok, body_ok, fit_seconds: float):
    """``lm+world``: the lm fit through the capture's world stage (camera rotation out, floor, contacts, path, foot
    lock; inference_server/world.py) exactly as ``capture`` runs it."""
    from bench import methods as M
    from inference_server.capture import _confidence, _world_stage
    from inference_server.pipeline import CaptureOptions

    t0 = time.perf_counter()
    world = _world_stage(skel, fit, det, body_ok, False, CaptureOptions(), K,
                         _confidence(det.pose_2d, fit.residual_px, body_ok))
    pred = M._from_pose("lm+world", skel, world.local_rotations_aa, world.root_position_world, K, world.R_world2cam,
                        world.t_world2cam, hand_ok, body_ok, {"fit": fit_seconds, "world": time.perf_counter() - t0})
    pred.foot_contact = M.contacts_per_side(world.foot_contact, body_ok)
    return pred


def hand_mesh_rows(video: Path, det, skel, K, device: str, model: Path) -> dict:
    """The ``hand-mesh`` and ``lm+hand-mesh`` predictions (module docstring)."""
    from bench.evaluate import Prediction
    from inference_server.hand_mesh.stage import run_on_video

    res = run_on_video(video, det.frame_ids, det.hands_2d, model, K=K)
    n = len(det.frame_ids)
    body = np.full((n, 33, 3), np.nan)
    placed = np.where(np.isfinite(res.joints_cam), res.joints_cam, res.joints_m)   # a refined network places them
    raw = Prediction("hand-mesh", body, body[..., :2], placed, res.joints_2d.copy(), True,
                     seconds={"hand_mesh": res.seconds})
    hands_world = np.where(res.ran[..., None, None], res.joints_m, det.hands_world)
    fitted = _fit_row("lm+hand-mesh", dataclasses.replace(det, hands_world=hands_world), skel, K,
                      _settings("lm", device), {"hand_mesh": res.seconds})[0]
    return {"hand-mesh": raw, "lm+hand-mesh": fitted, "crops_per_s": res.crops / max(res.seconds, 1e-9)}


def scene_inputs(scene, any_render: bool):
    """A benchmark scene's render folder, clip, detections (the capture's, from the stage cache when there), truth
    and the capture's intrinsics."""
    from bench.perception import _scene_video
    from bench.run import detections
    from inference_server.capture import camera_intrinsics
    from inference_server.video import probe

    folder = _scene_video(scene, any_render)
    video = folder / "clip.mp4"
    info = probe(video)
    det = detections(video, info)
    with np.load(folder / "truth.npz", allow_pickle=False) as f:
        truth = {k: f[k] for k in f.files}
    return folder, video, det, truth, camera_intrinsics(info, None)


def accuracy(suite: str, any_render: bool, device: str, scene_names: str | None = None,
             hand_mesh: Path | None = None) -> dict:
    from bench import methods as M
    from bench.evaluate import evaluate
    from bench.run import aggregate, select_scenes
    from inference_server.anny_skeleton import load_skeleton

    skel = load_skeleton()
    per_scene = []
    for scene in select_scenes(suite, scene_names):
        folder, video, det, truth, K = scene_inputs(scene, any_render)
        n = len(det.frame_ids)
        body_ok = np.isfinite(det.pose_2d[:, 0, 0])
        results = {"raw-mediapipe": evaluate(truth, M.raw_mediapipe(det, 1.0))}
        for method in ("direct", "adam", "lm"):
            pred, fit, hand_ok, seconds = _fit_row(method, det, skel, K, _settings(method, device))
            results[method] = evaluate(truth, pred)
            if method == "lm":   # the same fit placed in the world as capture does (world.py): the issue-6 stage
                results["lm+world"] = evaluate(truth, _with_world(det, skel, fit, K, hand_ok, body_ok, seconds))
        results["hands-alone"] = evaluate(truth, hands_alone(det, skel, K, device))
        extra = {}
        if hand_mesh is not None:
            rows = hand_mesh_rows(video, det, skel, K, device, hand_mesh)
            extra["hand_mesh_crops_per_s"] = rows.pop("crops_per_s")
            results.update({m: evaluate(truth, p) for m, p in rows.items()})
        per_scene.append({"scene": scene.name, "render": folder.name, "frames": n, "methods": results, **extra})
        print(f"  {scene.name}: " + ", ".join(f"{m} body PA {r['body_pa_mpjpe_mm']:.1f}" for m, r in results.items()
                                               if r.get("body_pa_mpjpe_mm") is not None), file=sys.stderr)
    methods = ("raw-mediapipe", "direct", "adam", "lm", "lm+world", "hands-alone") + (
        ("hand-mesh", "lm+hand-mesh") if hand_mesh is not None else ())
    return {"per_scene": per_scene, "summary": aggregate(per_scene, methods)}


def speed(suite: str, any_render: bool, device: str, frames: int) -> dict:
    from bench.perception import _scene_video
    from bench.run import detections
    from bench.scenes import suite as suite_scenes
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.capture import camera_intrinsics
    from inference_server.video import probe

    skel = load_skeleton()
    folder = _scene_video(suite_scenes(suite)[0], any_render)
    info = probe(folder / "clip.mp4")
    det = detections(folder / "clip.mp4", info)
    reps = -(-frames // len(det.frame_ids))

    def tile(a):
        return np.concatenate([a] * reps)[:frames]

    body = dataclasses.replace(det, pose_2d=tile(det.pose_2d), pose_world=tile(det.pose_world),
                               hands_2d=np.full((frames, 2, 21, 3), np.nan), hands_world=np.full((frames, 2, 21, 3),
                                                                                                 np.nan))
    one_hand = tile(det.hands_2d)
    one_hand[:, 0] = np.nan
    hands_world = tile(det.hands_world)
    hands_world[:, 0] = np.nan
    hand = dataclasses.replace(det, pose_2d=np.full((frames, 33, 3), np.nan), pose_world=np.full((frames, 33, 3),
                                                                                                 np.nan),
                               hands_2d=one_hand, hands_world=hands_world)
    K = camera_intrinsics(info, None)
    out = {"frames": frames, "source": folder.name}
    for method in ("adam", "lm"):
        s = _settings(method, device)
        out[method] = {
            "body_fps": frames / min(_fit(body, skel, K, s)[1] for _ in range(2)),
            "hand_fps": frames / min(_fit(hand, skel, K, s, hands_only=True)[1] for _ in range(2)),
        }
    # the world stage on the lm body fit of the same frames (its own frames/s, not counting the fit)
    from inference_server.capture import _confidence
    from inference_server.world import ground

    fit, _ = _fit(body, skel, K, _settings("lm", device))
    ok = np.isfinite(body.pose_2d[:, 0, 0])
    conf = _confidence(body.pose_2d, fit.residual_px, ok)
    stamps = np.arange(frames) / 30.0

    def world_seconds() -> float:
        t0 = time.perf_counter()
        ground(skel, fit.local_rotations_aa, fit.root_position_world, stamps, ok, conf, None)
        return time.perf_counter() - t0

    out["lm+world"] = {"world_fps": frames / min(world_seconds() for _ in range(2))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench fit", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default="smoke", help="smoke (default) or standard")
    parser.add_argument("--any-render", action="store_true",
                        help="use an older cached render of a scene instead of rendering it again")
    parser.add_argument("--frames", type=int, default=400, help="frames of the speed test (default 400)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--scenes", default=None, help="only these scenes of the suite (comma-separated)")
    parser.add_argument("--no-speed", action="store_true", help="accuracy only")
    parser.add_argument("--hand-mesh", type=Path, default=None,
                        help="the hand-mesh network (.onnx) for the hand-mesh rows (default: the shipped one if any; "
                             "'none' leaves them out)")
    args = parser.parse_args(argv)
    from inference_server.hand_mesh.stage import DEFAULT_MODEL

    if args.hand_mesh is None and DEFAULT_MODEL.is_file():
        args.hand_mesh = DEFAULT_MODEL
    if args.hand_mesh is not None and str(args.hand_mesh) == "none":
        args.hand_mesh = None
    import torch

    from inference_server.fit import resolve_device

    resolve_device(args.device)
    report = {"suite": args.suite, "device": args.device, "torch_threads": torch.get_num_threads(),
              "command": f"./reel2rig bench fit {args.suite}" + (" --any-render" if args.any_render else ""),
              "speed": {} if args.no_speed else speed(args.suite, args.any_render, args.device, args.frames),
              **accuracy(args.suite, args.any_render, args.device, args.scenes, args.hand_mesh)}
    if args.hand_mesh is not None:
        report["command"] += f" --hand-mesh {args.hand_mesh}"
    if args.scenes:
        report["command"] += f" --scenes {args.scenes}"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f"fit-{args.suite}.json" if not args.scenes else f"fit-{args.suite}-partial.json")
    atomic_write_bytes(path, json.dumps(report, indent=1, default=float).encode())
    print(table(report))
    print(f"\nwritten {path}")
    return 0


def table(report: dict) -> str:
    names = {"body_pa_mpjpe_mm": "body PA mm", "hands_pa_mpjpe_mm": "hands PA mm", "hands_2d_px": "hand 2D px",
             "body_2d_box_pct": "2D % box",
             "accel_error_mm_f2": "accel mm/f²", "foot_sliding_mm_f": "sliding mm/f",
             "root_trajectory_pct": "root traj %", "camera_rotation_deg": "camera °", "foot_contact_f1": "contact F1",
             "wrist_peak_speed_pct": "wrist peak %"}
    head = "| method | " + " | ".join(names[k] for k in KEYS) + " | body fps | hand fps | world fps |"
    rows = [head, "|" + "---|" * (len(KEYS) + 4)]
    for m, row in report["summary"].items():
        sp = report["speed"].get(m, {})
        cells = [(f"{row[k]:.2f}" if k == "foot_contact_f1" else f"{row[k]:.1f}")
                 if row.get(k) is not None and np.isfinite(row[k]) else "–" for k in KEYS]
        speeds = [f"{sp[k]:.0f}" if k in sp else "–" for k in ("body_fps", "hand_fps", "world_fps")]
        rows.append(f"| {m} | " + " | ".join(cells + speeds) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
