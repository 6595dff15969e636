"""Synthetic training crops for the hand-mesh network: Anny's right hand and forearm, posed within anatomical limits,
random body shape, skin tone, lighting, background and occluders, rendered at 128×128 with ground truth. numpy,
OpenCV and Anny (torch, CPU); no bpy, no GPU.

One sample:

* **Pose** (Anny's ``local-bone`` deltas on the ``.R`` bones, axes as ``bench/motions.py`` documents them): each
  finger curls by a shared amount (open … fist, a mixture so that open hands, fists, pointing and pinching shapes
  all occur) plus per-joint noise, clipped to per-joint ranges (``RANGES_DEG``); knuckle spread; thumb sweep and
  abduction; wrist flexion/extension and deviation; forearm twist.
* **Shape**: the six Anny phenotype values drawn uniformly (gender, age, muscle, weight, height, proportions), age
  from ``MIN_AGE`` (Anny's age 0 is a one-year-old; 0.25 is about 14 years).
* **Camera**: a pinhole looking at the hand from a direction drawn uniformly on the sphere, 0.3–1.2 m away, with a
  random roll; the **crop** is the square around the 2D joints' box, side = 1.5 × its longer edge × U(0.85, 1.2),
  centre shifted by N(0, 0.06 side) — what the engine's crop from the hand landmarks looks like. ``K`` is the crop's
  own intrinsics (128 px), so a crop is an image of its own.
* **Render** (``render``): painter's algorithm with back faces culled, Lambert + a little specular under one random
  directional light and an ambient term, drawn at 2× and area-averaged to 128 px; the hand-only mask is drawn in the
  same pass (forearm faces paint 0). Procedural backgrounds (flat, gradient, smooth noise, clutter of shapes) or
  random crops of the user's photos; occluders (random shapes) in front of some hands, cut from the mask; sensor
  noise, blur and colour jitter.

Ground truth per sample: ``verts`` (778, 3) the template's vertices (``template.anny_vertex``), ``joints3d`` (21, 3)
MediaPipe's 21 hand points (wrist and finger joints are bone heads, tips are the fingertip skin vertices, as the
benchmark's), both in the crop camera's frame (metres, OpenCV axes); ``joints2d`` (21, 2) crop pixels; ``K``
(3, 3); ``mask`` (128, 128) visible hand pixels (0/1); ``image`` (128, 128, 3) uint8 RGB.

Files: shards ``shard_00000.npz`` … of ``SHARD_SIZE`` samples, each written atomically; sample i of shard s is
determined by (seed, s) alone, so an interrupted run resumes by skipping shards that exist.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

CROP = 128
SUPERSAMPLE = 2
SHARD_SIZE = 512
HAND_SIDE = "R"
MIN_AGE = 0.25
# MediaPipe's 21 hand points as Anny bones (None = the fingertip skin vertex at the end of the previous bone)
HAND_POINTS = ["wrist", "finger1-1", "finger1-2", "finger1-3", None, "finger2-1", "finger2-2", "finger2-3", None,
               "finger3-1", "finger3-2", "finger3-3", None, "finger4-1", "finger4-2", "finger4-3", None,
               "finger5-1", "finger5-2", "finger5-3", None]
FOREARM_BONES = ("lowerarm01", "lowerarm02")
HAND_BONE_PREFIXES = ("wrist", "metacarpal", "finger")
FULL_CURL_DEG = {1: (30.0, 40.0, 40.0), 2: (75.0, 95.0, 60.0), 3: (75.0, 95.0, 60.0), 4: (75.0, 95.0, 60.0),
                 5: (75.0, 95.0, 60.0)}
# Per-joint ranges (degrees) the sampled angles are clipped to: anatomical, slightly generous.
RANGES_DEG = {"curl": {1: ((-20, 50), (-15, 60), (-15, 80)), 2: ((-25, 95), (-5, 110), (-5, 80))},
              "spread": (-12.0, 28.0), "thumb_abduct": (-45.0, 25.0), "wrist_flex": (-65.0, 65.0),
              "wrist_dev": (-25.0, 20.0), "twist": (-70.0, 70.0)}
SKIN_RGB = np.array([(0.92, 0.70, 0.60), (0.80, 0.56, 0.44), (0.66, 0.47, 0.32), (0.45, 0.29, 0.19),
                     (0.26, 0.16, 0.11)])


# --- rotations --------------------------------------------------------------------------------------------------

def zxy(z: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """R = Rz @ Rx @ Ry about the bone's own axes (the benchmark's convention), degrees → (N, 3, 3): Euler angles
    applied Y, then X, then Z (``rigs.rotations.euler_to_matrix`` order "YXZ")."""
    from rigs.rotations import euler_to_matrix

    return euler_to_matrix(np.radians(np.stack([x, y, z], axis=-1)), "YXZ")


# --- poses ------------------------------------------------------------------------------------------------------

def sample_hand_channels(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-bone (z, x, y) angles in degrees for n right hands: {bone name: (n, 3)}."""
    out: dict[str, np.ndarray] = {}
    mode = rng.choice(4, size=n, p=[0.3, 0.3, 0.2, 0.2])      # 0 shared curl, 1 independent, 2 open, 3 fist-ish
    shared = rng.uniform(-0.1, 1.05, size=n)
    for f in range(1, 6):
        indep = rng.uniform(-0.1, 1.05, size=n)
        c = np.select([mode == 0, mode == 1, mode == 2, mode == 3],
                      [np.clip(shared + rng.normal(0, 0.15, n), -0.15, 1.1), indep,
                       rng.uniform(-0.15, 0.25, n), rng.uniform(0.6, 1.1, n)])
        ranges = RANGES_DEG["curl"][1 if f == 1 else 2]
        for seg in range(3):
            x = np.clip(c * FULL_CURL_DEG[f][seg] + rng.normal(0, 8.0, n), *ranges[seg])
            z = np.zeros(n)
            y = rng.normal(0, 3.0, n) if seg == 0 else np.zeros(n)
            out[f"finger{f}-{seg + 1}.{HAND_SIDE}"] = np.stack([z, x, y], axis=1)
    spread = rng.uniform(*RANGES_DEG["spread"], size=n)
    sign = -1.0   # .R mirrors Z: spread is -Z for the index on the right side
    for f, k in ((2, 1.0), (3, 0.15), (4, -0.8), (5, -1.6)):
        out[f"finger{f}-1.{HAND_SIDE}"][:, 0] = sign * k * spread + rng.normal(0, 3.0, n)
    out[f"finger1-1.{HAND_SIDE}"][:, 0] = -rng.uniform(*RANGES_DEG["thumb_abduct"], size=n)   # .R: -Z abducts
    out[f"wrist.{HAND_SIDE}"] = np.stack([-rng.uniform(*RANGES_DEG["wrist_flex"], size=n),
                                          rng.uniform(*RANGES_DEG["wrist_dev"], size=n), np.zeros(n)], axis=1)
    out[f"lowerarm01.{HAND_SIDE}"] = np.stack([np.zeros(n), rng.uniform(0, 40, n),
                                               rng.uniform(*RANGES_DEG["twist"], size=n)], axis=1)
    return out


