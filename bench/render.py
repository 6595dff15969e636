"""Render a benchmark scene with the real Blender (``bpy``, Workbench) and write its ground truth.

Imports ``bpy``, ``torch`` and ``anny`` (lazily): a benchmark tool, never part of the add-on or the engine.

For one :class:`bench.scenes.Scene` this poses Anny (phenotype + motion from ``bench.motions``), grounds it (feet on
the floor, stance feet planted), likewise every other person of ``scene.others`` (each an independent Anny with its
own phenotype, skin, motion, start offset, turn and time shift), places the camera for the framing (every framed
person in view), builds the set (floor, backdrop, clutter, light), renders every frame to PNG, encodes an H.264 MP4
with Blender's FFmpeg, and saves ``truth.npz``:

=====================  ============  =====================================================================
field                  shape         meaning
=====================  ============  =====================================================================
frame_ids, timestamps  (T,)          frame index, seconds
fps, image_size        (), (2,)      frames/s; (width, height) px
K                      (3, 3)        intrinsics, px; principal point at the image centre
R_world2cam            (T, 3, 3)     OpenCV camera axes (x right, y down, z forward); p_cam = R p_world + t
t_world2cam            (T, 3)        metres
bone_names, parents    (J,), (J,)    Anny's 104 bones; parent index, −1 for the root
rest_matrices          (J, 4, 4)     this phenotype's rest bone matrices (model frame: pelvis at the origin)
local_rotations_aa     (T, J, 3)     rest-relative rotations, the Take's convention (rigs.fk reproduces joints)
anny_local_bone_aa     (T, J, 3)     what was fed to Anny ("local-bone", reference-relative; the root's
                                     entry is its world rotation)
root_position_world    (T, 3)        the root bone's head, metres
joints_world           (T, J, 3)     bone heads; ``joints_cam`` and ``joints_2d`` (px) likewise
body_markers_world     (T, 33, 3)    MediaPipe pose landmarks on this body (Anny COCO+feet regressor), NaN
                                     where MediaPipe has no counterpart; ``body_markers_2d`` (T, 33, 2)
hand_points_world      (T, 2, 21, 3) MediaPipe hand landmarks [left, right]: wrist, finger bone heads,
                                     fingertip skin vertices; ``hand_points_2d`` (T, 2, 21, 2)
body_visible           (T, 33)       inside the image and not hidden behind a surface (ray cast, 12 cm
                                     tolerance for points inside limbs); ``hand_visible`` (T, 2, 21) (1-3 cm)
foot_contact           (T, 2)        [left, right] sole within 3 cm of the floor and moving < 0.2 m/s
phenotype              (6,)          gender, age, muscle, weight, height, proportions
=====================  ============  =====================================================================

The fields above describe person 0, the scene's subject. Every person (``Scene.others``; a single-person scene has
P = 1) also gets, with a leading person axis, person 0 first then ``scene.others`` in order:

==========================  ===============  ================================================================
field                       shape            meaning
==========================  ===============  ================================================================
people_body_markers_2d      (P, T, 33, 2)    as ``body_markers_2d`` (px; NaN where MediaPipe has no counterpart)
people_body_visible         (P, T, 33)       as ``body_visible``; the ray cast meets every person's mesh, so a
                                             person hidden behind another is not visible
people_hand_points_2d       (P, T, 2, 21, 2) as ``hand_points_2d``
people_hand_visible         (P, T, 2, 21)    as ``hand_visible`` (hidden by any person's mesh)
people_joints_world         (P, T, J, 3)     as ``joints_world``
people_root_position_world  (P, T, 3)        as ``root_position_world``
people_phenotype            (P, 6)           as ``phenotype``
people_framed               (P,)             whether the camera framing includes the person (False: it may be
                                             cut by the picture's edge)
==========================  ===============  ================================================================

World: Z up, metres, the floor is z = 0; the subject starts above the origin facing −Y (left = +X); another person
starts above its ``offset_m``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.scenes import LIGHTING, PHENOTYPES, SKIN_TONES, Scene
from inference_server.anny_skeleton import BODY_MARKER_COCO

PHENOTYPE_LABELS = ("gender", "age", "muscle", "weight", "height", "proportions")

HAND_CHAIN = ["finger1-1", "finger1-2", "finger1-3", None, "finger2-1", "finger2-2", "finger2-3", None,
              "finger3-1", "finger3-2", "finger3-3", None, "finger4-1", "finger4-2", "finger4-3", None,
              "finger5-1", "finger5-2", "finger5-3", None]  # MediaPipe hand landmarks 1..20; None = fingertip
CONTACT_HEIGHT_M, CONTACT_SPEED_MS = 0.03, 0.2
BODY_OCCLUSION_TOL_M = 0.12  # body landmarks are joint centres up to ~12 cm under the skin
# Hand landmarks: wrist, then per finger (base, middle, end joint, tip); deeper joints get more tolerance.
HAND_OCCLUSION_TOL_M = np.array([0.035] + [0.03, 0.018, 0.014, 0.008] * 5)


# ---------------------------------------------------------------------------------------------------------------
# Posing
# ---------------------------------------------------------------------------------------------------------------
def _mesh_landmarks(model) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids: sole vertices per foot (2, P) and fingertip vertices (2, 5), from the default rest mesh."""
    import torch

    with torch.no_grad():
        out = model()
    verts = out["rest_vertices"][0].double().numpy()   # (V, 3)
    rest = out["rest_bone_poses"][0].double().numpy()  # (J, 4, 4)
    names = list(model.bone_labels)
    idx = model.vertex_bone_indices.long().numpy()     # (V, K)
    w = model.vertex_bone_weights.double().numpy()     # (V, K)
    top = idx[np.arange(len(idx)), w.argmax(1)]        # (V,) the bone each vertex follows most
    soles = []
    for side in "LR":
        foot = [names.index(n) for n in names if n.endswith("." + side) and (n.startswith("foot") or
                                                                              n.startswith("toe"))]
        cand = np.nonzero(np.isin(top, foot))[0]
        low = cand[verts[cand, 2] < verts[cand, 2].min() + 0.012]
        soles.append(low[np.linspace(0, len(low) - 1, 24).round().astype(int)])
    tips = np.zeros((2, 5), dtype=np.int64)
    for s, side in enumerate("LR"):
        for f in range(5):
            j = names.index(f"finger{f + 1}-3.{side}")
            cand = np.nonzero(top == j)[0]
            along = (verts[cand] - rest[j, :3, 3]) @ rest[j, :3, 1]
            tips[s, f] = cand[along.argmax()]
    return np.stack(soles), tips


