"""The add-on's bpy-free parts: Take → keyframe numbers (take_prepare) and engine path resolution (paths).
Plain numpy; these run without bpy."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import synthetic_take as synthetic
from addon import paths, take_prepare
from inference_server import take as take_format
from rigs import fk, rotations


# --- time ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps, expected", [
    (25.0, (25, 1.0)), (30.0, (30, 1.0)), (29.97, (30, 1.001)), (30000 / 1001, (30, 1.001)),
    (23.976, (24, 1.001)), (59.94, (60, 1.001)), (12.5, (12, 0.96)),
])
def test_scene_rate(fps: float, expected: tuple[int, float]) -> None:
    rate = take_prepare.scene_rate(fps)
    assert (rate.fps, rate.fps_base) == (expected[0], pytest.approx(expected[1]))
    assert rate.rate == pytest.approx(fps, rel=1e-4)


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan")])
def test_scene_rate_rejects_nonsense(fps: float) -> None:
    with pytest.raises(ValueError):
        take_prepare.scene_rate(fps)


def test_key_frames_follow_timestamps() -> None:
    ts = np.array([0.5, 0.54, 0.58, 0.6201, 0.66])  # variable frame rate: one late frame
    frames = take_prepare.key_frames(ts, 1, 25.0)
    assert frames[:3].tolist() == [1.0, 2.0, 3.0]  # snapped to whole frames
    assert frames[3] == pytest.approx(1 + 0.1201 * 25)  # kept fractional
    with pytest.raises(take_format.TakeError, match="increase strictly"):
        take_prepare.key_frames(np.array([0.0, 0.1, 0.1]), 1, 25.0)
    with pytest.raises(take_format.TakeError, match="no frames"):
        take_prepare.key_frames(np.array([]), 1, 25.0)


# --- pose ----------------------------------------------------------------------------------------------------------
def test_root_location_puts_the_root_head_on_root_position() -> None:
    rest = synthetic.skeleton()
    root = np.array([[0.3, -1.0, 0.9], [1.0, 2.0, 3.0]])
    loc = take_prepare.root_locations(rest[0], root)
    # Blender: pose_root = rest_root @ [L | loc]; its head is rest[:3,:3] @ loc + rest[:3,3]
    heads = loc @ rest[0, :3, :3].T + rest[0, :3, 3]
    assert np.allclose(heads, root)


def test_pose_quaternions_are_continuous_and_equal_the_rotations() -> None:
    aa = np.zeros((3, 1, 3))
    aa[:, 0, 2] = [3.0, 3.2, 3.4]  # crosses π: axis-angle flips the axis, quaternions must not flip sign
    aa[1, 0] = rotations.matrix_to_aa(rotations.aa_to_matrix(aa[1, 0]))
    q = take_prepare.pose_quaternions(aa)
    assert (np.sum(q[1:] * q[:-1], axis=-1) > 0).all()
    assert np.allclose(rotations.aa_to_matrix(rotations.quat_to_aa(q)), rotations.aa_to_matrix(aa))


def test_prepare_take(tmp_path: Path) -> None:
    path, arrays = synthetic.write_synthetic_take(tmp_path / "wave.take.npz", first_frame=4)
    prepared = take_prepare.prepare_take(take_format.read_take(path), frame_start=10)
    assert prepared.name == "wave" and prepared.video is None
    assert prepared.frames.tolist() == list(range(10, 30))
    assert (prepared.frame_start, prepared.frame_end, prepared.source_first_frame) == (10, 29, 4)
    assert prepared.quaternions.shape == (20, len(synthetic.BONE_NAMES), 4)
    # numpy FK with the prepared (quaternion) rotations reproduces joints_world
    aa = rotations.quat_to_aa(prepared.quaternions)
    heads = fk.bone_heads(prepared.rest_matrices, prepared.bone_parents, aa,
                          prepared.root_location @ prepared.rest_matrices[0, :3, :3].T
                          + prepared.rest_matrices[0, :3, 3])
    assert np.abs(heads - arrays["joints_world"]).max() < 1e-9


def test_prepare_take_finds_the_video_in_the_sidecar(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video")
    path, _ = synthetic.write_synthetic_take(tmp_path / "x.take.npz", video=video)
    prepared = take_prepare.prepare_take(take_format.read_take(path))
    assert prepared.video == str(video) and prepared.name == "clip"
    # the engine's sidecar layout: {"source": {"path": ..., "width": ..., ...}}
    assert take_prepare.video_from_meta({"source": {"path": str(video), "width": 4}}, path) == str(video)
    assert take_prepare.video_from_meta({"source": {"path": str(tmp_path / "gone.mp4")}}, path) is None


# --- camera --------------------------------------------------------------------------------------------------------
def test_camera_matrix_and_intrinsics() -> None:
    K, R, t = synthetic.camera(4, animated=True)
    cam = take_prepare.prepare_camera(K, R, t, np.array(synthetic.IMAGE_SIZE))
    width, height = synthetic.IMAGE_SIZE
    assert cam.animated and cam.resolution == (width, height)
    assert cam.lens_mm == pytest.approx(300.0 * 36.0 / width)
    assert cam.shift_x == pytest.approx((width / 2 - 170.0) / width)
    assert cam.shift_y == pytest.approx((110.0 - height / 2) / width)
    for i in range(4):
        # The Blender camera looks down its −Z with +Y up: −Z maps to the OpenCV forward axis (R's third row),
        # +Y to OpenCV's up (minus the second row); its location is the camera centre −Rᵀt.
        M = cam.cam2world[i]
        assert np.allclose(M[:3, :3] @ [0, 0, -1], R[i][2])
        assert np.allclose(M[:3, :3] @ [0, 1, 0], -R[i][1])
        assert np.allclose(M[:3, 3], -R[i].T @ t[i])
        q = cam.quaternions[i]
        assert np.allclose(rotations.aa_to_matrix(rotations.quat_to_aa(q)), M[:3, :3])
    still = take_prepare.prepare_camera(K, *synthetic.camera(4, animated=False)[1:], np.array([320, 240]))
    assert not still.animated


# --- engine paths --------------------------------------------------------------------------------------------------
def _fake_python(folder: Path) -> Path:
    python = paths.venv_python(folder)
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    return python


def test_engine_python_resolution_order(tmp_path: Path) -> None:
    package = tmp_path / "installed" / "reel2rig"
    (package / "inference_server").mkdir(parents=True)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    pref_python = _fake_python(tmp_path / "pref")
    env_python = _fake_python(tmp_path / "env")

    # nothing configured: a clear error naming the fix
    with pytest.raises(paths.EngineSetupError, match=r"No engine Python found\. Press Set up Engine"):
        paths.resolve_engine_python("", {}, package)
    # the checkout named by build_info.json
    (package / paths.BUILD_INFO_NAME).write_text(json.dumps({"checkout": str(checkout)}))
    with pytest.raises(paths.EngineSetupError):
        paths.resolve_engine_python("", {}, package)  # the checkout has no .venv yet
    built = _fake_python(checkout)
    assert paths.resolve_engine_python("", {}, package) == built
    # a dev checkout (the package root has a .venv) wins over build_info
    dev = _fake_python(package)
    assert paths.resolve_engine_python("", {}, package) == dev
    # the environment variable wins over both
    assert paths.resolve_engine_python("", {paths.ENGINE_PYTHON_ENV: str(env_python)}, package) == env_python
    # the preference wins over everything
    assert paths.resolve_engine_python(str(pref_python), {paths.ENGINE_PYTHON_ENV: str(env_python)},
                                       package) == pref_python
    # a configured path that does not exist is an error, not a silent fallback
    with pytest.raises(paths.EngineSetupError, match="does not exist"):
        paths.resolve_engine_python(str(tmp_path / "nope"), {}, package)
    with pytest.raises(paths.EngineSetupError, match=paths.ENGINE_PYTHON_ENV):
        paths.resolve_engine_python("", {paths.ENGINE_PYTHON_ENV: str(tmp_path / "nope")}, package)


def test_cache_dir_resolution(tmp_path: Path) -> None:
    package = tmp_path / "reel2rig"
    (package / "inference_server").mkdir(parents=True)
    assert paths.resolve_cache_dir("", {}, package, fallback="/fallback") == "/fallback"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (package / paths.BUILD_INFO_NAME).write_text(json.dumps({"checkout": str(checkout)}))
    assert paths.resolve_cache_dir("", {}, package) == str(checkout / ".cache")
    assert paths.resolve_cache_dir("", {paths.CACHE_ENV: "/env"}, package) == "/env"
    assert paths.resolve_cache_dir("/pref", {paths.CACHE_ENV: "/env"}, package) == "/pref"
    config = paths.engine_config("", "", {paths.ENGINE_PYTHON_ENV: sys.executable}, package)
    assert config == paths.EngineConfig(python=sys.executable, root=str(package), cache_dir=str(checkout / ".cache"))


# --- several people ------------------------------------------------------------------------------------------------
def write_people(folder: Path, count: int = 3) -> list[Path]:
    """A multi-person capture as the engine writes it: clip.take.npz, clip.person2.take.npz, ... with the sidecar's
    ``person`` entry naming them all."""
    names = ["clip.take.npz"] + [f"clip.person{k + 1}.take.npz" for k in range(1, count)]
    paths = []
    for rank, name in enumerate(names):
        path, _ = synthetic.write_synthetic_take(folder / name)
        sidecar = take_format.sidecar_path(path)
        meta = json.loads(sidecar.read_text())
        meta["person"] = {"index": rank, "of": count, "takes": names}
        sidecar.write_text(json.dumps(meta))
        paths.append(path)
    return paths


def test_sibling_takes_lists_the_other_people(tmp_path: Path) -> None:
    paths = write_people(tmp_path)
    assert take_prepare.sibling_takes(paths[0]) == [str(paths[1]), str(paths[2])]
    assert take_prepare.sibling_takes(paths[1]) == [str(paths[0]), str(paths[2])]
    paths[2].unlink()                                      # a missing sibling is skipped, not an error
    assert take_prepare.sibling_takes(paths[0]) == [str(paths[1])]


def test_sibling_takes_of_a_one_person_take_or_a_bad_sidecar(tmp_path: Path) -> None:
    path, _ = synthetic.write_synthetic_take(tmp_path / "solo.take.npz")
    assert take_prepare.sibling_takes(path) == []
    take_format.sidecar_path(path).write_text("{not json")
    assert take_prepare.sibling_takes(path) == []
    meta = {"person": {"index": 0, "of": 2, "takes": ["solo.take.npz", "../elsewhere.take.npz"]}}
    take_format.sidecar_path(path).write_text(json.dumps(meta))
    assert take_prepare.sibling_takes(path) == [], "names must be plain file names next to the Take"


def test_person_suffix_names_the_other_people(tmp_path: Path) -> None:
    paths = write_people(tmp_path, 2)
    names = [take_prepare.prepare_take(take_format.read_take(p), frame_start=1).name for p in paths]
    assert names == ["clip", "clip person 2"]


def test_a_hand_models_takes_are_siblings_named_by_hand(tmp_path: Path) -> None:
    names = ["clip.right_hand.take.npz", "clip.left_hand.take.npz"]
    paths = []
    for name, side in zip(names, ("right", "left")):
        path, _ = synthetic.write_synthetic_take(tmp_path / name)
        sidecar = take_format.sidecar_path(path)
        meta = json.loads(sidecar.read_text())
        meta["hand"] = {"side": side, "takes": names}
        sidecar.write_text(json.dumps(meta))
        paths.append(path)
    assert take_prepare.sibling_takes(paths[0]) == [str(paths[1])]
    assert take_prepare.sibling_takes(paths[1]) == [str(paths[0])]
    prepared = [take_prepare.prepare_take(take_format.read_take(p), frame_start=1).name for p in paths]
    assert prepared == ["clip right hand", "clip left hand"]


# --- the body mesh ---------------------------------------------------------------------------------------------------
def _take_with_mesh(tmp_path: Path, shift: np.ndarray, names: list[str] | None = None) -> take_format.Take:
    """A synthetic Take whose mesh (a vertex per bone head, random weights) is bound at the Take's rest moved by
    ``shift``."""
    path, arrays = synthetic.write_synthetic_take(tmp_path / "meshy.take.npz")
    rest = arrays["rest_matrices"].copy()
    rest[:, :3, 3] += shift
    n = len(synthetic.BONE_NAMES)
    rng = np.random.default_rng(3)
    weights = rng.random((n + 2, 3))
    take_format.write_mesh(take_format.mesh_path(path), dict(
        vertices=rest[np.arange(n + 2) % n, :3, 3] + rng.normal(scale=0.02, size=(n + 2, 3)),
        faces=np.array([[0, 1, 2], [3, 4, 5], [5, 6, 7]]), bone_indices=rng.integers(0, n, size=(n + 2, 3)),
        bone_weights=weights / weights.sum(axis=1, keepdims=True), bone_names=np.array(names or synthetic.BONE_NAMES),
        rest_matrices=rest))
    take_format.write_take(path, arrays, {"mesh": {"file": "meshy.mesh.npz"}})
    return take_format.read_take(path)


def test_mesh_is_rebound_at_the_takes_rest_and_batched(tmp_path: Path) -> None:
    shift = np.array([0.2, -0.1, 0.05])
    take = _take_with_mesh(tmp_path, shift)
    prepared = take_prepare.prepare_take(take)
    assert prepared.mesh_warning is None and prepared.mesh is not None
    stored = take_format.read_mesh(take_format.mesh_path(take.path))
    # bound at a rest moved by `shift` (every bone): at the Take's rest the mesh is moved back by it
    assert np.abs(prepared.mesh.vertices - (stored["vertices"] - shift)).max() < 1e-6
    # the batches give back the dense weights
    n = len(synthetic.BONE_NAMES)
    dense = np.zeros((stored["vertices"].shape[0], n))
    for bone, weight, vertices in prepared.mesh.weight_batches:
        dense[vertices, bone] += weight
    expected = take_prepare.dense_skin_weights(stored["bone_indices"], stored["bone_weights"], n)
    assert np.abs(dense - expected).max() < 1e-6
    assert take_prepare.prepare_take(take, with_mesh=False).mesh is None


def test_mesh_problems_are_warnings(tmp_path: Path) -> None:
    take = _take_with_mesh(tmp_path / "a", np.zeros(3), names=[n + "x" for n in synthetic.BONE_NAMES])
    prepared = take_prepare.prepare_take(take)
    assert prepared.mesh is None and "other bones" in prepared.mesh_warning
    take = _take_with_mesh(tmp_path / "b", np.zeros(3))
    take_format.mesh_path(take.path).unlink()
    prepared = take_prepare.prepare_take(take)
    assert prepared.mesh is None and "not found" in prepared.mesh_warning
    plain, _ = synthetic.write_synthetic_take(tmp_path / "c" / "plain.take.npz")  # no mesh named: nothing to say
    prepared = take_prepare.prepare_take(take_format.read_take(plain))
    assert prepared.mesh is None and prepared.mesh_warning is None
