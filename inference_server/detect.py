"""Landmark detection on the CPU with MediaPipe's legacy graphs (`mp.solutions`), per capture mode. No bpy.

Modes (``CaptureOptions.mode``)
-------------------------------
``body+hands``  Holistic without its face branch (pose + both hands attached to the pose's wrists;
                `holistic_graph`). Where Holistic misses a hand that the body says is there (small hands in
                full-body shots), the hand network runs again on an upscaled crop around that body wrist, following
                the hand from crop to crop (`Perception._rescue`). Where Holistic finds no body at all (close-ups),
                the hand tracker reads the whole frame; the multi-hand detector runs on the whole frame where a hand
                is still missing and the body's wrist is unsure or the hand would be a close-up's. A body that holds
                none of the hands found there and is too small to hold them is a phantom of the pose network and is
                dropped. After the clip, a lone hand that continues the other side's hand moves there
                (`relink_lone_hands`). `Perception.stream` runs Holistic and the searches as a two-stage pipeline.
``hands``       The multi-hand detector (palm detection + hand landmarks) on the whole frame: 2D and world
                landmarks and the handedness of each hand.
``body``        Pose only.

Output per frame (`FrameLandmarks`), NaN where nothing was seen:
    pose_2d      (33, 3)      x, y in pixels of the full frame, visibility in [0, 1]
    pose_world   (33, 3)      metres, hip-centred, camera-aligned axes (x right, y down, z forward)
    hands_2d     (2, 21, 3)   [left, right] of the SUBJECT: x, y pixels, z relative depth in pixels (x scale)
    hands_world  (2, 21, 3)   metres, centred on the hand, camera-aligned axes (hand network only; NaN from Holistic)
    hand_score   (2,)         confidence of the hand (handedness score, or 1 for Holistic's own hands)
    hand_source  (2,)         int8, one of HAND_SOURCES

Left and right (the subject's own)
----------------------------------
Pose landmarks are anatomical, so Holistic's ``left_hand_landmarks`` is the subject's left hand. The stand-alone
hand network's handedness label assumes a mirrored selfie image; a normal camera is not mirrored, so its label
``"Left"`` means the subject's RIGHT hand (`subject_side`). In body+hands mode a hand found by the hand network is
only kept on a side when its wrist lies on that side's body wrist (`assign_to_wrists`), whatever its label says.
"""
from __future__ import annotations

import array
import collections
import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from . import scratch
from .protocol import MODEL_MISSING, RpcError
from .sides import (CHIRALITY_LAMBDA, CHIRALITY_MIN_SINE, CHIRALITY_MU, chirality_sine, chirality_votes,
                    mirrored_frames, swap_hands, unmirror)

N_POSE = 33
N_HAND = 21
LEFT, RIGHT = 0, 1
MODES = ("body+hands", "hands", "body")

#: Where a hand came from, stored per frame and side in the Take (``hand_source``).
HAND_SOURCES = {0: "none", 1: "holistic", 2: "wrist crop", 3: "hand detector"}
SRC_NONE, SRC_HOLISTIC, SRC_WRIST_CROP, SRC_HANDS = 0, 1, 2, 3

# Pose landmark indices of the subject's [left, right] wrist, elbow, index and pinky knuckles.
POSE_WRIST = (15, 16)
POSE_ELBOW = (13, 14)
POSE_INDEX = (19, 20)
POSE_PINKY = (17, 18)


@dataclasses.dataclass
class FrameLandmarks:
    pose_2d: np.ndarray      # (33, 3)
    pose_world: np.ndarray   # (33, 3)
    hands_2d: np.ndarray     # (2, 21, 3)
    hands_world: np.ndarray  # (2, 21, 3)
    hand_score: np.ndarray   # (2,)
    hand_source: np.ndarray  # (2,) int8


@dataclasses.dataclass
class HandObservation:
    """One hand from the hand network, in full-frame pixels."""
    landmarks: np.ndarray    # (21, 3) x, y px, z relative depth px
    world: np.ndarray        # (21, 3) metres
    side: int                # subject's LEFT/RIGHT, from the (un-mirrored) handedness label
    score: float             # handedness score in [0, 1]


def empty_frame() -> FrameLandmarks:
    return FrameLandmarks(np.full((N_POSE, 3), np.nan), np.full((N_POSE, 3), np.nan),
                          np.full((2, N_HAND, 3), np.nan), np.full((2, N_HAND, 3), np.nan),
                          np.zeros(2), np.zeros(2, dtype=np.int8))


class FrameStore:
    """Every frame's landmarks of one capture, filled in order, kept as whole-clip arrays (one per `FrameLandmarks`
    field, the detectors' own dtypes, so the values are the ones a list of frames stacked would give) instead of a
    Python object per frame: a long clip costs its landmarks' bytes and no more (README › Batch figures). Sized up
    front for ``expected`` frames (a clip's frame count); pages are only touched as frames arrive, and a clip that
    runs longer grows the arrays by half.

    ``store[t]`` is a `FrameLandmarks` of views into the arrays: edits in place land in the store; a frame whose
    fields were replaced (`sides.unmirror`) is put back with ``store[t] = frame``. ``array(name)`` is the (T, ...)
    array of a field (a view, no copy)."""

    FIELDS = tuple(f.name for f in dataclasses.fields(FrameLandmarks))
    MAX_EXPECTED = 216_000   # two hours at 30 fps: a clip's frame count past this is not trusted up front

    def __init__(self, expected: int = 0) -> None:
        from .tracking import ArrayRows

        # The first frame sets each field's shape and dtype; a long clip's frames go to disk as they come.
        self._rows = ArrayRows(None, capacity=min(int(expected), self.MAX_EXPECTED))

    def append(self, lm: FrameLandmarks) -> None:
        self._rows.append(**{name: getattr(lm, name) for name in self.FIELDS})

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, t: int) -> FrameLandmarks:
        t = range(len(self._rows))[t]
        return FrameLandmarks(*(self._rows[name][t] for name in self.FIELDS))

    def __setitem__(self, t: int, lm: FrameLandmarks) -> None:
        t = range(len(self._rows))[t]
        for name in self.FIELDS:
            self._rows[name][t] = getattr(lm, name)

    def __iter__(self):
        return (self[t] for t in range(len(self._rows)))

    def array(self, name: str) -> np.ndarray:
        """The field's (T, ...) array over the frames so far (a view into the store)."""
        if not len(self._rows):
            return np.stack([getattr(empty_frame(), name)])[:0]
        return self._rows[name]


