"""The Anny body model's skeleton and the landmark markers attached to it. No bpy.

Builds once from the real Anny model and caches a small ``.npz`` in the stage cache, one per phenotype (the default
one, or the body of a given stature: :func:`phenotype_for_height`, the capture's ``actor_height_m``):
bone names, parents, rest matrices (Blender convention: Y along the bone), bone lengths, and "markers" — points
rigidly attached to a bone that correspond to MediaPipe landmarks:

* body markers (33, MediaPipe pose order) from Anny's own COCO + foot keypoint regressor at rest, each attached to
  the bone it moves with (a marker's rest position ``m`` on bone ``b`` is stored as ``Rest_b^-1 m``);
* hand markers (21 per side, MediaPipe hand order): bone heads of the thumb/finger chains and fingertips at the far
  end of each distal bone (taken from the skinned vertices).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .config import prepare_environment, stage_cache_dir
from .protocol import MODEL_MISSING, RpcError

SKELETON_CACHE_VERSION = 6

# Anny's phenotype parameters, each in [0, 1] (0.5 = the model's average): the Take's ``shape`` for Anny.
ANNY_PHENOTYPE = ("gender", "age", "muscle", "weight", "height", "proportions")
DEFAULT_PHENOTYPE = np.full(len(ANNY_PHENOTYPE), 0.5)
HEIGHT_TOLERANCE_M = 0.001   # phenotype_for_height: the body's stature within 1 mm of the one asked for

# MediaPipe pose index → (Anny COCO+foot keypoint index, bone the marker rides on). Unlisted: not used.
_BODY_MARKERS: dict[int, tuple[int, str]] = {
    0: (0, "head"), 2: (1, "head"), 5: (2, "head"), 7: (3, "head"), 8: (4, "head"),
    11: (5, "upperarm01.L"), 12: (6, "upperarm01.R"), 13: (7, "upperarm02.L"), 14: (8, "upperarm02.R"),
    15: (9, "wrist.L"), 16: (10, "wrist.R"), 23: (11, "upperleg01.L"), 24: (12, "upperleg01.R"),
    25: (13, "lowerleg01.L"), 26: (14, "lowerleg01.R"), 27: (15, "foot.L"), 28: (16, "foot.R"),
    29: (21, "foot.L"), 30: (22, "foot.R"), 31: (17, "foot.L"), 32: (18, "foot.R"),
}
# MediaPipe pose index → Anny COCO+feet keypoint index (the benchmark's ground truth uses the same pairs).
BODY_MARKER_COCO = {mp: coco for mp, (coco, _) in _BODY_MARKERS.items()}

# MediaPipe hand landmark → Anny bone whose head it is ("tip:" = the far end of that bone).
_HAND_POINTS = [
    "wrist",
    "finger1-1", "finger1-2", "finger1-3", "tip:finger1-3",
    "finger2-1", "finger2-2", "finger2-3", "tip:finger2-3",
    "finger3-1", "finger3-2", "finger3-3", "tip:finger3-3",
    "finger4-1", "finger4-2", "finger4-3", "tip:finger4-3",
    "finger5-1", "finger5-2", "finger5-3", "tip:finger5-3",
]


@dataclasses.dataclass(frozen=True)
class Skeleton:
    names: list[str]
    parents: np.ndarray          # (J,) int
    rest: np.ndarray             # (J, 4, 4) float64, armature space
    lengths: np.ndarray          # (J,) float64
    body_marker_bone: np.ndarray   # (33,) int, -1 where unused
    body_marker_local: np.ndarray  # (33, 3) offset in the bone's rest frame
    hand_marker_bone: np.ndarray   # (2, 21) int  [left, right]
    hand_marker_local: np.ndarray  # (2, 21, 3)

    def index(self, name: str) -> int:
        return self.names.index(name)


def attached_points(W: np.ndarray, bones: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """World positions of points rigidly attached to bones: W (T,J,4,4) posed bone matrices, bones (N,), offsets
    (N,3) in each bone's rest frame → (T,N,3)."""
    Wb = W[:, bones]
    return Wb[:, :, :3, 3] + np.einsum("tjab,jb->tja", Wb[:, :, :3, :3], offsets)


def phenotype_key(phenotype) -> tuple[float, ...] | None:
    """A phenotype (len(ANNY_PHENOTYPE) values in [0, 1], or None) rounded for caching; None for the default one."""
    if phenotype is None:
        return None
    p = np.asarray(phenotype, dtype=np.float64).reshape(-1)
    if p.shape != DEFAULT_PHENOTYPE.shape or not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"an Anny phenotype is {len(ANNY_PHENOTYPE)} values in [0, 1] "
                         f"({', '.join(ANNY_PHENOTYPE)}), not {np.asarray(phenotype).tolist()}")
    key = tuple(round(float(v), 5) for v in p)   # 5 decimals survive the Take's float32 ``shape``
    return None if np.allclose(key, DEFAULT_PHENOTYPE, atol=1e-6) else key


