"""One capture job seen from the add-on: start it, drain the engine's events in a time budget, finish or fail.

No bpy here. The operator (modal timer or a blocking loop) calls :meth:`CaptureSession.pump`; what to do with
progress and with a finished Take is passed in as two callables, so tests can drive a session step by step and the
bpy side stays in ``operators``. The client's reader thread queues events; ``pump`` runs on Blender's main thread,
so the callables may touch bpy.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol

from .paths import EngineConfig

try:
    from ..inference_server.protocol import STAGES
except ImportError:  # `addon` imported as a top-level package (tests)
    from inference_server.protocol import STAGES  # type: ignore[no-redef]

#: How long Cancel waits for the engine to acknowledge before it stops a hung engine (Blender waits meanwhile).
CANCEL_ANSWER_S = 5.0
#: How long pump() waits for the reader thread's EngineDied event once the engine process is seen gone.
DEATH_EVENT_WAIT_S = 1.0

RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"


@dataclasses.dataclass(frozen=True)
class CaptureSettings:
    """Everything a capture needs, copied out of Blender's properties when the operator starts."""

    video: str
    engine: EngineConfig
    options: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    out_dir: str | None = None


@dataclasses.dataclass
class CaptureStatus:
    state: str = RUNNING
    stage: str = "starting"
    done: int = 0
    total: int = 0
    fps: float = 0.0
    fraction: float = 0.0  # over all stages, 0..1
    message: str = ""
    eta_s: float | None = None  # time left, from the time so far and the fraction done (None: too early to tell)

    def text(self) -> str:
        if self.state != RUNNING:
            return self.message
        left = f", {format_duration(self.eta_s)} left" if self.eta_s is not None else ""
        if self.total > 0:
            rate = f", {self.fps:.1f} frames/s" if self.fps > 0 else ""
            return f"{self.stage}: {self.done}/{self.total}{rate}{left}"
        return f"{self.stage}…{left}"