def pose_person(model, motion_name: str, phenotype: str, timestamps: np.ndarray, fps: float, yaw_deg: float = 0.0,
                offset_m: tuple[float, float] = (0.0, 0.0), time_offset_s: float = 0.0) -> dict:
    """One posed, grounded Anny for every timestamp (float64 ground truth, float32 vertices).

    The motion is played at ``timestamps - time_offset_s``, its root rotation turned by `yaw_deg` about world Z (about
    the root's rest position, before grounding: a walk's travel turns with it), then the grounded body is shifted by
    ``offset_m`` (x, y) metres."""
    import anny
    import torch

    from bench.motions import MOTIONS, ground_root_translation, local_bone_deltas, yaw_matrix
    from rigs.rotations import matrix_to_aa
    from rigs.fk import local_rotations_from_world

    if motion_name not in MOTIONS:
        raise ValueError(f"motion {motion_name!r} is not one of {sorted(MOTIONS)}")
    motion = MOTIONS[motion_name]
    names = list(model.bone_labels)
    n, n_bones = len(timestamps), len(names)
    motion_t = np.asarray(timestamps, dtype=float) - float(time_offset_s)
    pheno = PHENOTYPES[phenotype]
    with torch.no_grad():
        rest_out = model(pose_parameters=torch.eye(4).repeat(1, n_bones, 1, 1), pose_parameterization="local-bone",
                         phenotype_kwargs=pheno)
    rest = rest_out["rest_bone_poses"][0].double().numpy()  # (J, 4, 4) this phenotype, model frame

    deltas = local_bone_deltas(motion, motion_t, names, rest[0])  # (T, J, 4, 4), root held at its rest place
    if yaw_deg:
        deltas[:, 0, :3, :3] = yaw_matrix(float(yaw_deg)) @ deltas[:, 0, :3, :3]
    with torch.no_grad():
        out = model(pose_parameters=torch.tensor(deltas, dtype=torch.float32), pose_parameterization="local-bone",
                    phenotype_kwargs=pheno)
        coco = anny.KeypointsRegressor.coco(model)(out).double().numpy()  # (T, 23, 3)
    bone_poses = out["bone_poses"].double().numpy()  # (T, J, 4, 4)
    vertices = out["vertices"].numpy().astype(np.float32)  # (T, V, 3)

    soles_idx, tips_idx = _mesh_landmarks(model)
    soles = vertices[:, soles_idx].astype(np.float64)  # (T, 2, P, 3)
    lift = np.array([motion.root_lift_m(float(t)) for t in motion_t])
    shift = ground_root_translation(soles, lift, planted=True)  # (T, 3)
    shift[:, :2] += np.asarray(offset_m, dtype=float)

    bone_poses[:, :, :3, 3] += shift[:, None]
    vertices += shift[:, None].astype(np.float32)
    coco += shift[:, None]
    soles += shift[:, None, None]
    body = np.full((n, 33, 3), np.nan)
    for mp_index, coco_index in BODY_MARKER_COCO.items():
        body[:, mp_index] = coco[:, coco_index]
    hands = np.zeros((n, 2, 21, 3))
    for s, side in enumerate("LR"):
        hands[:, s, 0] = bone_poses[:, names.index(f"wrist.{side}"), :3, 3]
        tip = 0
        for k, bone in enumerate(HAND_CHAIN, start=1):
            if bone is None:
                hands[:, s, k] = vertices[:, tips_idx[s, tip]]
                tip += 1
            else:
                hands[:, s, k] = bone_poses[:, names.index(f"{bone}.{side}"), :3, 3]
    sole_height = soles[..., 2].min(axis=2)  # (T, 2)
    centre = soles.mean(axis=2)  # (T, 2, 3)
    speed = np.zeros((n, 2))
    if n > 1:
        step = np.linalg.norm(np.diff(centre[..., :2], axis=0), axis=-1) * fps  # (T-1, 2) m/s
        speed[1:] = step
        speed[0] = step[0]
    contact = (sole_height < CONTACT_HEIGHT_M) & (speed < CONTACT_SPEED_MS)
    parents = np.asarray(model.bone_parents, dtype=np.int64)
    return {
        "motion": motion_name, "names": names, "parents": parents, "rest": rest,
        "local_rotations_aa": local_rotations_from_world(rest, parents, bone_poses),
        "anny_local_bone_aa": matrix_to_aa(deltas[..., :3, :3]),
        "bone_poses": bone_poses, "vertices": vertices, "faces": model.get_triangular_faces().numpy(),
        "body_markers_world": body, "hand_points_world": hands, "foot_contact": contact,
        "phenotype": np.array([pheno.get(k, 0.5) for k in PHENOTYPE_LABELS]), "framed": True,
    }


