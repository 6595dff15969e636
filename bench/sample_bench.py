"""Accuracy and speed on the sample clip, against two baselines measured in the same run.

    .venv/bin/python bench/sample_bench.py [--out out/bench_sample.json]

Methods, all on the same MediaPipe Holistic detections of ``samples/sample_wave.mp4``:
  raw-mediapipe   MediaPipe's own metric world landmarks (no model) — baseline 1 of the benchmark issue;
  direct-mapping  our bone-direction initialisation alone (each bone swung onto the landmark direction, the way
                  BlendArMocap-style add-ons work) — baseline 2;
  fit             the full fit (what `capture` runs).
Body accuracy is PA-MPJPE over the 12 limb landmarks (shoulders, elbows, wrists, hips, knees, ankles), compared with
the same points on the ground-truth Anny; hands are PA-MPJPE over wrist + 15 finger joints per hand (not available
for raw MediaPipe: Holistic gives no metric hand landmarks). Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.metrics import error_2d, pa_mpjpe, project, to_camera  # noqa: E402
from inference_server.config import prepare_environment  # noqa: E402

LIMB_LANDMARKS = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def markers_world(skel, local_aa, root):
    from inference_server.anny_skeleton import attached_points
    from rigs.fk import forward_kinematics

    W = forward_kinematics(skel.rest, skel.parents, local_aa, root)
    return attached_points(W, skel.body_marker_bone[LIMB_LANDMARKS], skel.body_marker_local[LIMB_LANDMARKS]), W


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "out" / "bench_sample.json"))
    args = parser.parse_args(argv)
    prepare_environment()
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.capture import default_intrinsics, detect_stage
    from inference_server.fit import R_WORLD2CAM_LEVEL, FitSettings, fit_sequence
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe

    video = ROOT / "samples" / "sample_wave.mp4"
    truth = np.load(ROOT / "samples" / "sample_wave_truth.npz")
    info = probe(video)
    options = CaptureOptions()
    t0 = time.perf_counter()
    det = detect_stage(video, info, options, lambda *a: None, lambda: False)
    detect_s = time.perf_counter() - t0
    skel = load_skeleton()
    K = default_intrinsics(info.width, info.height, None)
    n = len(det.frame_ids)

    true_markers, true_W = markers_world(skel, truth["local_rotations_aa"], truth["root_position_world"])
    true_cam = to_camera(true_markers, truth["R_world2cam"], truth["t_world2cam"])
    names = skel.names
    hands = {s: [names.index(f"wrist.{s}")] + [i for i, b in enumerate(names) if b.startswith("finger") and
                                                b.endswith("." + s)] for s in "LR"}
    true_joints = to_camera(truth["joints_world"], truth["R_world2cam"], truth["t_world2cam"])

    true_px = project(true_cam, truth["K"])
    rows = []
    raw = det.pose_world[:, LIMB_LANDMARKS]  # camera-aligned axes, hip-centred, metres
    rows.append({"method": "raw-mediapipe", "seconds": 0.0, "body_pa_mpjpe_mm": 1000 * pa_mpjpe(raw, true_cam),
                 "body_2d_px": error_2d(det.pose_2d[:, LIMB_LANDMARKS, :2], true_px),
                 "hand_L_pa_mpjpe_mm": None, "hand_R_pa_mpjpe_mm": None})
    for method, iterations in (("direct-mapping", 0), ("fit", FitSettings.iterations)):
        settings = dataclasses.replace(FitSettings(), iterations=iterations)
        t0 = time.perf_counter()
        fit = fit_sequence(skel, det.pose_2d, det.pose_world, det.hands_2d, K, settings)
        seconds = time.perf_counter() - t0
        m, W = markers_world(skel, fit.local_rotations_aa, fit.root_position_world)
        R = np.broadcast_to(R_WORLD2CAM_LEVEL, (n, 3, 3))
        cam = to_camera(m, R, np.zeros((n, 3)))
        joints = to_camera(W[..., :3, 3], R, np.zeros((n, 3)))
        row = {"method": method, "seconds": seconds, "body_pa_mpjpe_mm": 1000 * pa_mpjpe(cam, true_cam),
               "body_2d_px": error_2d(project(cam, K), true_px)}
        for s, idx in hands.items():
            row[f"hand_{s}_pa_mpjpe_mm"] = 1000 * pa_mpjpe(joints[:, idx], true_joints[:, idx])
        rows.append(row)

    print(f"sample clip: {n} frames {info.width}x{info.height}; detection {detect_s:.2f} s "
          f"({'cached' if det.detect_seconds == 0 else f'{n / det.detect_seconds:.1f} frames/s'})")
    print(f"{'method':<16}{'time s':>8}{'body PA-MPJPE mm':>19}{'body 2D px':>12}{'hand L mm':>11}{'hand R mm':>11}")
    for r in rows:
        fmt = lambda v: f"{v:.1f}" if v is not None else "-"  # noqa: E731
        print(f"{r['method']:<16}{r['seconds']:>8.2f}{fmt(r['body_pa_mpjpe_mm']):>19}{fmt(r['body_2d_px']):>12}"
              f"{fmt(r['hand_L_pa_mpjpe_mm']):>11}{fmt(r['hand_R_pa_mpjpe_mm']):>11}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"frames": n, "detect_seconds": detect_s, "rows": rows}, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
