"""The engine's JSON-RPC server over stdin/stdout (``python -m inference_server --stdio``).

No bpy. Light at import time: torch is imported inside ``initialize`` (to list CUDA devices) and the pipeline when
the first ``capture`` arrives, never when this module loads.

Layout (python-lsp-jsonrpc / pygls style)
-----------------------------------------
* :class:`StdioTransport` — framing only: reads messages, writes them under one lock so responses (reader thread)
  and notifications (job thread) never interleave.
* :class:`EngineServer` — validation and dispatch: method name → handler. Handlers run on the reader thread and are
  quick; captures run in :class:`inference_server.jobs.JobManager`'s worker thread.
* :func:`serve_stdio` — process setup: takes fd 1 for protocol bytes only (everything else that writes to stdout,
  Python or C, lands on stderr), points fd 0 at /dev/null so child processes cannot eat protocol bytes, logs to
  stderr, serves until ``shutdown``, ``exit`` or end of stdin.

Rules a client can rely on (see :mod:`inference_server.protocol` for the methods)
---------------------------------------------------------------------------------
* Batches (JSON arrays) are not supported: answered with one INVALID_REQUEST error (id null).
* A message with a bad ``jsonrpc`` / ``method`` / ``id`` or scalar ``params`` → INVALID_REQUEST; ``params`` as an
  array or with wrong fields → INVALID_PARAMS; bad JSON → PARSE_ERROR (id null); an oversized message is skipped and
  answered INVALID_REQUEST (id null). The server keeps running after all of these. Broken framing (a header that is
  not ``Name: value``) cannot be resynchronised: the server answers INVALID_REQUEST and exits with status 1.
* Before ``initialize`` every method but ``initialize`` and ``shutdown`` → NOT_INITIALIZED. ``initialize`` may be
  repeated (it returns the same information).
* ``capture`` checks the video (exists, is a non-empty file, is not text) and the output folder (creatable, writable)
  before it queues a job, and answers VIDEO_NOT_FOUND / VIDEO_UNREADABLE / OUTPUT_NOT_WRITABLE as response errors.
  Relative paths are resolved against the engine's working directory: clients should send absolute paths.
* One job runs at a time; more are queued (see :mod:`inference_server.jobs`).
* ``shutdown`` cancels the jobs, waits up to SHUTDOWN_WAIT_S for the running one (its ``failed`` notification goes out
  first), answers ``null`` and exits 0. The ``exit`` notification and end of stdin do the same without an answer.
"""
from __future__ import annotations

import codecs
import dataclasses
import importlib.metadata
import importlib.util
import logging
import os
import platform
import sys
import threading
from pathlib import Path
from typing import IO, Any, Callable

from . import __version__, config, jobs, protocol

log = logging.getLogger("reel2rig.server")

SHUTDOWN_WAIT_S = 5.0
TEXT_SNIFF_BYTES = 4096


@dataclasses.dataclass
class AfterReply:
    """A handler result whose `then` runs right after the response is written (e.g. queue the job only once the
    client has its id, so no notification can overtake the response)."""

    result: Any
    then: Callable[[], None]


class StdioTransport:
    """Framed messages in, framed messages out; one lock around every write."""

    def __init__(self, rfile: IO[bytes], wfile: IO[bytes]):
        self._rfile = rfile
        self._wfile = wfile
        self._lock = threading.Lock()
        self._broken = False

    def read(self) -> dict | list | None:
        return protocol.read_message(self._rfile)

    def write(self, message: dict) -> bool:
        """Write one message. Raises TypeError/ValueError if it is not JSON; returns False if the pipe is gone."""
        data = protocol.encode(message)
        with self._lock:
            if self._broken:
                return False
            try:
                self._wfile.write(data)
                self._wfile.flush()
            except (OSError, ValueError) as exc:  # BrokenPipeError, or the stream was closed
                self._broken = True
                log.warning("cannot write to the client (%s); further output is dropped", exc)
                return False
        return True


