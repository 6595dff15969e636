"""One batch worker: converts clips one after another into a scratch folder each. No bpy, no torch.

A :class:`ClipWorker` owns one engine process (``python -m inference_server --stdio``, driven through the add-on's
own client, :mod:`addon.client`), started on first use and started again if it dies, so a crash in one clip costs
that clip only. For each clip it

1. **captures** the clip into a Take (the engine's progress is passed on as ``(stage, done, total, fps)``);
2. draws the Take's **overlay** contact sheet and a small thumbnail (``python -m inference_server overlay``);
3. runs **Blender** headless in its own process (``python -m addon.batch_export``): the Take onto the rig, or as
   Reel2Rig's own armature, and the requested exports;
4. measures the clip (:mod:`batch.metrics`) and writes ``result.json`` and ``log.txt``.

Everything lands in the scratch folder; the caller publishes it (``batch.store``). A failure at any step ends the
clip with ``status: "failed"``, the step, the message and the fix; the worker goes on with the next clip.
:meth:`ClipWorker.cancel` (any thread) stops the running clip: the engine job is cancelled (its caches stay
consistent), a Blender step is killed.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from inference_server.take import atomic_write_bytes

from .inputs import Clip
from .metrics import engine_peak_rss_mb, take_metrics
from .settings import BatchSettings

ROOT = Path(__file__).resolve().parents[1]
ProgressFn = Callable[[str, int, int, float], None]   # (stage, done, total, frames/s)
ENGINE_START_TIMEOUT_S = 300.0
STEP_STAGES = ("capture", "overlay", "blender")
THUMB_WIDTH = 480


class ClipCancelled(Exception):
    pass


class _StepFailed(Exception):
    def __init__(self, stage: str, error: str, fix: str | None = None):
        super().__init__(error)
        self.stage, self.error, self.fix = stage, error, fix


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class ClipWorker:
    def __init__(self, settings: BatchSettings, *, python: str = sys.executable, cache_dir: str | None = None,
                 threads: int | None = None, device: str | None = None, engine_args: list[str] | None = None):
        self.settings = settings
        self.engine_args = engine_args  # None: python -m inference_server --stdio (tests start fixture engines)
        self.python = python
        self.cache_dir = Path(cache_dir or os.environ.get("REEL2RIG_CACHE") or ROOT / ".cache")
        self.threads = threads
        self.device = device or settings.device
        self._client = None
        self._job: str | None = None
        self._proc: subprocess.Popen | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    # --- engine ---------------------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {"PYTHONPATH": str(ROOT), "REEL2RIG_CACHE": str(self.cache_dir)}
        if self.threads:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[name] = str(self.threads)
        return env

    def engine(self):
        from addon.client import EngineClient

        if self._client is None or not self._client.alive:
            if self._client is not None:
                self._client.shutdown()
            client = EngineClient(self.python, root=ROOT, cache_dir=self.cache_dir, env=self._env(),
                                  args=self.engine_args)
            client.start(timeout=ENGINE_START_TIMEOUT_S)
            self._client = client
        return self._client

    @property
    def engine_pid(self) -> int | None:
        return self._client.pid if self._client is not None else None

    def close(self) -> None:
        if self._client is not None:
            self._client.shutdown()
            self._client = None

    def cancel(self) -> None:
        """Stop the clip in progress (from any thread); the worker refuses new clips until :meth:`reset`."""
        self._cancelled.set()
        with self._lock:
            job, client, proc = self._job, self._client, self._proc
        if job is not None and client is not None and client.alive:
            try:
                client.cancel(job)
            except Exception:  # noqa: BLE001 - the engine may be gone already
                pass
        if proc is not None and proc.poll() is None:
            _kill_group(proc)

    def reset(self) -> None:
        self._cancelled.clear()

    # --- one clip -------------------------------------------------------------------------------------------------
    def run(self, clip: Clip, scratch: Path, on_progress: ProgressFn | None = None) -> dict:
        """Convert ``clip`` into ``scratch`` (created); returns the result record, also written as result.json."""
        scratch.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        progress = on_progress or (lambda *a: None)
        deadline = None if not self.settings.clip_timeout_s else time.monotonic() + self.settings.clip_timeout_s
        log = open(scratch / "log.txt", "a", encoding="utf-8")  # noqa: SIM115 - closed below
        record: dict = {"name": clip.name, "source": str(clip.source), "kind": clip.kind, "status": "ok",
                        "settings_key": self.settings.key(), "fingerprint": clip.fingerprint(),
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "worker": f"{socket.gethostname()}:"
                        f"{os.getpid()}", "timings": {}, "warnings": [], "files": []}
        log.write(f"[batch] {clip.name}: {clip.source} ({clip.kind}) on {record['worker']}\n")
        try:
            if self._cancelled.is_set():
                raise ClipCancelled()
            take = self._capture(clip, scratch, progress, deadline, record, log)
            record["take"] = take.name
            metrics = take_metrics(take)
            record["frames"] = metrics["frames"]
            record["stages"] = metrics.pop("stages", {})
            record["metrics"] = metrics
            if self.settings.thumbnails:
                self._overlay(clip, take, scratch, progress, deadline, record, log)
            if self.settings.exports or self.settings.rig is not None:
                self._blender(clip, take, scratch, progress, deadline, record, log)
        except ClipCancelled:
            record.update(status="cancelled", stage=record.get("stage", "capture"), error="cancelled",
                          fix="run the batch again: finished clips are skipped")
        except _StepFailed as exc:
            record.update(status="failed", stage=exc.stage, error=exc.error, fix=exc.fix)
        except Exception as exc:  # noqa: BLE001 - one bad clip never stops the batch
            import traceback

            log.write(traceback.format_exc())
            record.update(status="failed", stage=record.get("stage", "batch"),
                          error=f"{type(exc).__name__}: {exc}", fix="see log.txt in the clip's folder")
        if record["status"] == "ok":
            record.pop("stage", None)
        record["seconds"] = round(time.perf_counter() - began, 2)
        record["engine_peak_rss_mb"] = engine_peak_rss_mb(self.engine_pid)
        if record["status"] != "ok":
            log.write(f"[batch] {record['status']} at {record.get('stage')}: {record.get('error')}\n"
                      f"[batch] fix: {record.get('fix')}\n")
        else:
            log.write(f"[batch] done in {record['seconds']:.1f} s\n")
        log.close()
        record["files"] = sorted(p.name for p in scratch.iterdir() if p.is_file() and not p.name.startswith("."))
        if "result.json" not in record["files"]:
            record["files"].append("result.json")
        atomic_write_bytes(scratch / "result.json", json.dumps(record, indent=1).encode())
        return record

    def _too_long(self, stage: str) -> _StepFailed:
        return _StepFailed(stage, f"the clip took longer than the batch's limit ({self.settings.clip_timeout_s:g} s)",
                           "raise --clip-timeout, or trim the clip")

    def _remaining(self, deadline: float | None, stage: str) -> float | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._too_long(stage)
        return left

    def _capture(self, clip: Clip, scratch: Path, progress: ProgressFn, deadline: float | None, record: dict,
                 log) -> Path:
        from addon.client import EngineError, EngineTimeout, Failed, Progress, RpcCallError

        record["stage"] = "capture"
        started = time.perf_counter()
        try:
            client = self.engine()
        except EngineError as exc:
            raise _StepFailed("engine", f"the engine did not start: {exc}",
                              "run ./reel2rig setup, then the batch again") from exc
        log_offset = client.log_path.stat().st_size if client.log_path and client.log_path.exists() else 0
        try:
            try:
                job = client.capture(clip.source, scratch, self.settings.capture_options(self.device))
            except RpcCallError as exc:
                raise _StepFailed("capture", exc.message, exc.fix) from exc
            with self._lock:
                self._job = job
            if self._cancelled.is_set():
                client.cancel(job)

            def on_event(event) -> None:
                if isinstance(event, Progress):
                    progress(event.stage, event.done, event.total, event.fps)

            while True:  # wait in short slices, so the clip's time limit is checked
                try:
                    outcome = client.wait(job, timeout=1.0, on_event=on_event)
                    break
                except EngineTimeout:
                    if deadline is not None and time.monotonic() >= deadline and not self._cancelled.is_set():
                        client.cancel(job)  # the engine stops the job, so the next clip does not queue behind it
                        client.wait(job, timeout=60)
                        raise self._too_long("capture") from None
            if isinstance(outcome, Failed):
                if outcome.cancelled:
                    raise ClipCancelled()
                raise _StepFailed("capture", outcome.message, outcome.fix)
        except EngineError as exc:
            raise _StepFailed("capture", f"the engine stopped while capturing: {exc.message}",
                              "see log.txt; if one clip always crashes the engine, report it with that clip") from exc
        finally:
            with self._lock:
                self._job = None
            self._copy_engine_log(client, log_offset, log)
            record["timings"]["capture"] = round(time.perf_counter() - started, 2)
        take = Path(outcome.take)
        if not take.is_file():
            raise _StepFailed("capture", f"the engine reported a Take at {take} but there is none",
                              "see log.txt")
        return take

    @staticmethod
    def _copy_engine_log(client, offset: int, log) -> None:
        path = client.log_path
        if path is None or not path.exists():
            return
        with open(path, "rb") as engine_log:
            engine_log.seek(offset)
            text = engine_log.read().decode("utf-8", "replace")
        if text:
            log.write("[engine]\n" + text + ("" if text.endswith("\n") else "\n"))

    def _run_step(self, stage: str, args: list[str], deadline: float | None, log) -> int:
        """Run a helper process (its own process group, so a cancel can kill it and its children), output → log."""
        if self._cancelled.is_set():
            raise ClipCancelled()
        env = dict(os.environ)
        env.update(self._env())
        log.write(f"[{stage}] {' '.join(args)}\n")
        log.flush()
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(ROOT),
                                env=env, start_new_session=True)
        with self._lock:
            self._proc = proc
        try:
            try:
                return proc.wait(timeout=self._remaining(deadline, stage))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise self._too_long(stage) from None
        finally:
            with self._lock:
                self._proc = None
            if self._cancelled.is_set():
                raise ClipCancelled()

    def _overlay(self, clip: Clip, take: Path, scratch: Path, progress: ProgressFn, deadline: float | None,
                 record: dict, log) -> None:
        record["stage"] = "overlay"
        progress("overlay", 0, 1, 0.0)
        started = time.perf_counter()
        sheet = scratch / f"{clip.name}.overlay.png"
        code = self._run_step("overlay", [self.python, "-m", "inference_server", "overlay", str(take), "--out",
                                          str(sheet), "--video", str(clip.source)], deadline, log)
        record["timings"]["overlay"] = round(time.perf_counter() - started, 2)
        if code != 0 or not sheet.is_file():
            record["warnings"].append("no overlay: drawing it failed (see log.txt)")
            return
        _thumbnail(sheet, scratch / "thumb.jpg")
        progress("overlay", 1, 1, 0.0)

    def _blender(self, clip: Clip, take: Path, scratch: Path, progress: ProgressFn, deadline: float | None,
                 record: dict, log) -> None:
        record["stage"] = "blender"
        progress("blender", 0, 1, 0.0)
        started = time.perf_counter()
        s = self.settings
        result_path = scratch / ".blender_result.json"
        spec = {"take": str(take), "video": str(clip.source) if clip.kind == "video" else None,
                "out_dir": str(scratch), "name": clip.name, "rig": str(s.rig) if s.rig else None,
                "rig_object": s.rig_object, "map": s.bone_map, "formats": list(s.exports),
                "fbx_preset": s.fbx_preset, "foot_lock": s.foot_lock,
                "presets_dir": str(s.presets_dir) if s.presets_dir else None, "part_frames": s.part_frames,
                "result": str(result_path)}
        spec_path = scratch / ".blender_spec.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        code = self._run_step("blender", [self.python, "-m", "addon.batch_export", str(spec_path)], deadline, log)
        record["timings"]["blender"] = round(time.perf_counter() - started, 2)
        try:
            result = json.loads(result_path.read_text())
        except (OSError, ValueError):
            raise _StepFailed("blender", f"Blender exited with status {code} without a result",
                              "see log.txt for Blender's output") from None
        finally:
            spec_path.unlink(missing_ok=True)
            result_path.unlink(missing_ok=True)
        record["blender_peak_rss_mb"] = result.get("peak_rss_mb")
        if not result.get("ok"):
            raise _StepFailed(f"blender:{result.get('stage', '?')}", result.get("error", "?"), result.get("fix"))
        for key in ("armature", "action", "actions", "map_id", "map_name", "map_score", "unmatched", "parts"):
            if result.get(key) is not None:
                record[key] = result[key]
        record["exports"] = {e["fmt"]: [Path(f).name for f in e["files"]] for e in result.get("exports", [])}
        if result.get("frame_range"):
            record["frame_range"] = result["frame_range"]     # the keyed Blender frames, at the scene's fps
        record["warnings"] += result.get("warnings", [])
        progress("blender", 1, 1, 0.0)


def _thumbnail(sheet: Path, out: Path) -> None:
    import cv2

    image = cv2.imread(str(sheet))
    if image is None:
        return
    scale = THUMB_WIDTH / image.shape[1]
    small = cv2.resize(image, (THUMB_WIDTH, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if ok:
        atomic_write_bytes(out, jpeg.tobytes())


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
