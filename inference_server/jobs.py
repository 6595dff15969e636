"""Capture jobs: a FIFO queue served by one worker thread, with cancel and throttled progress.

No bpy, no GPU at import time: :mod:`inference_server.pipeline` (which may pull in torch, mediapipe, cv2) is imported
by the worker thread when the first job starts.

Policy
------
* One job runs at a time (the pipeline uses the whole CPU/GPU). Extra ``capture`` requests are *queued* in order;
  a queued job sends nothing until it starts.
* ``cancel`` of a queued job removes it from the queue and sends ``failed`` (cancelled) at once. ``cancel`` of the
  running job sets an Event that the pipeline polls through ``cancelled()``; progress stops being reported, and
  whatever the pipeline raises after that (its own :class:`pipeline.Cancelled` or an error wrapping it) ends the job
  as cancelled. ``cancelled: true`` in the reply means the request reached a live job; the job's final notification is the
  outcome (normally ``failed`` with ``cancelled: true``; ``finished`` if it completed before it could stop).
* Every job ends with exactly one ``finished`` or ``failed`` notification.

Notifications leave through ``send(method, params)``, which the server serialises with its writer lock.
"""
from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

from . import protocol

log = logging.getLogger("reel2rig.jobs")

SendFn = Callable[[str, dict], None]

PROGRESS_MIN_INTERVAL_S = 0.1  # at most ~10 progress notifications per second per job
FINISHED_JOBS_KEPT = 256       # ended jobs remembered so a late `cancel` gets {cancelled: false}, not an error


