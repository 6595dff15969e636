"""One engine process per Blender session, started on first use and stopped on unregister or at exit.

No bpy. The client is keyed by its :class:`EngineConfig`: changing the engine Python or the cache folder in the
preferences starts a fresh engine on the next capture. The capture running now (at most one) is kept here too, so
the Cancel operator and the panel can find it.
"""
from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING

from .paths import EngineConfig

if TYPE_CHECKING:
    from .capture import CaptureSession
    from .client import EngineClient
    from .engine_setup import SetupRunner

START_TIMEOUT_S = 120.0

_lock = threading.Lock()
_client: "EngineClient | None" = None
_config: EngineConfig | None = None
_active: "CaptureSession | None" = None
_atexit_registered = False
_setup: "SetupRunner | None" = None


def get_client(config: EngineConfig, start_timeout: float | None = None) -> "EngineClient":
    """The running engine for ``config``, starting it (blocking, up to ``start_timeout`` s, default
    START_TIMEOUT_S) when needed."""
    global _client, _config, _atexit_registered
    from .client import EngineClient  # lazy: nothing is spawned or imported until a capture runs

    with _lock:
        if _client is not None and _client.alive and _config == config:
            return _client
        old, _client, _config = _client, None, None
    if old is not None:
        old.shutdown()
    client = EngineClient(config.python, root=config.root, cache_dir=config.cache_dir)
    client.start(timeout=START_TIMEOUT_S if start_timeout is None else start_timeout)  # EngineError with the engine log's tail
    with _lock:
        _client, _config = client, config
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    return client


def client_ready(config: EngineConfig) -> bool:
    """True when an engine for ``config`` is running (a capture can start without waiting)."""
    with _lock:
        return _client is not None and _client.alive and _config == config


class EngineStart:
    """:func:`get_client` on a worker thread, so Blender keeps drawing (and Esc works) while the engine starts —
    seconds, longer the first time it loads its models. ``cancelled`` is only a request: the start runs to its end
    and the engine is kept for the next capture."""

    def __init__(self, config: EngineConfig, start_timeout: float | None = None):
        self.config = config
        self.client: "EngineClient | None" = None
        self.error: BaseException | None = None
        self.cancelled = False
        self._thread = threading.Thread(target=self._run, args=(start_timeout,), name="reel2rig-engine-start",
                                        daemon=True)
        self._thread.start()

    def _run(self, start_timeout: float | None) -> None:
        try:
            self.client = get_client(self.config, start_timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done


_starting: EngineStart | None = None


def start_engine(config: EngineConfig) -> EngineStart:
    """Start the engine for ``config`` in the background (see :class:`EngineStart`); it is the pending start until
    :func:`finish_start` takes it."""
    global _starting
    _starting = EngineStart(config)
    return _starting


def pending_start() -> EngineStart | None:
    """The engine start a capture is waiting for (None when there is none)."""
    return _starting


def finish_start(start: EngineStart) -> None:
    global _starting
    if _starting is start:
        _starting = None


def adopt_client(client: "EngineClient", config: EngineConfig) -> None:
    """Use an already started client for ``config`` (scripts and tests that start their own engine)."""
    global _client, _config, _atexit_registered
    with _lock:
        old, _client, _config = _client, client, config
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    if old is not None and old is not client:
        old.shutdown()


def current_client() -> "EngineClient | None":
    return _client


def active_session() -> "CaptureSession | None":
    return _active


def set_active_session(session: "CaptureSession | None") -> None:
    global _active
    _active = session


def active_setup() -> "SetupRunner | None":
    """The Set up Engine run in progress or last finished (None when there was none)."""
    return _setup


def set_active_setup(runner: "SetupRunner | None") -> None:
    global _setup
    _setup = runner


def setup_running() -> bool:
    return _setup is not None and _setup.running


def shutdown() -> None:
    """Cancel the running capture (if any) and stop the engine. Safe to call more than once."""
    global _client, _config, _active, _setup, _starting
    runner, _setup = _setup, None
    start, _starting = _starting, None
    if start is not None:
        start.cancelled = True
        start.wait(30)  # let a start in flight finish, so the engine it makes is stopped below
    if runner is not None and runner.running:
        runner.cancel()
    session, _active = _active, None
    if session is not None and session.running:
        try:
            session.cancel()
        except Exception:
            pass
    with _lock:
        client, _client, _config = _client, None, None
    if client is not None:
        client.shutdown()