def format_duration(seconds: float) -> str:
    """'8 s', '1:05', '1:02:03'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


#: The time left is shown once this much of the job is done and this long has passed (earlier guesses swing wildly).
ETA_MIN_FRACTION = 0.03
ETA_MIN_SECONDS = 2.0


def estimate_time_left(elapsed_s: float, fraction: float) -> float | None:
    if fraction < ETA_MIN_FRACTION or elapsed_s < ETA_MIN_SECONDS or fraction >= 1.0:
        return None
    return elapsed_s * (1.0 - fraction) / fraction


def overall_fraction(stage: str, done: int, total: int) -> float:
    """Progress over the whole job: each stage in protocol.STAGES gets an equal share."""
    if stage not in STAGES:
        return 0.0
    within = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return (STAGES.index(stage) + within) / len(STAGES)


class ClientLike(Protocol):
    """The part of addon.client.EngineClient a session uses."""

    @property
    def alive(self) -> bool: ...
    def capture(self, video: str, out_dir: str | None = None, options: dict | None = None) -> str: ...
    def cancel(self, job_id: str, timeout: float | None = 30) -> bool: ...
    def poll(self) -> list[Any]: ...
    def shutdown(self, timeout: float = 10) -> None: ...


class CaptureSession:
    """A capture job and its state. ``on_status`` sees every status change; ``on_finished(take, sidecar)`` imports
    the Take and returns a one-line summary (raising makes the session FAILED with that message)."""

    def __init__(self, client: ClientLike, settings: CaptureSettings,
                 on_status: Callable[[CaptureStatus], None] | None = None,
                 on_finished: Callable[[str, str], str] | None = None):
        self.client = client
        self.settings = settings
        self.on_status = on_status
        self.on_finished = on_finished
        self.status = CaptureStatus()
        self.job_id: str | None = None
        self.result: Any = None  # what on_finished returned
        self.take_path: str | None = None
        self.cancel_requested = False
        self.started = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status.state == RUNNING

    def start(self) -> str:
        self.started = time.monotonic()
        self.job_id = self.client.capture(self.settings.video, out_dir=self.settings.out_dir,
                                          options=dict(self.settings.options) or None)
        self._update(stage="queued", message="")
        return self.job_id

    def cancel(self) -> None:
        """Ask the engine to stop; the session ends when its `failed (cancelled)` arrives (pump keeps draining)."""
        if not self.running or self.job_id is None or self.cancel_requested:
            return
        self.cancel_requested = True
        self._update(stage="cancelling")
        try:
            # False when the job had already ended: its final event is queued and pump() picks it up.
            self.client.cancel(self.job_id, timeout=CANCEL_ANSWER_S)
        except Exception as exc:
            if type(exc).__name__ == "EngineTimeout":  # a hung engine: stop it, the next capture starts a fresh one
                self.client.shutdown(timeout=1.0)
                self._end(CANCELLED, f"Capture cancelled; the engine did not answer within {CANCEL_ANSWER_S:g} s "
                          "and was stopped (its log is in the cache's logs folder)")
            else:  # the engine died: nothing left to cancel
                self._end(CANCELLED, f"Capture cancelled ({exc})")

    def pump(self, budget_s: float = 0.0) -> bool:
        """Handle queued events for up to ``budget_s`` seconds (0: just what is there). True while running."""
        deadline = time.monotonic() + max(0.0, budget_s)
        while self.running:
            events = self.client.poll()
            for event in events:
                self._handle(event)
                if not self.running:
                    break
            if not self.running:
                break
            if not events and not self.client.alive:
                # The process is gone; its reader thread is about to queue the EngineDied event that carries the
                # exit status and the log's last line: give it a moment rather than report a vaguer message.
                late = self._late_events(DEATH_EVENT_WAIT_S)
                for event in late:
                    self._handle(event)
                if self.running:
                    self._end(FAILED, "The engine exited unexpectedly; see its log")
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not events:
                time.sleep(min(0.02, remaining))
        return self.running

    def _late_events(self, wait_s: float) -> list[Any]:
        deadline = time.monotonic() + wait_s
        while True:
            events = self.client.poll()
            if events or time.monotonic() >= deadline:
                return events
            time.sleep(0.02)

    def run_to_end(self, timeout_s: float | None = None, step_s: float = 0.25) -> CaptureStatus:
        """Blocking loop for scripts and headless runs."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.pump(step_s):
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                self.pump(10.0)
                if self.running:
                    self._end(FAILED, f"Capture did not finish within {timeout_s:g} s")
                break
        return self.status

    # -- events ------------------------------------------------------------------------------------------------
    def _handle(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "EngineDied":
            tail = (getattr(event, "stderr_tail", "") or "").strip().splitlines()
            last = f": {tail[-1]}" if tail else ""
            self._end(FAILED, f"The engine exited (status {getattr(event, 'returncode', None)}){last}")
            return
        if getattr(event, "job_id", None) != self.job_id:
            return
        if kind == "Progress":
            fraction = overall_fraction(event.stage, int(event.done), int(event.total))
            self._update(stage=event.stage, done=int(event.done), total=int(event.total), fps=float(event.fps),
                         fraction=fraction, eta_s=estimate_time_left(time.monotonic() - self.started, fraction))
        elif kind == "Failed":
            if event.cancelled:
                self._end(CANCELLED, "Capture cancelled")
            else:
                fix = f" Fix: {event.fix}" if event.fix else ""
                self._end(FAILED, f"{event.message}{fix}")
        elif kind == "Finished":
            self.take_path = event.take
            self._update(stage="importing", fraction=1.0)
            if self.cancel_requested:
                self._end(CANCELLED, f"Capture cancelled (the take was written to {event.take})")
                return
            try:
                summary = self.on_finished(event.take, event.sidecar) if self.on_finished else event.take
            except Exception as exc:
                self._end(FAILED, str(exc))
                return
            self.result = summary
            self._end(FINISHED, str(summary))

    def _update(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self.status, name, value)
        if self.on_status is not None:
            self.on_status(self.status)

    def _end(self, state: str, message: str) -> None:
        self._update(state=state, message=message, fraction=1.0 if state == FINISHED else self.status.fraction)
