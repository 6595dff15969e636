"""Reel2Rig's properties: per-scene capture settings (saved in the .blend) and the window manager's run status
(not saved). bpy; registered from addon.CLASSES, pointers added by :func:`register_pointers`."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty


def _rig_map_items(self: object, context: bpy.types.Context | None) -> list[tuple[str, str, str]]:
    from .operators import rig_map_items

    return rig_map_items(self, context)


class REEL2RIG_PG_settings(bpy.types.PropertyGroup):
    """What to capture (Scene.reel2rig)."""

    source: EnumProperty(  # type: ignore[valid-type]
        name="Source", description="Where the footage comes from",
        items=(("FILE", "File", "A video file on disk", "FILE_MOVIE", 0),
               ("CLIP", "Movie Clip", "A Movie Clip already in this .blend (its video or image sequence)",
                "SEQUENCE", 1),
               ("SEQUENCE", "Images", "A folder of numbered images (PNG/JPG), one per frame", "IMAGE_DATA", 2)),
        default="FILE")
    video_path: StringProperty(  # type: ignore[valid-type]
        name="Video", description="Clip to turn into animation", subtype="FILE_PATH", default="")
    movie_clip: PointerProperty(  # type: ignore[valid-type]
        name="Movie Clip", description="A Movie Clip of this file to capture", type=bpy.types.MovieClip)
    sequence_dir: StringProperty(  # type: ignore[valid-type]
        name="Image Folder", description="Folder of numbered images, in name order, one per frame",
        subtype="DIR_PATH", default="")
    sequence_fps: FloatProperty(  # type: ignore[valid-type]
        name="Frame Rate", description="Frames per second of the image sequence", default=30.0, min=1.0,
        max=240.0)
    use_frame_range: BoolProperty(  # type: ignore[valid-type]
        name="Frame Range", description="Capture only part of the footage", default=False)
    frame_first: IntProperty(  # type: ignore[valid-type]
        name="First", description="First frame of the footage to capture (1 = its first frame)", default=1, min=1)
    frame_last: IntProperty(  # type: ignore[valid-type]
        name="Last", description="Last frame of the footage to capture (included)", default=250, min=1)
    target: EnumProperty(  # type: ignore[valid-type]
        name="Target", description="What the captured motion goes onto",
        items=(("NEW", "New Character", "A new armature (and Anny mesh) with a camera matching the footage"),
               ("SELECTED", "Selected Armature", "Retarget onto the armature selected when the capture starts, "
                "through the Bone Map below (Auto finds it); its current action is kept")),
        default="NEW")
    mode: EnumProperty(  # type: ignore[valid-type]
        name="Mode", description="What to track",
        items=(("body+hands", "Body + Hands", "Full body with fingers"),
               ("hands", "Hands", "Hands only, for close-ups; the body stays at rest"),
               ("body", "Body", "Body only; hands stay at rest")),
        default="body+hands")
    model: EnumProperty(  # type: ignore[valid-type]
        name="Model", description="Body or hand model the capture is fitted to",
        items=(("anny", "Anny", "Anny's body with fingers: built in, no download. In Hands mode both hands move on a "
                "body at rest"),
               ("anny_hand", "Anny Hand", "Hands mode: one armature per hand (Anny's hand), placed where the hand "
                "is in the picture. Built in"),
               ("mano", "MANO", "Hands mode: one MANO armature per hand; needs the MANO files in the Model Files "
                "folder (preferences)"),
               ("smpl", "SMPL", "Body; needs the SMPL file in the Model Files folder (preferences)"),
               ("smplh", "SMPL-H", "Body with fingers; needs the SMPL-H file in the Model Files folder"),
               ("smplx", "SMPL-X", "Body with fingers; needs the SMPL-X file in the Model Files folder")),
        default="anny")
    people: IntProperty(  # type: ignore[valid-type]
        name="People", description="How many people to capture, one armature each (0 = everyone in the clip; "
        "1 = the main person). Not used in Hands mode",
        default=1, min=0, soft_max=8)
    smoothing: FloatProperty(  # type: ignore[valid-type]
        name="Smoothing", description="Temporal smoothing of the fitted motion (0 = none, 1 = strong)",
        default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    space: EnumProperty(  # type: ignore[valid-type]
        name="Space", description="Where the motion lives",
        items=(("world", "World", "The camera's own turning taken out (panning, handheld), feet planted on a level "
                "floor, the body travelling the way its feet push it; the camera is animated to match the footage"),
               ("camera", "Camera", "The motion as the camera saw it; the camera stays still")),
        default="world")
    motion: EnumProperty(  # type: ignore[valid-type]
        name="Body Motion", description="How the body's motion is made (the hands are always fitted to the picture)",
        items=(("prior", "Learned + Fit", "The learned motion network's body, refined by fitting it to the picture "
                "(the most accurate overall)"),
               ("fit", "Fit", "Fitting alone, frame by frame, then smoothed"),
               ("network", "Learned", "The learned motion network's body as it is: the least foot sliding, less "
                "exact in the picture; World space only")),
        default="prior")
    plant_feet: BoolProperty(  # type: ignore[valid-type]
        name="Plant Feet", description="Pin feet that touch the floor in the capture (the legs bend to reach)",
        default=True)
    retarget_take: StringProperty(  # type: ignore[valid-type]
        name="Take", description="Take to apply to the selected armature; empty: the last capture's",
        subtype="FILE_PATH", default="")
    rig_map: EnumProperty(  # type: ignore[valid-type]
        name="Bone Map", description="Which bone of the armature plays which joint",
        items=_rig_map_items)
    foot_lock: BoolProperty(  # type: ignore[valid-type]
        name="Lock Feet", description="Keep feet planted while they touch the ground (the legs bend to reach)",
        default=False)
    focal_px: FloatProperty(  # type: ignore[valid-type]
        name="Focal Length (px)",
        description="Camera focal length in pixels; 0 uses the one the file records (EXIF, an iPhone video's "
                    "metadata), else estimates it from the frame size",
        default=0.0, min=0.0, soft_max=10000.0)
    actor_height: FloatProperty(  # type: ignore[valid-type]
        name="Actor Height (m)",
        description="The actor's height in metres (soles to the top of the head). One camera cannot tell a small "
                    "person near it from a tall one further away: this sets how far away they are and how far they "
                    "travel. 0: Anny's average body (1.63 m)",
        default=0.0, min=0.0, max=3.0, soft_min=0.0, soft_max=2.2, step=1, precision=2)


class REEL2RIG_PG_status(bpy.types.PropertyGroup):
    """The capture running now and the last outcome (WindowManager.reel2rig_status; runtime only)."""

    running: BoolProperty(name="Running", default=False)  # type: ignore[valid-type]
    progress: FloatProperty(  # type: ignore[valid-type]
        name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    stage: StringProperty(name="Stage", default="")  # type: ignore[valid-type]
    fps: FloatProperty(name="Frames/s", default=0.0)  # type: ignore[valid-type]
    message: StringProperty(name="Last Result", default="")  # type: ignore[valid-type]
    is_error: BoolProperty(name="Last Result Is an Error", default=False)  # type: ignore[valid-type]
    take_path: StringProperty(name="Last Take", subtype="FILE_PATH", default="")  # type: ignore[valid-type]
    eta_s: FloatProperty(name="Time Left (s)", default=-1.0)  # type: ignore[valid-type]

    # Set up Engine / Check Engine (the preferences show these)
    setup_running: BoolProperty(name="Setting Up", default=False)  # type: ignore[valid-type]
    setup_progress: FloatProperty(  # type: ignore[valid-type]
        name="Setup Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    setup_stage: StringProperty(name="Setup Stage", default="")  # type: ignore[valid-type]
    setup_line: StringProperty(name="Setup Output", default="")  # type: ignore[valid-type]
    setup_message: StringProperty(name="Setup Result", default="")  # type: ignore[valid-type]
    setup_is_error: BoolProperty(name="Setup Result Is an Error", default=False)  # type: ignore[valid-type]
    check_report: StringProperty(name="Engine Check (JSON)", default="")  # type: ignore[valid-type]


def register_pointers() -> None:
    bpy.types.Scene.reel2rig = PointerProperty(  # type: ignore[attr-defined,func-returns-value]
        type=REEL2RIG_PG_settings)
    bpy.types.WindowManager.reel2rig_status = PointerProperty(  # type: ignore[attr-defined,func-returns-value]
        type=REEL2RIG_PG_status)


def unregister_pointers() -> None:
    for owner, name in ((bpy.types.WindowManager, "reel2rig_status"), (bpy.types.Scene, "reel2rig")):
        if hasattr(owner, name):
            delattr(owner, name)


def settings(context: bpy.types.Context) -> REEL2RIG_PG_settings:
    return context.scene.reel2rig  # type: ignore[attr-defined,no-any-return]


def status(context: bpy.types.Context) -> REEL2RIG_PG_status:
    return context.window_manager.reel2rig_status  # type: ignore[attr-defined,no-any-return]
