"""The Take: the one file format that crosses from the engine to the add-on.

numpy + standard library only (no bpy, no torch): the add-on imports this inside Blender's Python.

A Take is two files side by side, both written atomically (temp file + rename):

* ``NAME.take.npz`` — arrays, loaded with ``allow_pickle=False``;
* ``NAME.take.json`` — a small sidecar with metadata (schema version, source clip, timings);
* ``NAME.mesh.npz`` (optional, Anny Takes) — the body model's skinned mesh for preview, named in the sidecar's
  ``"mesh"`` entry; see :data:`MESH_FIELDS`. It is written before the sidecar, so a sidecar never names a mesh that
  was not written; a reader that cannot read it imports the Take without the mesh.

A multi-person capture (``people`` option) writes one Take per person — ``NAME.take.npz`` for the person seen in
the most frames, then ``NAME.person2.take.npz``, … — each a complete Take on the clip's full frame range (``valid``
False where that person is not seen), and each sidecar names them all: ``"person": {"index": k, "of": n, "takes":
[file names]}``.

``FIELDS`` below is the single place where every array is documented: name, dtype, shape, unit, meaning.
The writer checks every array against it; the reader checks again and refuses a newer major schema version.

Conventions (see DESIGN §2)
---------------------------
* World: Blender's — metres, Z up, right-handed. The subject faces roughly −Y at rest (Anny's rest pose).
* Camera: OpenCV convention, x right, y down, z forward.  ``p_cam = R_world2cam @ p_world + t_world2cam``;
  pixels ``u = K @ p_cam / z``, origin at the top-left corner of the (rotation-corrected) image.
* Skeleton: bones in parent-before-child order, root first (parent −1).  ``rest_matrices[j]`` is bone j's
  rest pose in armature (= world, the armature object sits at the identity) space: rotation columns are the bone's
  X, Y, Z axes, Y pointing from head to tail (Blender's bone convention), translation is the head.
* Pose: ``local_rotations_aa[t, j]`` is bone j's rotation relative to its rest pose, axis-angle in the bone's own
  rest axes — exactly Blender's ``pose_bone.matrix_basis`` rotation. The posed armature-space matrix is
  ``W_j = W_parent @ (rest_parent^-1 @ rest_j) @ [R(local_j) | 0]`` and, for the root,
  ``W_root = [R_root_rest @ R(local_root) | root_position_world]``.
  ``joints_world`` holds the resulting bone heads, so a reader can check its own forward kinematics.
* Left/right: the subject's own, never the image side.  Missing values in landmark arrays are NaN.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

SCHEMA_VERSION = "1.3"  # 1.1: hand_landmarks_world, hand_score, hand_source; 1.2: shape, model_pose_aa,
                        # root_position_camera, fit_confidence, model_transfer_error_mm (all optional);
                        # 1.3: foot_contact (optional); R_world2cam / t_world2cam now move with the camera
TAKE_SUFFIX = ".take.npz"
SIDECAR_SUFFIX = ".take.json"


class TakeError(Exception):
    """A Take file is missing, malformed or from a newer engine. The message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    dtype: str  # numpy kind: 'f' float, 'i' integer, 'b' bool, 'U' unicode
    shape: tuple[str | int, ...]  # symbolic: T frames, J bones, or fixed integers
    unit: str
    doc: str
    required: bool = True


