"""Video input: stream frames with their real timestamps, from a video file or an image sequence.

May touch: cv2 and numpy (imported lazily), and the input files (read only). No bpy, no torch, no GPU.

Inputs
------
* a video file (anything OpenCV's FFmpeg backend opens): decoded as a stream, one frame in memory at a time,
  whatever the clip's length. Rotation metadata (portrait phone clips) is applied, so frames come out upright and
  ``VideoInfo.width/height`` are after rotation. Timestamps come from the container (``CAP_PROP_POS_MSEC``), not
  from ``index / fps``, so variable-frame-rate clips keep their timing. A frame that fails to decode is skipped and
  counted (see :class:`DecodeStats`); only a run of ``MAX_CONSECUTIVE_FAILURES`` failures ends the stream.
* a folder of images (``.png``, ``.jpg`` …), in natural order of the names (``frame_2`` before ``frame_10``);
  other files are ignored. All images must have the same size (after EXIF orientation, which ``cv2.imdecode``
  applies). Timestamps are ``index / fps`` with ``fps`` from the caller (``DEFAULT_SEQUENCE_FPS`` otherwise).
* one photo (``.jpg``, ``.png`` …): a sequence of one image, its EXIF orientation applied.
* a printf-style pattern such as ``shots/img_%04d.png``: the files of that folder whose names the pattern prints,
  in numeric order; otherwise as a folder. Frame indices are positions in that list (gaps in the numbering are
  not kept as gaps in time).

Frame indices count frames in decode order from 0, skipped frames included, so ``(start, end)`` means the same
frames whatever fails to decode. One limit: a frame that OpenCV drops *inside* one ``grab()`` (or a demuxer that
resynchronises past damaged container bytes) is invisible here; the timestamps of the frames after it stay right.

Every failure to open is an :class:`RpcError` (``VIDEO_NOT_FOUND`` / ``VIDEO_UNREADABLE``) whose message starts
with the path and whose ``fix`` says what to do.
"""
from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from .protocol import VIDEO_NOT_FOUND, VIDEO_UNREADABLE, RpcError

# --- limits (inputs beyond them are refused before decoding) ----------------------------------------------------------
# 8192 px is DCI 8K's width; anything wider is not a camera clip this pipeline can use (a 8192² BGR frame is 200 MB).
MAX_FRAME_SIDE = 8192
# 10 million frames is 11.5 hours at 240 fps or 3.8 days at 30 fps; a larger count is a broken or hostile header.
MAX_FRAME_COUNT = 10_000_000
# 256 GiB holds ~48 min of 4K30 ProRes 422 HQ or ~10 h of 4K60 phone HEVC; bigger files are not reference clips.
MAX_FILE_BYTES = 256 * 1024 ** 3
# Decoding stops after this many frames in a row fail: past it, the rest of the file is taken to be gone.
MAX_CONSECUTIVE_FAILURES = 50
# Frame rate of an image sequence when the caller gives none.
DEFAULT_SEQUENCE_FPS = 30.0
# What an image sequence may hold (compared in lower case); other files in the folder are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Skipped frame indices kept in DecodeStats (the count is exact; the list stops growing here).
MAX_SKIPPED_LISTED = 100

_FIX_TOO_LARGE = ("trim or downscale the clip first (e.g. `ffmpeg -i in.mov -vf scale=-2:2160 -c:v libx264 out.mp4`)"
                  ", or raise the limit in inference_server/video.py if this input is really meant")
_FIX_NO_IMAGES = f"put the frames in the folder as {', '.join(IMAGE_SUFFIXES)} files, or choose a video file"
_FIX_SIZES = "give every image of the sequence the same size (or remove the odd one), then try again"


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int            # after rotation
    height: int           # after rotation
    fps: float            # nominal, from the container (an image sequence: the fps it was given)
    frame_count: int      # as reported by the container (may be approximate); an image sequence: its images
    rotation: int         # degrees clockwise from the metadata, already applied to the frames we yield
    kind: str = "video"   # "video" or "images" (a folder, a printf-style pattern or one photo)
    focal_px: float | None = None   # the focal length the file records, in pixels (camera_meta); None: not recorded
    focal_source: str = ""          # where focal_px was read, in words


