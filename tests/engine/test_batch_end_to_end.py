"""``./reel2rig batch`` end to end: a folder of mixed clips (good, portrait, long, an image sequence, corrupt, no
person) onto a Mixamo rig built in real Blender, with the real engine and the real Blender step, locally with two
workers and through a local Ray cluster; resumed, forced, and interrupted with Ctrl-C.

Slow-ish (about three minutes on two cores): every clip is captured for real.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ANNY_CACHE, ROOT, SAMPLE
from test_video_input import set_rotation

RIG_SCRIPT = """
import os, sys, tempfile
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import bpy
sys.path.insert(0, {blender_tests!r})
import rig_builders
bpy.ops.wm.read_homefile(use_empty=True)
rig_builders.build_mixamo(bpy, "Hero")
bpy.ops.wm.save_as_mainfile(filepath={out!r})
"""


def sample_frames(count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)   # loop the sample for longer clips
            continue
        frames.append(frame)
    cap.release()
    return frames


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def shoot(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("batch")
    clips = base / "clips"
    (clips / "day2").mkdir(parents=True)
    frames = sample_frames(150)
    write_mp4(clips / "good.mp4", frames[:24])
    # portrait phone clip: stored sideways with a 90° rotation in its metadata
    sideways = write_mp4(base / "sideways.mp4", [cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE) for f in frames[:20]])
    (clips / "day2" / "portrait.mp4").write_bytes(set_rotation(sideways.read_bytes(), 90))
    write_mp4(clips / "day2" / "long.mp4", frames)                     # 150 frames, the sample looped
    (clips / "seq").mkdir()
    for i, frame in enumerate(frames[30:46]):
        cv2.imwrite(str(clips / "seq" / f"frame_{i}.png"), frame)
    (clips / "corrupt.mp4").write_bytes((clips / "good.mp4").read_bytes()[:3000])
    write_mp4(clips / "empty_room.mp4", [np.full((240, 320, 3), 40 + i, np.uint8) for i in range(12)])
    (clips / "notes.txt").write_text("not a clip")
    rig = base / "hero.blend"
    subprocess.run([sys.executable, "-c", RIG_SCRIPT.format(blender_tests=str(ROOT / "tests" / "blender"),
                                                            out=str(rig))],
                   check=True, capture_output=True, cwd=ROOT, timeout=300)
    return {"base": base, "clips": clips, "rig": rig, "cache": base / "cache"}


def batch_env(cache: Path) -> dict:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(ROOT), "REEL2RIG_CACHE": str(cache), "ANNY_CACHE_DIR": str(ANNY_CACHE),
                "PYTHONUNBUFFERED": "1"})
    return env


def run_batch(shoot: dict, out: Path, *extra: str, inputs: list[str] | None = None,
              timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "batch", *(inputs or [str(shoot["clips"])]), "--out", str(out), "--rig",
           f"{shoot['rig']}:Hero", "--format", "fbx,bvh,npz", "--plain", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env or batch_env(shoot["cache"]),
                          timeout=timeout)


def summary(out: Path) -> dict[str, dict]:
    data = json.loads((out / "batch_summary.json").read_text())
    return {record["name"]: record for record in data["clips"]}


def check_converted(out: Path, name: str, record: dict) -> None:
    folder = out / name
    assert record["status"] == "ok", record
    assert record["map_id"] == "mixamo" and record["armature"] == "Hero"
    for wanted in (f"{name}.fbx", f"{name}.bvh", "thumb.jpg", "log.txt", "result.json", record["take"]):
        assert (folder / wanted).is_file(), f"{name}: no {wanted}"
    assert (folder / f"{name}.fbx").stat().st_size > 10_000
    bvh = (folder / f"{name}.bvh").read_text()
    assert "ROOT mixamorig" in bvh and "mixamorig_LeftHandIndex1" in bvh.replace(":", "_")
    # keys land at the clip's timestamps on the rig file's 24 fps (25 fps clips; image sequences are 30 fps)
    first, last = record["frame_range"]
    exported = int(re.search(r"^Frames: (\d+)$", bvh, re.M).group(1))
    expected = (record["frames"] - 1) * 24 / record["metrics"]["fps"] + 1
    assert abs(exported - expected) <= 1 and abs(exported - (last - first + 1)) <= 1
    with np.load(folder / record["take"]) as take:
        assert take["valid"].mean() > 0.9
    assert record["metrics"]["person_pct"] > 90


@pytest.fixture(scope="module")
def local_run(shoot) -> tuple[subprocess.CompletedProcess, Path]:
    out = shoot["base"] / "out"
    return run_batch(shoot, out, "--workers", "2"), out


def test_a_mixed_folder_converts_locally_with_two_workers(local_run):
    result, out = local_run
    assert result.returncode == 1, result.stderr[-3000:]          # two clips fail: the exit status says so
    clips = summary(out)
    assert set(clips) == {"good", "day2__portrait", "day2__long", "seq", "corrupt", "empty_room"}
    for name in ("good", "day2__portrait", "day2__long", "seq"):
        check_converted(out, name, clips[name])
    assert clips["day2__long"]["frames"] == 150 and clips["seq"]["frames"] == 16
    with np.load(out / "day2__portrait" / clips["day2__portrait"]["take"]) as take:
        width, height = take["image_size"]
    assert (width, height) == (480, 640)                          # upright, as the metadata says
    corrupt, empty = clips["corrupt"], clips["empty_room"]
    assert corrupt["status"] == "failed" and "corrupt.mp4" in corrupt["error"] and corrupt["fix"]
    assert empty["status"] == "failed" and "person" in empty["error"].lower() and empty["fix"]
    assert (out / "corrupt" / "log.txt").is_file()
    assert "2 failed" in result.stdout and "corrupt" in result.stdout
    assert "[batch] " in result.stderr and "FAILED corrupt" in result.stderr
    assert not (out / ".staging").exists()


def test_the_summary_csv_and_report_cover_every_clip(local_run):
    _, out = local_run
    rows = {row["name"]: row for row in csv.DictReader((out / "batch_summary.csv").open())}
    assert rows["good"]["status"] == "ok" and float(rows["good"]["residual_px_median"]) < 30
    assert rows["corrupt"]["status"] == "failed" and rows["corrupt"]["fix"]
    report = (out / "batch_report.md").read_text()
    assert "![day2__long](day2__long/thumb.jpg)" in report and "## Needs attention" in report
    assert "| empty_room | failed | capture |" in report
    assert cv2.imread(str(out / "good" / "thumb.jpg")).shape[1] == 480


def test_a_second_run_skips_finished_clips_and_force_redoes_them(shoot, local_run):
    _, out = local_run
    stamp = (out / "good" / "result.json").stat().st_mtime_ns
    again = run_batch(shoot, out, "--workers", "2")
    assert again.returncode == 1                                  # the broken clips are tried again and fail again
    clips = summary(out)
    assert all(clips[n].get("skipped") for n in ("good", "day2__portrait", "day2__long", "seq"))
    assert (out / "good" / "result.json").stat().st_mtime_ns == stamp
    assert "4 skipped" in again.stdout
    forced = run_batch(shoot, out, "--force", inputs=[str(shoot["clips"] / "good.mp4")])
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert (out / "good" / "result.json").stat().st_mtime_ns != stamp
    assert not summary(out)["good"].get("skipped")


def test_a_local_ray_cluster_converts_the_same_clips(shoot, local_run):
    out = shoot["base"] / "out_ray"
    result = run_batch(shoot, out, "--ray", "--workers", "2")
    assert result.returncode == 1, result.stderr[-3000:]
    clips = summary(out)
    assert set(clips) == {"good", "day2__portrait", "day2__long", "seq", "corrupt", "empty_room"}
    # the local pool's outcome of each clip (its folder's result.json: later tests re-ran some into that folder)
    local = {name: json.loads((local_run[1] / name / "result.json").read_text()) for name in clips}
    for name, record in clips.items():
        assert record["status"] == local[name]["status"], name      # the same outcome as the local pool
        if record["status"] == "ok":
            check_converted(out, name, record)
            assert record["frames"] == local[name]["frames"]
        else:
            assert record["error"] == local[name]["error"] and record["fix"]
    batch = json.loads((out / "batch_summary.json").read_text())["batch"]
    assert batch["backend"] == "ray" and batch["ray"]["actors"] == 2
    inputs = [str(shoot["clips"] / "good.mp4"), str(shoot["clips"] / "seq")]
    again = run_batch(shoot, out, "--ray", "--workers", "2", inputs=inputs)
    assert again.returncode == 0 and "2 skipped" in again.stdout  # Ray results resume like local ones


def engines_of(cache: Path) -> list[int]:
    """Live processes started with this cache folder (engines, Blender steps)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"REEL2RIG_CACHE={cache}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_ctrl_c_keeps_finished_clips_and_loses_only_the_one_in_progress(shoot):
    out = shoot["base"] / "out_interrupted"
    cache = shoot["base"] / "cache_interrupted"
    inputs = [str(shoot["clips"] / "good.mp4"), str(shoot["clips"] / "day2" / "long.mp4")]
    cmd = [sys.executable, "-m", "batch", *inputs, "--out", str(out), "--format", "fbx", "--plain"]
    # As from a terminal: SIGINT raises KeyboardInterrupt even when this test runs as a background job (whose
    # shell ignores SIGINT for it, a disposition children inherit and Python then leaves alone).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=batch_env(cache), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while not (out / "good" / "result.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the first clip never finished"
        time.sleep(0.2)
    time.sleep(2.0)                                               # the long clip is under way
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stdout
    clips = summary(out)
    assert clips["good"]["status"] == "ok" and clips["long"]["status"] == "pending"
    assert not (out / "long").exists() and not (out / ".staging").exists()
    time.sleep(1.0)
    assert engines_of(cache) == []                                # the engine stopped with the batch
    resumed = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=batch_env(cache), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clips = summary(out)
    assert clips["good"].get("skipped") and clips["long"]["status"] == "ok" and clips["long"]["frames"] == 150


