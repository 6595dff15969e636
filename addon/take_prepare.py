"""Turn a Take into the numbers Blender needs: keyframe times, quaternions, root locations, camera settings.

numpy + standard library only, no bpy: everything here is unit-testable in plain pytest. ``take_import`` (bpy)
only copies these arrays into Blender.

Pose (see inference_server/take.py for the Take's conventions)
--------------------------------------------------------------
Blender's pose-bone formula is ``pose_j = pose_parent @ rest_parent^-1 @ rest_j @ basis_j`` and, for a root bone,
``pose_root = rest_root @ basis_root``.  The Take's ``local_rotations_aa`` are exactly the basis rotations, so

* ``rotation_quaternion[t, j] = quat(local_rotations_aa[t, j])``, made sign-continuous over t (Blender interpolates
  quaternion components; a sign flip between keys would swing the bone the long way round);
* the root's basis translation puts its head on ``root_position_world``:
  ``rest_root @ [L | loc]`` has head ``Rest_root[:3,:3] @ loc + Rest_root[:3,3]``, hence
  ``location[t] = Rest_root[:3,:3]ᵀ @ (root_position_world[t] − Rest_root[:3,3])``.

Time
----
Keys land on ``frame = frame_start + (timestamps − timestamps[0]) · fps_scene`` where the scene's frame rate is set
to the clip's (29.97 is 30 / 1.001 via ``fps_base``). Variable-frame-rate clips give fractional frames; values
within 1e-3 of a whole frame are snapped to it.

Camera
------
The Take's camera is OpenCV (x right, y down, z forward) with ``p_cam = R_world2cam @ p_world + t_world2cam``.
Camera-to-world is ``[Rᵀ | −Rᵀ t]``; a Blender camera looks down its −Z with +Y up, which is OpenCV's axes with
y and z negated, so ``cam2world_blender = [Rᵀ | −Rᵀ t] @ diag(1, −1, −1, 1)``.
Lens with ``sensor_fit = 'HORIZONTAL'`` and a 36 mm sensor: ``lens = fx · 36 / W``. Blender's shift is measured in
units of the image width for a horizontal fit; matching the view window to the principal point (cx, cy) gives
``shift_x = (W/2 − cx) / W`` and ``shift_y = a · (cy − H/2) / W`` (y flips from image-down to camera-up), where
``a = fx / fy`` is 1 for square pixels and otherwise becomes Blender's pixel aspect ``pixel_aspect_y / pixel_aspect_x``
(Blender scales the window's height, not the shift, by it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

try:  # inside the extension: bl_ext.<repo>.reel2rig.{addon,rigs,inference_server}
    from ..inference_server import take as take_format
    from ..rigs import rotations
except ImportError:  # `addon` imported as a top-level package with the checkout on sys.path (unit tests)
    from inference_server import take as take_format  # type: ignore[no-redef]
    from rigs import rotations  # type: ignore[no-redef]

SENSOR_WIDTH_MM = 36.0
FRAME_SNAP = 1e-3
#: Keys that may name the source clip in a Take's sidecar, in order of preference (a string, or a table with "path").
VIDEO_META_KEYS = ("source", "video", "source_video", "video_path", "clip")


@dataclasses.dataclass(frozen=True)
class SceneRate:
    """Blender's frame rate is ``fps / fps_base`` with an integer ``fps``."""

    fps: int
    fps_base: float

    @property
    def rate(self) -> float:
        return self.fps / self.fps_base


def scene_rate(fps: float) -> SceneRate:
    """Clip frame rate → Blender (fps, fps_base): 25 → (25, 1); 29.97 → (30, 1.001); 12.5 → (12, 0.96)."""
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"frame rate {fps} is not a positive number")
    for base in (1.0, 1.001):
        whole = round(fps * base)
        if whole >= 1 and abs(whole / base - fps) < 5e-3:
            return SceneRate(int(whole), base)
    whole = max(1, round(fps))
    return SceneRate(int(whole), whole / fps)


