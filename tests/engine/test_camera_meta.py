"""The focal length a file records (issue 5: "a perspective camera with the focal length from the file's metadata,
the user, or an estimate"): EXIF in photos and image sequences, QuickTime ``mdta`` items in videos, written into
real files here, read back by `video.probe`, and used by a real capture."""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from inference_server.camera_meta import QUICKTIME_FOCAL_KEY, px_from_35mm, recorded_focal
from inference_server.video import iter_frames, probe
from mp4_boxes import Box, encode_mp4, find, parse_boxes, video_trak

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "sample_wave.mp4"
FRAMES = 16


# --- files with metadata ----------------------------------------------------------------------------------------------
def _jpeg(path: Path, size: tuple[int, int], exif_tags: dict[int, object], orientation: int | None = None) -> Path:
    from PIL import Image

    image = Image.new("RGB", size, (90, 120, 150))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif.get_ifd(0x8769).update(exif_tags)
    image.save(path, "JPEG", exif=exif)
    return path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _meta_box(items: dict[str, tuple[int, bytes]], iso: bool = False) -> bytes:
    """A ``meta`` box of ``mdta`` items: key → (well-known type, value bytes). ``iso``: the full-box form."""
    keys = b"".join(struct.pack(">I4s", 8 + len(k.encode()), b"mdta") + k.encode() for k in items)
    hdlr = _box(b"hdlr", b"\0" * 8 + b"mdta" + b"\0" * 13)
    ilst = b"".join(_box(struct.pack(">I", i + 1), _box(b"data", struct.pack(">II", kind, 0) + value))
                    for i, (kind, value) in enumerate(items.values()))
    body = hdlr + _box(b"keys", struct.pack(">II", 0, len(items)) + keys) + _box(b"ilst", ilst)
    return _box(b"meta", (b"\0\0\0\0" if iso else b"") + body)


def _with_meta(src: Path, dst: Path, meta: bytes, in_track: bool) -> Path:
    """``src`` with the ``meta`` box added to the movie or to its (video) track; the chunk offsets follow."""
    boxes = parse_boxes(src.read_bytes())
    parent = video_trak(boxes) if in_track else find(boxes, b"moov")
    parent.children.append(Box(b"meta", payload=meta[8:]))
    dst.write_bytes(encode_mp4(boxes))
    return dst


def _focal_item(value) -> dict[str, tuple[int, bytes]]:
    if isinstance(value, str):
        return {"com.apple.quicktime.make": (1, b"Apple"), QUICKTIME_FOCAL_KEY: (1, value.encode())}
    if isinstance(value, float):
        return {"com.apple.quicktime.make": (1, b"Apple"), QUICKTIME_FOCAL_KEY: (23, struct.pack(">f", value))}
    return {"com.apple.quicktime.make": (1, b"Apple"), QUICKTIME_FOCAL_KEY: (21, struct.pack(">h", value))}


# --- photos and image sequences ---------------------------------------------------------------------------------------
def test_35mm_equivalent_is_on_the_diagonal():
    # A 43.27 mm-equivalent lens sees the diagonal at exactly 2·atan(1/2) = 53.1°: f = the diagonal in pixels.
    assert px_from_35mm(math.hypot(36, 24), 1920, 1080) == pytest.approx(math.hypot(1920, 1080))


def test_a_photos_35mm_equivalent(tmp_path):
    photo = _jpeg(tmp_path / "phone.jpg", (640, 480), {0xA405: 26})
    info = probe(photo)
    assert info.focal_px == pytest.approx(26 / 43.2666 * 800, rel=1e-4)
    assert "26 mm 35 mm-equivalent" in info.focal_source and "phone.jpg" in info.focal_source