def shape_phenotype(shape) -> np.ndarray | None:
    """An Anny Take's ``shape`` as the phenotype of its skeleton and mesh (for :func:`load_skeleton`,
    ``anny_mesh.load_mesh``), or None — the default body — when it has none Anny can be (an older Take, another
    model's shape)."""
    try:
        key = phenotype_key(shape)
    except ValueError:
        return None
    return None if key is None else np.asarray(shape, dtype=np.float64).reshape(-1)


def phenotype_tag(key: tuple[float, ...] | None) -> str:
    """The cache files' suffix of a phenotype key: "" for the default, else a short digest of its values."""
    if key is None:
        return ""
    import hashlib

    return "_p" + hashlib.sha1(repr(key).encode()).hexdigest()[:12]


def _cache_path(key: tuple[float, ...] | None = None) -> Path:
    from .npz_cache import versioned_path

    return versioned_path(stage_cache_dir(), "anny_skeleton" + phenotype_tag(key), SKELETON_CACHE_VERSION)


def anny_forward(model, key: tuple[float, ...] | None) -> dict:
    """Anny's rest output (rest_vertices, rest_bone_poses, ...) for a phenotype key (None: the default one)."""
    import torch

    with torch.no_grad():
        if key is None:
            return model.forward()
        return model.forward(phenotype_kwargs=dict(zip(ANNY_PHENOTYPE, key)))


def rest_keypoints(model, out: dict, regressor=None) -> np.ndarray:
    """Anny's COCO + feet keypoints (23, 3) of a rest output of :func:`anny_forward` (``regressor``: a built
    ``anny.KeypointsRegressor.coco(model)`` to reuse). They are regressed from the REST vertices, in the frame of
    ``rest_bone_poses``: Anny's posed output puts the root at the origin, ~5 cm away from its rest place
    (regressing from it left every body marker 5 cm off its bone, cache v3 and earlier)."""
    import anny
    import torch

    regressor = regressor if regressor is not None else anny.KeypointsRegressor.coco(model)
    with torch.no_grad():
        return regressor({"vertices": out["rest_vertices"]})[0].double().numpy()


def stature_m(model, key: tuple[float, ...] | None) -> float:
    """The height of Anny's rest mesh (soles to the top of the head, metres) for a phenotype key."""
    z = anny_forward(model, key)["rest_vertices"][0, :, 2]
    return float(z.max() - z.min())


def height_range_m() -> tuple[float, float]:
    """The statures Anny's ``height`` parameter spans (0 and 1) with every other parameter at its average."""
    from .npz_cache import load_or_build, versioned_path

    def build() -> dict[str, np.ndarray]:
        model = load_anny_model()
        return {"range": np.array([stature_m(model, _with_height(0.0)), stature_m(model, _with_height(1.0))])}

    data = load_or_build(versioned_path(stage_cache_dir(), "anny_height_range", 1), build)
    return float(data["range"][0]), float(data["range"][1])


def _with_height(h: float) -> tuple[float, ...]:
    p = DEFAULT_PHENOTYPE.copy()
    p[ANNY_PHENOTYPE.index("height")] = h
    return tuple(round(float(v), 5) for v in p)


def phenotype_for_height(height_m: float) -> np.ndarray:
    """The Anny phenotype of an actor of this height (metres, soles to the top of the head): every parameter at
    its average but ``height``, solved (the stature grows monotonically with it) to within HEIGHT_TOLERANCE_M.
    Raises ValueError, naming the range, for a height Anny cannot be (or a value that looks like centimetres).
    Cached in the stage cache per millimetre of height."""
    from .npz_cache import load_or_build, versioned_path

    h = float(height_m)
    if not np.isfinite(h) or h <= 0:
        raise ValueError(f"the actor's height must be a positive number of metres, not {height_m!r}")
    if h > 3.0:
        raise ValueError(f"an actor's height of {h:g} m: give it in metres (e.g. {h / 100:.2f} for {h:g} cm)")
    lo_m, hi_m = height_range_m()
    if not lo_m - HEIGHT_TOLERANCE_M <= h <= hi_m + HEIGHT_TOLERANCE_M:
        raise ValueError(f"an actor's height of {h:.2f} m is outside what the Anny body can be "
                         f"({lo_m:.2f}–{hi_m:.2f} m)")
    mm = int(round(h * 1000))

    def build() -> dict[str, np.ndarray]:
        model = load_anny_model()
        target = mm / 1000.0
        a, b = 0.0, 1.0
        fa, fb = lo_m - target, hi_m - target
        x = float(np.clip(-fa / (fb - fa), 0.0, 1.0))
        for _ in range(40):   # regula falsi, bracketed: Anny's stature is very nearly linear in ``height``
            fx = stature_m(model, _with_height(x)) - target
            if abs(fx) <= HEIGHT_TOLERANCE_M / 4 or b - a < 1e-7:
                break
            if (fx < 0) == (fa < 0):
                a, fa = x, fx
            else:
                b, fb = x, fx
            x = float(np.clip(a - fa * (b - a) / (fb - fa), a, b))
        return {"phenotype": np.array(_with_height(x))}

    data = load_or_build(versioned_path(stage_cache_dir(), f"anny_height_{mm}mm", 1), build)
    return data["phenotype"].astype(np.float64)


