"""Pictures of a capture's world: a top view of trajectories, footprints and the camera. No bpy, no torch.

matplotlib is imported lazily and draws on an Agg canvas (no pyplot, no global figure state); its config/cache folder
is the project cache's (``config.prepare_environment``, only where MPLCONFIGDIR is not set already). Every function
writes its PNG atomically (temp file in the same folder, then ``os.replace``) and returns its path.

The top view (:func:`trajectory_top_view`) draws world positions (metres, Z up) as x–y: give it points already
expressed in the ground frame you want to look at — :func:`camera_ground_frame` gives the one a viewer of the footage
expects (x = the first camera's right, y = its forward, both horizontal; z = height, unchanged).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .take import make_shareable

CAMERA_COLOUR = "#7f7f7f"
_COLOURS = ["#444444", "#ff7f0e", "#2ca02c", "#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
MIN_SPAN_M = 1.0  # the view shows at least this many metres each way (an in-place motion is not zoomed into noise)


def camera_ground_frame(points_world: np.ndarray, R_world2cam: np.ndarray,
                        t_world2cam: np.ndarray | None = None) -> np.ndarray:
    """(..., 3) world points (Z up) → (..., 3) in the camera's ground frame: x = the camera's right and y = its
    forward, both projected onto the horizontal plane and normalised (x = y × z, right-handed), z = world height.

    R_world2cam (3, 3): one camera (OpenCV axes: rows are its x right, y down, z forward in world coordinates).
    With t_world2cam (3,) the origin is the camera centre c = -R^T t at height 0 (x, y relative to it; z stays the
    world height); without it, the world origin. A camera looking straight down has no horizontal forward: its
    image-up direction (-y) is used instead. NaN points stay NaN.
    """
    R = np.asarray(R_world2cam, np.float64).reshape(3, 3)
    forward = np.array([R[2, 0], R[2, 1], 0.0])
    if np.linalg.norm(forward) < 1e-6:
        forward = -np.array([R[1, 0], R[1, 1], 0.0])
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])  # x = y × z
    p = np.asarray(points_world, np.float64)
    if t_world2cam is not None:
        centre = -R.T @ np.asarray(t_world2cam, np.float64).reshape(3)
        p = p - [centre[0], centre[1], 0.0]
    return np.stack([p @ right, p @ forward, p[..., 2]], -1)


def atomic_write_file(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call write(temp_name) for a temp file next to `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        make_shareable(tmp)  # mkstemp's file is private (0600); a picture is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _figure(width_px: int, height_px: int, dpi: int = 100):
    from inference_server.config import prepare_environment

    prepare_environment()  # MPLCONFIGDIR inside the project cache unless it is set
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _xy(points: np.ndarray, what: str) -> np.ndarray:
    """(..., 3) → (n, 2) x–y of the points whose 3 coordinates are all finite; checks the last axis."""
    arr = np.asarray(points, np.float64)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise ValueError(f"{what}: expected (T, ..., 3) world positions in metres, got shape {arr.shape}")
    flat = arr.reshape(-1, 3)
    return flat[np.isfinite(flat).all(1), :2]


def trajectory_top_view(paths: Mapping[str, np.ndarray], out_png: str | os.PathLike[str], *,
                        contacts: Mapping[str, np.ndarray] | None = None, cameras: np.ndarray | None = None,
                        title: str = "", colours: Mapping[str, str] | None = None,
                        xlabel: str = "x (m)", ylabel: str = "y (m)", size_px: tuple[int, int] = (800, 800)) -> Path:
    """A top view (x–y, equal axes, metres) of world paths, the footprints of planted feet, and the camera's path.

    paths: name → (T, 3) positions (Z up, metres; NaN frames break the line), drawn as lines with a circle at the
    first and a square at the last finite point, in their order, the first (e.g. the truth) wider so that a path
    lying on it still shows it; the legend gives each path's length. contacts: name → (T, k, 3) foot
    points drawn as small dots where finite — pass NaN where a foot is not in contact, so the dots are the footprints
    (a planted foot that does not slide makes one tight cluster); a name that is also in ``paths`` shares its colour.
    cameras: (T, 3) camera centres, a grey dashed line with a triangle at the start. colours: name → matplotlib
    colour (default: a fixed cycle in the order of ``paths``). Size: size_px (width, height) pixels.
    Raises ValueError when ``paths`` is empty, a shape is wrong, or there is no finite point to draw.
    """
    if not paths:
        raise ValueError("trajectory_top_view: no paths to draw (give at least one name → (T, 3) array)")
    lines = {name: np.asarray(p, np.float64) for name, p in paths.items()}
    for name, p in lines.items():
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"trajectory_top_view: path {name!r} must be (T, 3) metres, got shape {p.shape}")
    dots = {name: _xy(c, f"trajectory_top_view: contacts {name!r}") for name, c in (contacts or {}).items()}
    cam = None if cameras is None else np.asarray(cameras, np.float64)
    if cam is not None and (cam.ndim != 2 or cam.shape[1] != 3):
        raise ValueError(f"trajectory_top_view: cameras must be (T, 3) metres, got shape {cam.shape}")
    finite = [p[np.isfinite(p).all(1), :2] for p in lines.values()]
    if not any(len(f) for f in finite):
        raise ValueError("trajectory_top_view: every path is NaN; nothing to draw")
    everything = np.concatenate(finite + list(dots.values()) + ([_xy(cam, "cameras")] if cam is not None else []))

    palette = dict(colours or {})
    for i, name in enumerate(list(lines) + [n for n in dots if n not in lines]):
        palette.setdefault(name, _COLOURS[i % len(_COLOURS)])
    fig = _figure(*size_px)
    ax = fig.add_subplot(1, 1, 1)
    if cam is not None:
        ok = np.isfinite(cam).all(1)
        if ok.any():
            ax.plot(cam[:, 0], cam[:, 1], color=CAMERA_COLOUR, linestyle="--", linewidth=1.2, label="camera")
            first = cam[ok][0]
            ax.plot(first[0], first[1], marker="^", markersize=10, color=CAMERA_COLOUR, linestyle="none")
    for name, pts in dots.items():
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=6, color=palette[name], alpha=0.5, linewidths=0,
                       label=f"{name} planted feet")
    for i, (name, p) in enumerate(lines.items()):
        ok = np.isfinite(p).all(1)
        if not ok.any():
            continue
        steps = np.linalg.norm(np.diff(p[:, :2], axis=0), axis=1)
        length = float(steps[np.isfinite(steps)].sum())
        ax.plot(p[:, 0], p[:, 1], color=palette[name], linewidth=3.2 if i == 0 else 1.8,
                label=f"{name} ({length:.2f} m)")
        start, end = p[ok][0], p[ok][-1]
        ax.plot(start[0], start[1], marker="o", markersize=8, color=palette[name], linestyle="none")
        ax.plot(end[0], end[1], marker="s", markersize=7, markerfacecolor="white", markeredgewidth=2,
                color=palette[name], linestyle="none")

    lo, hi = everything.min(0), everything.max(0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) * 0.55, MIN_SPAN_M / 2)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal", adjustable="box")  # the limits above are already square
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9, markerscale=2.0)
    fig.tight_layout()
    return atomic_write_file(out_png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def take_top_view(take_path: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path:
    """The top view of one Take (``python -m inference_server trajectory``; written next to every capture's
    overlay): the root's path in the Take's world, the feet where the Take says they are planted (``foot_contact``,
    the foot bones' heads), and the camera's centre per frame (``−R_world2camᵀ t_world2cam``: a still camera is a
    triangle, a travelling one a dashed line). World axes as they are: x and y metres, Z up."""
    from .take import read_take

    take = read_take(take_path)
    a, names = take.arrays, take.bone_names
    valid = np.asarray(a["valid"], dtype=bool)
    root = np.where(valid[:, None], np.asarray(a["root_position_world"], np.float64), np.nan)
    R, t = np.asarray(a["R_world2cam"], np.float64), np.asarray(a["t_world2cam"], np.float64)
    cameras = -np.einsum("tji,tj->ti", R, t)
    contacts = None
    feet = [names.index(f"foot.{s}") for s in "LR" if f"foot.{s}" in names]
    if "foot_contact" in a and len(feet) == 2:
        fc = np.asarray(a["foot_contact"], np.float64)
        planted = np.stack([fc[:, :2].max(1), fc[:, 2:].max(1)], 1) > 0.5          # (T,2)
        pts = np.asarray(a["joints_world"], np.float64)[:, feet].copy()             # (T,2,3)
        pts[~(planted & valid[:, None])] = np.nan
        contacts = {"root": pts}
    world = (take.meta.get("world") or {})
    title = f"{Path(take_path).name}: {world.get('camera', 'still')} camera, {world.get('space', 'world')} space"
    return trajectory_top_view({"root": root}, out_png, contacts=contacts, cameras=cameras, title=title)
