"""The batch's Blender step (``python -m addon.batch_export``) as the batch runs it: its own process, headless.

A synthetic Take with known motion is exported whole and in parts; the parts together must be the whole motion,
frame for frame, on the same timeline. Failures come back as a result with the step and a fix.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blender_env import ROOT
from synthetic_take import write_synthetic_take

from addon.batch_export import _part_ranges


def run_step(tmp_path: Path, name: str, **spec) -> dict:
    out = tmp_path / name
    out.mkdir()
    full = {"out_dir": str(out), "name": name, "rig": None, "formats": ["bvh"], "result": str(out / "result.json"),
            **spec}
    (out / "spec.json").write_text(json.dumps(full))
    env = dict(os.environ, PYTHONPATH=str(ROOT), BLENDER_USER_RESOURCES=str(tmp_path / f"blender-{name}"))
    proc = subprocess.run([sys.executable, "-m", "addon.batch_export", str(out / "spec.json")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    result = json.loads((out / "result.json").read_text())
    result["returncode"] = proc.returncode
    return result


def bvh_motion(path: Path) -> tuple[int, np.ndarray]:
    text = path.read_text()
    frames = int(re.search(r"^Frames: (\d+)$", text, re.M).group(1))
    rows = text.split("Frame Time:")[1].splitlines()[1:]
    return frames, np.array([[float(v) for v in row.split()] for row in rows if row.strip()])


def bvh_pose(rows: np.ndarray, channels: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per joint: (positions (T, k), rotation matrices (T, 3, 3)) from BVH motion rows."""
    from scipy.spatial.transform import Rotation

    out, column = [], 0
    for line in channels:
        names = line.split()
        values = rows[:, column:column + len(names)]
        column += len(names)
        rot = [i for i, n in enumerate(names) if n.endswith("rotation")]
        pos = [i for i, n in enumerate(names) if n.endswith("position")]
        order = "".join(names[i][0] for i in rot)
        matrices = Rotation.from_euler(order.upper(), values[:, rot], degrees=True).as_matrix()
        out.append((values[:, pos], matrices))
    assert column == rows.shape[1]
    return out


def test_part_ranges_cover_the_take_in_equal_parts():
    assert _part_ranges(90, None) == [(0, 90)] and _part_ranges(90, 90) == [(0, 90)]
    assert _part_ranges(90, 40) == [(0, 30), (30, 60), (60, 90)]
    parts = _part_ranges(108_000, 9000)
    assert len(parts) == 12 and parts[0] == (0, 9000) and parts[-1][1] == 108_000
    assert all(b - a <= 9000 for a, b in parts) and all(p[1] == q[0] for p, q in zip(parts, parts[1:]))


def test_a_long_take_is_exported_in_parts_that_add_up_to_the_whole(tmp_path):
    take, _ = write_synthetic_take(tmp_path / "clip.take.npz", n_frames=90, fps=30.0)
    whole = run_step(tmp_path, "whole", take=str(take), part_frames=0)
    parts = run_step(tmp_path, "clip", take=str(take), part_frames=40)
    assert whole["ok"] and parts["ok"], (whole, parts)
    assert [p["name"] for p in parts["parts"]] == ["clip_part001", "clip_part002", "clip_part003"]
    assert parts["actions"] == ["clip_part001", "clip_part002", "clip_part003"]
    assert [p["frames"] for p in parts["parts"]] == [[0, 30], [30, 60], [60, 90]]
    # the parts keep the clip's timeline: part k starts on the frame after part k-1 ends (30 fps take → 30 fps scene)
    ranges = [p["frame_range"] for p in parts["parts"]]
    assert ranges == [[1, 30], [31, 60], [61, 90]] and parts["frame_range"] == whole["frame_range"] == [1, 90]
    n_whole, motion = bvh_motion(tmp_path / "whole" / "whole.bvh")
    assert n_whole == 90
    pieces = []
    for k, (first, last) in enumerate(ranges, start=1):
        n, rows = bvh_motion(tmp_path / "clip" / f"clip_part{k:03d}.bvh")
        assert n == last - first + 1
        pieces.append(rows)
    # the same motion, frame for frame (as rotations: each file unwraps its Euler angles from its own start, so the
    # angles may differ by an equivalent triple)
    channels = re.findall(r"CHANNELS \d+ ([^\n]+)", (tmp_path / "whole" / "whole.bvh").read_text())
    got, want = bvh_pose(np.concatenate(pieces), channels), bvh_pose(motion, channels)
    for (got_pos, got_rot), (want_pos, want_rot) in zip(got, want):
        np.testing.assert_allclose(got_pos, want_pos, atol=1e-5)
        np.testing.assert_allclose(got_rot, want_rot, atol=1e-5)
    assert not list((tmp_path / "clip").glob(".*take*"))                     # the part Takes are cleaned up


def test_a_missing_rig_armature_is_reported_with_the_fix(tmp_path):
    take, _ = write_synthetic_take(tmp_path / "clip.take.npz", n_frames=10)
    result = run_step(tmp_path, "norig", take=str(take), rig=str(tmp_path / "missing.blend"))
    assert result["returncode"] == 1 and not result["ok"]
    assert result["stage"] == "rig" and "does not exist" in result["error"] and "--rig" in result["fix"]
