"""Video input (inference_server/video.py) on real files written into tmp_path.

Clips are written with cv2.VideoWriter (mp4v in .mp4, MJPG in .avi), then edited byte by byte where a real-world
property is needed that the writer cannot produce: rotation metadata (the ``tkhd`` matrix), variable frame rate
(the ``stts`` sample durations), damaged frames (garbage over AVI chunks), absurd headers. Every frame carries its
index as a binary code and an asymmetric red marker, so order, identity and orientation can be read back.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from inference_server import video
from inference_server.protocol import VIDEO_NOT_FOUND, VIDEO_UNREADABLE, RpcError
from mp4_boxes import encode_mp4, find, parse_boxes, video_trak

W, H = 96, 64          # frame size of the synthetic clips
CODE_BITS = 10         # the frame index, as 10 black/white 8×8 blocks along the bottom
MARKER = (16, 24)      # red block in the top-left corner, taller than wide: any turn or flip moves it


# --- synthetic frames ---------------------------------------------------------------------------------------------------
def frame_image(index: int, width: int = W, height: int = H) -> np.ndarray:
    img = np.full((height, width, 3), 90, np.uint8)  # (H, W, 3) BGR
    img[:MARKER[0], :MARKER[1]] = (0, 0, 255)
    for bit in range(CODE_BITS):
        x = 8 + 8 * bit
        img[height - 12:height - 4, x:x + 8] = 255 if index >> bit & 1 else 0
    return img


def read_code(img: np.ndarray) -> int:
    """The index drawn by frame_image (block centres, so codec blur at the block edges does not matter)."""
    height = img.shape[0]
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return sum(1 << bit for bit in range(CODE_BITS)
               if gray[height - 10:height - 6, 10 + 8 * bit:14 + 8 * bit].mean() > 128)


def marker_corner(img: np.ndarray) -> str:
    """Which corner the red marker is in: 'tl', 'tr', 'bl' or 'br'."""
    red = (img[..., 2] > 180) & (img[..., 0] < 90) & (img[..., 1] < 90)
    ys, xs = np.nonzero(red)
    assert len(ys) > 50, "no red marker found"
    return ("t" if ys.mean() < img.shape[0] / 2 else "b") + ("l" if xs.mean() < img.shape[1] / 2 else "r")


def write_clip(path: Path, count: int, fps: float = 25.0, fourcc: str = "mp4v", size: tuple[int, int] = (W, H),
               image: Callable[[int], np.ndarray] | None = None) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cv2 cannot write {fourcc} into {path.suffix}"
    for i in range(count):
        writer.write(image(i) if image else frame_image(i, *size))
    writer.release()
    assert path.exists()
    return path


def decode_all(path: Path, **kwargs) -> list[tuple[int, float, np.ndarray]]:
    return list(video.iter_frames(path, **kwargs))


# --- ISO-BMFF (MP4) editing: mp4_boxes.py -------------------------------------------------------------------------


def set_rotation(data: bytes, degrees: int) -> bytes:
    """Write a display rotation into the video track's tkhd matrix.

    tkhd payload: version (1), flags (3); v0: creation (4), modification (4), track_ID (4), reserved (4),
    duration (4) — v1 has 8-byte times and duration; then reserved (8), layer (2), alternate_group (2), volume (2),
    reserved (2), matrix (9 × s32: a b u / c d v / x y w, with a b c d x y in 16.16 and u v w in 2.30 fixed point),
    width (16.16), height (16.16). A clockwise turn by θ for display is a=cos θ, b=sin θ, c=−sin θ, d=cos θ (the
    matrix a phone writes for portrait video is 0 1 / −1 0, θ = 90°), with x, y moving the turned picture back into
    view.
    """
    boxes = parse_boxes(data)
    tkhd = find([video_trak(boxes)], b"trak", b"tkhd")
    at = 4 + (20 if tkhd.payload[0] == 0 else 32) + 16
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    w, h = (struct.unpack(">I", tkhd.payload[at + 36 + 4 * i:at + 40 + 4 * i])[0] >> 16 for i in range(2))
    x, y = {0: (0, 0), 90: (h, 0), 180: (w, h), 270: (0, w)}[degrees]
    one = 1 << 16
    matrix = struct.pack(">9i", cos * one, sin * one, 0, -sin * one, cos * one, 0, x * one, y * one, 1 << 30)
    tkhd.payload = tkhd.payload[:at] + matrix + tkhd.payload[at + 36:]
    return encode_mp4(boxes)


def set_sample_durations(data: bytes, durations: list[int]) -> bytes:
    """Replace stts with one entry per sample. stts payload: version/flags (4), entry_count (4), then entries of
    sample_count (4), sample_delta (4) in mdhd timescale units. The new box is bigger, so every box around it is."""
    boxes = parse_boxes(data)
    stts = find([video_trak(boxes)], b"trak", b"mdia", b"minf", b"stbl", b"stts")
    stts.payload = stts.payload[:4] + struct.pack(">I", len(durations)) + \
        b"".join(struct.pack(">II", 1, d) for d in durations)
    return encode_mp4(boxes)


def sample_timing(data: bytes) -> tuple[int, list[int]]:
    """(mdhd timescale, per-sample durations from stts). mdhd v0: version/flags (4), creation (4),
    modification (4), timescale (4), duration (4); v1: times and duration 8 bytes each."""
    boxes = parse_boxes(data)
    mdia = find([video_trak(boxes)], b"trak", b"mdia")
    mdhd = find(mdia.children or [], b"mdhd").payload
    (timescale,) = struct.unpack(">I", mdhd[12:16] if mdhd[0] == 0 else mdhd[20:24])
    stts = find(mdia.children or [], b"minf", b"stbl", b"stts").payload
    (entries,) = struct.unpack(">I", stts[4:8])
    durations: list[int] = []
    for i in range(entries):
        count, delta = struct.unpack(">II", stts[8 + 8 * i:16 + 8 * i])
        durations += [delta] * count
    return timescale, durations


def moov_first(data: bytes) -> bytes:
    """The "fast start" layout (moov before mdat), as streaming encoders write it."""
    boxes = parse_boxes(data)
    moov = find(boxes, b"moov")
    boxes.remove(moov)
    boxes.insert(boxes.index(find(boxes, b"mdat")), moov)
    return encode_mp4(boxes)


# --- AVI (RIFF) editing -----------------------------------------------------------------------------------------------
# RIFF chunks: fourcc (4), size (u32 little-endian, without the header), data, a pad byte to even size.
# 'avih' (main header) data: usec/frame, max bytes/s, padding, flags, total frames (offset 16), ...
# 'strh' (stream header) data: type 'vids', handler, flags, priority, language, initial frames, scale, rate,
# start, length in frames (offset 32), ...   Frames live in LIST 'movi' as '00dc' chunks (one JPEG each).
def avi_frame_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset of the JPEG bytes, their length) for each '00dc' chunk, in file order."""
    chunks, at = [], data.find(b"movi")
    while (at := data.find(b"00dc", at + 1)) >= 0:
        (size,) = struct.unpack("<I", data[at + 4:at + 8])
        if data[at + 8:at + 10] == b"\xff\xd8":
            chunks.append((at + 8, size))
    return chunks


