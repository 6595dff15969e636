"""Synthetic Takes and clips with known answers (numpy + cv2; no bpy). Also imported by fake_engine.py."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inference_server import take
from rigs import fk, rotations

BONE_NAMES = ["hips", "spine", "neck", "upperarm.L", "lowerarm.L", "thigh.R"]
BONE_PARENTS = np.array([-1, 0, 1, 1, 3, 0])
BONE_LENGTHS = np.array([0.15, 0.3, 0.1, 0.28, 0.25, 0.4])
IMAGE_SIZE = (320, 240)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return rotations.aa_to_matrix(rotations.quat_to_aa(q / np.linalg.norm(q)))


def skeleton(seed: int = 0) -> np.ndarray:
    """Rest matrices (J, 4, 4) with non-trivial rotations; one bone points straight down (−Z), a roll edge case."""
    rng = np.random.default_rng(seed)
    n = len(BONE_NAMES)
    rest = np.zeros((n, 4, 4))
    rest[:, 3, 3] = 1.0
    rest[0, :3, :3] = _random_rotation(rng)
    rest[0, :3, 3] = [0.1, -0.2, 1.0]
    for j in range(1, n):
        p = BONE_PARENTS[j]
        rest[j, :3, :3] = _random_rotation(rng)
        rest[j, :3, 3] = rest[p, :3, 3] + rest[p, :3, 1] * BONE_LENGTHS[p] + rng.normal(scale=0.05, size=3)
    rest[5, :3, :3] = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns X, Y=(0,0,-1), Z
    return rest


def camera(n_frames: int, animated: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K (3,3), R_world2cam (T,3,3), t_world2cam (T,3): a camera 4 m in front of the subject (at −Y) looking +Y."""
    K = np.array([[300.0, 0.0, 170.0], [0.0, 300.0, 110.0], [0.0, 0.0, 1.0]])  # principal point off-centre
    # OpenCV axes in world coordinates: x = +X, y (down) = −Z, z (forward) = +Y.
    base = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    R = np.repeat(base[None], n_frames, 0)
    centre = np.array([0.0, -4.0, 1.0])
    C = np.repeat(centre[None], n_frames, 0)
    if animated:
        for i in range(n_frames):
            R[i] = rotations.aa_to_matrix(np.array([0.0, 0.01 * i, 0.0])) @ base
            C[i] = centre + [0.03 * i, 0.0, 0.01 * i]
    t = -np.einsum("tij,tj->ti", R, C)
    return K, R, t


