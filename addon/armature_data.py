"""Reading an armature's rest and evaluated pose out of Blender in bulk (``foreach_get``). bpy; main thread only.

Shared by the exporter (BVH writer, round-trip measurements) and the retargeter (target rest pose, checks)."""
from __future__ import annotations

from typing import Iterable

import bpy
import numpy as np


def rest_matrices(armature_obj: bpy.types.Object) -> np.ndarray:
    """``bone.matrix_local`` of every bone (armature order), armature space  # (B, 4, 4)."""
    bones = armature_obj.data.bones
    flat = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", flat)
    return flat.reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)  # foreach_get is column by column


def pose_matrices(armature_obj: bpy.types.Object, frames: Iterable[float],
                  scene: bpy.types.Scene | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The object's ``matrix_world``  # (F, 4, 4)  and the pose bones' armature-space ``matrix``  # (F, B, 4, 4)
    (bones in armature order), as Blender evaluates them — constraints and drivers included — on each frame.

    Frames may fall between whole frames (set as subframes). The scene goes back to its frame afterwards."""
    scene = scene or bpy.context.scene
    pose_bones = armature_obj.pose.bones
    order = [pose_bones.find(b.name) for b in armature_obj.data.bones]
    frames = [float(f) for f in frames]
    n = len(pose_bones)
    objects = np.empty((len(frames), 4, 4))
    poses = np.empty((len(frames), len(order), 4, 4))
    flat = np.empty(n * 16, dtype=np.float32)
    current = (scene.frame_current, scene.frame_subframe)
    try:
        for t, frame in enumerate(frames):
            whole = int(np.floor(frame))
            scene.frame_set(whole, subframe=frame - whole)
            pose_bones.foreach_get("matrix", flat)
            poses[t] = flat.reshape(n, 4, 4).transpose(0, 2, 1)[order]
            objects[t] = np.array(armature_obj.matrix_world)
    finally:
        scene.frame_set(current[0], subframe=current[1])
    return objects, poses
