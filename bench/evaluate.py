"""Score one method's prediction against a scene's ground truth, the same way for every method. numpy only.

A :class:`Prediction` is what a method says about each frame, NaN where it says nothing:
body landmarks in camera coordinates (metres) and pixels, hand landmarks likewise, and — for methods that place
the subject in a world — the root trajectory and foot points in that world, the camera's rotation per frame
(``camera_rotation_deg``: relative to the first frame, so the world's orientation does not matter) and foot contacts
(``foot_contact_f1`` against the truth's per-side labels). The three methods of the benchmark
build one each (``bench.methods``); :func:`evaluate` turns a prediction and the truth into a flat dict of numbers.

Joint sets (MediaPipe indices, the points every method can name):
``BODY_JOINTS``: shoulders, elbows, wrists, hips, knees, ankles (12); the body root is the mid-hip.
Hands: the 21 MediaPipe hand landmarks per hand (wrist, 4 per finger incl. the tip), wrist-rooted.

Which joints count: body joints inside the picture (ground truth), all hand landmarks.
Which frames count: each metric uses the frames where the method gave an answer (NaN elsewhere) — coverage is
reported separately as the detection rate, over the frames where the ground truth says the part is visible.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from bench import metrics as M

BODY_JOINTS = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
BODY_JOINT_NAMES = ["shoulder.L", "shoulder.R", "elbow.L", "elbow.R", "wrist.L", "wrist.R",
                    "hip.L", "hip.R", "knee.L", "knee.R", "ankle.L", "ankle.R"]
HIPS = [6, 7]  # positions of 23, 24 inside BODY_JOINTS
FOOT_POINTS = [27, 28, 29, 30, 31, 32]  # ankles, heels, toes (MediaPipe) — the points that slide
FOOT_SIDE = [0, 1, 0, 1, 0, 1]
HAND_JOINT_NAMES = ["wrist", "thumb1", "thumb2", "thumb3", "thumb_tip", "index1", "index2", "index3", "index_tip",
                    "middle1", "middle2", "middle3", "middle_tip", "ring1", "ring2", "ring3", "ring_tip",
                    "little1", "little2", "little3", "little_tip"]
BODY_VISIBLE_MIN, HAND_VISIBLE_MIN = 8, 15  # visible points (of 12 / 21) for a part to count as in view


@dataclasses.dataclass
class Prediction:
    method: str
    body_cam: np.ndarray            # (T, 33, 3) metres, camera axes (only root-relative use for hip-centred methods)
    body_2d: np.ndarray             # (T, 33, 2) px
    hands_cam: np.ndarray           # (T, 2, 21, 3) [left, right]; metres when hands_metric, else any unit
    hands_2d: np.ndarray            # (T, 2, 21, 2) px
    hands_metric: bool = True
    root_cam0: np.ndarray | None = None    # (T, 3) the root in the FIRST frame's camera coordinates (world path)
    feet_world: np.ndarray | None = None   # (T, 6, 3) FOOT_POINTS in the method's own world
    seconds: dict = dataclasses.field(default_factory=dict)  # stage → seconds (what the method costs)
    # World grounding (None where the method says nothing about it):
    R_world2cam: np.ndarray | None = None  # (T, 3, 3) the method's camera per frame in its own world (a static-camera
                                           # method gives the same matrix every frame); scored relative to frame 0
    foot_contact: np.ndarray | None = None  # (T, 2) [left, right] planted: bool, or float 0/1 with NaN = no answer
    root_world: np.ndarray | None = None   # (T, 3) the root (mid-hip) in the method's own world (Z up), for pictures


def _mm(x: float) -> float:
    return float(x) * 1000.0


def truth_root_cam0(truth: dict) -> np.ndarray:
    """The GT pelvis path in the first frame's camera coordinates (T, 3)."""
    hips = truth["body_markers_world"][:, [23, 24]].mean(1)
    return hips @ truth["R_world2cam"][0].T + truth["t_world2cam"][0]