def pose_scene(scene: Scene, model, timestamps: np.ndarray) -> dict:
    """The scene's own subject (person 0), posed and grounded: see :func:`pose_person`."""
    return pose_person(model, scene.motion, scene.phenotype, timestamps, scene.fps)


def pose_people(scene: Scene, model, timestamps: np.ndarray) -> list[dict]:
    """Every person of the scene, person 0 (the subject) first, then ``scene.others`` in order."""
    people = [pose_scene(scene, model, timestamps)]
    people[0]["skin"] = scene.skin
    for extra in scene.others:
        posed = pose_person(model, extra.motion, extra.phenotype, timestamps, scene.fps, extra.yaw_deg,
                            extra.offset_m, extra.time_offset_s)
        posed["framed"], posed["skin"] = extra.framed, extra.skin
        people.append(posed)
    return people


def scene_frame_count(scene: Scene) -> int:
    """Frames of the clip: until every person's motion has ended, capped by ``scene.max_frames``."""
    from bench.motions import MOTIONS

    ends = [MOTIONS[scene.motion].duration_s] + [MOTIONS[o.motion].duration_s + o.time_offset_s
                                                 for o in scene.others]
    n = int(round(max(ends) * scene.fps))
    if scene.max_frames:
        n = min(n, scene.max_frames)
    return max(n, 1)


# ---------------------------------------------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------------------------------------------
def look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """R_world2cam (OpenCV axes) of a camera at `centre` looking at `target` with world Z up (no roll)."""
    f = target - centre
    f = f / np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)
    return np.stack([r, d, f])


def _small_rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    from bench.motions import local_rotation

    return local_rotation({"X": rx, "Y": ry, "Z": rz})


def _framing_points(scene: Scene, people: list[dict] | dict) -> np.ndarray:
    """(T, N, 3) world points the framing must keep in view: those of every framed person."""
    if isinstance(people, dict):
        people = [people]
    return np.concatenate([_person_framing_points(scene, p) for p in people if p.get("framed", True)], axis=1)


