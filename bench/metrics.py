"""Accuracy metrics of the ground-truth benchmark, the same for every method. numpy only; no bpy, no GPU.

Conventions
- 3D arrays are (T, N, 3) metres in one common frame (camera coordinates: ``to_camera`` brings a capture and a ground
  truth whose world frames differ into it); 2D arrays are (T, N, 2) pixels.
- A missing prediction is NaN: a whole frame, or single joints (a point with any NaN coordinate is missing). Every
  metric ignores the frames/joints that are missing in pred or in true, and returns ``float('nan')`` when nothing is
  left to measure.
- Results are in SI units (metres, metres/frame^k, pixels, fractions) unless the name ends in ``_percent`` or the
  docstring says percent; the report converts to mm. Temporal metrics are per frame (multiply by fps^k for per second).
- Multi-person scenes (``track_metrics``, ``hand_track_metrics``) put a person / track axis first: (P, T, ...) for the
  true people (the truth's ``people_*`` fields), (N, T, ...) for the predicted tracks.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

Align = Literal["none", "root", "procrustes"]


def _present(*arrays: np.ndarray) -> np.ndarray:
    """(T, N) bool: points whose coordinates (last axis) are all finite in every array."""
    mask = np.isfinite(arrays[0]).all(-1)
    for a in arrays[1:]:
        mask &= np.isfinite(a).all(-1)
    return mask


def _mean(values: np.ndarray) -> float:
    """Mean of the finite entries; nan (without a warning) when there are none."""
    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def to_camera(points_world: np.ndarray, R_world2cam: np.ndarray, t_world2cam: np.ndarray) -> np.ndarray:
    """(T,N,3) world → camera coordinates with per-frame (T,3,3), (T,3): x_cam = R x_world + t."""
    return np.einsum("tij,tnj->tni", R_world2cam, points_world) + t_world2cam[:, None]


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 3) camera coordinates (m) → (..., 2) pixels with intrinsics K (3×3): u = (K x)[:2] / (K x)[2]."""
    uvw = points_cam @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


# --------------------------------------------------------------------------------------------------------- 3D joints

def procrustes_align(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """pred (T,N,3) m mapped per frame by the best similarity onto true (T,N,3) m → (T,N,3) m.

    Umeyama (1991), fitted on the joints present in both (at least 3, else the whole frame is NaN): with them centred,
    X = pred - μx, Y = true - μy, and the SVD X^T Y = U S V^T, the rotation is R = (U D V^T)^T with
    D = diag(1, 1, sign det(U V^T)) (no reflections), the scale s = tr(S D) / ‖X‖²_F, and
    aligned = s (pred - μx) R^T + μy. Joints missing in pred stay NaN; joints missing only in true are left out of the
    fit but still mapped.
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    w = _present(pred, true).astype(float)  # (T, N) fit weights
    count = w.sum(1)  # (T,)
    ok = count >= 3
    n = np.maximum(count, 1)[:, None]
    P, Q = np.nan_to_num(pred) * w[..., None], np.nan_to_num(true) * w[..., None]
    mu_p, mu_q = P.sum(1) / n, Q.sum(1) / n  # (T, 3)
    X = (np.nan_to_num(pred) - mu_p[:, None]) * w[..., None]  # centred, zero where not fitted
    Y = (np.nan_to_num(true) - mu_q[:, None]) * w[..., None]
    U, S, Vt = np.linalg.svd(np.einsum("tni,tnj->tij", X, Y))  # (T,3,3) cross-covariance X^T Y
    d = np.ones((len(pred), 3))
    d[:, 2] = np.sign(np.linalg.det(U @ Vt))  # reflection guard
    d[d == 0] = 1.0
    UDVt = U * d[:, None, :] @ Vt  # = U D V^T = R^T
    scale = (S * d).sum(1) / np.maximum((X ** 2).sum((1, 2)), 1e-12)  # (T,)
    aligned = scale[:, None, None] * np.einsum("tni,tij->tnj", pred - mu_p[:, None], UDVt) + mu_q[:, None]
    aligned[~ok] = np.nan
    return aligned


def joint_errors(pred: np.ndarray, true: np.ndarray, align: Align = "none",
                 root: int | Sequence[int] | None = None) -> np.ndarray:
    """Per-joint Euclidean error ‖pred - true‖ → (T,N) metres, NaN where pred or true is missing.

    align: "none" compares as given; "root" subtracts from pred and from true their own root point per frame, the mean
    of the joints listed in `root` (e.g. both hips → pelvis; the frame is NaN when a root joint is missing);
    "procrustes" first maps pred onto true with ``procrustes_align``.
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)  # NaN propagates into the errors it touches
    if align == "root":
        if root is None:
            raise ValueError('joint_errors(align="root") needs root=<joint index or list of indices>')
        idx = [root] if isinstance(root, (int, np.integer)) else list(root)
        pred = pred - pred[:, idx].mean(1, keepdims=True)
        true = true - true[:, idx].mean(1, keepdims=True)
    elif align == "procrustes":
        pred = procrustes_align(pred, true)
    elif align != "none":
        raise ValueError(f'align must be "none", "root" or "procrustes", not {align!r}')
    return np.linalg.norm(pred - true, axis=-1)


