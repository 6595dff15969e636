"""``./reel2rig bench shape [smoke|standard|heldout]``: the body shape estimated from the pictures against the truth
(the experiment of bench/body_shape.py; not in the product).

Per scene with a body in view: a first fit (Anny's average skeleton, hands left out), the proportions it leaves
unexplained (`body_shape.observed_proportions`), the phenotype estimated from them, and against the truth's
phenotype: the stature error and the proportion error (RMS over the segments of the centred log lengths, %) of the
estimated body and of Anny's average one. ``--leave-one-out`` adds the same with each scene's estimate calibrated on
the other scenes only (the honest figure on the suite the constants were calibrated on). ``--calibrate`` prints the detector's bias and noise per segment
(MediaPipe's landmarks against Anny's keypoints, for the truth's own body) over the suite's scenes, for
`body_shape.DETECTOR_BIAS` and `DETECTOR_NOISE`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from inference_server.take import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]


def scene_row(scene, any_render: bool, skel, rest) -> dict | None:
    from bench.body_shape import SEGMENTS, first_fit_proportions
    from bench.fit import scene_inputs

    _, _, det, truth, K = scene_inputs(scene, any_render)
    if not np.isfinite(det.pose_2d[:, 0, 0]).any():
        return None
    truth_p = np.asarray(truth["phenotype"], np.float64)
    seen = first_fit_proportions(det, skel, K)
    row = {"scene": scene.name, "phenotype": scene.phenotype, "segments_seen": int(seen.seen.sum()),
           "frames_per_segment": dict(zip(SEGMENTS, seen.frames.tolist())),
           "log_ratio": [float(v) if np.isfinite(v) else None for v in seen.log_ratio], "truth": truth_p.tolist()}
    return {**row, **scored(row, rest)}


def scored(row: dict, rest, bias: np.ndarray | None = None, noise: np.ndarray | None = None) -> dict:
    """A scene's estimate (with these calibration constants; None: body_shape's) scored against its truth."""
    from bench.body_shape import MIN_FRAMES, Proportions, estimate_phenotype
    from inference_server.anny_skeleton import DEFAULT_PHENOTYPE, phenotype_key, stature_m

    log_ratio = np.array([np.nan if v is None else v for v in row["log_ratio"]])
    frames = np.array(list(row["frames_per_segment"].values()))
    est = estimate_phenotype(Proportions(log_ratio, frames), rest, bias=bias, noise=noise)
    truth_p, est_p = np.asarray(row["truth"]), DEFAULT_PHENOTYPE if est is None else est
    truth_len, default_len, est_len = (rest.log_lengths(p) for p in (truth_p, DEFAULT_PHENOTYPE, est_p))

    def prop_err(x: np.ndarray) -> float:
        d = (x - x.mean()) - (truth_len - truth_len.mean())
        return float(100.0 * np.sqrt(np.mean(d ** 2)))

    statures = {name: stature_m(rest.model, phenotype_key(p)) for name, p in
                (("truth", truth_p), ("default", DEFAULT_PHENOTYPE), ("estimated", est_p))}
    # What the detector shows for the truth's own body: the bias, per segment (calibration).
    bias_seen = log_ratio - (truth_len - default_len)
    return {"estimated": est is not None, "estimate": est_p.tolist(), "stature_m": statures,
            "stature_error_m": {k: abs(statures[k] - statures["truth"]) for k in ("default", "estimated")},
            "proportion_error_pct": {"default": prop_err(default_len), "estimated": prop_err(est_len)},
            "bias": [float(b) if ok else None for b, ok in zip(bias_seen, (frames >= MIN_FRAMES)
                                                                & np.isfinite(log_ratio))]}


def leave_one_out(rows: list[dict], rest) -> list[dict]:
    """Each scene scored with the bias and noise calibrated on the other scenes."""
    out = []
    for k, row in enumerate(rows):
        others = calibration(rows[:k] + rows[k + 1:])
        out.append({**row, **scored(row, rest, np.array(others["bias"]), np.array(others["noise"]))})
    return out


def summary(rows: list[dict]) -> dict:
    out = {"scenes": len(rows), "estimated": sum(r["estimated"] for r in rows)}
    for key in ("stature_error_m", "proportion_error_pct"):
        out[key] = {k: float(np.mean([r[key][k] for r in rows])) for k in ("default", "estimated")}
    return out


def calibration(rows: list[dict]) -> dict[str, list[float]]:
    """The per-segment bias (median) and noise (standard deviation, at least 1 %) of the log ratios the detector shows
    for the truth's own body, each scene's centred over the segments it saw."""
    from bench.body_shape import SEGMENTS

    B = np.array([[np.nan if b is None else b for b in r["bias"]] for r in rows], np.float64)
    B = B[np.isfinite(B).sum(axis=1) >= 4]
    if not len(B):
        raise SystemExit("no scene showed enough segments: nothing to calibrate on")
    B = B - np.nanmean(B, axis=1, keepdims=True)
    bias, noise = np.nanmedian(B, axis=0), np.fmax(np.nanstd(B, axis=0), 0.01)
    if not np.isfinite(bias).all():
        raise SystemExit("some segment was never seen: " + ", ".join(n for n, b in zip(SEGMENTS, bias)
                                                                     if not np.isfinite(b)))
    return {"bias": np.round(bias - bias.mean(), 4).tolist(), "noise": np.round(noise, 3).tolist()}


def table(report: dict) -> str:
    lines = [f"{'scene':22s} {'phenotype':18s} seg  stature truth / average / estimated (m)   proportions avg / est (%)"]
    for r in report["rows"]:
        s, p = r["stature_m"], r["proportion_error_pct"]
        lines.append(f"{r['scene']:22s} {r['phenotype']:18s} {r['segments_seen']:3d}  {s['truth']:.2f} / "
                     f"{s['default']:.2f} / {s['estimated']:.2f}{'' if r['estimated'] else ' (kept average)':17s}"
                     f"      {p['default']:.1f} / {p['estimated']:.1f}")
    m = report["summary"]
    lines.append(f"mean over {m['scenes']} scenes ({m['estimated']} estimated): stature error "
                 f"{100 * m['stature_error_m']['default']:.1f} cm average body → "
                 f"{100 * m['stature_error_m']['estimated']:.1f} cm estimated; proportion error "
                 f"{m['proportion_error_pct']['default']:.2f} % → {m['proportion_error_pct']['estimated']:.2f} %")
    if "calibration" in report:
        lines.append(f"DETECTOR_BIAS = np.array({report['calibration']['bias']})")
        lines.append(f"DETECTOR_NOISE = np.array({report['calibration']['noise']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench shape", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default="smoke", help="smoke (default), standard or heldout")
    parser.add_argument("--any-render", action="store_true",
                        help="use an older cached render of a scene instead of rendering it again")
    parser.add_argument("--scenes", default=None, help="only these scenes of the suite (comma-separated)")
    parser.add_argument("--calibrate", action="store_true", help="also print the detector's bias per segment")
    parser.add_argument("--leave-one-out", action="store_true",
                        help="also score each scene with the constants calibrated on the other scenes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    from bench.run import select_scenes
    from bench.body_shape import RestProportions
    from inference_server.anny_skeleton import load_skeleton

    skel, rest = load_skeleton(), RestProportions()
    rows = []
    for scene in select_scenes(args.suite, args.scenes):
        row = scene_row(scene, args.any_render, skel, rest)
        if row is not None:
            rows.append(row)
            print(f"  {scene.name}: stature {row['stature_m']['truth']:.2f} m, estimated "
                  f"{row['stature_m']['estimated']:.2f} m", file=sys.stderr)
    report = {"suite": args.suite, "command": f"./reel2rig bench shape {args.suite}"
              + (" --any-render" if args.any_render else "") + (f" --scenes {args.scenes}" if args.scenes else ""),
              "rows": rows, "summary": summary(rows)}
    if args.calibrate:
        report["calibration"] = calibration(rows)
    if args.leave_one_out:
        loo = leave_one_out(rows, rest)
        report["leave_one_out"] = {"rows": loo, "summary": summary(loo)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f"shape-{args.suite}.json" if not args.scenes else f"shape-{args.suite}-partial.json")
    atomic_write_bytes(path, json.dumps(report, indent=1, default=float).encode())
    print(table(report))
    if args.leave_one_out:
        m = report["leave_one_out"]["summary"]
        print(f"left one out: stature error {100 * m['stature_error_m']['default']:.1f} cm average body → "
              f"{100 * m['stature_error_m']['estimated']:.1f} cm estimated; proportion error "
              f"{m['proportion_error_pct']['default']:.2f} % → {m['proportion_error_pct']['estimated']:.2f} %")
    print(f"\nwritten {path}")
    return 0
