"""Spawn the Reel2Rig engine and talk JSON-RPC to it over its stdin/stdout.

No bpy, no torch: standard library only (runs inside Blender's Python and in plain pytest). A reader thread reads the
engine's stdout, resolves pending requests and queues notifications as typed events; it never touches bpy. The
add-on drains :meth:`EngineClient.poll` from a timer; headless scripts call :meth:`EngineClient.wait`.

    client = EngineClient(python="/path/to/.venv/bin/python", cache_dir="/tmp/reel2rig")
    info = client.start()                       # spawn + initialize
    job = client.capture("/clips/wave.mp4")     # job id, at once
    outcome = client.wait(job, on_event=print)  # Finished | Failed
    client.shutdown()

The engine's stderr (its log) goes to a file, :attr:`EngineClient.log_path`, so the pipe never fills; error messages
quote its tail.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Union

try:
    from ...inference_server import protocol  # inside the installed extension (bl_ext.<repo>.reel2rig.addon.client)
except ImportError:  # `addon` imported as a top-level package (tests, scripts): the project root is on sys.path
    from inference_server import protocol  # type: ignore[no-redef]

log = logging.getLogger("reel2rig.client")

STDERR_TAIL_BYTES = 4000
MAX_PROTOCOL_FAULTS = 200  # non-protocol output tolerated on the engine's stdout before the client gives up


# --- errors --------------------------------------------------------------------------------------------------------
class EngineError(RuntimeError):
    """The engine could not be started, died, timed out or broke the protocol. `stderr_tail` is its log's end."""

    def __init__(self, message: str, *, stderr_tail: str = "", returncode: int | None = None):
        super().__init__(message)
        self.message = message
        self.stderr_tail = stderr_tail
        self.returncode = returncode

    def __str__(self) -> str:
        if self.stderr_tail.strip():
            return f"{self.message}\n--- engine log (last lines) ---\n{self.stderr_tail.rstrip()}"
        return self.message


class EngineTimeout(EngineError):
    """A request or a wait took longer than its timeout (the engine may still be alive)."""