def mpjpe(pred: np.ndarray, true: np.ndarray, align: int | Sequence[int] | None = None) -> float:
    """Mean per-joint position error (m) over all present (frame, joint) pairs of (T,N,3) arrays in metres.

    With `align` (a joint index, or a list whose mean is the root), both are first translated so that the root is at 0.
    """
    if align is None:
        return _mean(joint_errors(pred, true, "none"))
    return _mean(joint_errors(pred, true, "root", root=align))


def pa_mpjpe(pred: np.ndarray, true: np.ndarray) -> float:
    """Procrustes-aligned MPJPE (m): mean over present (frame, joint) pairs after ``procrustes_align`` per frame."""
    return _mean(joint_errors(pred, true, "procrustes"))


def pck_3d(pred: np.ndarray, true: np.ndarray, threshold_m: float, align: Align = "procrustes",
           root: int | Sequence[int] | None = None) -> float:
    """Fraction (0..1) of present joints of (T,N,3) m arrays whose error (``joint_errors``) is < threshold_m metres.

    This is the "F@5mm / F@15mm" figure on joints: with a known one-to-one correspondence between predicted and true
    joints, precision (predicted joints within the threshold of their true joint) and recall (true joints within the
    threshold of their prediction) are both this fraction, so F = 2PR/(P+R) equals it. Missing predictions are ignored
    here, not counted as misses; report ``detection_rate`` beside it.
    """
    err = joint_errors(pred, true, align, root)
    present = np.isfinite(err)
    return float((err[present] < threshold_m).mean()) if present.any() else float("nan")


# ---------------------------------------------------------------------------------------------------------------- 2D

def error_2d(pred_px: np.ndarray, true_px: np.ndarray) -> float:
    """Mean 2D point error (px) over present points of (..., 2) pixel arrays."""
    return _mean(np.linalg.norm(np.asarray(pred_px, float) - np.asarray(true_px, float), axis=-1))


def error_2d_box_percent(pred_px: np.ndarray, true_px: np.ndarray, box_px: np.ndarray | None = None) -> float:
    """Mean 2D error relative to the subject's size, in percent, for (T,N,2) pixel arrays.

    Per frame: (mean over present points of ‖pred - true‖) / (diagonal of the axis-aligned bounding box of the
    finite points of ``box_px`` (T,M,2) — by default the true points themselves — in that frame) × 100; then the
    mean over the frames where both are defined (a box of zero diagonal leaves its frame out).
    """
    pred_px, true_px = np.asarray(pred_px, float), np.asarray(true_px, float)
    box_px = true_px if box_px is None else np.asarray(box_px, float)
    err = np.linalg.norm(pred_px - true_px, axis=-1)  # (T, N), NaN where missing
    per_frame = np.full(len(err), np.nan)
    for t in range(len(err)):
        e = err[t][np.isfinite(err[t])]
        box = box_px[t][np.isfinite(box_px[t]).all(-1)]
        if e.size and len(box):
            diag = float(np.linalg.norm(box.max(0) - box.min(0)))
            if diag > 0:
                per_frame[t] = 100.0 * e.mean() / diag
    return _mean(per_frame)


