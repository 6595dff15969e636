"""Virtual cameras, projection to MediaPipe-layout 2D keypoints, box normalisation and detector-like corruption for
the motion network's training pairs (WHAM-style). numpy only (no bpy, no torch); every random choice comes from the
``numpy.random.Generator`` passed in, so a sample is reproducible from its seed.

Conventions (DESIGN §2, take.py): world Z up, metres; OpenCV camera axes (x right, y down, z forward);
``p_cam = R_world2cam p_world + t_world2cam``; pixels ``(u, v) = (fx x/z + cx, fy y/z + cy)``, origin top-left.
A camera centre C has ``t_world2cam = −R_world2cam C``.

Camera angular velocity (the trajectory decoder's input, what camera_motion.py measures at run time): the rotation
from frame t−1's camera axes into frame t's, ``ΔR_t = R_world2cam[t] R_world2cam[t−1]ᵀ`` (= ``R_cam_from_cam0[t]
R_cam_from_cam0[t−1]ᵀ``), as axis-angle times fps (rad/s, camera axes); frame 0 repeats frame 1.

Box normalisation (WHAM's, with the image size as the unit): with the box centre c (px) and side s (px) and
L = max(width, height)::

    keypoint  k̂ = (k − c) / s
    box       b̂ = ((c_x − W/2) / L, (c_y − H/2) / L, s / L)
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# MediaPipe pose landmarks, the subject's (left, right) pairs; the limb groups a detector swaps.
POSE_PAIRS = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
              (23, 24), (25, 26), (27, 28), (29, 30), (31, 32))
ARM_PAIRS = ((11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22))
LEG_PAIRS = ((23, 24), (25, 26), (27, 28), (29, 30), (31, 32))


def swap_index(pairs) -> np.ndarray:
    """(33,) landmark permutation that swaps the given (left, right) pairs."""
    out = np.arange(33)
    for a, b in pairs:
        out[a], out[b] = b, a
    return out


POSE_MIRROR = swap_index(POSE_PAIRS)

BODY_HEIGHT_M = 1.7       # the person's size that sets the camera's distance (see CameraSettings.person_fraction)


# ---------------------------------------------------------------------------------------------------------------
# Cameras


def intrinsics(fov_deg: float, image_size: tuple[int, int]) -> np.ndarray:
    """K (3, 3) for a field of view along the image's longer side, square pixels, principal point at the centre."""
    w, h = image_size
    f = 0.5 * max(w, h) / np.tan(0.5 * np.radians(fov_deg))
    return np.array([[f, 0.0, 0.5 * w], [0.0, f, 0.5 * h], [0.0, 0.0, 1.0]])


def look_at(centre: np.ndarray, target: np.ndarray, roll: np.ndarray | float = 0.0) -> np.ndarray:
    """(..., 3) camera centres and targets → (..., 3, 3) R_world2cam of a camera looking at the target, level
    (image x horizontal) but for ``roll`` (radians, about the optical axis, clockwise in the image).

    Rows are the camera axes in world coordinates: z = forward, x = forward × up (right), y = z × x (down). Looking
    along +Y this is fit.R_WORLD2CAM_LEVEL."""
    fwd = np.asarray(target, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    fwd = fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)
    right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
    right = right / np.maximum(np.linalg.norm(right, axis=-1, keepdims=True), 1e-9)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd], axis=-2)
    r = np.asarray(roll, dtype=np.float64)
    c, s = np.cos(r), np.sin(r)
    Rroll = np.zeros(r.shape + (3, 3))
    Rroll[..., 0, 0], Rroll[..., 0, 1], Rroll[..., 1, 0], Rroll[..., 1, 1], Rroll[..., 2, 2] = c, -s, s, c, 1.0
    return Rroll @ R


