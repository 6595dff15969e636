"""Render the project's embedded sample clip: an Anny character who waves, with ground truth.

Run from the repository root (needs the engine venv: torch, anny, bpy, mediapipe, opencv)::

    .venv/bin/python samples/make_sample_clip.py [--out samples/]

Writes ``sample_wave.mp4`` (H.264, 480x640, 25 fps, 90 frames), ``sample_wave_truth.npz`` (numpy arrays only,
no pickles) and ``sample_wave_truth.json`` (a readable description plus MediaPipe Holistic detection rates measured
on the encoded clip). Nothing is random: the same command gives the same poses and ground truth (the encoded bytes
can differ between FFmpeg builds).

This script is a tool, not part of the add-on or the engine: it imports ``bpy`` *and* ``torch``, which the project's
own modules never do together.

Conventions (the same as the project's, see DESIGN.md §2)
----------------------------------------------------------
* World: Blender/Anny world, Z up, metres. Anny's model frame is shifted up by ``FLOOR_OFFSET`` so the rest-pose
  soles touch z = 0; the subject faces -Y, i.e. the camera.
* Camera: ``p_cam = R_world2cam @ p_world + t_world2cam`` with OpenCV camera axes (x right, y down, z forward);
  ``[u, v] = (K @ p_cam)[:2] / p_cam[2]`` in pixels, origin at the top-left *corner* of the image (pixel centres at
  i + 0.5, the convention of Blender's renderer and of MediaPipe's normalised landmarks times the image size).
* Pose: Anny's ``"local-bone"`` parameterisation. For a bone c with parent p, world pose
  ``W_c = W_p @ inv(Rest_p) @ Rest_c @ D_c`` where ``D_c = [R_c | 0]`` and ``R_c`` is the rotation relative to the
  bone's rest pose, expressed in the bone's own rest axes (bone Y runs along the bone). The root's delta *is* its
  world pose: ``W_0 = D_0 = [Rest_0[:3, :3] @ R_0 | root_position_world]``. ``local_rotations_aa`` stores
  ``R_c`` as axis-angle for every bone, root included.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# Shared with the benchmark: key-pose tracks and rotation helpers (bench/motions.py), the inverse of the Take's
# FK (rigs/fk.py) and the H.264 encoder (bench/render.py).
from bench.motions import finger_curl, hand, local_rotation, matrix_to_axis_angle  # noqa: E402,F401
from bench.motions import smoothstep as _smoothstep, track_value as _track_value  # noqa: E402
from rigs.fk import local_rotations_from_world  # noqa: E402

STEM = "sample_wave"
SEED = 0  # nothing is random; recorded for the truth file's schema

FPS = 25
N_FRAMES = 90  # 3.6 s
WIDTH, HEIGHT = 480, 640  # portrait: the standing subject fills the frame, hands stay large
FOCAL_PX = 930.0  # fx = fy; 36 mm sensor width over 480 px -> 69.75 mm lens (50 mm full-frame equivalent)
CAMERA_DISTANCE = 3.2  # metres in front of the subject, on -Y, looking toward +Y
CAMERA_HEIGHT = 1.00  # level camera just below chest height, so the feet stay in frame
SKIN_RGB = (0.80, 0.56, 0.44)
BACKGROUND_RGB = (0.16, 0.26, 0.36)  # muted blue: contrasts with skin, not skin-like

# ---------------------------------------------------------------------------------------------------------------
# Motion: key poses per track, each a dict bone -> {axis: degrees} in the bone's rest axes.
# Rotation axes (found by rendering and by checking where bone axes point; see README):
#   fingers finger{2..5}-{1,2,3} and thumb finger1-{1,2,3}: +X curls toward the palm (both hands; the .R rig is
#     the mirror of .L with bone X negated, so X-rotations keep their sign between sides, Y and Z flip).
#   upperarm01: Z abducts/adducts in the frontal plane (.L: -Z lowers the arm, .R: +Z lowers it),
#     X raises the arm forward (both sides), Y twists the arm about its length (.R: +Y = external rotation).
#   lowerarm01: +X flexes the elbow (both sides); lowerarm01/02 Y twist the forearm (pro/supination).
#   wrist: -X extends the wrist (back of hand toward forearm), Z deviates it sideways.
#   spine01..03: Y turns the torso about the vertical.
# ---------------------------------------------------------------------------------------------------------------

ARMS_DOWN = {
    "upperarm01.L": {"Z": -40.0}, "upperarm01.R": {"Z": 40.0},
    "lowerarm01.L": {"X": -30.0}, "lowerarm01.R": {"X": -30.0},
}
LEFT_AT_CHEST = {  # left forearm up in front of the left chest, palm toward the camera, fingers up
    "upperarm01.L": {"Z": -45.0, "X": 20.0, "Y": 20.0},
    "lowerarm01.L": {"X": 65.0, "Y": 45.0}, "lowerarm02.L": {"Y": 45.0},
    "wrist.L": {"X": -10.0, "Z": 30.0},
}
RIGHT_WAVE = {  # right upper arm out to the side, externally rotated, forearm up, palm toward the camera
    "upperarm01.R": {"Z": -48.0, "Y": 90.0},
    "lowerarm01.R": {"X": 85.0, "Y": 8.0}, "lowerarm02.R": {"Y": 7.0},
    "wrist.R": {"X": -10.0, "Z": -20.0},
}
WAVE_START, WAVE_HZ, WAVE_AMPLITUDE_DEG = 1.35, 1.8, 22.0  # elbow swing (lowerarm01.R X) around RIGHT_WAVE


RELAXED = 0.18
# (time in seconds, pose) keys per track; poses are eased between keys (smoothstep), tracks are merged per bone.
TRACKS = {
    "arms": [
        (0.00, {}), (0.12, {}),  # A-pose (Anny's rest)
        (0.64, ARMS_DOWN), (0.80, ARMS_DOWN),
        (1.35, {**LEFT_AT_CHEST, **RIGHT_WAVE}),
    ],
    "left_hand": [  # relaxed -> fist -> counts 1, 2, 3, 4, 5 (open) -> fist
        (0.00, {}), (0.64, hand("L", *[RELAXED] * 5)), (0.85, hand("L", *[RELAXED] * 5)),
        (1.35, hand("L", 1, 1, 1, 1, 1)), (1.60, hand("L", 1, 1, 1, 1, 1)),
        (1.85, hand("L", 1, 0, 1, 1, 1)),
        (2.10, hand("L", 1, 0, 0, 1, 1)),
        (2.35, hand("L", 1, 0, 0, 0, 1)),
        (2.60, hand("L", 1, 0, 0, 0, 0)),
        (2.85, hand("L", 0, 0, 0, 0, 0)), (3.10, hand("L", 0, 0, 0, 0, 0)),
        (3.45, hand("L", 1, 1, 1, 1, 1)),
    ],
    "right_hand": [  # relaxed while the arms come down, open (fingers straight) while waving
        (0.00, {}), (0.64, hand("R", *[RELAXED] * 5)), (0.85, hand("R", *[RELAXED] * 5)),
        (1.35, hand("R", 0, 0, 0, 0, 0)),
    ],
    "torso": [  # a small turn toward the subject's left, then right, then back
        (0.00, {}), (0.90, {}),
        (1.80, {b: {"Y": 4.0} for b in ("spine03", "spine02", "spine01")}),
        (2.90, {b: {"Y": -4.0} for b in ("spine03", "spine02", "spine01")}),
        (3.56, {b: {"Y": -1.0} for b in ("spine03", "spine02", "spine01")}),
    ],
}


def channel_angles(t: float) -> dict[str, dict[str, float]]:
    """All animated (bone, axis) channels at time t, degrees."""
    out: dict[str, dict[str, float]] = {}
    for keys in TRACKS.values():
        bones_axes = {(b, a) for _, pose in keys for b, ax in pose.items() for a in ax}
        for b, a in sorted(bones_axes):
            out.setdefault(b, {})[a] = out.get(b, {}).get(a, 0.0) + _track_value(keys, t, b, a)
    # the wave: elbow swing in the frontal plane, faded in over 0.25 s
    fade = _smoothstep((t - WAVE_START) / 0.25)
    swing = WAVE_AMPLITUDE_DEG * fade * np.sin(2.0 * np.pi * WAVE_HZ * max(t - WAVE_START, 0.0))
    out.setdefault("lowerarm01.R", {})["X"] = out["lowerarm01.R"].get("X", 0.0) + float(swing)
    out.setdefault("wrist.R", {})["Z"] = out["wrist.R"].get("Z", 0.0) - 0.3 * float(swing)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Rotation helpers (numpy, float64)
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# Anny forward
# ---------------------------------------------------------------------------------------------------------------
def pose_anny(model, timestamps: np.ndarray):
    """Posed Anny for every timestamp. Returns a dict of numpy arrays (float64 where it is ground truth)."""
    import torch

    names = list(model.bone_labels)
    index = {n: i for i, n in enumerate(names)}
    n_bones = len(names)
    with torch.no_grad():
        rest_out = model(pose_parameters=torch.eye(4).repeat(1, n_bones, 1, 1), pose_parameterization="local-bone")
    rest = rest_out["rest_bone_poses"][0].double().numpy()  # (J, 4, 4), Anny model frame
    floor_offset = -float(rest_out["rest_vertices"][0, :, 2].min())  # lifts the rest soles to z = 0
    root_position = rest[0, :3, 3] + np.array([0.0, 0.0, floor_offset])  # (3,) the root does not move

    n = len(timestamps)
    local_r = np.tile(np.eye(3), (n, n_bones, 1, 1))  # (T, J, 3, 3)
    for f, t in enumerate(timestamps):
        for bone, ch in channel_angles(float(t)).items():
            local_r[f, index[bone]] = local_rotation(ch)
    deltas = np.tile(np.eye(4), (n, n_bones, 1, 1))  # (T, J, 4, 4)
    deltas[:, :, :3, :3] = local_r
    deltas[:, 0, :3, :3] = rest[0, :3, :3] @ local_r[:, 0]  # root: world pose
    deltas[:, 0, :3, 3] = root_position
    with torch.no_grad():
        out = model(pose_parameters=torch.tensor(deltas, dtype=torch.float32), pose_parameterization="local-bone")
    aa = np.array([[matrix_to_axis_angle(r) for r in frame] for frame in local_r])  # (T, J, 3)
    return {
        "names": names,
        "parents": np.asarray(model.bone_parents, dtype=np.int64),  # (J,)
        "rest": rest,
        "local_aa": aa,
        "root_position": np.tile(root_position, (n, 1)),  # (T, 3)
        "bone_poses": out["bone_poses"].double().numpy(),  # (T, J, 4, 4)
        "vertices": out["vertices"].numpy().astype(np.float32),  # (T, V, 3)
        "faces": model.get_triangular_faces().numpy().astype(np.int32),  # (F, 3)
        "floor_offset": floor_offset,
    }


# ---------------------------------------------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------------------------------------------


def camera_matrices():
    """K (3, 3), R_world2cam (3, 3), t_world2cam (3,) for the fixed camera."""
    k = np.array([[FOCAL_PX, 0.0, WIDTH / 2.0], [0.0, FOCAL_PX, HEIGHT / 2.0], [0.0, 0.0, 1.0]])
    # camera at C = (0, -d, h) looking along world +Y; OpenCV x = world +X, y = world -Z, z = world +Y
    r = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    c = np.array([0.0, -CAMERA_DISTANCE, CAMERA_HEIGHT])
    return k, r, -r @ c, c


def project(points_world: np.ndarray, k: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(..., 3) world points -> (..., 2) pixels."""
    p = points_world @ r.T + t
    uv = p @ k.T
    return uv[..., :2] / uv[..., 2:3]