@dataclasses.dataclass
class DecodeStats:
    """Filled in by :func:`iter_frames` as it goes (pass one in to read it afterwards)."""
    frames_read: int = 0                                         # frames yielded
    frames_skipped: int = 0                                      # in-range frames that failed to decode
    skipped_indices: list[int] = dataclasses.field(default_factory=list)  # the first MAX_SKIPPED_LISTED of them
    frames_declared: int = 0                                     # the container's frame count (may be approximate)
    ended_early: bool = False  # stopped on MAX_CONSECUTIVE_FAILURES failures before the declared frame count

    def skip(self, index: int) -> None:
        self.frames_skipped += 1
        if len(self.skipped_indices) < MAX_SKIPPED_LISTED:
            self.skipped_indices.append(index)


# --- public API ---------------------------------------------------------------------------------------------------------
def probe(path: str | os.PathLike[str], *, fps: float | None = None) -> VideoInfo:
    """Check the input and read its metadata and first decodable frame. Raises RpcError naming the path.

    ``fps`` is the frame rate of an image sequence (``DEFAULT_SEQUENCE_FPS`` when None); a video file's own rate
    is always used.
    """
    path = Path(path)
    if _is_sequence(path) or _is_still(path):
        return _probe_sequence(path, fps)
    return _probe_video(path)


def iter_frames(path: str | os.PathLike[str], start: int = 0, end: int | None = None, *,
                stats: DecodeStats | None = None, fps: float | None = None
                ) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (frame_index, timestamp_seconds, bgr_image (H, W, 3) uint8) for the frames in [start, end).

    Frames that fail to decode are skipped and counted in ``stats``; ``fps`` as in :func:`probe`. The input is
    checked as in :func:`probe`, when the first frame is asked for: RpcError naming the path.
    """
    path = Path(path)
    stats = stats if stats is not None else DecodeStats()
    if _is_sequence(path) or _is_still(path):
        return _iter_sequence(path, start, end, stats, fps)
    return _iter_video(path, start, end, stats)


def is_image_sequence(path: str | os.PathLike[str]) -> bool:
    """True for a folder, or for a printf-style pattern (``img_%04d.png``) that is not itself a file's name."""
    return _is_sequence(Path(path))


def check_input(path: str | os.PathLike[str]) -> None:
    """The checks that need no decoding, for a quick answer before a job starts: a video file exists and is a
    readable, non-empty, non-text file within MAX_FILE_BYTES; an image sequence has images. RpcError otherwise."""
    path = Path(path)
    if _is_sequence(path):
        _sequence_files(path)
    else:
        _check_file(path)