# ---------------------------------------------------------------------------------------------------------- temporal

def acceleration_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean ‖Δ²pred - Δ²true‖ (metres/frame²) over (T,N,3) m arrays, with Δ²x_t = x_{t+1} - 2x_t + x_{t-1}.

    A (t, joint) counts only when frames t-1, t, t+1 are present in both. Multiply by fps² for m/s².
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    d2 = lambda x: x[2:] - 2 * x[1:-1] + x[:-2]  # noqa: E731  second central difference, (T-2, ...)
    if len(pred) < 3:
        return float("nan")
    return _mean(np.linalg.norm(d2(pred) - d2(true), axis=-1))


def jitter(pred: np.ndarray) -> float:
    """Mean ‖Δ³pred‖ (metres/frame³) of (T,N,3) m, Δ³x_t = x_{t+2} - 3x_{t+1} + 3x_t - x_{t-1} (four present frames).

    A property of the prediction alone: 0 for any motion of constant acceleration (quadratic in t); x_t = c t³ gives
    6c. Multiply by fps³ for m/s³.
    """
    pred = np.asarray(pred, float)
    if len(pred) < 4:
        return float("nan")
    d3 = pred[3:] - 3 * pred[2:-1] + 3 * pred[1:-2] - pred[:-3]  # third difference, (T-3, ...)
    return _mean(np.linalg.norm(d3, axis=-1))


def peak_speed_percent(pred: np.ndarray, true: np.ndarray) -> float:
    """The prediction's fastest frame-to-frame move as a percentage of the truth's: 100 × max ‖Δpred‖ / max ‖Δtrue‖
    over (t, point) pairs present in both (pred, true: (T,N,3) m). Below 100: fast motion smeared; above: overshoot.
    nan when nothing moves in the truth."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    dp = np.linalg.norm(np.diff(pred, axis=0), axis=-1)
    dt = np.linalg.norm(np.diff(true, axis=0), axis=-1)
    both = np.isfinite(dp) & np.isfinite(dt)
    if not both.any() or dt[both].max() <= 0:
        return float("nan")
    return 100.0 * float(dp[both].max()) / float(dt[both].max())


def foot_sliding(pred_feet: np.ndarray, contact: np.ndarray) -> float:
    """Mean displacement (metres/frame) of feet that should stand still.

    pred_feet (T,F,3) m, contact (T,F) bool (ground-truth contacts). Mean over the (t, f) with contact[t,f] and
    contact[t+1,f] and both positions present of ‖pred[t+1,f] - pred[t,f]‖; nan when there is no such pair.
    """
    pred_feet, contact = np.asarray(pred_feet, float), np.asarray(contact, bool)
    pairs = contact[1:] & contact[:-1]  # (T-1, F)
    step = np.linalg.norm(pred_feet[1:] - pred_feet[:-1], axis=-1)  # NaN where either frame is missing
    return _mean(step[pairs])


def root_trajectory_error(pred_root: np.ndarray, true_root: np.ndarray, min_path_m: float = 0.5) -> float:
    """Root trajectory drift in PERCENT of the ground-truth path length. pred_root, true_root: (T,3) metres.

    mean_t ‖(p_t - p_0) - (g_t - g_0)‖ / Σ_t ‖g_{t+1} - g_t‖ × 100, the mean over frames present in both, with p_0 / g_0
    the first frame present in both, the path length over consecutive present GT frames. nan when the GT path is
    shorter than min_path_m metres: for in-place motions (standing, sitting) the ratio is meaningless.
    """
    p, g = np.asarray(pred_root, float), np.asarray(true_root, float)
    both = _present(p, g)
    if not both.any():
        return float("nan")
    steps = np.linalg.norm(g[1:] - g[:-1], axis=-1)
    path_m = float(steps[np.isfinite(steps)].sum())
    if path_m < min_path_m:
        return float("nan")
    t0 = int(np.argmax(both))
    drift = np.linalg.norm((p[both] - p[t0]) - (g[both] - g[t0]), axis=-1)
    return 100.0 * float(drift.mean()) / path_m


# --------------------------------------------------------------------------------------------- world: camera, feet

def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices → (...) their rotation angle in degrees, 0..180.

    θ = atan2(‖v‖, (tr R - 1) / 2) with v = (R32 - R23, R13 - R31, R21 - R12) / 2 = sin θ · axis: the same angle as
    arccos((tr R - 1) / 2), without arccos's loss of precision near 0° and 180°.
    """
    R = np.asarray(R, float)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1) / 2.0
    return np.degrees(np.arctan2(np.linalg.norm(v, axis=-1), cos))


