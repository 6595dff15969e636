"""Pictures for checking a Take against its footage: the fitted skeleton drawn over the frames. No bpy.

``python -m inference_server overlay TAKE [--out sheet.png] [--video out.mp4]``: a contact sheet of evenly spaced
frames (and optionally a full overlay video), fitted bones in colour (subject's left = blue, right = orange), the
detector's landmarks as small white dots.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .take import Take, read_take
from .video import iter_frames

LEFT_BGR = (255, 140, 40)
RIGHT_BGR = (40, 140, 255)
CENTRE_BGR = (90, 220, 90)


def project(take: Take, points_world: np.ndarray, frame: int) -> np.ndarray:
    """(N,3) world points of frame index `frame` (Take row) → (N,2) pixels."""
    R, t, K = take["R_world2cam"][frame], take["t_world2cam"][frame], take["K"]
    cam = points_world @ R.T + t
    uv = cam @ K.T
    return uv[:, :2] / np.maximum(uv[:, 2:3], 1e-6)


def draw(take: Take, row: int, image: np.ndarray) -> np.ndarray:
    import cv2

    img = image.copy()
    names = take.bone_names
    parents = take["bone_parents"]
    heads = project(take, take["joints_world"][row].astype(np.float64), row)
    scale = max(1, round(max(img.shape[:2]) / 640))
    for side, hand in enumerate(take["hand_landmarks_2d"][row]):
        for x, y, _ in hand:
            if np.isfinite(x):
                cv2.circle(img, (int(x), int(y)), scale, (255, 255, 255), -1, cv2.LINE_AA)
    for x, y, v in take["pose_landmarks_2d"][row]:
        if np.isfinite(x) and v > 0.3:
            cv2.circle(img, (int(x), int(y)), 2 * scale, (255, 255, 255), -1, cv2.LINE_AA)
    for j, p in enumerate(parents):
        if p < 0 or names[j].startswith(("eye", "toe")) or names[p] == "root":
            continue
        colour = LEFT_BGR if names[j].endswith(".L") else RIGHT_BGR if names[j].endswith(".R") else CENTRE_BGR
        a, b = heads[p], heads[j]
        if np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
            cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, scale, cv2.LINE_AA)
    return img


def label_person(take: Take, row: int, image: np.ndarray, text: str) -> None:
    """Write ``text`` (the person's number) above the person's nose landmark, when it was seen on this row."""
    import cv2

    x, y, _ = take["pose_landmarks_2d"][row][0]
    if np.isfinite(x) and bool(take["valid"][row]):
        scale = max(1, round(max(image.shape[:2]) / 640))
        cv2.putText(image, text, (int(x) - 8 * scale, int(y) - 30 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale,
                    (255, 255, 255), 2 * scale, cv2.LINE_AA)


def contact_sheet(take_path: str | Path, out_png: str | Path, video: str | Path | None = None,
                  count: int = 6, width: int = 960, others: list[str | Path] | None = None) -> Path:
    """Evenly spaced overlay frames tiled into one PNG (≤ `width` px wide). Streams the video once. ``others``:
    the Takes of the other people of a multi-person capture, drawn on the same frames and numbered from 2."""
    import cv2

    take = read_take(take_path)
    extra = [read_take(p) for p in others or []]
    video = Path(video or take.meta["source"]["path"])
    rows = np.linspace(0, take.n_frames - 1, min(count, take.n_frames)).round().astype(int)
    wanted = {int(take["frame_ids"][r]): int(r) for r in rows}
    tiles = []
    for index, _ts, frame in iter_frames(video, 0, int(max(wanted)) + 1):
        if index in wanted:
            tile = draw(take, wanted[index], frame)
            for number, other in enumerate(extra, start=2):
                tile = draw(other, wanted[index], tile)
                label_person(other, wanted[index], tile, str(number))
            if extra:
                label_person(take, wanted[index], tile, "1")
            cv2.putText(tile, f"frame {index}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
            tiles.append(tile)
    cols = 3 if len(tiles) > 4 else len(tiles)
    h, w = tiles[0].shape[:2]
    tile_w = width // cols
    tile_h = round(h * tile_w / w)
    tiles = [cv2.resize(t, (tile_w, tile_h), interpolation=cv2.INTER_AREA) for t in tiles]
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError(f"could not encode {out_png}")
    from .take import atomic_write_bytes

    atomic_write_bytes(out_png, data.tobytes())
    return out_png