def test_a_started_ray_cluster_is_joined_by_its_address(shoot, tmp_path):
    """What a studio does: `ray start --head` on a machine, then the batch pointed at its address."""
    import socket

    ray = Path(sys.executable).with_name("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # token authentication off on both sides (a studio cluster sets RAY_AUTH_MODE=token and shares the token)
    env = dict(batch_env(shoot["cache"]), RAY_AUTH_MODE="disabled")
    started = subprocess.run([str(ray), "start", "--head", f"--port={port}", "--num-cpus=2",
                              "--include-dashboard=false", "--disable-usage-stats"],
                             capture_output=True, text=True, env=env, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        out = tmp_path / "out"
        result = run_batch(shoot, out, "--ray", f"127.0.0.1:{port}", "--workers", "1",
                           inputs=[str(shoot["clips"] / "good.mp4")], env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        batch = json.loads((out / "batch_summary.json").read_text())["batch"]
        assert batch["ray_address"] == f"127.0.0.1:{port}" and batch["ray"]["resources"]["CPU"] == 2.0
        check_converted(out, "good", summary(out)["good"])
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_a_licensed_body_model_reaches_the_rig(shoot, tmp_path):
    """--model smplx with the studio's files (a synthetic SMPL-X with the official structure here): the Takes are
    SMPL-X's and they still land on the Mixamo rig."""
    sys.path.insert(0, str(ROOT / "tests"))
    from synthetic_models import write_model_file

    models = tmp_path / "models"
    write_model_file(models, "smplx")
    out = shoot["base"] / "out_smplx"
    proc = run_batch(shoot, out, "--model", "smplx", "--model-dir", str(models),
                     inputs=[str(shoot["clips"] / "good.mp4")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = summary(out)["good"]
    assert record["status"] == "ok" and record["map_id"] == "mixamo", record
    assert {"good.fbx", "good.bvh", "good.take.npz"} <= {p.name for p in (out / "good").iterdir()}
    names = [str(n) for n in np.load(out / "good" / "good.take.npz")["bone_names"]]
    assert len(names) == 55 and names[:3] == ["pelvis", "left_hip", "right_hip"]   # SMPL-X's 55 joints, not Anny's
    assert "ROOT mixamorig" in (out / "good" / "good.bvh").read_text()[:2000]
