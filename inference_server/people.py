"""Several people in one clip: every person's body and hands, each person followed with one track id. No bpy.

MediaPipe's legacy graphs (Holistic, Pose) follow one person. This path is built on the networks themselves, ported
to torch (`models.blaze`), and runs batched over frames (the same code on CPU and CUDA).

Per batch of frames (`MultiPerson.process_batch`)
-------------------------------------------------
1. **People**: ``pose_detection`` on every frame keeps every person (best first, at most ``max_people``); each
   detection's ROI goes through ``pose_landmark_full`` — all ROIs of all frames in one network call.
2. **Recovery**: a person seen in the previous frame that no pose of this frame covers (IoU of the landmark boxes
   < ``RECOVER_IOU``) is looked for again inside the ROI its previous landmarks give for this frame (MediaPipe's own
   tracking step, ``next_roi``): a face turned away or a missed detection does not end a person. A person recovered
   ``MAX_RECOVER`` frames in a row without a detection is let go (the ROI would otherwise drift on background).
3. **Duplicates**: two poses whose visible landmarks lie within ``DUPLICATE_OKS`` (object keypoint similarity at
   0.1 × the person's scale) of each other are one person: the more present one stays.
4. **Hands** (``hands=True``): for each person and side with a visible wrist, a ROI from the pose's wrist, index
   and pinky landmarks (`hand_rois_from_pose`) goes through ``hand_landmark_full``; the ROI those landmarks give
   (MediaPipe's ``HandLandmarksToRect``) then goes through the network again, which centres and scales the crop on
   the hand, and the second result is kept when it is at least as present. A hand belongs to the wrist it sits on
   (`detect.assign_to_wrists` over the hands found around both of the person's wrists): left and right are the
   subject's own, and a hand around one person's wrist that is really a neighbour's is refused.
   This is also the "small hands" path: the hand network sees a 224² crop of the hand however small it is in the
   frame, with no palm detector in the way. Where the pose's crop finds nothing (its wrist is far off), the palm
   detector searches a wider crop around the wrist or elbow (`_palm_retry`); a hand still missing is then looked for,
   frame by frame, on the ROI the same hand had in the previous frame.

After the clip (`track_people`): `tracking.track` (kind ``body``) gives every pose a track id through crossings and
brief occlusions; tracks are ordered by how many frames they cover (the main subject first). On each track, frames
where the pose network mirrored the body are swapped back (`sides.mirrored_frames`), then frames where the two hands
traded sides (`sides.swapped_hands`). Each track's hands are
its own (they were found on its wrists), so a hand's track id is (person track, side).

Coordinates: like `detect.FrameLandmarks` — pixels of the full frame (``scale_to``), even when the detector ran
on a downscaled image.
"""
from __future__ import annotations

import array
import contextlib
import dataclasses
import math
from typing import Sequence

import numpy as np

from . import scratch
from .sides import mirrored_frames, swap_hands, swapped_hands, unmirror
from .detect import (LEFT, N_HAND, N_POSE, POSE_ELBOW, POSE_INDEX, POSE_PINKY, POSE_WRIST, RIGHT, SRC_WRIST_CROP,
                     FrameLandmarks, FrameStore, HandObservation, assign_to_wrists, empty_frame, subject_side)

RECOVER_IOU = 0.3          # a previous person counts as covered by a pose of this frame above this box IoU
MAX_RECOVER = 30           # frames a person may be followed on ROIs alone, without a fresh detection
DUPLICATE_OKS = 0.5        # two poses this similar are the same person
MIN_WRIST_VISIBILITY = 0.0  # a wrist below this visibility gets no hand ROI (hands in front of the body
                           # get low wrist visibility yet are there: the hand network's presence decides)
HAND_ROI_SCALE = 2.6       # ROI side = this × |wrist → mean(index, pinky)| (pose landmarks), at least ...
HAND_ROI_FOREARM = 0.9     # ... this × the forearm (elbow → wrist) in the picture
HAND_ROI_TORSO = 0.6       # ... and this × the torso (mid-shoulders → mid-hips), which no foreshortening of the arm
                           # shrinks (a hand is about 0.4 torsos long; the crop wants twice the palm and room for
                           # the pose's wrist error)
