"""Offline multi-object tracking of people and hands over a whole clip. numpy only: no bpy, no torch, no GPU.

``track(frames, kind=..., image_size=...)`` gives every detection of every frame a persistent track id (or −1 for
a detection judged spurious), so one person — or one hand — keeps one id through brief occlusions, detector dropouts
and crossings; ``track_ids`` does the same over a stream of frames (any iterable, read once) and answers with one
array of ids for all detections (`TrackIds`). The whole clip is known in advance, so the tracker runs in three
passes:

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

Memory
------
An hour of video must not grow the engine (README › Batch figures), so nothing here is a Python object per frame
or per observation of the clip. The observations (keypoints, confidences, box, centre, scale, score, label, parent)
go into whole-clip column arrays as the frames stream in (`ArrayRows`: `scratch.empty`, on disk for a long clip,
trimmed a window at a time); a track or fragment is an array of observation ids (4 bytes an observation), and its
end states and votes are read back from the columns when the stitching needs them. Only the live tracks of the
online pass hold state of their own. The offline assignment works on the pairs a gap allows (ends and starts at
most ``max_stitch_gap`` frames apart), not on a fragments × fragments matrix: up to DENSE_STITCH fragments the
matrix is filled as before; beyond, each connected group of admissible pairs is assigned on its own, which is the
same optimum (the groups share no row or column; only an exact tie between two optimal assignments could resolve
differently).
"""
from __future__ import annotations

import array
import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np

from . import scratch

KINDS = ("body", "hand")

MIN_KEYPOINT_CONF = 0.2   # keypoints below this confidence count as unseen
MIN_COMMON = 3            # shared keypoints needed for the OKS term (else the centre distance stands in)
MIN_SCALE_PX = 4.0
CONFIRM_HITS = 3          # hits before a track is confirmed (capped at min_length)
TENTATIVE_MISSES = 1      # frames a tentative track may miss
STITCH_WINDOW = 6        # observations used to fit a fragment's end / start motion
QUADRATIC_MIN = 5        # observations from which the end fit is quadratic (velocity at the very end)
STITCH_MAX_SCALE = 1.6    # largest scale ratio across a stitched gap
DENSE_STITCH = 256        # up to this many long fragments the stitching fills one fragments × fragments matrix
TRIM_EVERY = 16           # the offline passes read observations all over the clip: its pages leave this often


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


@dataclasses.dataclass
class TrackIds:
    """`track_ids`' answer: the track id of every detection of the clip in one array (no list per frame).
    ``result[t]`` is frame t's ids, parallel to its detections (a view)."""
    ids: np.ndarray                # (D,) int32 over the detections of every frame in order; −1 = dropped as spurious
    offsets: np.ndarray            # (T + 1,) int64: frame t's detections are ids[offsets[t]:offsets[t + 1]]
    tracks: dict[int, TrackInfo]   # ids 0..N−1 in order of first appearance

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, t: int) -> np.ndarray:
        return self.ids[self.offsets[t]:self.offsets[t + 1]]


# ----------------------------------------------------------------------------------------------------------------
# Observations