# Symbols: T = frames kept in the Take, J = bones of the skeleton, S = shape parameters of the body model.
FIELDS: tuple[Field, ...] = (
    # --- time -----------------------------------------------------------------------------------------------
    Field("frame_ids", "i", ("T",), "frame index", "Index of each kept frame in the source clip (0-based)."),
    Field("timestamps", "f", ("T",), "s", "Presentation time of each frame from the container (not index/fps)."),
    Field("fps", "f", (), "1/s", "Nominal frame rate reported by the container (timestamps are authoritative)."),
    # --- image and camera ------------------------------------------------------------------------------------
    Field("image_size", "i", (2,), "px", "Width, height of the frames after rotation metadata is applied."),
    Field("K", "f", (3, 3), "px", "Camera intrinsics (focal lengths and principal point in pixels)."),
    Field("R_world2cam", "f", ("T", 3, 3), "", "World-to-camera rotation per frame (OpenCV camera axes)."),
    Field("t_world2cam", "f", ("T", 3), "m", "World-to-camera translation per frame."),
    # --- skeleton ---------------------------------------------------------------------------------------------
    Field("bone_names", "U", ("J",), "", "Bone labels of the body model (Anny: 'upperarm01.L', ...)."),
    Field("bone_parents", "i", ("J",), "bone index", "Parent of each bone, -1 for the root; parents come first."),
    Field("rest_matrices", "f", ("J", 4, 4), "m", "Rest pose of each bone in armature space (Y along the bone)."),
    Field("bone_lengths", "f", ("J",), "m", "Head-to-tail length of each bone at rest."),
    # --- motion -----------------------------------------------------------------------------------------------
    Field("local_rotations_aa", "f", ("T", "J", 3), "rad",
          "Rotation of each bone relative to its rest pose, axis-angle in the bone's rest axes."),
    Field("root_position_world", "f", ("T", 3), "m", "World position of the root bone's head."),
    Field("joints_world", "f", ("T", "J", 3), "m", "Bone heads after forward kinematics, world space."),
    Field("bone_fitted", "b", ("T", "J"), "",
          "True where the bone's rotation came from observations this frame (False: held from rest/neighbours)."),
    Field("valid", "b", ("T",), "", "True where a person was detected in the frame."),
    # --- the body model (the sidecar's "model" and "skeleton" name it and its conventions) ---------------------
    Field("shape", "f", ("S",), "",
          "The model's shape for the whole take: Anny's phenotype (gender, age, muscle, weight, height, "
          "proportions in [0, 1]) or SMPL-family/MANO betas.", required=False),
    Field("model_pose_aa", "f", ("T", "J", 3), "rad",
          "The pose in the model's own convention: Anny = local_rotations_aa; SMPL family/MANO = smplx full_pose "
          "axis-angles (model frame, Y up; flat hands, no PCA).", required=False),
    Field("root_position_camera", "f", ("T", 3), "m", "The root joint in camera coordinates (OpenCV axes).",
          required=False),
    Field("fit_confidence", "f", ("T",), "",
          "How much to trust each frame's fit, 0..1: mean visibility of the body landmarks, lowered as the 2D "
          "residual grows past 2% of the person's size (0 where no person).", required=False),
    Field("model_transfer_error_mm", "f", ("T",), "mm",
          "Non-Anny models: mean distance between the model's joints and the Anny fit's corresponding points "
          "they were fitted to.", required=False),
    Field("fit_residual_px", "f", ("T",), "px", "Mean 2D distance between fitted joints and body landmarks."),
    Field("foot_contact", "f", ("T", 4), "",
          "Foot contact probability 0..1 per frame of [left heel, left toe, right heel, right toe], from the fitted "
          "motion (height above the floor and speed; world.py). Feet are pinned where the foot's greater value "
          "exceeds 0.5 (when foot lock was on).", required=False),
    # --- observations (what the detector saw; NaN where nothing was seen) --------------------------------------
    Field("pose_landmarks_2d", "f", ("T", 33, 3), "px",
          "MediaPipe pose landmarks: x, y in pixels and visibility in [0, 1]."),
    Field("pose_landmarks_world", "f", ("T", 33, 3), "m",
          "MediaPipe pose world landmarks, hip-centred, camera-aligned axes (x right, y down, z forward)."),
    Field("hand_landmarks_2d", "f", ("T", 2, 21, 3), "px",
          "Hand landmarks per hand [left, right] (subject's own): x, y in pixels, z relative depth in pixels."),
    Field("hand_landmarks_world", "f", ("T", 2, 21, 3), "m",
          "Metric hand landmarks from the hand network (camera axes, centred on the hand); NaN where it did not run.",
          required=False),
    Field("hand_score", "f", ("T", 2), "", "Confidence of each hand (handedness score; 1 for Holistic's hands).",
          required=False),
    Field("hand_source", "i", ("T", 2), "",
          "Where each hand came from: 0 none, 1 Holistic, 2 hand network on a crop around the body's wrist, "
          "3 hand network on the whole frame.", required=False),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError as exc:
        raise TakeError(f"schema_version {version!r} is not of the form MAJOR.MINOR") from exc


def validate_arrays(arrays: Mapping[str, np.ndarray], where: str = "take") -> tuple[int, int]:
    """Check names, dtypes and shapes against FIELDS; return (T, J). Raises TakeError naming the field."""
    sizes: dict[str, int] = {}
    for field in FIELDS:
        if field.name not in arrays:
            if field.required:
                raise TakeError(f"{where}: field '{field.name}' is missing ({field.doc})")
            continue
        value = arrays[field.name]
        value = value if isinstance(value, Stored) else np.asarray(value)
        kind = np.dtype(value.dtype).kind
        if kind != field.dtype and not (field.dtype == "f" and kind in "iu"):
            raise TakeError(f"{where}: field '{field.name}' has dtype {value.dtype}, expected kind '{field.dtype}'")
        if value.ndim != len(field.shape):
            raise TakeError(f"{where}: field '{field.name}' has shape {value.shape}, expected {field.shape}")
        for axis, (want, got) in enumerate(zip(field.shape, value.shape)):
            if isinstance(want, int):
                if want != got:
                    raise TakeError(
                        f"{where}: field '{field.name}' axis {axis} is {got}, expected {want} (shape {field.shape})")
            elif sizes.setdefault(want, got) != got:
                raise TakeError(
                    f"{where}: field '{field.name}' axis {axis} is {got} but {want} = {sizes[want]} elsewhere")
    return sizes.get("T", 0), sizes.get("J", 0)


def _process_umask() -> int:
    """The process's umask (Linux: read from /proc, elsewhere by setting and restoring it once, at import)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


def make_shareable(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a file (or folder) made by ``tempfile`` — which makes them private, 0600 / 0700 — the mode an ordinary
    one gets (0666 / 0777 less the umask), so the results a studio shares are readable by the others who use them."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


def atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX); the file
    gets an ordinary file's permissions, not the temp file's private ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        make_shareable(tmp)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(Path(path), lambda handle: handle.write(data))


@dataclasses.dataclass(frozen=True)
class Stored:
    """An array to be written as ``dtype`` (a float64 working array stored as float32), converted a block of rows
    at a time as it is written (:func:`write_npz`): no whole converted copy in memory."""
    array: np.ndarray
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim


NPZ_BLOCK_BYTES = 2 << 20   # bytes per block of rows written or read by the streaming npz functions (a few
                            # MB: a block's memory, a long clip's whole arrays never)


def write_npz(handle, arrays: Mapping[str, Any], after_block: Callable[[], None] | None = None) -> None:
    """``numpy.savez_compressed(handle, **arrays)`` (the same file, ``np.load`` reads it), written a block of rows
    at a time: an array on disk (``scratch.py``) is never all in memory. ``arrays`` values: arrays or `Stored`;
    ``after_block`` runs after each block (``scratch.trim``)."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, value in arrays.items():
            source = value.array if isinstance(value, Stored) else np.asarray(value)
            dtype = np.dtype(value.dtype) if isinstance(value, Stored) else source.dtype
            if dtype.hasobject:
                raise TakeError(f"{name}: object arrays cannot be stored")
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": tuple(source.shape)}
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                if source.ndim == 0:
                    member.write(np.asarray(source, dtype).tobytes())
                    continue
                row = max(dtype.itemsize, source.dtype.itemsize) * int(np.prod(source.shape[1:]))
                rows = max(1, NPZ_BLOCK_BYTES // max(1, row))
                for a in range(0, len(source), rows):
                    member.write(np.ascontiguousarray(source[a:a + rows], dtype=dtype).tobytes())
                    if after_block is not None:
                        after_block()


def read_npz_member(archive: zipfile.ZipFile, name: str, allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray],
                    after_block: Callable[[], None] | None = None) -> np.ndarray:
    """One array of an open npz, read a block of rows at a time into ``allocate(shape, dtype)`` (an array on disk
    for a long clip, ``scratch.empty``); ``after_block`` runs after each block."""
    with archive.open(name + ".npy") as member:
        version = np.lib.format.read_magic(member)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(member) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(member))
        if fortran or dtype.hasobject:
            raise TakeError(f"{name}: a Fortran-ordered or object array is not supported here")
        out = allocate(tuple(shape), dtype)
        if not shape:
            out[...] = np.frombuffer(member.read(dtype.itemsize), dtype)[0]
            return out
        row = dtype.itemsize * int(np.prod(shape[1:]))
        rows = max(1, NPZ_BLOCK_BYTES // max(1, row))
        for a in range(0, shape[0], rows):
            b = min(a + rows, shape[0])
            data = member.read((b - a) * row)
            if len(data) != (b - a) * row:
                raise TakeError(f"{name}: the file ends inside the array (truncated)")
            out[a:b] = np.frombuffer(data, dtype).reshape((b - a, *shape[1:]))
            if after_block is not None:
                after_block()
        return out


def sidecar_path(take_path: str | os.PathLike[str]) -> Path:
    take_path = Path(take_path)
    name = take_path.name
    stem = name[: -len(TAKE_SUFFIX)] if name.endswith(TAKE_SUFFIX) else take_path.stem
    return take_path.with_name(stem + SIDECAR_SUFFIX)


# --- the mesh sidecar ------------------------------------------------------------------------------------------------
# Symbols: V vertices, F triangles, K influences per vertex, J bones (the Take's, same names in the same order).
MESH_SUFFIX = ".mesh.npz"
MESH_VERSION = 1
MESH_FIELDS: tuple[Field, ...] = (
    Field("vertices", "f", ("V", 3), "m",
          "Rest vertices in armature space, bound at this file's rest_matrices (the Take's, for the engine's Takes)."),
    Field("faces", "i", ("F", 3), "vertex index", "Triangles, counter-clockwise seen from outside."),
    Field("bone_indices", "i", ("V", "K"), "bone index", "Bone of each influence (index into bone_names)."),
    Field("bone_weights", "f", ("V", "K"), "", "Weight of each influence; each row sums to 1 (padding: 0)."),
    Field("bone_names", "U", ("J",), "", "The bones the indices refer to: the Take's bone_names."),
    Field("rest_matrices", "f", ("J", 4, 4), "m",
          "The bone rest poses the vertices are bound at. Linear blend skinning: v' = Σ_k w_k W_b Rest_b^-1 v."),
)


def mesh_path(take_path: str | os.PathLike[str]) -> Path:
    """``clip.take.npz`` → ``clip.mesh.npz`` (next to it)."""
    take_path = Path(take_path)
    name = take_path.name
    stem = name[: -len(TAKE_SUFFIX)] if name.endswith(TAKE_SUFFIX) else take_path.stem
    return take_path.with_name(stem + MESH_SUFFIX)


def _validate_mesh(arrays: Mapping[str, np.ndarray], where: str) -> None:
    sizes: dict[str, int] = {}
    for field in MESH_FIELDS:
        if field.name not in arrays:
            raise TakeError(f"{where}: mesh field '{field.name}' is missing ({field.doc})")
        value = np.asarray(arrays[field.name])
        kind_ok = value.dtype.kind == field.dtype or (field.dtype == "i" and value.dtype.kind == "u") or \
            (field.dtype == "f" and value.dtype.kind in "iu")
        if not kind_ok or value.ndim != len(field.shape):
            raise TakeError(f"{where}: mesh field '{field.name}' is {value.dtype} {value.shape}, expected "
                            f"kind '{field.dtype}' shape {field.shape}")
        for want, got in zip(field.shape, value.shape):
            if isinstance(want, int) and want != got or isinstance(want, str) and sizes.setdefault(want, got) != got:
                raise TakeError(f"{where}: mesh field '{field.name}' has shape {value.shape}, expected {field.shape}")
    V, J = sizes["V"], sizes["J"]
    faces, indices = np.asarray(arrays["faces"]), np.asarray(arrays["bone_indices"])
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise TakeError(f"{where}: a mesh face names a vertex outside 0..{V - 1}")
    if indices.size and (indices.min() < 0 or indices.max() >= J):
        raise TakeError(f"{where}: a skin weight names a bone outside 0..{J - 1}")
    for name in ("vertices", "bone_weights", "rest_matrices"):
        if not np.isfinite(np.asarray(arrays[name])).all():
            raise TakeError(f"{where}: mesh field '{name}' contains NaN or infinity")


def write_mesh(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """Validate and write a mesh sidecar (atomic). Returns its path."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    unknown = sorted(set(arrays) - {f.name for f in MESH_FIELDS})
    if unknown:
        raise TakeError(f"{path}: fields {unknown} are not in the mesh schema (add them to take.MESH_FIELDS)")
    _validate_mesh(arrays, str(path))
    payload = dict(arrays)
    payload["mesh_version"] = np.array(MESH_VERSION)
    atomic_write(path, lambda handle: np.savez_compressed(handle, **payload))
    return path


def read_mesh(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load and validate a mesh sidecar. Raises TakeError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise TakeError(f"{path}: mesh file not found (re-run the capture to write it)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object), OSError
        raise TakeError(f"{path}: not a readable mesh file ({exc}); re-run the capture to rewrite it") from exc
    version = int(arrays.pop("mesh_version", 0))
    if version != MESH_VERSION:
        raise TakeError(f"{path}: mesh version {version} is not {MESH_VERSION}; re-run the capture or update the add-on")
    _validate_mesh(arrays, str(path))
    return arrays


def write_take(path: str | os.PathLike[str], arrays: Mapping[str, Any], meta: Mapping[str, Any],
               after_block: Callable[[], None] | None = None) -> Path:
    """Validate and write a Take (npz, then sidecar; both atomic). Returns the npz path. ``arrays`` values: arrays
    or `Stored`; written a block of rows at a time (`write_npz`, ``after_block`` after each)."""
    path = Path(path)
    if not path.name.endswith(TAKE_SUFFIX):
        raise TakeError(f"{path}: a Take file name must end in '{TAKE_SUFFIX}'")
    arrays = {k: v if isinstance(v, Stored) else np.asarray(v) for k, v in arrays.items()}
    unknown = sorted(set(arrays) - set(FIELDS_BY_NAME))
    if unknown:
        raise TakeError(f"{path}: fields {unknown} are not in the Take schema (add them to take.FIELDS)")
    n_frames, n_bones = validate_arrays(arrays, where=str(path))
    payload = dict(arrays)
    payload["schema_version"] = np.array(SCHEMA_VERSION)
    atomic_write(path, lambda handle: write_npz(handle, payload, after_block))
    sidecar = {"schema_version": SCHEMA_VERSION, "frames": n_frames, "bones": n_bones, **dict(meta)}
    atomic_write_bytes(sidecar_path(path), json.dumps(sidecar, indent=2, sort_keys=True).encode("utf-8"))
    return path


@dataclasses.dataclass
class Take:
    path: Path
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def n_frames(self) -> int:
        return int(self.arrays["frame_ids"].shape[0])

    @property
    def bone_names(self) -> list[str]:
        return [str(name) for name in self.arrays["bone_names"]]


def read_take(path: str | os.PathLike[str]) -> Take:
    """Load and validate a Take. Raises TakeError with the file name and what to do."""
    path = Path(path)
    if not path.exists():
        raise TakeError(f"{path}: Take file not found — run a capture first or check the path")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object), OSError
        raise TakeError(f"{path}: not a readable Take ({exc}); re-run the capture to rewrite it") from exc
    version = str(arrays.pop("schema_version", "0.0"))
    if _major(version) > _major(SCHEMA_VERSION):
        raise TakeError(
            f"{path}: Take schema {version} is newer than this reader ({SCHEMA_VERSION}); "
            "update the Reel2Rig add-on to read it")
    if _major(version) < _major(SCHEMA_VERSION):
        raise TakeError(f"{path}: Take schema {version} is older than {SCHEMA_VERSION}; re-run the capture")
    validate_arrays(arrays, where=str(path))
    meta: dict[str, Any] = {}
    side = sidecar_path(path)
    if side.exists():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise TakeError(f"{side}: sidecar is not valid JSON ({exc}); re-run the capture") from exc
    meta["schema_version"] = version
    return Take(path=path, arrays=arrays, meta=meta)


def describe_fields() -> str:
    """The schema as a Markdown table (printed by `./reel2rig take-schema`, pasted into docs)."""
    rows = ["| field | dtype | shape | unit | meaning |", "|---|---|---|---|---|"]
    for f in FIELDS:
        shape = "(" + ", ".join(str(s) for s in f.shape) + (",)" if len(f.shape) == 1 else ")")
        rows.append(f"| `{f.name}` | {f.dtype} | {shape} | {f.unit} | {f.doc} |")
    return "\n".join(rows)
