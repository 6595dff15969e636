"""The benchmark's pictures: per-joint error bars, error over time, and overlay contact sheets. No bpy, no torch.

matplotlib (Agg canvas, no pyplot state) draws the charts; OpenCV reads the video and draws the overlays. Both are
imported lazily. Every function writes its PNG atomically (temp file in the same folder, then ``os.replace``) and
returns its path. Each method keeps one colour in every figure (:data:`METHOD_COLOURS`).

Overlays (:func:`overlay_frames`)
---------------------------------
Each :class:`OverlayLayer` holds per-frame data for the rows of a clip: 2D skeleton points (pixels, origin at the
top-left corner of the image) with edges, and optionally a mesh in camera space (OpenCV camera axes: x right, y down,
z forward; metres) with intrinsics ``K``: ``[u, v] = (K @ p_cam)[:2] / p_cam[2]``. Frames are downscaled to the tile
size first and drawn there (points and ``K`` scaled by the same factor), so the cost does not depend on the source
resolution. Meshes are drawn first, as one semi-transparent shaded surface per layer (painter's algorithm: faces
sorted far → near, back faces culled, Lambert shading ``|cos|`` between the face normal and the view ray), skeletons
over them.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference_server.overlay import MESH_ALPHA, draw_mesh  # noqa: E402,F401  (the product's mesh drawing)

# Fixed colours per method (hex RGB for matplotlib; method_colour_bgr for OpenCV). "fit" is the bench's older name
# for reel2rig's own result.
METHOD_COLOURS: dict[str, str] = {
    "raw-mediapipe": "#1f77b4",   # blue
    "direct-mapping": "#ff7f0e",  # orange
    "reel2rig": "#2ca02c",        # green
    "fit": "#2ca02c",
    "ground-truth": "#444444",
}
_EXTRA_COLOURS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
_METHOD_ORDER = ["raw-mediapipe", "direct-mapping", "reel2rig", "fit", "ground-truth"]

LEGEND_HEIGHT = 32  # px strip under an overlay sheet's tiles


def method_colour(method: str) -> str:
    """Hex RGB colour of a method: fixed for the known ones, stable (name hash) for others."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return _EXTRA_COLOURS[zlib.crc32(method.encode("utf-8")) % len(_EXTRA_COLOURS)]


def method_colour_bgr(method: str) -> tuple[int, int, int]:
    h = method_colour(method).lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return (b, g, r)


def _ordered_methods(methods) -> list[str]:
    known = [m for m in _METHOD_ORDER if m in methods]
    return known + [m for m in methods if m not in known]


def _atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call write(temp_name) for a temp file next to `path`, then rename it over `path` (the engine's helper)."""
    from inference_server.plots import atomic_write_file

    return atomic_write_file(path, write)


def _figure(width_px: int, height_px: int, dpi: int = 100):
    from inference_server.config import prepare_environment

    prepare_environment()  # matplotlib's config/cache folder inside the project cache
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path, dpi: int = 100) -> Path:
    return _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


# ---------------------------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------------------------
def per_joint_bars_height(n_joints: int, n_methods: int) -> int:
    """Height in px of :func:`per_joint_error_bars`'s picture when none is given."""
    return int(140 + n_joints * (8 + 9 * max(n_methods, 1)))


def per_joint_error_bars(errors_mm: dict[str, dict[str, float]], path: str | os.PathLike[str], title: str,
                         width_px: int = 900, height_px: int | None = None, xlabel: str = "mean error (mm)") -> Path:
    """Grouped horizontal bars: one group per joint (top to bottom in first-seen order), one bar per method.

    errors_mm: method → {joint → mean error in mm}. A joint missing for a method, or NaN, is left blank (no bar).
    Each bar carries its value. Size: width_px × (height_px or per_joint_bars_height(J, M)).
    """
    methods = _ordered_methods(list(errors_mm))
    joints: list[str] = []
    for m in methods:
        for j in errors_mm[m]:
            if j not in joints:
                joints.append(j)
    height_px = height_px or per_joint_bars_height(len(joints), len(methods))
    fig = _figure(width_px, height_px)
    ax = fig.add_subplot(1, 1, 1)
    n = max(len(methods), 1)
    bar_h = 0.8 / n
    y = np.arange(len(joints), dtype=float)
    finite_max = 0.0
    for k, m in enumerate(methods):
        values = np.array([float(errors_mm[m].get(j, np.nan)) for j in joints])
        ok = np.isfinite(values)
        pos = y - 0.4 + bar_h * (k + 0.5)
        ax.barh(pos[ok], values[ok], height=bar_h * 0.92, color=method_colour(m), label=m)
        for p, v in zip(pos[ok], values[ok]):
            ax.text(v, p, f" {v:.0f}" if v >= 10 else f" {v:.1f}", va="center", ha="left", fontsize=7)
        if ok.any():
            finite_max = max(finite_max, float(values[ok].max()))
    ax.set_yticks(y)
    ax.set_yticklabels(joints, fontsize=8)
    ax.set_ylim(len(joints) - 0.5, -0.5)  # first joint on top
    ax.set_xlim(0, finite_max * 1.15 if finite_max > 0 else 1.0)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if methods:
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return _save_figure(fig, path)


