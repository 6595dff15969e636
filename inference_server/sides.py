"""Left/right consistency of one person over a clip: undo the frames where the pose network mirrored the body.

numpy only. The pose network sees one crop at a time; on some frames (arms in front of the body, flat light) it
labels the body mirrored — the subject's left arm gets the right arm's labels and both hands swap with it, while
every landmark stays where it is in the picture. MediaPipe's video mode hides part of this by cropping each frame
from the previous landmarks; a per-frame (batched) detector does not. Over the whole clip the mirrored frames show as
jumps: the "left wrist" leaps to where the right one just was and back.

Model: a two-state hidden Markov chain per frame, ``s_t = 0`` (labels as given) or ``1`` (labels swapped by
`POSE_MIRROR`), solved exactly by Viterbi. With ``P_t^s`` the frame's pose under state s::

    cost = Σ_t U_t(s_t) + β Σ_t D(P_{t'}^{s_{t'}}, P_t^{s_t}) / (1 + γ (t − t' − 1))      (t' = previous seen frame)

    D(P, Q)   = Σ_k w_k min(‖p_k − q_k‖ / σ, 1) / Σ_k w_k    over the left/right landmarks seen in both,
                w_k = min(visibility), σ = SIGMA × the person's scale (√ area of the landmark box)
    U_t(1)    = λ v̄_t + μ Σ_hands c_h [label_h = own side] + ε   (v̄_t: mean visibility of shoulders, elbows,
                                                                  wrists; ε = TIE keeps labels when nothing tells)
    U_t(0)    =          μ Σ_hands c_h [label_h ≠ own side]

The unary says: a frame the network is sure of (high visibility) resists being swapped, and a hand's own side
(the hand network's handedness label, or the hand's chirality: `chirality_votes`; ``c_h`` its strength) votes for
the labelling it agrees with. The pairwise term says the body does not teleport its arms between frames. A run of mirrored frames is undone when its two boundary jumps cost
more than swapping it; a long run of frames the network is sure of stays as it is.
"""
from __future__ import annotations

import numpy as np

from . import scratch

# MediaPipe pose landmarks: pairs of (left, right) the subject's own.
POSE_PAIRS = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
              (23, 24), (25, 26), (27, 28), (29, 30), (31, 32))
POSE_MIRROR = np.arange(33)
for _l, _r in POSE_PAIRS:
    POSE_MIRROR[_l], POSE_MIRROR[_r] = _r, _l
LIMBS = np.array(sorted({i for pair in POSE_PAIRS[5:] for i in pair}))   # shoulders .. feet
ARMS = np.array([11, 12, 13, 14, 15, 16])

SIGMA = 0.25    # σ as a fraction of the person's scale
BETA = 2.0      # weight of the continuity term
GAMMA = 0.2     # a gap of g unseen frames divides the continuity cost by 1 + γ g
LAMBDA = 1.0    # weight of the network's confidence against a swap
MU = 0.5        # weight of a hand label's vote
TIE = 1e-3      # added to U(1): with no evidence either way, labels stay as given


def _scale(p: np.ndarray) -> float:
    seen = p[np.isfinite(p[:, 0]), :2]
    if len(seen) < 2:
        return 1.0
    w, h = seen.max(0) - seen.min(0)
    return float(max(np.sqrt(max(w * h, 1.0)), 0.5 * max(w, h), 1.0))


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """D(P, Q) above over LIMBS; 0 when no landmark is shared."""
    pa, pb = a[LIMBS], b[LIMBS]
    w = np.minimum(np.nan_to_num(pa[:, 2]), np.nan_to_num(pb[:, 2]))
    ok = np.isfinite(pa[:, 0] + pb[:, 0]) & (w > 0)
    if not ok.any():
        return 0.0
    sigma = SIGMA * max(_scale(a), _scale(b))
    d = np.minimum(np.linalg.norm(pa[ok, :2] - pb[ok, :2], axis=1) / sigma, 1.0)
    return float((w[ok] * d).sum() / w[ok].sum())


