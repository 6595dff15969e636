"""The benchmark's scenes and suites: what is rendered, from where, on whom. Standard library only.

A scene is a frozen description; everything rendered from it is deterministic (its ``seed`` drives the only
randomness: background clutter, textures and handheld shake). Rendered scenes are cached under
``<cache>/bench/scenes/<name>-<key>/`` where the key hashes the description and ``RENDER_VERSION``, so editing a
scene or the renderer re-renders it and nothing else.

Suites
------
``smoke``     two short clips (a body motion and a hand motion), rendered in about a minute; the test suite runs it.
``standard``  24 clips: every body and hand motion, phenotypes, skin tones, lighting, plain / textured / cluttered
              backgrounds, 640×480 and 1280×720, static / panning / handheld cameras, full-body, upper-body and
              hand close-up framings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent
RENDER_VERSION = 2  # bump when the renderer's output for the same scene changes

# Anny phenotype parameters, each in [0, 1] (0.5 = the model's average). Anny's gender runs from 0 = male to
# 1 = female. The render cache key holds a scene's names, not these values: edit a value → bump RENDER_VERSION.
PHENOTYPES: dict[str, dict[str, float]] = {
    "average": {},
    "female": {"gender": 1.0, "height": 0.45, "weight": 0.45},
    "tall_heavy_male": {"gender": 0.0, "height": 0.85, "weight": 0.8, "muscle": 0.6},
    "slim_short_female": {"gender": 0.9, "height": 0.2, "weight": 0.25},
    "older_male": {"gender": 0.1, "age": 0.85, "weight": 0.6},
    "muscular_male": {"gender": 0.0, "muscle": 0.9, "weight": 0.6, "height": 0.6},
    "young_female": {"gender": 0.95, "age": 0.35, "weight": 0.4},
}

# Linear-RGB-ish flat skin colours from light to dark (Workbench shades them with its studio light).
SKIN_TONES: dict[str, tuple[float, float, float]] = {
    "light": (0.92, 0.70, 0.60),
    "medium": (0.80, 0.56, 0.44),
    "olive": (0.66, 0.47, 0.32),
    "brown": (0.45, 0.29, 0.19),
    "dark": (0.26, 0.16, 0.11),
}

# Workbench lighting: (light mode, studio light file, rotation about Z in degrees, cast shadows)
LIGHTING: dict[str, tuple[str, str, float, bool]] = {
    "studio": ("STUDIO", "studio.sl", 0.0, True),
    "outdoor": ("STUDIO", "outdoor.sl", 60.0, True),
    "rim": ("STUDIO", "rim.sl", -40.0, False),
    "basic": ("STUDIO", "basic.sl", 150.0, True),
    "flat": ("FLAT", "", 0.0, False),
}

BACKGROUNDS = ("plain", "textured", "cluttered")
CAMERAS = ("static", "pan", "shake")
FRAMINGS = ("full", "upper", "hands")


@dataclasses.dataclass(frozen=True)
class Scene:
    name: str
    motion: str                          # key of bench.motions.MOTIONS
    framing: str = "full"                # full body | upper body (head to hips) | hands close-up
    resolution: tuple[int, int] = (640, 480)   # (width, height) pixels
    fps: int = 25
    max_frames: int | None = None        # None: the motion's whole duration
    phenotype: str = "average"
    skin: str = "medium"
    lighting: str = "studio"
    background: str = "plain"
    camera: str = "static"               # static | pan (turns to follow the subject) | shake (handheld)
    view_yaw_deg: float = 0.0            # camera azimuth around the subject; 0 = straight in front
    focal_scale: float = 1.0             # focal length = focal_scale × the longer image side (pixels)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(self.phenotype, PHENOTYPES), (self.skin, SKIN_TONES), (self.lighting, LIGHTING),
                  (self.background, BACKGROUNDS), (self.camera, CAMERAS), (self.framing, FRAMINGS)]
        for value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"scene {self.name!r}: {value!r} is not one of {sorted(allowed)}")

    def key(self) -> str:
        """The render cache key: a hash of the description, the renderer version and the source of the code that
        decides the pixels and the truth (motions, renderer), so editing either re-renders."""
        code = hashlib.sha256(b"".join((_HERE / n).read_bytes() for n in ("motions.py", "render.py"))).hexdigest()
        blob = json.dumps({"scene": dataclasses.asdict(self), "render": RENDER_VERSION, "code": code},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def describe(self) -> str:
        w, h = self.resolution
        return (f"{self.motion}, {self.framing} framing, {w}x{h}, {self.camera} camera"
                f"{f' at {self.view_yaw_deg:+.0f} deg' if self.view_yaw_deg else ''}, {self.phenotype}, "
                f"{self.skin} skin, {self.lighting} light, {self.background} background")


HD, SD = (1280, 720), (640, 480)

SUITES: dict[str, list[Scene]] = {
    "smoke": [
        Scene("smoke_wave", "wave", max_frames=36, seed=1),
        Scene("smoke_count", "count", framing="upper", max_frames=36, background="textured", seed=2),
    ],
    "standard": [
        # --- body motions, full-body framing
        Scene("walk", "walk", resolution=HD, background="textured", seed=10),
        Scene("walk_pan", "walk", resolution=HD, camera="pan", view_yaw_deg=60, background="cluttered",
              phenotype="female", skin="brown", seed=11),
        Scene("turn", "turn", phenotype="tall_heavy_male", skin="light", seed=12),
        Scene("wave", "wave", background="plain", lighting="flat", seed=13),
        Scene("wave_handheld", "wave", resolution=HD, camera="shake", background="textured", skin="dark", seed=14),
        Scene("reach_overhead", "reach_overhead", phenotype="older_male", background="textured",
              lighting="outdoor", seed=15),
        Scene("squat", "squat", resolution=HD, phenotype="muscular_male", background="cluttered", skin="olive",
              seed=16),
        Scene("sit_down", "sit_down", phenotype="slim_short_female", background="textured", view_yaw_deg=25,
              seed=17),
        Scene("jump", "jump", resolution=HD, lighting="outdoor", skin="brown", seed=18),
        Scene("arms_cross", "arms_cross", background="cluttered", skin="light", lighting="rim", seed=19),
        Scene("arms_cross_34", "arms_cross", resolution=HD, view_yaw_deg=-35, background="textured",
              phenotype="young_female", focal_scale=1.4, seed=20),
        Scene("reach_handheld", "reach_overhead", resolution=HD, camera="shake", phenotype="female",
              lighting="basic", seed=21),
        # --- hand motions, upper-body framing
        Scene("count", "count", framing="upper", resolution=HD, seed=30),
        Scene("fist_open", "fist_open", framing="upper", background="textured", skin="dark", seed=31),
        Scene("pinch_ok", "pinch_ok", framing="upper", resolution=HD, background="cluttered",
              phenotype="female", seed=32),
        Scene("point_thumbs_up", "point_thumbs_up", framing="upper", skin="olive", lighting="outdoor", seed=33),
        Scene("spread_wiggle", "spread_wiggle", framing="upper", resolution=HD, background="textured",
              phenotype="older_male", lighting="basic", seed=34),
        Scene("hands_cross", "hands_cross", framing="upper", background="cluttered", skin="brown", seed=35),
        # --- hands seen in full-body shots
        Scene("count_full", "count", resolution=HD, background="textured", phenotype="tall_heavy_male", seed=40),
        Scene("fist_open_full", "fist_open", skin="light", seed=41),
        Scene("spread_wiggle_pan", "spread_wiggle", resolution=HD, camera="pan", view_yaw_deg=20,
              background="cluttered", seed=42),
        # --- hand close-ups (hands fill the frame; the face is at the top edge)
        Scene("pinch_ok_closeup", "pinch_ok", framing="hands", resolution=HD, background="textured", seed=50),
        Scene("point_thumbs_closeup", "point_thumbs_up", framing="hands", camera="shake", skin="medium",
              seed=51),
        Scene("hands_cross_closeup", "hands_cross", framing="hands", resolution=HD, lighting="rim",
              phenotype="young_female", seed=52),
    ],
}


def suite(name: str) -> list[Scene]:
    if name not in SUITES:
        raise SystemExit(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    return SUITES[name]
