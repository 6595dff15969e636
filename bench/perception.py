"""Perception benchmark: hand coverage, handedness swaps and frames/s of the detection stage, against plain
MediaPipe Holistic measured in the same run.

    ./reel2rig bench perception [smoke|standard|multi] [--footage DIR] [--any-render] [--max-frames N] [--scenes A,B]
                                [--torch]

Ground-truth suites: a hand counts as visible on a frame when at least HAND_VISIBLE_MIN of its 21 points are
unoccluded and inside the picture (bench/evaluate.py); coverage = found ∧ visible / visible, per side. A swap is a
frame where the found hands sit closer to the other side's true hands, each hand's distance the mean over its 21
points (bench.metrics.handedness_swaps, 10 px margin); "wrists" counts the same by the wrists alone (the metric
until session 20: crossed hands' wrists can lie closer together than a detector's wrist error); "wrong" counts the
side-frames whose hand lies more than one hand length (its size facing the camera) from its true hand
(bench.metrics.wrong_hands: the other hand read twice, a hand on the wrong arm). Footage: where `bench/footage_hands.json` says which hand is in the picture on which frames (annotated by eye),
coverage of the visible hands and false hand frames; elsewhere the share of frames with each hand found.

Methods: ``holistic`` (MediaPipe Holistic alone, the baseline), ``ours`` (inference_server.detect.Perception in
body+hands mode: Holistic + wrist-crop rescue + hand-detector fallback), and on close-up scenes also
``ours-hands`` (hands mode); with ``--torch`` also ``torch`` / ``torch-hands``: the same modes through the
capture's detection stage with ``--detector torch`` (models/blaze.py, people.py). Frames/s is decode excluded,
detection only, on this machine.

The ``multi`` suite (several people) scores tracks instead: for every true person, the share of the frames where
they are visible that a track follows them, id switches, frames of tracks on nobody, and their hands' coverage and
swaps (bench.metrics.track_metrics / hand_track_metrics), for ``people`` (inference_server.people: every person,
tracked) against ``holistic`` (one person).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _detect_torch(video: Path, mode: str, max_frames: int | None) -> tuple[np.ndarray, float]:
    """The capture's detection stage with ``--detector torch`` (the torch port of MediaPipe's networks, batched,
    on the CPU here): hands (T, 2, 21, 3) px and its frames/s (detection and tracking; decode excluded)."""
    from inference_server.capture import detect_stage
    from inference_server.pipeline import CaptureOptions
    from inference_server.video import probe

    options = CaptureOptions(mode=mode, detector="torch", use_cache=False, frame_end=max_frames)
    found = detect_stage(video, probe(video), options, lambda *a: None, lambda: False)[0]
    return found.hands_2d, len(found.hands_2d) / max(found.detect_seconds, 1e-9)


def _detect(video: Path, method: str, max_frames: int | None) -> tuple[np.ndarray, float]:
    """Hands (T, 2, 21, 3) px of one method over a clip, and its detection frames/s."""
    import cv2

    if method.startswith("torch"):
        return _detect_torch(video, "hands" if method == "torch-hands" else "body+hands", max_frames)
    from inference_server.detect import HolisticDetector, Perception
    from inference_server.video import iter_frames

    graph = HolisticDetector(hands=True) if method == "holistic" else \
        Perception("hands" if method == "ours-hands" else "body+hands")
    decode = 0.0

    def frames():
        nonlocal decode
        t0 = time.perf_counter()
        for _, _, bgr in iter_frames(video, 0, max_frames):
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            decode += time.perf_counter() - t0
            yield rgb, (bgr.shape[1], bgr.shape[0])
            t0 = time.perf_counter()
        decode += time.perf_counter() - t0

    started = time.perf_counter()
    with graph:
        if hasattr(graph, "stream"):                 # ours: as the capture runs it (pipelined), then `finish`
            found = [lm for _, lm in graph.stream(frames())]
            graph.finish(found)
        else:
            found = [graph.process(rgb, size) for rgb, size in frames()]
    seconds = time.perf_counter() - started - decode
    return np.stack([f.hands_2d for f in found]), len(found) / max(seconds, 1e-9)


def _scene_video(scene, any_render: bool) -> Path | None:
    from bench.run import ensure_rendered, scene_dir

    folder = scene_dir(scene, any_render)   # any_render: an older render of the same scene will do
    if not (folder / "truth.npz").exists():
        ensure_rendered([scene])
        folder = scene_dir(scene)
    return folder


def scene_rows(suite: str, any_render: bool, max_frames: int | None, names: str | None = None,
               torch_rows: bool = False) -> list[dict]:
    from bench import metrics as M
    from bench.evaluate import HAND_VISIBLE_MIN
    from bench.run import select_scenes

    rows = []
    for scene in select_scenes(suite, names):
        folder = _scene_video(scene, any_render)
        with np.load(folder / "truth.npz") as f:
            visible = f["hand_visible"].sum(-1) >= HAND_VISIBLE_MIN       # (T, 2)
            true_hands = f["hand_points_2d"][..., :2]                     # (T, 2, 21, 2)
            hand_length = M.hand_length_px(f["hand_points_cam"], float(f["K"][0, 0]))    # (T, 2)
        methods = ["holistic", "ours"] + (["ours-hands"] if scene.framing == "hands" else [])
        if torch_rows:
            methods += ["torch"] + (["torch-hands"] if scene.framing == "hands" else [])
        row = {"scene": scene.name, "framing": scene.framing, "render": folder.name, "methods": {}}
        for method in methods:
            hands, fps = _detect(folder / "clip.mp4", method, max_frames)
            n = len(hands)
            seen = np.isfinite(hands[..., 0]).all(-1)                      # (T, 2)
            vis = visible[:n]
            cover = [float((seen[:, s] & vis[:, s]).sum() / vis[:, s].sum()) if vis[:, s].any() else None
                     for s in (0, 1)]
            points = np.where(seen[..., None, None], hands[..., :2], np.nan)
            swaps = M.handedness_swaps(points, true_hands[:n], margin_px=10.0)
            wrist_swaps = M.handedness_swaps(points[:, :, 0], true_hands[:n, :, 0], margin_px=10.0)
            row["methods"][method] = {"coverage_L": cover[0], "coverage_R": cover[1], "visible_L": int(vis[:, 0].sum()),
                                      "visible_R": int(vis[:, 1].sum()), "found": int(seen.sum()),
                                      "swap_frames": swaps["swap_frames"],
                                      "swap_frames_wrist": wrist_swaps["swap_frames"],
                                      "wrong_hands": M.wrong_hands(points, true_hands[:n], length_px=hand_length[:n]), "fps": fps, "frames": n}
        print(_row_text(row), flush=True)
        rows.append(row)
    return rows


def _people_tracks(video: Path, max_frames: int | None, max_people: int | None
                   ) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """The multi-person path over a clip: every track's pose (N, T, 33, 3) and hands (N, T, 2, 21, 3), detection
    frames/s (tracking included) and its counters."""
    import cv2

    from inference_server.capture import DETECT_BATCH, PEOPLE_TILES
    from inference_server.people import MultiPerson, detect_stream, track_people
    from inference_server.video import iter_frames

    detector = MultiPerson(device="cpu", tiles=PEOPLE_TILES)   # as `capture --people` runs it
    size = (1, 1)

    def frames():
        nonlocal size
        for _, _, bgr in iter_frames(video, 0, max_frames):
            size = (bgr.shape[1], bgr.shape[0])
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size

    per_frame, seconds = detect_stream(detector, frames(), DETECT_BATCH["cpu"])
    t0 = time.perf_counter()
    tracks = track_people(per_frame, size, max_people=max_people)
    seconds += time.perf_counter() - t0
    n = len(per_frame)
    pose = np.full((max(len(tracks), 1), n, 33, 3), np.nan)
    hands = np.full((max(len(tracks), 1), n, 2, 21, 3), np.nan)
    for k, tr in enumerate(tracks):
        pose[k] = np.stack([f.pose_2d for f in tr.frames])
        hands[k] = np.stack([f.hands_2d for f in tr.frames])
        pose[k, ~tr.present] = np.nan
    counts = {"recovered": detector.recovered, "hands_tracked": detector.hand_tracked,
              "palm_retry": detector.hand_palm_retry, "relabelled": [int(t.mirrored.sum()) for t in tracks]}
    return pose, hands, n / max(seconds, 1e-9), counts


def _holistic_track(video: Path, max_frames: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """MediaPipe Holistic as a one-person tracker: pose (1, T, 33, 3), hands (1, T, 2, 21, 3), frames/s."""
    import cv2

    from inference_server.detect import HolisticDetector
    from inference_server.video import iter_frames

    found, seconds = [], 0.0
    with HolisticDetector(hands=True) as graph:
        for _, _, bgr in iter_frames(video, 0, max_frames):
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t0 = time.perf_counter()
            found.append(graph.process(rgb, (bgr.shape[1], bgr.shape[0])))
            seconds += time.perf_counter() - t0
    pose = np.stack([f.pose_2d for f in found])[None]
    hands = np.stack([f.hands_2d for f in found])[None]
    return pose, hands, len(found) / max(seconds, 1e-9)


def people_rows(suite: str, any_render: bool, max_frames: int | None) -> list[dict]:
    """Multi-person scenes: every true person's coverage and id switches (bench.metrics.track_metrics), their
    hands' coverage and swaps (hand_track_metrics), for our multi-person path (``people``) and for Holistic, which
    follows one person (its coverage of everyone else is the baseline's zero)."""
    from bench import metrics as M
    from bench.scenes import suite as suite_scenes

    rows = []
    for scene in suite_scenes(suite):
        folder = _scene_video(scene, any_render)
        with np.load(folder / "truth.npz") as f:
            t2d, tvis = f["people_body_markers_2d"], f["people_body_visible"]
            h2d, hvis = f["people_hand_points_2d"], f["people_hand_visible"]
        row = {"scene": scene.name, "framing": scene.framing, "render": folder.name, "people": int(len(t2d)),
               "methods": {}}
        for method in ("holistic", "people"):
            if method == "people":
                pose, hands, fps, counts = _people_tracks(folder / "clip.mp4", max_frames, None)
            else:
                (pose, hands, fps), counts = _holistic_track(folder / "clip.mp4", max_frames), {}
            n = pose.shape[1]
            tm = M.track_metrics(t2d[:, :n], tvis[:, :n], pose)
            hm = M.hand_track_metrics(h2d[:, :n], hvis[:, :n], hands, tm["person_match"])
            row["methods"][method] = {
                "person_coverage": [p["coverage"] for p in tm["per_person"]],
                "mean_person_coverage": tm["mean_coverage"], "id_switches": tm["id_switches"],
                "false_track_frames": tm["false_track_frames"], "tracks": int(len(pose)),
                "hand_coverage": hm["mean_coverage"], "hand_frames_visible": hm["frames_visible"],
                "hand_frames_found": hm["frames_found"], "hand_swap_frames": hm["swap_frames"],
                "fps": fps, "frames": n, **counts}
        print(_people_text(row), flush=True)
        rows.append(row)
    return rows


def _people_text(row: dict) -> str:
    parts = [f"{row['scene']:<16} {row['people']} people"]
    for method, m in row["methods"].items():
        people = " ".join(_pct(c) for c in m["person_coverage"])
        parts.append(f"{method}: people [{people}] switches {m['id_switches']} false {m['false_track_frames']} "
                     f"hands {_pct(m['hand_coverage'])} swaps {m['hand_swap_frames']} {m['fps']:.1f} fps")
    return " | ".join(parts)


def people_summary(rows: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for method in ("holistic", "people"):
        ms = [r["methods"][method] for r in rows]
        persons = [c for m in ms for c in m["person_coverage"] if c is not None and c == c]
        vis = sum(m["hand_frames_visible"] for m in ms)
        out[method] = {"person_coverage": float(np.mean(persons)) if persons else None,
                       "id_switches": sum(m["id_switches"] for m in ms),
                       "false_track_frames": sum(m["false_track_frames"] for m in ms),
                       "hand_coverage": sum(m["hand_frames_found"] for m in ms) / vis if vis else None,
                       "hand_swap_frames": sum(m["hand_swap_frames"] for m in ms),
                       "fps": float(np.mean([m["fps"] for m in ms])), "scenes": len(ms)}
    return out


FOOTAGE_TRUTH = ROOT / "bench" / "footage_hands.json"


def _ranges(ranges: list, n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    for a, b in ranges:
        mask[a:min(b, n)] = True
    return mask


def footage_scores(hands: np.ndarray, truth: dict, width: float) -> dict:
    """Score one clip's hands (T, 2, 21, 3) px against its annotation (`bench/footage_hands.json`): per side, the
    share of its visible frames where a hand is found on its own side of ``split_x`` (coverage), and the frames with
    a hand reported where that hand is not seen or sits on the other hand's side (false frames). Unsure frames
    count neither way."""
    n = len(hands)
    seen = np.isfinite(hands[..., 0]).all(-1)                                     # (T, 2)
    split = truth["split_x"] * width
    wrist_x = hands[:, :, 0, 0]
    # the subject's right hand is on the image's left (the subject faces the camera)
    own_side = np.stack([wrist_x[:, 0] >= split, wrist_x[:, 1] < split], axis=1) & seen
    out = {}
    for s, name in ((0, "L"), (1, "R")):
        ann = truth["left" if s == 0 else "right"]
        visible = _ranges(ann["visible"], n)
        unsure = _ranges(ann["unsure"], n) & ~visible
        hit = own_side[:, s] & visible
        false = seen[:, s] & ~unsure & ~(visible & own_side[:, s])
        out[f"coverage_{name}"] = float(hit.sum() / visible.sum()) if visible.any() else None
        out[f"visible_{name}"] = int(visible.sum())
        out[f"false_{name}"] = int(false.sum())
    return out


def footage_rows(folder: Path, max_frames: int | None) -> list[dict]:
    """Real clips. Where `bench/footage_hands.json` annotates a clip: coverage of its visible hands and false hand
    frames (`footage_scores`); otherwise (and always, as ``found_L/R``) the share of frames with each hand found."""
    import cv2

    truth = json.loads(FOOTAGE_TRUTH.read_text())["clips"]
    rows = []
    for clip in sorted(folder.glob("*.mp4")):
        row = {"scene": clip.name, "methods": {}, "annotated": clip.name in truth}
        width = cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_WIDTH)
        for method in ("holistic", "ours") + (("ours-hands",) if "closeup" in clip.name else ()):
            hands, fps = _detect(clip, method, max_frames)
            seen = np.isfinite(hands[..., 0]).all(-1)
            m = {"found_L": float(seen[:, 0].mean()), "found_R": float(seen[:, 1].mean()), "fps": fps,
                 "frames": len(hands)}
            if clip.name in truth:
                m.update(footage_scores(hands, truth[clip.name], width))
            else:
                m.update(coverage_L=m["found_L"], coverage_R=m["found_R"])
            row["methods"][method] = m
        print(_row_text(row), flush=True)
        rows.append(row)
    return rows


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def _row_text(row: dict) -> str:
    parts = [f"{row['scene']:<22}"]
    for method, m in row["methods"].items():
        swaps = f" swaps {m['swap_frames']}" if "swap_frames" in m else ""
        if "wrong_hands" in m:
            swaps += f" (wrists {m['swap_frames_wrist']}) wrong {m['wrong_hands']}"
        if "false_L" in m:
            swaps += f" false L {m['false_L']} R {m['false_R']}"
        parts.append(f"{method}: L {_pct(m['coverage_L'])} R {_pct(m['coverage_R'])}{swaps} {m['fps']:.1f} fps")
    return " | ".join(parts)


def summary(rows: list[dict]) -> dict:
    """Per method: coverage pooled over all visible hand-frames, total swap frames, mean fps."""
    out: dict[str, dict] = {}
    for method in ("holistic", "ours", "ours-hands", "torch", "torch-hands"):
        ms = [r["methods"][method] for r in rows if method in r["methods"]]
        if not ms:
            continue
        known = [m for m in ms if "visible_L" in m]     # clips with truth (every suite clip; annotated footage)
        if known:
            vis = sum(m["visible_L"] + m["visible_R"] for m in known)
            hit = sum((m["coverage_L"] or 0) * m["visible_L"] + (m["coverage_R"] or 0) * m["visible_R"]
                      for m in known)
            cover = hit / vis if vis else None
        else:
            cover = float(np.mean([(m["coverage_L"] + m["coverage_R"]) / 2 for m in ms]))
        out[method] = {"coverage": cover, "swap_frames": sum(m.get("swap_frames", 0) for m in ms),
                       "swap_frames_wrist": sum(m.get("swap_frames_wrist", 0) for m in ms),
                       "wrong_hands": sum(m.get("wrong_hands", 0) for m in ms),
                       "false_frames": sum(m.get("false_L", 0) + m.get("false_R", 0) for m in ms),
                       "scenes": len(ms), "fps": float(np.mean([m["fps"] for m in ms]))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./reel2rig bench perception", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default="smoke", help="smoke (default) or standard")
    parser.add_argument("--footage", type=Path, default=None, help="a folder of real clips instead of a suite")
    parser.add_argument("--any-render", action="store_true",
                        help="use an existing render of a scene from another renderer version instead of re-rendering")
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames of each clip")
    parser.add_argument("--scenes", default=None, help="only these scenes of the suite (comma-separated names)")
    parser.add_argument("--torch", action="store_true",
                        help="also the capture's detection with --detector torch (rows torch, torch-hands)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results folder")
    args = parser.parse_args(argv)
    from inference_server.config import prepare_environment

    prepare_environment()
    started = time.perf_counter()
    if args.footage is not None:
        rows, name = footage_rows(args.footage, args.max_frames), "perception-footage"
    elif args.suite == "multi":
        rows, name = people_rows(args.suite, args.any_render, args.max_frames), "perception-multi"
    else:
        rows = scene_rows(args.suite, args.any_render, args.max_frames, args.scenes, args.torch)
        name = f"perception-{args.suite}"
        if args.scenes:
            name += "-some"     # a partial run does not replace the suite's results
    report = {"suite": name, "command": "./reel2rig bench perception " + " ".join(argv or sys.argv[1:]),
              "seconds": time.perf_counter() - started,
              "summary": people_summary(rows) if name == "perception-multi" else summary(rows), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    for method, s in report["summary"].items():
        if name == "perception-multi":
            print(f"{method:<9} people {_pct(s['person_coverage'])}  id switches {s['id_switches']}  false track "
                  f"frames {s['false_track_frames']}  hands {_pct(s['hand_coverage'])}  hand swaps "
                  f"{s['hand_swap_frames']}  {s['fps']:.1f} fps over {s['scenes']} clips")
            continue
        print(f"{method:<11} coverage {_pct(s['coverage'])}  swap frames {s['swap_frames']} "
              f"(by wrists {s['swap_frames_wrist']})  wrong hands {s['wrong_hands']}  "
              f"false hand frames {s['false_frames']}  "
              f"{s['fps']:.1f} fps over {s['scenes']} clips")
    print(f"wrote {args.out / (name + '.json')}")
    return 0