class HandStore:
    """Every frame's hands (`HandObservation`) of a hands-mode capture, for the tracker after the last frame, kept as
    whole-clip columns (`tracking.ArrayRows`: on disk for a long clip) instead of a Python object per hand: ``frame(t)``
    gives frame t's hands back (views into the columns), ``rows[name]`` a column over every hand. The columns keep
    the detector's float64, so the hands read back are the ones it gave."""

    def __init__(self) -> None:
        from .tracking import ArrayRows

        self.rows = ArrayRows({"landmarks": np.float64, "world": np.float64, "side": np.int8, "score": np.float64})
        self.offsets = array.array("q", [0])   # frame t's hands are rows offsets[t]:offsets[t + 1]

    def append(self, hands: list[HandObservation]) -> None:
        for h in hands:
            self.rows.append(landmarks=h.landmarks, world=h.world, side=h.side, score=h.score)
        self.offsets.append(len(self.rows))

    def __len__(self) -> int:
        """Frames."""
        return len(self.offsets) - 1

    def replace_last(self, hands: list[HandObservation]) -> None:
        """Replace the last frame's hands (which must have been none)."""
        if self.offsets[-1] != self.offsets[-2]:
            raise ValueError("replace_last() replaces a frame without hands")
        self.offsets.pop()
        self.append(hands)

    def frame(self, t: int) -> list[HandObservation]:
        landmarks, world, side, score = (self.rows[name] for name in ("landmarks", "world", "side", "score"))
        return [HandObservation(landmarks[k], world[k], int(side[k]), float(score[k]))
                for k in range(self.offsets[t], self.offsets[t + 1])]


def stacked(frames, name: str) -> np.ndarray:
    """A `FrameLandmarks` field over frames, (T, ...): a `FrameStore`'s own array, or a list's stacked."""
    return frames.array(name) if isinstance(frames, FrameStore) else np.stack([getattr(f, name) for f in frames])


def subject_side(label: str, mirrored: bool = False) -> int:
    """MediaPipe's handedness label → the subject's own side.

    MediaPipe labels hands as seen in a mirrored (selfie) image. A normal camera image is not mirrored, so the labels
    swap: "Left" → the subject's RIGHT. Pass ``mirrored=True`` for footage that was flipped horizontally.
    """
    is_left_label = label.strip().lower() == "left"
    return (LEFT if is_left_label else RIGHT) if mirrored else (RIGHT if is_left_label else LEFT)


def _solutions():
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RpcError(MODEL_MISSING, f"MediaPipe is not installed in the engine's Python ({exc})",
                       fix="run ./reel2rig setup (or the add-on's 'Set up engine')") from exc
    return mp.solutions