# ---------------------------------------------------------------------------------------------------------------
# Blender: render PNG frames, then encode them with Blender's FFmpeg (H.264)
# ---------------------------------------------------------------------------------------------------------------
def _reset_blender():
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = WIDTH, HEIGHT, 100
    sc.render.pixel_aspect_x = sc.render.pixel_aspect_y = 1.0
    sc.render.fps, sc.render.fps_base = FPS, 1.0
    sc.view_settings.view_transform = "Standard"
    sc.view_settings.look = "None"
    return sc


def render_frames(posed, frame_dir: Path) -> float:
    import bpy

    sc = _reset_blender()
    mesh = bpy.data.meshes.new("anny")
    mesh.from_pydata(posed["vertices"][0].tolist(), [], posed["faces"].tolist())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    mat = bpy.data.materials.new("skin")
    mat.diffuse_color = (*SKIN_RGB, 1.0)
    mesh.materials.append(mat)
    body = bpy.data.objects.new("anny", mesh)
    sc.collection.objects.link(body)

    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam_data.lens = FOCAL_PX * cam_data.sensor_width / WIDTH  # fx = lens / sensor_width * W
    cam_data.shift_x = cam_data.shift_y = 0.0
    cam_data.clip_start, cam_data.clip_end = 0.1, 20.0
    cam = bpy.data.objects.new("camera", cam_data)
    cam.location = camera_matrices()[3]
    cam.rotation_euler = (np.pi / 2, 0.0, 0.0)  # Blender camera looks down its -Z: this looks along world +Y
    sc.collection.objects.link(cam)
    sc.camera = cam

    world = bpy.data.worlds.new("background")
    world.color = BACKGROUND_RGB
    sc.world = world
    sc.render.engine = "BLENDER_WORKBENCH"
    sh = sc.display.shading
    sh.light, sh.color_type = "STUDIO", "MATERIAL"
    sh.show_cavity = False
    sh.show_shadows = False
    sc.display.render_aa = "8"
    sc.render.image_settings.file_format = "PNG"
    sc.render.image_settings.color_mode = "RGB"

    t0 = time.perf_counter()
    verts = posed["vertices"]
    for f in range(len(verts)):
        mesh.vertices.foreach_set("co", verts[f].ravel())
        mesh.update()
        sc.render.filepath = str(frame_dir / f"frame_{f:04d}.png")
        bpy.ops.render.render(write_still=True)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------------
