"""A real capture through the real engine: progress order, the finished Take, cancel mid-job.

Needs the pipeline and samples/sample_wave.mp4; skips (with the reason) while either is missing.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from addon.client import EngineClient, Failed, Finished, Progress
from inference_server import protocol

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(os.environ.get("REEL2RIG_SAMPLE_CLIP") or ROOT / "samples" / "sample_wave.mp4")
ANNY_CACHE = ROOT / ".cache" / "anny"
STAGE_RANK = {"decode": 0, "detect": 0, "fit": 1, "world": 2, "write": 3}  # decode and detect are streamed together

pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} not rendered yet")


def count_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


@pytest.fixture
def client(tmp_path):
    engine = EngineClient(sys.executable, root=ROOT, cache_dir=tmp_path / "cache",
                          env={"ANNY_CACHE_DIR": str(ANNY_CACHE)})
    engine.start(timeout=120)
    yield engine
    engine.shutdown()
    assert engine.returncode == 0


def skip_if_unimplemented(outcome) -> None:
    if isinstance(outcome, Failed) and "NotImplementedError" in outcome.message:
        pytest.skip("the capture pipeline is not implemented yet")


def test_capture_sample_clip(client, tmp_path):
    from inference_server.take import read_take

    out_dir = tmp_path / "takes"
    job = client.capture(SAMPLE, out_dir=out_dir)
    events: list = []
    outcome = client.wait(job, timeout=600, on_event=events.append)
    skip_if_unimplemented(outcome)
    assert isinstance(outcome, Finished), f"{outcome}\n{client.stderr_tail()}"

    progress = [e for e in events if isinstance(e, Progress)]
    assert progress, "no progress notifications"
    assert all(e.job_id == job and e.stage in STAGE_RANK for e in progress)
    ranks = [STAGE_RANK[e.stage] for e in progress]
    assert ranks == sorted(ranks), [e.stage for e in progress]
    assert {"fit", "write"} <= {e.stage for e in progress}
    assert {"decode", "detect"} & {e.stage for e in progress}
    for stage in STAGE_RANK:
        dones = [e.done for e in progress if e.stage == stage]
        assert dones == sorted(dones), (stage, dones)
        assert all(0 <= e.done <= e.total for e in progress if e.stage == stage)
    last_write = [e for e in progress if e.stage == "write"][-1]
    assert last_write.done == last_write.total
    assert events[-1] == outcome

    n_frames = count_frames(SAMPLE)
    take = read_take(outcome.take)
    assert Path(outcome.take).parent == out_dir
    assert Path(outcome.sidecar).is_file()
    assert take.n_frames == n_frames == outcome.frames
    # an Anny capture brings its mesh for the add-on's preview, named in the sidecar
    from inference_server.take import read_mesh

    assert take.meta["mesh"]["file"] == Path(outcome.take).name.replace(".take.npz", ".mesh.npz")
    mesh = read_mesh(Path(outcome.take).with_name(take.meta["mesh"]["file"]))
    assert [str(n) for n in mesh["bone_names"]] == take.bone_names
    assert np.abs(mesh["rest_matrices"] - take["rest_matrices"]).max() < 1e-6
    assert outcome.seconds > 0
    assert set(outcome.stages) >= {"fit"}
    assert client.alive


def test_cancel_mid_job(client, tmp_path):
    out_dir = tmp_path / "takes"
    job = client.capture(SAMPLE, out_dir=out_dir)
    deadline = time.monotonic() + 300
    first_detect = None
    while first_detect is None:
        assert time.monotonic() < deadline, "no detect progress within 300 s"
        for event in client.poll():
            skip_if_unimplemented(event)
            assert not isinstance(event, Finished), "the job finished before it could be cancelled"
            assert not isinstance(event, Failed), f"{event}\n{client.stderr_tail()}"
            if isinstance(event, Progress) and event.stage == "detect":
                first_detect = event
                break
        time.sleep(0.01)
    started = time.monotonic()
    assert client.cancel(job) is True
    outcome = client.wait(job, timeout=30)
    elapsed = time.monotonic() - started
    assert isinstance(outcome, Failed), outcome
    assert outcome.cancelled and outcome.code == protocol.JOB_CANCELLED
    assert elapsed < 5, f"cancel took {elapsed:.1f} s"
    # the engine is alive and answers
    assert client.alive
    assert client.cancel(job) is False  # already ended
    assert client.request("initialize")["protocol_version"] == protocol.PROTOCOL_VERSION
    # no partial Take
    leftovers = list(out_dir.glob("*.take.npz")) + list(out_dir.glob("*.tmp")) if out_dir.exists() else []
    assert leftovers == []


def test_shutdown_during_a_job_cancels_it_first(raw_engine, tmp_path):
    engine = raw_engine(ANNY_CACHE_DIR=str(ANNY_CACHE))
    engine.initialize()
    reply = engine.call("capture", {"video": str(SAMPLE), "out_dir": str(tmp_path / "takes")})
    job_id = reply["result"]["job_id"]
    first = engine.notification("progress", job_id, timeout=300)
    assert first["params"]["stage"] in STAGE_RANK
    msg_id = engine.next_id()
    engine.send(protocol.request(msg_id, "shutdown"))
    # the job's `failed` (cancelled) comes before the answer to shutdown, then the engine exits 0
    while True:
        message = engine.recv(timeout=30)
        if message.get("method") == "progress":
            continue
        break
    if message.get("method") == "failed" and "NotImplementedError" in message["params"]["message"]:
        pytest.skip("the capture pipeline is not implemented yet")
    assert message["method"] == "failed" and message["params"]["cancelled"] is True, message
    assert engine.recv(timeout=30) == {"jsonrpc": "2.0", "id": msg_id, "result": None}
    assert engine.wait_exit(timeout=30) == 0
    assert not list((tmp_path / "takes").glob("*.take.npz"))
