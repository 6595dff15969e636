"""The engine's command-line commands: capture, warm, overlay, take-schema. No bpy.

``./reel2rig capture VIDEO --out DIR`` ends up here; so does the setup step that warms the Anny cache.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_commands(commands) -> None:
    cap = commands.add_parser("capture", help="capture a video into a Take (.take.npz + .take.json)")
    cap.add_argument("video", help="video file (mp4, mov, ...), folder of images, or pattern like img_%%04d.png")
    cap.add_argument("--fps", type=float, default=None, help="frame rate of an image sequence (default 30)")
    cap.add_argument("--out", default="out", help="output folder (default: out/)")
    cap.add_argument("--focal", type=float, default=None,
                     help="focal length in pixels (default: the one the file records, else the longer image side)")
    cap.add_argument("--actor-height", type=float, default=None, metavar="METRES",
                     help="the actor's height in metres (e.g. 1.72): sets the scale one camera cannot see (how far "
                          "away they are, how far they travel); default: Anny's average body, 1.63 m")
    cap.add_argument("--smoothing", type=float, default=0.5, help="temporal smoothing, 0 (none) to 1 (strong)")
    cap.add_argument("--frames", default=None, help="frame range START:END (end exclusive), e.g. 0:120")
    cap.add_argument("--mode", choices=("body+hands", "hands", "body"), default="body+hands",
                     help="what to capture: body and hands (default), hands only (close-ups), body only")
    cap.add_argument("--body-only", action="store_true", help="same as --mode body")
    cap.add_argument("--people", type=_people_count, default=1, metavar="N",
                     help="body modes: follow up to N people, one Take each (0 = everyone; default 1, the main "
                          "person)")
    cap.add_argument("--no-overlay", action="store_true", help="do not write the overlay contact sheet PNG")
    cap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where the fit runs")
    cap.add_argument("--model", choices=("anny", "smpl", "smplh", "smplx", "anny_hand", "mano"), default="anny",
                     help="model of the Take (default anny; the SMPL family and MANO need --model-dir); with "
                          "--mode hands, anny_hand or mano give one Take per hand, placed where it is in the picture")
    cap.add_argument("--model-dir", default=None,
                     help="folder with your MANO/SMPL/SMPL-H/SMPL-X files (default: $REEL2RIG_MODEL_DIR)")
    cap.add_argument("--space", choices=("world", "camera"), default="world",
                     help="world (default): the camera's own turning taken out, feet planted on a level floor, the "
                          "root pushed by the feet; camera: the motion as the camera saw it, the camera still")
    cap.add_argument("--no-foot-lock", action="store_true", help="do not pin planted feet (keep the fitted legs)")
    cap.add_argument("--motion", choices=("prior", "fit", "network"), default="prior",
                     help="the body's motion: prior (default: the fit, started from the learned motion network's "
                          "body), fit (the fit alone) or network (the network's body and world; the hands stay "
                          "fitted)")
    cap.add_argument("--motion-model", default=None, metavar="FILE.onnx",
                     help="the motion network (default: $REEL2RIG_MOTION_MODEL, then the one shipped in "
                          "inference_server/weights/)")
    cap.add_argument("--hand-mesh", choices=("off", "init"), default="off",
                     help="init: the learned hand-mesh network's points give the fingers' 3D shape (instead of "
                          "MediaPipe's world landmarks); off (default)")
    cap.add_argument("--detector", choices=("auto", "mediapipe", "torch"), default="auto",
                     help="the landmark networks' runtime: MediaPipe's graphs, or their torch port batched over "
                          "frames (CUDA when there is one); auto: torch for hands mode on a CUDA GPU, else mediapipe")
    cap.add_argument("--hand-mesh-model", default=None, metavar="FILE.onnx",
                     help="the hand-mesh network (default: $REEL2RIG_HAND_MESH_MODEL, then the shipped one)")
    cap.add_argument("--no-cache", action="store_true", help="recompute detection even if a cached result exists")
    cap.add_argument("--json", action="store_true", help="print a JSON summary (stages, frames/s, peak memory)")
    commands.add_parser("warm", help="build the Anny model cache (first run ~1-2 min), keep only compact files")
    ov = commands.add_parser("overlay", help="draw a Take's mesh and skeleton over its footage (contact sheet PNG)")
    ov.add_argument("take")
    ov.add_argument("--out", default=None, help="PNG path (default: next to the Take)")
    ov.add_argument("--video", default=None, help="the clip, if it moved since the capture")
    ov.add_argument("--no-mesh", action="store_true", help="draw only the skeleton, not the fitted mesh")
    tr = commands.add_parser("trajectory", help="draw a Take's top view: root path, planted feet, camera (PNG)")
    tr.add_argument("take")
    tr.add_argument("--out", default=None, help="PNG path (default: next to the Take, .trajectory.png)")
    commands.add_parser("take-schema", help="print the Take's fields as a Markdown table")


def _people_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of people, 0 for everyone")
    return value


def run_command(args: argparse.Namespace) -> int:
    if args.command == "capture":
        return _capture(args)
    if args.command == "warm":
        return _warm()
    if args.command == "overlay":
        from .overlay import contact_sheet

        take = Path(args.take)
        print(contact_sheet(take, args.out or take.with_suffix("").with_suffix(".overlay.png"), args.video,
                            mesh=not args.no_mesh))
        return 0
    if args.command == "trajectory":
        from .plots import take_top_view

        take = Path(args.take)
        print(take_top_view(take, args.out or take.with_suffix("").with_suffix(".trajectory.png")))
        return 0
    if args.command == "take-schema":
        from .take import describe_fields

        print(describe_fields())
        return 0
    raise SystemExit(f"unknown command {args.command}")


class _Progress:
    """One line per stage on a terminal (carriage-return updates), plain lines otherwise."""

    def __init__(self) -> None:
        self.stage = None
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int, fps: float) -> None:
        now = time.monotonic()
        if stage != self.stage:
            if self.stage is not None and self.tty:
                sys.stderr.write("\n")
            self.stage = stage
        elif now - self.last < 0.2 and done < total:
            return
        self.last = now
        width = 30
        filled = int(width * done / max(total, 1))
        line = f"{stage:>7} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if fps:
            line += f"  {fps:.1f} frames/s"
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        sys.stderr.flush()


def _capture(args: argparse.Namespace) -> int:
    from .pipeline import CaptureOptions, run_capture
    from .protocol import RpcError

    start, end = 0, None
    if args.frames:
        a, _, b = args.frames.partition(":")
        start, end = int(a or 0), (int(b) if b else None)
    options = CaptureOptions(mode="body" if args.body_only else args.mode, focal_px=args.focal,
                             actor_height_m=args.actor_height,
                             frame_start=start, frame_end=end, smoothing=args.smoothing, device=args.device,
                             use_cache=not args.no_cache, fps=args.fps, people=args.people, model=args.model,
                             model_dir=args.model_dir, space=args.space, foot_lock=not args.no_foot_lock,
                             motion=args.motion, motion_model=args.motion_model, hand_mesh=args.hand_mesh,
                             hand_mesh_model=args.hand_mesh_model, detector=args.detector)
    progress = _Progress()
    try:
        result = run_capture(Path(args.video), Path(args.out), options, progress, lambda: False)
    except RpcError as exc:
        sys.stderr.write(f"\nerror: {exc.message}\nfix: {exc.fix}\n")
        return 1
    sys.stderr.write("\n")
    if args.json:
        import json
        import resource

        print(json.dumps({"take": str(result.take_path), "sidecar": str(result.sidecar_path),
                          "people": [str(p) for p in result.people], "hands": [str(p) for p in result.hands],
                          "frames": result.frames, "seconds": result.seconds, "stages": result.stages,
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
        return 0
    print(f"frames: {result.frames}  total: {result.seconds:.1f} s")
    for stage, info in result.stages.items():
        fps = info.get("fps")
        print(f"  {stage:<7} {info['seconds']:7.2f} s" + (f"  {fps:7.1f} frames/s" if fps else ""))
    print(f"take: {result.take_path}\nsidecar: {result.sidecar_path}")
    for number, path in enumerate(result.people[1:], start=2):
        print(f"take of person {number}: {path}")
    for path in result.hands[1:]:
        print(f"take of the other hand: {path}")
    if not args.no_overlay:
        from .overlay import contact_sheet

        sheet = contact_sheet(result.take_path, result.take_path.with_suffix("").with_suffix(".overlay.png"),
                              args.video, others=result.people[1:] + result.hands[1:])
        print(f"overlay: {sheet}")
        if not result.hands:
            from .plots import take_top_view

            top = take_top_view(result.take_path, result.take_path.with_suffix("").with_suffix(".trajectory.png"))
            print(f"top view: {top}")
    return 0


def _warm() -> int:
    """Build Anny's cache and our skeleton cache; delete the big intermediate files Anny does not load."""
    import os

    from .anny_skeleton import load_anny_model, load_skeleton

    started = time.perf_counter()
    load_anny_model()
    load_skeleton()
    cache = Path(os.environ["ANNY_CACHE_DIR"])
    removed = 0
    for path in cache.glob("**/*.safetensors"):
        if not path.name.startswith("build_compact_model_data_"):
            removed += path.stat().st_size
            path.unlink()
    kept = sum(p.stat().st_size for p in cache.glob("**/*") if p.is_file())
    print(f"anny cache ready in {time.perf_counter() - started:.1f} s: {kept / 1e6:.0f} MB kept, "
          f"{removed / 1e6:.0f} MB of build intermediates removed ({cache})")
    return 0