def jsonable(value: Any) -> Any:
    """Plain JSON types only: numpy scalars → int/float, NaN/inf → None, paths → str, tuples → lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar / 0-d array
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):
        return jsonable(value.tolist())
    return str(value)


def _finite(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


class ProgressThrottle:
    """Turns the pipeline's progress calls into ≤ 10 notifications/s, never dropping the last one of a stage.

    The first report of a stage and a report with ``done >= total`` go out at once; reports in between go out at
    most every PROGRESS_MIN_INTERVAL_S, and the latest held-back one is flushed when the stage changes or the job
    ends.
    """

    def __init__(self, job_id: str, send: SendFn, min_interval: float = PROGRESS_MIN_INTERVAL_S):
        self.job_id = job_id
        self._send = send
        self._min_interval = min_interval
        self._stage: str | None = None
        self._last_sent = 0.0
        self._pending: dict | None = None

    @property
    def stage(self) -> str | None:
        return self._stage

    def update(self, stage: str, done: int, total: int, fps: float) -> None:
        params = {"job_id": self.job_id, "stage": str(stage), "done": int(done), "total": int(total),
                  "fps": _finite(fps)}
        now = time.monotonic()
        if stage != self._stage:
            self.flush()
            self._stage = stage
        elif params["done"] < params["total"] and now - self._last_sent < self._min_interval:
            self._pending = params
            return
        self._pending = None
        self._last_sent = now
        self._send("progress", params)

    def flush(self) -> None:
        if self._pending is not None:
            params, self._pending = self._pending, None
            self._last_sent = time.monotonic()
            self._send("progress", params)


class Job:
    """One capture request. `state`: queued → running → finished | failed."""

    def __init__(self, job_id: str, video: Path, out_dir: Path, options: Any):
        self.id = job_id
        self.video = video
        self.out_dir = out_dir
        self.options = options
        self.cancel_event = threading.Event()
        self.state = "queued"
        self.done_event = threading.Event()

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class JobManager:
    """Queue + one worker thread. Thread-safe; `send` must be safe to call from the worker thread."""

    def __init__(self, send: SendFn):
        self._send = send
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}       # queued and running
        self._ended: collections.OrderedDict[str, str] = collections.OrderedDict()  # id -> final state
        self._current: Job | None = None
        self._closed = False
        self._worker: threading.Thread | None = None
        self._counter = itertools.count(1)

    # --- requests ------------------------------------------------------------------------------------------
    def new_job_id(self) -> str:
        return f"job-{next(self._counter)}-{uuid.uuid4().hex[:6]}"

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise protocol.RpcError(protocol.JOB_FAILED, "the engine is shutting down; no new jobs",
                                        fix="start the engine again")
            self._jobs[job.id] = job
            self._queue.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run_worker, name="reel2rig-jobs", daemon=True)
                self._worker.start()
            self._wake.notify_all()
        log.info("job %s queued: %s → %s", job.id, job.video, job.out_dir)

    def cancel(self, job_id: str) -> dict:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                if job_id in self._ended:
                    return {"job_id": job_id, "cancelled": False, "state": self._ended[job_id]}
                raise protocol.RpcError(protocol.JOB_NOT_FOUND, f"no job with id {job_id!r}")
            job.cancel_event.set()
            was_queued = job.state == "queued"
            if was_queued:
                self._queue.remove(job)
                self._end(job, "failed")
        log.info("job %s: cancel requested (%s)", job_id, "queued" if was_queued else "running")
        if was_queued:
            self._send("failed", self._cancelled_params(job))
            job.done_event.set()
        return {"job_id": job_id, "cancelled": True}

    def active(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def shutdown(self, wait: float = 5.0) -> bool:
        """Cancel everything and wait up to `wait` s for the running job to stop. True if it stopped."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            for job in queued:
                job.cancel_event.set()
                self._end(job, "failed")
            current = self._current
            if current is not None:
                current.cancel_event.set()
            self._wake.notify_all()
        for job in queued:
            self._send("failed", self._cancelled_params(job))
            job.done_event.set()
        if current is not None and not current.done_event.wait(wait):
            log.warning("job %s did not stop within %.1f s", current.id, wait)
            return False
        return True

    # --- worker ----------------------------------------------------------------------------------------------
    def _end(self, job: Job, state: str) -> None:
        """Record the end of a job. Caller holds the lock."""
        job.state = state
        self._jobs.pop(job.id, None)
        self._ended[job.id] = state
        while len(self._ended) > FINISHED_JOBS_KEPT:
            self._ended.popitem(last=False)

    def _run_worker(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                job.state = "running"
                self._current = job
            try:
                method, params = self._run_job(job)
            except Exception as exc:  # noqa: BLE001 - e.g. a malformed CaptureResult; the worker must survive
                method, params = "failed", self._failure_params(job, exc, None)
            with self._lock:
                self._current = None
                self._end(job, "finished" if method == "finished" else "failed")
            # Sent after the job is recorded as ended, so a `cancel` racing with this sees {cancelled: false}.
            self._send(method, params)
            job.done_event.set()

    @staticmethod
    def _cancelled_params(job: Job) -> dict:
        return {"job_id": job.id, "code": protocol.JOB_CANCELLED, "message": f"job {job.id} was cancelled",
                "fix": protocol.APP_ERRORS[protocol.JOB_CANCELLED], "cancelled": True}

    def _run_job(self, job: Job) -> tuple[str, dict]:
        """Run the pipeline for one job; return the final notification (method, params)."""
        throttle = ProgressThrottle(job.id, self._send)
        started = time.monotonic()
        try:
            from . import pipeline  # lazy: may pull in cv2/torch/mediapipe
        except Exception as exc:  # noqa: BLE001 - a broken install must not kill the server
            log.error("job %s: cannot import the pipeline\n%s", job.id, traceback.format_exc())
            return "failed", {"job_id": job.id, "code": protocol.MODEL_MISSING,
                              "message": f"the capture pipeline cannot be loaded: {type(exc).__name__}: {exc}",
                              "fix": protocol.APP_ERRORS[protocol.MODEL_MISSING], "cancelled": False}

        def progress(stage: str, done: int, total: int, fps: float) -> None:
            if not job.cancel_event.is_set():  # after a cancel, only the final `failed` goes out
                throttle.update(stage, done, total, fps)

        try:
            if job.cancel_event.is_set():
                raise pipeline.Cancelled(f"job {job.id} cancelled before it started")
            log.info("job %s started", job.id)
            result = pipeline.run_capture(job.video, job.out_dir, job.options, progress, job.cancelled)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a `failed` notification
            if isinstance(exc, pipeline.Cancelled) or job.cancel_event.is_set():
                # A stage that wraps our Cancelled in its own error still ends as a cancel: the user asked for it.
                log.info("job %s cancelled after %.1f s (stage %s)", job.id, time.monotonic() - started,
                         throttle.stage)
                return "failed", self._cancelled_params(job)
            throttle.flush()
            return "failed", self._failure_params(job, exc, throttle.stage)
        throttle.flush()
        seconds = time.monotonic() - started
        log.info("job %s finished in %.1f s: %s", job.id, seconds, result.take_path)
        return "finished", jsonable({
            "job_id": job.id,
            "take": os.fspath(result.take_path),
            "sidecar": os.fspath(result.sidecar_path),
            "frames": int(result.frames),
            "seconds": float(result.seconds),
            "stages": result.stages or {},
            "people": [os.fspath(path) for path in (getattr(result, "people", None) or [])],
            "hands": [os.fspath(path) for path in (getattr(result, "hands", None) or [])],
        })

    @staticmethod
    def _failure_params(job: Job, exc: Exception, stage: str | None) -> dict:
        if isinstance(exc, protocol.RpcError):
            log.info("job %s failed: %s (%s)", job.id, exc.message, exc.code)
            params = {"job_id": job.id, "code": exc.code, "message": exc.message, "fix": exc.fix,
                      "cancelled": False}
            if exc.data:
                params["data"] = jsonable(exc.data)
            return params
        log.error("job %s failed in stage %s\n%s", job.id, stage,
                  "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        code = protocol.OUTPUT_NOT_WRITABLE if isinstance(exc, PermissionError) else protocol.JOB_FAILED
        where = f" in stage '{stage}'" if stage else ""
        detail = f": {exc}" if str(exc) else ""
        return {"job_id": job.id, "code": code, "message": f"{type(exc).__name__}{where}{detail}",
                "fix": protocol.APP_ERRORS[code], "cancelled": False}
