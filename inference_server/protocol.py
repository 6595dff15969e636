"""JSON-RPC 2.0 over a byte stream with ``Content-Length`` framing (as language servers do it).

Standard library only: the add-on's client imports this inside Blender. No bpy, no torch.

Wire format of one message::

    Content-Length: <n>\\r\\n
    \\r\\n
    <n bytes of UTF-8 JSON>

Other headers (``Content-Type``) are accepted and ignored.

Methods (client → engine)
-------------------------
``initialize``  → ``{protocol_version, engine_version, devices, models, cache_dir}``
``capture``     params ``{video, out_dir?, options?}`` → ``{job_id}`` at once; the work runs in the background.
``cancel``      params ``{job_id}`` → ``{job_id, cancelled: bool}``
``shutdown``    → ``null``; the engine cancels running jobs and exits after replying.

Notifications (engine → client, no id)
--------------------------------------
``progress``  ``{job_id, stage, done, total, fps}``   stage ∈ STAGES, ``done``/``total`` in frames (or steps).
``finished``  ``{job_id, take, sidecar, frames, seconds, stages: {stage: {seconds, fps}}, people: [take, ...]}``
              (``people``: every person's Take of a multi-person capture, ``take`` first; [] otherwise)
``failed``    ``{job_id, code, message, fix, cancelled: bool}``

Error codes
-----------
JSON-RPC's own for protocol faults (PARSE_ERROR … INTERNAL_ERROR), and the application codes below, each with a
message and a ``data.fix`` telling the user what to do.
"""
from __future__ import annotations

import json
from typing import IO, Any

PROTOCOL_VERSION = "1.0"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # large arrays never travel over the protocol; anything bigger is a fault
MAX_HEADER_BYTES = 8 * 1024

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Application error codes (-32000 … -32099 is reserved for implementation-defined server errors).
NOT_INITIALIZED = -32002      # a method was called before `initialize`
VIDEO_NOT_FOUND = -32010      # the video path does not exist
VIDEO_UNREADABLE = -32011     # exists but OpenCV cannot decode it (empty, corrupt, not a video)
NO_PERSON = -32012            # decoded, but no person was detected in any frame
MODEL_MISSING = -32013        # a model file or package is missing
JOB_NOT_FOUND = -32014        # cancel of an unknown job id
JOB_CANCELLED = -32015        # used in `failed` when the user cancelled
JOB_FAILED = -32016           # an unexpected failure inside a stage (message names the stage and frame)
OUTPUT_NOT_WRITABLE = -32017  # the output folder cannot be written

APP_ERRORS: dict[int, str] = {
    NOT_INITIALIZED: "call `initialize` first",
    VIDEO_NOT_FOUND: "check the path; the file must exist on the machine the engine runs on",
    VIDEO_UNREADABLE: "re-export the clip as H.264 MP4 (e.g. `ffmpeg -i in.mov -c:v libx264 out.mp4`)",
    NO_PERSON: "use a clip where one person is visible; check lighting and framing",
    MODEL_MISSING: "run `./reel2rig setup` (or Preferences › Reel2Rig › Set up engine) to install the models",
    JOB_NOT_FOUND: "the job already ended or never existed; nothing to cancel",
    JOB_CANCELLED: "nothing to fix: the job was cancelled on request",
    JOB_FAILED: "see the engine log (stderr) for the traceback and report it with the clip",
    OUTPUT_NOT_WRITABLE: "choose an output folder you can write to",
}

STAGES = ("decode", "detect", "fit", "world", "write")


class ProtocolError(Exception):
    """A framing or JSON fault. `code` is the JSON-RPC error code to answer with."""

    def __init__(self, code: int, message: str, fatal: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal  # the stream cannot be resynchronised (e.g. truncated body)


class RpcError(Exception):
    """An error to send back as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, fix: str | None = None, **data: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fix = fix if fix is not None else APP_ERRORS.get(code)
        self.data = data

    def to_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        data = dict(self.data)
        if self.fix:
            data["fix"] = self.fix
        if data:
            err["data"] = data
        return err


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def write_message(stream: IO[bytes], message: dict[str, Any]) -> None:
    stream.write(encode(message))
    stream.flush()


def read_message(stream: IO[bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any] | list[Any] | None:
    """Read one framed message. Returns None at a clean end of stream.

    Raises ProtocolError(PARSE_ERROR) for bad JSON (the stream stays in sync: the body was consumed) and
    ProtocolError(INVALID_REQUEST, fatal=True) for broken framing or an oversized body (the body is skipped when
    its length is known, so the stream stays usable; `fatal` only when it cannot be).
    """
    length: int | None = None
    header_bytes = 0
    saw_any = False
    while True:
        line = stream.readline(MAX_HEADER_BYTES + 1)
        if not line:
            if saw_any:
                raise ProtocolError(INVALID_REQUEST, "stream ended inside a message header", fatal=True)
            return None
        saw_any = True
        header_bytes += len(line)
        if header_bytes > MAX_HEADER_BYTES:
            raise ProtocolError(INVALID_REQUEST, "message header too long", fatal=True)
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(INVALID_REQUEST, f"malformed header line {line[:80]!r}", fatal=True)
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise ProtocolError(INVALID_REQUEST, f"bad Content-Length {value.strip()[:40]!r}", fatal=True)
            if length < 0:
                raise ProtocolError(INVALID_REQUEST, "negative Content-Length", fatal=True)
    if length is None:
        raise ProtocolError(INVALID_REQUEST, "missing Content-Length header", fatal=True)
    if length > max_bytes:
        # Skip the body in chunks so the stream stays in sync, then report.
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 20))
            if not chunk:
                raise ProtocolError(INVALID_REQUEST, "stream ended inside an oversized message", fatal=True)
            remaining -= len(chunk)
        raise ProtocolError(INVALID_REQUEST, f"message of {length} bytes exceeds the {max_bytes}-byte limit")
    body = b""
    while len(body) < length:
        chunk = stream.read(length - len(body))
        if not chunk:
            raise ProtocolError(INVALID_REQUEST, "stream ended inside a message body", fatal=True)
        body += chunk
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(PARSE_ERROR, f"body is not valid UTF-8 JSON: {exc}") from exc


def request(msg_id: int | str, method: str, params: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def notification(method: str, params: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def response(msg_id: int | str | None, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def error_response(msg_id: int | str | None, error: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": error}
