"""Importing a Take: bone heads match the Take's joints on every frame, keys are LINEAR and one per frame, the
camera reproduces the Take's projection, existing actions are never overwritten, and failures leave no trace."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import synthetic_take as synthetic
from blender_env import addon_module, id_counts

MM = 1e-3


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("cv2")
    return synthetic.write_clip(tmp_path_factory.mktemp("clip") / "wave_test.mp4")


def channelbag(obj):
    from bpy_extras import anim_utils

    if hasattr(anim_utils, "animdata_get_channelbag_for_assigned_slot"):
        return anim_utils.animdata_get_channelbag_for_assigned_slot(obj.animation_data)
    return obj.animation_data.action  # 4.2/4.3


def bone_heads(bpy: ModuleType, obj, frames) -> np.ndarray:
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(int(frame))
        out.append([list(obj.matrix_world @ pb.head) for pb in obj.pose.bones])
    return np.array(out)


def import_take(bpy: ModuleType, path: Path, video: Path | None = None) -> None:
    kwargs = {"filepath": str(path)}
    if video is not None:
        kwargs["video"] = str(video)
    assert bpy.ops.reel2rig.import_take(**kwargs) == {"FINISHED"}


def test_import_matches_joints_on_every_frame(empty_scene: ModuleType, tmp_path: Path, clip: Path) -> None:
    bpy = empty_scene
    path, arrays = synthetic.write_synthetic_take(tmp_path / "wave_test.take.npz", video=clip)
    import_take(bpy, path)
    scene = bpy.context.scene
    n_frames, n_bones = arrays["local_rotations_aa"].shape[:2]

    obj = bpy.data.objects["wave_test"]
    assert obj.type == "ARMATURE" and obj.users_collection[0].name == "wave_test"
    assert [b.name for b in obj.data.bones] == synthetic.BONE_NAMES
    assert [b.parent.name if b.parent else None for b in obj.data.bones] == \
        [synthetic.BONE_NAMES[p] if p >= 0 else None for p in synthetic.BONE_PARENTS]
    rest = np.array([np.array(b.matrix_local) for b in obj.data.bones])
    assert np.abs(rest - arrays["rest_matrices"]).max() < 1e-5

    # timing: scene fps from the clip, keys from frame_start, one per timestamp
    assert (scene.render.fps, scene.render.fps_base) == (30, 1.0)
    assert (scene.frame_start, scene.frame_end) == (1, n_frames)
    frames = scene.frame_start + np.arange(n_frames)

    heads = bone_heads(bpy, obj, frames)
    error = np.abs(heads - arrays["joints_world"]).max()
    assert error < MM, f"bone heads are {error * 1000:.3f} mm off the Take's joints"

    # the action: named after the clip, one F-curve per channel, n LINEAR keys each
    action = obj.animation_data.action
    assert action.name == "wave_test"
    bag = channelbag(obj)
    curves = {(fc.data_path, fc.array_index): fc for fc in bag.fcurves}
    assert len(curves) == n_bones * 4 + 3
    for name in synthetic.BONE_NAMES:
        for i in range(4):
            assert (f'pose.bones["{name}"].rotation_quaternion', i) in curves
    for i in range(3):
        assert ('pose.bones["hips"].location', i) in curves
    for fc in curves.values():
        assert len(fc.keyframe_points) == n_frames
        assert {kp.interpolation for kp in fc.keyframe_points} == {"LINEAR"}
        assert [kp.co[0] for kp in fc.keyframe_points] == pytest.approx(list(frames))
    assert {pb.rotation_mode for pb in obj.pose.bones} == {"QUATERNION"}
    # quaternions are sign-continuous: consecutive keys never differ by a flip
    for name in synthetic.BONE_NAMES:
        q = np.array([[curves[(f'pose.bones["{name}"].rotation_quaternion', i)].keyframe_points[t].co[1]
                       for i in range(4)] for t in range(n_frames)])
        assert (np.sum(q[1:] * q[:-1], axis=1) >= 0).all(), name

    # metadata on the object
    assert obj["reel2rig_take"] == str(path)
    assert obj["reel2rig_video"] == str(clip)
    assert json.loads(obj["reel2rig_meta"])["video"] == str(clip)


def test_camera_reproduces_the_takes_projection(empty_scene: ModuleType, tmp_path: Path, clip: Path) -> None:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    bpy = empty_scene
    path, arrays = synthetic.write_synthetic_take(tmp_path / "wave_test.take.npz")
    import_take(bpy, path, video=clip)
    scene = bpy.context.scene
    cam = scene.camera
    assert cam is not None and cam.type == "CAMERA" and cam.name == "wave_test_camera"
    width, height = synthetic.IMAGE_SIZE
    K = arrays["K"]
    assert (scene.render.resolution_x, scene.render.resolution_y) == (width, height)
    assert cam.data.sensor_fit == "HORIZONTAL" and cam.data.sensor_width == pytest.approx(36.0)
    assert cam.data.lens == pytest.approx(K[0, 0] * 36.0 / width)
    # animated camera: keys on location and rotation
    assert cam.animation_data is not None and cam.animation_data.action is not None
    # background: the clip, shown, starting where the keys start
    assert cam.data.show_background_images
    bg = cam.data.background_images[0]
    assert bg.source == "MOVIE_CLIP" and Path(bpy.path.abspath(bg.clip.filepath)) == clip
    assert bg.clip.frame_start == scene.frame_start - int(arrays["frame_ids"][0])

    # every joint projects to the same pixel as the Take's K [R | t] on every frame
    worst = 0.0
    for t in range(0, arrays["frame_ids"].shape[0], 3):
        scene.frame_set(scene.frame_start + t)
        for p in arrays["joints_world"][t]:
            ndc = world_to_camera_view(scene, cam, Vector(p))
            blender_px = np.array([ndc.x * width, (1.0 - ndc.y) * height])
            cam_p = arrays["R_world2cam"][t] @ p + arrays["t_world2cam"][t]
            cv_px = (K @ cam_p)[:2] / cam_p[2]
            worst = max(worst, float(np.abs(blender_px - cv_px).max()))
    assert worst < 0.05, f"camera projection differs by {worst:.3f} px"


def test_static_camera_has_no_keys_and_29_97_fps(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    bpy.context.scene.frame_start = 10
    path, arrays = synthetic.write_synthetic_take(tmp_path / "still.take.npz", animated_camera=False,
                                                  fps=30000 / 1001, first_frame=5)
    import_take(bpy, path)
    scene = bpy.context.scene
    assert (scene.render.fps, scene.render.fps_base) == (30, pytest.approx(1.001))
    assert (scene.frame_start, scene.frame_end) == (10, 10 + 19)
    assert scene.camera.animation_data is None or scene.camera.animation_data.action is None
    obj = bpy.data.objects["still"]
    heads = bone_heads(bpy, obj, 10 + np.arange(20))
    assert np.abs(heads - arrays["joints_world"]).max() < MM


def test_second_import_keeps_the_first_action(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    path, _ = synthetic.write_synthetic_take(tmp_path / "wave_test.take.npz", seed=0)
    import_take(bpy, path)
    first = bpy.data.actions["wave_test"]
    before = [tuple(kp.co) for fc in channelbag(bpy.data.objects["wave_test"]).fcurves for kp in fc.keyframe_points]

    other, _ = synthetic.write_synthetic_take(tmp_path / "again" / "wave_test.take.npz", seed=7)
    import_take(bpy, other)
    assert {"wave_test", "wave_test.001"} <= set(bpy.data.actions.keys())
    assert bpy.data.actions["wave_test"] == first
    assert bpy.data.objects["wave_test"].animation_data.action == first
    assert bpy.data.objects["wave_test.001"].animation_data.action.name == "wave_test.001"
    after = [tuple(kp.co) for fc in channelbag(bpy.data.objects["wave_test"]).fcurves for kp in fc.keyframe_points]
    assert after == before


def _truncated(tmp_path: Path) -> Path:
    path, _ = synthetic.write_synthetic_take(tmp_path / "broken.take.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _newer_schema(tmp_path: Path) -> Path:
    path, arrays = synthetic.write_synthetic_take(tmp_path / "future.take.npz")
    np.savez_compressed(path, schema_version=np.array("2.0"), **arrays)
    return path


def _bad_bone_name(tmp_path: Path) -> Path:
    """Passes the Take's validation, fails inside the build (after the collection and armature exist)."""
    from inference_server import take

    arrays = synthetic.take_arrays()
    names = list(synthetic.BONE_NAMES)
    names[4] = "x" * 80  # Blender bone names are limited to 63 bytes
    arrays["bone_names"] = np.array(names)
    return take.write_take(tmp_path / "badbone.take.npz", arrays, {})


