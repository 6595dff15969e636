"""The Anny body model's skeleton and the landmark markers attached to it. No bpy.

Builds once from the real Anny model (default phenotype) and caches a small ``.npz`` in the stage cache:
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


def _cache_path() -> Path:
    from .npz_cache import versioned_path

    return versioned_path(stage_cache_dir(), "anny_skeleton", SKELETON_CACHE_VERSION)


def load_anny_model():
    """The real Anny model (default rig and topology). Raises MODEL_MISSING with the fix when it cannot load."""
    prepare_environment()
    try:
        import anny
    except ImportError as exc:
        raise RpcError(MODEL_MISSING, f"the Anny body model package is not installed ({exc})") from exc
    return anny.Anny()


def _build() -> dict[str, np.ndarray]:
    import anny
    import torch

    model = load_anny_model()
    with torch.no_grad():
        out = model.forward()
        # The markers are regressed from the REST vertices, in the frame of ``rest_bone_poses``. Anny's posed output
        # (``vertices``, ``bone_poses``) puts the root at the origin, ~5 cm away from its rest place: regressing
        # from it left every body marker 5 cm off its bone (cache v3 and earlier).
        coco = anny.KeypointsRegressor.coco(model)({"vertices": out["rest_vertices"]})[0].double().numpy()  # (23, 3)
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


def load_skeleton() -> Skeleton:
    """The Anny skeleton, from the cache or built from the model (a few seconds; the cache write is atomic)."""
    from .npz_cache import load_or_build

    prepare_environment()
    data = load_or_build(_cache_path(), _build)
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