def project(points_world: np.ndarray, K: np.ndarray, R_world2cam: np.ndarray, t_world2cam: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, 3) world points, K (3, 3), R (T, 3, 3), t (T, 3) → (pixels (T, N, 2), camera points (T, N, 3))."""
    cam = np.einsum("tij,tnj->tni", R_world2cam, points_world) + np.asarray(t_world2cam)[:, None, :]
    z = cam[..., 2:3]
    xy = cam[..., :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv = xy * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return uv, cam


def angular_velocity(R_world2cam: np.ndarray, fps: float) -> np.ndarray:
    """(T, 3, 3) → (T, 3) rad/s, axis-angle of R[t] R[t−1]ᵀ times fps (camera axes); frame 0 repeats frame 1."""
    from rigs.rotations import matrix_to_aa

    R = np.asarray(R_world2cam, dtype=np.float64)
    if len(R) < 2:
        return np.zeros((len(R), 3))
    w = matrix_to_aa(R[1:] @ np.swapaxes(R[:-1], -1, -2)) * fps                 # (T−1, 3)
    return np.concatenate([w[:1], w], axis=0)


def level_yaw(R_world2cam0: np.ndarray) -> np.ndarray:
    """(3, 3) Rz: the turn about the world's vertical after which a camera R_world2cam0 looks along +Y (its forward
    direction's horizontal part; for a camera looking straight down or up, its image-up direction's). The motion
    network's world is this yaw-canonical one (world.py's level camera also looks along +Y): points p → Rz p,
    rotations G → Rz G, cameras R_world2cam → R_world2cam Rzᵀ, t_world2cam unchanged."""
    from .motion_data_augment import rot_z

    R = np.asarray(R_world2cam0, dtype=np.float64)
    f = R[2]                                            # the camera's z axis (forward) in world coordinates
    if np.hypot(f[0], f[1]) < 1e-3:
        f = -R[1]                                       # its up axis (−y), horizontal when looking straight down
    return rot_z(np.arctan2(f[0], f[1]))


@dataclasses.dataclass(frozen=True)
class Camera:
    K: np.ndarray              # (3, 3) px
    image_size: tuple[int, int]  # (width, height) px
    R_world2cam: np.ndarray    # (T, 3, 3)
    t_world2cam: np.ndarray    # (T, 3) m
    kind: str                  # "static", "pan", "track", "translate", "follow"


@dataclasses.dataclass(frozen=True)
class CameraSettings:
    """Ranges of the virtual cameras (uniform unless said). The camera looks at a point near the body's mean
    position, so its pitch follows from its height, its distance and that point (at 3 m: from 11° up to 23° down)."""
    fov_deg: tuple[float, float] = (40.0, 90.0)        # along the image's longer side
    image_sizes: tuple[tuple[int, int], ...] = ((1920, 1080), (1080, 1920), (1280, 720), (1440, 1080))
    person_fraction: tuple[float, float] = (0.35, 0.9)  # a 1.7 m person's height / the image height → distance
    distance_m: tuple[float, float] = (1.5, 15.0)      # ... clamped to this
    height_m: tuple[float, float] = (0.3, 2.2)         # camera centre above the floor
    aim_jitter_m: float = 0.15                         # the aimed point's spread around the body (std)
    roll_deg: float = 3.0                              # std
    # motion kinds and their probabilities: still; panning at a steady rate; panning to keep the subject in frame;
    # travelling in a straight line; travelling with the subject (a tracking shot)
    kinds: tuple[str, ...] = ("static", "pan", "track", "translate", "follow")
    kind_p: tuple[float, ...] = (0.35, 0.15, 0.2, 0.15, 0.15)
    pan_rate_dps: tuple[float, float] = (5.0, 35.0)    # yaw rate of "pan" (random sign); pitch rate up to a third
    move_speed_mps: tuple[float, float] = (0.2, 1.5)   # "translate"
    shake_p: float = 0.4                               # a moving camera is hand-held this often ...
    shake_deg: float = 0.15                            # ... with this random-walk step per frame (smoothed)


def _smooth(x: np.ndarray, radius: int) -> np.ndarray:
    """Moving average over ±radius frames along axis 0 (edges: the shorter window)."""
    n = len(x)
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)], axis=0)
    a = np.maximum(np.arange(n) - radius, 0)
    b = np.minimum(np.arange(n) + radius + 1, n)
    return (c[b] - c[a]) / (b - a).reshape((-1,) + (1,) * (x.ndim - 1))


def _yaw_pitch(R_world2cam: np.ndarray, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Turn a camera (3, 3) by yaw about the world vertical and pitch about its own x axis, per frame (T,)."""
    from .motion_data_augment import rot_z
    from rigs.rotations import aa_to_matrix

    Rx = aa_to_matrix(np.stack([pitch, np.zeros_like(pitch), np.zeros_like(pitch)], axis=-1))   # (T, 3, 3) camera
    # camera-to-world axes turn by Rz(yaw) in the world: R_w2c(t) = Rx(t) R_w2c(0) Rz(yaw)ᵀ
    return Rx @ R_world2cam[None] @ np.swapaxes(rot_z(yaw), -1, -2)


