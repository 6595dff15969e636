"""Camera rotation from the background: synthetic clips of a rotating camera with known rotations.

The background is an equirectangular panorama at infinity (so a pure rotation is exact at any angle); frame t
samples it along the bearings R_cam_from_cam0[t]ᵀ K⁻¹ x. A textured "person" rectangle moves across the frame
independently of the camera, and its corners are passed as the person points.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from inference_server.camera_motion import CameraMotion, CameraTracker, rotation_angle_deg

PANO_F = 400.0  # panorama pixels per radian


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blurred noise at two scales + blobs: corners everywhere, uint8 (h, w)."""
    fine = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), 1.5)
    coarse = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), 8.0)
    img = fine / fine.std() * 30 + coarse / coarse.std() * 40 + 128
    for _ in range(h * w // 4000):
        c = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(img, c, int(rng.integers(3, 20)), (float(rng.integers(0, 255)),), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pano() -> np.ndarray:
    rng = np.random.default_rng(7)
    return _texture(rng, int(np.pi * PANO_F), int(2 * np.pi * PANO_F))


def _K(w: int, h: int, f: float) -> np.ndarray:
    return np.array([[f, 0, (w - 1) / 2 + 3.0], [0, f, (h - 1) / 2 - 2.0], [0, 0, 1]])


def _render(pano: np.ndarray, K: np.ndarray, size: tuple[int, int], R: np.ndarray) -> np.ndarray:
    """The view of camera R_cam_from_cam0 = R: pixel x sees direction d0 = Rᵀ K⁻¹ x of frame 0's camera."""
    w, h = size
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    d = np.stack([xs, ys, np.ones_like(xs)], -1) @ (R.T @ np.linalg.inv(K)).T  # (h, w, 3)
    lon = np.arctan2(d[..., 0], d[..., 2])
    lat = np.arctan2(d[..., 1], np.hypot(d[..., 0], d[..., 2]))
    mx = (lon * PANO_F + pano.shape[1] / 2).astype(np.float32)
    my = (lat * PANO_F + pano.shape[0] / 2).astype(np.float32)
    return cv2.remap(pano, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def _frames(pano, size, f, Rs, person=(120, 220), speed=6.0, seed=3, noise=2.0):
    """The rendered clip as (gray frame, person corner points): a textured person walks left to right, and every
    frame gets sensor noise of ``noise`` gray levels."""
    w, h = size
    K = _K(w, h, f)
    rng = np.random.default_rng(seed)
    body = _texture(rng, *person[::-1]) if person else None
    out = []
    for t, R in enumerate(Rs):
        img = _render(pano, K, size, R)
        pts = None
        if body is not None:
            pw, ph = person
            x0 = int(20 + speed * t) % max(1, w - pw)
            y0 = int(h - ph - 10 + 8 * np.sin(t / 3))
            img[y0:y0 + ph, x0:x0 + pw] = body
            pts = np.array([[x0, y0], [x0 + pw, y0], [x0, y0 + ph], [x0 + pw, y0 + ph], [np.nan, np.nan]])
        if noise:
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        out.append((img, pts))
    return K, out


def _track(K, size, frames, mask=True, gray=False, **opts):
    """Run the tracker: 3-channel BGR frames, or gray ones with the person points as a list of one array per part."""
    tracker = CameraTracker(K, size, **opts)
    for img, pts in frames:
        if gray:
            tracker.add(img, [pts[:2], pts[2:]] if mask and pts is not None else None)  # upper + lower half
        else:
            tracker.add(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), pts if mask else None)
    return tracker, tracker.finish()


def _clip(pano, size, f, Rs, person=(120, 220), speed=6.0, mask=True, gray=False, **opts):
    K, frames = _frames(pano, size, f, Rs, person, speed)
    return _track(K, size, frames, mask, gray, **opts)


def _rot(rotvec_deg: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()


def _pan(n: int = 60) -> np.ndarray:
    """30° pan (about y) and 6° tilt (about x) over n frames, eased; a little roll."""
    s = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    return _rot(np.stack([6 * s, 30 * s, 2 * np.sin(3 * s)], -1))


def _shake(n: int = 60, seed: int = 5) -> np.ndarray:
    """Hand-held shake: smooth random ±1° about all three axes."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    ang = np.mean([np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi, 3)) for p in (37.0, 17.0, 9.0)], axis=0)
    return _rot(ang - ang[0])


def _errors(motion: CameraMotion, Rs: np.ndarray) -> np.ndarray:
    return rotation_angle_deg(motion.R_cam_from_cam0, Rs)


def test_rotation_angle():
    assert rotation_angle_deg(np.eye(3), _rot(np.array([0, 0, 12.5]))) == pytest.approx(12.5)
    assert rotation_angle_deg(_rot(np.array([3, 0, 0])), _rot(np.array([3, 0, 0]))) == pytest.approx(0, abs=1e-6)


def test_pan_and_tilt_follow_the_truth(pano):
    """1280×720 frames tracked at 640: K is scaled with the frame."""
    Rs = _pan(60)
    _, m = _clip(pano, (1280, 720), 900.0, Rs, person=(240, 440), speed=12.0)
    err = _errors(m, Rs)
    print(f"pan 30°: max error {err.max():.3f}°, mean {err.mean():.3f}°, final {err[-1]:.3f}°")
    assert m.R_cam_from_cam0.shape == (60, 3, 3) and not m.static
    assert m.reliable.all() and (m.inliers[1:] >= 100).all() and m.inliers[0] == 0
    assert err.max() < 0.5


def test_handheld_shake(pano):
    Rs = _shake(60)
    _, m = _clip(pano, (640, 360), 500.0, Rs)
    err = _errors(m, Rs)
    print(f"shake ±1°: max error {err.max():.3f}°, mean {err.mean():.3f}°")
    assert not m.static and m.reliable.all()
    assert err.max() < 0.2


@pytest.mark.parametrize("gray", [False, True])
def test_static_camera_with_a_moving_person(pano, gray):
    Rs = np.repeat(np.eye(3)[None], 30, 0)
    _, m = _clip(pano, (640, 360), 500.0, Rs, gray=gray)
    assert m.static and m.reliable.all()
    np.testing.assert_array_equal(m.R_cam_from_cam0, Rs)


@pytest.mark.parametrize("mask", [True, False])
def test_large_foreground_does_not_move_a_static_camera(pano, mask):
    """A person covering ~40% of the frame, moving fast: static with or without its mask (RANSAC rejects it)."""
    Rs = np.repeat(np.eye(3)[None], 30, 0)
    _, m = _clip(pano, (640, 360), 500.0, Rs, person=(300, 300), speed=8.0, mask=mask)
    assert m.static
    np.testing.assert_array_equal(m.R_cam_from_cam0, Rs)


def test_large_foreground_during_a_pan(pano):
    """Unmasked, a big moving foreground costs accuracy at most a little; masked, it is not looked at at all."""
    Rs = _pan(40)
    K, frames = _frames(pano, (640, 360), 500.0, Rs, person=(300, 300), speed=8.0)
    err = {}
    for mask in (True, False):
        _, m = _track(K, (640, 360), frames, mask=mask)
        err[mask] = _errors(m, Rs).max()
    print(f"pan with a 40% foreground: max error masked {err[True]:.3f}°, unmasked {err[False]:.3f}°")
    assert err[True] < 0.5 and err[False] < 1.0


def test_uniform_background_is_unreliable_not_an_error():
    K = _K(320, 240, 300.0)
    assert CameraTracker(K, (320, 240)).finish().R_cam_from_cam0.shape == (0, 3, 3)  # no frames: no error either
    tracker = CameraTracker(K, (320, 240))
    for _ in range(10):
        tracker.add(np.full((240, 320, 3), 90, np.uint8), None)
    m = tracker.finish()
    assert not m.reliable.any() and not m.static and (m.inliers == 0).all()
    np.testing.assert_array_equal(m.R_cam_from_cam0, np.repeat(np.eye(3)[None], 10, 0))


def test_frames_at_a_lower_resolution_than_k(pano):
    """The detector's already-scaled frame may be passed; K, image size and person points stay full-resolution."""
    Rs = _shake(20, seed=9)
    K_half = _K(640, 360, 500.0)
    K_full = np.diag([2.0, 2.0, 1.0]) @ K_half
    K_full[:2, 2] += 0.5  # pixel centres: x_full = 2 x_half + ½
    tracker = CameraTracker(K_full, (1280, 720), max_side=640)
    for R in Rs:
        tracker.add(_render(pano, K_half, (640, 360), R), np.array([[40.0, 40.0], [300.0, 500.0]]))
    err = _errors(tracker.finish(), Rs)
    assert err.max() < 0.2


def test_gap_is_interpolated(pano):
    """Frames where the background is covered are unreliable and slerped between their neighbours."""
    Rs = _pan(30)
    K = _K(640, 360, 500.0)
    tracker = CameraTracker(K, (640, 360))
    for t, R in enumerate(Rs):
        img = _render(pano, K, (640, 360), R)
        if 12 <= t < 15:
            img[:] = 100  # lens covered
        tracker.add(img, None)
    m = tracker.finish()
    assert (~m.reliable).nonzero()[0].tolist() == [12, 13, 14]
    err = _errors(m, Rs)
    print(f"gap: max error {err.max():.3f}° (reliable {err[m.reliable].max():.3f}°)")
    assert err[m.reliable].max() < 0.5 and err.max() < 2.0  # the gap frames are interpolated, not exact


def test_keyframes_limit_drift(pano):
    """A long back-and-forth sweep that ends where it started: the keyframes keep the error from growing per frame."""
    n = 120
    s = np.sin(np.linspace(0, 2 * np.pi, n))
    Rs = _rot(np.stack([2 * s, 15 * s, 0.5 * s], -1))
    K, frames = _frames(pano, (320, 180), 250.0, Rs, person=(60, 110), speed=3.0)
    final = {}
    for keyframes in (True, False):
        _, m = _track(K, (320, 180), frames, keyframes=keyframes)
        err = _errors(m, Rs)
        final[keyframes] = err.max()
        print(f"sweep keyframes={keyframes}: max error {err.max():.3f}°, final {err[-1]:.3f}°")
    assert final[True] < 0.5 and final[True] <= final[False]


def test_streaming_keeps_at_most_two_images(pano):
    Rs = _shake(12)
    tracker, m = _clip(pano, (640, 360), 500.0, Rs)
    images = {id(v) for v in vars(tracker).values() if isinstance(v, np.ndarray) and v.ndim >= 2 and v.size > 10_000}
    assert len(images) <= 2
    assert not any(isinstance(v, (list, tuple)) and v and isinstance(v[0], np.ndarray) for v in vars(tracker).values())


def test_as_dict_round_trip(tmp_path, pano):
    _, m = _clip(pano, (320, 180), 250.0, _shake(8), person=None)
    np.savez(tmp_path / "cam.npz", **m.as_dict())
    with np.load(tmp_path / "cam.npz", allow_pickle=False) as z:
        back = CameraMotion.from_dict(z)
    for f in ("R_cam_from_cam0", "inliers", "reliable", "median_flow_px"):
        np.testing.assert_array_equal(getattr(back, f), getattr(m, f))
    assert back.static == m.static
    R0 = _rot(np.array([10.0, 0, 0]))
    np.testing.assert_allclose(m.R_world2cam(R0)[3], m.R_cam_from_cam0[3] @ R0)
