"""``./reel2rig bench fast-figure [--out FILE.png]``: the `punch` scene's wrist speed, frame by frame — the truth, raw
MediaPipe, and the fit with the quadratic smoother alone (``fast_move`` 0) and with fast moves kept (the default).
The figure in README › World › Fast moves. Needs the fast suite's renders (``./reel2rig bench fast --render-only``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WRISTS, HIPS = (15, 16), (23, 24)


def _wrist_speed(body: np.ndarray) -> np.ndarray:
    """(T,33,3) m → (T−1,) the faster wrist's frame-to-frame move relative to the hips, mm."""
    rel = body[:, WRISTS] - body[:, HIPS].mean(axis=1, keepdims=True)
    return 1000.0 * np.linalg.norm(np.diff(rel, axis=0), axis=-1).max(axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench fast-figure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default="punch", help="a scene of the fast suite (default punch)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "fast_jab_wrist_speed.png")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench import methods as M
    from bench.fit import _fit_row, scene_inputs
    from bench.run import select_scenes
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.fit import FitSettings
    from inference_server.take import atomic_write_bytes

    (scene,) = select_scenes("fast", args.scene)
    _, _, det, truth, K = scene_inputs(scene, True)
    skel = load_skeleton()
    curves = {"truth": _wrist_speed(truth["body_markers_cam"])}
    curves["raw MediaPipe"] = _wrist_speed(M.raw_mediapipe(det, 0.0).body_cam)
    for label, settings in (("fit, smoother alone", FitSettings(fast_move=0.0)),
                            ("fit, fast moves kept (default)", FitSettings())):
        curves[label] = _wrist_speed(_fit_row("lm", det, skel, K, settings)[0].body_cam)
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    styles = {"truth": ("black", 2.2), "raw MediaPipe": ("#999999", 1.0),
              "fit, smoother alone": ("#d62728", 1.4), "fit, fast moves kept (default)": ("#1f77b4", 1.8)}
    for label, y in curves.items():
        colour, width = styles[label]
        ax.plot(np.arange(1, len(y) + 1), y, color=colour, linewidth=width, label=label)
    ax.set_xlabel("frame")
    ax.set_ylabel("wrist speed, mm/frame\n(relative to the hips)")
    ax.set_title(f"'{scene.name}' ({scene.describe().split(',')[0]}): a jab's speed, frame by frame")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    atomic_write_bytes(args.out, tmp.read_bytes())
    tmp.unlink()
    print(f"written {args.out}")
    return 0