def garbage(length: int, seed: int) -> bytes:
    """Random bytes without 0xFF, so no JPEG marker (and no SOI) can appear in them by chance."""
    return np.random.default_rng(seed).integers(0, 255, length, dtype=np.uint8).tobytes()


def set_avi_frame_count(data: bytes, count: int) -> bytes:
    out = bytearray(data)
    avih, strh = data.find(b"avih") + 8, data.find(b"strh") + 8
    out[avih + 16:avih + 20] = struct.pack("<I", count)
    out[strh + 32:strh + 36] = struct.pack("<I", count)
    return bytes(out)


# --- image files ------------------------------------------------------------------------------------------------------
def exif_orientation_block(orientation: int) -> bytes:
    """A minimal little-endian TIFF block: header (II, 42, IFD0 at 8), IFD0 with one entry (0x0112 Orientation,
    SHORT, count 1, value), next-IFD offset 0."""
    return b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0" * 4


def with_exif(encoded: bytes, orientation: int) -> bytes:
    """JPEG: an APP1 "Exif" segment right after SOI. PNG: an eXIf chunk right after IHDR (with its CRC)."""
    tiff = exif_orientation_block(orientation)
    if encoded[:2] == b"\xff\xd8":
        body = b"Exif\0\0" + tiff
        return encoded[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + encoded[2:]
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    return encoded[:33] + chunk + encoded[33:]  # 8-byte signature + 25-byte IHDR chunk


def write_image(path: Path, img: np.ndarray) -> Path:
    ok, data = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def sequence(folder: Path, count: int, suffix: str = ".png", name: str = "frame_{}") -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(count):
        write_image(folder / (name.format(i) + suffix), frame_image(i))
    return folder


def raises_naming(path: Path, code: int, call: Callable[[], object]) -> RpcError:
    with pytest.raises(RpcError) as info:
        call()
    err = info.value
    assert err.code == code, err.message
    assert str(path) in err.message
    assert err.fix
    return err


# === video files: basics, frame range ===============================================================================
def test_probe_reads_size_rate_and_count(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", 20, fps=25.0)
    video.check_input(clip)
    assert not video.is_image_sequence(clip)
    info = video.probe(clip)
    assert (info.width, info.height, info.frame_count, info.rotation, info.kind) == (W, H, 20, 0, "video")
    assert info.fps == pytest.approx(25.0)


def test_every_frame_comes_in_order_with_its_timestamp(tmp_path):
    frames = decode_all(write_clip(tmp_path / "clip.mp4", 20, fps=25.0))
    assert [i for i, _, _ in frames] == list(range(20))
    assert [read_code(img) for _, _, img in frames] == list(range(20))
    assert [ts for _, ts, _ in frames] == pytest.approx([i / 25.0 for i in range(20)], abs=1e-6)
    assert all(img.shape == (H, W, 3) and img.dtype == np.uint8 for _, _, img in frames)


@pytest.mark.parametrize("start, end, expected", [
    (5, 12, range(5, 12)),
    (15, None, range(15, 20)),
    (0, 3, range(0, 3)),
    (17, 500, range(17, 20)),
    (20, None, range(0)),
    (8, 8, range(0)),
])
def test_frame_range(tmp_path, start, end, expected):
    clip = write_clip(tmp_path / "clip.mp4", 20, fps=25.0)
    stats = video.DecodeStats()
    frames = list(video.iter_frames(clip, start, end, stats=stats))  # start/end stay positional
    assert [i for i, _, _ in frames] == list(expected)
    assert [read_code(img) for _, _, img in frames] == list(expected)
    assert [ts for _, ts, _ in frames] == pytest.approx([i / 25.0 for i in expected], abs=1e-6)
    assert (stats.frames_read, stats.frames_skipped, stats.ended_early) == (len(expected), 0, False)


def test_a_long_clip_streams_in_bounded_memory(tmp_path):
    """2000 frames of 240×160 would be 230 MB if kept; streaming must hold a few at a time."""
    clip = write_clip(tmp_path / "long.avi", 2000, fourcc="MJPG", size=(240, 160),
                      image=lambda i: cv2.resize(frame_image(i % 1024), (240, 160), interpolation=cv2.INTER_NEAREST))
    frame_bytes = 240 * 160 * 3
    count, rss_start = 0, 0
    tracemalloc.start()
    try:
        for index, _ts, _img in video.iter_frames(clip):
            count += 1
            if index == 100:  # past start-up: decoder buffers and caches are allocated by now
                tracemalloc.reset_peak()
                rss_start = _rss_bytes()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    growth = _rss_bytes() - rss_start
    assert count == 2000
    assert peak < 10 * frame_bytes, f"Python-side peak {peak / 1e6:.1f} MB while streaming"
    assert growth < 48 * 1024 ** 2, f"resident memory grew by {growth / 1e6:.0f} MB over 1900 frames"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pytest.skip("resident memory is read from /proc (Linux)")


# === rotation metadata ===============================================================================================
@pytest.mark.parametrize("degrees, corner", [(90, "tr"), (180, "br"), (270, "bl")])
def test_rotation_metadata_turns_the_frames_upright(tmp_path, degrees, corner):
    plain = write_clip(tmp_path / "plain.mp4", 6)
    turned = tmp_path / f"turned_{degrees}.mp4"
    turned.write_bytes(set_rotation(plain.read_bytes(), degrees))

    info = video.probe(turned)
    assert info.rotation == degrees
    assert (info.width, info.height) == ((H, W) if degrees in (90, 270) else (W, H))

    reference = decode_all(plain)
    frames = decode_all(turned)
    assert len(frames) == len(reference) == 6
    for (i, ts, img), (j, ts_ref, ref) in zip(frames, reference):
        assert (i, ts) == (j, ts_ref)
        assert img.shape[:2] == (info.height, info.width)
        # The metadata means "turn clockwise by `degrees` to display"; np.rot90 turns anticlockwise for k > 0.
        assert np.array_equal(img, np.rot90(ref, k=-degrees // 90))
        assert marker_corner(img) == corner


def test_no_rotation_when_the_matrix_is_identity(tmp_path):
    plain = write_clip(tmp_path / "plain.mp4", 3)
    same = tmp_path / "same.mp4"
    same.write_bytes(set_rotation(plain.read_bytes(), 0))
    assert video.probe(same).rotation == 0
    assert all(marker_corner(img) == "tl" for _, _, img in decode_all(same))


# === variable frame rate ============================================================================================
# 10, 70, 30, 50, 40 ms at the writer's timescale of 12800/s; each group of five lasts as long as five 40 ms frames,
# so the clip's total duration (and its edit list) stays as the writer made it.
VFR_PATTERN = [128, 896, 384, 640, 512]


@pytest.mark.parametrize("layout", ["moov_last", "moov_first"])
def test_variable_frame_rate_timestamps_come_from_the_container(tmp_path, layout):
    original = write_clip(tmp_path / "cfr.mp4", 20, fps=25.0).read_bytes()
    timescale, durations = sample_timing(original)
    assert (timescale, durations) == (12800, [512] * 20), "the writer's timing changed; adjust VFR_PATTERN"
    vfr = set_sample_durations(original, VFR_PATTERN * 4)
    if layout == "moov_first":
        vfr = moov_first(vfr)
    clip = tmp_path / f"vfr_{layout}.mp4"
    clip.write_bytes(vfr)
    assert sample_timing(vfr) == (12800, VFR_PATTERN * 4)

    frames = decode_all(clip)
    expected = np.concatenate([[0], np.cumsum(VFR_PATTERN * 4)[:-1]]) / timescale
    assert [read_code(img) for _, _, img in frames] == list(range(20))  # chunk offsets still point at the frames
    assert [ts for _, ts, _ in frames] == pytest.approx(expected.tolist(), abs=1e-3)
    assert video.probe(clip).frame_count == 20


# === damaged frames ===================================================================================================
def test_damaged_frames_are_skipped_and_counted(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 60, fourcc="MJPG")
    data = bytearray(clip.read_bytes())
    chunks = avi_frame_chunks(bytes(data))
    assert len(chunks) == 60
    for k in range(20, 25):  # five frames in the middle of the file: their JPEG bytes become garbage
        at, size = chunks[k]
        data[at:at + size] = garbage(size, seed=k)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))

    stats = video.DecodeStats()
    frames = decode_all(damaged, stats=stats)
    good = [i for i in range(60) if not 20 <= i < 25]
    assert [i for i, _, _ in frames] == good
    assert [read_code(img) for _, _, img in frames] == good
    assert [ts for _, ts, _ in frames] == pytest.approx([i / 25.0 for i in good], abs=1e-6)
    assert (stats.frames_read, stats.frames_skipped, stats.skipped_indices) == (55, 5, list(range(20, 25)))
    assert (stats.frames_declared, stats.ended_early) == (60, False)

    stats = video.DecodeStats()
    assert [i for i, _, _ in video.iter_frames(damaged, 22, 30, stats=stats)] == list(range(25, 30))
    assert stats.skipped_indices == [22, 23, 24]


def test_garbage_across_container_bytes_does_not_end_the_stream(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 60, fourcc="MJPG")
    data = bytearray(clip.read_bytes())
    chunks = avi_frame_chunks(bytes(data))
    begin, end = chunks[20][0] + 30, chunks[25][0] + 30  # over chunk headers too
    data[begin:end] = garbage(end - begin, seed=1)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))

    stats = video.DecodeStats()
    frames = decode_all(damaged, stats=stats)
    codes = [read_code(img) for _, _, img in frames]
    assert codes[:20] == list(range(20))
    assert codes[-1] == 59, "decoding stopped at the damage"
    assert stats.frames_skipped >= 1 and stats.frames_read == len(frames) < 60