def take_arrays(n_frames: int = 20, fps: float = 30.0, seed: int = 0, animated_camera: bool = True,
                first_frame: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 1)
    rest = skeleton(seed)
    n = len(BONE_NAMES)
    local = rng.normal(scale=0.6, size=(n_frames, n, 3))
    local[n_frames // 2:, 2] += np.array([0.0, 2.9, 0.0])  # a large rotation: quaternion signs must stay continuous
    s = np.linspace(0.0, 3.0, n_frames)
    root = np.stack([np.linspace(0.0, 1.0, n_frames), np.sin(s) * 0.5, 1.0 + 0.1 * np.cos(s)], axis=1)
    joints = fk.bone_heads(rest, BONE_PARENTS, local, root)
    K, R, t = camera(n_frames, animated_camera)
    frame_ids = np.arange(first_frame, first_frame + n_frames)
    return dict(
        frame_ids=frame_ids, timestamps=frame_ids / fps, fps=np.array(fps),
        image_size=np.array(IMAGE_SIZE), K=K, R_world2cam=R, t_world2cam=t,
        bone_names=np.array(BONE_NAMES), bone_parents=BONE_PARENTS, rest_matrices=rest, bone_lengths=BONE_LENGTHS,
        local_rotations_aa=local, root_position_world=root, joints_world=joints,
        bone_fitted=np.ones((n_frames, n), bool), valid=np.ones(n_frames, bool), fit_residual_px=np.zeros(n_frames),
        pose_landmarks_2d=np.full((n_frames, 33, 3), np.nan), pose_landmarks_world=np.full((n_frames, 33, 3), np.nan),
        hand_landmarks_2d=np.full((n_frames, 2, 21, 3), np.nan))


def write_synthetic_take(path: str | Path, video: str | None = None, **kwargs: Any) -> tuple[Path, dict[str, Any]]:
    arrays = take_arrays(**kwargs)
    meta = {"video": str(video)} if video else {}
    return take.write_take(path, arrays, meta), arrays


def write_clip(path: str | Path, n_frames: int = 20, fps: float = 30.0, size: tuple[int, int] = IMAGE_SIZE) -> Path:
    """A small MP4 (moving square) with OpenCV."""
    import cv2

    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for i in range(n_frames):
        frame = np.full((size[1], size[0], 3), 40, np.uint8)
        x = 10 + 8 * i
        frame[50:90, x:x + 40] = (0, 200, 255)
        writer.write(frame)
    writer.release()
    return path


SAMPLE_TRUTH = Path(__file__).resolve().parents[2] / "samples" / "sample_wave_truth.npz"


def anny_motion_take(path: str | Path, n_frames: int = 40) -> tuple[Path, dict[str, Any]]:
    """A Take on the real Anny skeleton with known motion of every part: the sample clip's ground truth (arms,
    counting fingers, torso turn) plus walking legs, a bending spine, a nodding head and a travelling root."""
    d = np.load(SAMPLE_TRUTH)
    names = [str(n) for n in d["bone_names"]]
    idx = {n: i for i, n in enumerate(names)}
    step = max(1, d["timestamps"].shape[0] // n_frames)
    sel = np.arange(0, d["timestamps"].shape[0], step)[:n_frames]
    local = d["local_rotations_aa"][sel].astype(np.float64)
    n = sel.shape[0]
    ph = np.linspace(0.0, 2.0 * np.pi, n)
    extra = {  # bone: (axis, amplitude rad, phase) — composed after the ground truth's own rotation
        "upperleg01.L": ([1, 0, 0], 0.6, 0.0), "upperleg01.R": ([1, 0, 0], 0.6, np.pi),
        "lowerleg01.L": ([1, 0, 0], 0.7, 0.5), "lowerleg01.R": ([1, 0, 0], 0.7, np.pi + 0.5),
        "foot.L": ([1, 0, 0], 0.3, 1.0), "foot.R": ([0, 0, 1], 0.3, 1.0),
        "spine03": ([0, 1, 0], 0.4, 0.3), "spine04": ([1, 0, 0], 0.3, 0.0), "neck01": ([1, 0, 0], 0.4, 0.2),
        "head": ([0, 0, 1], 0.5, 0.7), "clavicle.L": ([0, 0, 1], 0.3, 0.4), "toe3-1.R": ([1, 0, 0], 0.4, 0.0),
    }
    for bone, (axis, amp, phase) in extra.items():
        j = idx[bone]
        R_extra = rotations.aa_to_matrix(np.outer(amp * np.sin(ph + phase), axis))
        local[:, j] = rotations.matrix_to_aa(rotations.aa_to_matrix(local[:, j]) @ R_extra)
    t = np.linspace(0.0, 1.0, n)[:, None]
    root = d["root_position_world"][sel] + np.concatenate([1.2 * t, -0.4 * t ** 2, 0.04 * np.sin(4 * ph)[:, None]],
                                                          axis=1)
    rest = d["rest_matrices"].astype(np.float64)
    parents = d["bone_parents"].astype(int)
    joints = fk.bone_heads(rest, parents, local, root)
    lengths = np.full(len(names), 0.05)
    fps = float(d["fps"]) / step
    frame_ids = np.arange(n)
    arrays = dict(
        frame_ids=frame_ids, timestamps=frame_ids / fps, fps=np.array(fps), image_size=d["image_size"],
        K=d["K"], R_world2cam=d["R_world2cam"][sel], t_world2cam=d["t_world2cam"][sel],
        bone_names=np.array(names), bone_parents=parents, rest_matrices=rest, bone_lengths=lengths,
        local_rotations_aa=local, root_position_world=root, joints_world=joints,
        bone_fitted=np.ones((n, len(names)), bool), valid=np.ones(n, bool), fit_residual_px=np.zeros(n),
        pose_landmarks_2d=np.full((n, 33, 3), np.nan), pose_landmarks_world=np.full((n, 33, 3), np.nan),
        hand_landmarks_2d=np.full((n, 2, 21, 3), np.nan))
    return take.write_take(path, arrays, {"model": "anny"}), arrays


def add_anny_mesh(path: str | Path, arrays: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Give a Take on Anny's skeleton its mesh sidecar as the engine does (``anny_mesh.write_take_mesh``) and rewrite
    its sidecar naming it. Returns the sidecar's ``"mesh"`` entry. Needs Anny's mesh cache (built on first use)."""
    if _anny_elsewhere():
        return _in_engine_python("add_anny_mesh", arrays, path=str(path), meta=meta)
    from inference_server.anny_mesh import write_take_mesh

    entry = write_take_mesh(path, [str(n) for n in arrays["bone_names"]])
    assert entry is not None, "the Take's bones are not Anny's"
    take.write_take(path, arrays, {**(meta or {"model": "anny"}), "mesh": entry})
    return entry


def sample_truth_take(path: str | Path, video: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The sample clip's ground truth as a Take (every frame; the motion that rendered the clip), so what Blender
    draws from it must land on the clip's own body."""
    if _anny_elsewhere():
        return Path(path), _in_engine_python("sample_truth_take", None, path=str(path),
                                             video=None if video is None else str(video))
    from inference_server.anny_skeleton import load_skeleton

    d = np.load(SAMPLE_TRUTH)
    n, J = d["local_rotations_aa"].shape[:2]
    skel = load_skeleton()
    assert [str(b) for b in d["bone_names"]] == list(skel.names)
    arrays = dict(
        frame_ids=d["frame_ids"], timestamps=d["timestamps"], fps=d["fps"], image_size=d["image_size"], K=d["K"],
        R_world2cam=d["R_world2cam"], t_world2cam=d["t_world2cam"], bone_names=d["bone_names"],
        bone_parents=d["bone_parents"], rest_matrices=d["rest_matrices"], bone_lengths=skel.lengths,
        local_rotations_aa=d["local_rotations_aa"], root_position_world=d["root_position_world"],
        joints_world=d["joints_world"], bone_fitted=np.ones((n, J), bool), valid=np.ones(n, bool),
        fit_residual_px=np.zeros(n), pose_landmarks_2d=np.full((n, 33, 3), np.nan),
        pose_landmarks_world=np.full((n, 33, 3), np.nan), hand_landmarks_2d=np.full((n, 2, 21, 3), np.nan))
    meta: dict[str, Any] = {"model": "anny"}
    if video is not None:
        meta["video"] = str(video)
    return take.write_take(path, arrays, meta), arrays


def anny_skinning(arrays: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """The engine's numpy skinning of Anny's mesh posed by the Take's ``rows`` (its forward kinematics):
    ``vertices`` (len(rows), V, 3) world-space and ``n_faces``."""
    if _anny_elsewhere():
        return _in_engine_python("anny_skinning", arrays, rows=[int(r) for r in rows])
    from inference_server.anny_mesh import load_mesh, skin
    from inference_server.anny_skeleton import load_skeleton

    mesh = load_mesh()
    rows = list(rows)
    W = fk.forward_kinematics(arrays["rest_matrices"], arrays["bone_parents"], arrays["local_rotations_aa"][rows],
                              arrays["root_position_world"][rows])
    return {"vertices": skin(mesh, load_skeleton().rest, W), "n_faces": np.array(mesh.faces.shape[0])}


# --- Anny from another Blender's environment ---------------------------------------------------------------------
# `./reel2rig test --blender X.Y` runs these tests with .venv-blender-X.Y's Python (bpy, NumPy, OpenCV, SciPy only);
# the helpers above that need Anny (torch) then run themselves in the engine's Python (the checkout's .venv, exported
# as REEL2RIG_ENGINE_PYTHON): this file as a script, arrays in and out as .npz, the rest as JSON.


def _anny_elsewhere() -> bool:
    engine = os.environ.get("REEL2RIG_ENGINE_PYTHON") or sys.executable
    return engine != sys.executable and importlib.util.find_spec("anny") is None


def _in_engine_python(func: str, arrays: dict[str, Any] | None, **kwargs: Any) -> Any:
    """``func(arrays=arrays, **kwargs)`` of this module run by the engine's Python; its arrays (or, for a
    ``(path, arrays)`` result, those arrays), or its JSON result."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(prefix="reel2rig-engine-call-") as tmp:
        given, result = Path(tmp, "arrays.npz"), Path(tmp, "result.npz")
        np.savez(given, **(arrays or {}))
        proc = subprocess.run([os.environ["REEL2RIG_ENGINE_PYTHON"], __file__, func, str(given), str(result),
                               json.dumps(kwargs)], capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{func} in the engine's Python failed:\n{proc.stderr[-3000:]}")
        with np.load(result) as out:
            values = {name: out[name] for name in out.files}
    return json.loads(str(values["json"])) if set(values) == {"json"} else values


if __name__ == "__main__":  # python synthetic_take.py FUNC ARRAYS.npz RESULT.npz KWARGS_JSON (see _in_engine_python)
    from inference_server.config import prepare_environment

    prepare_environment()
    _func, _given, _result, _kwargs = sys.argv[1:5]
    _args = json.loads(_kwargs)
    with np.load(_given) as _npz:
        if _npz.files:
            _args["arrays"] = {name: _npz[name] for name in _npz.files}
    _value = globals()[_func](**_args)
    if isinstance(_value, tuple):  # (path, arrays)
        _value = _value[1]
    if not all(isinstance(v, np.ndarray) for v in _value.values()):
        _value = {"json": np.array(json.dumps(_value))}
    np.savez(_result, **_value)
