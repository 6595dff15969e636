"""``./reel2rig bench stage-memory``: where a long capture's memory goes, stage by stage.

    ./reel2rig bench stage-memory [smoke|standard] [--any-render] [--long 2000,6000] [--cache DIR]

One clip per ``--long`` length, made by looping the suite's first clip (as ``bench batch`` makes its long clips),
captured in a fresh engine process of its own (``python -m bench.stage_memory --one CLIP``) that samples its resident
memory every 5 ms and keeps the peak of each stage: decode + detect, the fit, the world stage and the writing of the
Take (its posing, mesh and file). The growth per 1,000 frames between the two longest clips tells which stage holds
what per frame; ``bench batch`` measures the same engine's overall peak (``VmHWM``) through ``./reel2rig batch``.

``--cache DIR``: the stage cache to use (default: a new one per run, so every clip is detected). A second run with
the same ``--cache`` reuses the detections and profiles the later stages alone, in minutes instead of an hour.

Writes ``bench/results/stage-memory-<suite>.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from inference_server.take import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: The engine's progress callbacks mark the stages (decode + detect, fit, world, write); calls of these functions
#: mark themselves: (name, module, function).
WRAPPED = (("fit", "inference_server.fit", "fit_sequence"), ("world", "inference_server.world", "ground"),
           ("write: posing", "rigs.fk", "bone_heads"), ("write: mesh", "inference_server.capture", "_add_mesh"),
           ("write: file", "inference_server.capture", "write_take"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def profile_one(clip: Path, out: Path) -> dict:
    """Capture ``clip`` in this process; the peak resident memory (MB) of each stage, sampled every 5 ms."""
    import importlib

    from inference_server import config
    from inference_server.server import compute_devices

    config.limit_heap_growth()   # as the engine does: __main__, then `initialize` imports torch (compute_devices) ...
    compute_devices()
    stage = ["start"]
    peaks: dict[str, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = _rss_mb()
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss)
            time.sleep(0.005)

    def wrap(name: str, module: str, attr: str) -> None:
        mod = importlib.import_module(module)
        fn = getattr(mod, attr)

        def inner(*args, **kwargs):
            before, stage[0] = stage[0], name
            try:
                return fn(*args, **kwargs)
            finally:
                stage[0] = before
        setattr(mod, attr, inner)

    for name, module, attr in WRAPPED:
        wrap(name, module, attr)
    from inference_server.pipeline import CaptureOptions, run_capture

    def progress(name: str, *_args) -> None:   # the engine's own stage names; decode and detect are one stream
        stage[0] = "decode + detect" if name in ("decode", "detect") else name

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    began = time.perf_counter()
    box: dict = {}   # ... and a job runs in a thread of its own (jobs.py)
    job = threading.Thread(target=lambda: box.update(result=run_capture(clip, out, CaptureOptions(), progress,
                                                                        lambda: False)))
    job.start()
    job.join()
    if "result" not in box:
        raise SystemExit(f"the capture of {clip} failed (see above)")
    result = box["result"]
    seconds = time.perf_counter() - began
    done.set()
    thread.join()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) / 1e3 for line in f if line.startswith("VmHWM:"))
    return {"clip": clip.name, "frames": result.frames, "seconds": round(seconds, 1), "vm_hwm_mb": round(hwm, 1),
            "stages": {k: round(v, 1) for k, v in peaks.items() if k != "start"},
            "detect_cached": bool(result.stages.get("detect", {}).get("cached"))}


def _run_one(clip: Path, cache: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), REEL2RIG_CACHE=str(cache))
    cmd = [sys.executable, "-m", "bench.stage_memory", "--one", str(clip), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the capture of {clip} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(report: dict) -> str:
    rows = report["rows"]
    names = list(dict.fromkeys(k for row in rows for k in row["stages"]))
    lines = [f"Peak resident memory per stage of one capture ({report['source']} looped), MB:", "",
             "| stage | " + " | ".join(f"{row['frames']} frames" for row in rows) + " | MB per 1,000 frames |",
             "|---|" + "---|" * (len(rows) + 1)]
    for name in names:
        cells = [f"{row['stages'].get(name, float('nan')):.0f}" for row in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {report['growth'].get(name, float('nan')):.1f} |")
    lines.append("| VmHWM | " + " | ".join(f"{row['vm_hwm_mb']:.0f}" for row in rows) +
                 f" | {report['growth'].get('VmHWM', float('nan')):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench stage-memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="standard")
    parser.add_argument("--any-render", action="store_true", help="use an older cached render of a scene")
    parser.add_argument("--long", default="2000,6000", help="frame counts of the looped clips")
    parser.add_argument("--cache", type=Path, help="stage cache to use and keep (default: a new one)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)   # the child: profile this clip
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(profile_one(args.one, args.out)))
        return 0
    from bench.batch import _clips, _loop_clip

    lengths = [int(n) for n in args.long.split(",") if n.strip()]
    work = Path(tempfile.mkdtemp(prefix="reel2rig-bench-stage-memory-"))
    cache = args.cache or work / "cache"
    anny = cache / "stages"
    anny.mkdir(parents=True, exist_ok=True)
    try:
        from inference_server.config import stage_cache_dir

        for made in stage_cache_dir().glob("anny_*.npz"):   # Anny's skeleton and mesh: as on an installed machine
            if not (anny / made.name).exists():
                shutil.copy2(made, anny / made.name)
        source = _clips(args.suite, args.any_render, work / "clips")[0]
        rows = []
        for frames in lengths:
            clip = _loop_clip(source, frames, work / f"long_{frames}.mp4")
            print(f"[bench stage-memory] {frames} frames", flush=True)
            rows.append(_run_one(clip, cache, work / f"out{frames}"))
            print(f"  VmHWM {rows[-1]['vm_hwm_mb']} MB, {rows[-1]['seconds']} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    growth = {}
    if len(rows) > 1:
        first, last = rows[-2], rows[-1]
        span = (last["frames"] - first["frames"]) / 1000.0
        for name in last["stages"]:
            if name in first["stages"]:
                growth[name] = round((last["stages"][name] - first["stages"][name]) / span, 2)
        growth["VmHWM"] = round((last["vm_hwm_mb"] - first["vm_hwm_mb"]) / span, 2)
    report = {"suite": args.suite, "source": source.name, "rows": rows, "growth": growth,
              "command": "./reel2rig bench stage-memory " + " ".join(argv if argv is not None else sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stage-memory-{args.suite}.json"
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    print(table(report))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