def test_a_long_run_of_failures_is_taken_as_the_end(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 80, fourcc="MJPG")
    data = bytearray(clip.read_bytes())
    for k, (at, size) in enumerate(avi_frame_chunks(bytes(data))):
        if 10 <= k < 10 + video.MAX_CONSECUTIVE_FAILURES + 5:
            data[at:at + size] = garbage(size, seed=k)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    stats = video.DecodeStats()
    assert [i for i, _, _ in decode_all(damaged, stats=stats)] == list(range(10))
    assert stats.ended_early and stats.frames_skipped == 0


def test_damaged_last_frames_are_counted_too(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 30, fourcc="MJPG")
    data = bytearray(clip.read_bytes())
    for k, (at, size) in enumerate(avi_frame_chunks(bytes(data))[-2:]):
        data[at:at + size] = garbage(size, seed=k)
    clip.write_bytes(bytes(data))
    stats = video.DecodeStats()
    assert [i for i, _, _ in decode_all(clip, stats=stats)] == list(range(28))
    assert (stats.skipped_indices, stats.ended_early) == ([28, 29], False)


def test_a_damaged_first_frame_does_not_fail_the_probe(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 10, fourcc="MJPG")
    data = bytearray(clip.read_bytes())
    at, size = avi_frame_chunks(bytes(data))[0]
    data[at:at + size] = garbage(size, seed=0)
    clip.write_bytes(bytes(data))
    assert (video.probe(clip).width, video.probe(clip).height) == (W, H)
    stats = video.DecodeStats()
    assert [i for i, _, _ in decode_all(clip, stats=stats)] == list(range(1, 10))
    assert stats.skipped_indices == [0]