def mirrored_frames(pose_2d: np.ndarray, hand_votes: np.ndarray | None = None, lam: float = LAMBDA,
                    mu: float = MU) -> np.ndarray:
    """Which frames to swap left/right: ``(T,)`` bool.

    pose_2d:    (T, 33, 3) x, y px, visibility; NaN rows where the person is not seen.
    hand_votes: (T, 2) optional: for the hand held on [left, right] wrist, +c when the hand network's own label
                agrees with that side, −c when it says the other side, 0 when there is no hand or no label.
    lam, mu:    λ and μ of the cost; the Holistic path, whose votes come from the hands' chirality
                (`chirality_votes`), trusts them more than the network's visibility (`CHIRALITY_LAMBDA`).
    """
    n = len(pose_2d)
    seen = np.isfinite(pose_2d[:, 0, 0]) | np.isfinite(pose_2d[:, 11, 0])
    frames = np.flatnonzero(seen)
    out = np.zeros(n, dtype=bool)
    if len(frames) == 0:
        return out
    votes = np.zeros((n, 2)) if hand_votes is None else np.nan_to_num(np.asarray(hand_votes, dtype=float))
    unary = np.zeros((len(frames), 2))
    for i, t in enumerate(frames):
        if i % scratch.WINDOW == 0:
            scratch.trim()   # a long clip's landmarks are read from disk window by window (scratch.py)
        vbar = float(np.nanmean(np.nan_to_num(pose_2d[t, ARMS, 2])))
        agree = float(np.clip(votes[t], 0, None).sum())
        disagree = float(np.clip(-votes[t], 0, None).sum())
        unary[i] = (mu * disagree, lam * vbar + mu * agree + TIE)

    def state(t: int, s: int) -> np.ndarray:   # frame t's pose, mirrored when s (per frame: no mirrored clip copy)
        return pose_2d[t, POSE_MIRROR] if s else pose_2d[t]

    out[frames] = _viterbi(frames, unary, lambda t0, a, t1, b: _distance(state(t0, a), state(t1, b)))
    return out


#: Chirality votes (`chirality_votes`) and the chain's weights when they are the evidence. Measured on the standard
#: suite (`./reel2rig bench fit standard`): the thumb-side chirality names the subject's own hand right in 91% of
#: the hands the detectors found (95-100% in upper-body and close-up shots, 40-90% for small hands seen side-on);
#: the body's labels are swapped where λ/μ ≤ 0.25 lets a run of such votes outweigh the network's visibility.
CHIRALITY_LAMBDA = 0.2
CHIRALITY_MU = 1.0
CHIRALITY_MIN_SINE = (0.1, 0.3)    # |sin| of the thumb against the palm plane: no vote below, a full vote above
CHIRALITY_MIN_SPREAD = (1.5, 2.0)  # wrists apart, in shoulder widths: no vote below, a full vote above


def chirality_sine(hands: np.ndarray) -> np.ndarray:
    """The sine of the thumb (mean of its MCP, IP and tip, from the wrist) against the palm plane, n = (index
    knuckle − wrist) × (pinky knuckle − wrist), for hands ``(..., 21, ≥3)`` (px, relative depth): > 0 for a right
    hand, < 0 for a left one in an unmirrored image (see `chirality_votes`); NaN where a point is missing."""
    h = np.asarray(hands, dtype=float)[..., :3]
    wrist = h[..., 0, :]
    normal = np.cross(h[..., 5, :] - wrist, h[..., 17, :] - wrist)
    thumb = h[..., 2:5, :].mean(axis=-2) - wrist
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("...k,...k", normal, thumb) / (np.linalg.norm(normal, axis=-1) *
                                                        np.linalg.norm(thumb, axis=-1))


