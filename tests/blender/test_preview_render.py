"""Render Preview (Workbench): the body mesh and the bones over the clip's frame, as a PNG.

* On the sample clip's own ground truth the rendered body lands on the clip's body (silhouette overlap) and its box
  holds the frame's projected joints; the user's scene is left as it was.
* On a real capture of the sample clip (slow: runs the engine) the same checks, and the picture the README shows:
  ``REEL2RIG_WRITE_DOCS=1 ./reel2rig test tests/blender/test_preview_render.py`` rewrites ``docs/images/``.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import synthetic_take as synthetic
from blender_env import ENGINE_PYTHON, ROOT, addon_module, id_counts

SAMPLE = ROOT / "samples" / "sample_wave.mp4"
DOCS_IMAGES = ROOT / "docs" / "images"
ROW = 60  # the Take's frame shown: the right arm waving, the left hand counting
pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"{SAMPLE} is missing")


def read_png(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a readable PNG"
    return image


def clip_frame(index: int) -> np.ndarray:
    """The sample clip's frame ``index`` (0-based), BGR, decoded by OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(SAMPLE))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok, f"cannot decode frame {index} of {SAMPLE}"
    return frame


def body_in_clip(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: the sample clip's body — pixels away from the plain backdrop's colour (its corners' median)."""
    corners = np.concatenate([frame[:8, :8].reshape(-1, 3), frame[:8, -8:].reshape(-1, 3)])
    backdrop = np.median(corners, axis=0)
    return np.abs(frame.astype(np.float64) - backdrop).sum(axis=2) > 60


def projected_joints(arrays: dict, row: int) -> np.ndarray:
    project = addon_module("preview_prepare").project
    return project(arrays["K"], arrays["R_world2cam"][row], arrays["t_world2cam"][row], arrays["joints_world"][row])


def render(bpy: ModuleType, armature: str, out: Path, frame: int, **kwargs) -> Path:
    preview_render = addon_module("preview_render")
    settings = preview_render.PreviewSettings(filepath=str(out), frame=frame, **kwargs)
    result = preview_render.render_preview(bpy.context, bpy.data.objects[armature], settings)
    assert Path(result.path) == out and out.is_file()
    return out


def check_mask_and_picture(bpy: ModuleType, armature: str, arrays: dict, tmp_path: Path, frame: int) -> tuple:
    """Render the mesh alone (transparent) and the full preview; check both. Returns (mask, picture, joints_2d)."""
    size = tuple(int(v) for v in arrays["image_size"])
    mask_png = read_png(render(bpy, armature, tmp_path / "mask.png", frame, bones=False, background=False))
    assert mask_png.shape == (size[1], size[0], 4)
    mask = mask_png[..., 3] > 127
    assert mask.mean() > 0.02, "the mesh is not in the picture"
    box = addon_module("preview_prepare").mask_box(mask)
    joints = projected_joints(arrays, ROW)
    inside = ((joints[:, 0] >= box[0] - 2) & (joints[:, 0] <= box[2] + 2) &
              (joints[:, 1] >= box[1] - 2) & (joints[:, 1] <= box[3] + 2))
    assert inside.mean() > 0.95, f"only {inside.mean():.0%} of the frame's joints fall in the mesh's box {box}"

    picture = read_png(render(bpy, armature, tmp_path / "preview.png", frame))
    assert picture.shape == (size[1], size[0], 3)
    clip = clip_frame(int(arrays["frame_ids"][ROW]))
    changed = np.abs(picture.astype(int) - clip.astype(int)).sum(axis=2) > 30
    assert changed[mask].mean() > 0.5, "the mesh does not show over the clip"
    assert changed[~mask].mean() < 0.05, "away from the mesh and bones the picture should be the clip's frame"
    return mask, picture, joints


def write_doc_image(picture: np.ndarray, name: str) -> None:
    """With REEL2RIG_WRITE_DOCS=1, save ``picture`` (BGR) as docs/images/<name>, palette-quantised (< 200 KB)."""
    if os.environ.get("REEL2RIG_WRITE_DOCS") != "1":
        return
    from PIL import Image

    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(picture[..., ::-1].copy()).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    out = DOCS_IMAGES / name
    image.save(out, optimize=True)
    assert out.stat().st_size < 200_000, f"{out} is {out.stat().st_size} bytes"


def test_preview_of_the_ground_truth_lands_on_the_clips_body(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    path, arrays = synthetic.sample_truth_take(tmp_path / "sample_wave.take.npz", video=SAMPLE)
    synthetic.add_anny_mesh(path, arrays, {"model": "anny", "video": str(SAMPLE)})
    result = addon_module("take_import").import_take(bpy.context, str(path))
    assert result.mesh and result.clip
    scene = bpy.context.scene
    scene.frame_set(5)
    before = {**id_counts(bpy), "meshes": len(bpy.data.meshes), "materials": len(bpy.data.materials),
              "scenes": len(bpy.data.scenes), "node_groups": len(bpy.data.node_groups)}
    settings = (scene.render.engine, scene.render.filepath, scene.render.film_transparent)

    frame = scene.frame_start + ROW
    mask, picture, _ = check_mask_and_picture(bpy, result.armature, arrays, tmp_path, frame)
    # the ground truth's mesh covers the clip's own body
    body = body_in_clip(clip_frame(ROW))
    iou = (mask & body).sum() / (mask | body).sum()
    print(f"preview of the ground truth: silhouette IoU with the clip's body {iou:.3f}")
    assert iou > 0.9, f"the rendered body overlaps the clip's body by IoU {iou:.3f}"

    # nothing of the user's scene changed
    after = {**id_counts(bpy), "meshes": len(bpy.data.meshes), "materials": len(bpy.data.materials),
             "scenes": len(bpy.data.scenes), "node_groups": len(bpy.data.node_groups)}
    assert after == before
    assert scene.frame_current == 5
    assert (scene.render.engine, scene.render.filepath, scene.render.film_transparent) == settings


def test_render_preview_operator_writes_next_to_the_take(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    path, arrays = synthetic.anny_motion_take(tmp_path / "walkwave.take.npz", n_frames=10)
    synthetic.add_anny_mesh(path, arrays)
    assert bpy.ops.reel2rig.import_take(filepath=str(path)) == {"FINISHED"}
    bpy.context.scene.frame_set(3)
    assert bpy.ops.reel2rig.render_preview() == {"FINISHED"}  # no clip: a transparent PNG, with a warning
    out = tmp_path / "walkwave.preview_0003.png"
    image = read_png(out)
    assert image.shape[2] == 4 and (image[..., 3] > 127).mean() > 0.01


@pytest.mark.slow
def test_preview_of_a_captured_take(empty_scene: ModuleType, tmp_path: Path) -> None:
    """The sample clip captured by the real engine (its stage cache: detection is reused when it is there), imported
    and previewed; the README's picture."""
    bpy = empty_scene
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([ENGINE_PYTHON, "-m", "inference_server", "capture", str(SAMPLE), "--out",
                           str(tmp_path / "out"), "--no-overlay", "--json"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    take_path = Path(json.loads(proc.stdout.strip().splitlines()[-1])["take"])
    meta = json.loads(take_path.with_name("sample_wave.take.json").read_text())
    assert meta["mesh"]["file"] == "sample_wave.mesh.npz"
    result = addon_module("take_import").import_take(bpy.context, str(take_path))
    assert result.mesh and result.clip, result.warnings
    take = addon_module("take_prepare").take_format.read_take(take_path)
    arrays = dict(take.arrays)
    picture_mask, picture, _ = check_mask_and_picture(bpy, result.armature, arrays, tmp_path,
                                                      bpy.context.scene.frame_start + ROW)
    write_doc_image(picture, "preview_sample_wave.png")
    # the same take on another character's rig (a Mixamo armature, bones only): the README's second picture
    import rig_builders

    rig = rig_builders.build_mixamo(bpy)
    rig["reel2rig_camera"] = bpy.data.objects[result.armature].get("reel2rig_camera")
    applied = addon_module("retarget_apply").apply_take(bpy.context, rig, str(take_path), "AUTO")
    assert applied.map_id == "mixamo", applied.report
    frame = bpy.context.scene.frame_start + ROW
    on_rig = read_png(render(bpy, rig.name, tmp_path / "on_rig.png", frame, mesh=False))
    clip = clip_frame(int(arrays["frame_ids"][ROW]))
    bones = np.abs(on_rig.astype(int) - clip.astype(int)).sum(axis=2) > 30
    preview_prepare = addon_module("preview_prepare")
    rig_box, body_box = preview_prepare.mask_box(bones), preview_prepare.mask_box(picture_mask)
    inter = max(0, min(rig_box[2], body_box[2]) - max(rig_box[0], body_box[0])) * \
        max(0, min(rig_box[3], body_box[3]) - max(rig_box[1], body_box[1]))
    union = ((rig_box[2] - rig_box[0]) * (rig_box[3] - rig_box[1]) +
             (body_box[2] - body_box[0]) * (body_box[3] - body_box[1]) - inter)
    print(f"the take on a Mixamo rig: its bones' box overlaps the body's by {inter / union:.2f} (IoU)")
    assert inter / union > 0.6, (rig_box, body_box)
    write_doc_image(on_rig, "preview_on_mixamo.png")