@dataclasses.dataclass(frozen=True)
class PreparedCamera:
    resolution: tuple[int, int]  # render width, height in pixels
    lens_mm: float
    sensor_width_mm: float
    shift_x: float
    shift_y: float
    pixel_aspect: float  # fx / fy (1 for square pixels) = Blender's pixel_aspect_y / pixel_aspect_x
    cam2world: np.ndarray  # (T, 4, 4) Blender camera matrices (−Z forward, +Y up)
    locations: np.ndarray  # (T, 3)
    quaternions: np.ndarray  # (T, 4) w, x, y, z; sign-continuous
    animated: bool  # False when R/t are the same on every frame: one static transform


@dataclasses.dataclass(frozen=True)
class PreparedTake:
    name: str  # the clip's name: collection, objects and action are named after it
    take_path: str
    video: str | None  # source clip for the camera background, when it exists
    meta: dict[str, Any]
    bone_names: list[str]
    bone_parents: np.ndarray  # (J,)
    rest_matrices: np.ndarray  # (J, 4, 4) armature space
    bone_lengths: np.ndarray  # (J,) m, at least MIN_BONE_LENGTH
    rate: SceneRate
    frames: np.ndarray  # (T,) Blender frame of each key
    frame_start: int
    frame_end: int
    quaternions: np.ndarray  # (T, J, 4) pose-bone rotation_quaternion (w, x, y, z), sign-continuous over T
    root_location: np.ndarray  # (T, 3) root pose-bone location
    joints_world: np.ndarray  # (T, J, 3) what the bone heads should come out as
    source_first_frame: int  # frame_ids[0]: the source frame shown at frame_start
    camera: PreparedCamera
    mesh: PreparedMesh | None = None  # the skinned body mesh for preview (Anny Takes with a mesh sidecar)
    mesh_warning: str | None = None  # why a mesh the sidecar names is not there (missing, unreadable, other bones)


@dataclasses.dataclass(frozen=True)
class PreparedMesh:
    """The Take's body mesh, ready for Blender: vertices at the Take's rest (the armature's), triangles, and the
    vertex-group weights batched as ``vertex_group.add(indices, weight)`` calls (one per bone and distinct weight)."""

    path: str
    vertices: np.ndarray  # (V, 3) float32, armature space at the Take's rest_matrices
    faces: np.ndarray  # (F, 3) int32
    weight_batches: tuple[tuple[int, float, np.ndarray], ...]  # (bone index, weight, (n,) int vertex indices)
    bone_indices: np.ndarray  # (V, K) int64 (for checks: numpy skinning with the same weights)
    bone_weights: np.ndarray  # (V, K) float64


#: Blender deletes zero-length bones when leaving edit mode; a leaf with no length still needs a head.
MIN_BONE_LENGTH = 1e-3


def clip_name(take_path: str | os.PathLike[str], video: str | None) -> str:
    if video:
        return Path(video).stem or "take"
    name = Path(take_path).name
    if name.endswith(take_format.TAKE_SUFFIX):
        name = name[: -len(take_format.TAKE_SUFFIX)]
    return name or "take"


def person_suffix(meta: Mapping[str, Any]) -> str:
    """" person 2" for the second person of a multi-person capture (sidecar ``person.index`` = 1), " left hand" /
    " right hand" for a hand model's Take of one hand (sidecar ``hand.side``), else ""."""
    person = meta.get("person")
    if isinstance(person, Mapping) and isinstance(person.get("index"), int) and person["index"] > 0:
        return f" person {person['index'] + 1}"
    hand = meta.get("hand")
    if isinstance(hand, Mapping) and hand.get("side") in ("left", "right"):
        return f" {hand['side']} hand"
    return ""


def sibling_takes(take_path: str | os.PathLike[str]) -> list[str]:
    """The other Takes of the same capture — the other people's (sidecar ``person.takes``) or the other hand's
    (``hand.takes``, hand models) — as file names next to this Take, in order, existing files only; [] for a lone
    Take or a missing/unreadable sidecar."""
    import json

    path = Path(take_path)
    sidecar = path.with_name(path.name[: -len(".npz")] + ".json") if path.name.endswith(".npz") else None
    try:
        meta = json.loads(sidecar.read_text()) if sidecar is not None else {}
    except (OSError, ValueError):
        return []
    group = (meta.get("person") or meta.get("hand")) if isinstance(meta, dict) else None
    if not isinstance(group, dict) or not isinstance(group.get("takes"), list):
        return []
    out = []
    for name in group["takes"]:
        if isinstance(name, str) and Path(name).name == name and name != path.name and (path.parent / name).is_file():
            out.append(str(path.parent / name))
    return out


