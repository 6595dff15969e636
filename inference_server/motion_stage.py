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
                  hands_only: bool, model, scale: float = 1.0):
    """A `world.World` from the motion network for one person's detections ``det`` and the fit ``fit`` (whose
    rotations it takes over, changed in place: the network's body bones except the wrists, which stay fitted with
    the hands); ``model``: the loaded `motion_infer.MotionModel`. Foot lock (``options.foot_lock``) plants the
    network's contacts as the fit's world stage does. ``scale``: how much taller ``skel`` is than Anny's default
    body, whose world the network gives: the paths (the root's, the camera's) are that much longer."""
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
    if scale != 1.0:
        root[:] = root * scale
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
    t_w2c = scratch.copy_of(res.t_world2cam, np.float64)
    if scale != 1.0:
        t_w2c[:] = t_w2c * scale
    return World(local, root, scratch.copy_of(res.R_world2cam, np.float64), t_w2c, contact, info)


LEG_LANDMARKS = (23, 24, 25, 26, 27, 28)   # MediaPipe's hips, knees and ankles
MIN_LEGS_SEEN = 0.5                        # the prior needs the legs in the picture in at least this share of frames
VISIBILITY_MIN = 0.5


def legs_seen(pose_2d: np.ndarray, image_size: tuple[int, int]) -> float:
    """The share of the frames with a body in which its hips, knees and ankles are all in the picture and visible
    (0 without a body). ``pose_2d`` (T, 33, 3) px + visibility, NaN where unseen; read a window at a time."""
    w, h = image_size
    body = seen = 0
    for a, b in scratch.windows(len(pose_2d)):
        p = np.asarray(pose_2d[a:b], dtype=np.float64)
        legs = p[:, LEG_LANDMARKS]
        ok = (np.isfinite(legs[..., 0]) & (legs[..., 0] >= 0) & (legs[..., 0] < w) & (legs[..., 1] >= 0)
              & (legs[..., 1] < h) & (np.nan_to_num(legs[..., 2], nan=1.0) >= VISIBILITY_MIN))
        present = np.isfinite(p[:, :, 0]).any(axis=1)
        body += int(present.sum())
        seen += int((ok.all(axis=1) & present).sum())
    return seen / body if body else 0.0


def network_prior(skel, det, image_size: tuple[int, int], K: np.ndarray, model
                  ) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """The motion network's body as the fit's starting pose (``motion="prior"``): (local_aa (T,J,3), root (T,3)) in
    the fit's frame (level camera at the origin, fit.R_WORLD2CAM_LEVEL), NaN where it gives nothing (the fingers,
    the wrists, frames without a body), for `fit.fit_sequence`'s ``prior`` — or None when the legs are in the picture
    in under :data:`MIN_LEGS_SEEN` of the frames (an upper-body shot: the network, which learnt whole bodies, guesses
    the legs, and the fit started there is worse than from its own start: README › The learned motion network) —
    and a few words on which start the fit got, for the Take's sidecar. (The network's foot contacts are not used:
    given to the world stage they planted more feet, less foot sliding but a worse pose.)

    The root: the network's world rotation G (W_root = G Rest_root) seen from its camera is R_world2cam G; in the
    fit's frame W = R_Lᵀ R_world2cam G Rest_root, so L_root = Rest_rootᵀ W; its position is the network's root in
    the camera, R_Lᵀ p_cam."""
    from rigs.rotations import aa_to_matrix, matrix_to_aa

    from .fit import R_WORLD2CAM_LEVEL as R_L

    share = legs_seen(det.pose_2d, image_size)
    if share < MIN_LEGS_SEEN:
        return None, f"its own (the legs are in the picture in {100 * share:.0f} % of the frames)"
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
    return (local, root), "the motion network's body"
