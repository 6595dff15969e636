"""The streamed tracker (`tracking.track_ids`, whole-clip columns instead of an object per observation) gives exactly
the ids of the tracker it replaced, on randomized synthetic clips.

`random_clip(seed)` makes a clip of bodies or hands with everything the tracker handles: objects that come and go,
gaps of every length (online re-links, offline stitches, attached short fragments), dropped detections and
keypoints, low-confidence and NaN-confidence keypoints, box-only detections, duplicates, junk detections, changing
sizes, flipping hand labels, parents mapped through ``body_ids``, and random tracker settings. The ids and track
infos that the tracker before the streamed one (commit 21463e0, whose observations were Python objects) gave on
``SEEDS`` are in ``tests/fixtures/tracking_reference.json``; ``python -m tests.unit.test_tracking_stream OLD.py``
writes that file again from such a copy of ``tracking.py``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from inference_server import scratch
from inference_server import tracking as trk
from inference_server.tracking import Detection, track, track_ids

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "tracking_reference.json"
SEEDS = range(48)
W, H = 1280, 720


def random_clip(seed: int) -> tuple[list[list[Detection]], dict]:
    """Per frame, shuffled detections of one kind; and the `track` keyword arguments to run them with."""
    rng = np.random.default_rng(seed)
    kind = ("body", "hand")[seed % 2]
    k = 33 if kind == "body" else 21
    shape = rng.normal(0.0, 0.3, (k, 2))                                   # (K, 2) in units of the object's size
    n = int(rng.integers(40, 260))
    n_bodies = 3
    actors = []
    for _ in range(int(rng.integers(1, 5))):
        start, stop = sorted(int(x) for x in rng.integers(-20, n + 20, 2))
        gaps = [(g, g + int(rng.choice([1, 2, 4, 8, 20, 45, 80]))) for g in rng.integers(0, n, int(rng.integers(0, 4)))]
        actors.append({
            "start": start, "stop": max(stop, start + 3), "gaps": gaps,
            "size": rng.uniform(150, 420) if kind == "body" else rng.uniform(30, 130),
            "growth": rng.normal(0.0, 0.004), "x0": rng.uniform(0, W, 2), "v": rng.normal(0.0, 6.0, 2),
            "amp": rng.uniform(0, 80), "freq": rng.uniform(0.02, 0.3), "phase": rng.uniform(0, 6.3),
            "noise": rng.uniform(0.3, 4.0), "det_drop": rng.choice([0.0, 0.05, 0.2, 0.4]),
            "kp_drop": rng.choice([0.0, 0.1, 0.3]), "low_conf": rng.choice([0.0, 0.1]),
            "nan_conf": rng.random() < 0.2, "box_only": rng.choice([0.0, 0.0, 0.1]),
            "duplicate": rng.choice([0.0, 0.0, 0.05]), "label": str(rng.choice(["left", "right"])),
            "flip": rng.choice([0.0, 0.1, 0.4]), "parent": int(rng.integers(0, n_bodies + 1)),
            "score": rng.uniform(0.2, 1.0)})
    junk = rng.choice([0.0, 0.05, 0.3])
    with_parents = kind == "hand" and rng.random() < 0.5
    frames: list[list[Detection]] = []
    body_ids: list[list[int]] = []
    for t in range(n):
        dets = []
        for a in actors:
            if not a["start"] <= t < a["stop"] or any(g0 <= t < g1 for g0, g1 in a["gaps"]):
                continue
            if rng.random() < a["det_drop"]:
                continue
            centre = a["x0"] + a["v"] * t + a["amp"] * np.sin(a["freq"] * t + a["phase"])
            size = a["size"] * np.exp(np.clip(a["growth"] * t, -1, 1))
            for _copy in range(2 if rng.random() < a["duplicate"] else 1):
                xy = centre + size * shape + rng.normal(0.0, a["noise"], (k, 2))
                conf = rng.uniform(0.5, 1.0, k)
                conf[rng.random(k) < a["low_conf"]] = 0.1
                if a["nan_conf"]:
                    conf[rng.random(k) < 0.3] = np.nan
                kp = np.column_stack([xy, conf])
                kp[rng.random(k) < a["kp_drop"], :2] = np.nan
                box = None
                if rng.random() < a["box_only"]:
                    box = np.r_[np.nanmin(xy, 0), np.nanmax(xy, 0)]
                    kp[:] = np.nan
                label = a["label"] if rng.random() >= a["flip"] else {"left": "right", "right": "left"}[a["label"]]
                dets.append(Detection(kp, score=float(np.clip(a["score"] + rng.normal(0, 0.05), 0, 1)), box=box,
                                      label=label if kind == "hand" else None,
                                      parent=a["parent"] if with_parents else None))
        if rng.random() < junk:
            kp = np.column_stack([rng.uniform(0, W, k), rng.uniform(0, H, k), rng.uniform(0.2, 0.6, k)])
            dets.append(Detection(kp, score=float(rng.uniform(0.1, 0.5)), label="left" if kind == "hand" else None))
        frames.append([dets[i] for i in rng.permutation(len(dets))])
        body_ids.append([int(x) if rng.random() > 0.1 else -1 for x in rng.permutation(n_bodies)])
    kwargs = {"kind": kind, "image_size": (W, H), "max_gap": int(rng.choice([2, 5, 15])),
              "min_length": int(rng.choice([1, 2, 3, 5, 8])), "max_stitch_gap": rng.choice([None, 0, 10, 40])}
    if kwargs["max_stitch_gap"] is not None:
        kwargs["max_stitch_gap"] = int(kwargs["max_stitch_gap"])
    if with_parents:
        kwargs["body_ids"] = body_ids
    return frames, kwargs


def _summary(result) -> dict:
    """What `track` answers, as JSON-able data (floats exactly: JSON keeps a float's shortest repr)."""
    return {"ids": [i for frame in result.ids for i in frame], "counts": [len(frame) for frame in result.ids],
            "tracks": {str(tid): [info.first, info.last, info.n_frames, info.mean_score, info.label, info.parent]
                       for tid, info in result.tracks.items()}}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def test_the_reference_covers_what_the_tracker_does(reference):
    """The saved clips exercise stitching, attaching, dropping and both kinds (else the comparison proves little)."""
    kinds, dropped, many_tracks = set(), 0, 0
    for seed in SEEDS:
        frames, kwargs = random_clip(seed)
        kinds.add(kwargs["kind"])
        ref = reference[str(seed)]
        dropped += ref["ids"].count(-1) > 0
        many_tracks += len(ref["tracks"]) >= 3
        assert ref["counts"] == [len(f) for f in frames], f"seed {seed}: the clip generator changed"
    assert kinds == {"body", "hand"} and dropped >= 20 and many_tracks >= 10


@pytest.mark.parametrize("seed", SEEDS)
def test_same_ids_as_the_object_tracker(seed, reference):
    frames, kwargs = random_clip(seed)
    assert _summary(track(frames, **kwargs)) == reference[str(seed)]


@pytest.mark.parametrize("seed", [s for s in SEEDS if s % 3 == 0])
def test_streamed_on_disk_and_grouped_stitching_give_the_same_ids(seed, reference, tmp_path, monkeypatch):
    """From a generator, with every column a memory map (scratch on, no size threshold) and the stitching's
    assignment made group by group (DENSE_STITCH 0): the same ids."""
    frames, kwargs = random_clip(seed)
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "0")
    monkeypatch.setattr(trk, "DENSE_STITCH", 0)
    with scratch.opened(tmp_path):
        result = track_ids((frame for frame in frames), **kwargs)
    assert len(result) == len(frames) and result.ids.dtype == np.int32
    expected = reference[str(seed)]
    assert result.ids.tolist() == expected["ids"]
    assert [len(result[t]) for t in range(len(result))] == expected["counts"]
    assert _summary(track(frames, **kwargs))["tracks"] == expected["tracks"]


