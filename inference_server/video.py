"""Video input: stream frames with their real timestamps, honouring rotation metadata. No bpy.

Frames are yielded one at a time (bounded memory whatever the clip's length). Timestamps come from the container
(``CAP_PROP_POS_MSEC``), not from ``index / fps``, so variable-frame-rate phone clips keep their timing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .protocol import VIDEO_NOT_FOUND, VIDEO_UNREADABLE, RpcError


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int            # after rotation
    height: int           # after rotation
    fps: float            # nominal, from the container
    frame_count: int      # as reported by the container (may be approximate)
    rotation: int         # degrees from the metadata, already applied to the frames we yield


def _open(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise RpcError(VIDEO_UNREADABLE, f"{path}: OpenCV cannot open this file as a video")
    # Apply the container's rotation (portrait phone clips) to the decoded frames.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Open the file, read its metadata and its first frame. Raises RpcError for missing/empty/non-video files."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise RpcError(VIDEO_NOT_FOUND, f"{path}: video file not found")
    if path.is_dir():
        raise RpcError(VIDEO_UNREADABLE, f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise RpcError(VIDEO_UNREADABLE, f"{path}: the file is empty (0 bytes)")
    cap = _open(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise RpcError(VIDEO_UNREADABLE, f"{path}: no frame could be decoded (corrupt or not a video)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rotation = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)
        height, width = frame.shape[:2]
    finally:
        cap.release()
    if not np.isfinite(fps) or fps <= 0:
        fps = 30.0
    return VideoInfo(str(path), int(width), int(height), fps, count, rotation)


def iter_frames(path: str | os.PathLike[str], start: int = 0, end: int | None = None
                ) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (frame_index, timestamp_seconds, bgr_image) for frames in [start, end).

    Frames that fail to decode in the middle of a clip end the stream (OpenCV cannot skip past them reliably);
    the caller sees fewer frames than the container reported.
    """
    import cv2

    cap = _open(Path(path))
    try:
        index = 0
        last_ts = -1.0
        while end is None or index < end:
            ok = cap.grab()
            if not ok:
                break
            if index >= start:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break
                ts = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                if not np.isfinite(ts) or ts <= last_ts:
                    # Some containers report 0 for every frame; fall back to the nominal rate.
                    fps = float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
                    ts = last_ts + 1.0 / fps if last_ts >= 0 else index / fps
                last_ts = ts
                yield index, ts, frame
            index += 1
    finally:
        cap.release()


def content_hash(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes (cache key: a renamed or touched file still hits its cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()