def camera_rotation_error_deg(pred_R_world2cam: np.ndarray, true_R_world2cam: np.ndarray) -> float:
    """Mean angle (degrees) between the predicted and the true camera rotation since the first frame.

    pred_R_world2cam, true_R_world2cam: (T,3,3) world-to-camera rotations, each in its own world. Per frame the
    camera's rotation relative to frame 0 is ``R_t @ R_0^T`` (camera-0 axes → camera-t axes), which does not depend on
    how the world is turned (R_t W^T (R_0 W^T)^T = R_t R_0^T), so a method's absolute world orientation does not
    matter. The error of frame t is the angle of ``(P_t P_0^T)^T (G_t G_0^T)``; the mean is over the frames present
    in both (a matrix with any NaN is missing), frame 0 being the first such frame (whose error is 0 by
    construction). A method that assumes a static camera (P_t constant) scores the mean angle the true camera
    turned away from its first pose. nan when no frame is present in both.
    """
    P, G = np.asarray(pred_R_world2cam, float), np.asarray(true_R_world2cam, float)
    both = np.isfinite(P).all((-2, -1)) & np.isfinite(G).all((-2, -1))  # (T,)
    if not both.any():
        return float("nan")
    t0 = int(np.argmax(both))
    rel_p = P[both] @ P[t0].T  # (n, 3, 3) P_t P_0^T
    rel_g = G[both] @ G[t0].T
    return float(rotation_angle_deg(np.swapaxes(rel_p, -1, -2) @ rel_g).mean())


def contact_f1(pred_contact: np.ndarray, true_contact: np.ndarray) -> dict:
    """Precision, recall and F1 (0..1) of predicted foot contacts against the true ones, over every (frame, foot).

    pred_contact (T,F): bool, or float where NaN means "no answer" (that (t, f) is not scored) and other values count
    as contact when > 0.5; true_contact (T,F) bool. With TP = predicted and true, FP = predicted only, FN = true only
    (over the scored entries): precision = TP / (TP + FP) (nan when nothing is predicted in contact), recall =
    TP / (TP + FN) (nan when nothing is truly in contact), f1 = 2 TP / (2 TP + FP + FN) (nan when neither has a
    contact: nothing to score). Returns dict(precision, recall, f1, scored=int entries scored).
    """
    pred = np.asarray(pred_contact)
    true = np.asarray(true_contact, bool)
    if pred.shape != true.shape:
        raise ValueError(f"contact_f1: pred {pred.shape} and true {true.shape} differ in shape")
    if pred.dtype.kind == "f":
        scored = np.isfinite(pred)
        pred = np.nan_to_num(pred) > 0.5
    else:
        scored = np.ones(pred.shape, bool)
        pred = pred.astype(bool)
    p, t = pred[scored], true[scored]
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return dict(precision=ratio(tp, tp + fp), recall=ratio(tp, tp + fn), f1=ratio(2 * tp, 2 * tp + fp + fn),
                scored=int(scored.sum()))


