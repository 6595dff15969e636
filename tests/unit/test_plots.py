"""inference_server/plots.py: the top-view trajectory picture is written, sized and drawn; the ground frame is exact."""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from inference_server import plots  # noqa: E402

T = 40


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def png_pixels(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(str(path))[..., :3]  # (H, W, 3) floats 0..1


def walk(start=(0.0, 3.0, 0.9), heading_deg: float = 0.0, metres: float = 2.0) -> np.ndarray:
    t = np.linspace(0.0, 1.0, T)[:, None]
    h = math.radians(heading_deg)
    return np.asarray(start) + metres * t * [math.cos(h), math.sin(h), 0.0] + 0.03 * np.sin(8 * t) * [0, 0, 1]


def footprints(path: np.ndarray) -> np.ndarray:
    """(T, 4, 3) foot points beside the path; NaN where the foot is in the air (alternating steps)."""
    feet = np.repeat(path[:, None], 4, 1) + [[0, 0.1, -0.9], [0.2, 0.1, -0.9], [0, -0.1, -0.9], [0.2, -0.1, -0.9]]
    swing = (np.arange(T) // 5) % 2 == 0
    feet[swing, :2] = np.nan   # left foot swings on these frames
    feet[~swing, 2:] = np.nan  # right foot on the others
    return feet


def test_top_view_is_written_sized_and_drawn(tmp_path):
    truth, ours = walk(), walk(heading_deg=10.0)
    cams = np.zeros((T, 3)) + np.linspace(0, 0.3, T)[:, None] * [1.0, 0.0, 0.0] + [0, 0, 1.5]
    out = plots.trajectory_top_view({"ground-truth": truth, "reel2rig": ours}, tmp_path / "walk_trajectory.png",
                                    contacts={"ground-truth": footprints(truth), "reel2rig": footprints(ours)},
                                    cameras=cams, title="walk", colours={"reel2rig": "#2ca02c"},
                                    size_px=(640, 560))
    assert out == tmp_path / "walk_trajectory.png"
    assert out.stat().st_size > 10_000
    assert png_size(out) == (640, 560)
    pixels = png_pixels(out)
    green = (np.abs(pixels - np.array([0x2C, 0xA0, 0x2C]) / 255).max(-1) < 0.05).sum()
    assert green > 300  # our path and our footprints are drawn in the colour asked for
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk_trajectory.png"]  # no temp file left behind


def test_top_view_of_an_in_place_motion_and_gaps(tmp_path):
    still = np.zeros((T, 3)) + [0.0, 3.0, 0.9] + np.random.default_rng(0).normal(scale=1e-4, size=(T, 3))
    still[10:15] = np.nan  # a gap breaks the line
    out = plots.trajectory_top_view({"direct-mapping": still, "nothing": np.full((T, 3), np.nan)},
                                    tmp_path / "still.png")
    assert png_size(out) == (800, 800) and out.stat().st_size > 5_000


def test_top_view_refuses_empty_and_malformed_input(tmp_path):
    with pytest.raises(ValueError, match="no paths"):
        plots.trajectory_top_view({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.trajectory_top_view({"x": np.full((T, 3), np.nan)}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        plots.trajectory_top_view({"x": np.zeros((T, 2))}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="cameras"):
        plots.trajectory_top_view({"x": walk()}, tmp_path / "a.png", cameras=np.zeros((T, 4)))
    assert not any(tmp_path.iterdir())


def test_camera_ground_frame_is_the_first_cameras_right_and_forward():
    # A camera at (1, -4, 1.6), turned 30° to the left of +Y (about Z) and pitched 15° down: OpenCV axes.
    yaw, pitch = math.radians(30.0), math.radians(15.0)
    level = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # looks along +Y, x = +X
    Rz = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    R = Rx @ level @ Rz.T  # world → camera: undo the yaw, then look level, then pitch down about camera x
    centre = np.array([1.0, -4.0, 1.6])
    t = -R @ centre
    forward = np.array([-math.sin(yaw), math.cos(yaw), 0.0])  # the heading in the world
    right = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    p = centre + 2.0 * forward + 0.5 * right + [0, 0, 0.7]  # 2 m ahead, 0.5 m right, 0.7 m above the camera
    g = plots.camera_ground_frame(p, R, t)
    np.testing.assert_allclose(g, [0.5, 2.0, 1.6 + 0.7], atol=1e-12)
    assert plots.camera_ground_frame(centre, R, t)[:2] == pytest.approx([0.0, 0.0], abs=1e-12)
    # without t: rotation only (about the world origin); the shape of any batch is kept; NaN stays NaN
    batch = np.stack([p, p + 3 * forward, np.full(3, np.nan)])[None]
    g2 = plots.camera_ground_frame(batch, R)
    assert g2.shape == (1, 3, 3) and np.isnan(g2[0, 2]).all()
    np.testing.assert_allclose(g2[0, 1] - g2[0, 0], [0.0, 3.0, 0.0], atol=1e-12)
    # looking straight down: the image's up direction is "forward"
    down = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # z forward = world -Z, y down = -Y
    np.testing.assert_allclose(plots.camera_ground_frame([0.0, 1.0, 0.0], down), [0.0, 1.0, 0.0], atol=1e-12)