# MediaPipe check on the encoded clip
# ---------------------------------------------------------------------------------------------------------------
POSE_IDS = {  # MediaPipe pose landmark -> Anny bone (subject's own sides)
    "left_shoulder": (11, "upperarm01.L"), "right_shoulder": (12, "upperarm01.R"),
    "left_elbow": (13, "lowerarm01.L"), "right_elbow": (14, "lowerarm01.R"),
    "left_wrist": (15, "wrist.L"), "right_wrist": (16, "wrist.R"),
}


def check_with_mediapipe(video: Path, joints_2d: np.ndarray, names: list[str]) -> dict:
    import cv2
    import mediapipe as mp

    idx = {n: i for i, n in enumerate(names)}
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    n = len(frames)
    has = {"pose": np.zeros(n, bool), "left_hand": np.zeros(n, bool), "right_hand": np.zeros(n, bool)}
    pose_err = {k: [] for k in POSE_IDS}
    swapped_err = {k: [] for k in POSE_IDS}
    hand_wrist_err = {"left_hand": [], "right_hand": []}
    hand_mpjpe = {"left_hand": [], "right_hand": []}
    hand_bones = {  # MediaPipe hand landmark -> Anny bone head (16 of 21; MCPs are finger*-1 heads)
        1: "finger1-1", 2: "finger1-2", 3: "finger1-3", 5: "finger2-1", 6: "finger2-2", 7: "finger2-3",
        9: "finger3-1", 10: "finger3-2", 11: "finger3-3", 13: "finger4-1", 14: "finger4-2", 15: "finger4-3",
        17: "finger5-1", 18: "finger5-2", 19: "finger5-3",
    }
    t0 = time.perf_counter()
    with mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1) as holistic:
        for f, rgb in enumerate(frames):
            res = holistic.process(rgb)
            if res.pose_landmarks:
                has["pose"][f] = True
                lm = res.pose_landmarks.landmark
                for key, (mp_id, bone) in POSE_IDS.items():
                    xy = np.array([lm[mp_id].x * WIDTH, lm[mp_id].y * HEIGHT])
                    pose_err[key].append(float(np.linalg.norm(xy - joints_2d[f, idx[bone]])))
                    other = bone[:-1] + ("R" if bone.endswith("L") else "L")
                    swapped_err[key].append(float(np.linalg.norm(xy - joints_2d[f, idx[other]])))
            for key, side in (("left_hand", "L"), ("right_hand", "R")):
                hl = getattr(res, key + "_landmarks")
                if hl:
                    has[key][f] = True
                    pts = np.array([[p.x * WIDTH, p.y * HEIGHT] for p in hl.landmark])  # (21, 2)
                    hand_wrist_err[key].append(float(np.linalg.norm(pts[0] - joints_2d[f, idx["wrist." + side]])))
                    gt = np.array([joints_2d[f, idx[f"{b}.{side}"]] for b in hand_bones.values()])
                    hand_mpjpe[key].append(float(np.linalg.norm(pts[list(hand_bones)] - gt, axis=1).mean()))
    seconds = time.perf_counter() - t0
    in_view = {  # a hand is "in view" when all its bone heads project inside the image
        k: np.all((joints_2d[:, [idx[n] for n in names if n.endswith("." + s) and ("finger" in n or "wrist" in n)]]
                   >= 0).all(-1) & (joints_2d[:, [idx[n] for n in names if n.endswith("." + s)
                                                   and ("finger" in n or "wrist" in n)]] < [WIDTH, HEIGHT]).all(-1),
                  axis=1)
        for k, s in (("left_hand", "L"), ("right_hand", "R"))
    }
    after = np.arange(n) >= int(round(WAVE_START * FPS))  # once the hands are raised in front of the body

    def mean(v):
        return round(float(np.mean(v)), 2) if len(v) else None

    return {
        "frames_decoded": n,
        "holistic_seconds": round(seconds, 2),
        "pose_rate": round(float(has["pose"].mean()), 3),
        "left_hand_rate_in_view": round(float(has["left_hand"][in_view["left_hand"]].mean()), 3),
        "right_hand_rate_in_view": round(float(has["right_hand"][in_view["right_hand"]].mean()), 3),
        "left_hand_rate_hands_raised": round(float(has["left_hand"][after].mean()), 3),
        "right_hand_rate_hands_raised": round(float(has["right_hand"][after].mean()), 3),
        "pose_2d_error_px": {k: mean(v) for k, v in pose_err.items()},
        "pose_2d_error_px_sides_swapped": {k: mean(v) for k, v in swapped_err.items()},
        "hand_wrist_2d_error_px": {k: mean(v) for k, v in hand_wrist_err.items()},
        "hand_joints_2d_error_px": {k: mean(v) for k, v in hand_mpjpe.items()},
    }