# -------------------------------------------------------------------------------------------------- detection, hands

def handedness_swaps(pred_wrists_px: np.ndarray, true_wrists_px: np.ndarray, margin_px: float = 0.0) -> dict:
    """Left/right hand swaps from wrist positions. Arrays (T,2,2) pixels, index 1 = [left, right] (the subject's own);
    or whole hands, (T,2,K,2), where a hand's distance to a true hand is the mean over its K points (a hand is
    present when all K are) — what tells crossed hands apart, whose wrists may lie closer together than a
    detector's wrist error.

    A frame is compared when both true wrists and at least one predicted wrist are present.
    - Both predicted: swapped when the crossed assignment (pred L↔true R, pred R↔true L) is shorter in total distance
      than the straight one by more than margin_px.
    - One predicted: swapped when it is closer to the other side's true wrist than to its own by more than margin_px.
    margin_px defaults to 0 (the plain rule); raise it (e.g. ~10 px) to not count hands held together, where the
    assignment is a coin toss, as swaps.
    Returns dict(swap_frames=int, frames_compared=int, swap_events=int); an event is a not-swapped → swapped transition
    along the compared frames (frames not compared neither end nor start a run; a swapped first frame counts as one).
    """
    pred, true = np.asarray(pred_wrists_px, float), np.asarray(true_wrists_px, float)
    if pred.ndim == 4:                                                      # whole hands: (T, 2, K, 2)
        have_pred, have_true = _present(pred).all(-1), _present(true).all(-1)
        dist = lambda a, b: np.linalg.norm(a - b, axis=-1).mean(-1)  # noqa: E731
    else:
        have_pred, have_true = _present(pred), _present(true)  # (T, 2)
        dist = lambda a, b: np.linalg.norm(a - b, axis=-1)  # noqa: E731
    straight = dist(pred, true)  # (T, 2): pred L↔true L, pred R↔true R
    crossed = dist(pred, true[:, ::-1])  # (T, 2): pred L↔true R, pred R↔true L
    swapped: list[bool] = []
    for t in range(len(pred)):
        if not have_true[t].all() or not have_pred[t].any():
            continue
        k = have_pred[t]
        swapped.append(bool(crossed[t][k].sum() + margin_px < straight[t][k].sum()))
    flags = np.array(swapped, bool)
    events = int(np.count_nonzero(flags[1:] & ~flags[:-1]) + (flags[0] if len(flags) else 0))
    return dict(swap_frames=int(flags.sum()), frames_compared=int(len(flags)), swap_events=events)


def wrong_hands(pred_hands_px: np.ndarray, true_hands_px: np.ndarray, max_apart: float = 1.0,
                length_px: np.ndarray | None = None) -> int:
    """Hands reported where that hand is not: side-frames whose predicted hand (T,2,K,2) px lies, on average over
    its K points, more than ``max_apart`` hand lengths from the true hand of its side — the other hand read twice, a
    hand on the wrong arm, a hand on nothing. A swap counts here too; a hand hidden behind the other and reported
    where it is hidden does not. ``length_px`` (T,2): each hand's length (wrist → middle knuckle) in pixels as if
    it faced the camera (from the 3D truth: a hand pointing at the camera is a few pixels long in the picture);
    by default its length in the picture (points 0 and 9)."""
    pred, true = np.asarray(pred_hands_px, float), np.asarray(true_hands_px, float)
    have = _present(pred).all(-1) & _present(true).all(-1)                  # (T, 2)
    apart = np.linalg.norm(pred - true, axis=-1).mean(-1)
    length = np.linalg.norm(true[:, :, 9] - true[:, :, 0], axis=-1) if length_px is None else np.asarray(length_px)
    return int((have & (apart > max_apart * length)).sum())


