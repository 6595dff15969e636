"""The local backend: N worker threads on this machine, each with its own :class:`~batch.clip.ClipWorker` (its own
engine process). No bpy, no torch.

The threads only wait on their engine and helper processes; the work runs in those processes, so N workers use N
processes' worth of cores. Each engine gets ``cores / N`` threads for torch. Events (``started``, ``progress``,
``finished``) go through a queue that the caller's thread drains (:func:`run`), so the display and the summary are
only touched from one thread. Ctrl-C cancels every running clip (engine jobs are cancelled cleanly, Blender steps
killed), waits for the workers to stop and re-raises ``KeyboardInterrupt``; finished clips are already published.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
from typing import Callable

from .clip import ClipWorker
from .inputs import Clip
from .settings import BatchSettings
from .store import OutputFolder

EventFn = Callable[[tuple], None]   # ("started", name) | ("progress", name, stage, done, total, fps) | ("finished", record)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run(clips: list[Clip], settings: BatchSettings, store: OutputFolder, workers: int, on_event: EventFn,
        worker_factory: Callable[[], ClipWorker] | None = None) -> None:
    todo: queue.Queue[Clip] = queue.Queue()
    for clip in clips:
        todo.put(clip)
    events: queue.Queue[tuple] = queue.Queue()
    stop = threading.Event()
    count = max(1, min(workers, len(clips)))
    make = worker_factory or (lambda: ClipWorker(settings, threads=threads_per_worker(count)))
    pool = [make() for _ in range(count)]

    def loop(worker: ClipWorker) -> None:
        try:
            while not stop.is_set():
                try:
                    clip = todo.get_nowait()
                except queue.Empty:
                    return
                events.put(("started", clip.name))
                scratch = store.scratch(clip)
                record = worker.run(clip, scratch, lambda stage, done, total, fps, name=clip.name:
                                    events.put(("progress", name, stage, done, total, fps)))
                if record["status"] == "cancelled":
                    shutil.rmtree(scratch, ignore_errors=True)  # nothing of a cancelled clip is kept
                else:
                    store.publish(clip, scratch)
                events.put(("finished", record))
        except BaseException as exc:  # noqa: BLE001 - reported to the driver
            events.put(("crashed", f"{type(exc).__name__}: {exc}"))
        finally:
            worker.close()

    threads = [threading.Thread(target=loop, args=(w,), name=f"reel2rig-batch-{i}", daemon=True)
               for i, w in enumerate(pool)]
    for thread in threads:
        thread.start()

    def drain(block: float) -> None:
        try:
            event = events.get(timeout=block)
        except queue.Empty:
            return
        on_event(event)
        while True:
            try:
                on_event(events.get_nowait())
            except queue.Empty:
                return

    try:
        while any(t.is_alive() for t in threads):
            drain(0.1)
        drain(0.0)
    except KeyboardInterrupt:
        stop.set()
        for worker in pool:
            worker.cancel()
        try:
            while any(t.is_alive() for t in threads):
                drain(0.1)
            drain(0.0)
        finally:
            for worker in pool:
                worker.close()
        raise