def _person_framing_points(scene: Scene, posed: dict) -> np.ndarray:
    names = posed["names"]
    joints = posed["bone_poses"][:, :, :3, 3]
    hands = posed["hand_points_world"].reshape(len(joints), -1, 3)
    if scene.framing == "hands":
        return hands
    if scene.framing == "upper":
        keep = [names.index(b) for b in ("head", "neck01", "upperarm01.L", "upperarm01.R", "pelvis.L",
                                          "pelvis.R", "spine03")]
        head_top = joints[:, [names.index("head")]] + np.array([0.0, 0.0, 0.2])
        return np.concatenate([joints[:, keep], head_top, hands], axis=1)
    verts = posed["vertices"][:, ::20].astype(np.float64)  # (T, V/20, 3) the whole body
    return verts


def place_camera(scene: Scene, people: list[dict] | dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """K (3,3), R_world2cam (T,3,3), t_world2cam (T,3), camera centres (T,3) for the scene's framing and motion.

    `people`: the posed persons (:func:`pose_people`; a single posed dict is person 0 alone). The framing keeps every
    framed person in view; the pan camera follows the mean pelvis of the framed persons."""
    if isinstance(people, dict):
        people = [people]
    framed = [p for p in people if p.get("framed", True)]
    w, h = scene.resolution
    focal = scene.focal_scale * max(w, h)
    K = np.array([[focal, 0.0, w / 2.0], [0.0, focal, h / 2.0], [0.0, 0.0, 1.0]])
    pts = _framing_points(scene, people)  # (T, N, 3)
    n = len(pts)
    margin = {"full": 0.80, "upper": 0.80, "hands": 0.70}[scene.framing]  # fraction of the half-image used
    yaw = math.radians(scene.view_yaw_deg)
    view = np.array([math.sin(yaw), math.cos(yaw), 0.0])  # horizontal viewing direction (0 deg: toward +Y)
    lateral = np.array([math.cos(yaw), -math.sin(yaw), 0.0])

    def fit_distance(points: np.ndarray, centre_xy: np.ndarray, height: float) -> float:
        rel = points - np.array([centre_xy[0], centre_xy[1], height])
        a = rel @ lateral        # right of the aim point
        b = -(rel @ view)        # toward the camera
        v = rel[:, 2]
        need = np.maximum(b + focal * np.abs(a) / (margin * w / 2.0), b + focal * np.abs(v) / (margin * h / 2.0))
        return float(max(need.max(), 0.5))

    flat = pts.reshape(-1, 3)
    if scene.camera == "pan":
        # The camera stands still and turns to follow the subject's pelvis (smoothed); it frames one frame's body.
        pelvis = np.mean([p["bone_poses"][:, 0, :3, 3] for p in framed], axis=0)
        kernel = np.ones(9) / 9.0
        aim = np.stack([np.convolve(np.pad(pelvis[:, i], 4, mode="edge"), kernel, "valid") for i in range(3)], 1)
        lo, hi = np.nanmin(pts[..., 2]), np.nanmax(pts[..., 2])
        height = 0.5 * (lo + hi)
        dist = max(fit_distance(pts[t], aim[t, :2], height) for t in range(n))
        centre = np.array([*(aim.mean(0)[:2] - dist * view[:2]), height])
        R = np.stack([look_at(centre, np.array([aim[t, 0], aim[t, 1], height])) for t in range(n)])
        C = np.tile(centre, (n, 1))
    else:
        lo, hi = flat.min(0), flat.max(0)
        mid = 0.5 * (lo + hi)
        dist = fit_distance(flat, mid[:2], float(mid[2]))
        centre = np.array([*(mid[:2] - dist * view[:2]), mid[2]])
        R = np.tile(look_at(centre, mid), (n, 1, 1))
        C = np.tile(centre, (n, 1))
        if scene.camera == "shake":
            rng = np.random.default_rng(scene.seed)
            t = np.arange(n) / scene.fps
            def wobble(amplitude: float) -> np.ndarray:  # sum of three sinusoids, 0.3-2.5 Hz
                hz = rng.uniform(0.3, 2.5, 3)
                phase = rng.uniform(0, 2 * np.pi, 3)
                return amplitude * np.sum(np.sin(2 * np.pi * hz[:, None] * t + phase[:, None]), 0) / 1.7
            angles = np.stack([wobble(0.8), wobble(0.8), wobble(0.5)], 1)  # degrees about camera x, y, z
            offsets = np.stack([wobble(0.01), wobble(0.01), wobble(0.01)], 1)  # metres
            R = np.stack([_small_rotation(*angles[i]) @ R[i] for i in range(n)])
            C = C + offsets
    t_vec = -np.einsum("tij,tj->ti", R, C)
    return K, R, t_vec, C


# ---------------------------------------------------------------------------------------------------------------
# Blender
# ---------------------------------------------------------------------------------------------------------------
def _noise_texture(rng: np.random.Generator, size: int, base: np.ndarray, kind: str) -> np.ndarray:
    """RGBA float32 (size, size, 4) procedural texture: value noise (octaves), tiles or stripes over a colour."""
    import cv2

    img = np.zeros((size, size), np.float32)
    for octave in range(5):
        cells = 4 * 2 ** octave
        small = rng.random((cells, cells)).astype(np.float32)
        img += cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC) / 2 ** octave
    img = (img - img.min()) / max(float(np.ptp(img)), 1e-6)
    if kind == "tiles":
        yy, xx = np.mgrid[0:size, 0:size]
        grout = ((xx % (size // 8)) < 3) | ((yy % (size // 8)) < 3)
        img = 0.6 + 0.4 * img
        img[grout] = 0.25
    elif kind == "stripes":
        xx = np.mgrid[0:size, 0:size][1]
        img = 0.7 * img + 0.3 * (np.sin(xx / size * 2 * np.pi * 12) > 0)
    rgb = np.clip(base[None, None] * (0.55 + 0.9 * img[..., None]), 0, 1)
    return np.concatenate([rgb, np.ones((size, size, 1))], -1).astype(np.float32)


def _material(name: str, rgb, image=None):
    import bpy

    mat = bpy.data.materials.new(name)
    mat.diffuse_color = (*rgb, 1.0)
    if image is not None:
        mat.use_nodes = True
        nodes = mat.node_tree.nodes
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = image
        bsdf = nodes.get("Principled BSDF")
        if bsdf is not None:
            mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        nodes.active = tex  # Workbench's Texture colour mode shows the active image node
    return mat


def _image(name: str, pixels: np.ndarray):
    import bpy

    img = bpy.data.images.new(name, pixels.shape[1], pixels.shape[0])
    img.pixels.foreach_set(pixels.ravel())
    img.pack()
    return img


def _plane(name: str, size: tuple[float, float], location, rotation, material, uv_repeat: float = 1.0):
    import bpy

    bpy.ops.mesh.primitive_plane_add(size=1.0, location=location, rotation=rotation)
    obj = bpy.context.object
    obj.name = name
    obj.scale = (size[0], size[1], 1.0)
    uv = obj.data.uv_layers.active.data
    co = np.zeros(len(uv) * 2, np.float32)
    uv.foreach_get("uv", co)
    co[0::2] *= uv_repeat * size[0] / max(size)
    co[1::2] *= uv_repeat * size[1] / max(size)
    uv.foreach_set("uv", co)
    obj.data.materials.append(material)
    return obj


def build_set(scene: Scene, people: list[dict], centres: np.ndarray, rng: np.random.Generator) -> list:
    """Floor, backdrop, clutter, a stool per sitting person, world colour, light and one mesh per person (its
    ``skin`` colour, default the scene's). Returns the persons' mesh objects, person 0 first."""
    import bpy

    sc = bpy.context.scene
    palette = np.array([[0.16, 0.26, 0.36], [0.30, 0.33, 0.28], [0.38, 0.30, 0.26], [0.22, 0.22, 0.26],
                        [0.42, 0.40, 0.36]])
    base = palette[rng.integers(len(palette))]
    world = bpy.data.worlds.new("background")
    world.color = tuple(base)
    sc.world = world

    mid = np.mean([p["bone_poses"][:, 0, :3, 3].mean(0) for p in people], axis=0)  # the mean pelvis of everyone
    cam = centres.mean(0)
    view = mid[:2] - cam[:2]
    view = view / max(np.linalg.norm(view), 1e-6)
    yaw = math.atan2(view[0], view[1])  # 0 when the camera looks along +Y

    if scene.background == "plain":
        floor_mat = _material("floor", tuple(base * 0.8))
    else:
        floor_img = _image("floor", _noise_texture(rng, 512, rng.uniform(0.3, 0.7, 3), "tiles"))
        floor_mat = _material("floor", (0.5, 0.5, 0.5), floor_img)
    _plane("floor", (40.0, 40.0), (mid[0], mid[1], 0.0), (0.0, 0.0, 0.0), floor_mat, uv_repeat=20.0)
    behind = mid[:2] + view * 3.0
    if scene.background != "plain":
        wall_img = _image("wall", _noise_texture(rng, 512, rng.uniform(0.3, 0.8, 3),
                                                 "stripes" if rng.random() < 0.5 else "noise"))
        _plane("backdrop", (24.0, 8.0), (behind[0], behind[1], 4.0), (math.pi / 2, 0.0, -yaw),
               _material("wall", (0.5, 0.5, 0.5), wall_img), uv_repeat=6.0)
    if scene.background == "cluttered":
        side = np.array([view[1], -view[0]])
        for k in range(14):
            depth = rng.uniform(0.9, 2.8)
            across = rng.uniform(-3.5, 3.5)
            if depth < 1.4 and abs(across) < 1.0:
                across = math.copysign(1.0 + rng.random(), across)  # keep clear of the subject
            xy = mid[:2] + view * depth + side * across
            colour = tuple(rng.uniform(0.1, 0.9, 3))
            kind = rng.integers(3)
            s = rng.uniform(0.25, 0.7)
            if kind == 0:
                bpy.ops.mesh.primitive_cube_add(size=s, location=(xy[0], xy[1], s / 2 + rng.uniform(0, 1.2)),
                                                rotation=(0, 0, rng.uniform(0, math.pi)))
            elif kind == 1:
                hgt = rng.uniform(0.5, 1.8)
                bpy.ops.mesh.primitive_cylinder_add(radius=s / 2, depth=hgt, location=(xy[0], xy[1], hgt / 2))
            else:
                bpy.ops.mesh.primitive_uv_sphere_add(radius=s / 2, location=(xy[0], xy[1], s / 2 + rng.uniform(0, 1)))
            bpy.context.object.data.materials.append(_material(f"clutter{k}", colour))
    for i, posed in enumerate(people):
        if posed.get("motion", scene.motion if i == 0 else None) != "sit_down":
            continue
        # A stool under the pelvis at its lowest point, its top just under the thighs.
        pelvis = posed["bone_poses"][:, 0, :3, 3]
        low = int(np.argmin(pelvis[:, 2]))
        top = max(0.25, float(pelvis[low, 2]) - 0.12)
        facing = posed["bone_poses"][low, 0, :3, :3] @ np.array([0.0, -1.0, 0.0])
        centre = pelvis[low, :2] - 0.08 * facing[:2] / max(np.linalg.norm(facing[:2]), 1e-6)
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=(centre[0], centre[1], top / 2))
        bpy.context.object.scale = (0.42, 0.42, top)
        bpy.context.object.data.materials.append(_material(f"stool{i or ''}", (0.35, 0.22, 0.12)))

    bodies = []
    for i, posed in enumerate(people):
        name = f"anny{i or ''}"
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata(posed["vertices"][0].tolist(), [], posed["faces"].tolist())
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
        mesh.materials.append(_material(f"skin{i or ''}", SKIN_TONES[posed.get("skin", scene.skin)]))
        body = bpy.data.objects.new(name, mesh)
        sc.collection.objects.link(body)
        bodies.append(body)

    mode, light_file, rotate, shadows = LIGHTING[scene.lighting]
    sh = sc.display.shading
    sh.light = mode
    if mode == "STUDIO":
        sh.studio_light = light_file
        sh.studiolight_rotate_z = math.radians(rotate)
    sh.color_type = "TEXTURE"
    sh.show_cavity = False
    sh.show_shadows = shadows
    sh.shadow_intensity = 0.35
    sc.display.light_direction = (math.sin(math.radians(rotate)) * 0.5, -0.4, 0.8)
    return bodies


def _reset(scene: Scene):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    w, h = scene.resolution
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = w, h, 100
    sc.render.pixel_aspect_x = sc.render.pixel_aspect_y = 1.0
    sc.render.fps, sc.render.fps_base = scene.fps, 1.0
    sc.view_settings.view_transform = "Standard"
    sc.view_settings.look = "None"
    sc.render.engine = "BLENDER_WORKBENCH"
    sc.display.render_aa = "5"
    sc.render.image_settings.file_format = "PNG"
    sc.render.image_settings.color_mode = "RGB"
    return sc


def _camera(sc, K: np.ndarray, width: int):
    import bpy

    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = 36.0
    data.lens = K[0, 0] * data.sensor_width / width  # fx = lens / sensor_width × W
    data.clip_start, data.clip_end = 0.05, 60.0
    cam = bpy.data.objects.new("camera", data)
    sc.collection.objects.link(cam)
    sc.camera = cam
    return cam


def _camera_matrix_world(R_w2c: np.ndarray, centre: np.ndarray):
    """Blender's camera looks down its −Z with +Y up: columns (x, −y_cv, −z_cv) of the OpenCV camera axes."""
    from mathutils import Matrix

    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = R_w2c[0], -R_w2c[1], -R_w2c[2]
    m[:3, 3] = centre
    return Matrix(m.tolist())


def _visible(sc, depsgraph, centre: np.ndarray, points: np.ndarray, uv: np.ndarray, z: np.ndarray,
             size: tuple[int, int], tolerance) -> np.ndarray:
    """(N,) bool: in the image, in front of the camera and no surface more than `tolerance` in front of it."""
    from mathutils import Vector

    w, h = size
    out = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=float), out.shape)
    for i in np.nonzero(out)[0]:
        d = points[i] - centre
        dist = float(np.linalg.norm(d))
        hit, loc, *_ = sc.ray_cast(depsgraph, Vector(centre.tolist()), Vector((d / dist).tolist()), distance=dist)
        if hit and (Vector(loc) - Vector(centre.tolist())).length < dist - tol[i]:
            out[i] = False
    return out