RETRY_SCALE = 1.4          # palm retry: crop side = this × detect.hand_region's size ...
RETRY_CROP_PX = 256        # ... resampled to this many pixels; at least RETRY_TORSO × the torso, centred on the
RETRY_TORSO = 1.6          # elbow when that is the larger (a forearm is about 0.55 torsos, a hand 0.4)
HAND_ROI_SHIFT = 0.75      # ROI centre = wrist + this × (mean(index, pinky) − wrist)


@dataclasses.dataclass
class Person:
    """One person in one frame (full-frame pixels)."""
    landmarks: FrameLandmarks
    score: float              # pose presence
    detected: bool            # False: recovered from the previous frame's ROI
    next_roi: np.ndarray      # (5,) px of the detector's image: where this person should be next frame
    box: np.ndarray           # (4,) x0, y0, x1, y1 full-frame px of the visible landmarks
    recovered_run: int = 0    # frames in a row this person was recovered without a detection
    hand_votes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))
    # per wrist [left, right]: +score when the hand network's own label agrees with that side, −score when not


def _landmark_box(px: np.ndarray, vis: np.ndarray, min_vis: float = 0.3) -> np.ndarray:
    seen = px[(vis >= min_vis) & np.isfinite(px[:, 0])]
    if len(seen) < 2:
        seen = px[np.isfinite(px[:, 0])]
    if len(seen) == 0:
        return np.full(4, np.nan)
    return np.array([seen[:, 0].min(), seen[:, 1].min(), seen[:, 0].max(), seen[:, 1].max()])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if not (iw > 0 and ih > 0):
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def pose_similarity(a: np.ndarray, b: np.ndarray, kappa: float = 0.1) -> float:
    """OKS of two poses ``(33, 3)`` (x, y px, visibility) over landmarks visible in both, σ = κ × scale, the scale
    being the square root of the larger landmark box's area. 0 when fewer than 3 landmarks are shared."""
    both = (np.nan_to_num(a[:, 2]) >= 0.3) & (np.nan_to_num(b[:, 2]) >= 0.3) & np.isfinite(a[:, 0] + b[:, 0])
    if both.sum() < 3:
        return 0.0
    boxes = [_landmark_box(p[:, :2], np.nan_to_num(p[:, 2])) for p in (a, b)]
    scale = max(math.sqrt(max((bx[2] - bx[0]) * (bx[3] - bx[1]), 1.0)) for bx in boxes)
    d2 = ((a[both, :2] - b[both, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * (kappa * scale) ** 2)).mean())


def _torso(pose_px: np.ndarray) -> float:
    """Mid-shoulders → mid-hips in px (0 when not seen)."""
    d = pose_px[[11, 12], :2].mean(0) - pose_px[[23, 24], :2].mean(0)
    return float(np.linalg.norm(d)) if np.isfinite(d).all() else 0.0


def hand_rois_from_pose(pose_px: np.ndarray, side: int) -> np.ndarray | None:
    """A ROI ``(cx, cy, w, h, rotation)`` px for the hand landmark network from a pose ``(33, 3)`` (x, y,
    visibility): rotated so wrist → mean(index, pinky) points up (the network's convention, like palm ROIs),
    centred ``HAND_ROI_SHIFT`` of the way there, side ``max(HAND_ROI_SCALE × that distance, HAND_ROI_FOREARM ×
    forearm)`` — the forearm term keeps a foreshortened hand (pointing at the camera) from getting a tiny crop.
    None when the wrist is not visible."""
    w = pose_px[POSE_WRIST[side]]
    if not (np.isfinite(w[:2]).all() and np.nan_to_num(w[2]) >= MIN_WRIST_VISIBILITY):
        return None
    tip = np.nanmean(pose_px[[POSE_INDEX[side], POSE_PINKY[side]], :2], axis=0)
    e = pose_px[POSE_ELBOW[side], :2]
    forearm = float(np.linalg.norm(w[:2] - e)) if np.isfinite(e).all() else 0.0
    if not np.isfinite(tip).all() or np.linalg.norm(tip - w[:2]) < 1e-3:
        if forearm <= 0:
            return None
        tip = w[:2] + (w[:2] - e) * 0.4          # no hand points: continue the forearm
    d = tip - w[:2]
    reach = float(np.linalg.norm(d))
    # MediaPipe's rotation: target angle (90°, up) minus the angle of d with y flipped (image y points down).
    rotation = math.pi / 2 - math.atan2(-d[1], d[0])
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    size = max(HAND_ROI_SCALE * reach, HAND_ROI_FOREARM * forearm, HAND_ROI_TORSO * _torso(pose_px), 16.0)
    c = w[:2] + HAND_ROI_SHIFT * d
    return np.array([c[0], c[1], size, size, rotation])


