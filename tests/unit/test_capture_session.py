"""CaptureSession (addon/capture.py, no bpy) against a scripted client: the engine's death is reported with its
exit status even when the process is seen gone before its reader thread queues the event; a hung engine is stopped
by Cancel."""
from __future__ import annotations

import time
from dataclasses import dataclass

from addon import capture
from addon.paths import EngineConfig


@dataclass
class EngineDied:  # the client's event class is matched by name
    returncode: int
    stderr_tail: str


class EngineTimeout(Exception):
    pass


class ScriptedClient:
    def __init__(self, died_after_s: float | None = None, hang_on_cancel: bool = False):
        self._died_at = None if died_after_s is None else time.monotonic() + died_after_s
        self.hang_on_cancel = hang_on_cancel
        self.shut_down = False
        self.delivered = False

    @property
    def alive(self) -> bool:
        return self._died_at is None and not self.shut_down

    def capture(self, video: str, out_dir: str | None = None, options: dict | None = None) -> str:
        return "job-1"

    def cancel(self, job_id: str, timeout: float | None = 30) -> bool:
        if self.hang_on_cancel:
            raise EngineTimeout("no answer")
        return True

    def poll(self) -> list:
        if self._died_at is not None and not self.delivered and time.monotonic() >= self._died_at:
            self.delivered = True
            return [EngineDied(7, "fixture: segfault in fit\n")]
        return []

    def shutdown(self, timeout: float = 10) -> None:
        self.shut_down = True


SETTINGS = capture.CaptureSettings(video="clip.mp4", engine=EngineConfig("python", ".", None))


def test_the_exit_status_is_reported_when_the_death_event_arrives_late() -> None:
    client = ScriptedClient(died_after_s=0.3)   # alive is already False; the event comes 0.3 s later
    session = capture.CaptureSession(client, SETTINGS)
    session.start()
    session.pump(0.0)
    assert session.status.state == capture.FAILED
    assert "status 7" in session.status.message and "segfault" in session.status.message


def test_cancel_stops_a_hung_engine() -> None:
    client = ScriptedClient(hang_on_cancel=True)
    session = capture.CaptureSession(client, SETTINGS)
    session.start()
    session.cancel()
    assert session.status.state == capture.CANCELLED and client.shut_down
    assert "did not answer" in session.status.message
