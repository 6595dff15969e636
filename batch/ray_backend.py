"""The Ray backend: clips become tasks on Ray actors, each actor a :class:`~batch.clip.ClipWorker` with its own
engine, on this machine or across a cluster. No bpy, no torch in this process (the actors run the engine and Blender
as their own subprocesses, as the local backend does).

* ``--ray`` alone starts a local Ray instance (this machine's cores); ``--ray auto`` joins the cluster this machine
  belongs to (``ray start`` was run here); ``--ray ray://HEAD:10001`` connects through Ray Client.
* Every actor asks for ``num_cpus`` (1 by default) and ``num_gpus`` (``--gpus-per-clip``, default 1 with ``--device
  cuda``, 0 otherwise), so Ray places at most as many clips on a node as it has GPUs for.
* A clip is converted into a scratch folder on the node that runs it; its files come back through Ray's object
  store and are written into the output folder here, so the output folder need not be shared. The *inputs* must be
  readable at the same path on every node (a shared file system, as render farms have), and every node needs the
  project and its environment at the same path (``./reel2rig setup`` on each, or a shared install).
* Progress travels through a small actor (:class:`_Board`) that the workers report to and this driver polls.
* Ctrl-C asks every actor to cancel its clip (the actors are threaded, so the cancel reaches them while they work),
  waits for them to stop, shuts the actors (and their engines) down and re-raises ``KeyboardInterrupt``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .clip import ROOT, ClipWorker
from .inputs import Clip
from .settings import BatchSettings
from .store import OutputFolder

EventFn = Callable[[tuple], None]
CANCEL_WAIT_S = 60.0


class _Board:
    """Latest progress per clip, written by the workers, read (and cleared) by the driver."""

    def __init__(self) -> None:
        self.state: dict[str, tuple] = {}

    def update(self, name: str, stage: str, done: int, total: int, fps: float) -> None:
        self.state[name] = (stage, done, total, fps)

    def take(self) -> dict[str, tuple]:
        state, self.state = self.state, {}
        return state


class _ClipActor:
    def __init__(self, settings: dict, board, threads: int | None):
        self.worker = ClipWorker(BatchSettings.from_json(settings), threads=threads)
        self.board = board

    def run(self, clip: dict) -> tuple[dict, dict[str, bytes]]:
        item = Clip(clip["name"], Path(clip["source"]), clip["kind"])
        scratch = Path(tempfile.mkdtemp(prefix=f"reel2rig-ray-{item.name}-"))
        last = [0.0]

        def progress(stage: str, done: int, total: int, fps: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5 or done >= total:
                last[0] = now
                self.board.update.remote(item.name, stage, done, total, fps)

        try:
            record = self.worker.run(item, scratch, progress)
            files = {p.name: p.read_bytes() for p in scratch.iterdir()
                     if p.is_file() and not p.name.startswith(".")}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return record, files

    def cancel(self) -> None:
        self.worker.cancel()

    def close(self) -> None:
        self.worker.close()

    def node(self) -> str:
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"


def _connect(address: str | None) -> dict:
    import ray

    env = {"PYTHONPATH": str(ROOT)}
    for name in ("REEL2RIG_CACHE", "ANNY_CACHE_DIR", "WARP_CACHE_PATH", "MPLCONFIGDIR"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    kwargs = dict(runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False,
                  configure_logging=False)
    if address in (None, "", "local"):
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    else:
        kwargs.pop("include_dashboard")
        ray.init(address=address, **kwargs)
    return ray.cluster_resources()


def run(clips: list[Clip], settings: BatchSettings, store: OutputFolder, workers: int | None, on_event: EventFn,
        address: str | None = None, gpus_per_clip: float | None = None, cpus_per_clip: float = 1.0) -> dict:
    """Convert ``clips`` on Ray; returns what the cluster offered (``cluster_resources``) and the actor count."""
    import ray

    resources = _connect(address)
    try:
        if gpus_per_clip is None:
            gpus_per_clip = 1.0 if settings.device == "cuda" else 0.0
        if gpus_per_clip > resources.get("GPU", 0.0):
            raise RuntimeError(f"each clip asks for {gpus_per_clip:g} GPU but the Ray cluster has "
                               f"{resources.get('GPU', 0.0):g}; use --device cpu, or add GPU nodes")
        cpus = resources.get("CPU", 1.0)
        count = workers or max(1, int(cpus // max(cpus_per_clip, 1.0)))
        count = max(1, min(count, len(clips)))
        threads = max(1, int(cpus // count)) if address in (None, "", "local") else None
        board = ray.remote(_Board).options(num_cpus=0).remote()
        actor_cls = ray.remote(_ClipActor)

        def new_actor():
            return actor_cls.options(num_cpus=cpus_per_clip, num_gpus=gpus_per_clip,
                                     max_concurrency=2).remote(settings.to_json(), board, threads)

        actors = [new_actor() for _ in range(count)]
        pending_clips = list(clips)
        running: dict = {}   # object ref -> (actor, clip)
        idle = list(actors)
        by_name = {clip.name: clip for clip in clips}

        def submit() -> None:
            while idle and pending_clips:
                actor, clip = idle.pop(), pending_clips.pop(0)
                ref = actor.run.remote({"name": clip.name, "source": str(clip.source), "kind": clip.kind})
                running[ref] = (actor, clip)
                on_event(("started", clip.name))

        def collect(ref) -> None:
            actor, clip = running.pop(ref)
            try:
                record, files = ray.get(ref)
                idle.append(actor)
            except Exception as exc:  # noqa: BLE001 - a dead actor/node fails this clip only
                if isinstance(exc, ray.exceptions.RayActorError):  # its process or node is gone: a fresh one
                    actor = new_actor()
                    actors.append(actor)
                idle.append(actor)
                record = {"name": clip.name, "source": str(clip.source), "kind": clip.kind, "status": "failed",
                          "stage": "ray", "error": f"the Ray worker failed: {type(exc).__name__}: {exc}",
                          "fix": "see the Ray logs (/tmp/ray/session_latest/logs); run the batch again to retry"}
                files = {}
            record["fingerprint"] = clip.fingerprint()      # as this machine sees the input (skip check)
            record["settings_key"] = settings.key()
            if record.get("status") == "cancelled":
                on_event(("finished", record))
                return
            if "result.json" not in record.setdefault("files", []):
                record["files"].append("result.json")
            files["result.json"] = json.dumps(record, indent=1).encode()
            store.write_files(by_name[clip.name], files)
            on_event(("finished", record))

        def poll(timeout: float) -> None:
            if running:
                done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
                for ref in done:
                    collect(ref)
            for name, (stage, done_, total, fps) in ray.get(board.take.remote()).items():
                on_event(("progress", name, stage, done_, total, fps))

        try:
            submit()
            while running:
                poll(0.3)
                submit()
        except KeyboardInterrupt:
            pending_clips.clear()
            for actor, _ in list(running.values()):
                actor.cancel.remote()
            deadline = time.monotonic() + CANCEL_WAIT_S
            while running and time.monotonic() < deadline:
                poll(0.3)
            raise
        finally:
            for actor in actors:
                try:
                    ray.get(actor.close.remote(), timeout=30)
                except Exception:  # noqa: BLE001
                    pass
        return {"resources": {k: v for k, v in resources.items() if k in ("CPU", "GPU", "memory")},
                "actors": count}
    finally:
        ray.shutdown()
