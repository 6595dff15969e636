"""``./reel2rig batch``: a folder of clips onto a rig, locally or on a Ray cluster. No bpy, no torch here.

    ./reel2rig batch INPUT... --out DIR [--rig character.blend[:Armature]] [--map NAME|auto]
                     [--format fbx,bvh,glb,blend,npz] [--device auto|cpu|cuda] [--workers N] [--ray [ADDRESS]]

Exit status: 0 when every clip converted (or was finished before), 1 when any failed, 2 for a bad command line
(nothing ran), 130 after Ctrl-C (finished clips are kept; run the same command again to go on).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

from .inputs import InputError, expand
from .settings import DEVICES, FBX_PRESETS, BatchSettings, SettingsError
from .store import OutputFolder, StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./reel2rig batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched recursively; a folder of images is one clip), or quoted "
                        "globs such as 'shots/**/*.mov'")
    p.add_argument("--out", required=True, help="output folder: one folder per clip, plus batch_summary.json/.csv "
                                                "and batch_report.md")
    p.add_argument("--rig", default=None, metavar="FILE.blend[:ARMATURE]",
                   help="your character: the motion is retargeted onto this armature (default: Reel2Rig's own Anny "
                        "armature). Name the armature after a colon when the file has several")
    p.add_argument("--map", default="auto", help="bone map for --rig (rigs/maps ids such as mixamo, rigify_fk, "
                                                 "ue5_mannequin, or a preset's); default auto-detects")
    p.add_argument("--presets-dir", default=None, help="folder of your own bone-map presets (.toml)")
    p.add_argument("--format", default="fbx", help="comma-separated exports: fbx, bvh, glb, gltf, blend, npz "
                                                   "(the Take, always kept); default fbx")
    p.add_argument("--fbx-preset", choices=FBX_PRESETS, default="default", help="FBX axes/scale for a target engine")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where the fit runs (auto: CUDA if present)")
    p.add_argument("--workers", type=int, default=None,
                   help="clips at a time (default 1 locally; with --ray, one per CPU the cluster has)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the clips as Ray tasks: alone, a local Ray instance; 'auto' joins the cluster this "
                        "machine is part of; ray://HEAD:10001 connects to a remote one")
    p.add_argument("--gpus-per-clip", type=float, default=None,
                   help="Ray: GPUs each worker asks for (default 1 with --device cuda, else 0)")
    p.add_argument("--force", action="store_true", help="redo clips that are already finished")
    p.add_argument("--dry-run", action="store_true", help="list the clips and what would be skipped, run nothing")
    p.add_argument("--mode", choices=("body+hands", "body", "hands"), default="body+hands")
    p.add_argument("--model", default="anny", type=str.lower,
                   help="body model of the Takes: anny (default, built in), smpl, smplh, smplx (need --model-dir)")
    p.add_argument("--model-dir", default=None, metavar="DIR",
                   help="folder of your licensed SMPL / SMPL-H / SMPL-X files (default: $REEL2RIG_MODEL_DIR)")
    p.add_argument("--motion", choices=("prior", "fit", "network"), default="prior",
                   help="the body's motion: prior (default: the fit, started from the learned motion network's "
                        "body), fit (the fit alone) or network (the network's body and world)")
    p.add_argument("--motion-model", default=None, metavar="FILE.onnx",
                   help="the motion network for --motion network|prior (default: $REEL2RIG_MOTION_MODEL, then "
                        "the one shipped with the engine)")
    p.add_argument("--smoothing", type=float, default=0.5, help="temporal smoothing 0..1 (default 0.5)")
    p.add_argument("--actor-height", type=float, default=None, metavar="METRES",
                   help="the actor's height in metres, the same in every clip (default: Anny's average body)")
    p.add_argument("--space", choices=("world", "camera"), default="world")
    p.add_argument("--no-foot-lock", action="store_true", help="do not pin planted feet")
    p.add_argument("--fps", type=float, default=None, help="frame rate of image-sequence clips (default 30)")
    p.add_argument("--clip-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop and report a clip that runs longer than this")
    p.add_argument("--part-frames", type=int, default=9000, metavar="N",
                   help="export Takes longer than N frames in parts of at most N (name_part001.fbx ...), so memory "
                        "stays bounded on long clips; default 9000 (5 min at 30 fps), 0 = always whole")
    p.add_argument("--no-thumbnails", action="store_true", help="skip the overlay contact sheet and thumbnail")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of bars")
    return p


def _usage_error(message: str, fix: str) -> int:
    sys.stderr.write(f"error: {message}\nfix: {fix}\n")
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        formats = BatchSettings.parse_formats(args.format)
        rig, rig_object = BatchSettings.parse_rig(args.rig)
        if args.workers is not None and args.workers < 1:
            raise SettingsError(f"--workers {args.workers}", "give at least one worker")
        if args.part_frames < 0:
            raise SettingsError(f"--part-frames {args.part_frames}", "give 0 (never split) or a frame count")
        if args.actor_height is not None and not 0.0 < args.actor_height <= 3.0:
            raise SettingsError(f"--actor-height {args.actor_height:g}", "give the actor's height in metres "
                                "(soles to the top of the head), e.g. 1.72")
        if not 0.0 <= args.smoothing <= 1.0:
            raise SettingsError(f"--smoothing {args.smoothing} is outside 0..1", "give a value from 0 to 1")
        model_dir = BatchSettings.check_model(args.model, args.model_dir)
        motion_model = BatchSettings.check_motion(args.motion, args.motion_model)
        settings = BatchSettings(
            out=Path(args.out).expanduser().absolute(), formats=formats, rig=rig, rig_object=rig_object,
            bone_map="AUTO" if args.map.lower() == "auto" else args.map, fbx_preset=args.fbx_preset,
            device=args.device, mode=args.mode, smoothing=args.smoothing, space=args.space,
            foot_lock=not args.no_foot_lock, sequence_fps=args.fps, actor_height_m=args.actor_height,
            presets_dir=Path(args.presets_dir).expanduser().absolute() if args.presets_dir else None,
            thumbnails=not args.no_thumbnails, clip_timeout_s=args.clip_timeout, part_frames=args.part_frames,
            model=args.model, model_dir=model_dir, motion=args.motion, motion_model=motion_model)
        clips = expand(args.inputs).clips
    except (SettingsError, InputError) as exc:
        return _usage_error(str(exc), exc.fix)
    if not clips:
        return _usage_error(f"no clips found in {' '.join(args.inputs)}",
                            "name video files or folders that hold them (or folders of images)")
    return run_batch(clips, settings, args)


def run_batch(clips, settings: BatchSettings, args) -> int:
    from .progress import Display

    store = OutputFolder(settings.out)
    key = settings.key()
    if args.dry_run:
        for clip in clips:
            done = None if args.force else store.finished(clip, key)
            print(f"{'skip' if done else 'run '}  {clip.name:<40} {clip.source}")
        return EXIT_OK
    try:
        store.open()
    except StoreError as exc:
        return _usage_error(str(exc), exc.fix)

    records: dict[str, dict] = {}
    todo = []
    for clip in clips:
        done = None if args.force else store.finished(clip, key)
        if done is not None:
            records[clip.name] = dict(done, skipped=True)
        else:
            records[clip.name] = {"name": clip.name, "source": str(clip.source), "kind": clip.kind,
                                  "status": "pending"}
            todo.append(clip)
    backend = "ray" if args.ray else "local"
    workers = args.workers or (1 if backend == "local" else None)
    batch: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
                   "backend": backend, "ray_address": args.ray, "workers": workers, "settings": settings.to_json(),
                   "command": sys.argv}
    began = time.perf_counter()
    display = Display(len(clips), len(clips) - len(todo), plain=True if args.plain else None)
    if len(todo) < len(clips):
        display.line(f"[batch] {len(clips) - len(todo)} of {len(clips)} clips finished before: skipped "
                     "(--force redoes them)")

    def summary() -> None:
        batch["seconds"] = round(time.perf_counter() - began, 2)
        store.write_summary([records[c.name] for c in clips], batch)

    def on_event(event: tuple) -> None:
        kind = event[0]
        if kind == "started":
            display.started(event[1])
        elif kind == "progress":
            display.progress(*event[1:])
        elif kind == "finished":
            record = event[1]
            if record.get("status") != "cancelled":
                records[record["name"]] = record
            display.finished(record)
            summary()
        elif kind == "crashed":
            display.line(f"[batch] a worker stopped: {event[1]}")

    interrupted = False
    summary()
    try:
        if todo:
            if backend == "local":
                from . import local

                local.run(todo, settings, store, workers, on_event)
                batch["workers"] = max(1, min(workers, len(todo)))
            else:
                from . import ray_backend

                info = ray_backend.run(todo, settings, store, workers, on_event, address=args.ray,
                                       gpus_per_clip=args.gpus_per_clip)
                batch["workers"], batch["ray"] = info["actors"], info
    except KeyboardInterrupt:
        interrupted = True
    except RuntimeError as exc:  # the Ray cluster cannot do what was asked (the store closes below)
        display.close()
        return _usage_error(str(exc), "see --device and --gpus-per-clip")
    finally:
        display.close()
        batch["interrupted"] = interrupted
        summary()
        store.close()

    ordered = [records[c.name] for c in clips]
    failed = [r for r in ordered if r.get("status") == "failed"]
    ok = sum(r.get("status") == "ok" for r in ordered)
    print(f"{ok} of {len(clips)} clips converted ({sum(bool(r.get('skipped')) for r in ordered)} skipped as "
          f"finished before), {len(failed)} failed" + (", interrupted" if interrupted else "") +
          f", in {time.perf_counter() - began:.1f} s")
    for record in failed:
        print(f"  failed: {record['name']}: {record.get('error')}" + (f" — fix: {record['fix']}"
                                                                          if record.get("fix") else ""))
    print(f"summary: {settings.out / 'batch_summary.json'}\nreport:  {settings.out / 'batch_report.md'}")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
