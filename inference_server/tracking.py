"""Offline multi-object tracking of people and hands over a whole clip. numpy only: no bpy, no torch, no GPU.

``track(frames, kind=..., image_size=...)`` gives every detection of every frame a persistent track id (or −1 for
a detection judged spurious), so one person — or one hand — keeps one id through brief occlusions, detector dropouts
and crossings. The whole clip is known in advance, so the tracker runs in three passes:

1. an online pass (frame by frame, constant-velocity prediction, gated Hungarian assignment) that builds fragments;
2. an offline stitching pass that joins fragments across gaps longer than the online pass could bridge, when the
   motion on both sides agrees; short fragments are attached to a track whose gap or end they fit, or dropped;
3. a relabel pass: tracks shorter than ``min_length`` frames become −1, the rest are numbered 0..N−1 in order of
   first appearance (ties: detection order in that frame).

Notation
--------
A detection has keypoints ``x_k`` (pixels) with confidences ``c_k`` (keypoints with NaN coordinates or ``c_k <
MIN_KEYPOINT_CONF`` are unseen), a box ``B`` (given, or the bounds of the seen keypoints), centre ``m`` (the box
centre) and scale ``s = max(sqrt(w h), max(w, h) / 2, 4 px)`` — the second term keeps a person seen side-on, whose
keypoint box is thin, from getting a tiny scale.

Online pass
-----------
Each live track holds the keypoints of its last observation (unseen ones carried along by the track's motion and
forgotten after ``max_gap`` frames), the last box centre ``m``, scale ``s``, a velocity ``v`` (px/frame) and a
log-size rate ``r`` (1/frame). Prediction ``dt = t − t_last`` frames ahead (the track coasts when ``dt > 1``)::

    m̂ = m + v dt          ρ = exp(clip(r dt, ±ln 2))          ŝ = ρ s
    x̂_k = m̂ + ρ (x_k − m)                 B̂ = m̂ + ρ (B − m)          (corner-wise)

After a match, ``v`` is an exponential average (weight α on the newest sample) of ``Δ / dt``, where
``Δ`` is the median displacement of the keypoints seen both times (at least MIN_COMMON of them; the box-centre
displacement otherwise) — the median keeps a swinging arm from dragging the estimate. ``r`` is averaged the same
way from ``ln ρ_obs / dt`` (then clipped to ±0.1 per frame), where the size ratio ``ρ_obs`` is the ratio of the
RMS spreads of the shared keypoints (the box-scale ratio with fewer than MIN_COMMON): a box that shrinks because
the legs went out of view is not a person moving away.

Similarity of track j (predicted to frame t) and detection i, with ``s̄ = sqrt(ŝ s_i)``::

    σ² = s̄² (κ² + (ν dt)²)      ν = η once the track has a velocity, ν0 before (a track seen once may move
                                  fast: hands cross their own size in a few frames); per-kind κ, η, ν0
    OKS = Σ_k w_k exp(−‖x_ik − x̂_jk‖² / 2σ²) / Σ_k w_k,   w_k = sqrt(c_ik ĉ_jk), keypoints seen in both
          (fewer than MIN_COMMON shared keypoints: OKS = exp(−‖m_i − m̂_j‖² / 2 (2σ)²))
    sim = w_oks OKS + (1 − w_oks) IoU(B_i, B̂_j)

Cost, with the soft cues of a hand's side label and of the body it is attached to::

    C_ij = 1 − sim + λ_label (2 q_j − 1) [label_i ≠ L_j] + λ_parent (2 p_j − 1) [parent_i ≠ P_j]
           + μ (dt − 1) / max_gap

``L_j`` is the track's score-weighted majority label and ``q_j`` its share of the votes, so a track that has seen
both labels equally pays nothing and a detection's label can only tip a close call, never override motion; the
same for the parent body track ``P_j`` (hands only, when ``body_ids`` is given). The last term makes a freshly seen
track win a tie against one that has been coasting.

Gate: a pair is admissible only when ``C_ij < gate``, the size ratio (spread of shared keypoints, as above) is
within ``2^±1``, and — when OKS comes from keypoints — ``OKS ≥ min_oks``: overlapping boxes alone never link a
detection whose keypoints disagree. The assignment minimises ``Σ (C_ij − gate)`` over admissible pairs (Hungarian
on the tracks × detections matrix of ``min(C − gate, 0)``; a pair at 0 is no match): the min-cost matching in
which leaving a track or a detection unmatched costs ``gate``. scipy's solver is used when scipy is installed,
else a numpy one. Confirmed tracks (at least CONFIRM_HITS hits) are matched first; tentative tracks then compete
for the detections left (a matching cascade: a new spurious track never steals from an established one).
Unmatched detections start tentative tracks. A confirmed track lives while ``t − t_last − 1 ≤ max_gap`` and its
predicted box still touches the image; a tentative one may miss TENTATIVE_MISSES frames.

Stitching pass
--------------
For fragments A (ending at frame e) and B (starting at frame b > e), gap ``g = b − e ≤ max_stitch_gap``, the end
state of A and the start state of B come from a least-squares fit to the box centres of their last / first
STITCH_WINDOW observations — a parabola from QUADRATIC_MIN observations on, so that ``v`` is the velocity at the
very end even on a curved path, a line below that — giving the centre ``m`` and velocity ``v`` at the boundary;
scales from the median. Over the keypoints seen at both boundary observations (when there are MIN_COMMON of them)
``δ_A``, ``δ_B`` shift each box centre to the mean of those keypoints and ``ρ_AB`` is their spread ratio (else
``δ = 0``, ``ρ_AB = s_B / s_A``), so a person who comes back with the legs hidden (smaller box, higher box centre)
is compared part for part. The motion residual uses the mean of both velocities (trapezoidal integration, exact
under constant acceleration — it forgives a person slowing down behind an occluder and a hand on a curve)::

    tol = max(s_A, s_B) (τ0 + τv g)                       (the larger: a partly hidden person's box shrinks)
    d   = ‖(m_A + δ_A) + Δ − (m_B + δ_B)‖ / tol,     Δ = (v_A + v_B) g / 2
          (B with < 3 observations: Δ = v_A g + ½ a_A min(g, W)², with the fit's acceleration a_A and W =
          STITCH_WINDOW; A that short: Δ = v_B g − ½ a_B min(g, W)²; both: Δ = 0)
    C   = d + ½ |ln ρ_AB| / ln(STITCH_MAX_SCALE) + label and parent terms as above + ε g / max_stitch_gap

Gate: ``d ≤ 1``, ``|ln ρ_AB| ≤ ln STITCH_MAX_SCALE``, and the poses at the two boundary observations agree: over
the shared keypoints, each pose centred on their mean and B scaled by ``1 / ρ_AB``, ``u_k`` in pixels::

    OKS_pose = Σ_k w_k exp(−‖u_Ak − u_Bk‖² / 2 σ_u²) / Σ_k w_k ≥ min_pose_oks
    σ_u = s_A min(κ_u + κ_v g, κ_max)

(skipped when they share fewer than MIN_COMMON keypoints). Fragments of at least ``min_length`` frames are
joined by one Hungarian assignment of ends to starts (chains A→B→C form naturally: B is both an end and a start).
Then each short fragment joins the track whose observations around it (before, after, or both — then both costs
must pass the gate and their mean is used) explain it best; a short fragment no track accepts stays alone and is
dropped by the length rule. A track never takes two detections in one frame.

The weights and gates are ``TrackerParams`` fields, one set per kind in ``PARAMS``.

Limitations
-----------
* Appearance is not used (keypoints, boxes, labels and parents only): two people who stop, overlap for a long time
  and move off in swapped directions can swap ids.
* Duplicate detections of one person in one frame (no NMS upstream) make a second, parallel track.
* Constant-velocity prediction: a hand circling at ~26 px/frame while ~45 px across (its own size every two
  frames), with 10 % of its detections missing, keeps one id; much faster curved motion fragments online, and the
  stitching cannot bridge gaps of several frames on a tight curve, so a blip of a frame or two may come back −1.
* Cost: pure Python over tracks × detections per frame; a 3000-frame clip with three people and a false detection
  in every third frame takes a few seconds on one core.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np

KINDS = ("body", "hand")

MIN_KEYPOINT_CONF = 0.2   # keypoints below this confidence count as unseen
MIN_COMMON = 3            # shared keypoints needed for the OKS term (else the centre distance stands in)
MIN_SCALE_PX = 4.0
CONFIRM_HITS = 3          # hits before a track is confirmed (capped at min_length)
TENTATIVE_MISSES = 1      # frames a tentative track may miss
STITCH_WINDOW = 6        # observations used to fit a fragment's end / start motion
QUADRATIC_MIN = 5        # observations from which the end fit is quadratic (velocity at the very end)
STITCH_MAX_SCALE = 1.6    # largest scale ratio across a stitched gap


@dataclasses.dataclass(frozen=True)
class TrackerParams:
    """Cost weights and gates (see the module docstring for where each enters)."""
    kappa: float                 # keypoint tolerance as a fraction of the object's scale
    eta: float = 0.03            # velocity uncertainty of a track with a velocity (scales per frame)
    nu0: float = 0.3             # velocity uncertainty of a track seen once (no velocity yet; scales per frame)
    alpha: float = 0.5           # weight of the newest sample in the velocity's exponential average
    w_oks: float = 0.75          # weight of OKS against IoU in the similarity
    gate: float = 0.85           # largest admissible online cost
    min_oks: float = 0.3         # smallest admissible OKS (when it is computed from keypoints)
    label_penalty: float = 0.15  # λ_label
    parent_penalty: float = 0.3  # λ_parent
    coast_penalty: float = 0.05  # μ
    tau0: float = 0.3            # stitching tolerance at zero gap, fraction of scale
    tau_v: float = 0.03          # growth of the stitching tolerance per frame of gap, fraction of scale
    stitch_gate: float = 1.5     # largest admissible stitching cost
    min_pose_oks: float = 0.3    # smallest admissible pose similarity across a stitched gap
    pose_kappa: float = 0.2      # pose tolerance across a stitched gap (fraction of scale) ...
    pose_kappa_v: float = 0.005  # ... growing per frame of gap ...
    pose_kappa_max: float = 0.5  # ... up to this
    gap_penalty: float = 0.2     # ε


# Hands are small and fast for their size: wider keypoint tolerance, quicker velocity, looser stitching.
PARAMS = {"body": TrackerParams(kappa=0.10),
          "hand": TrackerParams(kappa=0.2, eta=0.1, nu0=1.0, alpha=0.7, tau0=0.5)}


@dataclasses.dataclass
class Detection:
    keypoints: np.ndarray           # (K, 3) x, y px, score in [0, 1]; NaN rows where unseen
    score: float                    # detection confidence
    box: np.ndarray | None = None   # (4,) x0, y0, x1, y1 px; derived from the keypoints when None
    label: str | None = None        # hands: 'left' / 'right', the SUBJECT's side
    parent: int | None = None       # hands: index of the body detection (same frame) whose wrist this hand is on


@dataclasses.dataclass(frozen=True)
class TrackInfo:
    first: int                 # first frame index with a detection
    last: int                  # last frame index with a detection
    n_frames: int              # frames with a detection
    mean_score: float          # mean detection score
    label: str | None          # score-weighted majority label (None when no detection had one)
    parent: int | None = None  # majority parent body track id (hands tracked with body_ids), else None


@dataclasses.dataclass
class TrackResult:
    ids: list[list[int]]           # per frame, parallel to the input detections; −1 = dropped as spurious
    tracks: dict[int, TrackInfo]   # ids 0..N−1 in order of first appearance


# ----------------------------------------------------------------------------------------------------------------
# Observations


@dataclasses.dataclass
class _Obs:
    frame: int
    index: int              # position in the frame's detection list
    xy: np.ndarray          # (K, 2) px, NaN where unseen
    conf: np.ndarray        # (K,) 0 where unseen
    box: np.ndarray         # (4,) x0, y0, x1, y1
    centre: np.ndarray      # (2,)
    scale: float
    score: float
    label: str | None
    parent: int | None      # parent BODY TRACK id, None when unknown


def _observation(det: Detection, frame: int, index: int, parent: int | None) -> _Obs | None:
    """Normalise one detection; None when it has neither a seen keypoint nor a usable box."""
    kp = np.asarray(det.keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f"frame {frame}, detection {index}: keypoints must be (K, 3) x, y, score; got {kp.shape}")
    xy = kp[:, :2].copy()                                        # (K, 2)
    conf = np.where(np.isnan(kp[:, 2]), 1.0, np.clip(kp[:, 2], 0.0, 1.0))
    seen = np.isfinite(xy).all(axis=1) & (conf >= MIN_KEYPOINT_CONF)
    xy[~seen] = np.nan
    conf = np.where(seen, conf, 0.0)
    box = None if det.box is None else np.asarray(det.box, dtype=np.float64).reshape(-1)
    if box is None or box.shape != (4,) or not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
        if not seen.any():
            return None
        box = np.concatenate([xy[seen].min(axis=0), xy[seen].max(axis=0)])
    w, h = box[2] - box[0], box[3] - box[1]
    scale = max(math.sqrt(w * h), 0.5 * max(w, h), MIN_SCALE_PX)
    score = float(det.score) if det.score is not None and np.isfinite(det.score) else 0.0
    return _Obs(frame, index, xy, conf, box, 0.5 * (box[:2] + box[2:]), scale, score, det.label, parent)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _spread(xy: np.ndarray) -> float:
    """RMS distance of points (N, 2) from their mean: a size measure that, taken over the keypoints seen in both of
    two detections, does not change when other keypoints come into view or go out of it."""
    n = len(xy)
    mean = xy.sum(axis=0) / n
    return math.sqrt(max(float((xy * xy).sum()) / n - float(mean @ mean), 0.0))


def _log_size_ratio(xy_a: np.ndarray, xy_b: np.ndarray, common: np.ndarray, scale_a: float, scale_b: float) -> float:
    """ln(size_b / size_a): from the spread of the shared keypoints when there are enough, else from the scales."""
    if common.sum() >= MIN_COMMON:
        ra, rb = _spread(xy_a[common]), _spread(xy_b[common])
        if ra > 0 and rb > 0:
            return math.log(rb / ra)
    return math.log(scale_b / scale_a)


def _vote_penalty(votes: dict, value) -> float:
    """(2 q − 1) when ``value`` disagrees with the majority of ``votes`` (share q), else 0."""
    if value is None or not votes:
        return 0.0
    total = sum(votes.values())
    best = max(votes, key=lambda k: (votes[k], str(k)))
    if value == best or total <= 0:
        return 0.0
    return 2.0 * votes[best] / total - 1.0


def _majority(votes: dict):
    return max(votes, key=lambda k: (votes[k], str(k))) if votes else None


def _add_vote(votes: dict, value, weight: float) -> None:
    if value is not None:
        votes[value] = votes.get(value, 0.0) + max(weight, 1e-3)


# ----------------------------------------------------------------------------------------------------------------
# Assignment


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular finite cost matrix: (rows, cols), min(n, m) pairs, rows ascending.

    Uses scipy when it is installed, else a numpy shortest-augmenting-path Hungarian (O(n² m), fine for the few
    tracks of a clip).
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not np.isfinite(cost).all():
        raise ValueError("cost must be finite")
    scipy_lsa = _scipy_solver()
    if scipy_lsa is None:
        return _hungarian(cost)
    rows, cols = scipy_lsa(cost)
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64)


@functools.lru_cache(maxsize=1)
def _scipy_solver():
    """scipy's solver when scipy is installed (looked up once: a failed import is slow to repeat), else None."""
    try:
        from scipy.optimize import linear_sum_assignment as scipy_lsa
    except ImportError:
        return None
    return scipy_lsa


