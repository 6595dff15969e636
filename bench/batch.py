"""``./reel2rig bench batch``: the batch command's throughput and memory, each against a baseline in the same run.

    ./reel2rig bench batch [smoke|standard] [--any-render] [--workers 1,2] [--no-ray] [--long 250,2000,6000]

1. **Clips per hour** on the suite's rendered clips (standard: 24): ``./reel2rig batch`` with 1 local worker (the
   baseline), then each other ``--workers`` count, then through a local Ray cluster with the largest count. Every run
   starts cold: its own stage cache (no detection reused) and output folder; Anny's model cache is shared, as on
   any installed machine. The exports are the default (FBX of Reel2Rig's armature) plus the overlay thumbnails.
   The Ray overhead is the Ray run's wall time over the local run's with the same worker count.
2. **Peak memory per worker on a long clip**: one clip made by looping a suite clip to each length of ``--long``
   (frames), converted by one worker with ``--part-frames`` (default 1000 here); the engine's and the Blender step's peak resident memory (``VmHWM`` /
   ``ru_maxrss``), and the growth per 1,000 frames between the two longest (both past the fit's 400-frame window),
   from which an hour at 30 fps is extrapolated.

Writes ``bench/results/batch-<suite>.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import write_result

ROOT = Path(__file__).resolve().parents[1]


def _clips(suite: str, any_render: bool, folder: Path) -> list[Path]:
    from bench.perception import _scene_video
    from bench.run import select_scenes

    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for scene in select_scenes(suite):
        video = _scene_video(scene, any_render) / "clip.mp4"
        link = folder / f"{scene.name}.mp4"
        if not link.exists():
            link.symlink_to(video)
        clips.append(link)
    return clips


def _run_batch(inputs: list[Path], out: Path, cache: Path, *extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), REEL2RIG_CACHE=str(cache))
    cmd = [sys.executable, "-m", "batch", *map(str, inputs), "--out", str(out), "--plain", *extra]
    began = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - began
    data = json.loads((out / "batch_summary.json").read_text())
    clips = data["clips"]
    ok = sum(c["status"] == "ok" for c in clips)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr[-3000:])
    return {"command": " ".join(["./reel2rig batch", "CLIPS", "--out", "OUT", *extra]), "exit": proc.returncode,
            "seconds": round(seconds, 1), "clips": len(clips), "ok": ok,
            "clips_per_hour": round(3600.0 * len(clips) / seconds, 1),
            "frames": sum(c.get("frames", 0) for c in clips),
            "engine_peak_rss_mb": max((c.get("engine_peak_rss_mb") or 0 for c in clips), default=0),
            "blender_peak_rss_mb": max((c.get("blender_peak_rss_mb") or 0 for c in clips), default=0),
            "failed": [(c["name"], c.get("error")) for c in clips if c["status"] != "ok"]}


def throughput(suite: str, any_render: bool, workers: list[int], ray: bool, work: Path) -> dict:
    clips = _clips(suite, any_render, work / "clips")
    runs = {}
    for count in workers:
        name = f"local x{count}"
        print(f"[bench batch] {name}: {len(clips)} clips", flush=True)
        runs[name] = _run_batch(clips, work / f"out-local{count}", work / f"cache-local{count}", "--workers",
                                str(count))
        print(f"  {runs[name]['seconds']} s, {runs[name]['clips_per_hour']} clips/hour", flush=True)
    if ray:
        count = max(workers)
        name = f"ray x{count}"
        print(f"[bench batch] {name}: {len(clips)} clips", flush=True)
        runs[name] = _run_batch(clips, work / f"out-ray{count}", work / f"cache-ray{count}", "--ray", "--workers",
                                str(count))
        local = runs[f"local x{count}"]
        runs[name]["overhead_vs_local"] = round(runs[name]["seconds"] / local["seconds"] - 1.0, 3)
        print(f"  {runs[name]['seconds']} s, overhead {100 * runs[name]['overhead_vs_local']:.1f} %", flush=True)
    base = runs[f"local x{workers[0]}"]
    for run in runs.values():
        run["speedup_vs_baseline"] = round(base["seconds"] / run["seconds"], 2)
    return runs


def _loop_clip(source: Path, frames: int, out: Path) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    written = 0
    while written < frames:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
        writer.write(frame)
        written += 1
    writer.release()
    cap.release()
    return out


def long_clip_memory(suite: str, any_render: bool, lengths: list[int], work: Path, part_frames: int) -> dict:
    source = _clips(suite, any_render, work / "clips")[0]
    rows = []
    for frames in lengths:
        clip = _loop_clip(source, frames, work / f"long_{frames}.mp4")
        print(f"[bench batch] long clip: {frames} frames", flush=True)
        run = _run_batch([clip], work / f"out-long{frames}", work / f"cache-long{frames}", "--part-frames",
                         str(part_frames))
        rows.append({"frames": frames, "seconds": run["seconds"], "ok": run["ok"],
                     "engine_peak_rss_mb": run["engine_peak_rss_mb"],
                     "blender_peak_rss_mb": run["blender_peak_rss_mb"]})
        print(f"  engine {run['engine_peak_rss_mb']} MB, blender {run['blender_peak_rss_mb']} MB, "
              f"{run['seconds']} s", flush=True)
    # growth between the two longest clips: both past the fit's window (400 frames), whose workspace is fixed
    first, last = rows[-2] if len(rows) > 1 else rows[0], rows[-1]
    span = (last["frames"] - first["frames"]) / 1000.0
    growth = {}
    for key in ("engine_peak_rss_mb", "blender_peak_rss_mb"):
        per_k = (last[key] - first[key]) / span if span else 0.0
        growth[key] = {"mb_per_1000_frames": round(per_k, 2),
                       "hour_at_30fps_mb": round(first[key] + per_k * (108.0 - first["frames"] / 1000.0), 0)}
    return {"source": source.name, "rows": rows, "growth": growth, "part_frames": part_frames}


def table(report: dict) -> str:
    lines = [f"Batch throughput, {report['suite']} suite ({report['clips']} clips), {report['machine']}:", "",
             "| run | wall time | clips/hour | vs 1 worker | Ray overhead | failed |", "|---|---|---|---|---|---|"]
    for name, run in report["throughput"].items():
        overhead = f"{100 * run['overhead_vs_local']:+.1f} %" if "overhead_vs_local" in run else "–"
        lines.append(f"| {name} | {run['seconds']:.0f} s | {run['clips_per_hour']:.0f} | "
                     f"{run['speedup_vs_baseline']:.2f}× | {overhead} | {len(run['failed'])} |")
    memory = report.get("memory")
    if memory:
        lines += ["", f"Peak memory of one worker on a long clip ({memory['source']} looped; Blender step in parts of "
                  f"{memory.get('part_frames')} frames):", "",
                  "| frames | wall time | engine peak | Blender step peak |", "|---|---|---|---|"]
        for row in memory["rows"]:
            lines.append(f"| {row['frames']} | {row['seconds']:.0f} s | {row['engine_peak_rss_mb']:.0f} MB | "
                         f"{row['blender_peak_rss_mb']:.0f} MB |")
        g = memory["growth"]
        lines += ["", f"Growth per 1,000 frames: engine {g['engine_peak_rss_mb']['mb_per_1000_frames']} MB, Blender "
                  f"{g['blender_peak_rss_mb']['mb_per_1000_frames']} MB; an hour at 30 fps (108,000 frames) "
                  f"extrapolates to engine {g['engine_peak_rss_mb']['hour_at_30fps_mb']:.0f} MB, Blender "
                  f"{g['blender_peak_rss_mb']['hour_at_30fps_mb']:.0f} MB."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="standard")
    parser.add_argument("--any-render", action="store_true", help="use an older cached render of a scene")
    parser.add_argument("--workers", default="1,2", help="local worker counts; the first is the baseline")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--long", default="250,2000,6000", help="frame counts of the long-clip memory runs ('' "
                                                                "skips them)")
    parser.add_argument("--part-frames", type=int, default=1000,
                        help="the long-clip runs' --part-frames (default 1000, so the longer clips go in parts)")
    parser.add_argument("--no-throughput", action="store_true", help="only the long-clip memory runs")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (outputs of every run)")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    lengths = [int(n) for n in args.long.split(",") if n.strip()]
    work = Path(tempfile.mkdtemp(prefix="reel2rig-bench-batch-"))
    import platform

    report: dict = {"suite": args.suite, "machine": f"{platform.machine()}, {os.cpu_count()} cores (CPU)",
                    "command": "./reel2rig bench batch " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:
        if not args.no_throughput:
            report["throughput"] = throughput(args.suite, args.any_render, workers, not args.no_ray, work)
            report["clips"] = next(iter(report["throughput"].values()))["clips"]
        else:
            report["throughput"], report["clips"] = {}, 0
        if lengths:
            report["memory"] = long_clip_memory(args.suite, args.any_render, lengths, work, args.part_frames)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    path = write_result(f"batch-{args.suite}{'-memory' if args.no_throughput else ''}", report)
    print(table(report))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
