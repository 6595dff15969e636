"""The capture pipeline: video → detect (MediaPipe Holistic) → fit (Anny skeleton) → Take.

May import torch, mediapipe, cv2, anny (lazily, inside functions). Never bpy.

Stages are cached per (video content hash, stage options) in ``<cache>/stages``: a re-run after a crash, a cancel
or a change of a later option (e.g. smoothing) skips detection. Cache entries are written atomically and only when
complete, so a killed engine never leaves a half-written entry behind.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

ProgressFn = Callable[[str, int, int, float], None]  # (stage, done, total, frames_per_second)
CancelledFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised inside the pipeline when the caller asked to stop; caches stay consistent."""


CAPTURE_MODELS = ("anny", "smpl", "smplh", "smplx", "anny_hand", "mano")
SPACES = ("world", "camera")
MOTIONS = ("fit", "network", "prior")
HAND_MESH = ("off", "init")
DETECTORS = ("auto", "mediapipe", "torch")
HAND_MODELS = ("anny_hand", "mano")   # hands mode only: one Take per hand, each hand placed in the camera


@dataclasses.dataclass(frozen=True)
class CaptureOptions:
    mode: str = "body+hands"          # "body+hands" | "hands" | "body" (see detect.py)
    focal_px: float | None = None     # camera focal length in pixels; None = the one the file records, else the
                                      # longer image side (capture.camera_intrinsics)
    actor_height_m: float | None = None  # the actor's height (metres, soles to the top of the head): the Anny body
                                      # is made that tall (anny_skeleton.phenotype_for_height), which sets the
                                      # scale a single camera cannot see — the depth, the path's length, the
                                      # feet's steps; None = Anny's average body (1.63 m)
    frame_start: int = 0
    frame_end: int | None = None      # exclusive; None = to the end
    max_side: int = 1280              # frames larger than this are downscaled for detection
    smoothing: float = 0.5            # 0 = none, 1 = strong
    device: str = "cpu"               # fit on "cpu", "cuda" or "auto" (CUDA when there is one)
    fps: float | None = None          # frame rate of an image sequence (default 30); ignored for video files
    use_cache: bool = True            # False: recompute detection even when a cached result exists (benchmarks)
    people: int = 1                   # body modes: 1 = the main person (Holistic); N > 1 = up to N people, 0 = all
                                      # (multi-person path, one Take per person; see people.py)
    model: str = "anny"               # model of the Take: "anny", or "smpl", "smplh", "smplx" from model_dir
                                      # (carried over from the Anny fit; see body_models.transfer_from_anny);
                                      # hands mode also "anny_hand" or "mano": one Take per hand (HAND_MODELS)
    model_dir: str | None = None      # folder with the user's MANO/SMPL family files (or REEL2RIG_MODEL_DIR)
    space: str = "world"              # "world": the camera's own motion taken out, feet planted, the root pushed by
                                      # the feet (world.py); "camera": the motion as the camera saw it, camera still
    foot_lock: bool = True            # pin planted feet in the Take (two-bone IK on the legs; world.py)
    motion: str = "prior"             # the body's motion: "prior" (the fit, fit.py + world.py, started from the
                                      # learned motion network's body; README › The learned motion network),
                                      # "fit" (the fit from its closed-form start) or "network" (the network's body
                                      # and world, motion_stage.py; the hands stay fitted). Hands mode: the fit
                                      # (no body to start from); "network" is refused there
    motion_model: str | None = None   # the network's ONNX file (default: $REEL2RIG_MOTION_MODEL, then the one
                                      # shipped in inference_server/weights/)
    hand_mesh: str = "off"            # "init": the learned hand-mesh network's 21 points (on crops around the found
                                      # hands) give the fingers' 3D shape in place of MediaPipe's world landmarks
                                      # (inference_server/hand_mesh/stage.py); "off": MediaPipe's
    hand_mesh_model: str | None = None  # its ONNX file (default: $REEL2RIG_HAND_MESH_MODEL, then the shipped one)
    detector: str = "auto"            # the landmark networks' runtime: "mediapipe" (MediaPipe's own graphs, frame
                                      # by frame, one person: detect.py), "torch" (the same networks ported to torch,
                                      # batched over frames, on CUDA when there is one: people.py, models/blaze.py),
                                      # "auto": torch for hands mode when torch sees a CUDA GPU, else mediapipe — the
                                      # faster one where both are as good (README › Perception: on a CPU MediaPipe's
                                      # runtime is faster; the torch body path swaps hands more often)

    @classmethod
    def from_dict(cls, data: dict | None) -> "CaptureOptions":
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown capture options {unknown}; known: {sorted(names)}")
        out = cls(**data)
        if out.model not in CAPTURE_MODELS:
            raise ValueError(f"option 'model' must be one of {list(CAPTURE_MODELS)}, not {out.model!r}")
        if out.model in HAND_MODELS and out.mode != "hands":
            raise ValueError(f"the {out.model} model is a hand model: use it with mode 'hands' (one Take per hand), "
                             f"or a body model (anny, smpl, smplh, smplx) for mode {out.mode!r}")
        if out.motion not in MOTIONS:
            raise ValueError(f"option 'motion' must be one of {list(MOTIONS)}, not {out.motion!r}")
        if out.motion == "network" and out.mode == "hands":
            raise ValueError("the motion network drives the body: use it with the body or body+hands mode")
        if out.hand_mesh not in HAND_MESH:
            raise ValueError(f"option 'hand_mesh' must be one of {list(HAND_MESH)}, not {out.hand_mesh!r}")
        if out.detector not in DETECTORS:
            raise ValueError(f"option 'detector' must be one of {list(DETECTORS)}, not {out.detector!r}")
        if out.space not in SPACES:
            raise ValueError(f"option 'space' must be one of {list(SPACES)}, not {out.space!r}")
        if out.actor_height_m is not None and not (isinstance(out.actor_height_m, (int, float))
                                                   and math.isfinite(out.actor_height_m) and out.actor_height_m > 0):
            raise ValueError(f"option 'actor_height_m' must be a positive number of metres or null, "
                             f"not {out.actor_height_m!r}")
        if isinstance(out.people, int) and out.people < 0:
            raise ValueError(f"option 'people' must be 0 (everyone) or a positive count, not {out.people}")
        return out

    def detector_backend(self) -> str:
        """"mediapipe" or "torch": ``detector`` with "auto" resolved — torch for hands mode on a CUDA GPU (its
        hands match MediaPipe's on the benchmark's close-ups), MediaPipe otherwise: on a CPU its runtime is the
        faster, and the torch port's body path still swaps hands more often than MediaPipe's Holistic path
        (README › Perception)."""
        if self.detector != "auto":
            return self.detector
        if self.mode != "hands":
            return "mediapipe"
        import torch

        return "torch" if torch.cuda.is_available() else "mediapipe"

    @property
    def multi_person(self) -> bool:
        """True when this capture follows several people (the multi-person path)."""
        return self.people != 1 and self.mode != "hands"


@dataclasses.dataclass
class CaptureResult:
    take_path: Path
    sidecar_path: Path
    frames: int
    seconds: float
    stages: dict  # stage -> {"seconds": float, "fps": float}
    people: list = dataclasses.field(default_factory=list)  # multi-person: every person's Take, main one first
    hands: list = dataclasses.field(default_factory=list)   # hand models: every hand's Take, main one first


def run_capture(video: Path, out_dir: Path, options: CaptureOptions, progress: ProgressFn,
                cancelled: CancelledFn) -> CaptureResult:
    """Run every stage; raise protocol.RpcError (application codes) for bad input, Cancelled on cancel."""
    from .capture import run

    return run(Path(video), Path(out_dir), options, progress, cancelled)