class EngineServer:
    """Validates requests and dispatches them to handlers. Thread-safe `notify` for the job thread."""

    def __init__(self, transport: StdioTransport):
        self.transport = transport
        self.jobs = jobs.JobManager(self.notify)
        self.initialized = False
        self.exit_code = 0
        self._stop = False
        self._jobs_stopped = True
        self._jobs_shut = False
        self._info: dict | None = None
        self._handlers: dict[str, Callable[[dict], Any]] = {
            "initialize": self.on_initialize,
            "capture": self.on_capture,
            "cancel": self.on_cancel,
            "shutdown": self.on_shutdown,
        }
        self._notification_handlers: dict[str, Callable[[dict], None]] = {"exit": self.on_exit}

    # --- transport loop --------------------------------------------------------------------------------------
    def serve(self) -> int:
        while not self._stop:
            try:
                message = self.transport.read()
            except protocol.ProtocolError as exc:
                log.warning("protocol fault: %s", exc.message)
                self._reply_error(None, exc.code, exc.message)
                if exc.fatal:
                    log.error("the input stream cannot be resynchronised; exiting")
                    self.exit_code = 1
                    break
                continue
            except (OSError, ValueError) as exc:
                log.info("stdin is unusable (%s); exiting", exc)
                break
            if message is None:
                log.info("end of stdin; exiting")
                break
            self.handle(message)
        self._stop_jobs()
        return self.exit_code

    def notify(self, method: str, params: dict) -> None:
        try:
            self.transport.write(protocol.notification(method, params))
        except (TypeError, ValueError):
            log.exception("notification %s is not JSON-serialisable: %r", method, params)

    # --- dispatch --------------------------------------------------------------------------------------------
    def handle(self, message: Any) -> None:
        if isinstance(message, list):
            self._reply_error(None, protocol.INVALID_REQUEST,
                              "batch requests are not supported; send one JSON-RPC message per frame")
            return
        if not isinstance(message, dict):
            self._reply_error(None, protocol.INVALID_REQUEST, "a message must be a JSON object")
            return
        has_id = "id" in message
        msg_id = message.get("id")
        if has_id and (not isinstance(msg_id, (str, int)) or isinstance(msg_id, bool)):
            self._reply_error(None, protocol.INVALID_REQUEST, f"id must be a string or an integer, not {msg_id!r}")
            return
        if message.get("jsonrpc") != "2.0":
            self._reply_error(msg_id, protocol.INVALID_REQUEST, 'missing or wrong "jsonrpc" member (must be "2.0")')
            return
        method = message.get("method")
        if method is None and ("result" in message or "error" in message):
            log.debug("ignoring a response from the client: %r", message)
            return
        if not isinstance(method, str) or not method:
            self._reply_error(msg_id, protocol.INVALID_REQUEST, '"method" must be a non-empty string')
            return
        params = message.get("params")
        if params is not None and not isinstance(params, (dict, list)):
            self._reply_error(msg_id, protocol.INVALID_REQUEST, '"params" must be an object')
            return
        if not has_id:
            self._handle_notification(method, params)
            return
        handler = self._handlers.get(method)
        if handler is None:
            self._reply_error(msg_id, protocol.METHOD_NOT_FOUND,
                              f"unknown method {method!r}; known: {', '.join(sorted(self._handlers))}")
            return
        if not self.initialized and method not in ("initialize", "shutdown"):
            self._reply_rpc_error(msg_id, protocol.RpcError(
                protocol.NOT_INITIALIZED, f"{method!r} was called before 'initialize'"))
            return
        if isinstance(params, list):
            self._reply_error(msg_id, protocol.INVALID_PARAMS, '"params" must be an object (named parameters)')
            return
        try:
            result = handler(params or {})
        except protocol.RpcError as exc:
            self._reply_rpc_error(msg_id, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the server keeps running
            log.exception("internal error in %s", method)
            self._reply_error(msg_id, protocol.INTERNAL_ERROR,
                              f"internal error in {method!r}: {type(exc).__name__}: {exc}")
            return
        then = None
        if isinstance(result, AfterReply):
            result, then = result.result, result.then
        try:
            self.transport.write(protocol.response(msg_id, result))
        except (TypeError, ValueError) as exc:
            log.exception("result of %s is not JSON-serialisable", method)
            self._reply_error(msg_id, protocol.INTERNAL_ERROR, f"result of {method!r} is not JSON: {exc}")
            return
        if then is not None:
            then()

    def _handle_notification(self, method: str, params: Any) -> None:
        handler = self._notification_handlers.get(method)
        if handler is None:
            log.info("ignoring unknown notification %r", method)  # JSON-RPC: notifications are never answered
            return
        try:
            handler(params if isinstance(params, dict) else {})
        except Exception:  # noqa: BLE001
            log.exception("error in notification %s", method)

    def _reply_error(self, msg_id: Any, code: int, message: str) -> None:
        self._reply_rpc_error(msg_id, protocol.RpcError(code, message))

    def _reply_rpc_error(self, msg_id: Any, exc: protocol.RpcError) -> None:
        try:
            self.transport.write(protocol.error_response(msg_id, exc.to_error()))
        except (TypeError, ValueError):
            log.exception("cannot encode error %r", exc.message)
            self.transport.write(protocol.error_response(
                msg_id, {"code": exc.code, "message": str(exc.message)}))

    # --- handlers ----------------------------------------------------------------------------------------------
    def on_initialize(self, params: dict) -> dict:
        if self._info is None:
            self._info = engine_info()
        self.initialized = True
        client = params.get("client")
        log.info("initialized by %s", client or "a client")
        return self._info

    def on_capture(self, params: dict) -> AfterReply:
        unknown = sorted(set(params) - {"video", "out_dir", "options"})
        if unknown:
            raise _invalid_params(f"unknown capture params {unknown}; known: ['options', 'out_dir', 'video']")
        video = params.get("video")
        if not isinstance(video, str) or not video.strip():
            raise _invalid_params('"video" (a path to a video file, string) is required')
        out_dir = params.get("out_dir")
        if out_dir is not None and (not isinstance(out_dir, str) or not out_dir.strip()):
            raise _invalid_params('"out_dir" must be a folder path (string)')
        options = params.get("options")
        if options is not None and not isinstance(options, dict):
            raise _invalid_params('"options" must be an object')

        from . import pipeline  # light at module level; heavy libraries load when the job runs

        try:
            capture_options = pipeline.CaptureOptions.from_dict(options)
            check_option_types(capture_options)
        except (TypeError, ValueError) as exc:
            raise _invalid_params(f"bad capture options: {exc}") from exc

        video_path = Path(video).expanduser().absolute()
        check_video(video_path)
        out_path = Path(out_dir).expanduser().absolute() if out_dir else config.cache_dir() / "takes"
        check_out_dir(out_path)

        job = jobs.Job(self.jobs.new_job_id(), video_path, out_path, capture_options)
        return AfterReply({"job_id": job.id}, lambda: self.jobs.submit(job))

    def on_cancel(self, params: dict) -> dict:
        job_id = params.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise _invalid_params('"job_id" (string) is required')
        return self.jobs.cancel(job_id)

    def on_shutdown(self, params: dict) -> None:
        log.info("shutdown requested")
        self._stop = True
        self._stop_jobs()
        return None

    def on_exit(self, params: dict) -> None:
        log.info("exit notification")
        self._stop = True

    def _stop_jobs(self) -> None:
        if self._jobs_shut:
            return
        self._jobs_shut = True
        active = self.jobs.active()
        if active:
            log.info("cancelling %d job(s): %s", len(active), ", ".join(active))
        self._jobs_stopped = self.jobs.shutdown(wait=SHUTDOWN_WAIT_S)

    @property
    def jobs_stopped(self) -> bool:
        return self._jobs_stopped


def _invalid_params(message: str) -> protocol.RpcError:
    return protocol.RpcError(protocol.INVALID_PARAMS, message)


# --- checks that make `capture` fail fast ----------------------------------------------------------------------
_OPTION_TYPES = {"str": (str,), "float": (int, float), "int": (int,), "bool": (bool,)}


def check_option_types(options: Any) -> None:
    """Check each field against its annotation (``str``, ``float | None``, …); unknown annotations are skipped."""
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        parts = [p.strip() for p in annotation.split("|")]
        if value is None and "None" in parts:
            continue
        allowed = tuple(t for p in parts for t in _OPTION_TYPES.get(p, ()))
        if not allowed or not all(p in _OPTION_TYPES or p == "None" for p in parts):
            continue
        if isinstance(value, bool) and bool not in allowed:
            raise TypeError(f"option {field.name!r} must be {annotation}, not a boolean")
        if not isinstance(value, allowed):
            raise TypeError(f"option {field.name!r} must be {annotation}, not {type(value).__name__} {value!r}")


def looks_like_text(head: bytes) -> bool:
    """True if `head` is printable UTF-8 text (no container format starts like that)."""
    if not head or b"\0" in head:
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)


