"""`./reel2rig bench throughput`: every row measured, on the sample's frames, at every batch size asked for."""
from __future__ import annotations

import json

from bench.throughput import SAMPLE, load_frames, main


def test_load_frames_loops_a_short_clip_at_the_size_asked(tmp_path):
    frames = load_frames(SAMPLE, 130, (320, 180))
    assert len(frames) == 130 and frames[0].shape == (180, 320, 3) and frames[0].dtype.name == "uint8"


def test_throughput_bench_writes_every_row(tmp_path):
    assert main(["--frames", "4", "--batches", "1,2", "--size", "640x360", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "throughput-cpu.json").read_text())
    rows = {(r["method"], r["batch"]): r["fps"] for r in report["rows"]}
    assert set(rows) == {("mediapipe holistic", 1), ("holistic, no face", 1), ("ours body+hands", 1),
                         ("mediapipe hands", 1)} | {
        (m, b) for m in ("torch pose", "torch hands", "torch people") for b in (1, 2)}
    assert all(fps > 0 for fps in rows.values())
    assert report["frames"] == 4 and report["size"] == [640, 360]