def _hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shortest augmenting paths with potentials (Kuhn–Munkres, Jonker–Volgenant form); rows ≤ columns."""
    transposed = cost.shape[0] > cost.shape[1]
    c = cost.T if transposed else cost
    n, m = c.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)     # p[j]: row (1-based) matched to column j; column 0 is the virtual start
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            cols = np.nonzero(used)[0]
            u[p[cols]] += delta
            v[cols] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.nonzero(p[1:])[0]
    rows = p[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def _gated_assignment(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """Pairs (i, j) minimising Σ (C_ij − gate) over pairs with C_ij < gate; unmatched rows/columns cost nothing."""
    if cost.size == 0:
        return []
    benefit = np.where(np.isfinite(cost) & (cost < gate), cost - gate, 0.0)
    rows, cols = linear_sum_assignment(benefit)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if benefit[i, j] < 0.0]


# ----------------------------------------------------------------------------------------------------------------
# Online pass


class _Track:
    def __init__(self, obs: _Obs, max_gap: int, alpha: float):
        self.obs: list[_Obs] = [obs]
        self.max_gap = max_gap
        self.alpha = alpha
        self.mem_xy = obs.xy.copy()                                      # (K, 2) keypoints as of t_last
        self.mem_conf = obs.conf.copy()                                  # (K,)
        self.mem_frame = np.where(obs.conf > 0, obs.frame, -10**9)      # (K,) frame each keypoint was last seen
        self.centre = obs.centre.copy()
        self.scale = obs.scale
        self.box = obs.box.copy()
        self.vel = np.zeros(2)
        self.rate = 0.0
        self.n_motion = 0
        self.labels: dict = {}
        self.parents: dict = {}
        _add_vote(self.labels, obs.label, obs.score)
        _add_vote(self.parents, obs.parent, obs.score)

    @property
    def last(self) -> int:
        return self.obs[-1].frame

    def predict(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """(keypoints (K, 2), weights (K,), box (4,), centre (2,), scale) predicted at frame t."""
        dt = t - self.last
        centre = self.centre + self.vel * dt
        rho = math.exp(float(np.clip(self.rate * dt, -math.log(2.0), math.log(2.0))))
        xy = centre + rho * (self.mem_xy - self.centre)
        box = np.concatenate([centre + rho * (self.box[:2] - self.centre),
                              centre + rho * (self.box[2:] - self.centre)])
        return xy, self.mem_conf, box, centre, rho * self.scale

    def update(self, obs: _Obs) -> None:
        dt = obs.frame - self.last
        common = (obs.conf > 0) & (self.mem_conf > 0)
        if common.sum() >= MIN_COMMON:
            disp = np.median(obs.xy[common] - self.mem_xy[common], axis=0)
        else:
            disp = obs.centre - self.centre
        vel = disp / dt
        rate = _log_size_ratio(self.mem_xy, obs.xy, common, self.scale, obs.scale) / dt
        if self.n_motion == 0:
            self.vel, self.rate = vel, rate
        else:
            self.vel = self.alpha * vel + (1 - self.alpha) * self.vel
            self.rate = self.alpha * rate + (1 - self.alpha) * self.rate
        self.rate = float(np.clip(self.rate, -0.1, 0.1))
        self.n_motion += 1
        # Keypoints unseen now ride along with the observed displacement; forget those unseen for too long.
        seen = obs.conf > 0
        self.mem_xy[~seen] += disp
        self.mem_xy[seen] = obs.xy[seen]
        self.mem_conf[seen] = obs.conf[seen]
        self.mem_frame[seen] = obs.frame
        stale = obs.frame - self.mem_frame > self.max_gap
        self.mem_xy[stale] = np.nan
        self.mem_conf[stale] = 0.0
        self.centre, self.scale, self.box = obs.centre.copy(), obs.scale, obs.box.copy()
        self.obs.append(obs)
        _add_vote(self.labels, obs.label, obs.score)
        _add_vote(self.parents, obs.parent, obs.score)


def _online_costs(tr: _Track, dets: list[_Obs], t: int, p: TrackerParams, max_gap: int) -> list[float]:
    """C_tj for one track against each detection (inf where the size-ratio or OKS gate rejects the pair)."""
    dt = t - tr.last
    xy, wconf, box, centre, scale = tr.predict(t)
    coast = p.coast_penalty * (dt - 1) / max(max_gap, 1)
    nu = p.eta if tr.n_motion else p.nu0
    out = []
    for obs in dets:
        common = (obs.conf > 0) & (wconf > 0)
        if abs(_log_size_ratio(xy, obs.xy, common, scale, obs.scale)) >= math.log(2.0):
            out.append(math.inf)
            continue
        var = scale * obs.scale * (p.kappa ** 2 + (nu * dt) ** 2)             # σ², s̄² = ŝ s_i
        if common.sum() >= MIN_COMMON:
            w = np.sqrt(obs.conf[common] * wconf[common])
            d2 = ((obs.xy[common] - xy[common]) ** 2).sum(axis=1)
            oks = float((w * np.exp(-d2 / (2 * var))).sum() / w.sum())
            if oks < p.min_oks:
                out.append(math.inf)      # the boxes may overlap, but the keypoints say it is someone else
                continue
        else:
            oks = math.exp(-float(((obs.centre - centre) ** 2).sum()) / (2 * 4 * var))
        sim = p.w_oks * oks + (1 - p.w_oks) * _iou(obs.box, box)
        out.append(1.0 - sim + p.label_penalty * _vote_penalty(tr.labels, obs.label)
                   + p.parent_penalty * _vote_penalty(tr.parents, obs.parent) + coast)
    return out


def _box_outside(box: np.ndarray, image_size: tuple[int, int]) -> bool:
    w, h = image_size
    return bool(box[2] < 0 or box[3] < 0 or box[0] > w or box[1] > h)


def _online(obs_frames: list[list[_Obs]], p: TrackerParams, max_gap: int, confirm_hits: int,
            image_size: tuple[int, int]) -> list[_Track]:
    live: list[_Track] = []
    done: list[_Track] = []
    for t, dets in enumerate(obs_frames):
        still: list[_Track] = []
        for tr in live:
            misses = t - tr.last - 1
            allowed = max_gap if len(tr.obs) >= confirm_hits else TENTATIVE_MISSES
            if misses > allowed or (misses > 0 and _box_outside(tr.predict(t)[2], image_size)):
                done.append(tr)
            else:
                still.append(tr)
        live = still
        free = list(range(len(dets)))
        for stage in (True, False):          # confirmed tracks first, then tentative ones
            group = [tr for tr in live if (len(tr.obs) >= confirm_hits) == stage]
            if not group or not free:
                continue
            cost = np.array([_online_costs(tr, [dets[i] for i in free], t, p, max_gap) for tr in group])
            matched = []
            for gi, fi in _gated_assignment(cost, p.gate):
                group[gi].update(dets[free[fi]])
                matched.append(free[fi])
            free = [i for i in free if i not in matched]
        for i in free:
            live.append(_Track(dets[i], max_gap, p.alpha))
    return done + live


# ----------------------------------------------------------------------------------------------------------------
# Offline pass


@dataclasses.dataclass
class _Fragment:
    obs: list[_Obs]          # sorted by frame, one per frame

    @property
    def first(self) -> int:
        return self.obs[0].frame

    @property
    def last(self) -> int:
        return self.obs[-1].frame

    def votes(self) -> tuple[dict, dict]:
        """Score-weighted (label, parent) votes."""
        labels: dict = {}
        parents: dict = {}
        for o in self.obs:
            _add_vote(labels, o.label, o.score)
            _add_vote(parents, o.parent, o.score)
        return labels, parents


@dataclasses.dataclass(frozen=True)
class _EndState:
    frame: int
    centre: np.ndarray          # (2,) px, from the line fit
    vel: np.ndarray | None      # (2,) px/frame; None when fitted on fewer than 3 observations
    acc: np.ndarray             # (2,) px/frame², 0 unless the fit was quadratic
    scale: float
    xy: np.ndarray              # (K, 2) keypoints of the boundary observation, NaN where unseen
    conf: np.ndarray            # (K,)
    edge_centre: np.ndarray     # (2,) box centre of the boundary observation


def _end_state(obs: Sequence[_Obs], at_end: bool) -> _EndState:
    """State at the last (``at_end``) or first observation of ``obs``, from a line through STITCH_WINDOW centres."""
    window = obs[-STITCH_WINDOW:] if at_end else obs[:STITCH_WINDOW]
    ref = window[-1].frame if at_end else window[0].frame
    f = np.array([o.frame - ref for o in window], dtype=np.float64)      # (W,)
    c = np.array([o.centre for o in window])                              # (W, 2)
    scale = float(np.median([o.scale for o in window]))
    edge = window[-1] if at_end else window[0]
    if len(window) < 3:
        return _EndState(ref, edge.centre, None, np.zeros(2), scale, edge.xy, edge.conf, edge.centre)
    degree = 2 if len(window) >= QUADRATIC_MIN else 1
    A = np.stack([f ** k for k in range(degree + 1)], axis=1)              # (W, degree + 1)
    coef, *_ = np.linalg.lstsq(A, c, rcond=None)                            # rows: centre at ref, velocity, ...
    acc = 2.0 * coef[2] if degree == 2 else np.zeros(2)
    return _EndState(ref, coef[0], coef[1], acc, scale, edge.xy, edge.conf, edge.centre)


def _stitch_cost(a: _EndState, b: _EndState, p: TrackerParams, max_stitch_gap: int,
                 votes_a: tuple[dict, dict], votes_b: tuple[dict, dict]) -> float:
    """Cost of the fragment starting in state ``b`` continuing the one ending in ``a``; inf when gated out.

    Over the keypoints seen at both boundary observations (when there are MIN_COMMON of them) the size ratio is
    their spread ratio, the centres are shifted to their mean, and the poses are compared with position and size
    removed — so a person who comes back with the legs hidden (smaller box, higher box centre) still matches.
    """
    g = b.frame - a.frame
    if g < 1 or g > max_stitch_gap:
        return math.inf
    common = (a.conf > 0) & (b.conf > 0)
    log_ratio = abs(_log_size_ratio(a.xy, b.xy, common, a.scale, b.scale))
    if log_ratio > math.log(STITCH_MAX_SCALE):
        return math.inf
    shift_a = shift_b = np.zeros(2)
    pose = None
    if common.sum() >= MIN_COMMON:
        mean_a, mean_b = a.xy[common].mean(axis=0), b.xy[common].mean(axis=0)
        shift_a, shift_b = mean_a - a.edge_centre, mean_b - b.edge_centre
        ua, ub = a.xy[common] - mean_a, b.xy[common] - mean_b                # (C, 2)
        ub = ub * math.exp(-_log_size_ratio(a.xy, b.xy, common, a.scale, b.scale))   # B at A's size
        sigma = min(p.pose_kappa + p.pose_kappa_v * g, p.pose_kappa_max) * a.scale
        w = np.sqrt(a.conf[common] * b.conf[common])
        pose = float((w * np.exp(-((ua - ub) ** 2).sum(axis=1) / (2 * sigma ** 2))).sum() / w.sum())
    if pose is not None and pose < p.min_pose_oks:
        return math.inf
    # Predicted displacement across the gap: trapezoidal with both velocities (exact under constant acceleration);
    # one-sided with that side's acceleration, trusted over at most STITCH_WINDOW frames; 0 without either.
    ga = min(g, STITCH_WINDOW)
    if a.vel is not None and b.vel is not None:
        disp = 0.5 * (a.vel + b.vel) * g
    elif a.vel is not None:
        disp = a.vel * g + 0.5 * a.acc * ga ** 2
    elif b.vel is not None:
        disp = b.vel * g - 0.5 * b.acc * ga ** 2
    else:
        disp = np.zeros(2)
    tol = max(a.scale, b.scale) * (p.tau0 + p.tau_v * g)                 # the larger: a part-hidden box shrinks
    d = float(np.linalg.norm(a.centre + shift_a + disp - b.centre - shift_b)) / tol
    if d > 1.0:
        return math.inf
    # Label / parent cues: B's majority against A's votes (weighted by how decided A is).
    return (d + 0.5 * log_ratio / math.log(STITCH_MAX_SCALE)
            + p.label_penalty * _vote_penalty(votes_a[0], _majority(votes_b[0]))
            + p.parent_penalty * _vote_penalty(votes_a[1], _majority(votes_b[1]))
            + p.gap_penalty * g / max(max_stitch_gap, 1))


def _stitch_long(frags: list[_Fragment], p: TrackerParams, max_stitch_gap: int) -> list[_Fragment]:
    """Join fragments end-to-start by one gated Hungarian assignment; follow the chains."""
    n = len(frags)
    if n < 2:
        return frags
    votes = [f.votes() for f in frags]
    ends = [_end_state(f.obs, at_end=True) for f in frags]
    starts = [_end_state(f.obs, at_end=False) for f in frags]
    cost = np.full((n, n), math.inf)
    for i in range(n):
        for j in range(n):
            if 1 <= starts[j].frame - ends[i].frame <= max_stitch_gap:
                cost[i, j] = _stitch_cost(ends[i], starts[j], p, max_stitch_gap, votes[i], votes[j])
    nxt = dict(_gated_assignment(cost, p.stitch_gate))
    heads = set(range(n)) - set(nxt.values())
    out = []
    for h in sorted(heads):
        obs: list[_Obs] = []
        k: int | None = h
        while k is not None:
            obs.extend(frags[k].obs)
            k = nxt.get(k)
        out.append(_Fragment(obs))
    return out


def _attach_short(tracks: list[_Fragment], shorts: list[_Fragment], p: TrackerParams,
                  max_stitch_gap: int) -> list[_Fragment]:
    """Give each short fragment to the track whose neighbouring observations explain it best, else keep it alone.

    The short fragment must fit in a gap of the track (or before its start / after its end) without sharing a frame
    with it; the cost is the stitching cost from the track's observations before it into it, from it into the
    track's observations after it, or the mean of both when both are within max_stitch_gap (each must pass).
    """
    frames = [np.array([o.frame for o in tr.obs]) for tr in tracks]      # sorted frame indices per track
    votes = [tr.votes() for tr in tracks]
    alone = []
    for f in sorted(shorts, key=lambda f: (f.first, f.obs[0].index)):
        f_votes = f.votes()
        f_start, f_end = _end_state(f.obs, at_end=False), _end_state(f.obs, at_end=True)
        best, best_cost = -1, math.inf
        for k, tr in enumerate(tracks):
            before = int(np.searchsorted(frames[k], f.first, side="left"))   # tr.obs[:before] precede f
            after = int(np.searchsorted(frames[k], f.last, side="right"))    # tr.obs[after:] follow f
            if after != before:
                continue            # the track is observed inside f's span
            near_before = before > 0 and f.first - frames[k][before - 1] <= max_stitch_gap
            near_after = after < len(frames[k]) and frames[k][after] - f.last <= max_stitch_gap
            if not (near_before or near_after):
                continue
            costs = []             # from the sides within reach (a side beyond max_stitch_gap is not evidence)
            if near_before:
                costs.append(_stitch_cost(_end_state(tr.obs[:before], at_end=True), f_start, p, max_stitch_gap,
                                          votes[k], f_votes))
            if near_after:
                costs.append(_stitch_cost(f_end, _end_state(tr.obs[after:], at_end=False), p, max_stitch_gap,
                                          f_votes, votes[k]))
            c = float(np.mean(costs)) if all(np.isfinite(costs)) else math.inf
            if c < p.stitch_gate and c < best_cost:
                best, best_cost = k, c
        if best < 0:
            alone.append(f)
            continue
        tr = tracks[best]
        tr.obs = sorted(tr.obs + f.obs, key=lambda o: o.frame)
        frames[best] = np.array([o.frame for o in tr.obs])
        votes[best] = tr.votes()
    return tracks + alone


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def track(frames: Sequence[Sequence[Detection]], *, max_gap: int = 15, min_length: int = 5, kind: str = "body",
          image_size: tuple[int, int], max_stitch_gap: int | None = None,
          body_ids: Sequence[Sequence[int]] | None = None) -> TrackResult:
    """Track every detection of a clip; see the module docstring for the costs and gates.

    frames:         per frame, the detections of that frame (bodies, or hands — one kind per call).
    max_gap:        frames a confirmed track may go undetected and still be re-linked online.
    min_length:     tracks with fewer detected frames are dropped (their detections get −1).
    kind:           "body" or "hand" (picks the keypoint tolerance of PARAMS).
    image_size:     (width, height) in pixels; a coasting track whose predicted box leaves the image ends.
    max_stitch_gap: largest gap in frames the offline stitching bridges (default 4 × max_gap).
    body_ids:       hands only: the body pass's ``TrackResult.ids``, so a hand's ``parent`` (a body detection
                    index) becomes a body track id — a soft cue against hands swapping between people.
    """
    if kind not in PARAMS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if len(image_size) != 2 or not all(int(x) > 0 for x in image_size):
        raise ValueError(f"image_size must be (width, height) in pixels, got {image_size!r}")
    if max_gap < 0 or min_length < 1:
        raise ValueError(f"need max_gap >= 0 and min_length >= 1, got {max_gap}, {min_length}")
    if body_ids is not None and len(body_ids) != len(frames):
        raise ValueError(f"body_ids has {len(body_ids)} frames, the detections {len(frames)}")
    params = PARAMS[kind]
    max_stitch_gap = 4 * max(max_gap, 1) if max_stitch_gap is None else max_stitch_gap
    size = (int(image_size[0]), int(image_size[1]))

    obs_frames: list[list[_Obs]] = []
    n_keypoints: int | None = None
    for t, dets in enumerate(frames):
        row = []
        for i, det in enumerate(dets):
            parent = None
            if body_ids is not None and det.parent is not None and 0 <= det.parent < len(body_ids[t]):
                parent = int(body_ids[t][det.parent]) if body_ids[t][det.parent] >= 0 else None
            o = _observation(det, t, i, parent)
            if o is None:
                continue
            if n_keypoints is None:
                n_keypoints = len(o.xy)
            elif len(o.xy) != n_keypoints:
                raise ValueError(f"frame {t}, detection {i}: {len(o.xy)} keypoints, earlier detections had "
                                 f"{n_keypoints}; track one kind of detection per call")
            row.append(o)
        obs_frames.append(row)

    confirm_hits = min(CONFIRM_HITS, min_length)
    online = _online(obs_frames, params, max_gap, confirm_hits, size)
    frags = [_Fragment(tr.obs) for tr in online]
    long = [f for f in frags if len(f.obs) >= min_length]
    short = [f for f in frags if len(f.obs) < min_length]
    stitched = _attach_short(_stitch_long(long, params, max_stitch_gap), short, params, max_stitch_gap)
    kept = [f for f in stitched if len(f.obs) >= min_length]
    kept.sort(key=lambda f: (f.first, f.obs[0].index))

    ids = [[-1] * len(dets) for dets in frames]
    tracks: dict[int, TrackInfo] = {}
    for tid, f in enumerate(kept):
        for o in f.obs:
            ids[o.frame][o.index] = tid
        tracks[tid] = TrackInfo(first=f.first, last=f.last, n_frames=len(f.obs),
                                mean_score=float(np.mean([o.score for o in f.obs])),
                                label=_majority(f.votes()[0]), parent=_majority(f.votes()[1]))
    return TrackResult(ids=ids, tracks=tracks)
