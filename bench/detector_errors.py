"""``./reel2rig bench detector-errors``: how MediaPipe's body landmarks fail on the ground-truth suites, in the terms
of the motion network's training corruption (``inference_server.motion_data_camera.CorruptionSettings``).

    ./reel2rig bench detector-errors [standard] [--any-render] [--scenes a,b]

Per scene the engine's own detection stage (cached per clip in the stage cache) is compared with the render's truth:
the MediaPipe-layout body markers the render projects (``body_markers_2d``) and their visibility (``body_visible``:
in the picture and not hidden). Only single-person scenes with a full or upper-body framing count (a hand close-up
has no body to miss). The figures:

``frame_dropout``      frames where the truth shows the person (≥ 4 markers visible) but no body was detected
``burst_rate``, ``burst_mean_frames``  runs of such frames: how often one starts (per frame) and their mean length
``landmark_dropout``   visible markers of detected frames that the detector marks unseen (visibility < ``SEEN``)
``phantom``            hidden markers of detected frames that the detector marks seen (it guesses occluded joints)
``noise_sigma``        the robust σ (1.4826 × median absolute deviation, per axis) of the seen, visible markers'
                       pixel error, over the person's box side (the training's box: ``BOX_PAD`` × the visible
                       markers' extent); ``noise_p95`` the 95th percentile of the error's length, same unit
``swap_rate``          detected frames whose arms or legs are labelled the wrong way round (swapping the pairs
                       halves the error and the error was over 10 % of the box), with the mean run length

Writes ``bench/results/detector-errors-<suite>.json`` and prints a Markdown table; the training corruption's defaults
cite it. Imports the engine's detection stage (MediaPipe); no bpy.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench import write_result

SEEN = 0.5          # a detected landmark counts as seen from this visibility up (as the motion adapter reads it)
SWAP_MIN_ERROR = 0.1


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a (T,) bool array."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [int(b - a) for a, b in zip(edges[::2], edges[1::2])]


def scene_errors(truth: dict, pose_2d: np.ndarray) -> dict:
    """The counts behind the figures for one clip: truth markers (T,33,2) + visibility (T,33); detections (T,33,3)."""
    from inference_server.motion_data_camera import ARM_PAIRS, BOX_PAD, LEG_PAIRS, swap_index

    gt = np.asarray(truth["body_markers_2d"], dtype=np.float64)                # (T,33,2), NaN: no such marker
    has = np.isfinite(gt[0, :, 0])                                             # (33,) markers the render has
    visible = np.asarray(truth["body_visible"], dtype=bool) & has[None]       # (T,33)
    shown = visible.sum(axis=1) >= 4                                           # the person is in the picture
    detected = np.isfinite(pose_2d[:, 0, 0])                                   # (T,)
    seen = detected[:, None] & (np.nan_to_num(pose_2d[..., 2]) >= SEEN) & has[None]
    lo = np.nanmin(np.where(visible[..., None], gt, np.nan), axis=1)
    hi = np.nanmax(np.where(visible[..., None], gt, np.nan), axis=1)
    side = BOX_PAD * np.nanmax(hi - lo, axis=1)                               # (T,) px
    both = detected & shown
    err = (pose_2d[..., :2] - gt) / side[:, None, None]                       # (T,33,2) in box sides
    use = both[:, None] & seen & visible
    axis_err = err[use]                                                        # (N,2)
    dist = np.linalg.norm(err, axis=-1)                                        # (T,33)
    swaps = np.zeros(len(gt), dtype=bool)
    for pairs in (ARM_PAIRS, LEG_PAIRS):
        idx = sorted({i for p in pairs for i in p})
        perm = swap_index(pairs)[idx]
        ok = visible[:, idx] & visible[:, perm] & seen[:, idx]
        n_ok = np.maximum(ok.sum(axis=1), 1)
        as_is = np.where(ok, dist[:, idx], 0.0).sum(axis=1) / n_ok
        swapped = np.where(ok, np.linalg.norm((pose_2d[:, idx, :2] - gt[:, perm]) / side[:, None, None], axis=-1),
                           0.0).sum(axis=1) / n_ok
        swaps |= both & (ok.sum(axis=1) >= 2) & (as_is > SWAP_MIN_ERROR) & (swapped < 0.5 * as_is)
    missing = shown & ~detected
    return {"frames": int(len(gt)), "shown": int(shown.sum()), "missing": int(missing.sum()),
            "bursts": _runs(missing), "visible": int((both[:, None] & visible).sum()),
            "dropped": int((both[:, None] & visible & ~seen).sum()),
            "hidden": int((both[:, None] & has[None] & ~visible).sum()),
            "phantom": int((both[:, None] & has[None] & ~visible & seen).sum()),
            "axis_errors": axis_err, "dist": dist[use], "swap_runs": _runs(swaps), "detected": int(both.sum())}


def summarise(parts: list[dict]) -> dict:
    """The figures of the module docstring over every scene's counts."""
    total = lambda key: sum(p[key] for p in parts)  # noqa: E731
    bursts = [b for p in parts for b in p["bursts"]]
    swaps = [r for p in parts for r in p["swap_runs"]]
    axis = np.concatenate([p["axis_errors"] for p in parts]) if parts else np.zeros((0, 2))
    dist = np.concatenate([p["dist"] for p in parts]) if parts else np.zeros(0)
    mad = np.median(np.abs(axis - np.median(axis, axis=0)), axis=0) if len(axis) else np.full(2, np.nan)
    return {
        "frames": total("frames"), "frames_with_person": total("shown"),
        "frame_dropout": total("missing") / max(total("shown"), 1),
        "burst_rate": len(bursts) / max(total("shown"), 1),
        "burst_mean_frames": float(np.mean(bursts)) if bursts else 0.0,
        "burst_max_frames": max(bursts, default=0),
        "landmark_dropout": total("dropped") / max(total("visible"), 1),
        "phantom": total("phantom") / max(total("hidden"), 1),
        "noise_sigma": float(1.4826 * mad.mean()), "noise_p95": float(np.percentile(dist, 95)) if len(dist) else None,
        "swap_rate": sum(swaps) / max(total("detected"), 1),
        "swap_mean_frames": float(np.mean(swaps)) if swaps else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench detector-errors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="standard")
    parser.add_argument("--any-render", action="store_true", help="use an older cached render of a scene")
    parser.add_argument("--scenes", default=None, help="comma-separated scene names (default: the whole suite)")
    args = parser.parse_args(argv)
    from bench.perception import _scene_video
    from bench.run import select_scenes
    from inference_server.capture import detect_stage
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe

    rows, parts = [], []
    for scene in select_scenes(args.suite, args.scenes):
        if scene.others or scene.framing == "hands":
            continue
        folder = _scene_video(scene, args.any_render)
        video = folder / "clip.mp4"
        with np.load(folder / "truth.npz") as f:
            truth = {k: f[k] for k in ("body_markers_2d", "body_visible")}
        det = detect_stage(video, probe(video), CaptureOptions(), lambda *a: None, lambda: False)[0]
        part = scene_errors(truth, np.asarray(det.pose_2d, dtype=np.float64))
        parts.append(part)
        one = summarise([part])
        rows.append({"scene": scene.name, **{k: one[k] for k in ("frame_dropout", "landmark_dropout", "phantom",
                                                                  "noise_sigma", "swap_rate")}})
        print(f"[detector-errors] {scene.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()
                                                             if k != "scene"), flush=True)
    report = {"suite": args.suite, "seen_visibility": SEEN, "overall": summarise(parts), "scenes": rows,
              "command": "./reel2rig bench detector-errors " + " ".join(argv if argv is not None else sys.argv[1:])}
    path = write_result(f"detector-errors-{args.suite}", report)
    o = report["overall"]
    print("\n| figure | value |\n|---|---|")
    for key, value in o.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