class ArrayRows:
    """Rows appended one at a time into whole-clip column arrays (``rows[name]``: (N, ...) over the rows so far, a
    view), instead of a Python object per row: each column is made by `scratch.empty` (a memory map in the capture's
    scratch folder once it is long), sized for ``capacity`` rows and grown by half when full, and the scratch is
    trimmed every `scratch.WINDOW` rows, so a long clip's rows cost disk, not memory. ``dtypes`` names the columns
    (None: the first row's names and dtypes); a column's shape comes from its first row. Also the storage of
    `detect.FrameStore`."""

    def __init__(self, dtypes: dict[str, type] | None, capacity: int = 1024) -> None:
        self._dtypes = dict(dtypes or {})
        self._capacity = max(16, int(capacity))
        self._columns: dict[str, np.ndarray] = {}
        self._n = 0

    def append(self, **values) -> int:
        """Add one row (a value for every column); returns its row number."""
        if not self._columns:
            dtypes = self._dtypes or {name: np.asarray(value).dtype for name, value in values.items()}
            self._columns = {name: scratch.empty((self._capacity, *np.shape(values[name])), dtype)
                             for name, dtype in dtypes.items()}
        elif self._n == self._capacity:
            self._capacity += self._capacity // 2
            for name, old in self._columns.items():
                grown = scratch.empty((self._capacity, *old.shape[1:]), old.dtype)
                for a, b in scratch.windows(self._n):
                    grown[a:b] = old[a:b]
                self._columns[name] = grown
        for name, column in self._columns.items():
            column[self._n] = values[name]
        self._n += 1
        if self._n % scratch.WINDOW == 0:
            scratch.trim()
        return self._n - 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> np.ndarray:
        if not self._columns:
            return np.zeros(0, self._dtypes.get(name, np.float64))
        return self._columns[name][:self._n]


@dataclasses.dataclass
class _Obs:
    """One observation of the frame being tracked (the online pass's view; the clip's are in `_Observations`)."""
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
    id: int = -1            # row in the clip's `_Observations`


class _Observations(ArrayRows):
    """Every observation of the clip as columns (`ArrayRows`); labels and parents as codes (−1: none)."""

    def __init__(self) -> None:
        super().__init__({"frame": np.int32, "index": np.int32, "xy": np.float64, "conf": np.float64,
                          "box": np.float64, "centre": np.float64, "scale": np.float64, "score": np.float64,
                          "label": np.int16, "parent": np.int32})
        self.label_values: list = []          # label code → the detections' own label
        self._label_codes: dict = {}

    def add(self, o: _Obs) -> int:
        label = -1
        if o.label is not None:
            label = self._label_codes.setdefault(o.label, len(self.label_values))
            if label == len(self.label_values):
                self.label_values.append(o.label)
        return self.append(frame=o.frame, index=o.index, xy=o.xy, conf=o.conf, box=o.box, centre=o.centre,
                           scale=o.scale, score=o.score, label=label, parent=-1 if o.parent is None else o.parent)

    def votes(self, ids: np.ndarray) -> tuple[dict, dict]:
        """Score-weighted (label, parent) votes of these observations, summed in their order (`_add_vote`)."""
        if not len(ids):
            return {}, {}
        weights = np.maximum(self["score"][ids], 1e-3)
        return (_summed_votes(self["label"][ids], weights, self.label_values.__getitem__),
                _summed_votes(self["parent"][ids], weights, int))


def _summed_votes(codes: np.ndarray, weights: np.ndarray, value_of) -> dict:
    """``{value_of(code): Σ weights}`` over codes ≥ 0, keys in order of first appearance, each sum taken left to
    right (a cumulative sum: the same rounding as adding the votes one by one)."""
    seen = codes >= 0
    codes, weights = codes[seen], weights[seen]
    if not len(codes):
        return {}
    distinct, first = np.unique(codes, return_index=True)
    return {value_of(int(code)): float(np.cumsum(weights[codes == code])[-1])
            for code in distinct[np.argsort(first)]}


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
        self.ids = array.array("i", [obs.id])                            # its observations' rows, in frame order
        self.last = obs.frame                                            # frame of its last observation
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
        self.ids.append(obs.id)
        self.last = obs.frame
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