def video_from_meta(meta: Mapping[str, Any], take_path: str | os.PathLike[str]) -> str | None:
    """The source clip named in the sidecar, if it exists on disk (relative paths: next to the Take)."""
    for key in VIDEO_META_KEYS:
        value = meta.get(key)
        if isinstance(value, Mapping):  # the engine writes {"source": {"path": ..., "width": ...}}
            value = value.get("path")
        if isinstance(value, str) and value:
            path = Path(value)
            if not path.is_absolute():
                path = Path(take_path).parent / path
            if path.is_file():
                return str(path)
    return None


def key_frames(timestamps: np.ndarray, frame_start: int, rate: float, where: str = "take") -> np.ndarray:
    """Blender frame of every timestamp (see the module docstring). Timestamps must increase strictly."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size == 0:
        raise take_format.TakeError(f"{where}: the Take has no frames; re-run the capture")
    if not np.all(np.isfinite(ts)):
        raise take_format.TakeError(f"{where}: 'timestamps' contains NaN or infinity; re-run the capture")
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        bad = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise take_format.TakeError(
            f"{where}: 'timestamps' must increase strictly (frame {bad}: {ts[bad]} after {ts[bad - 1]}); "
            "re-run the capture")
    frames = frame_start + (ts - ts[0]) * rate
    snapped = np.round(frames)
    return np.where(np.abs(frames - snapped) < FRAME_SNAP, snapped, frames)


def root_locations(rest_root: np.ndarray, root_position_world: np.ndarray) -> np.ndarray:
    """(4,4), (T,3) → (T,3): the root basis translation that puts its head on root_position_world."""
    rest_root = np.asarray(rest_root, dtype=np.float64)
    offset = np.asarray(root_position_world, dtype=np.float64) - rest_root[:3, 3]
    return offset @ rest_root[:3, :3]  # row-wise Rᵀ @ offset


def pose_quaternions(local_rotations_aa: np.ndarray) -> np.ndarray:
    """(T, J, 3) axis-angle → (T, J, 4) quaternions (w, x, y, z), sign-continuous along T."""
    return rotations.make_continuous(rotations.aa_to_quat(local_rotations_aa), axis=0)


def prepare_camera(K: np.ndarray, R_world2cam: np.ndarray, t_world2cam: np.ndarray,
                   image_size: np.ndarray, where: str = "take") -> PreparedCamera:
    K = np.asarray(K, dtype=np.float64)
    R = np.asarray(R_world2cam, dtype=np.float64)  # (T, 3, 3)
    t = np.asarray(t_world2cam, dtype=np.float64)  # (T, 3)
    width, height = (int(v) for v in np.asarray(image_size).reshape(2))
    if width <= 0 or height <= 0:
        raise take_format.TakeError(f"{where}: image_size {width}x{height} is not a valid frame size")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
        raise take_format.TakeError(f"{where}: intrinsics K has no positive focal length ({K.tolist()})")
    if not (np.isfinite(R).all() and np.isfinite(t).all()):
        raise take_format.TakeError(f"{where}: camera R_world2cam/t_world2cam contain NaN; re-run the capture")
    ycor = fx / fy  # Blender's pixel_aspect_y / pixel_aspect_x: the view window's height scale
    n = R.shape[0]
    cam2world = np.zeros((n, 4, 4))
    Rt = np.swapaxes(R, 1, 2)
    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes → Blender camera axes
    cam2world[:, :3, :3] = Rt @ flip
    cam2world[:, :3, 3] = -np.einsum("tij,tj->ti", Rt, t)
    cam2world[:, 3, 3] = 1.0
    quats = rotations.make_continuous(rotations.matrix_to_quat(cam2world[:, :3, :3]), axis=0)
    animated = bool(n > 1 and (np.abs(R - R[:1]).max() > 1e-7 or np.abs(t - t[:1]).max() > 1e-7))
    return PreparedCamera(
        resolution=(width, height),
        lens_mm=float(fx * SENSOR_WIDTH_MM / width),
        sensor_width_mm=SENSOR_WIDTH_MM,
        shift_x=float((0.5 * width - cx) / width),
        shift_y=float(ycor * (cy - 0.5 * height) / width),
        pixel_aspect=float(ycor),
        cam2world=cam2world,
        locations=cam2world[:, :3, 3].copy(),
        quaternions=quats,
        animated=animated,
    )


def prepare_take(take: take_format.Take, frame_start: int = 1, video: str | None = None,
                 with_mesh: bool = True) -> PreparedTake:
    """Everything take_import writes, from a Take read with ``take.read_take``. Raises TakeError naming the file.
    ``with_mesh``: also read the body mesh the sidecar names (a problem with it is a ``mesh_warning``, not an error)."""
    where = str(take.path)
    a = take.arrays
    if video is None:
        video = video_from_meta(take.meta, take.path)
    rate = scene_rate(float(a["fps"]))
    frames = key_frames(a["timestamps"], frame_start, rate.rate, where)
    parents = np.asarray(a["bone_parents"], dtype=np.int64)
    if parents.shape[0] == 0:
        raise take_format.TakeError(f"{where}: the Take has no bones; re-run the capture")
    for j, p in enumerate(parents):
        if p >= j or p < -1 or (p == -1 and j != 0):
            raise take_format.TakeError(
                f"{where}: bone {j} has parent {p}; bones must come parent-first with the root (parent -1) first")
    rest = np.asarray(a["rest_matrices"], dtype=np.float64)
    local = np.asarray(a["local_rotations_aa"], dtype=np.float64)
    root_pos = np.asarray(a["root_position_world"], dtype=np.float64)
    for name, arr in (("rest_matrices", rest), ("local_rotations_aa", local), ("root_position_world", root_pos)):
        if not np.isfinite(arr).all():
            raise take_format.TakeError(f"{where}: '{name}' contains NaN or infinity; re-run the capture")
    names = take.bone_names
    if len(set(names)) != len(names) or any(not n for n in names):
        raise take_format.TakeError(f"{where}: bone names must be unique and non-empty")
    lengths = np.maximum(np.nan_to_num(np.asarray(a["bone_lengths"], dtype=np.float64), nan=0.0), MIN_BONE_LENGTH)
    frame_ids = np.asarray(a["frame_ids"])
    mesh, mesh_warning = (prepare_mesh(take, rest) if with_mesh else (None, None))
    return PreparedTake(
        name=re.sub(r"\.(person\d+|left_hand|right_hand)$", "", clip_name(take.path, video)) + person_suffix(take.meta),
        take_path=str(take.path),
        video=video,
        meta=dict(take.meta),
        bone_names=names,
        bone_parents=parents,
        rest_matrices=rest,
        bone_lengths=lengths,
        rate=rate,
        frames=frames,
        frame_start=int(frame_start),
        frame_end=int(math.ceil(frames[-1] - 1e-9)),
        quaternions=pose_quaternions(local),
        root_location=root_locations(rest[0], root_pos),
        joints_world=np.asarray(a["joints_world"], dtype=np.float64),
        source_first_frame=int(frame_ids[0]),
        camera=prepare_camera(a["K"], a["R_world2cam"], a["t_world2cam"], a["image_size"], where),
        mesh=mesh,
        mesh_warning=mesh_warning,
    )


def dense_skin_weights(bone_indices: np.ndarray, bone_weights: np.ndarray, n_bones: int) -> np.ndarray:
    """(V, K) influences → (V, J) float64 weights (a bone named twice in a row adds up)."""
    V = bone_indices.shape[0]
    flat = (np.arange(V)[:, None] * n_bones + bone_indices).ravel()
    return np.bincount(flat, weights=np.asarray(bone_weights, np.float64).ravel(),
                       minlength=V * n_bones).reshape(V, n_bones)


def skin_vertices(vertices: np.ndarray, dense: np.ndarray, rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """Linear blend skinning of one pose: ``v' = Σ_j w_j · posed_j · rest_j^-1 · v``. (V,3), (V,J), (J,4,4), (J,4,4)
    → (V,3) float64. Blender's Armature modifier (linear, not preserve-volume) does exactly this."""
    rest = np.asarray(rest, np.float64)
    inv = np.zeros_like(rest)  # rigid inverse: [Rᵀ | −Rᵀ t]
    inv[:, :3, :3] = np.swapaxes(rest[:, :3, :3], 1, 2)
    inv[:, :3, 3] = -np.einsum("jba,jb->ja", rest[:, :3, :3], rest[:, :3, 3])
    inv[:, 3, 3] = 1.0
    M = (np.asarray(posed, np.float64) @ inv)[:, :3, :]                  # (J, 3, 4)
    blend = (dense @ M.reshape(M.shape[0], 12)).reshape(-1, 3, 4)       # (V, 3, 4)
    v = np.asarray(vertices, np.float64)
    return np.einsum("vab,vb->va", blend[:, :, :3], v) + blend[:, :, 3]


