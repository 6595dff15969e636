"""Real motions held out of the motion network's training, as benchmark motions: CMU motion capture
(../shared/mocap, never copied into the project) retargeted onto Anny (``inference_server.motion_data``) and played
by the bench's renderer like its procedural motions. Imports torch and anny (the renderer's model); no bpy.

Every clip here comes from the held-out CMU subjects 2 and 8 (``motion_data.HELD_OUT_SUBJECTS``), so the ``mocap``
suite scores the motion network on motions it never saw, beside the optimisation pipeline and the baselines.

The renderer poses Anny through its ``"local-bone"`` parameterisation, whose deltas ``D_j`` are relative to Anny's
reference pose, not to its rest pose as the Take's (and the retarget's) rotations ``L_j`` are. With ``M_j = W_pᵀ W_j``
of the reference pose (``D = I``) and ``O_j = Rest_pᵀ Rest_j``, both frames give ``W_pᵀ W_j = O_j L_j = M_j D_j``,
hence ``D_j = M_jᵀ O_j L_j`` (checked on the rendered truth: ``M_j`` is constant over time to 1e-7). The root's delta
is its world rotation ``Rest_0 L_0``: the motion's root channels are ``L_0`` with no extra yaw. The conversion uses
the average body (the suite's scenes use it), so the truth's rotations are the retarget's own.

``register(names, model)`` adds the named motions to ``bench.motions.MOTIONS`` (the renderer's table); the bench
calls it explicitly before rendering a scene that plays one. Without the packs it raises ``MocapError`` with the fix.
"""
from __future__ import annotations

import functools

import numpy as np

FPS = 30.0   # the packs' frame rate; the suite's scenes render at it, so every frame is a pack frame

#: motion name → (pack, clip id, start s, seconds or None for the rest of the clip, what happens)
CLIPS: dict[str, tuple[str, str, float, float | None, str]] = {
    "cmu_walk": ("mb", "02_01", 0.0, None, "walk (CMU 02_01, held out of the motion network's training)"),
    "cmu_stride": ("mb", "08_07", 0.0, None, "walk with an exaggerated stride (CMU 08_07, held out)"),
    "cmu_run": ("mb", "02_03", 0.0, None, "run / jog (CMU 02_03, held out)"),
    "cmu_punch": ("mb", "02_05", 2.0, 4.0, "punches and strikes (CMU 02_05, held out)"),
    "cmu_scoop": ("mb", "02_06", 2.0, 4.0, "bend over, scoop up, rise (CMU 02_06, held out)"),
}


def _euler_zxy_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations → (..., 3) degrees (x, y, z) with R = Rz(z) Rx(x) Ry(y) (bench.motions.AXIS_ORDER)."""
    from scipy.spatial.transform import Rotation

    zxy = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler("ZXY", degrees=True)   # intrinsic: Rz Rx Ry
    return zxy[:, [1, 2, 0]].reshape(R.shape[:-2] + (3,))


def reference_offsets(model) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Anny's bone names, ``O`` (J,3,3) = Rest_pᵀ Rest_j and ``M`` (J,3,3) = W_pᵀ W_j of the reference pose, for the
    average body (identity at the root)."""
    import torch

    names = list(model.bone_labels)
    parents = np.asarray(model.bone_parents, dtype=np.int64)
    with torch.no_grad():
        out = model(pose_parameters=torch.eye(4).repeat(1, len(names), 1, 1), pose_parameterization="local-bone")
    rest = out["rest_bone_poses"][0].double().numpy()[:, :3, :3]
    ref = out["bone_poses"][0].double().numpy()[:, :3, :3]
    O, M = np.tile(np.eye(3), (len(names), 1, 1)), np.tile(np.eye(3), (len(names), 1, 1))
    for j, p in enumerate(parents):
        if p >= 0:
            O[j], M[j] = rest[p].T @ rest[j], ref[p].T @ ref[j]
    return names, O, M


@functools.lru_cache(maxsize=None)
def _prepared(pack: str):
    from inference_server.anny_skeleton import load_skeleton
    from inference_server.motion_data import load_pack, prepare_pack

    return prepare_pack(load_pack(pack), load_skeleton())


def take_rotations(name: str) -> tuple[list[str], np.ndarray]:
    """The clip's retargeted rotations in the Take's convention: (body bone names (B,), local_aa (T, B, 3))."""
    pack, clip_id, start_s, seconds, _ = CLIPS[name]
    prep = _prepared(pack)
    if clip_id not in prep.clip_ids:
        raise KeyError(f"{clip_id} is not in the {pack} pack")
    local_aa, _ = prep.clip(prep.clip_ids.index(clip_id))
    a = int(round(start_s * FPS))
    b = len(local_aa) if seconds is None else min(len(local_aa), a + int(round(seconds * FPS)))
    return list(prep.bone_names), np.asarray(local_aa[a:b], dtype=np.float64)


def build(name: str, model):
    """The bench `Motion` that replays clip ``name`` on Anny (channels per pack frame; nearest frame in time)."""
    from bench.motions import Motion
    from rigs.rotations import aa_to_matrix

    body, local_aa = take_rotations(name)
    bones, O, M = reference_offsets(model)
    L = np.tile(np.eye(3), (len(local_aa), len(bones), 1, 1))                # (T, J, 3, 3): the rest of the body
    L[:, [bones.index(b) for b in body]] = aa_to_matrix(local_aa)            # at rest, as in the training data
    D = np.swapaxes(M, -1, -2)[None] @ O[None] @ L                           # D_j = M_jᵀ O_j L_j (root: L_0)
    euler = _euler_zxy_deg(D)                                                 # (T, J, 3) x, y, z degrees
    n = len(euler)

    def channels(t: float) -> dict[str, dict[str, float]]:
        f = min(n - 1, max(0, int(round(t * FPS))))
        return {bone: {"X": float(e[0]), "Y": float(e[1]), "Z": float(e[2])} for bone, e in zip(bones, euler[f])}

    return Motion(name=name, kind="body", duration_s=(n - 1) / FPS, description=CLIPS[name][4],
                  channels_fn=channels)


def register(names, model) -> None:
    """Add the named CMU motions to ``bench.motions.MOTIONS`` (those already there are kept)."""
    from bench.motions import MOTIONS

    for name in names:
        if name in CLIPS and name not in MOTIONS:
            MOTIONS[name] = build(name, model)
