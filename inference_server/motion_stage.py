"""The body's motion from the learned motion network (``motion="network"``, issue 11) instead of the optimisation's
world stage: the capture's fit still runs (the hands are fitted on the body's wrists and stay), then the network's
body-bone rotations, world trajectory, cameras and foot contacts replace the fit's body and ``world.ground``.

May import onnxruntime (through motion_infer); no bpy, no torch.
"""
from __future__ import annotations

import numpy as np

from . import scratch
from .protocol import JOB_FAILED, RpcError


def network_world(skel, fit, det, image_size: tuple[int, int], K: np.ndarray, options, valid: np.ndarray,
                  hands_only: bool, model):
    """A `world.World` from the motion network for one person's detections ``det`` and the fit ``fit`` (whose
    rotations it takes over, changed in place: the network's body bones except the wrists, which stay fitted with
    the hands); ``model``: the loaded `motion_infer.MotionModel`. Foot lock (``options.foot_lock``) plants the
    network's contacts as the fit's world stage does."""
    from .world import World, WorldSettings, lock_feet

    if hands_only:
        raise RpcError(JOB_FAILED, "the motion network needs a body, and this capture saw none (hands only)",
                       fix="capture with --motion fit (the default) for hands-only footage")
    if options.space != "world":
        raise RpcError(JOB_FAILED, "the motion network gives world-grounded motion only",
                       fix="use --space world with --motion network, or --motion fit for camera space")
    res = model.predict(det.pose_2d, image_size, K, det.camera_R, det.timestamps)
    local = fit.local_rotations_aa                                            # (T, J, 3), taken over
    body = [skel.index(b) for b in model.bone_names if not b.startswith("wrist")]
    for a, b in scratch.windows(len(local)):
        net = res.local_rotations_aa[a:b, body].astype(np.float64)
        local[a:b, body] = np.where(valid[a:b, None, None], net, local[a:b, body])
    root = scratch.copy_of(res.root_position_world, np.float64)               # (T, 3)
    contact = scratch.empty(res.foot_contact.shape, np.float32)               # (T, 4)
    for a, b in scratch.windows(len(contact)):
        contact[a:b] = np.where(valid[a:b, None], res.foot_contact[a:b], 0.0)
    moving = det.camera_R is not None and bool(np.any(np.abs(np.asarray(det.camera_R) - np.eye(3)) > 1e-9))
    info: dict = {"space": "world", "camera": "rotating" if moving else "still", "motion": "network",
                  "motion_model": str(model.path), "motion_frame_stride": res.frame_stride}
    if options.foot_lock:
        feet = np.stack([contact[:, :2].max(axis=1), contact[:, 2:].max(axis=1)], axis=1)
        local, info["pinned_frames"] = lock_feet(skel, local, root, feet, WorldSettings(), in_place=True)
    left = right = 0
    for a, b in scratch.windows(len(contact)):
        left += int((contact[a:b, :2].max(1) > 0.5).sum())
        right += int((contact[a:b, 2:].max(1) > 0.5).sum())
    info["contact_frames"] = {"left": left, "right": right}
    return World(local, root, scratch.copy_of(res.R_world2cam, np.float64),
                 scratch.copy_of(res.t_world2cam, np.float64), contact, info)


def network_prior(skel, det, image_size: tuple[int, int], K: np.ndarray, model) -> tuple[np.ndarray, np.ndarray]:
    """The motion network's body as the fit's starting pose (``motion="prior"``): (local_aa (T,J,3), root (T,3)) in
    the fit's frame (level camera at the origin, fit.R_WORLD2CAM_LEVEL), NaN where it gives nothing (the fingers,
    the wrists, frames without a body), for `fit.fit_sequence`'s ``prior``. (Its foot contacts are not used: given
    to the world stage they planted more feet, less foot sliding but a worse pose — README › The learned motion
    network.)

    The root: the network's world rotation G (W_root = G Rest_root) seen from its camera is R_world2cam G; in the
    fit's frame W = R_Lᵀ R_world2cam G Rest_root, so L_root = Rest_rootᵀ W; its position is the network's root in
    the camera, R_Lᵀ p_cam."""
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    from .fit import R_WORLD2CAM_LEVEL as R_L
    res = model.predict(det.pose_2d, image_size, K, det.camera_R, det.timestamps)
    n = len(res.confidence)
    local = scratch.empty((n, len(skel.names), 3))
    root = scratch.empty((n, 3))
    body = [skel.index(b) for b in model.bone_names[1:] if not b.startswith("wrist")]
    rest_root = skel.rest[0, :3, :3]
    for a, b in scratch.windows(n):
        seen = res.confidence[a:b] > 0
        lw = np.full((b - a, len(skel.names), 3), np.nan)
        lw[:, body] = res.local_rotations_aa[a:b, body]
        G = aa_to_matrix(res.root_orientation_world_aa[a:b].astype(np.float64))         # (w,3,3)
        W = R_L.T @ res.R_world2cam[a:b].astype(np.float64) @ G @ rest_root
        lw[:, 0] = matrix_to_aa(rest_root.T @ W)
        rw = res.root_position_camera[a:b].astype(np.float64) @ R_L                    # R_Lᵀ p_cam, per row
        lw[~seen] = np.nan
        rw[~seen] = np.nan
        local[a:b], root[a:b] = lw, rw
    return local, root