def prepare_mesh(take: take_format.Take, rest: np.ndarray) -> tuple[PreparedMesh | None, str | None]:
    """The mesh the sidecar's ``"mesh"`` entry names (``take.MESH_FIELDS``), or (None, why) — never raises: the mesh
    is a preview and a Take imports without it. None, None when the sidecar names no mesh (non-Anny models).

    A mesh bound at another rest than the Take's is re-posed onto the Take's rest by its own skinning
    (``skin_vertices`` with posed = the Take's rest), so that Blender's Armature modifier, which binds at the
    armature's rest, deforms it as the engine does."""
    entry = take.meta.get("mesh")
    if not isinstance(entry, Mapping):
        return None, None
    name = entry.get("file")
    if not isinstance(name, str) or not name or Path(name).name != name:
        return None, f"The take's sidecar names no usable mesh file ({name!r}): imported without the body mesh."
    path = Path(take.path).with_name(name)
    try:
        arrays = take_format.read_mesh(path)
    except take_format.TakeError as exc:
        return None, f"No body mesh: {exc}."
    names = [str(n) for n in arrays["bone_names"]]
    if names != take.bone_names:
        return None, f"No body mesh: {path} is skinned to other bones than the take's; re-run the capture."
    vertices = np.asarray(arrays["vertices"], np.float64)
    indices = np.asarray(arrays["bone_indices"], np.int64)
    weights = np.asarray(arrays["bone_weights"], np.float64)
    bound = np.asarray(arrays["rest_matrices"], np.float64)
    if np.abs(bound - rest).max() > 1e-5:
        vertices = skin_vertices(vertices, dense_skin_weights(indices, weights, len(names)), bound, rest)
    return PreparedMesh(path=str(path), vertices=vertices.astype(np.float32),
                        faces=np.asarray(arrays["faces"], np.int32),
                        weight_batches=weight_batches(indices, weights, len(names)),
                        bone_indices=indices, bone_weights=weights), None