def test_array_rows_grow_and_keep_their_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("REEL2RIG_SCRATCH_MIN_FRAMES", "20")
    rows = trk.ArrayRows({"a": np.float64, "b": np.int8}, capacity=16)
    assert len(rows) == 0 and rows["a"].shape == (0,)
    with scratch.opened(tmp_path):
        for i in range(100):
            assert rows.append(a=np.full(3, i * 0.5), b=i % 7) == i
        assert scratch.on_disk(rows["a"]) and rows["a"].shape == (100, 3) and rows["b"].dtype == np.int8
        np.testing.assert_array_equal(rows["a"][:, 1], np.arange(100) * 0.5)
        np.testing.assert_array_equal(rows["b"], np.arange(100) % 7)


def _write_reference(old_tracking: Path) -> None:
    """Run the tracker in ``old_tracking`` (a copy of the object-per-observation tracking.py) on SEEDS."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("old_tracking", old_tracking)
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_tracking"] = old     # dataclasses look their module up
    spec.loader.exec_module(old)
    out = {str(seed): _summary(old.track(frames, **kwargs)) for seed in SEEDS for frames, kwargs in [random_clip(seed)]}
    REFERENCE.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"written: {REFERENCE}")


if __name__ == "__main__":
    _write_reference(Path(sys.argv[1]))