class _Online:
    """The online pass, one frame at a time (`step`); `finish` gives the fragments: the tracks in the order they
    ended, then those still live at the end."""

    def __init__(self, store: _Observations, p: TrackerParams, max_gap: int, confirm_hits: int,
                 image_size: tuple[int, int]):
        self.p, self.max_gap, self.confirm_hits, self.image_size = p, max_gap, confirm_hits, image_size
        self.live: list[_Track] = []
        self.done = _Fragments(store)

    def step(self, t: int, dets: list[_Obs]) -> None:
        p, max_gap, confirm_hits = self.p, self.max_gap, self.confirm_hits
        still: list[_Track] = []
        for tr in self.live:
            misses = t - tr.last - 1
            allowed = max_gap if len(tr.ids) >= confirm_hits else TENTATIVE_MISSES
            if misses > allowed or (misses > 0 and _box_outside(tr.predict(t)[2], self.image_size)):
                self.done.add(tr.ids)
            else:
                still.append(tr)
        live = still
        free = list(range(len(dets)))
        for stage in (True, False):          # confirmed tracks first, then tentative ones
            group = [tr for tr in live if (len(tr.ids) >= confirm_hits) == stage]
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
        self.live = live

    def finish(self) -> _Fragments:
        for tr in self.live:
            self.done.add(tr.ids)
        self.live = []
        self.done.freeze()
        return self.done


# ----------------------------------------------------------------------------------------------------------------
# Offline pass


class _Fragments:
    """The online pass's fragments as one flat array of observation rows, each fragment's in frame order (fragment
    k: ``ids[offsets[k]:offsets[k + 1]]``): 4 bytes an observation and 8 a fragment, no object each. Filled by `add`
    while the pass runs, then `freeze` makes numpy arrays of them."""

    def __init__(self, store: _Observations):
        self.store = store
        self._ids = array.array("i")
        self._offsets = array.array("q", [0])
        self.ids = np.zeros(0, np.int32)
        self.offsets = np.zeros(1, np.int64)

    def add(self, ids: array.array) -> None:
        self._ids.extend(ids)
        self._offsets.append(len(self._ids))

    def freeze(self) -> None:
        self.ids, self.offsets = np.array(self._ids, dtype=np.int32), np.array(self._offsets, dtype=np.int64)
        self._ids, self._offsets = array.array("i"), array.array("q", [0])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, k: int) -> np.ndarray:
        return self.ids[self.offsets[k]:self.offsets[k + 1]]


def _window(ids: np.ndarray, at_end: bool, upto: int | None = None, since: int = 0) -> np.ndarray:
    """The rows `_end_state` fits for the end (``at_end``) or the start of ``ids[since:upto]``."""
    upto = len(ids) if upto is None else upto
    return ids[max(since, upto - STITCH_WINDOW):upto] if at_end else ids[since:since + STITCH_WINDOW]


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


def _end_state(store: _Observations, window: np.ndarray, at_end: bool) -> _EndState:
    """State at the last (``at_end``) or first observation of ``window`` (the last / first STITCH_WINDOW rows of a
    fragment), from a line (or parabola) through their centres."""
    frames = store["frame"][window]
    ref = int(frames[-1] if at_end else frames[0])
    f = (frames - ref).astype(np.float64)                                  # (W,)
    c = store["centre"][window]                                            # (W, 2)
    scale = float(np.median(store["scale"][window]))
    edge = window[-1] if at_end else window[0]
    xy, conf, centre = store["xy"][edge], store["conf"][edge], store["centre"][edge]
    if len(window) < 3:
        return _EndState(ref, centre, None, np.zeros(2), scale, xy, conf, centre)
    degree = 2 if len(window) >= QUADRATIC_MIN else 1
    A = np.stack([f ** k for k in range(degree + 1)], axis=1)              # (W, degree + 1)
    coef, *_ = np.linalg.lstsq(A, c, rcond=None)                            # rows: centre at ref, velocity, ...
    acc = 2.0 * coef[2] if degree == 2 else np.zeros(2)
    return _EndState(ref, coef[0], coef[1], acc, scale, xy, conf, centre)


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


def _stitch_long(frags: _Fragments, which: np.ndarray, p: TrackerParams, max_stitch_gap: int) -> list[np.ndarray]:
    """Join the fragments ``which`` end-to-start by one gated assignment; follow the chains. Returns each chain's
    observation rows, in order of its first fragment.

    End states, start states and votes are computed from the observations when a pair needs them: the ends in
    order of their frame, the starts they may join (1..max_stitch_gap frames later) held while still in reach."""
    store = frags.store
    n = len(which)
    if n < 2:
        return [frags[int(k)] for k in which]
    first_rows = frags.ids[frags.offsets[which]]
    last_rows = frags.ids[frags.offsets[which + 1] - 1]
    start_frames = store["frame"][first_rows].astype(np.int64)
    end_frames = store["frame"][last_rows].astype(np.int64)
    by_start = np.argsort(start_frames, kind="stable")
    sorted_starts = start_frames[by_start]
    rows, cols, costs = array.array("q"), array.array("q"), array.array("d")
    held: dict[int, tuple[_EndState, tuple[dict, dict]]] = {}    # starts still in reach: state, votes
    for count, i in enumerate(np.argsort(end_frames, kind="stable").tolist()):
        if count % TRIM_EVERY == TRIM_EVERY - 1:
            scratch.trim()
        end = int(end_frames[i])
        for j in [j for j in held if start_frames[j] <= end]:     # the ends to come are later: out of reach
            del held[j]
        lo = int(np.searchsorted(sorted_starts, end + 1, side="left"))
        hi = int(np.searchsorted(sorted_starts, end + max_stitch_gap, side="right"))
        if lo >= hi:
            continue
        ids_i = frags[int(which[i])]
        end_i, votes_i = _end_state(store, _window(ids_i, at_end=True), at_end=True), store.votes(ids_i)
        for j in sorted(by_start[lo:hi].tolist()):
            if j not in held:
                ids_j = frags[int(which[j])]
                held[j] = (_end_state(store, _window(ids_j, at_end=False), at_end=False), store.votes(ids_j))
            c = _stitch_cost(end_i, held[j][0], p, max_stitch_gap, votes_i, held[j][1])
            if c < p.stitch_gate:
                rows.append(i)
                cols.append(j)
                costs.append(c)
    nxt = np.full(n, -1, np.int64)
    for i, j in _assign_pairs(np.array(rows, np.int64), np.array(cols, np.int64), np.array(costs), n,
                              p.stitch_gate):
        nxt[i] = j
    has_previous = np.zeros(n, bool)
    has_previous[nxt[nxt >= 0]] = True
    out = []
    for h in np.flatnonzero(~has_previous).tolist():
        chain: list[np.ndarray] = []
        k = h
        while k >= 0:
            chain.append(frags[int(which[k])])
            k = int(nxt[k])
        out.append(np.concatenate(chain))
    return out


def _assign_pairs(rows: np.ndarray, cols: np.ndarray, costs: np.ndarray, n: int, gate: float
                  ) -> list[tuple[int, int]]:
    """`_gated_assignment` of the n × n cost matrix that holds ``costs`` (each < gate) at (rows, cols) and inf
    elsewhere. Up to DENSE_STITCH rows that matrix is built; beyond, each connected group of entries (no row or
    column in common with another group) is assigned on its own matrix: the same optimum, in memory that grows
    with the largest group instead of with n²."""
    if n <= DENSE_STITCH:
        cost = np.full((n, n), math.inf)
        cost[rows, cols] = costs
        return _gated_assignment(cost, gate)
    parent = np.arange(2 * n)            # union-find over rows 0..n−1 and columns n..2n−1

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for i, j in zip(rows.tolist(), cols.tolist()):
        parent[root(i)] = root(n + j)
    group = np.array([root(i) for i in rows.tolist()], dtype=np.int64)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    pairs = []
    for members in np.split(order, bounds) if len(order) else []:
        group_rows, row_at = np.unique(rows[members], return_inverse=True)
        group_cols, col_at = np.unique(cols[members], return_inverse=True)
        cost = np.full((len(group_rows), len(group_cols)), math.inf)
        cost[row_at, col_at] = costs[members]
        pairs += [(int(group_rows[a]), int(group_cols[b])) for a, b in _gated_assignment(cost, gate)]
    return sorted(pairs)