def error_over_time(series_mm: dict[str, np.ndarray], path: str | os.PathLike[str], title: str, fps: float,
                    ylabel: str = "error (mm)", width_px: int = 1000, height_px: int = 400) -> Path:
    """One line per method over time (s = row / fps); NaN values break the line (gaps). The legend gives the
    mean over the finite values. Size: width_px × height_px."""
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    fig = _figure(width_px, height_px)
    ax = fig.add_subplot(1, 1, 1)
    for m in _ordered_methods(list(series_mm)):
        values = np.asarray(series_mm[m], dtype=np.float64).reshape(-1)
        t = np.arange(len(values)) / float(fps)
        finite = values[np.isfinite(values)]
        label = f"{m} (mean {finite.mean():.1f})" if len(finite) else f"{m} (no data)"
        ax.plot(t, values, color=method_colour(m), label=label, linewidth=1.4)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if series_mm:
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return _save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------------
# Overlays
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class OverlayLayer:
    """What to draw over the frames for one source (a method, the ground truth, ...).

    Arrays are indexed by row; ``frame_ids`` (T,) maps rows to video frame indices (default: row i = frame i).
    NaN points, NaN vertices and frames without a row are skipped.
    """
    label: str
    colour: tuple[int, int, int]                       # BGR
    points_2d: np.ndarray | None = None                # (T, N, 2) pixels in the source video
    edges: Sequence[tuple[int, int]] = ()              # skeleton lines between point indices
    mesh_vertices_cam: np.ndarray | None = None        # (T, V, 3) camera space, metres
    faces: np.ndarray | None = None                    # (F, 3) vertex indices, counter-clockwise from outside
    K: np.ndarray | None = None                        # (3, 3) intrinsics of the source video
    frame_ids: np.ndarray | None = None                # (T,) video frame index of each row

    def row(self, frame_index: int) -> int | None:
        n = self._n_rows()
        if self.frame_ids is None:
            return frame_index if 0 <= frame_index < n else None
        hits = np.nonzero(np.asarray(self.frame_ids) == frame_index)[0]
        return int(hits[0]) if len(hits) else None

    def _n_rows(self) -> int:
        for a in (self.points_2d, self.mesh_vertices_cam):
            if a is not None:
                return len(a)
        return 0


def draw_skeleton(image: np.ndarray, points: np.ndarray, edges: Sequence[tuple[int, int]],
                  colour: tuple[int, int, int], thickness: int = 2) -> None:
    """Lines between finite point pairs and a dot on every finite point (in place; points (N,2) pixels)."""
    import cv2

    pts = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(pts).all(axis=1)
    shift = 2
    ip = np.round(np.where(finite[:, None], np.clip(pts, -1e5, 1e5), 0) * (1 << shift)).astype(np.int64)
    for i, j in edges:
        if finite[i] and finite[j]:
            cv2.line(image, tuple(int(x) for x in ip[i]), tuple(int(x) for x in ip[j]), colour, thickness,
                     cv2.LINE_AA, shift)
    radius = thickness + 2
    for k in np.nonzero(finite)[0]:
        cv2.circle(image, tuple(int(x) for x in ip[k]), radius << shift, colour, -1, cv2.LINE_AA, shift)


