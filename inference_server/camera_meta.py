"""The camera's focal length as the file itself records it: EXIF in photos, QuickTime metadata in phone videos.

May touch: the input file (read only, headers and metadata boxes only), Pillow (imported lazily). No cv2, no bpy,
no torch.

Where it is found
-----------------
* **Photos and image sequences** (EXIF, read with Pillow): ``FocalLengthIn35mmFilm`` (0xA405) first; else the lens's
  ``FocalLength`` (0x920A) with the sensor's pixel density ``FocalPlaneXResolution`` / ``FocalPlaneResolutionUnit``
  (0xA20E / 0xA210), scaled from the size the camera wrote (``PixelXDimension`` × ``PixelYDimension``) to the
  image's; without that size, or when the picture was cropped to another shape, this second way is not used.
* **Videos** (ISO base media / QuickTime files: ``.mov``, ``.mp4``, ``.m4v``): the ``mdta`` item
  ``com.apple.quicktime.camera.focal_length.35mm_equivalent`` that iPhones write, whether in the movie's ``meta`` box
  or, as iPhones do, in the video track's own (FFmpeg and ffprobe read only the movie-level items, so this module
  walks the boxes itself: ``moov`` → ``trak`` … → ``meta`` → ``keys`` + ``ilst``). Its value may be an integer, a
  float or text such as ``"50.00mm"``.

A 35 mm-equivalent focal length is defined on the 43.27 mm diagonal of a 36 × 24 mm frame, so in pixels it is
``f35 / 43.27 × the picture's diagonal`` (rotation does not change the diagonal). A value that gives a field of view
outside ``FOV_RANGE_DEG`` across the picture's diagonal is taken to be wrong and ignored.

Nothing here raises on a damaged or unusual file: anything unreadable is "no focal length recorded".
"""
from __future__ import annotations

import dataclasses
import math
import re
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Iterator

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)       # 43.27 mm: what "35 mm equivalent" is defined against
# Diagonal fields of view a real lens gives: a 1,200 mm-equivalent telephoto is 2°, a fisheye's rectilinear part 170°.
FOV_RANGE_DEG = (2.0, 170.0)
QUICKTIME_FOCAL_KEY = "com.apple.quicktime.camera.focal_length.35mm_equivalent"
# Boxes that hold other boxes on the way to a ``meta`` box (QuickTime and ISO base media names).
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"udta", b"edts"}
MAX_MOOV_BYTES = 64 * 1024 ** 2          # a movie header larger than this is not read (a phone's is under 1 MB)
_EXIF_IFD, _TAG_ORIENTATION, _TAG_FOCAL_35, _TAG_FOCAL = 0x8769, 0x0112, 0xA405, 0x920A
_TAG_PLANE_XRES, _TAG_PLANE_UNIT, _TAG_PIXEL_X, _TAG_PIXEL_Y = 0xA20E, 0xA210, 0xA002, 0xA003
ASPECT_TOLERANCE = 0.02     # |log| of the ratio of the picture's aspect to the written one: 2 % (rounding, not a crop)
_MM_PER_UNIT = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}   # EXIF FocalPlaneResolutionUnit (1: none, read as inch)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif")


@dataclasses.dataclass(frozen=True)
class RecordedFocal:
    px: float          # focal length in pixels of the picture as decoded (after rotation)
    source: str        # what it came from, in words, for the sidecar and the log


def recorded_focal(path: str | Path, width: int, height: int) -> RecordedFocal | None:
    """The focal length ``path`` records for a ``width`` × ``height`` picture, or None (see the module's notes)."""
    path = Path(path)
    try:
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            return _exif_focal(path, width, height)
        with open(path, "rb") as handle:
            return _quicktime_focal(handle, width, height)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error, OverflowError):
        # (a damaged EXIF block can trip Pillow in several ways: metadata is optional, so none of them stops a job)
        return None


