"""ISO-BMFF (MP4/MOV) editing for the tests that write metadata into real clips (test_video_input,
test_camera_meta)."""
from __future__ import annotations

import dataclasses
import struct

# --- ISO-BMFF (MP4) editing -----------------------------------------------------------------------------------------
# An MP4 is a list of boxes. Box: size (u32 big-endian, counts the 8-byte header; 1 = a u64 "largesize" follows the
# type; 0 = to the end of the file), type (4 ASCII chars), payload. Container boxes hold only child boxes:
#   moov > trak > mdia > minf > stbl > {stsd, stts, stss, stsc, stsz, stco|co64}     (and trak > tkhd, edts > elst)
# Sizes are recomputed on encoding, so a change inside stts resizes stbl, minf, mdia, trak and moov with it.
# stco/co64 hold absolute file offsets of the media chunks inside mdat: when mdat moves (a bigger moov in front of
# it), every offset moves by the same amount.
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


@dataclasses.dataclass
class Box:
    kind: bytes
    payload: bytes = b""                  # leaf boxes: the bytes after the header
    children: list[Box] | None = None     # container boxes
    offset: int = -1                      # where the box started in the parsed file


def parse_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    end = len(data) if end is None else end
    boxes = []
    while start < end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[start + 8:start + 16])
            header = 16
        elif size == 0:
            size = end - start
        body = (start + header, start + size)
        if kind in CONTAINERS:
            boxes.append(Box(kind, children=parse_boxes(data, *body), offset=start))
        else:
            boxes.append(Box(kind, payload=data[body[0]:body[1]], offset=start))
        start += size
    return boxes


def encode_boxes(boxes: list[Box]) -> bytes:
    out = []
    for box in boxes:
        body = encode_boxes(box.children) if box.children is not None else box.payload
        if len(body) + 8 < 1 << 32:
            out.append(struct.pack(">I4s", len(body) + 8, box.kind) + body)
        else:
            out.append(struct.pack(">I4sQ", 1, box.kind, len(body) + 16) + body)
    return b"".join(out)


def find(boxes: list[Box], *kinds: bytes) -> Box:
    """The first box along a path of types, e.g. find(top, b"moov", b"trak", b"tkhd")."""
    for box in boxes:
        if box.kind == kinds[0]:
            if len(kinds) == 1:
                return box
            assert box.children is not None
            return find(box.children, *kinds[1:])
    raise KeyError(kinds)


def walk(boxes: list[Box]):
    for box in boxes:
        yield box
        if box.children is not None:
            yield from walk(box.children)


def encode_mp4(boxes: list[Box]) -> bytes:
    """Encode, moving every stco/co64 chunk offset by as much as mdat moved."""
    mdat = find(boxes, b"mdat")
    encoded = encode_boxes(boxes)
    new_offset = sum(len(encode_boxes([b])) for b in boxes[:boxes.index(mdat)])
    shift = new_offset - mdat.offset
    if shift:
        for box in walk(boxes):
            if box.kind in (b"stco", b"co64"):
                fmt = ">I" if box.kind == b"stco" else ">Q"
                step = struct.calcsize(fmt)
                (count,) = struct.unpack(">I", box.payload[4:8])
                table = [struct.unpack(fmt, box.payload[8 + i * step:8 + (i + 1) * step])[0] + shift
                         for i in range(count)]
                box.payload = box.payload[:8] + b"".join(struct.pack(fmt, v) for v in table)
        encoded = encode_boxes(boxes)  # offsets changed in value only, so the layout is the same
    return encoded


def video_trak(boxes: list[Box]) -> Box:
    traks = [b for b in find(boxes, b"moov").children or [] if b.kind == b"trak"]
    assert len(traks) == 1, "cv2 writes one video track"
    return traks[0]