def _put_label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    import cv2

    thick = max(1, round(2 * scale))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _read_frames(video: Path, wanted: list[int]):
    """Yield (index, timestamp_s, bgr) for the sorted unique `wanted` frames, decoding sequentially (exact on every
    codec; frames in between are grabbed, not converted). Raises ValueError past the end."""
    import cv2

    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"{video}: OpenCV cannot open this file as a video")
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if np.isfinite(fps) and fps > 0 else 30.0
        index = 0
        for target in wanted:
            while index <= target:
                if not cap.grab():
                    raise ValueError(f"{video}: frame {target} is past the end of the clip ({index} frames decoded)")
                index += 1
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                raise ValueError(f"{video}: frame {target} could not be decoded")
            ts = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if not np.isfinite(ts) or (ts <= 0 and target > 0):
                ts = target / fps
            yield target, ts, frame
    finally:
        cap.release()


def overlay_frames(video: str | os.PathLike[str], frame_indices: list[int], layers: list[OverlayLayer],
                   path: str | os.PathLike[str], columns: int = 3, max_width: int = 1920) -> Path:
    """A contact sheet of the requested frames with every layer drawn on each, plus a legend strip.

    Only the requested frames are kept (each downscaled to its tile as soon as it is read). Tiles are
    ``tile_w = min(frame_w, max_width // cols)`` wide (cols = min(columns, frames)), ``round(frame_h · tile_w /
    frame_w)`` high, in rows of `cols` in the order given; the sheet is ``cols · tile_w`` × ``rows · tile_h +
    LEGEND_HEIGHT`` px. Each tile shows "frame N  t.tt s" in its top-left corner.
    """
    import cv2

    video = Path(video)
    if not video.is_file():
        raise ValueError(f"{video}: video file not found")
    frame_indices = [int(i) for i in frame_indices]
    if not frame_indices:
        raise ValueError("overlay_frames needs at least one frame index")
    if min(frame_indices) < 0:
        raise ValueError(f"frame indices must be >= 0, got {min(frame_indices)}")
    cols = max(1, min(int(columns), len(frame_indices)))
    tiles: dict[int, np.ndarray] = {}
    tile_w = tile_h = 0
    for index, ts, frame in _read_frames(video, sorted(set(frame_indices))):
        fh, fw = frame.shape[:2]
        tile_w = max(1, min(fw, max_width // cols))
        tile_h = max(1, round(fh * tile_w / fw))
        s = tile_w / fw
        tile = frame if tile_w == fw else cv2.resize(frame, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        tile = np.ascontiguousarray(tile)
        scale_K = np.diag([s, tile_h / fh, 1.0])
        for layer in layers:
            r = layer.row(index)
            if r is None or layer.mesh_vertices_cam is None or layer.faces is None or layer.K is None:
                continue
            draw_mesh(tile, layer.mesh_vertices_cam[r], layer.faces, scale_K @ np.asarray(layer.K, float),
                      layer.colour)
        thickness = max(2, round(tile_w / 300))
        for layer in layers:
            r = layer.row(index)
            if r is None or layer.points_2d is None:
                continue
            pts = np.asarray(layer.points_2d[r], dtype=np.float64) * np.array([s, tile_h / fh])
            draw_skeleton(tile, pts, layer.edges, layer.colour, thickness)
        font = max(0.35, tile_w / 1100)
        _put_label(tile, f"frame {index}  {ts:.2f} s", (6, 6 + round(22 * font)), font)
        tiles[index] = tile
    n_rows = math.ceil(len(frame_indices) / cols)
    sheet = np.zeros((n_rows * tile_h + LEGEND_HEIGHT, cols * tile_w, 3), dtype=np.uint8)
    for k, index in enumerate(frame_indices):
        tile = tiles[index]
        if tile.shape[:2] != (tile_h, tile_w):  # a clip whose frame size changes: fit into the cell
            tile = cv2.resize(tile, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        sheet[r * tile_h:(r + 1) * tile_h, c * tile_w:(c + 1) * tile_w] = tile
    _draw_legend(sheet[n_rows * tile_h:], layers)
    ok, data = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError(f"{path}: OpenCV could not encode the PNG")
    return _atomic_write(path, lambda tmp: Path(tmp).write_bytes(data.tobytes()))


def _draw_legend(strip: np.ndarray, layers: list[OverlayLayer]) -> None:
    import cv2

    strip[:] = 32
    x, mid = 10, strip.shape[0] // 2
    for layer in layers:
        cv2.rectangle(strip, (x, mid - 7), (x + 14, mid + 7), layer.colour, -1)
        x += 20
        cv2.putText(strip, layer.label, (x, mid + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1,
                    cv2.LINE_AA)
        (tw, _), _ = cv2.getTextSize(layer.label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        x += tw + 18