def sample_camera(rng: np.random.Generator, body_path: np.ndarray, fps: float,
                  settings: CameraSettings = CameraSettings()) -> Camera:
    """A random camera over a body's path (T, 3) (the root's world positions), reproducible from ``rng``."""
    s = settings
    n = len(body_path)
    size = s.image_sizes[int(rng.integers(len(s.image_sizes)))]
    K = intrinsics(float(rng.uniform(*s.fov_deg)), size)
    frac = float(rng.uniform(*s.person_fraction))
    dist = float(np.clip(K[0, 0] * BODY_HEIGHT_M / (frac * size[1]), *s.distance_m))
    centre = body_path.mean(axis=0)
    height = float(rng.uniform(*s.height_m))
    azimuth = float(rng.uniform(0.0, 2.0 * np.pi))
    horizontal = np.sqrt(max(dist ** 2 - (height - centre[2]) ** 2, 0.25))
    C0 = np.array([centre[0] + horizontal * np.cos(azimuth), centre[1] + horizontal * np.sin(azimuth), height])
    aim = centre + rng.normal(0.0, s.aim_jitter_m, 3)
    roll = float(rng.normal(0.0, np.radians(s.roll_deg)))
    kind = s.kinds[int(rng.choice(len(s.kinds), p=np.asarray(s.kind_p) / np.sum(s.kind_p)))]
    t = np.arange(n) / fps
    C = np.broadcast_to(C0, (n, 3)).copy()
    offset = aim - centre
    follow_aim = _smooth(body_path, int(fps // 3)) + offset                     # (T, 3) a camera operator's lag

    if kind == "pan":
        rate = np.radians(rng.uniform(*s.pan_rate_dps)) * rng.choice([-1.0, 1.0])
        pitch_rate = rate * rng.uniform(-1 / 3, 1 / 3)
        R = _yaw_pitch(look_at(C0, aim, roll), rate * (t - t.mean()), pitch_rate * (t - t.mean()))
    elif kind == "track":
        R = look_at(C, follow_aim, roll)
    elif kind == "translate":
        heading = rng.uniform(0.0, 2.0 * np.pi)
        v = rng.uniform(*s.move_speed_mps) * np.array([np.cos(heading), np.sin(heading), 0.0])
        C = C0 + (t - t.mean())[:, None] * v
        R = look_at(C, follow_aim, roll) if rng.random() < 0.5 else np.broadcast_to(look_at(C0, aim, roll), (n, 3, 3))
    elif kind == "follow":
        C = C0 + (follow_aim - follow_aim.mean(axis=0)) * np.array([1.0, 1.0, 0.0])
        R = look_at(C, follow_aim, roll)
    else:
        R = np.broadcast_to(look_at(C0, aim, roll), (n, 3, 3))
    R = np.array(R)
    if kind != "static" and rng.random() < s.shake_p:
        from rigs.rotations import aa_to_matrix

        steps = rng.normal(0.0, np.radians(s.shake_deg), (n, 3))
        R = aa_to_matrix(_smooth(np.cumsum(steps, axis=0), 2)) @ R        # small hand-held wobble, camera axes
    t_world2cam = -np.einsum("tij,tj->ti", R, C)
    return Camera(K=K, image_size=(int(size[0]), int(size[1])), R_world2cam=R, t_world2cam=t_world2cam, kind=kind)


def visible_in_image(uv: np.ndarray, cam_points: np.ndarray, image_size: tuple[int, int],
                     near: float = 0.1) -> np.ndarray:
    """(T, N) bool: in front of the camera and inside the picture."""
    w, h = image_size
    return ((cam_points[..., 2] > near) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0)
            & (uv[..., 1] < h) & np.all(np.isfinite(uv), axis=-1))


# ---------------------------------------------------------------------------------------------------------------
# Boxes and normalisation

BOX_PAD = 1.2   # the box's side: this times the larger extent of the visible keypoints (WHAM's 1.2)


def boxes_from_keypoints(kp: np.ndarray, vis: np.ndarray, pad: float = BOX_PAD, min_points: int = 2
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Square boxes around the visible keypoints: kp (T, N, 2) px, vis (T, N) → (boxes (T, 3) [cx, cy, s] px,
    ok (T,) bool). Frames with fewer than ``min_points`` visible keypoints take the nearest good frame's box
    (earlier first); with none at all, boxes are NaN."""
    ok = np.sum(vis, axis=1) >= min_points
    big = np.where(vis[..., None], kp, np.nan)
    boxes = np.full((len(kp), 3), np.nan)
    if ok.any():
        lo = np.nanmin(big[ok], axis=1)
        hi = np.nanmax(big[ok], axis=1)
        boxes[ok, :2] = 0.5 * (lo + hi)
        boxes[ok, 2] = pad * np.maximum(np.max(hi - lo, axis=1), 1.0)
        good = np.nonzero(ok)[0]
        idx = np.arange(len(kp))
        prev = np.searchsorted(good, idx, side="right") - 1                      # last good frame at or before
        nearest = np.where(prev >= 0, good[np.maximum(prev, 0)], good[0])
        boxes = boxes[nearest]
    return boxes, ok


def normalize_keypoints(kp: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """kp (T, N, 2) px, boxes (T, 3) px → (k̂ (T, N, 2), b̂ (T, 3)) (module docstring)."""
    w, h = image_size
    L = float(max(w, h))
    k = (kp - boxes[:, None, :2]) / boxes[:, None, 2:3]
    b = np.stack([(boxes[:, 0] - 0.5 * w) / L, (boxes[:, 1] - 0.5 * h) / L, boxes[:, 2] / L], axis=-1)
    return k, b


def intrinsics_features(K: np.ndarray, image_size: Any) -> np.ndarray:
    """K (..., 3, 3), image_size (..., 2) (W, H) → (..., 3) ``(f / L, (c_x − W/2) / L, (c_y − H/2) / L)``, L the
    longer side (f: the mean of f_x and f_y). Training and inference build the ``cam_intrinsics`` input with it."""
    K = np.asarray(K, dtype=np.float64)
    size = np.asarray(image_size, dtype=np.float64)
    L = size.max(axis=-1)
    f = 0.5 * (K[..., 0, 0] + K[..., 1, 1])
    return np.stack([f / L, (K[..., 0, 2] - 0.5 * size[..., 0]) / L, (K[..., 1, 2] - 0.5 * size[..., 1]) / L],
                    axis=-1)


def denormalize_keypoints(k: np.ndarray, b: np.ndarray, image_size: tuple[int, int]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`normalize_keypoints`: (k̂, b̂) → (kp px, boxes px)."""
    w, h = image_size
    L = float(max(w, h))
    boxes = np.stack([b[:, 0] * L + 0.5 * w, b[:, 1] * L + 0.5 * h, b[:, 2] * L], axis=-1)
    return k * boxes[:, None, 2:3] + boxes[:, None, :2], boxes


# ---------------------------------------------------------------------------------------------------------------
# Detector-like corruption


@dataclasses.dataclass(frozen=True)
class CorruptionSettings:
    """How the detector's output is imitated (rates per frame or per landmark; noise as a fraction of the box).

    Measured on the renders (``./reel2rig bench detector-errors standard|heldout --any-render``,
    bench/results/detector-errors-*.json): noise σ 0.86 % / 0.87 % of the box (95th percentile of the error 3.3 % /
    3.9 %), landmark dropouts 0.3 % / 0 %, frame dropouts 0 % / 4 % (one 23-frame burst), left/right swaps 0.1 % /
    0.7 % of the frames (1- and 4-frame runs); hidden landmarks are reported seen (32-39 %), as the training's
    in-picture visibility also keeps them. The defaults below are harsher than the renders on purpose: real
    footage fails more (motion blur, clutter, people cut by the frame), and the network must bridge it."""
    noise: tuple[float, float] = (0.0, 0.015)   # Gaussian σ / box side, drawn per sample
    landmark_dropout: float = 0.03              # each landmark on each frame
    frame_dropout: float = 0.02                 # whole frames
    burst_rate: float = 0.01                    # a run of missing frames starts on a frame with this probability
    burst_frames: tuple[int, int] = (3, 15)     # its length (inclusive)
    swap_rate: float = 0.01                     # a left/right label swap starts on a frame ...
    swap_frames: tuple[int, int] = (1, 5)       # ... lasting this long; arms, legs or the whole body
    box_jitter: float = 0.03                    # the box's centre (× side) and log side, std

    @classmethod
    def clean(cls) -> "CorruptionSettings":
        return cls(noise=(0.0, 0.0), landmark_dropout=0.0, frame_dropout=0.0, burst_rate=0.0, swap_rate=0.0,
                   box_jitter=0.0)


def _runs(rng: np.random.Generator, n: int, rate: float, length: tuple[int, int]) -> list[tuple[int, int]]:
    """Random [start, stop) runs: each frame starts one with probability ``rate``."""
    starts = np.nonzero(rng.random(n) < rate)[0]
    lengths = rng.integers(length[0], length[1] + 1, len(starts))
    return [(int(a), int(min(a + m, n))) for a, m in zip(starts, lengths)]


def corrupt(rng: np.random.Generator, kp: np.ndarray, vis: np.ndarray, box_side: np.ndarray,
            settings: CorruptionSettings = CorruptionSettings()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector-like failures on clean keypoints kp (T, 33, 2) px with visibility vis (T, 33) bool; ``box_side``
    (T,) px sets the noise's scale. Returns (kp (T, 33, 2), vis (T, 33) bool, frame_seen (T,) bool); dropped
    landmarks keep their (noisy) position but lose their visibility."""
    s = settings
    n = len(kp)
    sigma = rng.uniform(*s.noise) * np.asarray(box_side)                         # (T,) px
    out = kp + rng.normal(0.0, 1.0, kp.shape) * sigma[:, None, None]
    seen = np.ones(n, dtype=bool)
    for a, b in _runs(rng, n, s.swap_rate, s.swap_frames):
        group = (ARM_PAIRS, LEG_PAIRS, POSE_PAIRS)[int(rng.integers(3))]
        perm = swap_index(group)
        out[a:b] = out[a:b, perm]                    # labels swap, positions stay: the detector mixed up the sides
        vis = vis.copy()
        vis[a:b] = vis[a:b, perm]
    v = vis & (rng.random(vis.shape) >= s.landmark_dropout)
    seen &= rng.random(n) >= s.frame_dropout
    for a, b in _runs(rng, n, s.burst_rate, s.burst_frames):
        seen[a:b] = False
    v &= seen[:, None]
    return out, v, seen
