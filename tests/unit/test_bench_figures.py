"""bench/figures.py: charts and overlay contact sheets are written, sized and drawn where they should be."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("matplotlib")

from bench import figures  # noqa: E402
from bench.figures import LEGEND_HEIGHT, OverlayLayer, method_colour_bgr  # noqa: E402

W, H, N_FRAMES, FPS = 320, 240, 10, 10.0
K = np.array([[200.0, 0.0, W / 2], [0.0, 200.0, H / 2], [0.0, 0.0, 1.0]])


def colour_pixels(image: np.ndarray, bgr, tol: int = 40) -> int:
    return int((np.abs(image.astype(int) - np.array(bgr)).max(axis=-1) <= tol).sum())


def only_png(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------------------------
JOINTS = [f"joint{i:02d}" for i in range(21)]


def bar_errors(direct_missing: int = 0) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    out = {m: {j: float(v) for j, v in zip(JOINTS, rng.uniform(5, 60, len(JOINTS)))}
           for m in ("raw-mediapipe", "direct-mapping", "reel2rig")}
    for j in JOINTS[:direct_missing]:
        out["direct-mapping"][j] = float("nan")
    return out


def test_per_joint_error_bars_size_colours_and_blank_joints(tmp_path):
    full = figures.per_joint_error_bars(bar_errors(), tmp_path / "full.png", "per-joint error")
    assert full == tmp_path / "full.png"
    image = cv2.imread(str(full))
    assert image is not None
    assert image.shape == (figures.per_joint_bars_height(21, 3), 900, 3)
    for method in ("raw-mediapipe", "direct-mapping", "reel2rig"):
        assert colour_pixels(image, method_colour_bgr(method), tol=10) > 2000, method
    # NaN (or absent) joints are left blank: fewer direct-mapping pixels, the others unchanged.
    errors = bar_errors(direct_missing=15)
    del errors["direct-mapping"][JOINTS[16]]
    holes = cv2.imread(str(figures.per_joint_error_bars(errors, tmp_path / "holes.png", "t", height_px=700)))
    assert holes.shape == (700, 900, 3)
    holes_full = cv2.imread(str(figures.per_joint_error_bars(bar_errors(), tmp_path / "h2.png", "t", height_px=700)))
    orange = method_colour_bgr("direct-mapping")
    assert colour_pixels(holes, orange, 10) < 0.5 * colour_pixels(holes_full, orange, 10)
    assert only_png(tmp_path) == ["full.png", "h2.png", "holes.png"]  # no temp files left behind


def test_method_colours_are_fixed():
    assert method_colour_bgr("reel2rig") == method_colour_bgr("fit")
    assert len({method_colour_bgr(m) for m in ("raw-mediapipe", "direct-mapping", "reel2rig")}) == 3
    assert figures.method_colour("someone-else") == figures.method_colour("someone-else")


def test_error_over_time_size_and_gaps(tmp_path):
    t = np.arange(200) / FPS
    series = {"raw-mediapipe": 40 + 10 * np.sin(t), "reel2rig": 15 + 3 * np.cos(t)}
    path = figures.error_over_time(series, tmp_path / "time.png", "error over time", fps=FPS)
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (400, 1000, 3)
    green = method_colour_bgr("reel2rig")
    with_line = colour_pixels(image, green, 30)
    assert with_line > 500
    gappy = dict(series, reel2rig=np.where(t > 5.0, np.nan, series["reel2rig"]))  # 3/4 of it missing
    image = cv2.imread(str(figures.error_over_time(gappy, tmp_path / "gap.png", "t", fps=FPS, width_px=800,
                                                   height_px=300)))
    assert image.shape == (300, 800, 3)
    assert colour_pixels(image, green, 30) < 0.5 * with_line
    with pytest.raises(ValueError):
        figures.error_over_time(series, tmp_path / "bad.png", "t", fps=0)


# ---------------------------------------------------------------------------------------------------------------
# Overlays
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def black_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "black.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    assert writer.isOpened()
    for _ in range(N_FRAMES):
        writer.write(np.zeros((H, W, 3), np.uint8))
    writer.release()
    return path


RED = (0, 0, 255)
GREEN = (0, 255, 0)


def skeleton_layer() -> OverlayLayer:
    pts = np.full((N_FRAMES, 2, 2), np.nan)
    pts[2] = [[100, 120], [250, 200]]
    pts[5] = [[60, 180], [280, 60]]
    pts[7, 0] = [150, 150]  # one point only: a dot, no line
    return OverlayLayer("skeleton", RED, points_2d=pts, edges=[(0, 1)])


def test_overlay_skeleton_draws_at_its_points_only(tmp_path, black_video):
    path = figures.overlay_frames(black_video, [2, 5, 7, 9], [skeleton_layer()], tmp_path / "sheet.png",
                                  columns=2, max_width=2 * W)
    sheet = cv2.imread(str(path))
    assert sheet.shape == (2 * H + LEGEND_HEIGHT, 2 * W, 3)
    tiles = {2: sheet[:H, :W], 5: sheet[:H, W:], 7: sheet[H:2 * H, :W], 9: sheet[H:2 * H, W:]}

    def is_red(tile, x, y):  # the dot (radius >= 3) or the line's core at (x, y)
        return colour_pixels(tile[y:y + 1, x:x + 1], RED, 40) == 1

    def is_black(tile, x, y):
        return int(tile[y - 3:y + 4, x - 3:x + 4].max()) < 30

    assert is_red(tiles[2], 100, 120) and is_red(tiles[2], 250, 200) and is_red(tiles[2], 175, 160)  # midpoint
    assert is_black(tiles[2], 60, 180) and is_black(tiles[2], 280, 60) and is_black(tiles[2], 300, 20)
    assert is_red(tiles[5], 60, 180) and is_red(tiles[5], 280, 60) and is_red(tiles[5], 170, 120)
    assert is_black(tiles[5], 100, 120) and is_black(tiles[5], 250, 200)
    assert is_red(tiles[7], 150, 150) and is_black(tiles[7], 200, 150)  # NaN partner: no line
    assert is_black(tiles[7], 75, 75)
    body = tiles[9][40:, :]  # frame 9 is all NaN: nothing drawn below the label
    assert int(body.max()) < 30
    assert int(tiles[9][:30, :120].max()) > 200  # the frame label (white) in the top-left corner
    legend = sheet[2 * H:]
    assert colour_pixels(legend, RED, 10) > 50


def test_overlay_downscales_points_with_the_tile(tmp_path, black_video):
    sheet = cv2.imread(str(figures.overlay_frames(black_video, [2], [skeleton_layer()], tmp_path / "s.png",
                                                  max_width=W // 2)))
    assert sheet.shape == (H // 2 + LEGEND_HEIGHT, W // 2, 3)
    assert colour_pixels(sheet[59:62, 49:52], RED, 40) == 9  # (100, 120) at half size
    assert int(sheet[50:90, 140:].max()) < 30  # far from both points and the line


def triangle_layer(front: bool) -> OverlayLayer:
    # Camera space (x right, y down, z forward), 2 m away; projects to a triangle around the image centre.
    a, b, c = [-0.6, -0.4, 2.0], [0.6, -0.4, 2.0], [0.0, 0.5, 2.0]
    tri = np.array([a, c, b] if front else [a, b, c])  # counter-clockwise seen from the camera = front
    verts = np.full((N_FRAMES, 3, 3), np.nan)
    verts[3] = tri
    verts[4] = tri
    verts[4, 1] = np.nan  # a NaN vertex: its face is skipped
    return OverlayLayer("mesh", GREEN, mesh_vertices_cam=verts, faces=np.array([[0, 1, 2]]), K=K)


def test_overlay_mesh_front_face_tints_back_face_culled(tmp_path, black_video):
    front = cv2.imread(str(figures.overlay_frames(black_video, [3, 4, 6], [triangle_layer(True)],
                                                  tmp_path / "front.png", columns=3, max_width=3 * W)))
    tile = front[:H, :W]
    # Projected corners: (100, 80), (220, 80), (160, 170); centroid (160, 110).
    inside = tile[95:125, 145:175].astype(int)
    assert inside[..., 1].min() > 80 and inside[..., 1].max() < 140  # green at alpha ~0.45, shaded
    assert inside[..., 0].max() < 30 and inside[..., 2].max() < 30
    assert int(tile[200:, :].max()) < 30 and int(tile[40:, 260:].max()) < 30  # outside stays black
    assert int(front[40:H, W:3 * W].max()) < 30  # NaN vertex frame and a frame without mesh: nothing
    back = cv2.imread(str(figures.overlay_frames(black_video, [3], [triangle_layer(False)], tmp_path / "back.png")))
    assert int(back[40:H].max()) < 30
    # Behind the camera (z < 0; it would project onto the same pixels, "facing" the origin): not drawn.
    behind = OverlayLayer("behind", GREEN, mesh_vertices_cam=np.array([[[0.6, 0.4, -2.0], [-0.6, 0.4, -2.0],
                                                                        [0.0, -0.5, -2.0]]]),
                          faces=np.array([[0, 1, 2]]), K=K)
    sheet = cv2.imread(str(figures.overlay_frames(black_video, [0], [behind], tmp_path / "behind.png")))
    assert int(sheet[40:H].max()) < 30


def test_overlay_skeleton_is_drawn_over_the_mesh(tmp_path, black_video):
    layer = triangle_layer(True)
    pts = np.full((N_FRAMES, 1, 2), np.nan)
    pts[3, 0] = [160, 110]
    bones = OverlayLayer("bones", RED, points_2d=pts)
    sheet = cv2.imread(str(figures.overlay_frames(black_video, [3], [bones, layer], tmp_path / "o.png")))
    assert colour_pixels(sheet[109:112, 159:162], RED, 30) == 9
    assert int(sheet[100, 145, 1]) > 80  # mesh around it


def test_overlay_frame_ids_map_rows_to_frames(tmp_path, black_video):
    pts = np.array([[[100.0, 100.0]], [[200.0, 100.0]]])  # rows for frames 4 and 8
    layer = OverlayLayer("ids", RED, points_2d=pts, frame_ids=np.array([4, 8]))
    sheet = cv2.imread(str(figures.overlay_frames(black_video, [8, 4, 0], [layer], tmp_path / "i.png",
                                                  max_width=3 * W)))
    assert colour_pixels(sheet[99:102, 199:202], RED, 30) == 9  # first tile: frame 8
    assert colour_pixels(sheet[99:102, W + 99:W + 102], RED, 30) == 9  # second tile: frame 4
    assert int(sheet[40:H, 2 * W:].max()) < 30  # frame 0 has no row


def test_overlay_errors_name_the_problem(tmp_path, black_video):
    with pytest.raises(ValueError, match="past the end"):
        figures.overlay_frames(black_video, [2, 50], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="not found"):
        figures.overlay_frames(tmp_path / "missing.mp4", [0], [], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