class _Graph:
    """Context-manager plumbing shared by the wrappers below."""
    _graph = None

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pose_result(graph, rgb: np.ndarray, scale_to: tuple[int, int]):
    """Run a Pose/Holistic graph; return its raw result and a frame with the pose filled in (pixels of scale_to)."""
    out = empty_frame()
    rgb.flags.writeable = False
    res = graph.process(rgb)
    width, height = scale_to
    if res.pose_landmarks is not None:
        out.pose_2d[:] = [(p.x * width, p.y * height, p.visibility) for p in res.pose_landmarks.landmark]
    if getattr(res, "pose_world_landmarks", None) is not None:
        out.pose_world[:] = [(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark]
    return res, out


#: The nodes of MediaPipe's Holistic graph that find the face (`holistic_graph(face=False)` leaves them out).
HOLISTIC_FACE_NODES = ("SplitNormalizedLandmarkListCalculator", "FaceLandmarksFromPoseCpu")


def holistic_graph(face: bool):
    """MediaPipe's own Holistic graph (``holistic_landmark_cpu.binarypb`` from the installed wheel) as a
    ``CalculatorGraphConfig``; ``face=False`` drops its face branch (face detection and the 468-point face mesh on
    every frame where the pose sees a face, which the capture never uses). The pose and hand nodes are untouched,
    so their landmarks are the shipped graph's to the bit (`tests/engine/test_detect_modes.py`)."""
    _solutions()                                   # a clear error when MediaPipe is not installed
    import mediapipe as mp
    from mediapipe.framework import calculator_pb2

    path = Path(mp.__file__).parent / "modules" / "holistic_landmark" / "holistic_landmark_cpu.binarypb"
    if not path.is_file():
        raise RpcError(MODEL_MISSING, f"MediaPipe's Holistic graph is missing: {path}",
                       fix="reinstall the engine with ./reel2rig setup (it needs mediapipe==0.10.21)")
    config = calculator_pb2.CalculatorGraphConfig()
    config.ParseFromString(path.read_bytes())
    if not face:
        nodes = [n for n in config.node if n.calculator not in HOLISTIC_FACE_NODES]
        del config.node[:]
        config.node.extend(nodes)
        for field, prefix in ((config.output_stream, "FACE_LANDMARKS:"), (config.input_side_packet, "REFINE_FACE")):
            kept = [name for name in field if not name.startswith(prefix)]
            del field[:]
            field.extend(kept)
    return config


class HolisticDetector(_Graph):
    """One MediaPipe Holistic graph in video (tracking) mode. Not thread-safe: one per job.

    ``face=True`` is Holistic as MediaPipe ships it (`mp.solutions.holistic`, the benchmarks' baseline);
    ``face=False`` (the capture) runs the same graph without its face branch (`holistic_graph`)."""

    def __init__(self, hands: bool = True, face: bool = True):
        self._hands = hands
        if face:
            # model_complexity=1 is the pose model shipped inside the wheel (0 and 2 download at run time).
            self._graph = _solutions().holistic.Holistic(
                static_image_mode=False, model_complexity=1, smooth_landmarks=True, refine_face_landmarks=False,
                min_detection_confidence=0.5, min_tracking_confidence=0.5)
            return
        from mediapipe.python.solution_base import SolutionBase

        # The side inputs and thresholds `mp.solutions.holistic.Holistic` sets for the same options.
        self._graph = SolutionBase(
            graph_config=holistic_graph(face=False),
            side_inputs=dict(model_complexity=1, smooth_landmarks=True, enable_segmentation=False,
                             smooth_segmentation=True, use_prev_landmarks=True),
            calculator_params={
                "poselandmarkcpu__posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
                "poselandmarkcpu__poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__"
                "ThresholdingCalculator.threshold": 0.5},
            outputs=["pose_landmarks", "pose_world_landmarks", "left_hand_landmarks", "right_hand_landmarks"])

    def process(self, rgb: np.ndarray, scale_to: tuple[int, int]) -> FrameLandmarks:
        """Detect on an RGB image; pixel outputs are scaled to `scale_to` = (width, height) of the source frame."""
        res, out = _pose_result(self._graph, rgb, scale_to)
        width, height = scale_to
        if self._hands:
            for side, hand in ((LEFT, res.left_hand_landmarks), (RIGHT, res.right_hand_landmarks)):
                if hand is not None:
                    # MediaPipe's z shares x's normalisation (image width).
                    out.hands_2d[side] = [(p.x * width, p.y * height, p.z * width) for p in hand.landmark]
                    out.hand_score[side] = 1.0
                    out.hand_source[side] = SRC_HOLISTIC
        return out


class PoseDetector(_Graph):
    """MediaPipe Pose (body only) in video mode."""

    def __init__(self):
        self._graph = _solutions().pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                             min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def process(self, rgb: np.ndarray, scale_to: tuple[int, int]) -> FrameLandmarks:
        return _pose_result(self._graph, rgb, scale_to)[1]


class HandsDetector(_Graph):
    """MediaPipe Hands (palm detection + hand landmarks): several hands, world landmarks and handedness.

    ``static=True`` runs palm detection on every image (for unrelated crops); False tracks hands across frames.
    """

    def __init__(self, static: bool = False, max_hands: int = 2, min_detection: float = 0.5, mirrored: bool = False):
        self._mirrored = mirrored
        self._graph = _solutions().hands.Hands(static_image_mode=static, max_num_hands=max_hands, model_complexity=1,
                                               min_detection_confidence=min_detection, min_tracking_confidence=0.5)

    def process(self, rgb: np.ndarray, to_frame: np.ndarray | tuple[int, int]) -> list[HandObservation]:
        """Hands in `rgb`. `to_frame`: (width, height) the normalised output is scaled to, or a 2×3 affine that
        maps pixels of `rgb` to full-frame pixels (crops)."""
        rgb.flags.writeable = False
        res = self._graph.process(rgb)
        if not res.multi_hand_landmarks:
            return []
        h, w = rgb.shape[:2]
        if isinstance(to_frame, tuple):
            A = np.array([[to_frame[0] / w, 0.0, 0.0], [0.0, to_frame[1] / h, 0.0]])
        else:
            A = np.asarray(to_frame, dtype=np.float64)
        scale = float(np.sqrt(abs(np.linalg.det(A[:, :2]))))    # crop px → frame px (uniform)
        worlds = res.multi_hand_world_landmarks or [None] * len(res.multi_hand_landmarks)
        found = []
        for lm, world, handed in zip(res.multi_hand_landmarks, worlds, res.multi_handedness):
            px = np.array([(p.x * w, p.y * h, p.z * w) for p in lm.landmark])       # (21, 3) in rgb's pixels
            xy = px[:, :2] @ A[:, :2].T + A[:, 2]
            pts = np.concatenate([xy, px[:, 2:] * scale], axis=1)
            wl = (np.array([(p.x, p.y, p.z) for p in world.landmark]) if world is not None
                  else np.full((N_HAND, 3), np.nan))
            cls = handed.classification[0]
            found.append(HandObservation(pts, wl, subject_side(cls.label, self._mirrored), float(cls.score)))
        return found


# ---------------------------------------------------------------------------------------------------------------
# Geometry: where a body says its hands are, and which hand belongs to which wrist
# ---------------------------------------------------------------------------------------------------------------

def hand_region(pose_2d: np.ndarray, side: int, min_visibility: float = 0.5) -> tuple[np.ndarray, float] | None:
    """Square region (centre (2,), side length px) that holds the subject's hand on `side`, from the pose.

    The hand's centre is taken a little past the wrist toward the pose's index/pinky knuckles; the side length is
    the larger of 1.4 × the forearm (elbow → wrist; a hand is about 0.75 forearms long, so the hand fits whatever its
    pose) and 5 × wrist→knuckles. None when the wrist is not visible.
    """
    w, e = pose_2d[POSE_WRIST[side]], pose_2d[POSE_ELBOW[side]]
    if not (np.isfinite(w[:2]).all() and np.nan_to_num(w[2]) >= min_visibility):
        return None
    knuckles = np.nanmean(pose_2d[[POSE_INDEX[side], POSE_PINKY[side]], :2], axis=0)
    if not np.isfinite(knuckles).all():
        knuckles = w[:2]
    forearm = float(np.linalg.norm(w[:2] - e[:2])) if np.isfinite(e[:2]).all() else 0.0
    reach = float(np.linalg.norm(knuckles - w[:2]))
    size = max(1.4 * forearm, 5.0 * reach, 48.0)
    centre = w[:2] + 0.8 * (knuckles - w[:2])
    return centre, size


def crop_affine(centre: np.ndarray, size: float, out_px: int) -> tuple[np.ndarray, np.ndarray]:
    """2×3 affines (frame → crop, crop → frame) of an axis-aligned square crop of side `size` scaled to `out_px`."""
    s = out_px / size
    fwd = np.array([[s, 0.0, out_px / 2 - s * centre[0]], [0.0, s, out_px / 2 - s * centre[1]]])
    inv = np.array([[1 / s, 0.0, centre[0] - size / 2], [0.0, 1 / s, centre[1] - size / 2]])
    return fwd, inv


#: `assign_to_wrists`: body wrists closer together than WRIST_TIE hand-region sizes, and a hand whose distances to
#: them differ by less than a factor TIE_RATIO, are a tie, which the hand's sure label (handedness score ≥
#: LABEL_SURE) decides.
WRIST_TIE = 0.25
TIE_RATIO = 1.5
LABEL_SURE = 0.9


def assign_to_wrists(hands: list[HandObservation], pose_2d: np.ndarray, sides=(LEFT, RIGHT),
                     gate: float = 0.6, min_visibility: float = 0.5, min_size: float = 0.0
                     ) -> dict[int, HandObservation]:
    """Give each body wrist in `sides` the hand that sits on it.

    A hand fits wrist s when its wrist landmark is within ``gate`` × the hand region size of the body's wrist s and
    nearer to it than to the other body wrist (when that one is visible). Among fitting hands the nearest wins; a
    hand whose handedness disagrees with s pays 25% extra distance (labels from small crops are unreliable, so the
    label breaks ties but never overrides the body). Wrists below ``min_visibility`` take no hand; the other wrist
    counts as a rival from 0.5 up, or from ``min_visibility`` when that is lower. ``min_size`` (px) is a floor
    for the region size in the gate, for poses whose forearm looks short because the pose is unsure.

    A tie — the body wrists within ``WRIST_TIE`` × the region size of each other (crossed arms) and the hand about
    as far from both (within a factor ``TIE_RATIO``) — is decided by the hand's label when it is sure (score ≥
    ``LABEL_SURE``): the hand goes only to the side it names. (`arms_cross`: the left hand, labelled left at
    0.96–0.99, lay 5.8 px from the pose's right wrist and 6.1 px from its left one, and went to the right.)
    """
    taken: dict[int, HandObservation] = {}
    used: set[int] = set()
    candidates = []
    for s in sides:
        region = hand_region(pose_2d, s, min_visibility)
        if region is None:
            continue
        size = max(region[1], min_size)
        own = pose_2d[POSE_WRIST[s], :2]
        other = pose_2d[POSE_WRIST[1 - s]]
        rival = np.isfinite(other[:2]).all() and np.nan_to_num(other[2]) >= min(0.5, min_visibility)
        close = rival and float(np.linalg.norm(other[:2] - own)) < WRIST_TIE * size
        for k, hand in enumerate(hands):
            d = float(np.linalg.norm(hand.landmarks[0, :2] - own))
            if d > gate * size:
                continue
            d_other = float(np.linalg.norm(hand.landmarks[0, :2] - other[:2])) if rival else np.inf
            if close and max(d, d_other) < TIE_RATIO * min(d, d_other) and hand.score >= LABEL_SURE:
                if hand.side != s:
                    continue                                  # the label decides a tie
            elif d_other < d:
                continue
            cost = d * (1.0 if hand.side == s else 1.25)
            candidates.append((cost, s, k))
    for _, s, k in sorted(candidates):
        if s in taken or k in used:
            continue
        taken[s] = hands[k]
        used.add(k)
    return taken


#: Two hands whose landmarks lie within this many hand lengths (wrist → middle knuckle) of each other on average
#: are one hand read twice, unless their shapes say otherwise (`drop_duplicate_hands`).
DUPLICATE_APART = 0.3


def hand_chirality(hand: np.ndarray, mirrored: bool = False) -> tuple[int, float]:
    """Which hand a hand's landmarks ``(21, ≥3)`` (px, relative depth) are by their shape — 0 left, 1 right, the
    subject's own — and how sure (|sine| of the thumb against the palm plane; see `sides.chirality_votes`)."""
    sine = float(np.nan_to_num(chirality_sine(hand)))
    return int(sine > 0) ^ int(mirrored), abs(sine)


def drop_duplicate_hands(out: FrameLandmarks, mirrored: bool = False) -> None:
    """When both sides hold the same hand, clear one.

    Both sides hold one hand when their landmarks lie within ``DUPLICATE_APART`` hand lengths on average. Where both
    readings have the same clear chirality (|sine| ≥ `CHIRALITY_MIN_SINE`'s upper end), the hand is the one its
    shape says and the other side is cleared — in a close-up of crossing hands Holistic may put the left hand on
    both sides while the body's wrists are less than a hand length apart (hands_cross_closeup); opposite clear
    chiralities are two hands (a clap), and both stay. Without a clear shape, the side whose body wrist is nearer
    keeps it when the body's wrists are more than a hand length apart. (Hands that really overlap in the picture —
    a walk seen side-on — have overlapping body wrists too, and stay.)"""
    a, b = out.hands_2d[LEFT], out.hands_2d[RIGHT]
    if not (np.isfinite(a[:, 0]).all() and np.isfinite(b[:, 0]).all()):
        return
    length = max(np.linalg.norm(a[9, :2] - a[0, :2]), np.linalg.norm(b[9, :2] - b[0, :2]), 1.0)
    apart = np.linalg.norm(a[:, :2] - b[:, :2], axis=-1).mean() / length
    if apart > DUPLICATE_APART:
        return
    (side_a, sure_a), (side_b, sure_b) = hand_chirality(a, mirrored), hand_chirality(b, mirrored)
    if min(sure_a, sure_b) >= CHIRALITY_MIN_SINE[1] and np.isfinite(a[:, 2]).all() and np.isfinite(b[:, 2]).all():
        if side_a == side_b:
            _clear_hand(out, 1 - side_a)
        return                                       # two different hands, or one cleared
    body_gap = np.linalg.norm(out.pose_2d[POSE_WRIST[LEFT], :2] - out.pose_2d[POSE_WRIST[RIGHT], :2])
    if not np.isfinite(body_gap) or body_gap <= length:
        return
    dists = [np.linalg.norm(out.hands_2d[s, 0, :2] - out.pose_2d[POSE_WRIST[s], :2]) for s in (LEFT, RIGHT)]
    drop = int(np.nanargmax(np.nan_to_num(dists, nan=np.inf)))
    _clear_hand(out, drop)


#: A Holistic hand whose wrist is more than MISPLACED_FAR hand lengths (wrist → middle knuckle) from its own body
#: wrist and less than MISPLACED_NEAR times that distance from the other body wrist sits on the wrong arm
#: (`drop_misplaced_hands`).
MISPLACED_FAR = 0.75
MISPLACED_NEAR = 0.5
MISPLACED_OTHER_VISIBILITY = 0.3   # the other body wrist counts from this visibility (a raised fist in front of the
                                   # body gets 0.45-0.5 and is where it says)


def drop_misplaced_hands(out: FrameLandmarks) -> int:
    """Clear the hand on a side when it sits on the body's *other* wrist (seen with visibility ≥ 0.3): its wrist is
    more than ``MISPLACED_FAR`` hand lengths from its own body wrist and less than ``MISPLACED_NEAR`` × that
    distance from the other one. Runs on Holistic's hands before the searches for missing hands, and on every hand
    at the end of the frame (a wrist crop's hand network may read the other hand's thumb as a small hand).

    Holistic crops each hand from its side of the pose, but its hand tracking can lock onto the other arm: in a
    thumbs-up close-up whose left arm is out of the picture it reports a "left hand" on the raised right fist in
    47% of the frames, 1–2 hand lengths from where the body puts its left wrist and a quarter of that from the
    right wrist (`vid02`). A hand is kept only on the wrist it is attached to, as `assign_to_wrists` does for the
    hand network's hands. (Hand lengths, not the hand region's size: a region sized from an elbow the pose guessed
    outside the picture is too large to tell.) A mirrored body moves both wrists and both hands together, so it is
    not touched. Returns the number of hands cleared."""
    cleared = 0
    for side in (LEFT, RIGHT):
        if out.hand_source[side] == SRC_NONE:
            continue
        hand = out.hands_2d[side, :, :2]
        own, other = out.pose_2d[POSE_WRIST[side]], out.pose_2d[POSE_WRIST[1 - side]]
        if not (np.isfinite(hand[[0, 9]]).all() and np.isfinite(own[:2]).all() and np.isfinite(other[:2]).all()):
            continue
        if np.nan_to_num(other[2]) < MISPLACED_OTHER_VISIBILITY:
            continue
        length = float(np.linalg.norm(hand[9] - hand[0]))
        d_own, d_other = float(np.linalg.norm(hand[0] - own[:2])), float(np.linalg.norm(hand[0] - other[:2]))
        if d_own > MISPLACED_FAR * length and d_other < MISPLACED_NEAR * d_own:
            _clear_hand(out, side)
            cleared += 1
    return cleared


def _clear_hand(out: FrameLandmarks, side: int) -> None:
    out.hands_2d[side] = np.nan
    out.hands_world[side] = np.nan
    out.hand_score[side] = 0.0
    out.hand_source[side] = SRC_NONE


def _put_hand(out: FrameLandmarks, side: int, hand: HandObservation, source: int) -> None:
    out.hands_2d[side] = hand.landmarks
    out.hands_world[side] = hand.world
    out.hand_score[side] = hand.score
    out.hand_source[side] = source


def unmirror_by_chirality(frames: "list[FrameLandmarks] | FrameStore", mirrored: bool = False) -> int:
    """Swap back, in place, the frames where the pose network mirrored the body (a front/back-ambiguous silhouette
    read as seen from behind: the subject's left arm labelled right, both hands swapped with it). The evidence is
    the hands' own chirality against the wrist that holds them (`sides.chirality_votes`), chained over the clip by
    `sides.mirrored_frames`. Returns the number of frames swapped."""
    if not frames:
        return 0
    pose, hands = stacked(frames, "pose_2d"), stacked(frames, "hands_2d")
    votes = np.concatenate([chirality_votes(pose[a:b], hands[a:b], mirrored)   # (T, 2)
                            for a, b in scratch.windows(len(pose))])
    swap = mirrored_frames(pose, votes, lam=CHIRALITY_LAMBDA, mu=CHIRALITY_MU)
    del pose
    for t in np.flatnonzero(swap):
        frame = frames[t]
        unmirror(frame)
        frames[t] = frame   # a `FrameStore` takes the swapped fields back (a list holds the same object)
    return int(swap.sum())


#: `lone_hand_runs`: a hand continues a hand of some side when its wrist lies within this many hand lengths of that
#: hand's wrist, plus LINK_PER_FRAME hand lengths for each frame between them (a waving hand moves ~0.4 a frame).
LINK_REACH = 1.0
LINK_PER_FRAME = 0.5
LINK_FRAMES = 8        # how far before and after a run its neighbours are looked for
LINK_GAP = 3           # frames without any hand that a run may span
LINK_MIN_LENGTH = 8.0  # px: a floor for the hand length (wrist → middle knuckle) of a hand seen edge-on


def lone_hand_runs(wrist: np.ndarray, length: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Runs of frames where the one hand found sits on the wrong side. ``wrist`` (T, 2, 2) px of each side's hand
    wrist (NaN: no hand), ``length`` (T, 2) its length (wrist → middle knuckle, px). Returns (frames, side) pairs:
    the frames of each run and the side its hand is on now (it belongs on the other).

    A run is a stretch of frames in which one side alone has a hand, moving continuously (frames with no hand at all,
    up to ``LINK_GAP`` of them, may lie inside it). Its hand belongs to the other side when, in the ``LINK_FRAMES``
    before or after the run, the other side's nearest hand continues it (within ``LINK_REACH`` + ``LINK_PER_FRAME``
    per frame apart, in hand lengths) while its own side's nearest hand, before and after, does not (or there is
    none). This is what Holistic's hand tracking does when the pose is unsure of an arm: for a frame or a few, one
    side's hand crop lands on the other hand — the waving hand read as the left one while the pose's wrists wander
    (`wave`), or the left hand read as the right one in a turn — and the other side, which has lost it, reports
    nothing. A hand whose own side continues it (hands held together, a clap, crossing hands) is never moved."""
    seen = np.isfinite(wrist).all(-1)                                      # (T, 2)
    n = len(wrist)
    lone = seen.sum(1) == 1
    length = np.fmax(np.nan_to_num(length, nan=0.0), LINK_MIN_LENGTH)

    def continues(t: int, side: int, v: int, other: int) -> bool:
        reach = max(length[t, side], length[v, other]) * (LINK_REACH + LINK_PER_FRAME * abs(v - t))
        return bool(np.linalg.norm(wrist[t, side] - wrist[v, other]) <= reach)

    def nearest(side: int, t: int, step: int) -> int | None:
        for v in range(t + step, t + step * (LINK_FRAMES + 1), step):
            if 0 <= v < n and seen[v, side]:
                return v
        return None

    runs, t = [], 0
    while t < n:
        if not lone[t]:
            t += 1
            continue
        side = int(np.argmax(seen[t]))
        run, u, gap = [t], t + 1, 0
        while u < n and gap <= LINK_GAP:
            if lone[u] and seen[u, side] and continues(run[-1], side, u, side):
                run, u, gap = run + [u], u + 1, 0
            elif seen[u].any():
                break
            else:
                gap, u = gap + 1, u + 1
        ends = ((run[0], -1), (run[-1], 1))
        links = {}
        for other in (side, 1 - side):
            links[other] = [continues(end, side, v, other) for end, step in ends
                            if (v := nearest(other, end, step)) is not None]
        if any(links[1 - side]) and not any(links[side]):
            runs.append((np.asarray(run), side))
        t = run[-1] + 1
    return runs


def relink_lone_hands(frames: "list[FrameLandmarks] | FrameStore") -> int:
    """Move, in place, each run of `lone_hand_runs` to the side its hand belongs to (the other side is empty there,
    so the two sides trade: `sides.swap_hands`). Returns the frames moved."""
    if not frames:
        return 0
    hands = stacked(frames, "hands_2d")
    ends = np.concatenate([hands[a:b, :, (0, 9), :2] for a, b in scratch.windows(len(frames))])   # wrist, knuckle
    moved = 0
    for run, _side in lone_hand_runs(ends[:, :, 0], np.linalg.norm(ends[:, :, 1] - ends[:, :, 0], axis=-1)):
        for t in run.tolist():
            frame = frames[t]
            swap_hands(frame)
            frames[t] = frame   # a `FrameStore` takes the swapped fields back (a list holds the same object)
            moved += 1
    return moved


def _read_without_body(out: FrameLandmarks, hands: list[HandObservation]) -> None:
    """A frame with no body: the whole frame's hands go on the sides their labels name (`hands_by_label`)."""
    for side, hand in hands_by_label(hands).items():
        _put_hand(out, side, hand, SRC_HANDS)