# ---------------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "samples", help="output folder (default: samples/)")
    ap.add_argument("--keep-frames", type=Path, default=None, help="also copy the PNG frames here")
    ap.add_argument("--skip-check", action="store_true", help="do not run the MediaPipe Holistic check")
    args = ap.parse_args(argv)

    cache = REPO / ".cache"
    os.environ.setdefault("ANNY_CACHE_DIR", str(cache / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(cache / "warp"))
    os.environ.setdefault("MPLCONFIGDIR", str(cache / "mpl"))
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="reel2rig_bl_"))
    import anny  # noqa: E402  (after the cache variables)
    import bpy  # noqa: F401,E402
    import cv2  # noqa: E402

    from bench.render import encode_h264  # noqa: E402

    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    model = anny.Anny()
    frame_ids = np.arange(N_FRAMES, dtype=np.int64)  # (T,)
    timestamps = frame_ids / float(FPS)  # (T,)
    posed = pose_anny(model, timestamps)
    k, r, t, _ = camera_matrices()
    joints_world = posed["bone_poses"][:, :, :3, 3]  # (T, J, 3)
    joints_2d = project(joints_world, k, r, t)  # (T, J, 2)

    video = args.out / f"{STEM}.mp4"
    with tempfile.TemporaryDirectory(prefix="reel2rig_sample_") as tmp:
        frame_dir = Path(tmp)
        render_seconds = render_frames(posed, frame_dir)
        tmp_video = frame_dir / "clip.mp4"
        encode_h264(frame_dir, N_FRAMES, FPS, tmp_video, (WIDTH, HEIGHT))
        shutil.move(str(tmp_video), video)
        if args.keep_frames:
            args.keep_frames.mkdir(parents=True, exist_ok=True)
            for p in sorted(frame_dir.glob("frame_*.png")):
                shutil.copy(p, args.keep_frames / p.name)

    cap = cv2.VideoCapture(str(video))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    if decoded != N_FRAMES or size != (WIDTH, HEIGHT):
        raise SystemExit(f"{video}: decoded {decoded} frames of {size}, expected {N_FRAMES} of {(WIDTH, HEIGHT)}")

    arrays = {
        "frame_ids": frame_ids,
        "timestamps": timestamps,
        "fps": np.float64(FPS),
        "image_size": np.array([WIDTH, HEIGHT], dtype=np.int64),
        "K": k,
        "R_world2cam": np.tile(r, (N_FRAMES, 1, 1)),  # (T, 3, 3)
        "t_world2cam": np.tile(t, (N_FRAMES, 1)),  # (T, 3)
        "bone_names": np.array(posed["names"], dtype=np.str_),  # (J,)
        "bone_parents": posed["parents"],  # (J,), -1 for the root
        "rest_matrices": posed["rest"],  # (J, 4, 4), Anny model frame (world = model + floor_offset on z)
        # (T, J, 3) in the Take's convention (rest-relative, Blender basis): rigs.fk reproduces joints_world.
        "local_rotations_aa": local_rotations_from_world(posed["rest"], posed["parents"], posed["bone_poses"]),
        "anny_local_bone_aa": posed["local_aa"],  # (T, J, 3) what was fed to Anny (its reference-relative deltas)
        "root_position_world": posed["root_position"],  # (T, 3)
        "joints_world": joints_world,  # (T, J, 3)
        "joints_2d": joints_2d,  # (T, J, 2)
        "seed": np.int64(SEED),
        "floor_offset": np.float64(posed["floor_offset"]),
    }
    truth_npz = args.out / f"{STEM}_truth.npz"
    np.savez_compressed(truth_npz, **arrays)

    check = None if args.skip_check else check_with_mediapipe(video, joints_2d, posed["names"])
    total_seconds = time.perf_counter() - t_start
    description = {
        "clip": video.name,
        "truth": truth_npz.name,
        "motion": (
            "Anny (default phenotype, no clothes) starts in its rest A-pose, lowers both arms to its sides "
            "(0-0.8 s), then raises its RIGHT arm and waves (elbow swinging in the frontal plane at "
            f"{WAVE_HZ} Hz, palm open toward the camera) while its LEFT hand comes up in front of the chest, "
            "palm toward the camera, makes a fist and counts 1-2-3-4-5 (index, middle, ring, little, thumb), "
            "then closes to a fist again; the torso turns by about +-12 degrees."
        ),
        "subject_left_right": "left/right are the subject's own; the subject faces the camera, so its right hand "
                              "is on the image's left",
        "camera": {
            "model": "pinhole, no distortion, fixed (static) camera",
            "position_world_m": camera_matrices()[3].tolist(),
            "looking": "along world +Y, level (no tilt), world +Z up",
            "fx_fy_px": FOCAL_PX,
            "principal_point_px": [WIDTH / 2.0, HEIGHT / 2.0],
            "pixel_convention": "origin at the top-left corner of the top-left pixel, pixel centres at i+0.5",
            "blender_lens_mm": FOCAL_PX * 36.0 / WIDTH,
            "blender_sensor_width_mm": 36.0,
            "full_frame_equivalent_mm": round(FOCAL_PX * 43.267 / float(np.hypot(WIDTH, HEIGHT)), 1),
        },
        "video": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": N_FRAMES,
                  "duration_s": N_FRAMES / FPS, "codec": "H.264 (Blender FFmpeg), MP4"},
        "world": "Z up, metres; Anny's model frame lifted by floor_offset so the rest-pose soles are at z=0; "
                 "the subject faces -Y",
        "pose_parameterization": "Anny local-bone: W_c = W_p inv(Rest_p) Rest_c D_c; root W_0 = "
                                 "[Rest_0 R_0 | root_position_world]; local_rotations_aa is R_c as axis-angle",
        "rotation_axes": {
            "finger*-1..3 (thumb finger1-*)": "+X (bone rest frame) curls toward the palm, both hands",
            "upperarm01": "Z abduction in the frontal plane (.L -Z / .R +Z lowers), X forward raise, Y twist",
            "lowerarm01": "+X elbow flexion, both sides; Y forearm twist (also lowerarm02 Y)",
            "wrist": "-X extension, Z sideways deviation",
            "spine01..03": "Y torso turn",
        },
        "renderer": "Blender (bpy 5.0.1) Workbench, studio light, flat skin colour, plain blue background",
        "made_by": "samples/make_sample_clip.py (project tool); deterministic, no randomness",
        "command": ".venv/bin/python samples/make_sample_clip.py --out samples/",
        "render_seconds": round(render_seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "mediapipe_holistic_check": check,
        "licence": "GPL-3.0-or-later (made by the Reel2Rig project); Anny model Apache-2.0, assets CC0",
    }
    (args.out / f"{STEM}_truth.json").write_text(json.dumps(description, indent=2) + "\n")

    sizes = {p.name: p.stat().st_size for p in (video, truth_npz, args.out / f"{STEM}_truth.json")}
    print(f"render {render_seconds:.1f} s for {N_FRAMES} frames; total {total_seconds:.1f} s")
    print("files: " + ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items())
          + f"; total {sum(sizes.values()) / 1e6:.2f} MB")
    if check:
        print(json.dumps(check, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