@dataclasses.dataclass
class Posed:
    vertices: np.ndarray    # (n, V_anny, 3) model frame
    points: np.ndarray      # (n, 21, 3) MediaPipe hand points, model frame
    phenotype: np.ndarray   # (n, 6)


class HandPoser:
    """Anny posed in batches: the right arm's bones from ``sample_hand_channels``, the rest at rest."""

    def __init__(self):
        from ..anny_skeleton import load_anny_model

        self.model = load_anny_model()
        self.names = list(self.model.bone_labels)
        self.labels = ("gender", "age", "muscle", "weight", "height", "proportions")
        self.tip_vertex = self._tip_vertices()

    def _tip_vertices(self) -> list[int]:
        """The skin vertex at the far end of each finger's last bone (default shape): the fingertip landmark."""
        import torch

        with torch.no_grad():
            out = self.model()
        verts = out["rest_vertices"][0].double().numpy()
        rest = out["rest_bone_poses"][0].double().numpy()
        idx = self.model.vertex_bone_indices.long().numpy()
        w = self.model.vertex_bone_weights.double().numpy()
        top = idx[np.arange(len(idx)), w.argmax(1)]
        tips = []
        for f in range(1, 6):
            j = self.names.index(f"finger{f}-3.{HAND_SIDE}")
            cand = np.nonzero(top == j)[0]
            tips.append(int(cand[((verts[cand] - rest[j, :3, 3]) @ rest[j, :3, 1]).argmax()]))
        return tips

    def pose(self, channels: dict[str, np.ndarray], phenotype: np.ndarray) -> Posed:
        import torch

        n = phenotype.shape[0]
        J = len(self.names)
        deltas = np.tile(np.eye(4, dtype=np.float32), (n, J, 1, 1))
        for bone, zxy_deg in channels.items():
            deltas[:, self.names.index(bone), :3, :3] = zxy(zxy_deg[:, 0], zxy_deg[:, 1], zxy_deg[:, 2])
        pheno = {k: torch.tensor(phenotype[:, i], dtype=torch.float32) for i, k in enumerate(self.labels)}
        with torch.no_grad():
            out = self.model(pose_parameters=torch.tensor(deltas), pose_parameterization="local-bone",
                             phenotype_kwargs=pheno)
        verts = out["vertices"].double().numpy()
        bones = out["bone_poses"].double().numpy()
        points = np.zeros((n, 21, 3))
        tip = 0
        for k, bone in enumerate(HAND_POINTS):
            if bone is None:
                points[:, k] = verts[:, self.tip_vertex[tip]]
                tip += 1
            else:
                points[:, k] = bones[:, self.names.index(f"{bone}.{HAND_SIDE}"), :3, 3]
        return Posed(verts, points, phenotype)