def hand_length_px(hand_points_cam: np.ndarray, focal_px: float) -> np.ndarray:
    """(T,2) each hand's wrist → middle-knuckle length (points 0 and 9 of (T,2,21,3) camera-space metres) in pixels
    at its wrist's depth: its size in the picture had it faced the camera."""
    cam = np.asarray(hand_points_cam, float)
    return focal_px * np.linalg.norm(cam[:, :, 9] - cam[:, :, 0], axis=-1) / np.maximum(cam[:, :, 0, 2], 1e-6)


def detection_rate(detected: np.ndarray, eligible: np.ndarray | None = None) -> float:
    """Fraction (0..1) of the eligible frames (T,) bool (all when None) that are detected (T,) bool.

    nan when no frame is eligible.
    """
    detected = np.asarray(detected, bool)
    eligible = np.ones_like(detected) if eligible is None else np.asarray(eligible, bool)
    return float(detected[eligible].mean()) if eligible.any() else float("nan")


# ------------------------------------------------------------------------------------------- multi-person tracking

def _box_diagonal(points: np.ndarray) -> np.ndarray:
    """(..., K, 2) pixels → (...) diagonal of the axis-aligned box of the finite points; nan where fewer than 2."""
    points = np.asarray(points, float)
    ok = np.isfinite(points).all(-1)
    lo = np.where(ok[..., None], points, np.inf).min(-2)
    hi = np.where(ok[..., None], points, -np.inf).max(-2)
    diag = np.linalg.norm(hi - lo, axis=-1)
    return np.where(ok.sum(-1) >= 2, diag, np.nan)