def content_hash(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 cache key. A file: of its bytes (a renamed or touched file still hits its cache). An image
    sequence: of its images' names (in sequence order) and bytes; other files in the folder do not count."""
    path = Path(path)
    if not _is_sequence(path):
        return _hash_file(hashlib.sha256(), path, chunk).hexdigest()
    digest = hashlib.sha256(b"reel2rig image sequence\0")
    for image in _sequence_files(path):
        name = image.name.encode("utf-8", "surrogateescape")
        digest.update(struct.pack(">Q", len(name)) + name + struct.pack(">Q", image.stat().st_size))
        _hash_file(digest, image, chunk)
    return digest.hexdigest()


# --- video files ----------------------------------------------------------------------------------------------------
def _check_file(path: Path) -> None:
    """What can be told without decoding: exists, is a readable file, not empty, not absurdly large, not text."""
    if not path.exists():
        raise _error(VIDEO_NOT_FOUND, path, "video file not found")
    if not path.is_file():
        raise _error(VIDEO_UNREADABLE, path, "is not a regular file", fix="choose a video file or a folder of images")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise _error(VIDEO_UNREADABLE, path, f"cannot read it ({exc.strerror or exc})",
                     fix="check that the file is readable by you") from exc
    if size == 0:
        raise _error(VIDEO_UNREADABLE, path, "the file is empty (0 bytes), not a video")
    if size > MAX_FILE_BYTES:
        raise _error(VIDEO_UNREADABLE, path, f"the file is {size / 1024 ** 3:.0f} GiB, over the "
                     f"{MAX_FILE_BYTES / 1024 ** 3:.0f} GiB limit for one clip", fix=_FIX_TOO_LARGE)
    if _looks_like_text(head):
        raise _error(VIDEO_UNREADABLE, path, "a text file, not a video")


def _open(path: Path) -> Any:
    import cv2

    _check_file(path)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise _error(VIDEO_UNREADABLE, path, "OpenCV cannot open it as a video "
                     "(not a video, no video track, or a format this build cannot read)")
    # Apply the container's rotation (portrait phone clips) to the decoded frames and to FRAME_WIDTH/HEIGHT.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def _probe_video(path: Path) -> VideoInfo:
    import cv2

    cap = _open(path)
    try:
        _check_declared(path, cap)
        count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        frame = _first_frame(cap)
        if frame is None:
            raise _nothing_decoded(path, count)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        rotation = int(round(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)) % 360
    finally:
        cap.release()
    if not np.isfinite(fps) or fps <= 0:
        fps = 30.0
    height, width = frame.shape[:2]
    return VideoInfo(str(path), int(width), int(height), fps, count, rotation, "video",
                     *_recorded_focal(path, int(width), int(height)))


def _recorded_focal(path: Path, width: int, height: int) -> tuple[float | None, str]:
    """VideoInfo's focal_px and focal_source: what the file's EXIF or QuickTime metadata records, if anything."""
    from .camera_meta import recorded_focal

    found = recorded_focal(path, width, height)
    return (found.px, found.source) if found else (None, "")


def _check_declared(path: Path, cap: Any) -> None:
    """Refuse absurd headers before decoding anything."""
    import cv2

    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if max(width, height) > MAX_FRAME_SIDE:
        raise _error(VIDEO_UNREADABLE, path, f"its frames are {width}×{height} px, over the {MAX_FRAME_SIDE} px "
                     "limit on a side", fix=_FIX_TOO_LARGE)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if count > MAX_FRAME_COUNT:
        raise _error(VIDEO_UNREADABLE, path, f"the container declares {count} frames, over the limit of "
                     f"{MAX_FRAME_COUNT}", fix=_FIX_TOO_LARGE)


def _nothing_decoded(path: Path, declared: int) -> RpcError:
    return _error(VIDEO_UNREADABLE, path, "the video has no frames" if declared == 0 else
                  f"none of its first {MAX_CONSECUTIVE_FAILURES} frames could be decoded (corrupt or unsupported codec)")


def _first_frame(cap: Any) -> np.ndarray | None:
    for _ in range(MAX_CONSECUTIVE_FAILURES):
        if cap.grab():
            ok, frame = cap.retrieve()
            if ok and frame is not None:
                return frame
    return None


def _iter_video(path: Path, start: int, end: int | None, stats: DecodeStats
                ) -> Iterator[tuple[int, float, np.ndarray]]:
    import cv2

    cap = _open(path)
    try:
        _check_declared(path, cap)
        stats.frames_declared = declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        clock = _Clock(float(cap.get(cv2.CAP_PROP_FPS) or 0.0))
        failed: list[int] = []  # the current run of failures: skipped frames if a good frame follows
        index = 0
        while (end is None or index < end) and len(failed) < MAX_CONSECUTIVE_FAILURES:
            ok, frame = _decode_next(cap, wanted=index >= start)
            if not ok:
                if 0 < declared <= index:
                    break  # the end, where the container said it would be
                failed.append(index)
                if index + 1 == len(failed) == MAX_CONSECUTIVE_FAILURES:  # nothing decoded from the start
                    raise _nothing_decoded(path, declared)
            else:
                _count_skipped(stats, failed, start, None)
                if frame is not None:
                    stats.frames_read += 1
                    yield index, clock.seconds(cap.get(cv2.CAP_PROP_POS_MSEC), index), frame
            index += 1
        if len(failed) >= MAX_CONSECUTIVE_FAILURES:  # the stream ended (or is lost from here on)
            stats.ended_early = failed[0] < declared
        else:  # at `end` or the declared end: failures before it are skipped frames if the container has them
            _count_skipped(stats, failed, start, declared)
    finally:
        cap.release()


def _count_skipped(stats: DecodeStats, failed: list[int], start: int, below: int | None) -> None:
    for index in failed:
        if index >= start and (below is None or index < below):
            stats.skip(index)
    failed.clear()


def _decode_next(cap: Any, wanted: bool) -> tuple[bool, np.ndarray | None]:
    """(decoded?, the BGR image if wanted else None)."""
    if not cap.grab():
        return False, None
    if not wanted:
        return True, None
    ok, frame = cap.retrieve()
    return (True, frame) if ok and frame is not None else (False, None)


class _Clock:
    """Container timestamps, made strictly increasing (some containers report 0 for every frame)."""

    def __init__(self, fps: float):
        self.fps = fps if np.isfinite(fps) and fps > 0 else 30.0
        self.last: tuple[int, float] | None = None  # (index, seconds) of the previous frame

    def seconds(self, pos_msec: float, index: int) -> float:
        ts = float(pos_msec) / 1000.0
        if self.last is None:
            ts = ts if np.isfinite(ts) and ts >= 0 else index / self.fps
        elif not np.isfinite(ts) or ts <= self.last[1]:
            ts = self.last[1] + (index - self.last[0]) / self.fps
        self.last = (index, ts)
        return ts


# --- image sequences ------------------------------------------------------------------------------------------------
_PRINTF = re.compile(r"%(0?)(\d*)d")


def _is_sequence(path: Path) -> bool:
    """A folder, or a printf-style pattern (one "%d"/"%04d" and no other "%") naming image files."""
    if path.is_dir():
        return True
    name = path.name
    return not path.exists() and name.count("%") == 1 and _PRINTF.search(name) is not None and _is_image_name(name)


def _is_still(path: Path) -> bool:
    """One photo (a file named as an image): read as a sequence of one, so that its EXIF orientation is applied
    (OpenCV's video reader, which opens it otherwise, leaves a photo as the sensor stored it)."""
    return _is_image_name(path.name) and path.is_file()


def _sequence_files(path: Path) -> list[Path]:
    """The images of a folder (natural order) or of a printf pattern (numeric order), or a photo alone. Raises when
    there are none."""
    if _is_still(path):
        return [path]
    if path.is_dir():
        files = [p for p in path.iterdir() if _is_image_name(p.name) and p.is_file()]
        files.sort(key=lambda p: (_natural_key(p.name), p.name))
        where = "the folder holds no images"
    else:
        files = _pattern_files(path)
        where = "no file matches this image-sequence pattern"
    if not files:
        code = VIDEO_UNREADABLE if path.is_dir() else VIDEO_NOT_FOUND
        raise _error(code, path, f"{where} ({', '.join(IMAGE_SUFFIXES)})", fix=_FIX_NO_IMAGES)
    return files


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _natural_key(name: str) -> list[Any]:
    # re.split with a group alternates text and digit runs, so the types line up position by position.
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name))]


