"""JobManager and ProgressThrottle in-process, with a stand-in for pipeline.run_capture (no video, no models)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inference_server import jobs, pipeline, protocol


class Outbox:
    def __init__(self):
        self.items: list[tuple[str, dict]] = []
        self.cond = threading.Condition()

    def __call__(self, method: str, params: dict) -> None:
        protocol.encode(protocol.notification(method, params))  # must be plain JSON
        with self.cond:
            self.items.append((method, params))
            self.cond.notify_all()

    def wait_for(self, method: str, job_id: str, timeout: float = 5) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m, p in self.items:
                    if m == method and p["job_id"] == job_id:
                        return p
                left = deadline - time.monotonic()
                assert left > 0, f"no {method} for {job_id}: {self.items}"
                self.cond.wait(left)

    def of(self, job_id: str, method: str | None = None) -> list[dict]:
        with self.cond:
            return [p for m, p in self.items if p["job_id"] == job_id and (method is None or m == method)]


@pytest.fixture
def manager():
    out = Outbox()
    mgr = jobs.JobManager(out)
    mgr.out = out
    yield mgr
    mgr.shutdown(wait=5)


def submit(mgr, tmp_path, name="clip"):
    job = jobs.Job(mgr.new_job_id(), tmp_path / f"{name}.mp4", tmp_path, pipeline.CaptureOptions())
    mgr.submit(job)
    return job


def result(tmp_path) -> pipeline.CaptureResult:
    return pipeline.CaptureResult(tmp_path / "a.take.npz", tmp_path / "a.take.json", np.int64(12),
                                  np.float64(1.5), {"fit": {"seconds": np.float32(0.5), "fps": float("nan")}})


def test_finished_is_plain_json(manager, tmp_path, monkeypatch):
    def run(video, out_dir, options, progress, cancelled):
        for i in range(1, 4):
            progress("detect", i, 3, np.float32(30.0))
        return result(tmp_path)

    monkeypatch.setattr(pipeline, "run_capture", run)
    job = submit(manager, tmp_path)
    done = manager.out.wait_for("finished", job.id)
    assert done == {"job_id": job.id, "take": str(tmp_path / "a.take.npz"), "sidecar": str(tmp_path / "a.take.json"),
                    "frames": 12, "seconds": 1.5, "stages": {"fit": {"seconds": 0.5, "fps": None}}, "people": [],
                    "hands": []}
    assert manager.out.of(job.id, "progress")[-1]["done"] == 3
    assert manager.cancel(job.id) == {"job_id": job.id, "cancelled": False, "state": "finished"}


def test_jobs_run_one_at_a_time_in_order_and_queued_jobs_cancel_at_once(manager, tmp_path, monkeypatch):
    running = []
    release = threading.Event()

    def run(video, out_dir, options, progress, cancelled):
        running.append(video.stem)
        assert len(running) - len(finished) == 1
        release.wait(5)
        finished.append(video.stem)
        return result(tmp_path)

    finished: list[str] = []
    monkeypatch.setattr(pipeline, "run_capture", run)
    a, b, c = (submit(manager, tmp_path, n) for n in "abc")
    assert manager.cancel(b.id)["cancelled"] is True
    failed = manager.out.wait_for("failed", b.id)
    assert failed["cancelled"] and failed["code"] == protocol.JOB_CANCELLED
    release.set()
    manager.out.wait_for("finished", c.id)
    assert running == ["a", "c"]
    assert manager.out.of(b.id) == [failed]


def test_cancel_running_job(manager, tmp_path, monkeypatch):
    started = threading.Event()

    def run(video, out_dir, options, progress, cancelled):
        started.set()
        while not cancelled():
            progress("fit", 1, 10, 0.0)
            time.sleep(0.01)
        raise pipeline.Cancelled("stop")

    monkeypatch.setattr(pipeline, "run_capture", run)
    job = submit(manager, tmp_path)
    assert started.wait(5)
    assert manager.cancel(job.id) == {"job_id": job.id, "cancelled": True}
    failed = manager.out.wait_for("failed", job.id)
    assert failed["cancelled"] is True and failed["code"] == protocol.JOB_CANCELLED
    with pytest.raises(protocol.RpcError) as info:
        manager.cancel("job-unknown")
    assert info.value.code == protocol.JOB_NOT_FOUND


def test_error_wrapping_a_cancel_still_ends_as_cancelled(manager, tmp_path, monkeypatch):
    def run(video, out_dir, options, progress, cancelled):
        while not cancelled():
            time.sleep(0.01)
        raise RuntimeError("a stage wrapped the cancel")

    monkeypatch.setattr(pipeline, "run_capture", run)
    job = submit(manager, tmp_path)
    time.sleep(0.05)
    manager.cancel(job.id)
    assert manager.out.wait_for("failed", job.id)["cancelled"] is True


@pytest.mark.parametrize("exc, code, fragment", [
    (protocol.RpcError(protocol.NO_PERSON, "nobody in clip.mp4", frame=3), protocol.NO_PERSON, "nobody"),
    (ZeroDivisionError("division by zero"), protocol.JOB_FAILED, "ZeroDivisionError in stage 'fit': division"),
    (PermissionError(13, "Permission denied"), protocol.OUTPUT_NOT_WRITABLE, "PermissionError"),
])
def test_failures_become_failed_notifications(manager, tmp_path, monkeypatch, exc, code, fragment):
    def run(video, out_dir, options, progress, cancelled):
        progress("fit", 0, 5, 0.0)
        raise exc

    monkeypatch.setattr(pipeline, "run_capture", run)
    job = submit(manager, tmp_path)
    failed = manager.out.wait_for("failed", job.id)
    assert failed["code"] == code and fragment in failed["message"]
    assert failed["cancelled"] is False and failed["fix"]
    if code == protocol.NO_PERSON:
        assert failed["data"] == {"frame": 3}
    # the worker survives for the next job
    monkeypatch.setattr(pipeline, "run_capture", lambda *a: result(tmp_path))
    manager.out.wait_for("finished", submit(manager, tmp_path).id)


def test_shutdown_cancels_running_and_queued(tmp_path, monkeypatch):
    out = Outbox()
    mgr = jobs.JobManager(out)

    def run(video, out_dir, options, progress, cancelled):
        while not cancelled():
            time.sleep(0.01)
        raise pipeline.Cancelled()

    monkeypatch.setattr(pipeline, "run_capture", run)
    a, b = submit(mgr, tmp_path, "a"), submit(mgr, tmp_path, "b")
    time.sleep(0.05)
    assert mgr.shutdown(wait=5) is True
    assert out.of(a.id, "failed")[0]["cancelled"] and out.of(b.id, "failed")[0]["cancelled"]
    with pytest.raises(protocol.RpcError):
        submit(mgr, tmp_path)


def test_progress_throttle_limits_rate_and_keeps_stage_ends():
    sent: list[dict] = []
    throttle = jobs.ProgressThrottle("j", lambda m, p: sent.append(p), min_interval=10.0)
    for i in range(1, 101):
        throttle.update("detect", i, 200, 5.0)
    assert [p["done"] for p in sent] == [1]  # the first of a stage goes out, the rest is held back
    throttle.update("fit", 0, 10, float("inf"))
    assert [(p["stage"], p["done"]) for p in sent] == [("detect", 1), ("detect", 100), ("fit", 0)]
    assert sent[-1]["fps"] == 0.0
    throttle.update("fit", 10, 10, 1.0)  # done == total goes out at once
    assert sent[-1]["done"] == 10
    throttle.update("write", 0, 1, 0.0)
    throttle.update("write", 0, 1, 0.0)
    throttle.flush()
    assert [(p["stage"], p["done"]) for p in sent][-2:] == [("write", 0), ("write", 0)]


def test_progress_throttle_real_rate():
    sent: list[float] = []
    throttle = jobs.ProgressThrottle("j", lambda m, p: sent.append(time.monotonic()))
    end = time.monotonic() + 0.5
    i = 0
    while time.monotonic() < end:
        i += 1
        throttle.update("detect", i, 10**9, 0.0)
    assert 3 <= len(sent) <= 8