def chirality_votes(pose_2d: np.ndarray, hands_2d: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """`mirrored_frames`' hand votes from the hands' own shape: ``(T, 2)``.

    A hand's chirality is which side of its palm plane the thumb lies on. With n = (index knuckle − wrist) ×
    (pinky knuckle − wrist) in the image's (x right, y down, z away) axes, z being the hand network's relative
    depth, the thumb (mean of its MCP, IP and tip, from the wrist) lies along +n for a right hand and −n for a left
    one, whichever way the palm faces; a mirrored (selfie) image flips it. The vote is the sine of that angle,
    scaled by `CHIRALITY_MIN_SINE` (a thumb in the palm plane says nothing), and weighted down when the wrists are
    less than `CHIRALITY_MIN_SPREAD` shoulder widths apart: hands held close or crossed may sit on each other's
    wrist, and then their chirality speaks of the hand assignment, not of the body's labels.

    pose_2d:  (T, 33, 3) px + visibility; hands_2d: (T, 2, 21, ≥3) [left, right] px + relative depth.
    """
    sine = chirality_sine(hands_2d)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo, hi = CHIRALITY_MIN_SINE
        strength = np.clip((np.abs(sine) - lo) / (hi - lo), 0.0, 1.0)
        chiral_side = (sine > 0).astype(int) ^ int(mirrored)           # 0: a left hand, 1: a right hand
        votes = np.where(chiral_side == np.arange(2), strength, -strength)
        p = np.asarray(pose_2d, dtype=float)
        spread = np.linalg.norm(p[:, 15, :2] - p[:, 16, :2], axis=-1) / \
            np.maximum(np.linalg.norm(p[:, 11, :2] - p[:, 12, :2], axis=-1), 1.0)
        lo, hi = CHIRALITY_MIN_SPREAD
        apart = np.clip((spread - lo) / (hi - lo), 0.0, 1.0)
    return np.nan_to_num(votes * np.nan_to_num(apart)[:, None])


def _viterbi(frames: np.ndarray, unary: np.ndarray, distance) -> np.ndarray:
    """Two-state Viterbi over the seen ``frames``: minimise Σ unary[i, s_i] + β Σ distance(t', s', t, s) / damp."""
    cost = unary[0].copy()
    back = np.zeros((len(frames), 2), dtype=np.int8)
    for i in range(1, len(frames)):
        if i % scratch.WINDOW == 0:
            scratch.trim()
        t0, t1 = frames[i - 1], frames[i]
        damp = 1.0 + GAMMA * (t1 - t0 - 1)
        new = np.empty(2)
        for s in (0, 1):
            trans = [cost[a] + BETA * distance(t0, a, t1, s) / damp for a in (0, 1)]
            back[i, s] = int(np.argmin(trans))
            new[s] = min(trans) + unary[i, s]
        cost = new
    states = np.zeros(len(frames), dtype=bool)
    s = int(np.argmin(cost))
    for i in range(len(frames) - 1, -1, -1):
        states[i] = bool(s)
        s = int(back[i, s])
    return states


HAND_POINTS = np.array([0, 5, 9, 13, 17])   # wrist and the four knuckles: the hand's most stable points


def swapped_hands(hands_2d: np.ndarray, hand_votes: np.ndarray) -> np.ndarray:
    """Frames whose two hands should trade sides: ``(T,)`` bool. The same chain as `mirrored_frames`, on the hands
    alone: the arms of a pose can cross wrongly while its legs are right (hands held close in front of the body),
    so the hands get their own decision.

    hands_2d:   (T, 2, 21, ≥2) [left, right] px, NaN where a hand is missing.
    hand_votes: (T, 2) as in `mirrored_frames`.

    Distance between frames: over the hands present in both (under each state), the mean over `HAND_POINTS` of
    ``min(‖Δ‖ / σ_h, 1)`` with σ_h = SIGMA × the hand's size (wrist → middle knuckle × 2), and 1 for a lone hand
    that changes sides between the two frames; unary: the label votes
    alone (μ), since the wrist assignment already placed each hand on the nearer body wrist.
    """
    n = len(hands_2d)
    present = np.isfinite(hands_2d[:, :, 0, 0])                      # (T, 2)
    frames = np.flatnonzero(present.any(axis=1))
    out = np.zeros(n, dtype=bool)
    if len(frames) == 0:
        return out
    votes = np.nan_to_num(np.asarray(hand_votes, dtype=float))
    unary = np.stack([MU * np.clip(-votes[frames], 0, None).sum(1),
                      MU * np.clip(votes[frames], 0, None).sum(1) + TIE], axis=1)
    pts = hands_2d[:, :, HAND_POINTS, :2]                              # (T, 2, 5, 2)

    def distance(t0: int, a: int, t1: int, b: int) -> float:
        total, count = 0.0, 0
        for side in (0, 1):
            p, q = pts[t0, side ^ a], pts[t1, side ^ b]
            p_ok, q_ok = np.isfinite(p).all(), np.isfinite(q).all()
            if p_ok and q_ok:
                size = max(2 * np.linalg.norm(p[2] - p[0]), 2 * np.linalg.norm(q[2] - q[0]), 4.0)
                total += float(np.minimum(np.linalg.norm(p - q, axis=1) / (SIGMA * size), 1.0).mean())
                count += 1
            elif p_ok and not np.isfinite(pts[t0, (1 - side) ^ a]).all() and np.isfinite(pts[t1, (1 - side) ^ b]).all():
                total += 1.0     # a lone hand changed sides between the two frames: that is a swap, at full cost
                count += 1
        return total / count if count else 0.0

    out[frames] = _viterbi(frames, unary, distance)
    return out


def swap_hands(lm) -> None:
    """Trade the two hands of one frame's landmarks (`detect.FrameLandmarks`) in place."""
    for name in ("hands_2d", "hands_world", "hand_score", "hand_source"):
        setattr(lm, name, getattr(lm, name)[::-1].copy())


def unmirror(lm) -> None:
    """Swap the left/right labels of one frame's landmarks (`detect.FrameLandmarks`) in place: pose landmarks by
    `POSE_MIRROR`, hands [left, right] → [right, left]. Positions stay where they are in the picture."""
    lm.pose_2d = lm.pose_2d[POSE_MIRROR].copy()
    lm.pose_world = lm.pose_world[POSE_MIRROR].copy()
    swap_hands(lm)