class MultiPerson:
    """Every person's pose (and hands) per frame, batched. ``process_batch(frames, scale_to)`` returns, per frame,
    the people found (`Person`); consecutive calls continue the same clip (recovery uses the previous frame)."""

    def __init__(self, device: str = "cpu", max_people: int | None = None, hands: bool = True,
                 min_detection: float = 0.5, max_batch: int = 32, tiles: int = 0):
        """``tiles`` = g > 1: people are also detected on g × g overlapping tiles of each frame (`BlazePose`)."""
        from .models.blaze import BlazeHands, BlazePose

        self.pose = BlazePose(device=device, max_people=max_people, min_detection=min_detection,
                              max_batch=max_batch, tiles=tiles)
        self.hands = BlazeHands(device=device, max_batch=max_batch) if hands else None
        self.max_people = max_people
        self._previous: list[Person] = []
        self._prev_hands: list[tuple[np.ndarray, dict[int, np.ndarray]]] = []   # (box, side → next ROI)
        self.recovered = 0        # poses found on a previous frame's ROI (no detection)
        self.hand_second_pass = 0  # hands whose second (landmark-derived) crop was kept
        self.hand_tracked = 0      # hands found on the previous frame's hand ROI
        self.hand_palm_retry = 0      # hands found by the palm detector around a wrist after the pose's crop missed
        self._palm = None

    def reset(self) -> None:
        """Forget the previous frame (a new clip starts): no person or hand is recovered from it."""
        self._previous, self._prev_hands = [], []

    # -------------------------------------------------------------------------------------------------- frames
    def process_batch(self, frames: Sequence[np.ndarray], scale_to: tuple[int, int]) -> list[list[Person]]:
        """frames: RGB uint8 ``(H, W, 3)``, all the same size; scale_to: (width, height) of the full frame."""
        if not len(frames):
            return []
        with _cpu_threads(self.pose.device):
            return self._process(frames, scale_to)

    def _process(self, frames: Sequence[np.ndarray], scale_to: tuple[int, int]) -> list[list[Person]]:
        h, w = frames[0].shape[:2]
        scale = np.array([scale_to[0] / w, scale_to[1] / h])
        detected = self.pose.detect(frames)                      # per frame: list[PoseResult]
        out: list[list[Person]] = []
        for f, results in enumerate(detected):
            people = [self._person(r, scale, detected=True) for r in results]
            people = self._recover(frames[f], people, scale)
            people = _drop_duplicates(people)
            if self.max_people is not None:
                people = people[:self.max_people]
            out.append(people)
            self._previous = people
        if self.hands is not None:
            self._add_hands(frames, out, scale)
        return out

    def _person(self, r, scale: np.ndarray, detected: bool, run: int = 0) -> Person:
        lm = empty_frame()
        lm.pose_2d[:, :2] = r.landmarks_px[:, :2] * scale
        lm.pose_2d[:, 2] = r.visibility
        lm.pose_world[:] = r.world
        return Person(lm, float(r.presence), detected, np.asarray(r.next_roi, dtype=np.float64),
                      _landmark_box(lm.pose_2d[:, :2], lm.pose_2d[:, 2]), run)

    def _recover(self, rgb: np.ndarray, people: list[Person], scale: np.ndarray) -> list[Person]:
        lost = [p for p in self._previous
                if p.recovered_run < MAX_RECOVER and np.isfinite(p.next_roi).all()
                and not any(box_iou(p.box, q.box) >= RECOVER_IOU for q in people)]
        if not lost:
            return people
        found = self.pose.landmarks_in_rois([rgb], [np.stack([p.next_roi for p in lost])])[0]
        for p, r in zip(lost, found):
            if r is not None:
                people.append(self._person(r, scale, detected=False, run=p.recovered_run + 1))
                self.recovered += 1
        return people

    # --------------------------------------------------------------------------------------------------- hands
    def _add_hands(self, frames: Sequence[np.ndarray], out: list[list[Person]], scale: np.ndarray) -> None:
        """Hand landmarks around every person's wrists: two batched passes over the whole batch, then, frame by
        frame, a tracking pass for the hands still missing on the ROI of the same hand in the previous frame."""
        inv = 1.0 / scale
        jobs: list[tuple[int, int, int, int]] = []                # (frame, person, side, ROI index in the frame)
        rois: list[list[np.ndarray]] = [[] for _ in frames]
        for f, people in enumerate(out):
            for k, person in enumerate(people):
                for side in (LEFT, RIGHT):
                    roi = hand_rois_from_pose(person.landmarks.pose_2d, side)
                    if roi is None:
                        continue
                    jobs.append((f, k, side, len(rois[f])))
                    rois[f].append(_to_detector(roi, inv))
        first = self._hand_pass(frames, rois)
        # Where the pose's wrist was too far off for the crop (a hand held on the chest, a blurred arm), the palm
        # detector looks for the hand in a wide crop around the wrist, as the single-person rescue does.
        misses = [(f, i, out[f][k].landmarks.pose_2d, side) for f, k, side, i in jobs if first[f][i] is None]
        for (f, i, _, _), hand in zip(misses, self._palm_retry(frames, misses, inv)):
            if hand is not None:
                first[f][i] = hand
                self.hand_palm_retry += 1
        # Second pass on the ROI the first pass's landmarks give (where the first found a hand).
        rois2 = [[r.next_roi if r is not None and np.isfinite(r.next_roi).all() else np.full(5, np.nan)
                  for r in res] for res in first]
        second = self._hand_pass(frames, rois2)
        found: dict[tuple[int, int], list[tuple[HandObservation, np.ndarray]]] = {}
        for f, k, side, i in jobs:
            a, b = first[f][i], second[f][i]
            best = b if b is not None and (a is None or b.presence >= a.presence) else a
            if best is None:
                continue
            if best is b:
                self.hand_second_pass += 1
            found.setdefault((f, k), []).append(self._observation(best, scale))
        for f, people in enumerate(out):
            hand_rois: list[dict[int, np.ndarray]] = []
            for k, person in enumerate(people):
                chosen = self._assign(person, found.get((f, k), []), (LEFT, RIGHT))
                missing = [s for s in (LEFT, RIGHT) if s not in chosen]
                tracked = self._previous_hand_rois(person, missing)
                if tracked:
                    res = self.hands.landmarks_in_rois([frames[f]], [np.stack(list(tracked.values()))])[0]
                    extra = [self._observation(r, scale) for r in res if r is not None]
                    more = self._assign(person, extra, tuple(tracked))
                    self.hand_tracked += len(more)
                    chosen.update(more)
                hand_rois.append({s: roi for s, (_, roi) in chosen.items()})
            self._prev_hands = [(p.box, r) for p, r in zip(people, hand_rois)]

    @staticmethod
    def _observation(r, scale: np.ndarray) -> tuple[HandObservation, np.ndarray]:
        pts = r.landmarks_px.copy()
        pts[:, :2] *= scale
        pts[:, 2] *= scale[0]
        return HandObservation(pts, r.world, subject_side(r.handedness_label), float(r.presence)), r.next_roi

    @staticmethod
    def _assign(person: Person, hands: list[tuple[HandObservation, np.ndarray]], sides: tuple[int, ...]
                ) -> dict[int, tuple[HandObservation, np.ndarray]]:
        """Put the hands that sit on this person's wrists on their sides (`assign_to_wrists`); returns side →
        (hand, its next ROI in detector px)."""
        if not hands:
            return {}
        lm = person.landmarks
        roi_of = {id(h): roi for h, roi in hands}
        chosen = assign_to_wrists(_unique_hands([h for h, _ in hands]), lm.pose_2d, sides=sides,
                                  min_visibility=MIN_WRIST_VISIBILITY, min_size=_torso(lm.pose_2d))
        for side, hand in chosen.items():
            person.hand_votes[side] = hand.score if hand.side == side else -hand.score
            lm.hands_2d[side] = hand.landmarks
            lm.hands_world[side] = hand.world
            lm.hand_score[side] = hand.score
            lm.hand_source[side] = SRC_WRIST_CROP
        return {side: (hand, roi_of[id(hand)]) for side, hand in chosen.items()}

    def _previous_hand_rois(self, person: Person, sides: list[int]) -> dict[int, np.ndarray]:
        """The previous frame's ROIs of this person's hands on ``sides`` (the person = the previous one whose box
        overlaps most, IoU ≥ RECOVER_IOU)."""
        if not sides or not self._prev_hands:
            return {}
        ious = [box_iou(person.box, box) for box, _ in self._prev_hands]
        best = int(np.argmax(ious))
        if ious[best] < RECOVER_IOU:
            return {}
        prev = self._prev_hands[best][1]
        return {s: prev[s] for s in sides if s in prev and np.isfinite(prev[s]).all()}

    def _palm_retry(self, frames: Sequence[np.ndarray], misses: list, inv: np.ndarray) -> list:
        """Palm detection + hand landmarks on a crop around each missed wrist (`detect.hand_region` × RETRY_SCALE,
        or RETRY_TORSO torsos around the elbow when the pose's forearm is implausibly short), resampled to
        `RETRY_CROP_PX`²; each result is mapped back to the detector's image. One per miss, or None."""
        import cv2

        from .detect import crop_affine, hand_region

        crops, back = [], []
        for f, _, pose_2d, side in misses:
            region = hand_region(pose_2d, side, min_visibility=0.0)
            if region is None:
                crops.append(None)
                back.append(None)
                continue
            centre, size = region
            torso = _torso(pose_2d)
            if RETRY_TORSO * torso > size * RETRY_SCALE:  # the pose's forearm looks short: it may be wrong, so look
                elbow = pose_2d[POSE_ELBOW[side], :2]      # anywhere a forearm's reach from the elbow
                centre = elbow if np.isfinite(elbow).all() else centre
            side_px = max(size * RETRY_SCALE, RETRY_TORSO * torso)
            fwd, inv_aff = crop_affine(centre * inv, side_px * inv[0], RETRY_CROP_PX)
            crops.append(cv2.warpAffine(frames[f], fwd, (RETRY_CROP_PX, RETRY_CROP_PX), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT))
            back.append(inv_aff)
        todo = [j for j, c in enumerate(crops) if c is not None]
        results: list = [None] * len(misses)
        if not todo:
            return results
        if self._palm is None:
            from .models.blaze import BlazeHands
            self._palm = BlazeHands(device=self.hands.device, max_hands=2, min_detection=0.3,
                                    max_batch=self.hands.max_batch, nets=self.hands._nets)
        found = self._palm.detect([crops[j] for j in todo])
        for j, hands in zip(todo, found):
            if not hands:
                continue
            a = back[j]                                   # crop px → detector px: x' = a[0,0] x + a[0,2], likewise y
            pose_det = misses[j][2].copy()
            pose_det[:, :2] = pose_det[:, :2] * inv
            best, best_d = None, np.inf
            for h in hands:
                h.landmarks_px = h.landmarks_px.copy()
                h.landmarks_px[:, 0] = a[0, 0] * h.landmarks_px[:, 0] + a[0, 2]
                h.landmarks_px[:, 1] = a[1, 1] * h.landmarks_px[:, 1] + a[1, 2]
                h.landmarks_px[:, 2] *= a[0, 0]
                h.next_roi = np.array([a[0, 0] * h.next_roi[0] + a[0, 2], a[1, 1] * h.next_roi[1] + a[1, 2],
                                       h.next_roi[2] * a[0, 0], h.next_roi[3] * a[1, 1], h.next_roi[4]])
                d = float(np.linalg.norm(h.landmarks_px[0, :2] - pose_det[POSE_WRIST[misses[j][3]], :2]))
                if d < best_d:
                    best, best_d = h, d
            results[j] = best
        return results

    def _hand_pass(self, frames: Sequence[np.ndarray], rois: list[list[np.ndarray]]) -> list[list]:
        arrays = [np.stack(r) if r else np.zeros((0, 5)) for r in rois]
        return self.hands.landmarks_in_rois(list(frames), arrays)