# === image sequences ==================================================================================================
def test_a_folder_of_images_in_natural_order(tmp_path):
    folder = tmp_path / "shot"
    folder.mkdir()
    for i in np.random.default_rng(0).permutation(12):  # written out of order: the file system order is no help
        write_image(folder / f"frame_{i}.png", frame_image(int(i)))
    (folder / "notes.txt").write_text("take 3")
    (folder / "._frame_3.png").write_bytes(b"\0\5\26\7 AppleDouble junk")  # macOS metadata: hidden, ignored
    (folder / "frames.png.bak").write_bytes(b"old")

    video.check_input(folder)
    assert video.is_image_sequence(folder)
    info = video.probe(folder)
    assert (info.width, info.height, info.frame_count, info.rotation, info.kind) == (W, H, 12, 0, "images")
    assert info.fps == video.DEFAULT_SEQUENCE_FPS == 30.0
    stats = video.DecodeStats()
    frames = decode_all(folder, stats=stats)
    assert [i for i, _, _ in frames] == list(range(12))
    assert [read_code(img) for _, _, img in frames] == list(range(12))  # frame_2 before frame_10
    assert [ts for _, ts, _ in frames] == pytest.approx([i / 30.0 for i in range(12)])
    assert (stats.frames_read, stats.frames_skipped) == (12, 0)