class RpcCallError(EngineError):
    """The engine answered a request with a JSON-RPC error. `fix` tells the user what to do (may be None)."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.data = data

    @property
    def fix(self) -> str | None:
        return self.data.get("fix") if isinstance(self.data, dict) else None

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message


# --- events (what poll() returns) ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Progress:
    job_id: str
    stage: str
    done: int
    total: int
    fps: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Finished:
    job_id: str
    take: str
    sidecar: str
    frames: int
    seconds: float
    stages: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Failed:
    job_id: str
    code: int
    message: str
    fix: str | None
    cancelled: bool


@dataclasses.dataclass(frozen=True)
class EngineDied:
    returncode: int | None
    stderr_tail: str


Event = Union[Progress, Finished, Failed, EngineDied]


def _event_from_notification(method: str, params: Any) -> Event | None:
    if not isinstance(params, dict):
        return None
    job_id = str(params.get("job_id", ""))
    if method == "progress":
        return Progress(job_id, str(params.get("stage", "")), int(params.get("done") or 0),
                        int(params.get("total") or 0), float(params.get("fps") or 0.0))
    if method == "finished":
        return Finished(job_id, str(params.get("take", "")), str(params.get("sidecar", "")),
                        int(params.get("frames") or 0), float(params.get("seconds") or 0.0),
                        dict(params.get("stages") or {}))
    if method == "failed":
        return Failed(job_id, int(params.get("code") or protocol.JOB_FAILED), str(params.get("message", "")),
                      params.get("fix"), bool(params.get("cancelled", False)))
    return None


class _Pending:
    __slots__ = ("event", "response", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.response: dict | None = None
        self.error: EngineError | None = None


def default_root() -> Path:
    """The folder that holds the `inference_server` package (the add-on's package root)."""
    return Path(__file__).resolve().parents[2]


# --- the client ---------------------------------------------------------------------------------------------------
class EngineClient:
    """One engine process. Thread-safe for requests; events are consumed by poll() or wait()."""

    def __init__(self, python: str, *, root: str | os.PathLike | None = None, env: dict | None = None,
                 cache_dir: str | os.PathLike | None = None, args: list[str] | None = None):
        self.python = str(python)
        self.root = Path(root) if root is not None else default_root()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._extra_env = dict(env or {})
        self.args = list(args) if args is not None else [self.python, "-m", "inference_server", "--stdio"]
        self.info: dict | None = None       # the initialize result
        self.log_path: Path | None = None   # the engine's stderr
        self.protocol_faults: list[str] = []  # non-protocol output seen on the engine's stdout
        self._proc: subprocess.Popen | None = None
        self._log_file: Any = None
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._events: queue.Queue[Event] = queue.Queue()
        self._deferred: list[Event] = []     # events wait() took out of the queue for other jobs
        self._finals: dict[str, Finished | Failed] = {}
        self._died: EngineDied | None = None
        self._closing = False
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def __enter__(self) -> "EngineClient":
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._closed

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):  # Blender's must not leak into the venv
            env.pop(name, None)
        env["PYTHONPATH"] = str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("PYTHONIOENCODING", "utf-8")
        if self.cache_dir is not None:
            env["REEL2RIG_CACHE"] = str(self.cache_dir)
        env.update({str(k): str(v) for k, v in self._extra_env.items()})
        return env

    def _open_log(self) -> None:
        if self.cache_dir is not None:
            folder = self.cache_dir / "logs"
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(tempfile.mkdtemp(prefix="reel2rig-engine-"))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = folder / f"engine-{stamp}-{os.getpid()}-{id(self) & 0xFFFF:04x}.log"
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in shutdown()

    def start(self, timeout: float = 120) -> dict:
        """Spawn the engine and run `initialize`. Returns its result; raises EngineError with the log's tail."""
        if self._proc is not None:
            raise EngineError("this EngineClient was already started; create a new one to restart the engine")
        self._open_log()
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # Ctrl-C in Blender's terminal must not kill the engine mid-write
        log.info("starting engine: %s (cwd %s, log %s)", " ".join(self.args), self.root, self.log_path)
        try:
            self._proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._log_file, cwd=str(self.root), env=self._environment(),
                                          bufsize=0, **kwargs)
        except OSError as exc:
            self._close_log()
            self._closed = True
            raise EngineError(f"cannot start the engine with {self.args[0]!r}: {exc}; "
                              "check the engine's Python path in the preferences") from exc
        self._reader = threading.Thread(target=self._read_loop, name="reel2rig-engine-reader", daemon=True)
        self._reader.start()
        try:
            info = self.request("initialize", {"client": "reel2rig-addon",
                                               "protocol_version": protocol.PROTOCOL_VERSION}, timeout=timeout)
        except EngineError as exc:
            tail = exc.stderr_tail
            self._kill()
            if isinstance(exc, RpcCallError):
                raise EngineError(f"the engine refused initialize: {exc}", stderr_tail=self.stderr_tail()) from exc
            message = f"the engine did not start: {exc.message}"
            if self.protocol_faults and "non-protocol output" not in message:
                message += f"; it wrote non-protocol output to stdout: {self.protocol_faults[0]}"
            raise type(exc)(message, stderr_tail=tail or self.stderr_tail(), returncode=self.returncode) from exc
        if not isinstance(info, dict):
            self._kill()
            raise EngineError(f"the engine's initialize result is not an object: {info!r}",
                              stderr_tail=self.stderr_tail())
        engine_protocol = str(info.get("protocol_version", "0"))
        if engine_protocol.split(".")[0] != protocol.PROTOCOL_VERSION.split(".")[0]:
            self.shutdown()
            raise EngineError(f"the engine speaks protocol {engine_protocol}, the add-on {protocol.PROTOCOL_VERSION}; "
                              "update the add-on and the engine together")
        self.info = info
        log.info("engine %s ready (pid %s, devices %s)", info.get("engine_version"), self.pid, info.get("devices"))
        return info

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def stderr_tail(self, max_bytes: int = STDERR_TAIL_BYTES) -> str:
        """The end of the engine's log (stderr)."""
        if self.log_path is None:
            return ""
        try:
            if self._log_file is not None and not self._log_file.closed:
                self._log_file.flush()
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - max_bytes))
                data = handle.read()
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        if size > max_bytes and "\n" in text:
            text = text.split("\n", 1)[1]  # start at a whole line
        return text

    def shutdown(self, timeout: float = 10) -> None:
        """Ask the engine to stop (`shutdown`), then terminate/kill it if needed. Idempotent."""
        if self._closed:
            return
        self._closing = True
        deadline = time.monotonic() + timeout
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                self.request("shutdown", timeout=max(0.5, timeout * 0.8))
            except EngineError as exc:
                log.info("shutdown request: %s", exc.message)
            try:
                proc.stdin.close()  # EOF also stops the engine
            except (OSError, ValueError, AttributeError):
                pass
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("engine pid %s did not exit; terminating it", proc.pid)
                self._kill()
        self._finish_close()

    def _kill(self) -> None:
        """Stop the process now (terminate, then kill) and release everything."""
        self._closing = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    log.error("engine pid %s survives SIGKILL", proc.pid)
        self._finish_close()

    def _finish_close(self) -> None:
        proc = self._proc
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None and proc.poll() is not None:
                        stream.close()
                except (OSError, ValueError):
                    pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
        self._close_log()
        self._closed = True

    def _close_log(self) -> None:
        if self._log_file is not None:
            try:
                self._log_file.close()
            except OSError:
                pass

    # --- requests -------------------------------------------------------------------------------------------------
    def request(self, method: str, params: dict | None = None, timeout: float | None = 30) -> Any:
        """Send a request and wait for its answer. Raises RpcCallError for an error answer, EngineTimeout after
        `timeout` s, EngineError if the engine is gone."""
        proc = self._proc
        if proc is None:
            raise EngineError("the engine is not started; call start() first")
        if self._died is not None or proc.poll() is not None:
            raise self._death_error(f"cannot send {method!r}")
        msg_id = next(self._ids)
        pending = _Pending()
        with self._state_lock:
            self._pending[msg_id] = pending
        try:
            data = protocol.encode(protocol.request(msg_id, method, params))
            try:
                with self._write_lock:
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except (OSError, ValueError) as exc:  # BrokenPipeError: the engine is gone
                if self._reader is not None:
                    self._reader.join(2)
                raise self._death_error(f"cannot send {method!r} ({exc})") from exc
            if not pending.event.wait(timeout):
                raise EngineTimeout(f"the engine did not answer {method!r} within {timeout:g} s",
                                    stderr_tail=self.stderr_tail())
        finally:
            with self._state_lock:
                self._pending.pop(msg_id, None)
        if pending.error is not None:
            raise pending.error
        response = pending.response or {}
        if "error" in response:
            error = response["error"] if isinstance(response["error"], dict) else {}
            raise RpcCallError(int(error.get("code", protocol.INTERNAL_ERROR)),
                               str(error.get("message", "unknown error")), error.get("data"))
        return response.get("result")

    def capture(self, video: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                options: dict | None = None) -> str:
        """Queue a capture; returns the job id at once. Paths are made absolute here (the engine's cwd differs)."""
        params: dict[str, Any] = {"video": os.path.abspath(os.path.expanduser(os.fspath(video)))}
        if out_dir is not None:
            params["out_dir"] = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
        if options:
            params["options"] = dict(options)
        result = self.request("capture", params)
        return str(result["job_id"])

    def cancel(self, job_id: str, timeout: float | None = 30) -> bool:
        """Ask the engine to cancel a job. True if it reached a queued/running job (its `failed` follows);
        False if the job had already ended or is unknown. EngineTimeout when the engine does not answer."""
        try:
            result = self.request("cancel", {"job_id": job_id}, timeout=timeout)
        except RpcCallError as exc:
            if exc.code == protocol.JOB_NOT_FOUND:
                return False
            raise
        return bool(result.get("cancelled")) if isinstance(result, dict) else False

    # --- events ---------------------------------------------------------------------------------------------------
    def poll(self) -> list[Event]:
        """Events received so far (non-blocking): Progress, Finished, Failed, and EngineDied if the engine exited."""
        with self._state_lock:
            events, self._deferred = self._deferred, []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def wait(self, job_id: str, timeout: float | None = None,
             on_event: Callable[[Event], None] | None = None) -> Finished | Failed:
        """Block until the job ends; returns its Finished or Failed. Raises EngineError if the engine dies and
        EngineTimeout after `timeout` s (the job keeps running). Events of other jobs stay for poll()."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._state_lock:  # the reader records a final and queues its event under this lock
                try:
                    event: Event | None = self._events.get_nowait()
                except queue.Empty:
                    event = None
                    final = self._finals.get(job_id)
                    if final is not None:
                        return final  # its event was taken earlier (by poll)
            if event is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise EngineTimeout(f"job {job_id} did not end within {timeout:g} s")
                try:
                    event = self._events.get(timeout=0.2 if remaining is None else min(0.2, remaining))
                except queue.Empty:
                    continue
            if isinstance(event, EngineDied):
                self._events.put(event)  # stays visible to poll()
                with self._state_lock:
                    final = self._finals.get(job_id)
                if final is not None:
                    return final
                raise EngineError(f"the engine exited (status {event.returncode}) while job {job_id} was running",
                                  stderr_tail=event.stderr_tail, returncode=event.returncode)
            if getattr(event, "job_id", None) != job_id:
                with self._state_lock:
                    self._deferred.append(event)
                continue
            if on_event is not None:
                on_event(event)
            if isinstance(event, (Finished, Failed)):
                return event

    # --- reader thread --------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        stdout = proc.stdout
        reason = "the engine closed its output"
        try:
            while True:
                try:
                    message = protocol.read_message(stdout)
                except protocol.ProtocolError as exc:
                    self.protocol_faults.append(exc.message)
                    log.warning("engine wrote non-protocol output to stdout: %s", exc.message)
                    if len(self.protocol_faults) >= MAX_PROTOCOL_FAULTS:
                        reason = f"the engine keeps writing non-protocol output to stdout ({exc.message})"
                        break
                    continue
                except (OSError, ValueError) as exc:
                    reason = f"cannot read from the engine ({exc})"
                    break
                if message is None:
                    break
                self._dispatch(message)
        finally:
            self._on_reader_end(reason)

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            self.protocol_faults.append(f"not a JSON-RPC object: {str(message)[:80]}")
            log.warning("engine sent a message that is not an object: %.200r", message)
            return
        method = message.get("method")
        if method is None:
            msg_id = message.get("id")
            with self._state_lock:
                pending = self._pending.get(msg_id) if isinstance(msg_id, int) else None
            if pending is None:
                log.warning("response to an unknown or expired request id %r", msg_id)
                return
            pending.response = message
            pending.event.set()
            return
        if "id" in message:  # a request from the engine: none are defined
            self._send_raw(protocol.error_response(message["id"], {
                "code": protocol.METHOD_NOT_FOUND, "message": f"the client has no method {method!r}"}))
            return
        try:
            event = _event_from_notification(method, message.get("params"))
        except (TypeError, ValueError) as exc:
            log.warning("malformed %s notification (%s): %.200r", method, exc, message)
            return
        if event is None:
            log.info("ignoring notification %r", method)
            return
        with self._state_lock:
            if isinstance(event, (Finished, Failed)):
                self._finals[event.job_id] = event
            self._events.put(event)

    def _send_raw(self, message: dict) -> None:
        proc = self._proc
        try:
            with self._write_lock:
                proc.stdin.write(protocol.encode(message))
                proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def _on_reader_end(self, reason: str) -> None:
        proc = self._proc
        returncode = None
        if proc is not None:
            if self.protocol_faults and len(self.protocol_faults) >= MAX_PROTOCOL_FAULTS and proc.poll() is None:
                proc.kill()
            try:
                returncode = proc.wait(5)
            except subprocess.TimeoutExpired:
                returncode = None
        died = EngineDied(returncode, self.stderr_tail())
        self._died = died
        error = self._death_error("the engine stopped", reason=reason)
        with self._state_lock:
            pending = list(self._pending.values())
        for item in pending:
            item.error = error
            item.event.set()
        if not self._closing:
            log.warning("engine exited unexpectedly (status %s): %s", returncode, reason)
            self._events.put(died)

    def _death_error(self, what: str, reason: str | None = None) -> EngineError:
        returncode = self._died.returncode if self._died is not None else self.returncode
        detail = f"the engine exited with status {returncode}" if returncode is not None else (
            reason or "the engine is not running")
        faults = ""
        if self.protocol_faults:
            faults = f"; it wrote non-protocol output to stdout: {self.protocol_faults[0]}"
        return EngineError(f"{what}: {detail}{faults}", stderr_tail=self.stderr_tail(), returncode=returncode)
