"""Helpers for driving the real engine (`python -m inference_server --stdio`) as a subprocess.

`RawEngine` speaks the wire protocol directly (so tests can send malformed bytes) and keeps a copy of every byte
the engine wrote to stdout. Tests that only need well-formed calls use addon.client.EngineClient.
"""
from __future__ import annotations

import io
import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from inference_server import protocol

ROOT = Path(__file__).resolve().parents[2]
ANNY_CACHE = ROOT / ".cache" / "anny"
SAMPLE = ROOT / "samples" / "sample_wave.mp4"


def engine_env(cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(ROOT), "REEL2RIG_CACHE": str(cache), "ANNY_CACHE_DIR": str(ANNY_CACHE),
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def capture_sample(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """`python -m inference_server capture` on the first 12 frames of the sample clip into tmp_path/out (its own
    cache in tmp_path/cache, no overlay)."""
    cmd = [sys.executable, "-m", "inference_server", "capture", str(SAMPLE), "--out", str(tmp_path / "out"),
           "--frames", "0:12", "--no-overlay", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=engine_env(tmp_path / "cache"),
                          timeout=600)


class _Tee(io.RawIOBase):
    """Reads from the engine's stdout and keeps a copy of every byte."""

    def __init__(self, fd: int, sink: bytearray):
        self._fd = fd
        self._sink = sink

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = os.read(self._fd, len(buffer))
        self._sink.extend(data)
        buffer[:len(data)] = data
        return len(data)


class RawEngine:
    def __init__(self, tmp: Path, args: list[str] | None = None, **env: str):
        tmp.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / "engine-stderr.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args or [sys.executable, "-m", "inference_server", "--stdio"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env=engine_env(tmp / "cache", **env), bufsize=0)
        self.raw = bytearray()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.notifications: list[dict] = []
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = io.BufferedReader(_Tee(self.proc.stdout.fileno(), self.raw))
        while True:
            try:
                message = protocol.read_message(stream)
            except protocol.ProtocolError as exc:
                self.inbox.put(exc)
                if exc.fatal:
                    break
                continue
            except OSError:
                break
            self.inbox.put(message)
            if message is None:
                break

    # --- sending ----------------------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        import json

        body = json.dumps(message).encode("utf-8")
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def next_id(self) -> int:
        return next(self._ids)

    # --- receiving --------------------------------------------------------------------------------------------
    def recv(self, timeout: float = 30) -> Any:
        """Next message (notifications included). Fails on a protocol fault or end of stream."""
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message from the engine within {timeout} s; log:\n{self.log_tail()}")
        if isinstance(message, Exception):
            raise AssertionError(f"engine wrote non-protocol bytes: {message}")
        if message is None:
            raise AssertionError(f"engine closed stdout (status {self.proc.poll()}); log:\n{self.log_tail()}")
        return message

    def response(self, msg_id: Any, timeout: float = 30) -> dict:
        """The response with this id; notifications received meanwhile are kept in self.notifications."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            if "method" in message and "id" not in message:
                self.notifications.append(message)
                continue
            assert message.get("id") == msg_id, f"expected the response to {msg_id!r}, got {message}"
            return message

    def call(self, method: str, params: Any = None, timeout: float = 60) -> dict:
        msg_id = self.next_id()
        self.send(protocol.request(msg_id, method, params))
        return self.response(msg_id, timeout)

    def notification(self, method: str, job_id: str | None = None, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for note in self.notifications:
                if note["method"] == method and (job_id is None or note["params"].get("job_id") == job_id):
                    self.notifications.remove(note)
                    return note
            message = self.recv(max(0.01, deadline - time.monotonic()))
            assert "id" not in message, f"unexpected response {message}"
            self.notifications.append(message)

    def initialize(self) -> dict:
        reply = self.call("initialize", {"client": "pytest"})
        assert "result" in reply, reply
        return reply["result"]

    def alive_check(self) -> None:
        """The engine still answers."""
        reply = self.call("cancel", {"job_id": "alive-check"})
        assert reply["error"]["code"] in (protocol.JOB_NOT_FOUND, protocol.NOT_INITIALIZED), reply

    def log_tail(self, n: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def wait_exit(self, timeout: float = 15) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self._log.close()


@pytest.fixture
def raw_engine(tmp_path):
    engines: list[RawEngine] = []

    def start(*args: str, **env: str) -> RawEngine:
        engine = RawEngine(tmp_path / f"engine{len(engines)}", list(args) or None, **env)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory):
    """One initialized engine for the tests that leave it in a usable state."""
    engine = RawEngine(tmp_path_factory.mktemp("shared-engine"))
    engine.initialize()
    yield engine
    engine.close()


@pytest.fixture
def scratch_capture_cache(tmp_path, monkeypatch) -> tuple[Path, list]:
    """A fresh engine cache (``REEL2RIG_CACHE``) holding only Anny's compact files, as an installed engine has them,
    and the record of every array the capture makes in its scratch folder: ``(shape, on disk)`` per
    ``scratch.Scratch.empty`` call (clear it between captures). After the test, the scratch folders must be gone."""
    import shutil

    from inference_server import scratch
    from inference_server.config import stage_cache_dir

    cache = tmp_path / "cache"
    (cache / "stages").mkdir(parents=True)
    for made in stage_cache_dir().glob("anny_*.npz"):
        shutil.copy2(made, cache / "stages" / made.name)
    monkeypatch.setenv("REEL2RIG_CACHE", str(cache))
    record: list[tuple] = []
    empty = scratch.Scratch.empty

    def counted(self, shape, dtype):
        array = empty(self, shape, dtype)
        record.append((tuple(shape), scratch.on_disk(array)))
        return array

    monkeypatch.setattr(scratch.Scratch, "empty", counted)
    yield cache, record
    assert not any((cache / "scratch").iterdir()), "the scratch folders are removed when the capture ends"
