"""``./reel2rig bench``: the ground-truth benchmark (rendered scenes) and the footage report (real clips).

    ./reel2rig bench [smoke|standard] [--device cpu|cuda] [--out bench/results] [--scenes A,B,C] [--render-only]
    ./reel2rig bench --footage DIR [--device cpu|cuda]

Suite mode renders the suite's scenes once (cached under ``<cache>/bench/scenes``), then for every scene runs the
product's capture as a subprocess (``python -m inference_server capture --json --no-cache``: fresh detection, so
the stage timings and the peak memory are real), reads the Take back, builds the two baselines from the same
detections, scores all three with :mod:`bench.evaluate`, prints the tables and writes
``<out>/<suite>-<time>/results.json`` plus pictures (per-joint error bars, error over time, overlay frames, and a
top view of the pelvis paths with the planted feet and the camera), and copies the JSON to ``<out>/<suite>.json``
(``<out>/<suite>-partial.json`` when ``--scenes`` picked some of the suite's scenes).

Footage mode has no ground truth: it reports 2D alignment of each method against the detector, temporal jitter,
coverage, hand-label consistency, speed, and overlay frames.

Imports bpy (rendering), torch and anny lazily. A benchmark tool, not part of the add-on or the engine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import metrics as M  # noqa: E402
from bench.evaluate import BODY_JOINTS, Prediction, evaluate, nan_to_none  # noqa: E402
from bench.methods import METHODS  # noqa: E402

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"}
BODY_EDGES = [(11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
              (24, 26), (26, 28), (27, 29), (27, 31), (29, 31), (28, 30), (28, 32), (30, 32)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Running the product and the baselines
# ---------------------------------------------------------------------------------------------------------------
def run_capture(video: Path, out_dir: Path, device: str, *extra: str, fresh: bool = True) -> dict:
    """The product's capture in its own process (``extra``: more capture flags; ``fresh``: detection recomputed,
    else the stage cache's); returns its JSON summary, or {"error": ...}."""
    cmd = [sys.executable, "-m", "inference_server", "capture", str(video), "--out", str(out_dir), "--json",
           *(["--no-cache"] if fresh else []), "--no-overlay", "--device", device, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("error:", "fix:"))]
        return {"error": " ".join(lines) or proc.stderr.strip()[-400:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def detections(video: Path, info):
    """The detections the capture just made (a cache hit: same content hash and options)."""
    from inference_server.capture import detect_stage
    from inference_server.pipeline import CaptureOptions

    return detect_stage(video, info, CaptureOptions(), lambda *a: None, lambda: False)[0]   # the main person


def truth_stature(truth: dict) -> float:
    """The scene subject's height (m, soles to the top of the head): Anny's rest mesh at the truth's phenotype."""
    from inference_server.anny_skeleton import load_anny_model, phenotype_key, stature_m

    return stature_m(load_anny_model(), phenotype_key(truth["phenotype"]))


def empty_prediction(method: str, n: int) -> Prediction:
    return Prediction(method, np.full((n, 33, 3), np.nan), np.full((n, 33, 2), np.nan),
                      np.full((n, 2, 21, 3), np.nan), np.full((n, 2, 21, 2), np.nan))


def predictions(video: Path, summary: dict, skel, device: str, network: dict | None = None
                ) -> tuple[dict[str, Prediction], object]:
    """Every method's prediction for one clip; ``network``: the summaries of its captures with the motion network,
    by row (``motion-fit``, ``motion-net``), None to leave those rows out."""
    from bench import methods
    from inference_server.capture import camera_intrinsics
    from inference_server.video import probe

    info = probe(video)
    det = detections(video, info)
    n = len(det.frame_ids)
    stages = summary.get("stages", {})
    detect_s = sum((stages.get(s) or {}).get("seconds") or 0.0 for s in ("decode", "detect"))
    K = camera_intrinsics(info, None)
    preds = {"raw-mediapipe": methods.raw_mediapipe(det, detect_s)}
    direct = methods.direct_mapping(det, skel, K, device)
    direct.seconds = {"detect": detect_s, **direct.seconds}
    preds["direct-mapping"] = direct
    if "error" in summary:
        preds["reel2rig"] = empty_prediction("reel2rig", n)
    else:
        preds["reel2rig"] = methods.reel2rig(Path(summary["take"]), skel,
                                             {k: (v or {}).get("seconds") for k, v in stages.items()})
    for row, run in (network or {}).items():
        preds[row] = empty_prediction(row, n) if "error" in run else methods.reel2rig(
            Path(run["take"]), skel, {k: (v or {}).get("seconds") for k, v in run.get("stages", {}).items()},
            method=row)
    return preds, det


# ---------------------------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------------------------
def _skeleton_layer(label: str, body_2d: np.ndarray, hands_2d: np.ndarray, mesh=None):
    from bench.figures import OverlayLayer, method_colour_bgr

    points = np.concatenate([body_2d, hands_2d[:, 0], hands_2d[:, 1]], axis=1)  # (T, 75, 2)
    edges = BODY_EDGES + [(33 + a, 33 + b) for a, b in HAND_EDGES] + [(54 + a, 54 + b) for a, b in HAND_EDGES]
    kwargs = {}
    if mesh is not None:
        kwargs = dict(mesh_vertices_cam=mesh[0], faces=mesh[1], K=mesh[2])
    return OverlayLayer(label=label, colour=method_colour_bgr(label), points_2d=points, edges=edges, **kwargs)


def reel2rig_mesh(take_path: Path, skel):
    """(T,V,3) camera-space vertices of the fitted mesh, faces, K — for the overlay (None when the Take's model has
    no mesh here; see ``inference_server.overlay.take_mesh``). ``skel`` is unused: the Take carries its skeleton."""
    from inference_server.overlay import take_mesh
    from inference_server.take import read_take

    take = read_take(take_path)
    posed = take_mesh(take, np.arange(take.n_frames))
    if posed is None:
        return None
    verts, faces = posed
    return verts, faces, take["K"]


def scene_pictures(out: Path, name: str, video: Path, preds: dict[str, Prediction], results: dict,
                   truth: dict | None, fps: float, take: Path | None, skel) -> list[str]:
    from bench.figures import error_over_time, overlay_frames

    written = []
    series = {m: np.array(r.get("body_pa_mpjpe_mm_per_frame", []), dtype=float) for m, r in results.items()
              if r.get("body_pa_mpjpe_mm_per_frame")}
    if series:
        written.append(error_over_time(series, out / f"{name}_error_over_time.png",
                                       f"{name}: body PA-MPJPE per frame", fps))
    n = len(next(iter(preds.values())).body_2d)
    frames = sorted({int(round(x)) for x in np.linspace(0, n - 1, 6)})
    layers = []
    if truth is not None:
        layers.append(_skeleton_layer("ground-truth", truth["body_markers_2d"], truth["hand_points_2d"]))
    for method in ("raw-mediapipe", "direct-mapping"):
        layers.append(_skeleton_layer(method, preds[method].body_2d, preds[method].hands_2d))
    mesh = reel2rig_mesh(take, skel) if take is not None else None
    layers.append(_skeleton_layer("reel2rig", preds["reel2rig"].body_2d, preds["reel2rig"].hands_2d, mesh))
    written.append(overlay_frames(video, frames, layers, out / f"{name}_overlay.png"))
    trajectory = trajectory_picture(out / f"{name}_trajectory.png", name, preds, truth)
    if trajectory is not None:
        written.append(trajectory)
    return [str(p) for p in written]


# Foot points of the top view, in the Take's contact order [left heel, left toe, right heel, right toe] (MediaPipe).
CONTACT_MARKERS = [29, 31, 30, 32]
CONTACT_SIDE = [0, 0, 1, 1]


def trajectory_paths(preds: dict[str, Prediction], truth: dict | None) -> tuple[dict, dict, np.ndarray | None]:
    """The pelvis paths, planted-foot points and camera centres of the top view, each (T, ..., 3) in a ground frame.

    Every world is seen from its own first camera (``plots.camera_ground_frame``: x = that camera's right, y = its
    forward, horizontal; z = height), so a method whose world is turned about the vertical is compared fairly with
    the truth; the truth's frame is placed at its first camera's centre, and each method's path (with its footprints)
    is shifted so that it starts where the truth is at the first frame both have (without truth: at the origin) —
    the picture compares where the paths go, not where they begin. Footprints: the heel and toe points of a foot on
    the frames its contact says planted (the truth's labels; a method's own contacts, when it gives them).
    Returns (paths, contacts, cameras); cameras are the truth's camera centres (None without truth).
    """
    from bench.evaluate import FOOT_POINTS
    from inference_server.plots import camera_ground_frame

    def planted(points: np.ndarray, contact: np.ndarray) -> np.ndarray:  # (T,4,3), (T,2) → NaN where not planted
        side = np.nan_to_num(np.asarray(contact, float), nan=0.0)[:, CONTACT_SIDE] > 0.5
        return np.where(side[..., None], points, np.nan)

    paths: dict[str, np.ndarray] = {}
    contacts: dict[str, np.ndarray] = {}
    cameras = None
    if truth is not None:
        R, t = truth["R_world2cam"], truth["t_world2cam"]
        world = truth["body_markers_world"]
        paths["ground-truth"] = camera_ground_frame(world[:, [23, 24]].mean(1), R[0], t[0])
        contacts["ground-truth"] = camera_ground_frame(
            planted(world[:, CONTACT_MARKERS], truth["foot_contact"]), R[0], t[0])
        cameras = camera_ground_frame(-np.einsum("tji,tj->ti", R, t), R[0], t[0])  # centres c = -R^T t
    feet_idx = [FOOT_POINTS.index(j) for j in CONTACT_MARKERS]
    for method, p in preds.items():
        if p.root_world is None or p.R_world2cam is None:
            continue
        R0 = np.asarray(p.R_world2cam)[0]
        path = camera_ground_frame(p.root_world, R0)
        ok = np.isfinite(path).all(1)
        if truth is not None:
            ok &= np.isfinite(paths["ground-truth"]).all(1)
        if not ok.any():
            continue
        k = int(np.argmax(ok))
        shift = (paths["ground-truth"][k] if truth is not None else np.zeros(3)) - path[k]
        paths[method] = path + shift
        if p.foot_contact is not None and p.feet_world is not None:
            contacts[method] = camera_ground_frame(planted(p.feet_world[:, feet_idx], p.foot_contact), R0) + shift
    return paths, contacts, cameras


def trajectory_picture(path: Path, name: str, preds: dict[str, Prediction], truth: dict | None) -> Path | None:
    """``<scene>_trajectory.png``: the top view of :func:`trajectory_paths`; None when no path has a point."""
    from bench.figures import method_colour
    from inference_server.plots import trajectory_top_view

    paths, contacts, cameras = trajectory_paths(preds, truth)
    if not any(np.isfinite(p).all(1).any() for p in paths.values()):
        return None
    start = "the truth's" if truth is not None else "the origin"
    return trajectory_top_view(paths, path, contacts=contacts, cameras=cameras,
                               colours={m: method_colour(m) for m in list(paths) + list(contacts)},
                               title=f"{name}: pelvis path from above (paths start at {start}; dots: planted feet)",
                               xlabel="first camera's right (m)", ylabel="first camera's forward (m)")


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------
def _nanmean(values) -> float:
    arr = np.array([np.nan if v is None else v for v in values], dtype=float)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def aggregate(per_scene: list[dict], methods=None) -> dict:
    """Mean over scenes of every scalar metric, per method (default: the METHODS the scenes have); stage timings
    summed into frames/s."""
    summary: dict = {}
    if methods is None:
        methods = [m for m in METHODS if any(m in s["methods"] for s in per_scene)]
    for method in methods:
        rows = [s["methods"][method] for s in per_scene if method in s["methods"]]
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))] if rows else []
        agg = {k: _nanmean(r.get(k) for r in rows) for k in keys}
        for k in ("pa_mpjpe_mm", "f5", "f15", "2d_px", "detection_rate", "mpjpe_wrist_mm"):
            agg[f"hands_{k}"] = _nanmean([agg.get(f"hand_L_{k}"), agg.get(f"hand_R_{k}")])
        agg["swap_frames"] = int(sum(r["handedness"]["swap_frames"] for r in rows))
        agg["swap_events"] = int(sum(r["handedness"]["swap_events"] for r in rows))
        agg["frames_compared"] = int(sum(r["handedness"]["frames_compared"] for r in rows))
        frames = sum(s["frames"] for s in per_scene)
        seconds = {}
        for s in per_scene:
            for stage, sec in s["methods"].get(method, {}).get("seconds", {}).items():
                if sec is not None:
                    seconds[stage] = seconds.get(stage, 0.0) + sec
        agg["fps"] = {stage: frames / sec for stage, sec in seconds.items() if sec > 0}
        total = sum(seconds.values())
        agg["fps_end_to_end"] = frames / total if total > 0 else float("nan")
        if method == "reel2rig":  # the capture ran in its own process: its peak memory is measured
            peaks = [s["capture"].get("peak_rss_mb") for s in per_scene if "peak_rss_mb" in s["capture"]]
            agg["peak_rss_mb"] = max(peaks) if peaks else float("nan")
        joints = {}
        for r in rows:
            for j, v in r.get("per_joint_body_mm", {}).items():
                joints.setdefault(j, []).append(v)
        agg["per_joint_body_mm"] = {j: _nanmean(v) for j, v in joints.items()}
        hand_joints: dict = {}
        for r in rows:
            for side in "LR":
                for j, v in r.get(f"per_joint_hand_{side}_mm", {}).items():
                    hand_joints.setdefault(j, []).append(v)
        agg["per_joint_hand_mm"] = {j: _nanmean(v) for j, v in hand_joints.items()}
        summary[method] = agg
    return summary