def _cannot_hold(pose_2d: np.ndarray, hands: list[HandObservation]) -> bool:
    """Whether a body is too small for the hands: a hand (wrist → middle knuckle) longer than the body's shoulder
    width (a real hand is about a third of it), or a body with no visible shoulders at all."""
    shoulders = pose_2d[[11, 12]]
    if not (np.isfinite(shoulders[:, :2]).all() and (np.nan_to_num(shoulders[:, 2]) >= 0.5).any()):
        return True
    width = float(np.linalg.norm(shoulders[0, :2] - shoulders[1, :2]))
    return any(float(np.linalg.norm(h.landmarks[9, :2] - h.landmarks[0, :2])) > width for h in hands)


def hands_by_label(hands: list[HandObservation]) -> dict[int, HandObservation]:
    """Hands-only frames: one hand per side by handedness; two hands with the same label → the more confident one
    keeps it and the other takes the free side (two people's same hands are the tracker's business)."""
    out: dict[int, HandObservation] = {}
    for hand in sorted(hands, key=lambda h: -h.score):
        side = hand.side if hand.side not in out else 1 - hand.side
        if side not in out:
            out[side] = hand
    return out


def assign_hand_tracks(hands: HandStore, image_size: tuple[int, int], min_length: int = 3) -> np.ndarray:
    """Hands-only clips: follow each hand with the tracker, then give each track one side for its whole life.
    Returns every hand's side, parallel to ``hands.rows`` (int8; −1: the hand is dropped).

    The hand network's label is unreliable frame by frame: it cannot tell a left palm from the back of a right hand
    when shading is weak, and it then gives two hands the same label. So each track votes with its labels, weighted
    by score × (1 where the frame's hands carry different labels or a hand is alone, 0.25 where two hands share a
    label), and sides go to tracks in order of vote strength so that no two tracks alive at the same time share a
    side. A track with no side left (a third hand) is dropped; so is a second hand of one track's side in a frame.

    The clip's hands stream into the tracker a frame at a time (`tracking.track_ids`) and every pass over them
    works a window of frames at a time (`scratch.windows`): nothing here is a Python object per frame or hand.
    """
    from .tracking import Detection, track_ids

    n = len(hands)
    starts = np.asarray(hands.offsets, dtype=np.int64)                          # (T + 1,)
    labels, ones = ("left", "right"), np.ones(N_HAND)

    def detections():
        for a, b in scratch.windows(n):
            for t in range(a, b):
                yield [Detection(keypoints=np.column_stack([h.landmarks[:, :2], ones]), score=h.score,
                                 label=labels[h.side]) for h in hands.frame(t)]

    result = track_ids(detections(), kind="hand", image_size=image_size, min_length=min_length)
    ids, sides, scores = result.ids, hands.rows["side"], hands.rows["score"]
    votes: dict[int, np.ndarray] = {}
    for a, b in scratch.windows(n):
        for t in range(a, b):
            lo, hi = int(starts[t]), int(starts[t + 1])
            shared = hi - lo > 1 and len(set(sides[lo:hi].tolist())) == 1
            for k in range(lo, hi):
                if ids[k] >= 0:
                    votes.setdefault(int(ids[k]), np.zeros(2))[sides[k]] += float(scores[k]) * (0.25 if shared else 1.0)
    info = result.tracks

    def overlap(a: int, b: int) -> bool:
        return info[a].first <= info[b].last and info[b].first <= info[a].last

    side_of: dict[int, int] = {}
    for tid in sorted(votes, key=lambda k: -abs(votes[k][0] - votes[k][1])):
        rivals = {side_of[o] for o in side_of if overlap(o, tid)}
        preferred = int(np.argmax(votes[tid]))
        for side in (preferred, 1 - preferred):
            if side not in rivals:
                side_of[tid] = side
                break
    out = np.full(len(ids), -1, np.int8)
    for t in range(n):
        taken: set[int] = set()
        for k in range(int(starts[t]), int(starts[t + 1])):
            given = side_of.get(int(ids[k]))
            if given is not None and given not in taken:
                out[k] = given
                taken.add(given)
    return out


