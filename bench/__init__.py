"""Benchmarks and accuracy metrics against synthetic ground truth (never shipped in the extension)."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, report: dict) -> Path:
    """``bench/results/<name>.json``, written atomically; returns its path."""
    from inference_server.take import atomic_write_bytes

    path = RESULTS / f"{name}.json"
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    return path
