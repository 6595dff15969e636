"""A protocol-correct engine without the pipeline, for driving the add-on's capture path quickly and exactly.

Run as ``python fake_take_engine.py`` by EngineClient(args=[...]) with PYTHONPATH = the project root. ``capture`` steps
through the stages and then writes a *synthetic* Take (tests/blender/synthetic_take.py) for the video, so the add-on's
import can be checked against known joints. Videos named ``slow*`` take ~10 s (for cancel tests), ``fail*`` fail
with VIDEO_UNREADABLE, ``crash*`` make the engine exit mid-job.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from inference_server import protocol

import synthetic_take  # this script's folder is on sys.path

LOCK = threading.Lock()
JOBS: dict[str, threading.Event] = {}
OUT = sys.stdout.buffer


def send(message: dict) -> None:
    with LOCK:
        protocol.write_message(OUT, message)


def notify(method: str, params: dict) -> None:
    send(protocol.notification(method, params))


def run(job_id: str, video: str, out_dir: str, cancel: threading.Event) -> None:
    name = Path(video).name
    if name.startswith("fail"):
        notify("failed", {"job_id": job_id, "code": protocol.VIDEO_UNREADABLE, "message": f"{video}: cannot decode",
                          "fix": protocol.APP_ERRORS[protocol.VIDEO_UNREADABLE], "cancelled": False})
        return
    steps, delay = (50, 0.05) if name.startswith("slow") else (4, 0.005)
    for stage in protocol.STAGES:
        for done in range(1, steps + 1):
            if cancel.is_set():
                notify("failed", {"job_id": job_id, "code": protocol.JOB_CANCELLED, "message": "cancelled",
                                  "fix": protocol.APP_ERRORS[protocol.JOB_CANCELLED], "cancelled": True})
                return
            if name.startswith("crash") and stage == "fit":
                os._exit(3)
            time.sleep(delay)
            notify("progress", {"job_id": job_id, "stage": stage, "done": done, "total": steps, "fps": 100.0})
    take_path = Path(out_dir) / f"{Path(video).stem}.take.npz"
    synthetic_take.write_synthetic_take(take_path, video=video)
    notify("finished", {"job_id": job_id, "take": str(take_path), "sidecar": str(take_path.with_suffix(".json")),
                        "frames": 20, "seconds": 0.1, "stages": {}})


def main() -> int:
    counter = 0
    stdin = sys.stdin.buffer
    while True:
        request = protocol.read_message(stdin)
        if request is None or not isinstance(request, dict):
            return 0
        method, params = request.get("method"), request.get("params") or {}
        if method == "initialize":
            send(protocol.response(request["id"], {
                "protocol_version": protocol.PROTOCOL_VERSION, "engine_version": "fake", "devices": ["cpu"],
                "models": {}, "cache_dir": os.environ.get("REEL2RIG_CACHE", "")}))
        elif method == "capture":
            counter += 1
            job_id = f"job-{counter}"
            JOBS[job_id] = threading.Event()
            out_dir = params.get("out_dir") or os.path.join(os.environ.get("REEL2RIG_CACHE", "."), "takes")
            send(protocol.response(request["id"], {"job_id": job_id}))
            threading.Thread(target=run, args=(job_id, params["video"], out_dir, JOBS[job_id]), daemon=True).start()
        elif method == "cancel":
            event = JOBS.get(params.get("job_id"))
            if event is None:
                send(protocol.error_response(request["id"], protocol.RpcError(
                    protocol.JOB_NOT_FOUND, "no such job").to_error()))
            else:
                event.set()
                send(protocol.response(request["id"], {"job_id": params["job_id"], "cancelled": True}))
        elif method == "shutdown":
            send(protocol.response(request["id"], None))
            return 0
        else:
            send(protocol.error_response(request.get("id"), protocol.RpcError(
                protocol.METHOD_NOT_FOUND, f"unknown method {method}").to_error()))


if __name__ == "__main__":
    sys.exit(main())