@contextlib.contextmanager
def _quiet():
    """Silence Blender's C-level stdout (\"Fra:…\", \"Saved…\", \"Video append frame…\") while it renders."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def encode_h264(frame_dir: Path, n_frames: int, fps: int, out_path: Path, size: tuple[int, int]) -> None:
    """Encode frame_0000.png ... into an H.264 MP4 with Blender's own FFmpeg."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = *size, 100
    sc.render.fps, sc.render.fps_base = fps, 1.0
    sc.view_settings.view_transform = "Standard"
    ed = sc.sequence_editor_create()
    strip = ed.strips.new_image(name="frames", filepath=str(frame_dir / "frame_0000.png"), channel=1, frame_start=1)
    for f in range(1, n_frames):
        strip.elements.append(f"frame_{f:04d}.png")
    sc.frame_start, sc.frame_end = 1, n_frames
    im = sc.render.image_settings
    if hasattr(im, "media_type"):
        im.media_type = "VIDEO"
    im.file_format = "FFMPEG"
    ff = sc.render.ffmpeg
    ff.format, ff.codec = "MPEG4", "H264"
    ff.constant_rate_factor = "HIGH"
    ff.ffmpeg_preset = "GOOD"
    ff.gopsize = fps
    ff.audio_codec = "NONE"
    sc.render.use_file_extension = False
    sc.render.filepath = str(out_path)
    bpy.ops.render.render(animation=True)