def evaluate(truth: dict, pred: Prediction) -> dict:
    """All metrics of one method on one scene. Lengths in mm, 2D in px (and % of the body's box), rates 0..1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # joints never in view: their means are NaN, on purpose
        return _evaluate(truth, pred)


def _evaluate(truth: dict, pred: Prediction) -> dict:
    out: dict = {"method": pred.method}
    # Only joints inside the picture are scored (nobody can see legs below the frame of an upper-body shot).
    w, h = truth["image_size"]
    gt_body_2d = truth["body_markers_2d"][:, BODY_JOINTS]
    in_frame = ((gt_body_2d >= 0) & (gt_body_2d < [w, h])).all(-1)  # (T, 12)
    gt_body = np.where(in_frame[..., None], truth["body_markers_cam"][:, BODY_JOINTS], np.nan)  # (T, 12, 3)
    gt_body_2d = np.where(in_frame[..., None], gt_body_2d, np.nan)
    body = pred.body_cam[:, BODY_JOINTS]
    body_2d = pred.body_2d[:, BODY_JOINTS]
    body_seen = np.isfinite(body).all(-1).any(-1)                  # (T,)
    body_in_view = truth["body_visible"][:, BODY_JOINTS].sum(-1) >= BODY_VISIBLE_MIN
    out["body_detection_rate"] = M.detection_rate(body_seen, body_in_view)
    out["body_mpjpe_mm"] = _mm(M.mpjpe(body, gt_body, align=HIPS))
    out["body_pa_mpjpe_mm"] = _mm(M.pa_mpjpe(body, gt_body))
    out["body_2d_px"] = M.error_2d(body_2d, gt_body_2d)
    # The person's box: every true point of the person inside the picture (body landmarks, face and both hands),
    # the box a person-detector or an annotator would draw around what is seen.
    person = np.concatenate([truth["body_markers_2d"], truth["hand_points_2d"].reshape(len(gt_body_2d), -1, 2)], 1)
    person = np.where((((person >= 0) & (person < [w, h])).all(-1))[..., None], person, np.nan)
    out["body_2d_box_pct"] = M.error_2d_box_percent(body_2d, gt_body_2d, person)
    out["body_2d_joint_box_pct"] = M.error_2d_box_percent(body_2d, gt_body_2d)   # box of the scored joints alone
    rel = body - body[:, HIPS].mean(1, keepdims=True)
    gt_rel = gt_body - gt_body[:, HIPS].mean(1, keepdims=True)
    out["accel_error_mm_f2"] = _mm(M.acceleration_error(rel, gt_rel))
    out["jitter_mm_f3"] = _mm(M.jitter(rel))
    wrists = [BODY_JOINTS.index(15), BODY_JOINTS.index(16)]
    out["wrist_peak_speed_pct"] = M.peak_speed_percent(rel[:, wrists], gt_rel[:, wrists])   # fast motion kept?
    out["per_joint_body_mm"] = dict(zip(BODY_JOINT_NAMES, (1000 * np.nanmean(
        M.joint_errors(body, gt_body, "root", HIPS), axis=0)).round(2).tolist())) if body_seen.any() else {}
    with np.errstate(all="ignore"):
        out["body_pa_mpjpe_mm_per_frame"] = (1000 * np.nanmean(M.joint_errors(body, gt_body, "procrustes"),
                                                               axis=1)).round(2).tolist()

    contact = truth["foot_contact"][:, FOOT_SIDE]                  # (T, 6)
    if pred.feet_world is not None:
        out["foot_sliding_mm_f"] = _mm(M.foot_sliding(pred.feet_world, contact))
    else:
        out["foot_sliding_mm_f"] = float("nan")
    out["root_trajectory_pct"] = (M.root_trajectory_error(pred.root_cam0, truth_root_cam0(truth))
                                  if pred.root_cam0 is not None else float("nan"))
    # The camera's rotation since the first frame (panning, handheld shake), whatever the method's world orientation.
    out["camera_rotation_deg"] = (M.camera_rotation_error_deg(pred.R_world2cam, truth["R_world2cam"])
                                  if pred.R_world2cam is not None else float("nan"))
    if pred.foot_contact is not None:
        scores = M.contact_f1(pred.foot_contact, truth["foot_contact"])
    else:
        scores = dict(precision=float("nan"), recall=float("nan"), f1=float("nan"))
    out["foot_contact_f1"] = scores["f1"]
    out["foot_contact_precision"] = scores["precision"]
    out["foot_contact_recall"] = scores["recall"]

    gt_hands = truth["hand_points_cam"]                            # (T, 2, 21, 3)
    gt_hands_2d = truth["hand_points_2d"]
    for side, key in ((0, "L"), (1, "R")):
        h, g = pred.hands_cam[:, side], gt_hands[:, side]
        seen = np.isfinite(h).all(-1).all(-1)                      # (T,) a whole hand
        h = np.where(seen[:, None, None], h, np.nan)
        in_view = truth["hand_visible"][:, side].sum(-1) >= HAND_VISIBLE_MIN
        out[f"hand_{key}_detection_rate"] = M.detection_rate(seen, in_view)
        out[f"hand_{key}_pa_mpjpe_mm"] = _mm(M.pa_mpjpe(h, g))
        out[f"hand_{key}_mpjpe_wrist_mm"] = _mm(M.mpjpe(h, g, align=0)) if pred.hands_metric else float("nan")
        out[f"hand_{key}_f5"] = M.pck_3d(h, g, 0.005)
        out[f"hand_{key}_f15"] = M.pck_3d(h, g, 0.015)
        h2 = np.where(seen[:, None, None], pred.hands_2d[:, side], np.nan)
        out[f"hand_{key}_2d_px"] = M.error_2d(h2, gt_hands_2d[:, side])
        with np.errstate(all="ignore"):
            out[f"per_joint_hand_{key}_mm"] = dict(zip(HAND_JOINT_NAMES, (1000 * np.nanmean(
                M.joint_errors(h, g, "procrustes"), axis=0)).round(2).tolist())) if seen.any() else {}
    wrists = np.where(np.isfinite(pred.hands_2d[:, :, 0]).all(-1, keepdims=True), pred.hands_2d[:, :, 0], np.nan)
    out["handedness"] = M.handedness_swaps(wrists, gt_hands_2d[:, :, 0], margin_px=10.0)
    out["seconds"] = dict(pred.seconds)
    return out


def nan_to_none(value):
    """JSON has no NaN: nested floats that are NaN become None."""
    if isinstance(value, float):
        return None if not np.isfinite(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return value
