"""The batch's settings: one frozen record made from the command line, shipped to every worker (local or Ray).

No bpy, no torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

#: What ``--format`` takes. ``npz`` is the Take itself (always kept; naming it is allowed for clarity).
FORMATS = ("fbx", "bvh", "glb", "gltf", "blend", "npz")
FBX_PRESETS = ("default", "unity", "unreal")
DEVICES = ("auto", "cpu", "cuda")
BODY_MODELS = ("anny", "smpl", "smplh", "smplx")


class SettingsError(Exception):
    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.fix = fix


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    out: Path
    formats: tuple[str, ...] = ("fbx",)
    rig: Path | None = None            # a .blend holding the character; None = Reel2Rig's own Anny armature
    rig_object: str | None = None      # the armature's object name in it (None: its only armature)
    bone_map: str = "AUTO"             # a map id of rigs/maps (or a preset), AUTO = detect
    fbx_preset: str = "default"
    device: str = "auto"               # where the engine fits: auto = CUDA when there is one
    mode: str = "body+hands"
    smoothing: float = 0.5
    space: str = "world"
    foot_lock: bool = True
    sequence_fps: float | None = None  # frame rate of image-sequence clips (default 30)
    presets_dir: Path | None = None    # bone-map presets of the studio's own rigs
    thumbnails: bool = True
    clip_timeout_s: float | None = None  # a clip running longer is stopped and reported (None: no limit)
    part_frames: int = 9000            # Blender step: longer Takes are built and exported in parts of this many
                                       # frames (5 min at 30 fps), so its memory does not grow with the clip; 0 = whole
    model: str = "anny"                # body model of the Takes: anny, or smpl / smplh / smplx from model_dir
    model_dir: Path | None = None      # the studio's licensed SMPL-family files (or $REEL2RIG_MODEL_DIR)
    motion: str = "prior"              # the body's motion: prior (the fit started from the motion network's body;
                                       # the engine's default), fit (the fit alone) or network (the network's)
    motion_model: Path | None = None   # the motion network's .onnx (None: the engine's default)
    actor_height_m: float | None = None  # the actor's height in metres, the same for every clip (None: Anny's
                                       # average body)

    @staticmethod
    def parse_formats(text: str) -> tuple[str, ...]:
        formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise SettingsError(f"unknown format(s) {', '.join(bad)}", f"--format takes a list of {', '.join(FORMATS)}")
        return formats

    @staticmethod
    def parse_rig(text: str | None) -> tuple[Path | None, str | None]:
        """``character.blend`` or ``character.blend:Armature`` → (absolute path, object name)."""
        if not text:
            return None, None
        path, sep, name = text.rpartition(":") if ".blend:" in text else (text, "", "")
        rig = Path(path).expanduser().absolute()
        if rig.suffix.lower() != ".blend":
            raise SettingsError(f"--rig {text}: not a .blend file", "give the .blend that holds your character, "
                                "optionally with the armature's name: --rig character.blend:Armature")
        if not rig.is_file():
            raise SettingsError(f"--rig {text}: {rig} does not exist", "check the path of the character's .blend")
        return rig, (name or None) if sep else None

    @property
    def exports(self) -> tuple[str, ...]:
        """The formats Blender writes (everything but the Take)."""
        return tuple(f for f in self.formats if f != "npz")

    def capture_options(self, device: str | None = None) -> dict:
        """The engine's capture options (pipeline.CaptureOptions fields)."""
        options = {"mode": self.mode, "smoothing": self.smoothing, "space": self.space,
                   "foot_lock": self.foot_lock, "device": device or self.device}
        if self.sequence_fps:
            options["fps"] = self.sequence_fps
        if self.motion != "prior":                     # the engine's default
            options["motion"] = self.motion
        if self.motion != "fit" and self.motion_model is not None:
            options["motion_model"] = str(self.motion_model)
        if self.actor_height_m is not None:
            options["actor_height_m"] = self.actor_height_m
        if self.model != "anny":
            options["model"] = self.model
            if self.model_dir is not None:
                options["model_dir"] = str(self.model_dir)
        return options

    @staticmethod
    def check_motion(motion: str, motion_model: str | None) -> Path | None:
        """The motion network's file for ``--motion network|prior`` (None for the fit): given, or the engine's default
        (``$REEL2RIG_MOTION_MODEL``, then the one shipped in ``inference_server/weights/``); it must exist."""
        if motion == "fit":
            return None
        from inference_server.motion_infer import default_model_path

        path = Path(motion_model).expanduser().absolute() if motion_model else default_model_path()
        if not path.is_file():
            raise SettingsError(f"--motion {motion}: the motion network {path} does not exist",
                                "train one (python -m inference_server.motion_train --out DIR) and pass "
                                "--motion-model DIR/motion_net.onnx, or use --motion fit")
        return path

    @staticmethod
    def check_model(model: str, model_dir: str | None, environ: dict | None = None) -> Path | None:
        """The model folder for ``--model`` (None for Anny). One Take per clip: hand models are refused."""
        import os

        environ = dict(os.environ) if environ is None else environ
        if model not in BODY_MODELS:
            raise SettingsError(f"--model {model}", f"the batch takes a body model ({', '.join(BODY_MODELS)}); hand "
                                "models (anny_hand, mano) make one Take per hand: capture those in the add-on or with "
                                "./reel2rig capture --mode hands")
        if model == "anny":
            return None
        folder = model_dir or environ.get("REEL2RIG_MODEL_DIR", "")
        if not folder:
            raise SettingsError(f"--model {model} needs its model files",
                                "give the folder of your licensed files with --model-dir DIR (or set "
                                "REEL2RIG_MODEL_DIR); Anny (the default) needs none")
        path = Path(folder).expanduser().absolute()
        if not path.is_dir():
            raise SettingsError(f"--model-dir {folder}: no such folder", "give the folder that holds the model files")
        return path

    def key(self) -> str:
        """A hash of everything that changes a clip's outputs: a finished clip is redone when it differs."""
        rig_stamp = None
        if self.rig is not None and self.rig.is_file():
            stat = self.rig.stat()
            rig_stamp = [str(self.rig), self.rig_object, stat.st_size, stat.st_mtime]
        data = {"formats": sorted(self.formats), "rig": rig_stamp, "map": self.bone_map, "fbx": self.fbx_preset,
                "capture": self.capture_options("-"), "thumbnails": self.thumbnails,
                "part_frames": self.part_frames}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, data: dict) -> "BatchSettings":
        """The inverse of :meth:`to_json` (what a Ray worker receives)."""
        data = dict(data)
        for name in ("out", "rig", "presets_dir", "model_dir", "motion_model"):
            data[name] = Path(data[name]) if data.get(name) else None
        data["formats"] = tuple(data.get("formats", ()))
        return cls(**data)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in data.items()}
