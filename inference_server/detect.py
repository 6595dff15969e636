"""Landmark detection with MediaPipe Holistic (CPU, legacy `mp.solutions` graph). No bpy.

Output per frame, NaN where nothing was seen:
    pose_2d      (33, 3)      x, y in pixels of the full frame, visibility in [0, 1]
    pose_world   (33, 3)      metres, hip-centred, camera-aligned axes (x right, y down, z forward)
    hands_2d     (2, 21, 3)   [left, right] of the SUBJECT: x, y pixels, z relative depth in pixels (x scale)

Holistic attaches each hand to the pose's wrist of the same side; pose landmarks are anatomical (the subject's own
left/right), so Holistic's ``left_hand_landmarks`` is the subject's left hand — no selfie-mirroring swap is needed
here (that swap applies to the stand-alone Hands solution's handedness labels).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .protocol import MODEL_MISSING, RpcError

N_POSE = 33
N_HAND = 21
LEFT, RIGHT = 0, 1


@dataclasses.dataclass
class FrameLandmarks:
    pose_2d: np.ndarray     # (33, 3)
    pose_world: np.ndarray  # (33, 3)
    hands_2d: np.ndarray    # (2, 21, 3)


def _empty() -> FrameLandmarks:
    return FrameLandmarks(np.full((N_POSE, 3), np.nan), np.full((N_POSE, 3), np.nan),
                          np.full((2, N_HAND, 3), np.nan))


class HolisticDetector:
    """Wraps one MediaPipe Holistic graph in video (tracking) mode. Not thread-safe: one per job."""

    def __init__(self, hands: bool = True):
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RpcError(MODEL_MISSING, f"MediaPipe is not installed in the engine's Python ({exc})") from exc
        self._hands = hands
        # model_complexity=1 is the pose model shipped inside the wheel (0 and 2 download at run time).
        self._graph = mp.solutions.holistic.Holistic(
            static_image_mode=False, model_complexity=1, smooth_landmarks=True, refine_face_landmarks=False,
            min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def close(self) -> None:
        self._graph.close()

    def __enter__(self) -> "HolisticDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def process(self, rgb: np.ndarray, scale_to: tuple[int, int]) -> FrameLandmarks:
        """Detect on an RGB image; pixel outputs are scaled to `scale_to` = (width, height) of the source frame."""
        out = _empty()
        rgb.flags.writeable = False
        res = self._graph.process(rgb)
        width, height = scale_to
        if res.pose_landmarks is not None:
            lm = res.pose_landmarks.landmark
            out.pose_2d[:] = [(p.x * width, p.y * height, p.visibility) for p in lm]
        if getattr(res, "pose_world_landmarks", None) is not None:
            out.pose_world[:] = [(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark]
        if self._hands:
            for side, hand in ((LEFT, res.left_hand_landmarks), (RIGHT, res.right_hand_landmarks)):
                if hand is not None:
                    # MediaPipe's z shares x's normalisation (image width).
                    out.hands_2d[side] = [(p.x * width, p.y * height, p.z * width) for p in hand.landmark]
        return out