def check_video(path: Path) -> None:
    """Raise VIDEO_NOT_FOUND / VIDEO_UNREADABLE for what can be seen without decoding (files, folders of images,
    printf-style image patterns; see video.check_input)."""
    from . import video

    video.check_input(path)


def check_out_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise protocol.RpcError(protocol.OUTPUT_NOT_WRITABLE,
                                f"cannot create the output folder {path}: {exc.strerror or exc}",
                                path=str(path)) from exc
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise protocol.RpcError(protocol.OUTPUT_NOT_WRITABLE, f"the output folder {path} is not writable",
                                path=str(path))


# --- initialize ------------------------------------------------------------------------------------------------
def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def models_found() -> dict:
    """Installed model packages (versions from metadata, nothing imported) and whether Anny's cache is built."""
    anny_dir = os.environ.get("ANNY_CACHE_DIR")
    anny_cache = False
    if anny_dir and os.path.isdir(anny_dir):
        anny_cache = any(Path(anny_dir).rglob("*.safetensors"))
    return {
        "mediapipe": _version("mediapipe"),
        "anny": _version("anny"),
        "anny_cache": anny_cache,
        "anny_cache_dir": anny_dir,
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "opencv": (_version("opencv-python") or _version("opencv-contrib-python")
                   or _version("opencv-python-headless") or _version("opencv-contrib-python-headless")),
    }