@contextlib.contextmanager
def _cpu_threads(device):
    """One torch thread for these small networks on CPU: measured here, two threads run them 1.5–3× slower
    (the batches are too small to split and the threads fight over the two cores with the decoder)."""
    import torch

    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _to_detector(roi: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """A ROI in full-frame px → the detector's (possibly downscaled) px."""
    out = roi.copy()
    out[:2] *= inv
    out[2:4] *= inv[0]
    return out


def _unique_hands(hands: list[HandObservation]) -> list[HandObservation]:
    """Both wrists' crops may find the same hand (hands together): keep one copy, the more present."""
    kept: list[HandObservation] = []
    for h in sorted(hands, key=lambda x: -x.score):
        length = max(float(np.linalg.norm(h.landmarks[9, :2] - h.landmarks[0, :2])), 1.0)
        if all(np.linalg.norm(h.landmarks[:, :2] - k.landmarks[:, :2], axis=-1).mean() > 0.3 * length
               for k in kept):
            kept.append(h)
    return kept


def _drop_duplicates(people: list[Person]) -> list[Person]:
    """Keep detected poses before recovered ones, then the more present; drop a pose too similar to a kept one."""
    kept: list[Person] = []
    for p in sorted(people, key=lambda q: (not q.detected, -q.score)):
        if all(pose_similarity(p.landmarks.pose_2d, q.landmarks.pose_2d) < DUPLICATE_OKS for q in kept):
            kept.append(p)
    return kept


class PeopleStore:
    """Every person found in every frame of a clip (`MultiPerson`'s `Person`s, less what only the next frame needs)
    as whole-clip columns (`tracking.ArrayRows`: on disk for a long clip) instead of a Python object per person and
    frame: the landmarks' fields (`FrameLandmarks`, the detectors' own dtypes), ``score``, ``detected``, ``box`` and
    ``hand_votes``. ``len(store)`` counts frames; frame t's people are rows ``offsets[t]:offsets[t + 1]``."""

    FIELDS = FrameStore.FIELDS

    def __init__(self) -> None:
        from .tracking import ArrayRows

        blank = empty_frame()
        self.rows = ArrayRows({**{name: np.asarray(getattr(blank, name)).dtype.type for name in self.FIELDS},
                               "score": np.float64, "detected": np.bool_, "box": np.float64,
                               "hand_votes": np.float64})
        self.offsets = array.array("q", [0])

    def append(self, people: list[Person]) -> None:
        """One frame's people, in order."""
        for p in people:
            self.rows.append(**{name: getattr(p.landmarks, name) for name in self.FIELDS}, score=p.score,
                             detected=p.detected, box=p.box, hand_votes=p.hand_votes)
        self.offsets.append(len(self.rows))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def landmarks(self, k: int) -> FrameLandmarks:
        """Row k's landmarks (views into the columns)."""
        return FrameLandmarks(*(self.rows[name][k] for name in self.FIELDS))


def batches(items, size: int):
    """Lists of up to ``size`` consecutive items of an iterable, read lazily (one list in memory at a time)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def detect_stream(detector: MultiPerson, frames, batch_size: int, on_batch=None, on_frames=None
                  ) -> tuple[PeopleStore, float]:
    """Run ``detector`` over an iterable of ``(rgb, (width, height))`` in batches of ``batch_size`` frames (the
    stream is read batch by batch: memory stays at one batch of frames). ``on_batch(done, seconds)`` after each batch;
    ``on_frames(frames, people)`` with the batch's frames and their people (not timed: the camera tracker).
    Returns the people of every frame (a `PeopleStore`: whole-clip columns, no object per person and frame) and the
    seconds spent detecting (reading the stream excluded)."""
    import time

    found = PeopleStore()
    seconds = 0.0
    for chunk in batches(frames, batch_size):
        batch, size = [rgb for rgb, _ in chunk], chunk[-1][1]
        t0 = time.perf_counter()
        people = detector.process_batch(batch, size)
        seconds += time.perf_counter() - t0
        for frame in people:
            found.append(frame)
        if on_frames is not None:
            on_frames(batch, people)
        if on_batch is not None:
            on_batch(len(found), seconds)
    return found, seconds


# ------------------------------------------------------------------------------------------------------- tracks
@dataclasses.dataclass
class PersonTrack:
    """One person over the clip: per-frame landmarks (NaN where the person is absent)."""
    track_id: int               # 0 = the person seen in most frames
    frames: FrameStore          # T frames, whole-clip arrays (on disk for a long clip)
    present: np.ndarray          # (T,) bool
    detected: np.ndarray         # (T,) bool: present and from a fresh detection (not recovered)
    mirrored: np.ndarray         # (T,) bool: frames whose left/right labels were swapped back (`sides`)


def track_people(people: PeopleStore, image_size: tuple[int, int], min_length: int = 5,
                 max_people: int | None = None) -> list[PersonTrack]:
    """Follow every person with `tracking.track_ids`; one `PersonTrack` per kept track, most frames first.

    The people stream into the tracker a frame at a time and each track's frames are written into a `FrameStore`
    a window of frames at a time: nothing here is a Python object per frame (README › Batch figures)."""
    from .tracking import Detection, track_ids

    n = len(people)
    starts = np.asarray(people.offsets, dtype=np.int64)                       # (T + 1,)
    pose, score, box = people.rows["pose_2d"], people.rows["score"], people.rows["box"]

    def detections():
        for a, b in scratch.windows(n):
            for t in range(a, b):
                yield [Detection(keypoints=pose[k].copy(), score=float(score[k]), box=box[k].copy())
                       for k in range(starts[t], starts[t + 1])]

    result = track_ids(detections(), kind="body", image_size=image_size, min_length=min(min_length, max(n, 1)))
    order = sorted(result.tracks, key=lambda tid: (-result.tracks[tid].n_frames, tid))
    if max_people is not None:
        order = order[:max_people]
    rank_of = {tid: rank for rank, tid in enumerate(order)}
    stores = [FrameStore(n) for _ in order]
    present = [scratch.empty((n,), np.bool_) for _ in order]
    detected = [scratch.empty((n,), np.bool_) for _ in order]
    votes = [scratch.empty((n, 2), np.float64) for _ in order]
    blank = empty_frame()
    for a, b in scratch.windows(n):
        for t in range(a, b):
            rows = {rank_of[int(tid)]: k for k, tid in zip(range(starts[t], starts[t + 1]), result[t].tolist())
                    if int(tid) in rank_of}
            for rank, store in enumerate(stores):
                k = rows.get(rank)
                store.append(blank if k is None else people.landmarks(k))
                present[rank][t] = k is not None
                detected[rank][t] = k is not None and bool(people.rows["detected"][k])
                votes[rank][t] = 0.0 if k is None else people.rows["hand_votes"][k]
    tracks = []
    for rank, frames in enumerate(stores):
        mirrored = mirrored_frames(frames.array("pose_2d"), votes[rank])
        for t in np.flatnonzero(mirrored):
            frame = frames[t]
            unmirror(frame)
            frames[t] = frame
        flipped = votes[rank][mirrored]
        votes[rank][mirrored] = -flipped[:, ::-1]
        traded = swapped_hands(frames.array("hands_2d"), votes[rank])
        for t in np.flatnonzero(traded):
            frame = frames[t]
            swap_hands(frame)
            frames[t] = frame
        tracks.append(PersonTrack(rank, frames, present[rank], detected[rank], mirrored ^ traded))
        scratch.trim()
    return tracks


__all__ = ["MultiPerson", "Person", "PeopleStore", "PersonTrack", "batches", "detect_stream", "track_people",
           "hand_rois_from_pose", "pose_similarity", "box_iou", "N_POSE", "N_HAND"]