def _pattern_files(pattern: Path) -> list[Path]:
    folder = pattern.parent
    if not folder.is_dir():
        return []
    spec = _PRINTF.search(pattern.name)
    assert spec is not None
    head, tail = pattern.name[:spec.start()], pattern.name[spec.end():]
    regex = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + r"\Z")
    found: list[tuple[int, Path]] = []
    for entry in folder.iterdir():
        match = regex.match(entry.name)
        # Keep only names the pattern prints: "%04d" prints 7 as 0007, never 7 or 00007.
        if match and pattern.name % int(match.group(1)) == entry.name and entry.is_file():
            found.append((int(match.group(1)), entry))
    return [p for _, p in sorted(found)]


def _probe_sequence(path: Path, fps: float | None) -> VideoInfo:
    files = _sequence_files(path)
    if len(files) > MAX_FRAME_COUNT:
        raise _error(VIDEO_UNREADABLE, path, f"the sequence has {len(files)} images, over the limit of "
                     f"{MAX_FRAME_COUNT}", fix=_FIX_TOO_LARGE)
    _check_sequence_sizes(path, files)
    for image in files[:MAX_CONSECUTIVE_FAILURES]:
        frame = _read_image(image)
        if frame is not None:
            height, width = frame.shape[:2]
            _check_image_side(path, image, (width, height))
            return VideoInfo(str(path), int(width), int(height), _sequence_fps(path, fps), len(files), 0, "images",
                             *_recorded_focal(image, int(width), int(height)))
    raise _error(VIDEO_UNREADABLE, path, f"none of its first {min(len(files), MAX_CONSECUTIVE_FAILURES)} images "
                 "could be decoded", fix="check that the images open in an image viewer; re-export them as PNG")