# --- camera and crop ----------------------------------------------------------------------------------------------

def random_camera(rng: np.random.Generator, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R_world2cam, t_world2cam) of a camera looking at `centre` from a random direction, 0.3-1.2 m, random roll."""
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    dist = rng.uniform(0.3, 1.2)
    eye = centre + dist * d
    fwd = -d                                         # camera +Z looks at the hand
    up = rng.normal(size=3)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])                 # rows: camera axes in world (OpenCV: x right, y down, z fwd)
    return R, -R @ eye


def crop_intrinsics(rng: np.random.Generator | None, joints_cam: np.ndarray) -> np.ndarray:
    """K of the 128-px crop around the joints' box (side 1.5 × the longer edge; jittered when `rng` is given)."""
    xy = joints_cam[:, :2] / joints_cam[:, 2:3]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre, side = (lo + hi) / 2, 1.5 * float((hi - lo).max())
    if rng is not None:
        side *= rng.uniform(0.85, 1.2)
        centre = centre + rng.normal(0, 0.06 * side, size=2)
    f = CROP / side
    return np.array([[f, 0, CROP / 2 - f * centre[0]], [0, f, CROP / 2 - f * centre[1]], [0, 0, 1.0]])


# --- rendering ----------------------------------------------------------------------------------------------------

def background(rng: np.random.Generator, size: int, photos: list[np.ndarray] | None = None) -> np.ndarray:
    """(size, size, 3) float32 in [0, 1]: a photo crop, or flat / gradient / smooth noise / clutter."""
    import cv2

    if photos and rng.random() < 0.6:
        img = photos[rng.integers(len(photos))]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.2, 1.0) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        return cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    kind = rng.integers(4)
    base = rng.uniform(0, 1, 3)
    if kind == 0:
        return np.broadcast_to(base, (size, size, 3)).astype(np.float32).copy()
    ramp = np.linspace(0, 1, size)
    a = rng.uniform(0, 2 * np.pi)
    g = (np.cos(a) * ramp[None, :] + np.sin(a) * ramp[:, None])[..., None]
    img = (base * (1 - g) + rng.uniform(0, 1, 3) * g).astype(np.float32)
    if kind == 2:
        cells = int(rng.integers(3, 12))
        noise = cv2.resize(rng.uniform(-0.35, 0.35, (cells, cells, 3)).astype(np.float32), (size, size),
                           interpolation=cv2.INTER_CUBIC)
        img = img + noise
    elif kind == 3:
        for _ in range(int(rng.integers(4, 25))):
            colour = tuple(float(c) for c in rng.uniform(0, 1, 3))
            p = rng.integers(0, size, 2)
            r = int(rng.integers(size // 20, size // 3))
            shape = rng.integers(3)
            if shape == 0:
                cv2.circle(img, (int(p[0]), int(p[1])), r, colour, -1)
            elif shape == 1:
                cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[0]) + r, int(p[1]) + r // 2), colour, -1)
            else:
                q = rng.integers(0, size, 2)
                cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(rng.integers(1, 6)))
    return np.clip(img, 0, 1)