def px_from_35mm(f35_mm: float, width: int, height: int) -> float:
    """A 35 mm-equivalent focal length in pixels of a ``width`` × ``height`` picture (defined on the diagonal)."""
    return float(f35_mm) / FULL_FRAME_DIAGONAL_MM * math.hypot(width, height)


def _plausible(px: float, width: int, height: int) -> bool:
    if not (math.isfinite(px) and px > 0):
        return False
    fov = math.degrees(2.0 * math.atan(math.hypot(width, height) / (2.0 * px)))
    return FOV_RANGE_DEG[0] <= fov <= FOV_RANGE_DEG[1]


def _checked(px: float, width: int, height: int, source: str) -> RecordedFocal | None:
    return RecordedFocal(float(px), source) if _plausible(px, width, height) else None


# --- EXIF -------------------------------------------------------------------------------------------------------------
def _exif_focal(path: Path, width: int, height: int) -> RecordedFocal | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # Pillow warns of a corrupt EXIF block; it is then just unreadable
            with Image.open(path) as image:
                tags = image.getexif()
                exif = tags.get_ifd(_EXIF_IFD)
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError):
        return None
    f35 = _number(exif.get(_TAG_FOCAL_35))
    if f35:
        return _checked(px_from_35mm(f35, width, height), width, height,
                        f"EXIF: {f35:g} mm 35 mm-equivalent ({path.name})")
    focal, density, unit = (_number(exif.get(tag)) for tag in (_TAG_FOCAL, _TAG_PLANE_XRES, _TAG_PLANE_UNIT))
    if not (focal and density):
        return None
    px_per_mm = density / _MM_PER_UNIT.get(int(unit or 2), 25.4)
    # FocalPlaneXResolution counts pixels of the picture the camera wrote (PixelXDimension × PixelYDimension). Without
    # that size, or when the picture no longer has its shape (cropped), the density cannot be carried over: editors
    # that resize a photo often drop the size and keep the density, which would give a focal length many times
    # too long.
    written = (_number(exif.get(_TAG_PIXEL_X)), _number(exif.get(_TAG_PIXEL_Y)))
    if not all(written):
        return None
    # A quarter turn (EXIF orientations 5-8) makes the written width the decoded picture's height.
    stored = (height, width) if tags.get(_TAG_ORIENTATION) in (5, 6, 7, 8) else (width, height)
    if abs(math.log((stored[0] / stored[1]) / (written[0] / written[1]))) > ASPECT_TOLERANCE:
        return None
    return _checked(focal * px_per_mm * stored[0] / written[0], width, height,
                    f"EXIF: {focal:g} mm lens on a {px_per_mm:.0f} px/mm sensor ({path.name})")


def _number(value: object) -> float:
    """An EXIF value (int, float or IFDRational) as a float; 0 when absent or not a finite positive number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


# --- QuickTime / ISO base media ---------------------------------------------------------------------------------------
def _quicktime_focal(handle: BinaryIO, width: int, height: int) -> RecordedFocal | None:
    moov = _top_level_box(handle, b"moov")
    if moov is None:
        return None
    for where, items in _metadata_items(moov, "movie"):
        value = items.get(QUICKTIME_FOCAL_KEY)
        f35 = _millimetres(value)
        if f35:
            return _checked(px_from_35mm(f35, width, height), width, height,
                            f"QuickTime metadata: {f35:g} mm 35 mm-equivalent ({where})")
    return None


def _top_level_box(handle: BinaryIO, wanted: bytes) -> bytes | None:
    """The payload of the first top-level box of type ``wanted``, reading only the box headers before it."""
    handle.seek(0, 2)
    end = handle.tell()
    at = 0
    while at + 8 <= end:
        handle.seek(at)
        size, kind, header = _box_header(handle.read(16), end - at)
        if size is None:
            return None
        if kind == wanted:
            if size - header > MAX_MOOV_BYTES:
                return None
            handle.seek(at + header)
            return handle.read(size - header)
        at += size
    return None


def _box_header(head: bytes, room: int) -> tuple[int | None, bytes, int]:
    """(size, type, header length) of the box starting ``head``; size None when it is not a valid box."""
    if len(head) < 8:
        return None, b"", 0
    size, kind = struct.unpack(">I4s", head[:8])
    header = 8
    if size == 1:                      # 64-bit size follows the type
        if len(head) < 16:
            return None, kind, 0
        (size,) = struct.unpack(">Q", head[8:16])
        header = 16
    elif size == 0:                    # to the end of the file (or of the parent)
        size = room
    if size < header or size > room:
        return None, kind, 0
    return size, kind, header


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of the boxes laid end to end in ``data``; stops at the first malformed one."""
    at = 0
    while at + 8 <= len(data):
        size, kind, header = _box_header(data[at:at + 16], len(data) - at)
        if size is None:
            return
        yield kind, data[at + header:at + size]
        at += size