def project(points_world: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, ..., 3) world → (camera (T,...,3), pixels (T,...,2), depth (T,...)) with per-frame R (T,3,3), t (T,3)."""
    from bench.metrics import project as to_pixels, to_camera

    shape = points_world.shape
    cam = to_camera(points_world.reshape(shape[0], -1, 3), R, t).reshape(shape)
    return cam, to_pixels(cam, K), cam[..., 2]


def render_scene(scene: Scene, out_dir: Path, model=None, log=print) -> Path:
    """Render `scene` into `out_dir` (clip.mp4, truth.npz, scene.json), atomically: the folder appears complete."""
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="reel2rig_bl_"))
    import bpy

    from bench.motions import MOTIONS
    from inference_server.anny_skeleton import load_anny_model

    started = time.perf_counter()
    model = model or load_anny_model()
    n = scene_frame_count(scene)
    frame_ids = np.arange(n, dtype=np.int64)
    timestamps = frame_ids / float(scene.fps)
    people = pose_people(scene, model, timestamps)
    posed = people[0]
    K, R, t, centres = place_camera(scene, people)
    w, h = scene.resolution
    n_people = len(people)
    joints_world = np.stack([p["bone_poses"][:, :, :3, 3] for p in people])  # (P, T, J, 3)
    body_world = np.stack([p["body_markers_world"] for p in people])  # (P, T, 33, 3)
    hand_world = np.stack([p["hand_points_world"] for p in people])  # (P, T, 2, 21, 3)
    # project() wants time first: move the person axis behind it and back.
    joints_cam, joints_2d, _ = (np.moveaxis(a, 1, 0) for a in project(np.moveaxis(joints_world, 0, 1), K, R, t))
    body_cam, body_2d, body_z = (np.moveaxis(a, 1, 0) for a in project(np.moveaxis(body_world, 0, 1), K, R, t))
    hand_cam, hand_2d, hand_z = (np.moveaxis(a, 1, 0) for a in project(np.moveaxis(hand_world, 0, 1), K, R, t))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        frames = work / "frames"
        frames.mkdir()
        rng = np.random.default_rng(scene.seed)
        sc = _reset(scene)
        bodies = build_set(scene, people, centres, rng)
        cam = _camera(sc, K, w)
        body_visible = np.zeros((n_people, n, 33), bool)
        hand_visible = np.zeros((n_people, n, 2, 21), bool)
        t_render = time.perf_counter()
        for f in range(n):
            for person, body in zip(people, bodies):
                body.data.vertices.foreach_set("co", person["vertices"][f].ravel())
                body.data.update()
            cam.matrix_world = _camera_matrix_world(R[f], centres[f])
            bpy.context.view_layer.update()
            dg = bpy.context.evaluated_depsgraph_get()
            for i in range(n_people):  # every person's mesh is in the scene: they hide each other's landmarks
                valid = np.isfinite(body_z[i, f])
                vis = np.zeros(33, bool)
                vis[valid] = _visible(sc, dg, centres[f], body_world[i, f, valid], body_2d[i, f, valid],
                                      body_z[i, f, valid], (w, h), BODY_OCCLUSION_TOL_M)
                body_visible[i, f] = vis
                hand_visible[i, f] = _visible(sc, dg, centres[f], hand_world[i, f].reshape(-1, 3),
                                              hand_2d[i, f].reshape(-1, 2), hand_z[i, f].ravel(), (w, h),
                                              np.tile(HAND_OCCLUSION_TOL_M, 2)).reshape(2, 21)
            sc.render.filepath = str(frames / f"frame_{f:04d}.png")
            with _quiet():
                bpy.ops.render.render(write_still=True)
            if f % 25 == 0:
                log(f"  {scene.name}: frame {f + 1}/{n}")
        render_s = time.perf_counter() - t_render
        with _quiet():
            encode_h264(frames, n, scene.fps, work / "clip.mp4", (w, h))
        shutil.rmtree(frames)
        np.savez_compressed(
            work / "truth.npz",
            frame_ids=frame_ids, timestamps=timestamps, fps=np.float64(scene.fps),
            image_size=np.array([w, h], dtype=np.int64), K=K, R_world2cam=R, t_world2cam=t,
            bone_names=np.array(posed["names"], dtype=np.str_), bone_parents=posed["parents"],
            rest_matrices=posed["rest"], local_rotations_aa=posed["local_rotations_aa"],
            anny_local_bone_aa=posed["anny_local_bone_aa"], root_position_world=joints_world[0, :, 0],
            joints_world=joints_world[0], joints_cam=joints_cam[0], joints_2d=joints_2d[0],
            body_markers_world=body_world[0], body_markers_cam=body_cam[0], body_markers_2d=body_2d[0],
            hand_points_world=hand_world[0], hand_points_cam=hand_cam[0], hand_points_2d=hand_2d[0],
            body_visible=body_visible[0], hand_visible=hand_visible[0], foot_contact=posed["foot_contact"],
            phenotype=posed["phenotype"], phenotype_labels=np.array(PHENOTYPE_LABELS, dtype=np.str_),
            seed=np.int64(scene.seed),
            people_body_markers_2d=body_2d, people_body_visible=body_visible, people_hand_points_2d=hand_2d,
            people_hand_visible=hand_visible, people_joints_world=joints_world,
            people_root_position_world=joints_world[:, :, 0],
            people_phenotype=np.stack([p["phenotype"] for p in people]),
            people_framed=np.array([p["framed"] for p in people], dtype=bool))
        (work / "scene.json").write_text(json.dumps({
            "scene": dataclasses.asdict(scene), "key": scene.key(), "description": scene.describe(),
            "motion": MOTIONS[scene.motion].description, "frames": n, "people": n_people,
            "render_seconds": round(render_s, 1), "total_seconds": round(time.perf_counter() - started, 1),
        }, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir
