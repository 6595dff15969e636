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
``heldout``   9 clips: the standard suite's motions on other people, views, lights and cameras (640×480 but one),
              never tuned on.
``mocap``     5 clips of real motion capture held out of the motion network's training (CMU subjects 2 and 8:
              walks, a run, punches, a bend-and-scoop; bench/mocap_motions.py), 30 fps; needs ../shared/mocap.
``multi``     3 clips with several people (``Scene.others``) for multi-person tracking (scored with
              ``bench.metrics.track_metrics`` and ``hand_track_metrics``), 25 fps, 60-75 frames:
              ``multi_two_wave`` two people side by side 1.3 m apart facing the camera, one waving its right hand
              toward the other, who counts with both hands up (upper-body framing, 960×540, hands ~65 px);
              ``multi_cross`` two people walk across the picture in opposite directions (camera at 55 deg), the
              near one passing in front of the far one mid-clip (frames ~22-32); ``multi_three`` three people of
              different builds and skins, the third nearer the camera and cut by the picture's right edge (left out
              of the framing: 40-80 % of it in the picture).

People
------
Person 0 is the scene's own subject (``motion``, ``phenotype``, ``skin``): it starts above the world origin facing
−Y. Each :class:`Extra` in ``others`` is one more person (persons 1, 2, ... in the truth's ``people_*`` arrays), placed
relative to it: its start position is shifted by ``offset_m`` (world x, y metres; +X is the subject's left, the
image's right at ``view_yaw_deg`` 0; +Y is away from the camera), its whole motion is turned by ``yaw_deg`` about
its own root (added to the motion's heading; positive turns to its left) and played ``time_offset_s`` late (its
motion time is ``t - time_offset_s``, held at the motion's first pose before 0 and its last pose after its end;
negative: already that far into the motion at frame 0). The clip lasts until every person's motion has ended
(``max_frames`` caps it). A person with ``framed=False`` is left out of the camera's framing (it may be cut by the
picture's edge).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
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
class Extra:
    """Another person in a scene (see "People" above)."""
    motion: str                          # key of bench.motions.MOTIONS
    phenotype: str = "average"
    skin: str = "medium"
    offset_m: tuple[float, float] = (0.0, 0.0)   # start position (x, y) in the world relative to the subject's
    yaw_deg: float = 0.0                 # turn about world Z, added to the motion's own heading (+: to its left)
    time_offset_s: float = 0.0           # plays the motion this many seconds late (negative: early)
    framed: bool = True                  # False: the camera framing ignores this person

    def __post_init__(self) -> None:
        # Like Scene, the motion name is checked when the scene is rendered (bench.motions needs numpy).
        if not isinstance(self.motion, str) or not self.motion:
            raise ValueError(f"extra person: motion must be a name, not {self.motion!r}")
        for value, allowed in ((self.phenotype, PHENOTYPES), (self.skin, SKIN_TONES)):
            if value not in allowed:
                raise ValueError(f"extra person: {value!r} is not one of {sorted(allowed)}")
        if len(self.offset_m) != 2 or not all(math.isfinite(float(v)) for v in self.offset_m):
            raise ValueError(f"extra person: offset_m must be two finite metres (x, y), not {self.offset_m!r}")
        if not (math.isfinite(float(self.yaw_deg)) and math.isfinite(float(self.time_offset_s))):
            raise ValueError("extra person: yaw_deg and time_offset_s must be finite")
        object.__setattr__(self, "offset_m", (float(self.offset_m[0]), float(self.offset_m[1])))


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
    others: tuple[Extra, ...] = ()       # more people (persons 1, 2, ...); see "People" above

    def __post_init__(self) -> None:
        checks = [(self.phenotype, PHENOTYPES), (self.skin, SKIN_TONES), (self.lighting, LIGHTING),
                  (self.background, BACKGROUNDS), (self.camera, CAMERAS), (self.framing, FRAMINGS)]
        for value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"scene {self.name!r}: {value!r} is not one of {sorted(allowed)}")
        others = tuple(self.others)
        if not all(isinstance(o, Extra) for o in others):
            raise ValueError(f"scene {self.name!r}: others must be Extra descriptions")
        object.__setattr__(self, "others", others)

    def key(self) -> str:
        """The render cache key: a hash of the description, the renderer version and the source of the code that
        decides the pixels and the truth (motions, renderer), so editing either re-renders."""
        sources = ("motions.py", "render.py") + (("mocap_motions.py",) if self.plays_mocap() else ())
        code = hashlib.sha256(b"".join((_HERE / n).read_bytes() for n in sources)).hexdigest()
        blob = json.dumps({"scene": dataclasses.asdict(self), "render": RENDER_VERSION, "code": code},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def plays_mocap(self) -> bool:
        """Whether a person of the scene plays a CMU motion (bench/mocap_motions.py: registered before rendering)."""
        return any(m.startswith("cmu_") for m in (self.motion, *(o.motion for o in self.others)))

    def describe(self) -> str:
        w, h = self.resolution
        return (f"{self.motion}, {self.framing} framing, {w}x{h}, {self.camera} camera"
                f"{f' at {self.view_yaw_deg:+.0f} deg' if self.view_yaw_deg else ''}, {self.phenotype}, "
                f"{self.skin} skin, {self.lighting} light, {self.background} background"
                + "".join(f"; + {o.motion} ({o.phenotype}, {o.skin} skin) at ({o.offset_m[0]:+.1f}, "
                          f"{o.offset_m[1]:+.1f}) m{f', turned {o.yaw_deg:+.0f} deg' if o.yaw_deg else ''}"
                          f"{f', {o.time_offset_s:+.2f} s late' if o.time_offset_s else ''}"
                          f"{'' if o.framed else ', unframed'}" for o in self.others))


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
    # Fast motion: is a punch smeared? (not in the standard suite, whose figures it would change)
    "fast": [
        Scene("punch", "punch", resolution=HD, background="textured", seed=90),
        Scene("punch_side", "punch", view_yaw_deg=50, background="cluttered", phenotype="muscular_male",
              skin="brown", seed=91),
    ],
    # Held out: the standard suite's motions on new people, views, lights and cameras, never used to tune
    # anything (the fit's weights and the perception's thresholds were chosen on "standard"); it tells how much of
    # the standard suite's figures is tuning.
    "heldout": [
        Scene("ho_walk_34", "walk", view_yaw_deg=-30, phenotype="slim_short_female", skin="dark", lighting="rim",
              background="cluttered", seed=70),
        Scene("ho_wave", "wave", resolution=HD, phenotype="older_male", skin="olive", lighting="basic",
              background="textured", view_yaw_deg=15, seed=71),
        Scene("ho_squat_side", "squat", view_yaw_deg=40, phenotype="young_female", skin="light",
              lighting="outdoor", seed=72),
        Scene("ho_jump_handheld", "jump", camera="shake", phenotype="tall_heavy_male", lighting="flat",
              seed=73),
        Scene("ho_sit_pan", "sit_down", camera="pan", view_yaw_deg=-20, phenotype="female",
              skin="dark", background="textured", seed=74),
        Scene("ho_fist_open", "fist_open", framing="upper", phenotype="muscular_male", skin="light",
              lighting="rim", seed=75),
        Scene("ho_count_34", "count", framing="upper", view_yaw_deg=30, skin="brown",
              background="cluttered", lighting="basic", seed=76),
        Scene("ho_spread_closeup", "spread_wiggle", framing="hands", skin="olive",
              background="cluttered", seed=77),
        Scene("ho_fist_closeup", "fist_open", framing="hands", phenotype="female", skin="dark",
              lighting="outdoor", seed=78),
    ],
    # Real motion held out of the motion network's training: CMU subjects 2 and 8 (bench/mocap_motions.py; needs
    # ../shared/mocap), the average body, at the packs' 30 fps.
    "mocap": [
        Scene("cmu_walk_34", "cmu_walk", fps=30, view_yaw_deg=-30, skin="light", background="textured", seed=80),
        Scene("cmu_stride_pan", "cmu_stride", fps=30, camera="pan", view_yaw_deg=60, skin="dark",
              lighting="outdoor", seed=81),
        Scene("cmu_run", "cmu_run", fps=30, view_yaw_deg=20, skin="olive", background="cluttered", seed=82),
        Scene("cmu_punch", "cmu_punch", fps=30, resolution=HD, skin="brown", lighting="rim", seed=83),
        Scene("cmu_scoop_handheld", "cmu_scoop", fps=30, camera="shake", view_yaw_deg=35, lighting="basic",
              background="textured", seed=84),
    ],
    "multi": [
        # Side by side 1.3 m apart, facing the camera: the subject waves with its right hand, toward the other
        # person, who counts with both hands up (hands ~0.5 m apart across the gap).
        Scene("multi_two_wave", "wave", framing="upper", resolution=(960, 540), max_frames=75,
              background="textured", seed=60,
              others=(Extra("count", phenotype="female", skin="brown", offset_m=(-1.3, 0.0)),)),
        # Two walkers in opposite directions, seen from 55 deg: the second starts where the subject's walk ends
        # (1.42 m along its heading), 1.1 m farther from the camera, and walks back; they pass at ~1.2 s, the
        # subject in front.
        Scene("multi_cross", "walk", view_yaw_deg=55.0, phenotype="muscular_male", skin="light", seed=61,
              others=(Extra("walk", phenotype="young_female", skin="dark", offset_m=(1.37, -0.71),
                            yaw_deg=180.0),)),
        # Three builds and skins; the third stands nearer, at the right, left out of the framing: the picture's
        # edge cuts it.
        Scene("multi_three", "reach_overhead", max_frames=75, phenotype="older_male", skin="light",
              background="textured", lighting="outdoor", seed=62,
              others=(Extra("squat", phenotype="slim_short_female", skin="dark", offset_m=(-1.2, 0.8),
                            time_offset_s=-0.2),
                      Extra("turn", phenotype="tall_heavy_male", skin="olive", offset_m=(1.5, -0.3),
                            time_offset_s=0.3, framed=False))),
    ],
}


def suite(name: str) -> list[Scene]:
    if name not in SUITES:
        raise SystemExit(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    return SUITES[name]