def test_an_image_sequence_reads_its_first_image(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(3):
        _jpeg(folder / f"f_{i:03d}.jpg", (320, 240), {0xA405: 50})
    info = probe(folder)
    assert info.kind == "images" and info.focal_px == pytest.approx(50 / 43.2666 * 400, rel=1e-4)
    assert "f_000.jpg" in info.focal_source


def test_lens_and_sensor_density_scaled_to_the_picture(tmp_path):
    # 8 mm on 250 px/mm, written at 4000×3000 and saved at 800×600: 8 · 250 · 800 / 4000 = 400 px.
    tags = {0x920A: 8.0, 0xA20E: 2500.0, 0xA210: 3, 0xA002: 4000, 0xA003: 3000}
    assert probe(_jpeg(tmp_path / "camera.jpg", (800, 600), tags)).focal_px == pytest.approx(400)
    # Turned a quarter by its EXIF orientation: decoded 600×800, the written width is now the height.
    turned = probe(_jpeg(tmp_path / "turned.jpg", (800, 600), tags, orientation=6))
    assert (turned.width, turned.height) == (600, 800) and turned.focal_px == pytest.approx(400)


@pytest.mark.parametrize("tags, why", [
    ({0x920A: 88.0, 0xA20E: 2413.3, 0xA210: 3}, "resized by an editor that dropped the written size"),
    ({0x920A: 8.0, 0xA20E: 2500.0, 0xA210: 3, 0xA002: 4000, 0xA003: 2250}, "cropped to another shape"),
    ({0xA405: 0.5}, "a field of view over 170 degrees"),
    ({0xA405: 5000}, "a field of view under 2 degrees"),
    ({0x920A: 50.0}, "a lens without the sensor's density"),
])
def test_unusable_records_are_ignored(tmp_path, tags, why):
    photo = _jpeg(tmp_path / "p.jpg", (800, 600), tags)
    assert probe(photo).focal_px is None, why
    assert probe(photo).focal_source == ""


def test_a_photo_with_a_damaged_exif_block(tmp_path, recwarn):
    import cv2

    ok, data = cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))
    exif = b"Exif\0\0II*\0" + struct.pack("<IH", 8, 0xFFFF) + b"\1" * 30     # 65535 entries claimed, 2 there
    photo = tmp_path / "damaged.jpg"
    photo.write_bytes(data.tobytes()[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data.tobytes()[2:])
    info = probe(photo)
    assert (info.width, info.height, info.focal_px, info.focal_source) == (60, 40, None, "")
    assert not [w for w in recwarn if "EXIF" in str(w.message)]


def test_a_photo_without_exif(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "plain.png")
    assert probe(tmp_path / "plain.png").focal_px is None


# --- videos -----------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
@pytest.mark.parametrize("value, in_track, iso, f35", [
    (26, True, False, 26.0),              # an iPhone: an integer, in the video track's own meta box
    ("50.00mm", False, False, 50.0),      # text with its unit, at the movie level
    (35.5, False, True, 35.5),            # a float in an ISO (full-box) meta
])
def test_a_videos_quicktime_focal(tmp_path, value, in_track, iso, f35):
    clip = _with_meta(SAMPLE, tmp_path / "phone.mov", _meta_box(_focal_item(value), iso=iso), in_track)
    info = probe(clip)
    assert info.focal_px == pytest.approx(px_from_35mm(f35, info.width, info.height), rel=1e-6)
    assert ("track 1" if in_track else "movie") in info.focal_source
    # The file is still a good video: every frame decodes.
    assert sum(1 for _ in iter_frames(clip)) == probe(SAMPLE).frame_count


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
def test_videos_without_the_item_or_with_broken_boxes(tmp_path):
    assert probe(SAMPLE).focal_px is None
    other = _with_meta(SAMPLE, tmp_path / "other.mov", _meta_box({"com.apple.quicktime.make": (1, b"Apple")}), True)
    assert probe(other).focal_px is None
    # A meta box whose keys claim more entries and longer names than it holds: nothing read, nothing raised.
    broken = _meta_box(_focal_item(26)).replace(struct.pack(">II", 0, 2), struct.pack(">II", 0, 99))
    broken = broken.replace(struct.pack(">I4s", 8 + len(QUICKTIME_FOCAL_KEY), b"mdta"),
                            struct.pack(">I4s", 10_000, b"mdta"))
    assert recorded_focal(_with_meta(SAMPLE, tmp_path / "broken.mov", broken, False), 640, 360) is None
    truncated = tmp_path / "truncated.mov"
    truncated.write_bytes(SAMPLE.read_bytes()[:-200])
    assert recorded_focal(truncated, 640, 360) is None


# --- used by the capture ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing")
def test_capture_uses_the_recorded_focal_and_the_users_wins(tmp_path):
    from inference_server.pipeline import CaptureOptions, run_capture
    from inference_server.take import read_take

    info = probe(SAMPLE)
    default_f = float(max(info.width, info.height))
    f35 = 2.0 * default_f / math.hypot(info.width, info.height) * 43.2666     # twice the default focal length
    clip = _with_meta(SAMPLE, tmp_path / "clip.mov", _meta_box(_focal_item(f"{f35:.4f}mm")), True)

    def capture(video: Path, out: str, **options):
        result = run_capture(video, tmp_path / out, CaptureOptions(frame_end=FRAMES, **options), lambda *a: None,
                             lambda: False)
        return read_take(result.take_path), json.loads(result.sidecar_path.read_text())

    base, _ = capture(SAMPLE, "plain")
    take, meta = capture(clip, "recorded")
    assert take["K"][0, 0] == pytest.approx(2.0 * default_f, rel=1e-4)
    assert meta["source"]["recorded_focal_px"] == pytest.approx(2.0 * default_f, rel=1e-4)
    assert "from the file (QuickTime metadata" in meta["camera"]
    # The known answer: the same picture through a lens twice as long is of a body twice as far away.
    valid = base["valid"] & take["valid"]
    depth = np.median(take["root_position_camera"][valid, 2] / base["root_position_camera"][valid, 2])
    assert abs(depth - 2.0) < 0.1, depth
    given, meta = capture(clip, "given", focal_px=777.0)
    assert given["K"][0, 0] == pytest.approx(777.0) and "777 px given" in meta["camera"]