def render(verts_cam: np.ndarray, faces: np.ndarray, is_hand: np.ndarray, K: np.ndarray, albedo: np.ndarray,
           light: np.ndarray, ambient: float, diffuse: float, specular: float, bg: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Painter's-algorithm render of a triangle mesh in camera space at ``CROP`` px (drawn at ``SUPERSAMPLE``×).

    verts_cam (V, 3), faces (F, 3) counter-clockwise from outside, is_hand (F,) bool, K (3, 3) at CROP px, albedo
    (3,), light (3,) unit direction *towards* the light in camera space, bg (S, S, 3) at the supersampled size.
    Returns (image (CROP, CROP, 3) float32 in [0, 1], hand mask (CROP, CROP) float32 coverage in [0, 1])."""
    import cv2

    s = SUPERSAMPLE
    size = CROP * s
    tri = verts_cam[faces]                                         # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    centre = tri.mean(axis=1)
    front = ((n * centre).sum(axis=1) < 0) & (tri[:, :, 2].min(axis=1) > 1e-3)   # faces looking at the camera
    view = -centre / np.maximum(np.linalg.norm(centre, axis=1, keepdims=True), 1e-12)
    half = light + view
    half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
    lam = np.clip(n @ light, 0, None)
    spec = np.clip((n * half).sum(axis=1), 0, None) ** 24
    shade = albedo[None] * (ambient + diffuse * lam[:, None]) + specular * spec[:, None]
    uv = tri @ K.T
    # supersampled pixels: s·u + (s − 1)/2, so that the s×s block averaged into crop pixel i is centred on u = i
    uv = uv[..., :2] / uv[..., 2:3] * s + (s - 1) / 2                # (F, 3, 2)
    order = np.argsort(-centre[:, 2])                              # far to near
    img = np.ascontiguousarray(bg, dtype=np.float32)
    mask = np.zeros((size, size), np.float32)
    shift = 4                                                      # sub-pixel vertex positions for fillConvexPoly
    pts_all = np.round(uv * (1 << shift)).astype(np.int32)
    lim = np.abs(uv).max(axis=(1, 2)) < 8 * size
    for f in order:
        if not (front[f] and lim[f]):
            continue
        pts = pts_all[f]
        cv2.fillConvexPoly(img, pts, tuple(float(c) for c in np.clip(shade[f], 0, 1)), cv2.LINE_8, shift)
        cv2.fillConvexPoly(mask, pts, 1.0 if is_hand[f] else 0.0, cv2.LINE_8, shift)
    img = cv2.resize(img, (CROP, CROP), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (CROP, CROP), interpolation=cv2.INTER_AREA)
    return img, mask


def occlude(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, joints2d: np.ndarray) -> None:
    """An occluder (ellipse or polygon) over part of the hand, in place: painted on the image, cut from the mask."""
    import cv2

    occ = np.zeros(mask.shape, np.float32)
    c = joints2d[rng.integers(21)] + rng.normal(0, 6, 2)
    if rng.random() < 0.5:
        axes = (int(rng.integers(6, 30)), int(rng.integers(4, 20)))
        cv2.ellipse(occ, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    else:
        pts = (c + rng.normal(0, 14, (int(rng.integers(3, 7)), 2))).astype(np.int32)
        cv2.fillPoly(occ, [cv2.convexHull(pts)], 1.0)
    colour = rng.uniform(0, 1, 3).astype(np.float32)
    texture = colour + rng.normal(0, 0.05, img.shape).astype(np.float32)
    img[...] = img * (1 - occ[..., None]) + texture * occ[..., None]
    mask *= 1 - occ


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Colour jitter, blur and sensor noise → uint8."""
    import cv2

    img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.6, 1.4)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    img = img + rng.normal(0, rng.uniform(0, 0.03), img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# --- the generator --------------------------------------------------------------------------------------------------

class Generator:
    """Makes samples; ``photos``: optional background images (float32 RGB in [0, 1])."""

    def __init__(self, photos: list[np.ndarray] | None = None):
        from ..anny_mesh import load_mesh
        from .template import anny_template

        self.template = anny_template()
        self.poser = HandPoser()
        mesh = load_mesh()
        names = self.poser.names
        side = f".{HAND_SIDE}"
        hand_bones = [j for j, b in enumerate(names) if b.endswith(side) and b.startswith(HAND_BONE_PREFIXES)]
        arm_bones = [j for j, b in enumerate(names) if b.endswith(side) and b.startswith(FOREARM_BONES)]
        w = np.zeros((mesh.n_vertices, len(names)))
        np.add.at(w, (np.arange(mesh.n_vertices)[:, None].repeat(mesh.bone_indices.shape[1], 1),
                      mesh.bone_indices), mesh.bone_weights)
        hand_w = w[:, hand_bones].sum(axis=1)
        arm_w = w[:, arm_bones].sum(axis=1)
        region = (hand_w + arm_w) > 0.5
        faces = mesh.faces[region[mesh.faces].all(axis=1)]
        self.faces = faces.astype(np.int64)
        self.face_is_hand = hand_w[faces].mean(axis=1) > 0.5
        self.photos = photos

    def samples(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        channels = sample_hand_channels(rng, n)
        pheno = rng.uniform(0, 1, (n, 6))
        pheno[:, 1] = MIN_AGE + (1 - MIN_AGE) * pheno[:, 1]
        posed = self.poser.pose(channels, pheno)
        out = {k: [] for k in ("image", "mask", "verts", "joints3d", "joints2d", "K")}
        for i in range(n):
            R, t = random_camera(rng, posed.points[i].mean(axis=0))
            verts = posed.vertices[i] @ R.T + t                       # (V_anny, 3) camera frame
            joints = posed.points[i] @ R.T + t                        # (21, 3)
            K = crop_intrinsics(rng, joints)
            light = rng.normal(size=3)
            light[2] = -abs(light[2])                                 # from the camera's side
            light /= np.linalg.norm(light)
            tone = SKIN_RGB[rng.integers(len(SKIN_RGB))] * rng.uniform(0.85, 1.15, 3)
            bg = background(rng, CROP * SUPERSAMPLE, self.photos)
            img, mask = render(verts, self.faces, self.face_is_hand, K, np.clip(tone, 0, 1), light,
                               ambient=rng.uniform(0.25, 0.6), diffuse=rng.uniform(0.4, 0.9),
                               specular=rng.uniform(0.0, 0.15), bg=bg)
            j2d = joints @ K.T
            j2d = j2d[:, :2] / j2d[:, 2:3]
            if rng.random() < 0.3:
                occlude(rng, img, mask, j2d)
            out["image"].append(finish(rng, img))
            out["mask"].append((mask > 0.5).astype(np.uint8))
            out["verts"].append(verts[self.template.anny_vertex].astype(np.float32))
            out["joints3d"].append(joints.astype(np.float32))
            out["joints2d"].append(j2d.astype(np.float32))
            out["K"].append(K.astype(np.float32))
        return {k: np.stack(v) for k, v in out.items()}


def shard_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard_{index:05d}.npz"


def write_shards(folder: str | Path, count: int, seed: int = 0, photos: list[np.ndarray] | None = None,
                 progress=None, shard_size: int = SHARD_SIZE) -> list[Path]:
    """Generate ``count`` samples into ``folder`` as shards of ``shard_size`` (existing shards are kept:
    resumable)."""
    import io

    from ..take import atomic_write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen: Generator | None = None
    paths = []
    n_shards = math.ceil(count / shard_size)
    for s in range(n_shards):
        path = shard_path(folder, s)
        paths.append(path)
        n = min(shard_size, count - s * shard_size)
        if path.exists():
            try:
                with np.load(path) as z:
                    if z["image"].shape[0] == n:
                        if progress:
                            progress(s + 1, n_shards)
                        continue
            except Exception:  # noqa: BLE001 - a damaged shard is made again
                pass
        gen = gen or Generator(photos)
        rng = np.random.default_rng([seed, s])
        data: dict[str, list[np.ndarray]] = {}
        for start in range(0, n, 64):
            chunk = gen.samples(rng, min(64, n - start))
            for k, v in chunk.items():
                data.setdefault(k, []).append(v)
        buf = io.BytesIO()
        np.savez(buf, **{k: np.concatenate(v) for k, v in data.items()})
        atomic_write_bytes(path, buf.getvalue())
        if progress:
            progress(s + 1, n_shards)
    return paths


def load_photos(folder: str | Path, limit: int = 200) -> list[np.ndarray]:
    """Background photos (JPG/PNG) from a folder, as float32 RGB in [0, 1], at most ``limit``."""
    import cv2

    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and len(out) < limit:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None and min(img.shape[:2]) >= 64:
                out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
    if not out:
        raise ValueError(f"no JPG/PNG images of at least 64 px in {folder}")
    return out


def contact_sheet(shard: dict[str, np.ndarray], path: str | Path, n: int = 24) -> None:
    """A picture of the first n samples: the crop, its mask outline and the 21 joints (pictures, not numbers)."""
    import cv2

    tiles = []
    for i in range(min(n, shard["image"].shape[0])):
        img = cv2.resize(shard["image"][i], (256, 256), interpolation=cv2.INTER_NEAREST).copy()
        m = cv2.resize(shard["mask"][i], (256, 256), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (0, 255, 0), 1)
        for k, (x, y) in enumerate(shard["joints2d"][i] * 2):
            colour = (255, 255, 255) if k == 0 else tuple(int(c) for c in np.array(
                [(255, 60, 60), (255, 200, 0), (60, 220, 60), (60, 160, 255), (200, 80, 255)][(k - 1) // 4]))
            cv2.circle(img, (int(x), int(y)), 3, colour, -1)
        tiles.append(img)
    while len(tiles) % 6:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + 6], axis=1) for r in range(0, len(tiles), 6)]
    sheet = np.concatenate(rows, axis=0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the contact sheet")
    from ..take import atomic_write_bytes

    atomic_write_bytes(Path(path), buf.tobytes())