def _median_distance(a: np.ndarray, b: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last-but-one axis of ‖a - b‖ where `use`; → (median (nan where none), count)."""
    d = np.where(use, np.linalg.norm(np.nan_to_num(a) - np.nan_to_num(b), axis=-1), np.nan)
    count = use.sum(-1)
    med = np.full(count.shape, np.nan)
    rows = count > 0
    med[rows] = np.nanmedian(d[rows], axis=-1)
    return med, count


def _greedy_assign(cost: np.ndarray, threshold: float) -> np.ndarray:
    """cost (P, N) → (P,) index of the column assigned to each row, -1 for none: pairs are taken in increasing cost
    (ties: lower row, then lower column) while below `threshold`, each row and column at most once."""
    match = np.full(cost.shape[0], -1, dtype=np.int64)
    used = np.zeros(cost.shape[1], bool)
    order = np.argsort(np.where(np.isfinite(cost), cost, np.inf), axis=None, kind="stable")
    for flat in order:
        p, n = divmod(int(flat), cost.shape[1])
        if not cost[p, n] < threshold:
            break
        if match[p] < 0 and not used[n]:
            match[p], used[n] = n, True
    return match


def track_metrics(truth_2d: np.ndarray, truth_visible: np.ndarray, pred_2d: np.ndarray, min_visible: int = 8,
                  max_distance: float = 0.2, min_common: int = 3) -> dict:
    """How well predicted person tracks follow the true people, in 2D.

    truth_2d (P,T,33,2) px and truth_visible (P,T,33) bool: the true people (the truth's ``people_body_markers_2d``,
    ``people_body_visible``); pred_2d (N,T,33,2 or 3) px: N predicted tracks (track id = index), NaN where a track is
    absent or a marker missing (a third channel, a score, is ignored). A true marker counts where it is visible and
    finite; a predicted one where its x, y are finite; a track is present at t when any of its markers is.

    Per frame t, the distance of true person p to track n is the median of ‖pred - true‖ over the markers counting in
    both (at least `min_common`, else no distance), relative to p's size s_pt = the diagonal of the 2D box of all of p's
    finite true markers (hidden ones included): r = median / s_pt. Tracks are assigned to people greedily in increasing
    r (each at most once per frame) while r < `max_distance` (0.2): match[p, t] = n, or -1.

    Per true person: frames_visible = frames with at least `min_visible` markers counting; frames_covered = those of
    them with a match; coverage = frames_covered / frames_visible (nan when never visible); id_switches = the number of
    consecutive pairs of matched frames (in time order, any visibility) whose matched track differs; tracks = the
    distinct matched track ids.
    Over the clip: mean_coverage = mean of the persons' coverage; id_switches = their sum; pred_track_frames = present
    (track, frame) pairs; false_track_frames = present pairs matched to nobody, except hidden_track_frames: those that
    lie on a person left unmatched in that frame when measured over all of its finite true markers (hidden ones
    included; same rule, r < max_distance) — a track carried through an occlusion is not a false track.
    Returns dict(per_person=[dict(frames_visible, frames_covered, coverage, id_switches, tracks)], mean_coverage,
    id_switches, pred_track_frames, false_track_frames, hidden_track_frames, person_match=(P,T) int array).
    """
    true = np.asarray(truth_2d, float)
    P, T = true.shape[:2]
    pred = np.asarray(pred_2d, float).reshape(-1, T, 33, np.shape(pred_2d)[-1])[..., :2]
    N = len(pred)
    true_ok = np.asarray(truth_visible, bool) & np.isfinite(true).all(-1)  # (P, T, 33)
    true_all = np.isfinite(true).all(-1)
    pred_ok = np.isfinite(pred).all(-1)  # (N, T, 33)
    present = pred_ok.any(-1)  # (N, T)
    size = _box_diagonal(true)  # (P, T)

    def ratios(mask_true: np.ndarray) -> np.ndarray:  # (P, N, T) median distance / size, inf where not comparable
        r = np.full((P, N, T), np.inf)
        for p in range(P):
            for n in range(N):
                med, count = _median_distance(pred[n], true[p], mask_true[p] & pred_ok[n])
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = med / size[p]
                r[p, n] = np.where((count >= min_common) & np.isfinite(rel), rel, np.inf)
        return r

    r_visible, r_all = ratios(true_ok), ratios(true_all)
    match = np.full((P, T), -1, dtype=np.int64)
    hidden = np.zeros((N, T), bool)
    for t in range(T):
        match[:, t] = _greedy_assign(r_visible[:, :, t], max_distance)
        left_p = match[:, t] < 0
        left_n = present[:, t] & ~np.isin(np.arange(N), match[:, t])
        if left_p.any() and left_n.any():
            cost = np.where(left_p[:, None] & left_n[None, :], r_all[:, :, t], np.inf)
            hidden[_greedy_assign(cost.T, max_distance) >= 0, t] = True
    visible = true_ok.sum(-1) >= min_visible  # (P, T)
    per_person = []
    for p in range(P):
        ids = match[p][match[p] >= 0]
        frames_visible = int(visible[p].sum())
        covered = int((visible[p] & (match[p] >= 0)).sum())
        per_person.append(dict(frames_visible=frames_visible, frames_covered=covered,
                               coverage=covered / frames_visible if frames_visible else float("nan"),
                               id_switches=int(np.count_nonzero(ids[1:] != ids[:-1])),
                               tracks=sorted({int(i) for i in ids})))
    matched_n = np.zeros((N, T), bool)
    for p in range(P):
        t_idx = np.nonzero(match[p] >= 0)[0]
        matched_n[match[p, t_idx], t_idx] = True
    unmatched = present & ~matched_n
    return dict(per_person=per_person, mean_coverage=_mean([q["coverage"] for q in per_person]),
                id_switches=int(sum(q["id_switches"] for q in per_person)),
                pred_track_frames=int(present.sum()), false_track_frames=int((unmatched & ~hidden).sum()),
                hidden_track_frames=int((unmatched & hidden).sum()), person_match=match)


def hand_track_metrics(truth_hands_2d: np.ndarray, truth_hand_visible: np.ndarray, pred_hands: np.ndarray,
                       person_match: np.ndarray, min_visible: int = 11, max_wrist: float = 0.5,
                       margin_px: float = 0.0) -> dict:
    """Hands found on the right person and the right side, in 2D.

    truth_hands_2d (P,T,2,21,2) px, truth_hand_visible (P,T,2,21) bool (``people_hand_points_2d``,
    ``people_hand_visible``; side 0 = left, 1 = right, the person's own); pred_hands (N,T,2,21,2 or 3) px: the hands of
    the N predicted tracks, NaN where missing (a third channel is ignored); person_match (P,T): the track matched to
    each true person per frame, -1 for none (``track_metrics(...)["person_match"]``).

    For true person p and side s, a frame is eligible when at least `min_visible` of the hand's 21 points are visible
    (and finite). With n = person_match[p, t] and the hand size L = max(2D length of the polyline wrist → middle finger
    (points 0, 9, 10, 11, 12), diagonal of the 2D box of the hand's finite points):
    - found: n ≥ 0 and track n's side-s wrist is finite and within max_wrist × L (0.5 L) of the true side-s wrist;
    - swapped: n ≥ 0, track n has a side-s hand, and its median point distance to p's true other-side hand is
      smaller by more than margin_px than to p's true side-s hand (medians over the points finite in both; all of
      the true hand's finite points count, visible or not).
    Returns dict(per_person=[{"L": dict(frames_visible, frames_found, coverage, swap_frames), "R": ...}],
    mean_coverage (mean over the (person, side) pairs with eligible frames), swap_frames (sum), frames_visible,
    frames_found (sums)).
    """
    true = np.asarray(truth_hands_2d, float)
    P, T = true.shape[:2]
    pred = np.asarray(pred_hands, float).reshape(-1, T, 2, 21, np.shape(pred_hands)[-1])[..., :2]
    match = np.asarray(person_match, np.int64).reshape(P, T)
    vis = np.asarray(truth_hand_visible, bool) & np.isfinite(true).all(-1)  # (P, T, 2, 21)
    chain = true[..., [0, 9, 10, 11, 12], :]
    length = np.linalg.norm(np.diff(chain, axis=-2), axis=-1).sum(-1)  # (P, T, 2), nan if a point is missing
    size = np.fmax(length, _box_diagonal(true))
    per_person = []
    for p in range(P):
        sides = {}
        for s, key in enumerate("LR"):
            eligible = vis[p, :, s].sum(-1) >= min_visible  # (T,)
            found = swapped = 0
            for t in np.nonzero(eligible)[0]:
                n = match[p, t]
                if n < 0 or n >= len(pred):
                    continue
                hand = pred[n, t, s]  # (21, 2)
                wrist_err = np.linalg.norm(hand[0] - true[p, t, s, 0])
                if np.isfinite(wrist_err) and wrist_err < max_wrist * size[p, t, s]:
                    found += 1
                ok = np.isfinite(hand).all(-1)
                if not ok.any():
                    continue
                d = [np.linalg.norm(hand - true[p, t, side], axis=-1) for side in (s, 1 - s)]
                same, other = (np.median(x[ok & np.isfinite(x)]) if (ok & np.isfinite(x)).any() else np.nan
                               for x in d)
                if np.isfinite(same) and np.isfinite(other) and other + margin_px < same:
                    swapped += 1
            n_el = int(eligible.sum())
            sides[key] = dict(frames_visible=n_el, frames_found=found,
                              coverage=found / n_el if n_el else float("nan"), swap_frames=swapped)
        per_person.append(sides)
    pairs = [q[k] for q in per_person for k in "LR"]
    return dict(per_person=per_person, mean_coverage=_mean([q["coverage"] for q in pairs]),
                swap_frames=int(sum(q["swap_frames"] for q in pairs)),
                frames_visible=int(sum(q["frames_visible"] for q in pairs)),
                frames_found=int(sum(q["frames_found"] for q in pairs)))
