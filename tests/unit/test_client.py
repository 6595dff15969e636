"""addon.client.EngineClient against tiny misbehaving engines (real subprocesses, tests/fixtures/engines/)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from addon.client import (EngineClient, EngineDied, EngineError, EngineTimeout, Failed, Finished, Progress,
                          RpcCallError)
from addon.client import engine as engine_module

ENGINES = Path(__file__).resolve().parents[1] / "fixtures" / "engines"


def fixture_client(script: str, *extra: str, tmp_path: Path) -> EngineClient:
    return EngineClient(sys.executable, args=[sys.executable, str(ENGINES / script), *extra],
                        cache_dir=tmp_path / "cache")


@pytest.fixture
def make_client(tmp_path):
    clients: list[EngineClient] = []

    def make(script: str, *extra: str) -> EngineClient:
        client = fixture_client(script, *extra, tmp_path=tmp_path)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(timeout=3)
        assert not client.alive


def poll_until(client: EngineClient, predicate, timeout: float = 10.0) -> list:
    events: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events.extend(client.poll())
        if predicate(events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s; events: {events}")


def test_default_root_holds_the_engine_package():
    assert (engine_module.default_root() / "inference_server" / "__main__.py").is_file()


def test_dies_during_initialize_raises_engine_error_with_stderr(make_client):
    client = make_client("die_during_initialize.py")
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        client.start(timeout=30)
    assert time.monotonic() - started < 10, "a dead engine must be noticed at once, not at the timeout"
    error = info.value
    assert not isinstance(error, (RpcCallError, EngineTimeout))
    assert error.returncode == 3
    assert "status 3" in error.message
    assert "cannot load model weights (boom)" in error.stderr_tail
    assert "boom" in str(error)
    assert not client.alive
    assert client.log_path is not None and client.log_path.parent == client.cache_dir / "logs"


def test_never_answers_times_out_and_is_stopped(make_client):
    client = make_client("never_answers.py")
    started = time.monotonic()
    with pytest.raises(EngineTimeout) as info:
        client.start(timeout=1.0)
    assert 0.9 < time.monotonic() - started < 8
    assert "initialize" in str(info.value) and "1 s" in str(info.value)
    assert not client.alive  # start() does not leave a hung process behind


def test_request_timeout_on_a_live_engine(make_client):
    client = make_client("fake_engine.py")
    client.start(timeout=10)
    started = time.monotonic()
    with pytest.raises(EngineTimeout) as info:
        client.request("hang", timeout=0.5)
    assert 0.4 < time.monotonic() - started < 5
    assert "hang" in str(info.value)
    assert client.alive
    assert client.request("initialize")["engine_version"] == "0.0-fixture"  # ids stay matched after a timeout


def test_garbage_on_stdout_is_skipped_when_answers_follow(make_client):
    client = make_client("garbage_stdout.py", "then-ok")
    info = client.start(timeout=10)
    assert info["engine_version"] == "0.0-fixture"
    assert client.alive
    faults = " | ".join(client.protocol_faults)
    assert "malformed header" in faults and "not valid UTF-8 JSON" in faults
    with pytest.raises(RpcCallError) as err:
        client.request("nope")
    assert err.value.code == -32601
    client.shutdown()
    assert client.returncode == 0
    assert client.poll() == []  # an intended shutdown is not an EngineDied


def test_garbage_only_gives_an_error_that_names_the_output(make_client):
    client = make_client("garbage_stdout.py", "only")
    with pytest.raises(EngineTimeout) as info:
        client.start(timeout=1.5)
    assert "non-protocol output" in str(info.value)
    assert "hello from a stray print" in str(info.value)


def test_exit_mid_job_gives_engine_died(make_client, tmp_path):
    client = make_client("exit_mid_job.py")
    client.start(timeout=10)
    video = tmp_path / "clip.mp4"
    job = client.capture(video)
    assert job == "job-1"
    events = poll_until(client, lambda evs: any(isinstance(e, EngineDied) for e in evs))
    assert events[0] == Progress("job-1", "detect", 1, 10, 5.0)
    died = events[-1]
    assert isinstance(died, EngineDied)
    assert died.returncode == 7
    assert "segfault in the fit stage" in died.stderr_tail
    assert not client.alive
    with pytest.raises(EngineError) as info:
        client.request("initialize")
    assert "status 7" in str(info.value)


def test_wait_raises_when_the_engine_dies(make_client, tmp_path):
    client = make_client("exit_mid_job.py")
    client.start(timeout=10)
    job = client.capture(tmp_path / "clip.mp4")
    seen: list = []
    with pytest.raises(EngineError) as info:
        client.wait(job, timeout=10, on_event=seen.append)
    assert info.value.returncode == 7
    assert "segfault" in info.value.stderr_tail
    assert seen and isinstance(seen[0], Progress)
    assert any(isinstance(e, EngineDied) for e in client.poll())  # still visible to the UI's timer


def test_capture_wait_and_events_with_a_well_behaved_engine(make_client, tmp_path):
    client = make_client("fake_engine.py")
    client.start(timeout=10)
    job = client.capture(tmp_path / "clip.mp4")
    seen: list = []
    outcome = client.wait(job, timeout=10, on_event=seen.append)
    assert isinstance(outcome, Finished)
    assert outcome.take.endswith(".take.npz") and outcome.frames == 5
    assert outcome.stages["fit"]["fps"] == 50.0
    assert seen[-1] == outcome
    stages = [e.stage for e in seen if isinstance(e, Progress)]
    assert stages[0] == "decode" and stages[-1] == "write"
    assert all(0 < e.fraction <= 1 for e in seen if isinstance(e, Progress))
    # wait() again returns the same outcome even though the event was consumed, and poll() does not repeat it
    assert client.wait(job, timeout=1) == outcome
    assert client.poll() == []


def test_failed_job_and_events_of_other_jobs_stay_for_poll(make_client, tmp_path):
    client = make_client("fake_engine.py")
    client.start(timeout=10)
    good = client.capture(tmp_path / "clip.mp4")
    bad = client.capture(tmp_path / "fail.mp4")
    time.sleep(0.3)  # the failure is already queued when wait() starts: on_event still sees it
    seen: list = []
    outcome = client.wait(bad, timeout=10, on_event=seen.append)
    assert seen == [outcome]
    assert isinstance(outcome, Failed) and outcome.code == -32011 and not outcome.cancelled
    assert outcome.fix == "re-export the clip"
    events = poll_until(client, lambda evs: any(isinstance(e, Finished) for e in evs))
    assert {getattr(e, "job_id", None) for e in events} == {good}


def test_cancel(make_client, tmp_path):
    client = make_client("fake_engine.py")
    client.start(timeout=10)
    job = client.capture(tmp_path / "clip.mp4")
    poll_until(client, lambda evs: any(isinstance(e, Progress) for e in evs))
    assert client.cancel(job) is True
    outcome = client.wait(job, timeout=10)
    assert isinstance(outcome, Failed) and outcome.cancelled and outcome.code == -32015
    assert client.cancel("no-such-job") is False


def test_capture_sends_absolute_paths(make_client, tmp_path, monkeypatch):
    client = make_client("fake_engine.py")
    client.start(timeout=10)
    sent = []
    original = client.request
    monkeypatch.setattr(client, "request", lambda m, p=None, timeout=30: sent.append(p) or original(m, p, timeout))
    monkeypatch.chdir(tmp_path)
    client.capture("relative/clip.mp4", out_dir="takes", options={"smoothing": 0.2})
    assert sent[0] == {"video": str(tmp_path / "relative" / "clip.mp4"), "out_dir": str(tmp_path / "takes"),
                       "options": {"smoothing": 0.2}}


def test_shutdown_is_idempotent_and_requests_after_it_fail(make_client):
    client = make_client("fake_engine.py")
    client.start(timeout=10)
    assert client.alive and client.pid
    client.shutdown()
    client.shutdown()
    assert not client.alive and client.returncode == 0
    with pytest.raises(EngineError):
        client.request("initialize")


def test_shutdown_terminates_an_engine_that_ignores_it(make_client):
    client = make_client("stubborn.py")
    client.start(timeout=10)
    started = time.monotonic()
    client.shutdown(timeout=1)
    assert time.monotonic() - started < 8
    assert not client.alive
    assert client.returncode not in (None, 0)
    assert client.poll() == []


def test_failed_start_leaves_nothing_running(make_client):
    client = make_client("never_answers.py")
    with pytest.raises(EngineTimeout):
        client.start(timeout=0.5)
    assert not client.alive and client.returncode is not None
    client.shutdown(timeout=1)  # nothing left to do, no error
    with pytest.raises(EngineError):
        client.start()  # one process per client


def test_missing_python_is_a_clear_error(tmp_path):
    client = EngineClient(str(tmp_path / "no-such-python"), cache_dir=tmp_path)
    with pytest.raises(EngineError) as info:
        client.start(timeout=5)
    assert "no-such-python" in str(info.value)
    client.shutdown()


def test_context_manager(tmp_path):
    with fixture_client("fake_engine.py", tmp_path=tmp_path) as client:
        assert client.alive
        assert client.info["protocol_version"] == "1.0"
    assert not client.alive and client.returncode == 0


def test_the_client_imports_neither_bpy_nor_torch():
    import subprocess

    code = ("import sys, addon.client; bad = [m for m in ('bpy', 'torch', 'cv2', 'mediapipe') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    root = engine_module.default_root()
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