def load_anny_model():
    """The real Anny model (default rig and topology). Raises MODEL_MISSING with the fix when it cannot load."""
    prepare_environment()
    try:
        import anny
    except ImportError as exc:
        raise RpcError(MODEL_MISSING, f"the Anny body model package is not installed ({exc})") from exc
    return anny.Anny()


def _build(key: tuple[float, ...] | None = None) -> dict[str, np.ndarray]:
    model = load_anny_model()
    out = anny_forward(model, key)
    coco = rest_keypoints(model, out)   # (23, 3)
    names = list(model.bone_labels)
    parents = np.asarray(model.bone_parents, dtype=np.int64)
    rest = out["rest_bone_poses"][0].double().numpy()  # (J, 4, 4)
    verts = out["rest_vertices"][0].double().numpy()    # (V, 3)
    weights = model.vertex_bone_weights.double().numpy()  # (V, 9)
    indices = model.vertex_bone_indices.long().numpy()    # (V, 9)
    n_bones = len(names)

    def rest_inv(j: int) -> np.ndarray:
        R, h = rest[j, :3, :3], rest[j, :3, 3]
        inv = np.eye(4)
        inv[:3, :3] = R.T
        inv[:3, 3] = -R.T @ h
        return inv

    def to_local(j: int, point: np.ndarray) -> np.ndarray:
        return (rest_inv(j) @ np.append(point, 1.0))[:3]

    # Lengths: to the child head that lies closest to the bone's Y axis; leaves from their skinned vertices.
    lengths = np.zeros(n_bones)
    children: list[list[int]] = [[] for _ in range(n_bones)]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    for j in range(n_bones):
        y_axis, head = rest[j, :3, 1], rest[j, :3, 3]
        best = 0.0
        best_off_axis = np.inf
        for c in children[j]:
            d = rest[c, :3, 3] - head
            along = float(d @ y_axis)
            off_axis = float(np.linalg.norm(d - along * y_axis))
            if along > 1e-3 and off_axis < 0.5 * along and off_axis < best_off_axis:
                best, best_off_axis = along, off_axis
        if best <= 1e-3:
            mask = (indices == j) & (weights > 0.5)
            vids = np.nonzero(mask.any(axis=1))[0]
            if len(vids):
                best = float(np.max((verts[vids] - head) @ y_axis))
        lengths[j] = max(best, 0.01)

    body_bone = np.full(33, -1, dtype=np.int64)
    body_local = np.zeros((33, 3))
    for mp_index, (coco_index, bone) in _BODY_MARKERS.items():
        j = names.index(bone)
        body_bone[mp_index] = j
        body_local[mp_index] = to_local(j, coco[coco_index])

    hand_bone = np.zeros((2, 21), dtype=np.int64)
    hand_local = np.zeros((2, 21, 3))
    for side, suffix in enumerate((".L", ".R")):
        for k, spec in enumerate(_HAND_POINTS):
            tip = spec.startswith("tip:")
            bone = spec[4:] if tip else spec
            j = names.index(bone + suffix)
            hand_bone[side, k] = j
            hand_local[side, k] = (0.0, lengths[j] if tip else 0.0, 0.0)

    return dict(names=np.array(names), parents=parents, rest=rest, lengths=lengths, body_marker_bone=body_bone,
                body_marker_local=body_local, hand_marker_bone=hand_bone, hand_marker_local=hand_local)


def load_skeleton(phenotype=None) -> Skeleton:
    """The Anny skeleton of a phenotype (default: the model's average body), from the cache or built from the model
    (a few seconds; the cache write is atomic). Every phenotype has the same bones, in the same order."""
    from .npz_cache import load_or_build

    prepare_environment()
    key = phenotype_key(phenotype)
    data = load_or_build(_cache_path(key), lambda: _build(key))
    return Skeleton(
        names=[str(n) for n in data["names"]], parents=data["parents"].astype(np.int64), rest=data["rest"],
        lengths=data["lengths"], body_marker_bone=data["body_marker_bone"],
        body_marker_local=data["body_marker_local"], hand_marker_bone=data["hand_marker_bone"],
        hand_marker_local=data["hand_marker_local"])


def anny_available() -> bool:
    """True when the anny package is importable and its compact cache exists (no import of anny itself)."""
    prepare_environment()
    cache = Path(os.environ["ANNY_CACHE_DIR"])
    return any(cache.glob("**/build_compact_model_data_*.safetensors"))