def _sequence_fps(path: Path, fps: float | None) -> float:
    if fps is None:
        return DEFAULT_SEQUENCE_FPS
    try:
        rate = float(fps)
    except (TypeError, ValueError):
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0):
        raise _error(VIDEO_UNREADABLE, path, f"the frame rate given for the image sequence ({fps!r}) is not a "
                     "positive number", fix="give the sequence's frame rate, e.g. 24 or 30")
    return rate


def _iter_sequence(path: Path, start: int, end: int | None, stats: DecodeStats, fps: float | None
                   ) -> Iterator[tuple[int, float, np.ndarray]]:
    files = _sequence_files(path)
    rate = _sequence_fps(path, fps)
    size = _check_sequence_sizes(path, files)
    stats.frames_declared = len(files)
    for index in range(max(0, start), len(files) if end is None else min(end, len(files))):
        frame = _read_image(files[index])
        if frame is None:
            stats.skip(index)
            continue
        shape = (frame.shape[1], frame.shape[0])
        if size is None:
            _check_image_side(path, files[index], shape)
            size = shape
        elif shape != size:
            raise _odd_size(path, files[index], shape, size)
        stats.frames_read += 1
        yield index, index / rate, frame


def _read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 with the EXIF orientation applied (imdecode does, as imread does); None when undecodable.
    Read through numpy so that non-ASCII paths work on every OS."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def _check_sequence_sizes(path: Path, files: list[Path]) -> tuple[int, int] | None:
    """All images the same size (from the headers, no decoding) and within MAX_FRAME_SIDE. Returns the size,
    or None when no header could be read (formats other than PNG/JPEG: checked as they are decoded)."""
    size: tuple[int, int] | None = None
    for image in files:
        shape = _header_size(image)
        if shape is None:
            continue
        _check_image_side(path, image, shape)
        if size is None:
            size = shape
        elif shape != size:
            raise _odd_size(path, image, shape, size)
    return size


def _check_image_side(path: Path, image: Path, shape: tuple[int, int]) -> None:
    if max(shape) > MAX_FRAME_SIDE:
        raise _error(VIDEO_UNREADABLE, path, f"{image.name} is {shape[0]}×{shape[1]} px, over the "
                     f"{MAX_FRAME_SIDE} px limit on a side", fix=_FIX_TOO_LARGE)