def _fmt(v, digits=1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


TABLE_BODY = [("body MPJPE mm", "body_mpjpe_mm", 1), ("PA-MPJPE mm", "body_pa_mpjpe_mm", 1),
              ("2D px", "body_2d_px", 1), ("2D % box", "body_2d_box_pct", 2),
              ("accel mm/f²", "accel_error_mm_f2", 2), ("jitter mm/f³", "jitter_mm_f3", 2),
              ("foot slide mm/f", "foot_sliding_mm_f", 2), ("root traj %", "root_trajectory_pct", 1),
              ("camera rot °", "camera_rotation_deg", 2), ("contact F1", "foot_contact_f1", 3),
              ("body det", "body_detection_rate", 3)]
TABLE_HANDS = [("hand PA mm", "hands_pa_mpjpe_mm", 1), ("wrist-rel mm", "hands_mpjpe_wrist_mm", 1),
               ("F@5mm", "hands_f5", 3), ("F@15mm", "hands_f15", 3), ("hand 2D px", "hands_2d_px", 1),
               ("hand det", "hands_detection_rate", 3), ("L/R swap frames", "swap_frames", 0),
               ("frames/s", "fps_end_to_end", 1), ("peak MB", "peak_rss_mb", 0)]


def markdown_table(summary: dict, columns) -> str:
    head = "| method | " + " | ".join(c for c, _, _ in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    rows = [f"| {m} | " + " | ".join(_fmt(summary[m].get(k), d) for _, k, d in columns) + " |"
            for m in METHODS if m in summary]
    return "\n".join([head, rule] + rows)


# ---------------------------------------------------------------------------------------------------------------
# Suite mode
# ---------------------------------------------------------------------------------------------------------------
def scene_dir(scene, any_render: bool = False) -> Path:
    """The scene's render folder; ``any_render``: an older render of the same scene when the current one is not
    there (another renderer or motion-code version: the same description, usually the same pixels)."""
    from inference_server.config import cache_dir

    exact = cache_dir() / "bench" / "scenes" / f"{scene.name}-{scene.key()}"
    if any_render and not (exact / "truth.npz").exists():
        older = sorted(exact.parent.glob(f"{scene.name}-*/truth.npz"), key=lambda p: p.stat().st_mtime)
        if older:
            return older[-1].parent
    return exact


def ensure_rendered(scenes, any_render: bool = False) -> dict[str, float]:
    """Render the scenes that are not cached yet (``any_render``: nor rendered by an older version); returns
    seconds spent per rendered scene."""
    from bench.render import render_scene

    missing = [s for s in scenes if not (scene_dir(s, any_render) / "truth.npz").exists()]
    spent: dict[str, float] = {}
    if not missing:
        return spent
    from inference_server.anny_skeleton import load_anny_model

    model = load_anny_model()
    mocap = [m for s in missing if s.plays_mocap() for m in (s.motion, *(o.motion for o in s.others))]
    if mocap:   # CMU motions (bench/mocap_motions.py) join the renderer's table
        from bench.mocap_motions import register

        register(mocap, model)
    for i, scene in enumerate(missing, 1):
        log(f"rendering {i}/{len(missing)}: {scene.name} ({scene.describe()})")
        t0 = time.perf_counter()
        target = scene_dir(scene)
        render_scene(scene, target, model, log=log)
        for stale in target.parent.glob(f"{scene.name}-*"):  # older renders of this scene (other keys)
            if stale != target and not stale.name.split("-", 1)[1].count(".tmp-"):
                shutil.rmtree(stale, ignore_errors=True)
        spent[scene.name] = time.perf_counter() - t0
    return spent


def select_scenes(suite_name: str, names: str | list[str] | None = None) -> list:
    """The suite's scenes, or only those named (a comma-separated string or a list), in the suite's order.
    An unknown name stops with a message listing the suite's scenes."""
    from bench.scenes import suite

    scenes = suite(suite_name)
    if names is None:
        return scenes
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not wanted:
        raise SystemExit(f"--scenes: no scene names given; the {suite_name!r} suite has: "
                         + ", ".join(s.name for s in scenes))
    known = {s.name for s in scenes}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"--scenes: {', '.join(map(repr, unknown))} not in the {suite_name!r} suite; its scenes: "
                         + ", ".join(s.name for s in scenes))
    return [s for s in scenes if s.name in wanted]


def run_suite(name: str, device: str, out_root: Path, pictures: bool = True, scene_names: str | None = None,
              motion_model: Path | None = None, any_render: bool = False, motion_rows: bool = False,
              height_rows: bool = False) -> dict:
    """Run the suite (or the scenes named in ``scene_names``, comma-separated: a partial run, whose latest copy is
    ``<out>/<suite>-partial.json`` so that it never replaces the whole suite's ``<suite>.json``). ``motion_model``:
    the motion network every capture uses (default: the engine's own); ``motion_rows``: also the ``motion-fit`` and
    ``motion-net`` rows (two more captures per scene, from the cached detections); ``height_rows``: also the
    ``reel2rig+height`` row (the default capture told the subject's true height, ``--actor-height``: what the scale
    a single camera cannot see costs)."""
    from inference_server.anny_skeleton import load_skeleton

    scenes = select_scenes(name, scene_names)
    started = time.perf_counter()
    render_seconds = ensure_rendered(scenes, any_render)
    run_dir = out_root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    (run_dir / "takes").mkdir(parents=True, exist_ok=True)
    skel = load_skeleton()
    per_scene = []
    for i, scene in enumerate(scenes, 1):
        folder = scene_dir(scene, any_render)
        video = folder / "clip.mp4"
        with np.load(folder / "truth.npz", allow_pickle=False) as f:
            truth = {k: f[k] for k in f.files}
        log(f"scene {i}/{len(scenes)}: {scene.name} — capture")
        model = ("--motion-model", str(motion_model)) if motion_model is not None else ()
        summary = run_capture(video, run_dir / "takes" / scene.name, device, *model)
        network = None
        if motion_rows:   # the same clip's detections (cached by the capture above)
            log(f"scene {i}/{len(scenes)}: {scene.name} — captures with --motion fit and --motion network")
            network = {row: run_capture(video, run_dir / f"takes-{row}" / scene.name, device, "--motion", how,
                                        *model, fresh=False)
                       for row, how in (("motion-fit", "fit"), ("motion-net", "network"))}
        if height_rows:
            height = truth_stature(truth)
            log(f"scene {i}/{len(scenes)}: {scene.name} — capture told the actor's height ({height:.3f} m)")
            network = dict(network or {})
            network["reel2rig+height"] = run_capture(video, run_dir / "takes-height" / scene.name, device, *model,
                                                     "--actor-height", f"{height:.4f}", fresh=False)
        preds, det = predictions(video, summary, skel, device, network)
        results = {m: evaluate(truth, preds[m]) for m in METHODS if m in preds}
        n = len(truth["frame_ids"])
        entry = {"scene": scene.name, "description": scene.describe(), "frames": n, "capture": summary,
                 "methods": results}
        if network is not None:
            entry["captures_motion"] = network
        if pictures:
            take = Path(summary["take"]) if "take" in summary else None
            entry["pictures"] = scene_pictures(run_dir, scene.name, video, preds, results, truth,
                                               float(truth["fps"]), take, skel)
        per_scene.append(entry)
        ours = results["reel2rig"]
        log(f"  reel2rig: body PA {_fmt(ours['body_pa_mpjpe_mm'])} mm, hands PA "
            f"{_fmt(ours['hand_L_pa_mpjpe_mm'])}/{_fmt(ours['hand_R_pa_mpjpe_mm'])} mm, camera rot "
            f"{_fmt(ours['camera_rotation_deg'], 2)}°, contact F1 {_fmt(ours['foot_contact_f1'], 3)}"
            + (f"  [capture failed: {summary['error']}]" if "error" in summary else ""))
    summary = aggregate(per_scene)
    command = (f"./reel2rig bench {name} --device {device}" + (f" --scenes {scene_names}" if scene_names else "")
               + (f" --motion-model {motion_model}" if motion_model else "") + (" --motion-rows" if motion_rows else "")
               + (" --height-rows" if height_rows else "")
               + (" --any-render" if any_render else ""))
    report = {"suite": name, "device": device, "scenes": len(scenes), "frames": sum(s["frames"] for s in per_scene),
              "seconds": time.perf_counter() - started, "render_seconds": render_seconds,
              "command": command, "summary": summary, "per_scene": per_scene,
              "machine": _machine()}
    if scene_names:
        report["scene_names"] = [s.name for s in scenes]
    if pictures:
        from bench.figures import per_joint_error_bars

        report["pictures"] = [
            str(per_joint_error_bars({m: summary[m]["per_joint_body_mm"] for m in summary},
                                     run_dir / "per_joint_body.png", f"{name}: body error per joint (root-aligned)")),
            str(per_joint_error_bars({m: summary[m]["per_joint_hand_mm"] for m in summary},
                                     run_dir / "per_joint_hands.png", f"{name}: hand error per joint (PA)")),
        ]
    latest = out_root / (f"{name}-partial.json" if scene_names else f"{name}.json")
    _write_report(report, run_dir, latest)
    print(f"\n{name}: {len(scenes)} scenes, {report['frames']} frames, {report['seconds']:.0f} s "
          f"(rendering {sum(render_seconds.values()):.0f} s) — device {device}\n")
    print("Body (mean over scenes)\n" + markdown_table(summary, TABLE_BODY))
    print("\nHands and speed (mean over scenes; frames/s end to end on this machine)\n"
          + markdown_table(summary, TABLE_HANDS))
    stages = summary["reel2rig"]["fps"]
    print("\nreel2rig frames/s per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    print(f"\nresults: {run_dir / 'results.json'}\nlatest:  {latest}")
    return report


def _machine() -> dict:
    import platform

    return {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()}


def _write_report(report: dict, run_dir: Path, latest: Path) -> None:
    from inference_server.take import atomic_write_bytes

    data = (json.dumps(nan_to_none(report), indent=1) + "\n").encode()
    atomic_write_bytes(run_dir / "results.json", data)
    atomic_write_bytes(latest, data)


# ---------------------------------------------------------------------------------------------------------------
# Footage mode (no ground truth)
# ---------------------------------------------------------------------------------------------------------------
def footage_metrics(pred: Prediction, det) -> dict:
    """Agreement with the detector and smoothness, for one method on a real clip."""
    vis = np.nan_to_num(det.pose_2d[:, BODY_JOINTS, 2]) > 0.5
    observed = np.where(vis[..., None], det.pose_2d[:, BODY_JOINTS, :2], np.nan)
    body = pred.body_cam[:, BODY_JOINTS]
    rel = body - body[:, [6, 7]].mean(1, keepdims=True)
    out = {"method": pred.method,
           "body_2d_vs_detector_px": M.error_2d(pred.body_2d[:, BODY_JOINTS], observed),
           "body_2d_vs_detector_box_pct": M.error_2d_box_percent(pred.body_2d[:, BODY_JOINTS], observed),
           "jitter_mm_f3": 1000 * M.jitter(rel)}
    for side, key in ((0, "L"), (1, "R")):
        out[f"hand_{key}_2d_vs_detector_px"] = M.error_2d(pred.hands_2d[:, side], det.hands_2d[:, side, :, :2])
    out["seconds"] = dict(pred.seconds)
    return out


def run_footage(folder: Path, device: str, out_root: Path) -> dict:
    from inference_server.anny_skeleton import load_skeleton

    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise SystemExit(f"{folder}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) found")
    run_dir = out_root / f"footage-{time.strftime('%Y%m%d-%H%M%S')}"
    (run_dir / "takes").mkdir(parents=True, exist_ok=True)
    skel = load_skeleton()
    started = time.perf_counter()
    clips = []
    for i, video in enumerate(videos, 1):
        log(f"clip {i}/{len(videos)}: {video.name} — capture")
        summary = run_capture(video, run_dir / "takes" / video.stem, device)
        try:
            preds, det = predictions(video, summary, skel, device)
        except Exception as exc:  # an unreadable clip: say so and go on with the others
            clips.append({"clip": video.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        n = len(det.frame_ids)
        body_seen = np.isfinite(det.pose_2d[:, 0, 0])
        hands_seen = np.isfinite(det.hands_2d[..., 0, 0])
        wrists = det.hands_2d[:, :, 0, :2]
        flips = M.handedness_swaps(wrists[1:], wrists[:-1], margin_px=10.0)  # labels vs the previous frame
        entry = {"clip": video.name, "frames": n, "capture": summary,
                 "coverage": {"body": float(body_seen.mean()), "left_hand": float(hands_seen[:, 0].mean()),
                              "right_hand": float(hands_seen[:, 1].mean())},
                 "hand_label_flips": flips,
                 "methods": {m: footage_metrics(p, det) for m, p in preds.items()}}
        take = Path(summary["take"]) if "take" in summary else None
        entry["pictures"] = scene_pictures(run_dir, video.stem, video, preds, {}, None,
                                           float(np.median(1.0 / np.maximum(np.diff(det.timestamps), 1e-3)))
                                           if n > 1 else 25.0, take, skel)
        clips.append(entry)
        ours = entry["methods"]["reel2rig"]
        log(f"  coverage body {entry['coverage']['body']:.2f}, hands {entry['coverage']['left_hand']:.2f}/"
            f"{entry['coverage']['right_hand']:.2f}; reel2rig 2D vs detector {_fmt(ours['body_2d_vs_detector_px'])} px"
            + (f"  [capture failed: {summary['error']}]" if "error" in summary else ""))
    report = {"footage": str(folder), "device": device, "seconds": time.perf_counter() - started,
              "command": f"./reel2rig bench --footage {folder} --device {device}", "clips": clips,
              "machine": _machine()}
    _write_report(report, run_dir, out_root / "footage.json")
    print(f"\nfootage: {len(videos)} clips from {folder}\n")
    print("| clip | frames | body / L / R coverage | label flips | method | 2D vs detector px | jitter mm/f³ | "
          "frames/s |")
    print("|---|---|---|---|---|---|---|---|")
    for c in clips:
        if "error" in c:
            print(f"| {c['clip']} | — | — | — | — | {c['error']} | — | — |")
            continue
        cov = c["coverage"]
        for m in [m for m in METHODS if m in c["methods"]]:
            r = c["methods"][m]
            secs = [v for v in r["seconds"].values() if v]
            fps = c["frames"] / sum(secs) if secs else float("nan")
            print(f"| {c['clip']} | {c['frames']} | {cov['body']:.2f} / {cov['left_hand']:.2f} / "
                  f"{cov['right_hand']:.2f} | {c['hand_label_flips']['swap_events']} | {m} | "
                  f"{_fmt(r['body_2d_vs_detector_px'])} | {_fmt(r['jitter_mm_f3'], 2)} | {_fmt(fps)} |")
    print(f"\nresults: {run_dir / 'results.json'}")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="smoke", help="smoke (default) or standard")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the fit runs")
    parser.add_argument("--footage", type=Path, default=None, help="a folder of real clips (no ground truth)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results folder")
    parser.add_argument("--no-pictures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--render-only", action="store_true", help="render the suite's scenes and stop")
    parser.add_argument("--scenes", default=None, metavar="A,B,C",
                        help="only these scenes of the suite (comma-separated names), e.g. for quick iteration")
    parser.add_argument("--any-render", action="store_true",
                        help="use an older cached render of a scene when the current code's is not there")
    parser.add_argument("--motion-model", type=Path, default=None, metavar="FILE.onnx",
                        help="the learned motion network every capture uses (default: the engine's own)")
    parser.add_argument("--height-rows", action="store_true",
                        help="also the reel2rig+height row: the capture told the subject's true height "
                             "(--actor-height), the scale one camera cannot see")
    parser.add_argument("--motion-rows", action="store_true",
                        help="also the motion-fit row (captures with --motion fit: the fit alone) and the motion-net "
                             "row (--motion network: the network's body alone)")
    args = parser.parse_args(argv)
    from inference_server.config import prepare_environment

    prepare_environment()
    if args.footage is not None:
        if args.scenes is not None:
            raise SystemExit("--scenes picks scenes of a suite; --footage runs every clip of its folder")
        if not args.footage.is_dir():
            raise SystemExit(f"{args.footage}: not a folder; give a folder of video clips")
        args.out.mkdir(parents=True, exist_ok=True)
        run_footage(args.footage, args.device, args.out)
        return 0
    scenes = select_scenes(args.suite, args.scenes)  # fail early on an unknown suite or scene name
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        spent = ensure_rendered(scenes)
        print(f"rendered {len(spent)} scenes in {sum(spent.values()):.0f} s")
        return 0
    if args.motion_model is not None and not args.motion_model.is_file():
        raise SystemExit(f"--motion-model {args.motion_model}: no such file (train one: python -m "
                         "inference_server.motion_train --out DIR, then pass DIR/motion_net.onnx)")
    run_suite(args.suite, args.device, args.out, pictures=not args.no_pictures, scene_names=args.scenes,
              motion_model=args.motion_model, any_render=args.any_render, motion_rows=args.motion_rows,
              height_rows=args.height_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
