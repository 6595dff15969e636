"""The arithmetic of the preview render (``preview_render``): bone shapes for a picture, where the PNG goes, and how a
rendered mask is checked against the Take. numpy + standard library only, no bpy.

Bones are overlays in Blender's viewport and do not render, so the preview builds a temporary mesh of octahedra,
one per bone, shaped like Blender's own octahedral bone display: in the bone's frame (Y from head to tail, length L)
the vertices are the head (0, 0, 0), the tail (0, L, 0) and a square of half-width ``w·L`` at ``y = 0.1·L``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

#: Octahedron faces over the vertices [head, tail, +x, +z, −x, −z] (counter-clockwise seen from outside).
_OCTA_FACES = np.array([[0, 3, 2], [0, 4, 3], [0, 5, 4], [0, 2, 5],
                        [1, 2, 3], [1, 3, 4], [1, 4, 5], [1, 5, 2]], dtype=np.int32)


def bone_octahedra(matrices: np.ndarray, lengths: np.ndarray, width: float = 0.1,
                   min_length: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Posed bone matrices (J, 4, 4) (world space; Y along the bone, translation = head) and lengths (J,) →
    vertices (6J, 3) float32 and triangles (8J, 3) int32 of one octahedron per bone (lengths below
    ``min_length`` are drawn at it, so a bone of no length still shows as a dot)."""
    M = np.asarray(matrices, dtype=np.float64)
    L = np.maximum(np.asarray(lengths, dtype=np.float64), min_length)        # (J,)
    w = width
    local = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [w, 0.1, 0.0], [0.0, 0.1, w], [-w, 0.1, 0.0],
                      [0.0, 0.1, -w]])                                          # (6, 3) in units of L
    pts = local[None] * L[:, None, None]                                        # (J, 6, 3)
    world = np.einsum("jab,jvb->jva", M[:, :3, :3], pts) + M[:, None, :3, 3]   # (J, 6, 3)
    faces = (_OCTA_FACES[None] + 6 * np.arange(M.shape[0])[:, None, None]).reshape(-1, 3)
    return world.reshape(-1, 3).astype(np.float32), faces.astype(np.int32)


def default_preview_path(take_path: str, frame: int) -> str:
    """``/x/clip.take.npz`` → ``/x/clip.preview_0042.png`` (next to the Take)."""
    path = Path(take_path)
    stem = re.sub(r"\.take\.npz$", "", path.name) if path.name.endswith(".take.npz") else path.stem
    return str(path.with_name(f"{stem}.preview_{int(frame):04d}.png"))


def project(K: np.ndarray, R_world2cam: np.ndarray, t_world2cam: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) world points → (N, 2) pixels (origin top-left) with the Take's OpenCV camera; NaN behind it."""
    cam = np.asarray(points, np.float64) @ np.asarray(R_world2cam, np.float64).T + np.asarray(t_world2cam, np.float64)
    uv = cam @ np.asarray(K, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        out = uv[:, :2] / uv[:, 2:3]
    out[cam[:, 2] <= 1e-6] = np.nan
    return out


def mask_box(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int] | None:
    """Pixel box (x0, y0, x1, y1), inclusive-exclusive, of the pixels with alpha above ``threshold``; None if none."""
    ys, xs = np.nonzero(np.asarray(alpha) > threshold)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