def compute_devices() -> tuple[list[str], dict[str, str]]:
    """["cpu", "cuda:0", …] and a readable name for each. Imports torch (1–2 s) if it is installed."""
    devices = ["cpu"]
    names = {"cpu": platform.processor() or platform.machine() or "cpu"}
    if importlib.util.find_spec("torch") is None:
        return devices, names
    try:
        import torch  # noqa: PLC0415 - lazy on purpose

        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                devices.append(f"cuda:{index}")
                names[f"cuda:{index}"] = torch.cuda.get_device_name(index)
    except Exception:  # noqa: BLE001 - a broken CUDA install still leaves the CPU
        log.warning("cannot query CUDA devices", exc_info=True)
    return devices, names


def engine_info() -> dict:
    devices, names = compute_devices()
    return {
        "protocol_version": protocol.PROTOCOL_VERSION,
        "engine_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "devices": devices,
        "device_names": names,
        "models": models_found(),
        "cache_dir": str(config.cache_dir()),
        "jobs": {"concurrent": 1, "queued": True},
    }


# --- process setup ---------------------------------------------------------------------------------------------
def _claim_stdio() -> tuple[IO[bytes], IO[bytes]]:
    """Private binary streams for the protocol; fd 1 → stderr and fd 0 → /dev/null for everyone else."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    out_fd = os.dup(1)  # non-inheritable (PEP 446): child processes never get the protocol pipe
    in_fd = os.dup(0)
    os.dup2(2, 1)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415

        msvcrt.setmode(out_fd, os.O_BINARY)
        msvcrt.setmode(in_fd, os.O_BINARY)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    return os.fdopen(in_fd, "rb"), os.fdopen(out_fd, "wb")


def _setup_logging() -> None:
    level = os.environ.get("REEL2RIG_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve_stdio() -> int:
    """Run the engine on this process's stdin/stdout until shutdown; return the exit status."""
    config.prepare_environment()
    rfile, wfile = _claim_stdio()
    _setup_logging()
    log.info("Reel2Rig engine %s (protocol %s) on Python %s, pid %d", __version__, protocol.PROTOCOL_VERSION,
             platform.python_version(), os.getpid())
    server = EngineServer(StdioTransport(rfile, wfile))
    try:
        code = server.serve()
    except KeyboardInterrupt:
        log.info("interrupted")
        server._stop_jobs()
        code = 130
    log.info("engine exits with status %d", code)
    logging.shutdown()
    try:
        wfile.flush()
    except (OSError, ValueError):
        pass
    if not server.jobs_stopped:
        # A stage is stuck in native code: do not let interpreter teardown wait for (or crash inside) it.
        sys.stderr.flush()
        os._exit(code)
    return code