def test_an_image_sequence_at_a_given_rate_and_range(tmp_path):
    folder = sequence(tmp_path / "shot", 10, ".jpg")
    assert video.probe(folder, fps=24).fps == 24.0
    frames = list(video.iter_frames(folder, 3, 7, fps=24))
    assert [(i, read_code(img)) for i, _, img in frames] == [(i, i) for i in range(3, 7)]
    assert [ts for _, ts, _ in frames] == pytest.approx([i / 24 for i in range(3, 7)])
    with pytest.raises(RpcError) as info:
        video.probe(folder, fps=0)
    assert str(folder) in info.value.message


def test_a_printf_pattern(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for n in (3, 1, 12, 2):
        write_image(folder / f"img_{n:04d}.png", frame_image(n))
    write_image(folder / "img_7.png", frame_image(7))         # not what %04d prints
    write_image(folder / "img_0005.jpg", frame_image(5))      # another suffix
    write_image(folder / "other_0004.png", frame_image(4))    # another prefix
    pattern = folder / "img_%04d.png"
    video.check_input(pattern)
    assert video.is_image_sequence(pattern) and not video.is_image_sequence(folder / "img_%04d.mp4")
    info = video.probe(pattern)
    assert (info.frame_count, info.kind, info.width) == (4, "images", W)
    frames = decode_all(pattern)
    assert [(i, read_code(img)) for i, _, img in frames] == [(0, 1), (1, 2), (2, 3), (3, 12)]
    raises_naming(folder / "cut_%03d.png", VIDEO_NOT_FOUND, lambda: video.probe(folder / "cut_%03d.png"))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_of_images_is_honoured(tmp_path, suffix):
    """The camera stored the picture turned a quarter anticlockwise; EXIF orientation 6 says "turn it clockwise"."""
    folder = tmp_path / "phone"
    folder.mkdir()
    for i in range(4):
        ok, data = cv2.imencode(suffix, np.ascontiguousarray(np.rot90(frame_image(i), k=1)))  # (W, H) stored
        (folder / f"IMG_{i}{suffix}").write_bytes(with_exif(data.tobytes(), 6))
    # One picture stored upright (orientation 1) is the same size once turned, so it is no odd one out.
    write_image(folder / f"IMG_4{suffix}", frame_image(4))

    info = video.probe(folder)
    assert (info.width, info.height) == (W, H)
    frames = decode_all(folder)
    assert [read_code(img) for _, _, img in frames] == list(range(5))
    assert all(img.shape == (H, W, 3) and marker_corner(img) == "tl" for _, _, img in frames)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_lone_photo_is_one_upright_frame(tmp_path, suffix):
    """A photo given alone (not a folder) is a sequence of one, its EXIF orientation applied like a folder's."""
    ok, data = cv2.imencode(suffix, np.ascontiguousarray(np.rot90(frame_image(7), k=1)))   # (W, H) stored
    photo = tmp_path / f"IMG_0001{suffix}"
    photo.write_bytes(with_exif(data.tobytes(), 6))
    video.check_input(photo)
    info = video.probe(photo)
    assert (info.width, info.height, info.frame_count, info.kind) == (W, H, 1, "images")
    (frame,) = decode_all(photo)
    assert frame[0] == 0 and frame[2].shape == (H, W, 3) and marker_corner(frame[2]) == "tl"
    assert read_code(frame[2]) == 7
    assert video.content_hash(photo) != video.content_hash(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_mixed_image_sizes_name_the_first_odd_file(tmp_path, suffix):
    folder = sequence(tmp_path / "shot", 6, suffix)
    write_image(folder / f"frame_3{suffix}", frame_image(3, 80, 64))
    write_image(folder / f"frame_5{suffix}", frame_image(5, 64, 80))
    # PNG and JPEG sizes are read from the headers, so probe fails before any decoding; other formats fail when
    # the odd image is decoded, after the good frames before it.
    calls = [lambda: decode_all(folder)] + ([lambda: video.probe(folder)] if suffix != ".bmp" else [])
    for call in calls:
        err = raises_naming(folder, VIDEO_UNREADABLE, call)
        assert f"frame_3{suffix}" in err.message and "80×64" in err.message and f"{W}×{H}" in err.message
        assert err.data["odd_file"] == str(folder / f"frame_3{suffix}")


def test_an_unreadable_image_is_skipped_and_counted(tmp_path):
    folder = sequence(tmp_path / "shot", 8)
    (folder / "frame_2.png").write_bytes(garbage(500, seed=2))
    cut = (folder / "frame_5.png").read_bytes()
    (folder / "frame_5.png").write_bytes(cut[:len(cut) // 2])  # truncated: the header is fine, the pixels are not
    stats = video.DecodeStats()
    frames = decode_all(folder, stats=stats)
    assert [(i, read_code(img)) for i, _, img in frames] == [(i, i) for i in (0, 1, 3, 4, 6, 7)]
    assert (stats.frames_read, stats.frames_skipped, stats.skipped_indices) == (6, 2, [2, 5])
    assert video.probe(folder).frame_count == 8


# === inputs refused, naming the path =================================================================================
def _zero_frame_avi(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "zero.avi", 0, fourcc="MJPG")


def _no_video_track_mp4(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "no_track.mp4", 0)  # mp4v with no frames: a moov without a trak


def _huge_frames(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "wide.avi", 2, fourcc="MJPG", size=(video.MAX_FRAME_SIDE + 8, 16))


def _too_many_frames(tmp_path: Path) -> Path:
    path = write_clip(tmp_path / "long.avi", 5, fourcc="MJPG")
    path.write_bytes(set_avi_frame_count(path.read_bytes(), video.MAX_FRAME_COUNT + 1))
    return path


def _over_the_size_limit(tmp_path: Path) -> Path:
    path = write_clip(tmp_path / "huge.mp4", 3)
    with open(path, "r+b") as handle:  # a sparse file: no disk space is used
        handle.truncate(video.MAX_FILE_BYTES + 1)
    return path


def _huge_image(tmp_path: Path) -> Path:
    folder = sequence(tmp_path / "shot", 2)
    write_image(folder / "frame_2.png", np.zeros((8, video.MAX_FRAME_SIDE + 1, 3), np.uint8))
    return folder


def _write(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path
    return make


def _folder(*files: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        folder = tmp_path / "shot"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("not an image")
        return folder
    return make


@pytest.mark.parametrize("make, code, words, cheap", [
    (lambda tmp: tmp / "no_such_clip.mp4", VIDEO_NOT_FOUND, "not found", True),
    (_write("empty.mp4", b""), VIDEO_UNREADABLE, "empty", True),
    (_write("notes.mp4", b"These are my shot notes, not a video.\nTake 3 was the best.\n"), VIDEO_UNREADABLE,
     "text file", True),
    (_write("notes_fr.mp4", ("x" * 4095 + "été, prise 3\n").encode()), VIDEO_UNREADABLE, "text file", True),
    (_write("junk.mp4", bytes(range(256)) * 64), VIDEO_UNREADABLE, "cannot open", False),
    (_zero_frame_avi, VIDEO_UNREADABLE, "no frames", False),
    (_no_video_track_mp4, VIDEO_UNREADABLE, "cannot open", False),
    (_folder(), VIDEO_UNREADABLE, "no images", True),
    (_folder("readme.txt", "clip.mov"), VIDEO_UNREADABLE, "no images", True),
    (lambda tmp: tmp / "img_%04d.png", VIDEO_NOT_FOUND, "no file matches", True),
    (_huge_frames, VIDEO_UNREADABLE, f"{video.MAX_FRAME_SIDE} px", False),
    (_too_many_frames, VIDEO_UNREADABLE, f"{video.MAX_FRAME_COUNT + 1} frames", False),
    (_over_the_size_limit, VIDEO_UNREADABLE, "GiB limit", True),
    (_huge_image, VIDEO_UNREADABLE, "frame_2.png", False),
], ids=["missing", "empty", "text", "text-utf8", "junk", "zero-frames", "no-video-track", "empty-folder",
        "no-images", "no-pattern-match", "huge-frames", "too-many-frames", "file-too-big", "huge-image"])
def test_bad_inputs_fail_fast_naming_the_path(tmp_path, make, code, words, cheap):
    path = make(tmp_path)
    calls = [lambda: video.probe(path), lambda: decode_all(path)]
    if cheap:  # found without decoding, so check_input (the engine's answer before a job starts) finds it too
        calls.append(lambda: video.check_input(path))
    else:
        video.check_input(path)
    for call in calls:
        err = raises_naming(path, code, call)
        assert words in err.message
        assert err.data["path"] == str(path)


def test_the_zero_frame_clip_really_opens(tmp_path):
    """Guards the zero-frame case above: the file must be a video OpenCV opens, with nothing in it."""
    cap = cv2.VideoCapture(str(_zero_frame_avi(tmp_path)), cv2.CAP_FFMPEG)
    try:
        assert cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 0 and not cap.grab()
    finally:
        cap.release()


# === content hash =====================================================================================================
def test_content_hash_of_a_file_is_the_sha256_of_its_bytes(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", 3)
    assert video.content_hash(clip) == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert video.content_hash(clip, chunk=7) == video.content_hash(clip)


def test_content_hash_of_a_sequence_follows_its_images(tmp_path):
    folder = sequence(tmp_path / "shot", 4)
    first = video.content_hash(folder)
    assert video.content_hash(folder) == first and len(first) == 64

    (folder / "notes.txt").write_text("not part of the sequence")
    assert video.content_hash(folder) == first

    (folder / "frame_3.png").rename(folder / "frame_9.png")
    assert video.content_hash(folder) != first
    (folder / "frame_9.png").rename(folder / "frame_3.png")
    assert video.content_hash(folder) == first

    copy = sequence(tmp_path / "copy", 4)
    assert video.content_hash(copy) == first  # same names and bytes in another folder: the same footage

    write_image(folder / "frame_1.png", frame_image(7))
    assert video.content_hash(folder) != first
    (folder / "frame_1.png").write_bytes((copy / "frame_1.png").read_bytes())
    assert video.content_hash(folder) == first
