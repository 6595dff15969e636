"""A clip's quality and speed figures, read from its Take and sidecar (numpy only; no bpy, no torch).

These are what a pipeline TD scans a batch's summary for: how much of the clip had a person and hands, how well
the fit lines up with the picture, how clean the motion is. None of them needs ground truth.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def take_metrics(take_path: Path) -> dict:
    """Figures of one Take (``.take.npz``) and its sidecar (``.take.json``)."""
    sidecar = take_path.with_name(take_path.name.replace(".take.npz", ".take.json"))
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    with np.load(take_path, allow_pickle=False) as take:
        valid = take["valid"].astype(bool)                    # (T,)
        frames = int(valid.size)
        timestamps = take["timestamps"].astype(float)          # (T,)
        out: dict = {"frames": frames,
                     "duration_s": round(float(timestamps[-1] - timestamps[0]), 3) if frames > 1 else 0.0,
                     "fps": round(float(take["fps"]), 3),
                     "person_pct": _pct(valid.sum(), frames)}
        if "hand_source" in take.files:
            found = take["hand_source"] > 0                    # (T, 2) [left, right]
            seen = max(int(valid.sum()), 1)
            out["left_hand_pct"] = _pct((found[:, 0] & valid).sum(), seen)
            out["right_hand_pct"] = _pct((found[:, 1] & valid).sum(), seen)
        if "fit_residual_px" in take.files and valid.any():
            residual = take["fit_residual_px"][valid]
            out["residual_px_median"] = round(float(np.median(residual)), 2)
            height = int(take["image_size"][1])
            out["residual_pct_of_height"] = round(100.0 * float(np.median(residual)) / max(height, 1), 2)
        if "fit_confidence" in take.files and valid.any():
            confidence = take["fit_confidence"][valid]
            out["confidence_mean"] = round(float(confidence.mean()), 3)
            out["low_confidence_frames"] = int((confidence < 0.5).sum())
        joints = take["joints_world"]                          # (T, J, 3) m
        if frames >= 3:
            both = valid[2:] & valid[1:-1] & valid[:-2]
            accel = np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1)  # (T-2, J) m/frame²
            if both.any():
                out["jitter_mm_per_frame2"] = round(1000.0 * float(accel[both].mean()), 2)
        root = take["root_position_world"]                     # (T, 3)
        if frames >= 2:
            out["root_travel_m"] = round(float(np.linalg.norm(np.diff(root, axis=0), axis=-1).sum()), 2)
        if "foot_contact" in take.files:
            contact = take["foot_contact"]                     # (T, 4)
            out["contact_pct"] = _pct(int((contact.max(axis=1) > 0.5).sum()), frames)
    world = meta.get("world") or {}
    if world:
        out["camera"] = world.get("camera")
    out["stages"] = meta.get("stages", {})
    out["model"] = meta.get("model")
    return out


def engine_peak_rss_mb(pid: int | None) -> float | None:
    """A live process's peak resident memory (Linux ``VmHWM``), MB; None elsewhere or when it has gone."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None
