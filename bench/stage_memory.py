"""``./reel2rig bench stage-memory``: where a long capture's memory goes, stage by stage.

    ./reel2rig bench stage-memory [smoke|standard|multi] [--scene NAME] [--any-render] [--long 2000,6000]
                                  [--cache DIR] [--mode body+hands|hands|body] [--people N]
                                  [--motion fit|prior|network]

One clip per ``--long`` length, made by looping the suite's first clip, or its scene ``--scene NAME`` (as ``bench
batch`` makes its long clips),
captured in a fresh engine process of its own (``python -m bench.stage_memory --one CLIP``) that samples its resident
memory every 5 ms and keeps the peak of each stage: decode + detect, the fit, the world stage and the writing of the
Take (its posing, mesh and file). The growth per 1,000 frames between the two longest clips tells which stage holds
what per frame; ``bench batch`` measures the same engine's overall peak (``VmHWM``) through ``./reel2rig batch``.

``--cache DIR``: the stage cache to use (default: a new one per run, so every clip is detected). A second run with
the same ``--cache`` reuses the detections and profiles the later stages alone, in minutes instead of an hour.
``--mode`` and ``--people`` are the capture's options (`pipeline.CaptureOptions`; both are part of the detection
cache's key): ``--mode hands`` profiles the hand tracker's whole-clip pass (on a scene that shows hands, e.g.
``--scene hands_cross_closeup``: the palm detector finds none in the full-body walk), ``--people 0`` (everyone) or
``N > 1`` the multi-person path (`people.py`), best on the ``multi`` suite's clips. ``--motion prior|network`` runs
the learned motion network (the engine's default model file, or ``$REEL2RIG_MOTION_MODEL``), a stage of its own.

Writes ``bench/results/stage-memory-<suite>[-<scene>][-<mode>][-people<N>][-<motion>].json`` (the defaults: no
suffix) and
prints a Markdown table.

    ./reel2rig bench stage-memory --replay hands|people|motion [--long 2000,6000,20000]

The trackers' bookkeeping alone, without the networks' time: the real detectors run once over the first
``REPLAY_RECORD`` frames of the sample clip (``people``: the sample twice side by side, the right copy 45 frames
later, as ``tests/engine/test_people.py`` makes it), then copies of those detections, looped to each length, go
through what a capture does with them (``hands``: `detect.Perception` in hands mode, a `detect.FrameStore` and
``finish``; ``people``: `people.detect_stream` with a stand-in detector and `people.track_people`; ``motion``: the
body landmarks, looped into a scratch array as the detection stage leaves them, through the learned motion network
as the default capture runs it, `motion_stage.network_prior` with the engine's network; ``motion-whole``, its
baseline: the same with the network run over the whole clip at once and its arrays in memory), inside a scratch
folder as in a capture, in a fresh process per length. The peak memory above the level before the replay, per
1,000 frames between the two longest, is what those paths keep per frame: resident (as above), and anonymous (the
heap alone, without mapped files' pages: the scratch's windows, and libraries paged back in on a busy machine).
Writes ``bench/results/stage-memory-replay-<kind>.json``.
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

from bench import write_result

ROOT = Path(__file__).resolve().parents[1]

#: The engine's progress callbacks mark the stages (decode + detect, fit, world, write); calls of these functions
#: mark themselves: (name, module, function).
WRAPPED = (("fit", "inference_server.fit", "fit_sequence"), ("world", "inference_server.world", "ground"),
           ("motion network", "inference_server.motion_stage", "network_prior"),
           ("motion network", "inference_server.motion_stage", "network_world"),
           ("write: posing", "rigs.fk", "bone_heads"), ("write: mesh", "inference_server.capture", "_add_mesh"),
           ("write: file", "inference_server.capture", "write_take"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _anon_mb() -> float:
    """Resident anonymous memory (the heap; not the pages of mapped files: libraries, the scratch's windows)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1e3 for line in f if line.startswith("RssAnon:"))


def profile_one(clip: Path, out: Path, options: dict | None = None) -> dict:
    """Capture ``clip`` in this process with these `CaptureOptions` fields; the peak resident memory (MB) of each
    stage, sampled every 5 ms."""
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
    capture_options = CaptureOptions(**(options or {}))
    job = threading.Thread(target=lambda: box.update(result=run_capture(clip, out, capture_options, progress,
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
            "takes": max(1, len(result.people)),
            "stages": {k: round(v, 1) for k, v in peaks.items() if k != "start"},
            "detect_cached": bool(result.stages.get("detect", {}).get("cached"))}


REPLAY_RECORD = 90   # frames of the sample whose detections are replayed
SAMPLE = ROOT / "samples" / "sample_wave.mp4"


class _PeakMemory:
    """Resident and anonymous memory sampled every 5 ms between :meth:`start` (which also reads the baseline) and
    :meth:`stop`; :meth:`report` is a replay's row."""

    def __init__(self) -> None:
        self.peak = [0.0, 0.0]
        self.base = self.base_anon = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = [max(self.peak[0], _rss_mb()), max(self.peak[1], _anon_mb())]
            time.sleep(0.005)

    def start(self) -> None:
        self.base, self.base_anon = _rss_mb(), _anon_mb()
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def report(self, frames: int, began: float, kept: int) -> dict:
        return {"frames": frames, "seconds": round(time.perf_counter() - began, 1), "base_mb": round(self.base, 1),
                "peak_mb": round(self.peak[0], 1), "above_base_mb": round(self.peak[0] - self.base, 1),
                "anon_above_base_mb": round(self.peak[1] - self.base_anon, 1), "kept": kept}


def replay_one(kind: str, frames: int, cache: Path) -> dict:
    """In this process: record the sample's detections (``kind`` hands or people), then replay them looped to
    ``frames`` frames through that kind's bookkeeping; peak resident memory (MB) above the level before the replay."""
    import copy

    import cv2
    import numpy as np

    from inference_server import scratch
    from inference_server.tracking import _scipy_solver
    from inference_server.video import iter_frames

    _scipy_solver()   # scipy's assignment solver, imported before the baseline (its import is not per frame)
    if kind in ("motion", "motion-whole"):
        return _replay_motion(frames, cache, whole=kind == "motion-whole")
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, _, f in iter_frames(SAMPLE, 0, REPLAY_RECORD)]
    if kind == "people":
        rgb = [np.hstack([f, rgb[(t + 45) % len(rgb)]]) for t, f in enumerate(rgb)]
    size = (rgb[0].shape[1], rgb[0].shape[0])
    memory = _PeakMemory()
    began = time.perf_counter()
    with scratch.opened(cache / "scratch"):
        if kind == "hands":
            from inference_server.detect import FrameStore, Perception

            with Perception("hands") as perception:
                record = [perception._hands.process(f, size) for f in rgb]          # real hands, once
                clock = iter(range(frames))
                perception._hands.process = lambda _rgb, _size: copy.deepcopy(record[next(clock) % len(record)])
                memory.start()
                found = FrameStore(frames)
                for _ in range(frames):
                    found.append(perception.process(rgb[0], size))
                perception.finish(found)
                memory.stop()   # (the count below reads the whole store)
                kept = sum(int(np.isfinite(found.array("hands_2d")[a:b, :, 0, 0]).sum())
                           for a, b in scratch.windows(frames))
        else:
            from inference_server.people import MultiPerson, detect_stream, track_people

            detector = MultiPerson(device="cpu")
            record = [people for f in rgb for people in detector.process_batch([f], size)]   # real people, once

            class Replay:   # the detector's interface, handing out copies of the recorded people
                def __init__(self) -> None:
                    self.t = 0

                def process_batch(self, batch, _size):
                    out = [copy.deepcopy(record[(self.t + i) % len(record)]) for i in range(len(batch))]
                    self.t += len(batch)
                    return out

            tiny = np.zeros((1, 1, 3), np.uint8)
            memory.start()
            found, _ = detect_stream(Replay(), ((tiny, size) for _ in range(frames)), 8)
            tracks = track_people(found, size)
            memory.stop()
            kept = sum(int(tr.present.sum()) for tr in tracks)
    return memory.report(frames, began, kept)


def _replay_motion(frames: int, cache: Path, whole: bool = False) -> dict:
    """``--replay motion``: the sample's body landmarks looped to ``frames`` frames (a scratch array, as the
    detection stage leaves a long clip's) through `motion_stage.network_prior` with the engine's own network.
    ``whole`` (``--replay motion-whole``, the baseline): the network over the whole clip in one run and the
    adapter's arrays in memory, as before the network streamed."""
    import numpy as np

    from inference_server import scratch
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.capture import camera_intrinsics, detect_stage
    from inference_server.motion_infer import MotionModel
    from inference_server.motion_stage import network_prior
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe

    info = probe(SAMPLE)
    det = detect_stage(SAMPLE, info, CaptureOptions(), lambda *a: None, lambda: False)[0]
    record = np.asarray(det.pose_2d, dtype=np.float64)
    skel, model = load_skeleton(), MotionModel.load()
    if whole:
        model.chunk = 1 << 30
        os.environ["REEL2RIG_SCRATCH_MIN_FRAMES"] = str(1 << 30)
    size = (info.width, info.height)
    K = camera_intrinsics(info, None)
    memory = _PeakMemory()
    began = time.perf_counter()
    with scratch.opened(cache / "scratch"):
        long = type("Detections", (), {})()
        long.pose_2d = scratch.empty((frames, 33, 3))
        for a, b in scratch.windows(frames):
            long.pose_2d[a:b] = record[np.arange(a, b) % len(record)]
        long.camera_R, long.timestamps = None, np.arange(frames) / info.fps
        network_prior(skel, det, size, K, model)          # once, short: the session's own start-up is not per frame
        memory.start()
        prior, _ = network_prior(skel, long, size, K, model)
        memory.stop()
        kept = sum(int(np.isfinite(prior[0][a:b, 0, 0]).sum()) for a, b in scratch.windows(frames))
    return memory.report(frames, began, kept)


def _run_one(clip: Path, cache: Path, out: Path, options: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), REEL2RIG_CACHE=str(cache))
    cmd = [sys.executable, "-m", "bench.stage_memory", "--one", str(clip), "--out", str(out),
           "--options", json.dumps(options)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the capture of {clip} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(report: dict) -> str:
    rows = report["rows"]
    names = list(dict.fromkeys(k for row in rows for k in row["stages"]))
    options = ", ".join(f"{k} {v}" for k, v in report.get("options", {}).items())
    lines = [f"Peak resident memory per stage of one capture ({report['source']} looped"
             + (f"; {options}" if options else "") + "), MB:", "",
             "| stage | " + " | ".join(f"{row['frames']} frames" for row in rows) + " | MB per 1,000 frames |",
             "|---|" + "---|" * (len(rows) + 1)]
    for name in names:
        cells = [f"{row['stages'].get(name, float('nan')):.0f}" for row in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {report['growth'].get(name, float('nan')):.1f} |")
    lines.append("| VmHWM | " + " | ".join(f"{row['vm_hwm_mb']:.0f}" for row in rows) +
                 f" | {report['growth'].get('VmHWM', float('nan')):.1f} |")
    return "\n".join(lines)


def replay(kind: str, lengths: list[int], argv: list[str] | None) -> int:
    """``--replay``: one fresh process per length; growth per 1,000 frames between the two longest."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="reel2rig-bench-replay-") as work:
        env = dict(os.environ, PYTHONPATH=str(ROOT), REEL2RIG_CACHE=str(Path(work) / "cache"))
        for frames in lengths:
            print(f"[bench stage-memory] replay {kind}: {frames} frames", flush=True)
            cmd = [sys.executable, "-m", "bench.stage_memory", "--replay", kind, "--replay-one", str(frames),
                   "--cache", str(Path(work) / "cache")]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if proc.returncode:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"the replay of {frames} frames failed (exit {proc.returncode})")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  {rows[-1]['above_base_mb']} MB above the start, {rows[-1]['seconds']} s", flush=True)
    growth = {}
    if len(rows) > 1:
        span = (rows[-1]["frames"] - rows[-2]["frames"]) / 1000.0
        growth = {key: round((rows[-1][key] - rows[-2][key]) / span, 2)
                  for key in ("above_base_mb", "anon_above_base_mb")}
    report = {"replay": kind, "rows": rows, "mb_per_1000_frames": growth,
              "command": "./reel2rig bench stage-memory " + " ".join(argv if argv is not None else sys.argv[1:])}
    path = write_result(f"stage-memory-replay-{kind}", report)
    print(f"Peak memory above the start of the replay ({kind}), MB (resident; anonymous: the heap alone):\n")
    print("| frames | resident | anonymous | seconds |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['frames']} | {row['above_base_mb']:.1f} | {row['anon_above_base_mb']:.1f} | "
              f"{row['seconds']:.0f} |")
    print(f"| MB per 1,000 frames | {growth.get('above_base_mb')} | {growth.get('anon_above_base_mb')} | |")
    print(f"\nwritten: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench stage-memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="standard")
    parser.add_argument("--scene", help="the suite's scene to loop (default: its first)")
    parser.add_argument("--any-render", action="store_true", help="use an older cached render of a scene")
    parser.add_argument("--long", default="2000,6000", help="frame counts of the looped clips")
    parser.add_argument("--cache", type=Path, help="stage cache to use and keep (default: a new one)")
    parser.add_argument("--mode", choices=("body+hands", "hands", "body"), default="body+hands",
                        help="capture mode (default body+hands)")
    parser.add_argument("--people", type=int, default=1,
                        help="people to follow: 1 the main person (default), 0 everyone, N up to N")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)   # the child: profile this clip
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--motion", choices=("fit", "prior", "network"), default="fit",
                        help="the capture's body motion (prior/network: the learned motion network)")
    parser.add_argument("--replay", choices=("hands", "people", "motion", "motion-whole"),
                        help="the trackers' bookkeeping alone, on the sample's detections replayed (see above)")
    parser.add_argument("--replay-one", type=int, help=argparse.SUPPRESS)   # the child: replay this many frames
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(profile_one(args.one, args.out, json.loads(args.options))))
        return 0
    if args.replay_one:
        print(json.dumps(replay_one(args.replay, args.replay_one, args.cache)))
        return 0
    if args.replay:
        return replay(args.replay, [int(n) for n in args.long.split(",") if n.strip()], argv)
    options = {k: v for k, v in (("mode", args.mode), ("people", args.people), ("motion", args.motion))
               if v != {"mode": "body+hands", "people": 1, "motion": "fit"}[k]}
    from bench.batch import _loop_clip
    from bench.perception import _scene_video
    from bench.run import select_scenes

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
        scene = select_scenes(args.suite, args.scene)[0]   # an unknown name stops with the suite's scene names
        source = _scene_video(scene, args.any_render) / "clip.mp4"
        rows = []
        for frames in lengths:
            clip = _loop_clip(source, frames, work / f"long_{frames}.mp4")
            print(f"[bench stage-memory] {frames} frames", flush=True)
            rows.append(_run_one(clip, cache, work / f"out{frames}", options))
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
    report = {"suite": args.suite, "source": f"{scene.name}.mp4", "options": options, "rows": rows, "growth": growth,
              "command": "./reel2rig bench stage-memory " + " ".join(argv if argv is not None else sys.argv[1:])}
    suffix = (f"-{args.scene}" if args.scene else "") + "".join(f"-people{v}" if k == "people" else f"-{v}"
                                                                for k, v in options.items())
    path = write_result(f"stage-memory-{args.suite}{suffix}", report)
    print(table(report))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
