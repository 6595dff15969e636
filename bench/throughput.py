"""Detection throughput: MediaPipe's runtime against the torch port of its networks, batch size by batch size.

    ./reel2rig bench throughput [--device cpu|cuda] [--batches 1,8,32,64] [--frames 128] [--size 1280x720]
                                [--half] [--clip VIDEO]

The same frames (the sample clip's, resized to ``--size``; 720p by default, as the issue's bars are stated) go
through, each timed after a warm-up run and with the device synchronised:

- ``mediapipe holistic``: MediaPipe Holistic as shipped, frame by frame (the issue's CPU baseline; CPU only);
- ``holistic, no face``: the same graph without its face branch (`detect.holistic_graph`), the capture's core;
- ``ours body+hands``: the capture's whole body+hands detection stage (`detect.Perception`: that graph, the wrist
  crops and the whole-frame searches for missing hands; the clip-level passes of ``finish`` excluded);
- ``mediapipe hands``: MediaPipe Hands, two hands, frame by frame (hands mode's core; CPU only);
- ``torch pose``: `models.blaze.BlazePose` — pose detection and landmarks of every person;
- ``torch hands``: `models.blaze.BlazeHands` — palm detection and hand landmarks;
- ``torch people``: `people.MultiPerson.process_batch` — the torch body+hands path (pose, hands on each wrist,
  recovery), what ``--detector torch`` and ``--people`` run;

the torch rows at every batch size in ``--batches`` (frames per call), on ``--device``. Frames/s = frames / seconds
of the calls (decode and the copy of the frames into the batch excluded; the host → device copy included). Writes
``bench/results/throughput-<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"


def load_frames(clip: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` RGB frames of ``clip`` at ``size`` (W, H), the clip looped when it is shorter."""
    import cv2

    from inference_server.video import iter_frames

    frames = []
    while len(frames) < n:
        before = len(frames)
        for _, _, bgr in iter_frames(clip, 0, n - len(frames)):
            frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        if len(frames) == before:
            raise SystemExit(f"{clip}: no frame could be decoded")
    return frames


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_batches(run, frames: list[np.ndarray], batch: int, device: str) -> float:
    """Frames/s of ``run(list_of_frames)`` over ``frames`` in calls of ``batch`` frames, after one warm-up call."""
    run(frames[:batch])
    _sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(frames), batch):
        run(frames[start:start + batch])
    _sync(device)
    return len(frames) / max(time.perf_counter() - t0, 1e-9)


def mediapipe_rows(frames: list[np.ndarray]) -> list[dict]:
    from inference_server.detect import HandsDetector, HolisticDetector, Perception

    rows = []
    size = (frames[0].shape[1], frames[0].shape[0])
    frames = [f.copy() for f in frames]      # MediaPipe marks the arrays it reads read-only: the torch rows' stay as
    for name, graph in (("mediapipe holistic", HolisticDetector(hands=True)),     # they are
                        ("holistic, no face", HolisticDetector(hands=True, face=False)),   # the capture's graph
                        ("ours body+hands", Perception("body+hands")),   # + wrist crops and searches
                        ("mediapipe hands", HandsDetector(static=False, max_hands=2))):
        with graph:
            if isinstance(graph, Perception):        # as the capture runs it: pipelined over the frames of a call
                fps = time_batches(lambda fs: list(graph.stream((f, size) for f in fs)), frames, len(frames), "cpu")
            else:
                fps = time_batches(lambda fs: [graph.process(f, size) for f in fs], frames, 1, "cpu")
        rows.append({"method": name, "device": "cpu", "batch": 1, "fps": fps})
        print(f"{name:<20} cpu   batch  1  {fps:8.1f} frames/s", flush=True)
    return rows


def torch_rows(frames: list[np.ndarray], device: str, batches: list[int], half: bool) -> list[dict]:
    import torch

    from inference_server.models.blaze import BlazeHands, BlazePose
    from inference_server.people import MultiPerson

    dtype = torch.float16 if half else torch.float32
    size = (frames[0].shape[1], frames[0].shape[0])
    pose = BlazePose(device=device, dtype=dtype, max_batch=max(batches))
    hands = BlazeHands(device=device, dtype=dtype, max_batch=max(batches))
    people = MultiPerson(device=device)
    runs = {"torch pose": pose.detect, "torch hands": hands.detect,
            "torch people": lambda fs: people.process_batch(fs, size)}
    rows = []
    for name, run in runs.items():
        for batch in batches:
            people.reset()                          # each timing starts without a previous frame to recover from
            fps = time_batches(run, frames, batch, device)
            rows.append({"method": name, "device": device, "batch": batch, "fps": fps,
                         "dtype": "float16" if half else "float32"})
            print(f"{name:<20} {device:<5} batch {batch:>2}  {fps:8.1f} frames/s", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the torch rows)")
    parser.add_argument("--batches", default="1,8,32", help="frames per call of the torch rows, comma-separated")
    parser.add_argument("--frames", type=int, default=96, help="frames timed per row")
    parser.add_argument("--size", default="1280x720", help="frame size WxH")
    parser.add_argument("--half", action="store_true", help="float16 networks (CUDA)")
    parser.add_argument("--clip", type=Path, default=SAMPLE, help="the clip whose frames are used")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip the MediaPipe rows")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results folder")
    args = parser.parse_args(argv)
    from inference_server.config import prepare_environment

    prepare_environment()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU here (use --device cpu)")
    width, height = (int(v) for v in args.size.lower().split("x"))
    batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    frames = load_frames(args.clip, args.frames, (width, height))
    started = time.perf_counter()
    rows = [] if args.no_mediapipe else mediapipe_rows(frames)
    rows += torch_rows(frames, args.device, batches, args.half)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    report = {"suite": "throughput", "command": "./reel2rig bench throughput " + " ".join(argv or sys.argv[1:]),
              "machine": {"cpu": platform.processor() or platform.machine(), "gpu": gpu,
                          "torch_threads": torch.get_num_threads()},
              "frames": len(frames), "size": [width, height], "clip": str(args.clip),
              "seconds": time.perf_counter() - started, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"throughput-{args.device.split(':')[0]}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