@pytest.mark.parametrize("make, message", [
    (_truncated, "not a readable Take"),
    (_newer_schema, "newer than this reader"),
    (_bad_bone_name, "scene left unchanged"),
])
def test_failed_import_leaves_scene_unchanged(empty_scene: ModuleType, tmp_path: Path, make, message: str) -> None:
    bpy = empty_scene
    # something of the user's that must survive untouched
    good, _ = synthetic.write_synthetic_take(tmp_path / "good" / "user.take.npz")
    import_take(bpy, good)
    scene = bpy.context.scene
    scene.render.fps, scene.frame_end, scene.render.resolution_x = 24, 77, 1111
    user_camera = scene.camera
    before = id_counts(bpy)
    path = make(tmp_path)
    with pytest.raises(RuntimeError, match=message) as info:
        bpy.ops.reel2rig.import_take(filepath=str(path))
    assert str(path) in str(info.value)
    assert id_counts(bpy) == before
    assert (scene.render.fps, scene.frame_end, scene.render.resolution_x) == (24, 77, 1111)
    assert scene.camera == user_camera
    assert bpy.context.mode == "OBJECT"


def test_import_function_raises_take_error_for_newer_schema(empty_scene: ModuleType, tmp_path: Path) -> None:
    take_import = addon_module("take_import")
    take_format = addon_module("take_prepare").take_format
    with pytest.raises(take_format.TakeError, match="update the Reel2Rig add-on"):
        take_import.import_take(empty_scene.context, str(_newer_schema(tmp_path)))


def test_missing_file_reports_clear_error(empty_scene: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="Take file not found"):
        empty_scene.ops.reel2rig.import_take(filepath=str(tmp_path / "nope.take.npz"))


def test_finished_multi_person_capture_imports_everyone(empty_scene: ModuleType, tmp_path: Path) -> None:
    """The capture's on_finished imports the main person's Take and every other person's, one armature each."""
    from test_take_prepare import write_people

    bpy = empty_scene
    paths = write_people(tmp_path, 3)
    operators = addon_module("operators")
    capture = addon_module("capture")
    settings = capture.CaptureSettings(video="", engine=None, options={})
    summary = operators.import_finished_take(settings, str(paths[0]))
    assert "+2 more people" in summary
    armatures = sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE")
    assert armatures == ["clip", "clip person 2", "clip person 3"]