def _metadata_items(payload: bytes, where: str, depth: int = 0) -> Iterator[tuple[str, dict[str, object]]]:
    """(where, {key: value}) for every ``meta`` box under a container's payload, the movie's before its tracks'."""
    tracks = 0
    for kind, body in _boxes(payload):
        if kind == b"meta":
            yield where, _meta_items(body)
        elif kind in _CONTAINERS and depth < 6:
            if kind == b"trak":
                tracks += 1
                inside = f"track {tracks}"
            else:
                inside = where
            yield from _metadata_items(body, inside, depth + 1)


def _meta_items(body: bytes) -> dict[str, object]:
    """The ``mdta`` items of a ``meta`` box. QuickTime's ``meta`` is a plain box; ISO's is a full box (4 more bytes
    of version and flags before its children), told apart by whether a box type follows at once."""
    if len(body) >= 12 and body[4:8] not in (b"hdlr", b"keys", b"ilst"):
        body = body[4:]
    keys: list[str] = []
    values: dict[int, object] = {}
    for kind, inner in _boxes(body):
        if kind == b"keys" and len(inner) >= 8:
            (count,) = struct.unpack(">I", inner[4:8])
            at = 8
            for _ in range(count):
                if at + 8 > len(inner):
                    break
                size, _namespace = struct.unpack(">I4s", inner[at:at + 8])
                if size < 8 or at + size > len(inner):
                    break
                keys.append(inner[at + 8:at + size].decode("utf-8", "replace"))
                at += size
        elif kind == b"ilst":
            for index_bytes, item in _boxes(inner):
                (index,) = struct.unpack(">I", index_bytes)
                for data_kind, data in _boxes(item):
                    if data_kind == b"data" and len(data) >= 8:
                        values[index] = _data_value(data)
                        break
    return {keys[i - 1]: v for i, v in values.items() if 1 <= i <= len(keys) and v is not None}


def _data_value(data: bytes) -> object:
    """A ``data`` box's value: type indicator (reserved byte + 24-bit well-known type), locale (4), value."""
    (indicator,) = struct.unpack(">I", data[:4])
    kind, value = indicator & 0xFFFFFF, data[8:]
    if kind == 1:
        return value.decode("utf-8", "replace")
    if kind in (21, 22) and len(value) in (1, 2, 3, 4, 8):
        return int.from_bytes(value, "big", signed=kind == 21)
    if kind == 23 and len(value) == 4:
        return struct.unpack(">f", value)[0]
    if kind == 24 and len(value) == 8:
        return struct.unpack(">d", value)[0]
    return None


def _millimetres(value: object) -> float:
    """A focal length item's millimetres: a number, or the first number in text such as ``"50.00mm"``; else 0."""
    if isinstance(value, str):
        match = re.search(r"\d+(?:\.\d+)?", value)
        return float(match.group()) if match else 0.0
    return _number(value)