def weight_batches(bone_indices: np.ndarray, bone_weights: np.ndarray,
                   n_bones: int) -> tuple[tuple[int, float, np.ndarray], ...]:
    """Vertex-group assignments as few ``add`` calls as possible: per bone, the vertices sharing a weight (float32;
    a bone named twice for a vertex is summed first). Zero weights are left out."""
    dense = dense_skin_weights(bone_indices, bone_weights, n_bones).astype(np.float32)   # (V, J)
    vertex, bone = np.nonzero(dense > 0)
    order = np.lexsort((vertex, dense[vertex, bone], bone))
    vertex, bone = vertex[order], bone[order]
    w = dense[vertex, bone]
    cut = np.flatnonzero((np.diff(bone) != 0) | (np.diff(w) != 0)) + 1
    starts = np.concatenate([[0], cut]).astype(np.int64)
    ends = np.concatenate([cut, [vertex.shape[0]]]).astype(np.int64)
    return tuple((int(bone[a]), float(w[a]), vertex[a:b]) for a, b in zip(starts, ends))


def interleave(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(T,), (T,) → float32 (2T,) [f0, v0, f1, v1, ...] for ``keyframe_points.foreach_set("co", ...)``."""
    co = np.empty((frames.shape[0], 2), dtype=np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    return co.ravel()