def _odd_size(path: Path, image: Path, shape: tuple[int, int], size: tuple[int, int]) -> RpcError:
    return _error(VIDEO_UNREADABLE, path, f"{image.name} is {shape[0]}×{shape[1]} px but the images before it are "
                  f"{size[0]}×{size[1]} px", fix=_FIX_SIZES, odd_file=str(image))


# --- image headers: (width, height) as cv2.imdecode returns them, without decoding --------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _header_size(path: Path) -> tuple[int, int] | None:
    """PNG and JPEG only; EXIF orientations 5-8 (a quarter turn) swap the sides. None when unknown or unparsable."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
            if magic == _PNG_SIGNATURE:
                found = _png_size(handle)
            elif magic[:2] == b"\xff\xd8":
                handle.seek(2)
                found = _jpeg_size(handle)
            else:
                return None
    except (OSError, struct.error, IndexError):
        return None
    if found is None:
        return None
    (width, height), orientation = found
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _png_size(handle: BinaryIO) -> tuple[tuple[int, int], int] | None:
    """Chunks: length (4, big-endian), type (4), data, CRC (4). IHDR comes first: width, height (4 each).
    An eXIf chunk (a TIFF block) before IDAT carries the orientation."""
    size: tuple[int, int] | None = None
    orientation = 1
    while True:
        length, kind = struct.unpack(">I4s", handle.read(8))
        if kind == b"IHDR":
            size = struct.unpack(">II", handle.read(8))
            handle.seek(length - 8 + 4, os.SEEK_CUR)
        elif kind == b"eXIf":
            orientation = _tiff_orientation(handle.read(length))
            handle.seek(4, os.SEEK_CUR)
        elif kind in (b"IDAT", b"IEND"):
            return (size, orientation) if size else None
        else:
            handle.seek(length + 4, os.SEEK_CUR)


def _jpeg_size(handle: BinaryIO) -> tuple[tuple[int, int], int] | None:
    """Segments after SOI: 0xFF, marker, length (2, big-endian, counts itself), data. APP1 "Exif\\0\\0" holds a
    TIFF block with the orientation; SOFn holds precision (1), height (2), width (2). SOS or EOI before SOF: None."""
    orientation = 1
    while True:
        marker = handle.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind == 0xD8 or 0xD0 <= kind <= 0xD7 or kind in (0x01, 0xFF):
            if kind == 0xFF:
                handle.seek(-1, os.SEEK_CUR)  # fill byte: the marker starts one byte later
            continue
        if kind in (0xD9, 0xDA):
            return None
        (length,) = struct.unpack(">H", handle.read(2))
        if length < 2:
            return None
        if kind in _JPEG_SOF:
            _precision, height, width = struct.unpack(">BHH", handle.read(5))
            return (width, height), orientation
        body = handle.read(length - 2)
        if kind == 0xE1 and body[:6] == b"Exif\0\0":
            orientation = _tiff_orientation(body[6:])


def _tiff_orientation(tiff: bytes) -> int:
    """TIFF header: byte order ("II" little / "MM" big), 42, offset of IFD0. IFD0: entry count (2), then 12-byte
    entries tag (2), type (2), count (4), value (4, a SHORT in its first 2 bytes). Orientation is tag 0x0112."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return 1
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (entries,) = struct.unpack(order + "H", tiff[ifd:ifd + 2])
        for i in range(entries):
            at = ifd + 2 + 12 * i
            tag, _type, _count, value = struct.unpack(order + "HHIH", tiff[at:at + 10])
            if tag == 0x0112:
                return value if 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


# --- small helpers ----------------------------------------------------------------------------------------------------
def _error(code: int, path: Path, what: str, fix: str | None = None, **data: Any) -> RpcError:
    return RpcError(code, f"{path}: {what}", fix=fix, path=str(path), **data)


def _looks_like_text(head: bytes) -> bool:
    """UTF-8 without NUL bytes (video containers have NULs in their first box or chunk headers)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def _hash_file(digest: Any, path: Path, chunk: int) -> Any:
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                return digest
            digest.update(block)
