"""The benchmark's three methods as :class:`bench.evaluate.Prediction` s, all from the same detections.

``raw-mediapipe``   MediaPipe Holistic's own output, no model: metric world landmarks for the body (hip-centred,
                    camera axes), image landmarks with relative depth for the hands (not metric: scored
                    scale-free only). No world placement.
``direct-mapping``  each Anny bone swung onto the landmark direction, the way BlendArMocap-style add-ons map
                    landmarks onto a rig (our fit's initialisation, no optimisation). Assumes a static level
                    camera (scored as such: what ignoring camera motion costs); no foot contacts.
``reel2rig``        what ``capture`` writes with its defaults: the Take, read back from disk (the product's own
                    output), with its per-frame camera and, when the Take has them, its foot contacts. The body: the
                    fit started from the learned motion network's (``--motion prior``, the default).
``motion-fit``      the same capture with ``--motion fit``: the fit alone, from its closed-form start; scored with
                    ``./reel2rig bench --motion-rows``.
``motion-net``      the same capture with ``--motion network``: the learned motion network's body, world path,
                    cameras and contacts (inference_server/motion_stage.py), the hands fitted (same condition).

Imports torch only for ``direct-mapping`` (it runs the fit's initialisation). No bpy.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from bench.evaluate import FOOT_POINTS, Prediction

METHODS = ("raw-mediapipe", "direct-mapping", "reel2rig", "motion-fit", "motion-net", "reel2rig+height")
# motion-fit and motion-net only with --motion-rows; reel2rig+height only with --height-rows


def _markers(skel, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body (T,33,3) (NaN where the skeleton has no marker) and hand (T,2,21,3) points of posed bones W."""
    from inference_server.anny_skeleton import attached_points

    bones = np.maximum(skel.body_marker_bone, 0)
    body = attached_points(W, bones, skel.body_marker_local)
    body[:, skel.body_marker_bone < 0] = np.nan
    hands = np.stack([attached_points(W, skel.hand_marker_bone[s], skel.hand_marker_local[s]) for s in (0, 1)], 1)
    return body, hands


def _from_pose(method: str, skel, local_aa: np.ndarray, root: np.ndarray, K: np.ndarray, R: np.ndarray,
               t: np.ndarray, hand_ok: np.ndarray, body_ok: np.ndarray, seconds: dict,
               foot_contact: np.ndarray | None = None) -> Prediction:
    """A Prediction from skeleton rotations in a world with cameras R (T,3,3), t (T,3) (R is passed on: the camera
    the method assumes or estimates is scored too); foot_contact (T,2) [left, right] when the method gives one."""
    from bench.metrics import project, to_camera
    from rigs.fk import forward_kinematics

    W = forward_kinematics(skel.rest, skel.parents, local_aa, root)  # (T, J, 4, 4)
    body_w, hands_w = _markers(skel, W)
    body = to_camera(body_w, R, t)
    n = len(body)
    hands = to_camera(hands_w.reshape(n, 42, 3), R, t).reshape(n, 2, 21, 3)
    body[~body_ok] = np.nan
    hands[~hand_ok] = np.nan
    hips_w = body_w[:, [23, 24]].mean(1)
    hips_w[~body_ok] = np.nan
    root_cam0 = hips_w @ R[0].T + t[0]
    feet = body_w[:, FOOT_POINTS].copy()
    feet[~body_ok] = np.nan
    return Prediction(method, body, project(body, K), hands, project(hands, K), True, root_cam0, feet, seconds,
                      R_world2cam=np.asarray(R, np.float64), foot_contact=foot_contact, root_world=hips_w)


def contacts_per_side(foot_contact: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The Take's (T,4) contact probabilities [left heel, left toe, right heel, right toe] → (T,2) [left, right]:
    1.0 where max(heel, toe) > 0.5, 0.0 where not, NaN where the frame is not valid or both probabilities are NaN."""
    p = np.asarray(foot_contact, np.float64)
    with np.errstate(invalid="ignore"):
        side = np.stack([np.fmax(p[:, 0], p[:, 1]), np.fmax(p[:, 2], p[:, 3])], 1)  # (T, 2); fmax skips one NaN
        out = np.where(np.isfinite(side), (side > 0.5).astype(np.float64), np.nan)
    if valid is not None:
        out[~np.asarray(valid, bool)] = np.nan
    return out


def raw_mediapipe(det, detect_seconds: float) -> Prediction:
    body_cam = det.pose_world.copy()                       # (T, 33, 3) hip-centred metres, camera axes
    hands = det.hands_2d.copy()                            # (T, 2, 21, 3) px, px, relative depth (px scale)
    return Prediction("raw-mediapipe", body_cam, det.pose_2d[..., :2].copy(), hands, hands[..., :2].copy(),
                      hands_metric=False, seconds={"detect": detect_seconds})


def direct_mapping(det, skel, K: np.ndarray, device: str = "cpu") -> Prediction:
    from inference_server.fit import R_WORLD2CAM_LEVEL, FitSettings, fit_sequence, gate_hands

    settings = dataclasses.replace(FitSettings(), iterations=0, hand_iterations=0, smoothing=0.0, device=device)
    started = time.perf_counter()
    fit = fit_sequence(skel, det.pose_2d, det.pose_world, det.hands_2d, K, settings)
    seconds = time.perf_counter() - started
    n = len(det.frame_ids)
    R = np.broadcast_to(R_WORLD2CAM_LEVEL, (n, 3, 3))
    body_ok = np.isfinite(det.pose_2d[:, 0, 0])
    hand_ok = np.isfinite(gate_hands(det.pose_2d, det.hands_2d)[..., 0]).all(-1)  # (T, 2)
    return _from_pose("direct-mapping", skel, fit.local_rotations_aa, fit.root_position_world, K, R,
                      np.zeros((n, 3)), hand_ok, body_ok, {"fit": seconds})


def reel2rig(take_path: Path, skel, seconds: dict, method: str = "reel2rig") -> Prediction:
    """Our capture, read from the Take it wrote (its own skeleton must be the engine's Anny skeleton, of the Take's
    phenotype: an actor's height makes it another size); ``method`` names the row (``motion-net`` for a capture with
    the motion network)."""
    from inference_server.anny_skeleton import load_skeleton, shape_phenotype
    from inference_server.take import read_take

    a = read_take(take_path).arrays
    phenotype = shape_phenotype(a.get("shape"))
    if phenotype is not None:
        skel = load_skeleton(phenotype)
    if list(map(str, a["bone_names"])) != skel.names:
        raise ValueError(f"{take_path}: the Take's skeleton is not the engine's Anny skeleton")
    names = skel.names
    fitted = a["bone_fitted"]                                   # (T, J)
    hand_ok = np.stack([fitted[:, names.index("finger2-1.L")], fitted[:, names.index("finger2-1.R")]], 1)
    # A body is scored where the Take fitted one: a hands-only Take (a close-up with no body detected) carries its
    # hands on Anny at rest, whose body bones are marked unfitted — no body prediction, as for raw MediaPipe there.
    body_ok = a["valid"].astype(bool) & fitted[:, 0].astype(bool)
    contact = contacts_per_side(a["foot_contact"], body_ok) if "foot_contact" in a else None  # optional field
    return _from_pose(method, skel, a["local_rotations_aa"].astype(np.float64),
                      a["root_position_world"].astype(np.float64), a["K"], a["R_world2cam"].astype(np.float64),
                      a["t_world2cam"].astype(np.float64), hand_ok, body_ok, seconds, contact)