def _attach_short(tracks: list[np.ndarray], frags: _Fragments, shorts: np.ndarray, p: TrackerParams,
                  max_stitch_gap: int) -> list[np.ndarray]:
    """Give each short fragment (``shorts``: fragment numbers) to the track (observation rows) whose neighbouring
    observations explain it best; returns the tracks. A short fragment no track takes stays alone, and is dropped
    by the length rule: it is not returned.

    The short fragment must fit in a gap of the track (or before its start / after its end) without sharing a frame
    with it; the cost is the stitching cost from the track's observations before it into it, from it into the
    track's observations after it, or the mean of both when both are within max_stitch_gap (each must pass).
    """
    store = frags.store
    frames = [store["frame"][tr] for tr in tracks]                        # sorted frame indices per track
    votes = [store.votes(tr) for tr in tracks]
    firsts = np.array([int(fr[0]) for fr in frames], dtype=np.int64)
    lasts = np.array([int(fr[-1]) for fr in frames], dtype=np.int64)
    first_rows = frags.ids[frags.offsets[shorts]]
    order = np.lexsort((store["index"][first_rows], store["frame"][first_rows]))   # by first frame, then index
    for count, s in enumerate(shorts[order].tolist()):
        if count % TRIM_EVERY == TRIM_EVERY - 1:
            scratch.trim()
        f = frags[s]
        f_frames = store["frame"][f]
        f_first, f_last = int(f_frames[0]), int(f_frames[-1])
        f_votes = store.votes(f)
        f_start = _end_state(store, _window(f, at_end=False), at_end=False)
        f_end = _end_state(store, _window(f, at_end=True), at_end=True)
        best, best_cost, best_at = -1, math.inf, 0
        # Tracks seen within max_stitch_gap of f on either side (a necessary condition for the tests below).
        for k in np.flatnonzero((firsts <= f_last + max_stitch_gap) & (lasts >= f_first - max_stitch_gap)).tolist():
            before = int(np.searchsorted(frames[k], f_first, side="left"))   # tracks[k][:before] precede f
            after = int(np.searchsorted(frames[k], f_last, side="right"))    # tracks[k][after:] follow f
            if after != before:
                continue            # the track is observed inside f's span
            near_before = before > 0 and f_first - int(frames[k][before - 1]) <= max_stitch_gap
            near_after = after < len(frames[k]) and int(frames[k][after]) - f_last <= max_stitch_gap
            if not (near_before or near_after):
                continue
            costs = []             # from the sides within reach (a side beyond max_stitch_gap is not evidence)
            if near_before:
                costs.append(_stitch_cost(_end_state(store, _window(tracks[k], True, upto=before), at_end=True),
                                          f_start, p, max_stitch_gap, votes[k], f_votes))
            if near_after:
                costs.append(_stitch_cost(f_end, _end_state(store, _window(tracks[k], False, since=after),
                                                            at_end=False), p, max_stitch_gap, f_votes, votes[k]))
            c = float(np.mean(costs)) if all(np.isfinite(costs)) else math.inf
            if c < p.stitch_gate and c < best_cost:
                best, best_cost, best_at = k, c, before
        if best < 0:
            continue
        # f fits in the track's gap at best_at: inserted there, the track stays in frame order.
        tracks[best] = np.concatenate([tracks[best][:best_at], f, tracks[best][best_at:]])
        frames[best] = np.concatenate([frames[best][:best_at], f_frames, frames[best][best_at:]])
        firsts[best], lasts[best] = frames[best][0], frames[best][-1]
        votes[best] = store.votes(tracks[best])
    return tracks


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

    The ids come as a list per frame; `track_ids` gives the same ids in one array, from frames streamed in.
    """
    result = track_ids(frames, max_gap=max_gap, min_length=min_length, kind=kind, image_size=image_size,
                       max_stitch_gap=max_stitch_gap, body_ids=body_ids)
    offsets = result.offsets.tolist()
    return TrackResult(ids=[result.ids[a:b].tolist() for a, b in zip(offsets, offsets[1:])], tracks=result.tracks)


def track_ids(frames: Iterable[Sequence[Detection]], *, max_gap: int = 15, min_length: int = 5, kind: str = "body",
              image_size: tuple[int, int], max_stitch_gap: int | None = None,
              body_ids: Sequence[Sequence[int]] | None = None) -> TrackIds:
    """`track` over a stream: ``frames`` is read once, frame by frame (a generator that makes each frame's
    detections when asked keeps only that frame's in memory), and the ids come back in one array (`TrackIds`).
    The observations go to whole-clip columns (`ArrayRows`, on disk in a long capture's scratch folder); see the
    module docstring's "Memory". ``body_ids``: per frame, the body tracks' ids (``TrackResult.ids`` or a
    `TrackIds`)."""
    if kind not in PARAMS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if len(image_size) != 2 or not all(int(x) > 0 for x in image_size):
        raise ValueError(f"image_size must be (width, height) in pixels, got {image_size!r}")
    if max_gap < 0 or min_length < 1:
        raise ValueError(f"need max_gap >= 0 and min_length >= 1, got {max_gap}, {min_length}")
    if body_ids is not None and isinstance(frames, Sequence) and len(body_ids) != len(frames):
        raise ValueError(f"body_ids has {len(body_ids)} frames, the detections {len(frames)}")
    params = PARAMS[kind]
    max_stitch_gap = 4 * max(max_gap, 1) if max_stitch_gap is None else max_stitch_gap
    size = (int(image_size[0]), int(image_size[1]))

    store = _Observations()
    online = _Online(store, params, max_gap, min(CONFIRM_HITS, min_length), size)
    offsets = array.array("q", [0])
    n_keypoints: int | None = None
    for t, dets in enumerate(frames):
        if body_ids is not None and t >= len(body_ids):
            raise ValueError(f"body_ids has {len(body_ids)} frames, the detections more")
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
            o.id = store.add(o)
            row.append(o)
        offsets.append(offsets[-1] + len(dets))
        online.step(t, row)
    n_frames = len(offsets) - 1
    if body_ids is not None and len(body_ids) != n_frames:
        raise ValueError(f"body_ids has {len(body_ids)} frames, the detections {n_frames}")

    frags = online.finish()
    lengths = np.diff(frags.offsets)
    tracks = _attach_short(_stitch_long(frags, np.flatnonzero(lengths >= min_length), params, max_stitch_gap),
                           frags, np.flatnonzero(lengths < min_length), params, max_stitch_gap)
    del frags
    # Every track is at least min_length long (short fragments no track took were left out): number them in order
    # of first appearance (ties: detection order in that frame).
    firsts = [(int(store["frame"][tr[0]]), int(store["index"][tr[0]])) for tr in tracks]
    kept = [tracks[k] for k in sorted(range(len(tracks)), key=firsts.__getitem__)]

    frame_start = np.array(offsets, dtype=np.int64)
    ids = np.full(int(frame_start[-1]), -1, np.int32)
    infos: dict[int, TrackInfo] = {}
    for tid, rows in enumerate(kept):
        ids[frame_start[store["frame"][rows]] + store["index"][rows]] = tid
        labels, parents = store.votes(rows)
        infos[tid] = TrackInfo(first=int(store["frame"][rows[0]]), last=int(store["frame"][rows[-1]]),
                               n_frames=len(rows), mean_score=float(np.mean(store["score"][rows])),
                               label=_majority(labels), parent=_majority(parents))
        scratch.trim()
    return TrackIds(ids=ids, offsets=frame_start, tracks=infos)