def _backs_off(misses: int, after: int, every: int) -> bool:
    """Whether a search that has found nothing ``misses`` times in a row skips this frame: after ``after`` misses
    it runs only every ``every``-th frame."""
    late = misses - after
    return late >= 0 and late % every != 0


class Perception:
    """The detection stage for one capture mode: ``process(rgb, (width, height)) -> FrameLandmarks``.

    ``rescue_crops`` (body+hands): crop size in pixels the hand network sees around a body wrist whose hand Holistic
    missed; 0 disables the rescue.
    """

    #: Crop sizes tried around a wrist, as multiples of `hand_region`'s size: the palm detector wants the palm at
    #: about a quarter of the crop and some arm for context (measured on the benchmark's small-hand scenes: 1.4×
    #: finds 57% of the missed hands, 1.0× 39%, 2.0× 31%; together they find more).
    RESCUE_SCALES = (1.4, 1.0)
    #: The first crop of a side goes to a hand graph in tracking mode (`_rescue`); False sends every crop to the
    #: palm detector, as before session 20 (for measuring what tracking gives).
    RESCUE_TRACKING = True
    #: After this many wrist-crop searches in a row that found nothing on a side, its crops run only every
    #: RESCUE_BACKOFF_EVERY-th frame until they find it again: a hand that no crop finds (`wave`'s left hand,
    #: flat against the thigh) cost two palm detections a frame. Measured on six scenes of the benchmark: 1.2 s of
    #: 26 saved, 5 of 881 hand-frames lost (after 6: 6 lost, no faster).
    RESCUE_BACKOFF_AFTER = 10
    RESCUE_BACKOFF_EVERY = 3

    def _may_crop(self, side: int) -> bool:
        if not _backs_off(self._crop_misses[side], self.RESCUE_BACKOFF_AFTER, self.RESCUE_BACKOFF_EVERY):
            return True
        self._crop_misses[side] += 1
        self.searches_skipped += 1
        return False

    def __init__(self, mode: str = "body+hands", rescue_crop_px: int = 256, mirrored: bool = False,
                 graphs: bool = True):
        """``graphs=False`` (hands mode): no MediaPipe graph; the hands come from elsewhere (`add_hands`: the torch
        port's batched hand detector), and `finish` gives them their sides by track as usual."""
        if mode not in MODES:
            raise ValueError(f"unknown capture mode {mode!r}; choose one of {MODES}")
        if not graphs and mode != "hands":
            raise ValueError("only hands mode runs without MediaPipe's graphs")
        self.mode = mode
        self.mirrored = mirrored
        self.rescue_crop_px = rescue_crop_px
        self._graphs: list[_Graph] = []
        self._holistic = self._pose = self._hands = self._crop_hands = self._closeup_hands = None
        if mode == "body+hands":
            self._holistic = self._own(HolisticDetector(hands=True, face=False))
            self._crop_hands = self._own(HandsDetector(static=True, max_hands=2, min_detection=0.3,
                                                           mirrored=mirrored))
            self._hands = self._own(HandsDetector(static=True, max_hands=2, mirrored=mirrored))
            self._closeup_hands = self._own(HandsDetector(static=False, max_hands=2, mirrored=mirrored))
            self._crop_track = [self._own(HandsDetector(static=False, max_hands=1, min_detection=0.3,
                                                        mirrored=mirrored)) for _ in (LEFT, RIGHT)]
        elif mode == "body":
            self._pose = self._own(PoseDetector())
        elif graphs:
            self._hands = self._own(HandsDetector(static=False, max_hands=2, mirrored=mirrored))
        self._observed = HandStore()   # hands mode: every frame's hands, for `finish`
        self._image_size = (0, 0)
        self.rescued = 0          # hands found by wrist crops
        self.fallback_frames = 0  # body+hands frames without a body where the hand detector ran on the whole frame
        self.whole_frame_searches = 0  # frames with a body where a missing hand was found in the whole frame
        self.phantom_bodies = 0   # of those, frames whose body could not be the hands' and was dropped
        self.unmirrored = 0       # frames whose body the pose network had mirrored, swapped back by `finish`
        self.relinked = 0         # frames whose lone hand `finish` moved to the side it continues (`relink_lone_hands`)
        self.misplaced = 0        # hands cleared for sitting on the body's other wrist
        self.searches_skipped = 0  # side-frames skipped by the back-offs (`_may_search`, `_may_crop`)
        self._misses = [0, 0]     # frames in a row each side's hand has been missing
        self._crop_tracked = [False, False]   # whether each side's tracking crop graph found a hand last time
        self._crop_misses = [0, 0]            # wrist-crop searches in a row that found nothing, per side

    def _own(self, graph):
        self._graphs.append(graph)
        return graph

    def close(self) -> None:
        for graph in self._graphs:
            graph.close()

    def __enter__(self) -> "Perception":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def process(self, rgb: np.ndarray, scale_to: tuple[int, int]) -> FrameLandmarks:
        """One frame's landmarks. (`stream` gives the same, frame for frame, faster.)"""
        if self.mode == "body":
            return self._pose.process(rgb, scale_to)
        if self.mode == "hands":
            return self.add_hands(self._hands.process(rgb, scale_to), scale_to)
        return self._complete(rgb, scale_to, self._body(rgb, scale_to))

    def stream(self, frames: Iterable[tuple[np.ndarray, tuple[int, int]]]
               ) -> Iterator[tuple[np.ndarray, FrameLandmarks]]:
        """``(rgb, scale_to)`` frames in, ``(rgb, landmarks)`` out, in order: what `process` gives each frame.

        Body+hands mode runs as a two-stage pipeline: while one thread runs Holistic on frame t+1 (`_body`), another
        completes frame t (`_complete`: the hands Holistic missed, looked for in wrist crops and the whole frame).
        MediaPipe's graphs release the GIL and run their networks on one core each, so on a 2-core CPU the searches
        cost little more than Holistic alone. At most two frames are in flight (the pixels of the frame being
        completed and of the next one); the consumer's own work on a frame (the camera tracker) overlaps too."""
        if self.mode != "body+hands":
            for rgb, scale_to in frames:
                yield rgb, self.process(rgb, scale_to)
            return
        from concurrent.futures import ThreadPoolExecutor

        pending: collections.deque = collections.deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reel2rig-hands") as pool:
            try:
                for rgb, scale_to in frames:
                    body = self._body(rgb, scale_to)
                    pending.append((rgb, pool.submit(self._complete, rgb, scale_to, body)))
                    while len(pending) > 1:
                        done, future = pending.popleft()
                        yield done, future.result()
                while pending:
                    done, future = pending.popleft()
                    yield done, future.result()
            finally:
                for _, future in pending:
                    future.cancel()

    def _body(self, rgb: np.ndarray, scale_to: tuple[int, int]) -> FrameLandmarks:
        """Body+hands, first stage: Holistic (its pose and the hands it found on the pose's wrists). It runs on
        every frame: skipping it after frames without a body (a close-up of hands costs a pose detection a frame
        for nothing) was tried and lost `vid01`'s hand in 23% of its frames, the pose network's phantom bodies
        then going unchecked."""
        self._image_size = scale_to
        return self._holistic.process(rgb, scale_to)

    def _complete(self, rgb: np.ndarray, scale_to: tuple[int, int], out: FrameLandmarks) -> FrameLandmarks:
        """Body+hands, second stage: a frame without a body is read by the hand tracker; otherwise hands on the
        wrong arm are dropped and the missing ones looked for (wrist crops, then the whole frame when in doubt)."""
        if not np.isfinite(out.pose_2d[:, 0]).any():
            self.fallback_frames += 1
            found = self._closeup_hands.process(rgb, scale_to)
            _read_without_body(out, found)
            self._observed.append(found)   # `finish` gives these hands their sides by track
            return out
        self._observed.append([])
        self.misplaced += drop_misplaced_hands(out)
        drop_duplicate_hands(out, self.mirrored)
        if self.rescue_crop_px:
            self._rescue(rgb, scale_to, out)
        missing = [side for side in (LEFT, RIGHT) if out.hand_source[side] == SRC_NONE and self._may_search(side)]
        if missing and self._doubt(out.pose_2d, missing, scale_to):
            self._whole_frame(rgb, scale_to, out, missing)
        self.misplaced += drop_misplaced_hands(out)
        for side in (LEFT, RIGHT):
            self._misses[side] = self._misses[side] + 1 if out.hand_source[side] == SRC_NONE else 0
        return out

    #: After this many frames in a row in which a side's hand was not found, the whole-frame search for it runs
    #: only every SEARCH_BACKOFF_EVERY-th frame until it is found again: a hand outside the picture (an arm hanging
    #: below a close-up) would otherwise cost a whole-frame palm detection on every frame. (The wrist crops back off
    #: later, `RESCUE_BACKOFF_AFTER`: they find the small hands of full-body shots now and then, and backing them off
    #: this early lost 4–11 % of reach_overhead's hands.)
    SEARCH_BACKOFF_AFTER = 3
    SEARCH_BACKOFF_EVERY = 4

    def _may_search(self, side: int) -> bool:
        if not _backs_off(self._misses[side], self.SEARCH_BACKOFF_AFTER, self.SEARCH_BACKOFF_EVERY):
            return True
        self.searches_skipped += 1
        return False

    def add_hands(self, hands: list[HandObservation], scale_to: tuple[int, int]) -> FrameLandmarks:
        """Hands mode: one frame's hands (sides as their labels say, the subject's own) → its landmarks, sides
        provisional until `finish` decides them by track."""
        out = empty_frame()
        self._observed.append(hands)
        self._image_size = scale_to
        for side, hand in hands_by_label(hands).items():
            _put_hand(out, side, hand, SRC_HANDS)
        return out

    #: Below this wrist visibility the pose is unsure of that arm: its hand is searched for in the whole frame.
    DOUBT_VISIBILITY = 0.5
    #: A hand region at least this fraction of the frame's shorter side is a close-up: the whole-frame hand
    #: detector sees such a hand as well as a crop would.
    CLOSE_UP_REGION = 0.3

    def _doubt(self, pose_2d: np.ndarray, missing: list[int], scale_to: tuple[int, int]) -> bool:
        """Whether a missing hand is worth a whole-frame search: its wrist is unsure (the rescue crop, which needs
        a confident wrist, did not run) or its hand is a close-up's. Full-body shots with small hands skip it:
        there the whole frame would not find what the crop missed, and it costs a palm detection."""
        for side in missing:
            if np.nan_to_num(pose_2d[POSE_WRIST[side], 2]) < self.DOUBT_VISIBILITY:
                return True
            region = hand_region(pose_2d, side, min_visibility=0.0)
            if region is not None and region[1] >= self.CLOSE_UP_REGION * min(scale_to):
                return True
        return False

    def _whole_frame(self, rgb: np.ndarray, scale_to: tuple[int, int], out: FrameLandmarks,
                     missing: list[int]) -> None:
        """Search the whole frame for the missing hands. A hand that sits on a missing side's wrist goes there
        (even an unsure wrist: the hand network confirms it). When the body holds no hand at all and the frame's
        hands are too big for it to hold (`_cannot_hold`), the body is a phantom (the pose network's guess in a
        close-up of hands): it is dropped and the frame is read like one without a body."""
        found = self._hands.process(rgb, scale_to)
        if not found:
            return
        self.whole_frame_searches += 1
        taken = assign_to_wrists(found, out.pose_2d, sides=tuple(missing), min_visibility=0.0)
        for side, hand in taken.items():
            _put_hand(out, side, hand, SRC_HANDS)
        drop_duplicate_hands(out, self.mirrored)
        if (out.hand_source == SRC_NONE).all() and _cannot_hold(out.pose_2d, found):
            self.phantom_bodies += 1
            out.pose_2d[:] = np.nan
            out.pose_world[:] = np.nan
            _read_without_body(out, found)
            if len(self._observed):                  # `process` recorded this frame (as one with a body)
                self._observed.replace_last(found)

    def finish(self, frames: "list[FrameLandmarks] | FrameStore") -> None:
        """After the last frame: hands mode re-assigns sides by track over the whole clip (`assign_hand_tracks`);
        body+hands mode swaps back the frames where the pose network mirrored the body (`unmirror_by_chirality`),
        gives the hands of its frames without a body (close-ups) their sides by track the same way, instead of
        each frame's own labels, which swap when the hands cross, and last moves a lone hand that continues the other
        side's hand to that side (`relink_lone_hands`).
        `frames` are this detector's outputs, in order; they are updated in place."""
        if self.mode == "body+hands":
            self.unmirrored = unmirror_by_chirality(frames, self.mirrored)
        if self.mode != "body" and len(self._observed):
            if len(frames) != len(self._observed):
                raise ValueError("finish() needs every frame this detector processed, in order")
            self._sides_by_track(frames)
        if self.mode == "body+hands":
            self.relinked = relink_lone_hands(frames)

    def _sides_by_track(self, frames: "list[FrameLandmarks] | FrameStore") -> None:
        """Hands mode, and body+hands frames without a body: each hand's side from its track."""
        starts = self._observed.offsets
        if self.mode == "body+hands" and starts[-1] == 0:
            return                                    # every frame had a body: its wrists gave the sides
        sides = assign_hand_tracks(self._observed, self._image_size)
        for a, b in scratch.windows(len(frames)):
            for t in range(a, b):
                out = frames[t]   # a `FrameStore`'s frame is views into its arrays: the edits land there
                if self.mode == "body+hands" and (starts[t] == starts[t + 1] or np.isfinite(out.pose_2d[:, 0]).any()):
                    continue                          # a frame with a body (or no hands) keeps what it has
                for side in (LEFT, RIGHT):
                    _clear_hand(out, side)
                for k, hand in zip(range(starts[t], starts[t + 1]), self._observed.frame(t)):
                    if sides[k] >= 0:
                        _put_hand(out, int(sides[k]), hand, SRC_HANDS)
                frames[t] = out

    def _rescue(self, rgb: np.ndarray, scale_to: tuple[int, int], out: FrameLandmarks) -> None:
        """Run the hand network on an upscaled crop around each body wrist whose hand is missing.

        The first crop (``RESCUE_SCALES[0]``) goes to a per-side hand graph in tracking mode: the crop follows the
        body's wrist, so a hand it found in the previous crop sits in about the same place in this one, and the
        graph reads it again from its landmarks without the palm detector (measured on the benchmark's
        reach_overhead: its small raised hands found in 107 of 126 hand-frames instead of 90, in half the time).
        Where that finds nothing, the same crop (only if the graph had been tracking, and so skipped the palm
        detector) and the smaller ones go to the palm detector. A side whose crops keep finding nothing backs off
        (`_may_crop`). A close-up's hand (its region ≥ ``CLOSE_UP_REGION`` of the frame's shorter side) gets no
        crop: the crop would hold about the whole frame, which the whole-frame search (`_doubt`) looks at anyway
        (`hands_cross_closeup`: 1.4 s of 4.4 saved, 3 of 159 hand-frames lost)."""
        import cv2

        width, height = scale_to
        sx, sy = rgb.shape[1] / width, rgb.shape[0] / height       # frame px → rgb px (detection may downscale)
        for side in (LEFT, RIGHT):
            if out.hand_source[side] != SRC_NONE:
                continue
            region = hand_region(out.pose_2d, side)
            if region is None:
                continue
            centre, size = region
            if not (0 <= centre[0] < width and 0 <= centre[1] < height):
                continue                                       # the hand is outside the picture
            if size >= self.CLOSE_UP_REGION * min(scale_to):
                continue                    # a close-up's hand: the whole-frame search looks at what a crop would
            if not self._may_crop(side):
                continue
            first = self._crop_track[side] if self.RESCUE_TRACKING else self._crop_hands
            tries = [(self.RESCUE_SCALES[0], first)]
            if self.RESCUE_TRACKING and self._crop_tracked[side]:
                tries.append((self.RESCUE_SCALES[0], self._crop_hands))
            tries += [(factor, self._crop_hands) for factor in self.RESCUE_SCALES[1:]]
            n = self.rescue_crop_px
            for k, (factor, graph) in enumerate(tries):
                fwd, inv = crop_affine(centre, size * factor, n)
                fwd_rgb = np.concatenate([fwd[:, :2] @ np.diag([1 / sx, 1 / sy]), fwd[:, 2:]], axis=1)
                crop = cv2.warpAffine(rgb, fwd_rgb, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                found = graph.process(np.ascontiguousarray(crop), inv)
                if k == 0 and self.RESCUE_TRACKING:
                    self._crop_tracked[side] = bool(found)
                hand = assign_to_wrists(found, out.pose_2d, sides=(side,)).get(side)
                if hand is not None:
                    _put_hand(out, side, hand, SRC_WRIST_CROP)
                    self.rescued += 1
                    self._crop_misses[side] = 0
                    break
            else:
                self._crop_misses[side] += 1
        drop_duplicate_hands(out, self.mirrored)
