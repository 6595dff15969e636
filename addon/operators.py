"""Thin operators: poll, copy settings into frozen dataclasses, call capture / take_import, report.

Errors become ``self.report({'ERROR'}, message)`` + ``{'CANCELLED'}`` in one base class (a script calling
``bpy.ops.reel2rig.*`` gets them as a RuntimeError with the same message).

``reel2rig.capture``: ``invoke`` starts the job and goes modal with a window-manager timer that pumps the
:class:`~addon.capture.CaptureSession` in a small time budget (ESC or ``reel2rig.cancel`` stops it); ``execute``
runs the same session to the end, blocking — for scripts and headless Blender, where timers never fire.
"""
from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import engine_session, properties
from .capture import CANCELLED, FINISHED, RUNNING, CaptureSession, CaptureSettings, CaptureStatus

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Result = set[OperatorReturnItems]
else:
    Result = set

TIMER_INTERVAL_S = 0.1
MODAL_BUDGET_S = 0.02  # time per timer tick spent draining events: keeps the UI responsive


class Reel2RigError(Exception):
    """A problem the user can fix; the message says how."""


class _Reel2RigOperator(bpy.types.Operator):
    """Base: subclasses implement :meth:`run`; any exception becomes an ERROR report and CANCELLED."""

    def run(self, context: bpy.types.Context) -> Result:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> Result:
        return self.guarded(lambda: self.run(context))

    def guarded(self, call: Any) -> Result:
        try:
            result: Result = call()
            return result
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user as a report
            if not _expected(exc):
                traceback.print_exc()
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}


def _expected(exc: Exception) -> bool:
    """Errors with a message meant for the user (no traceback needed)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"Reel2RigError", "TakeError", "ImportFailed", "EngineSetupError", "EngineError",
                         "SetupError", "FileNotFoundError", "RetargetFailed", "MapError"})


def _message(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if _expected(exc) else f"{type(exc).__name__}: {text}"


# ----------------------------------------------------------------------------------------------------------------
# capture


def _redraw(area_type: str = "VIEW_3D") -> None:
    """Redraw every area of this type (the sidebar panels live in VIEW_3D, the add-on's settings in PREFERENCES)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        screen = window.screen
        for area in screen.areas if screen else []:
            if area.type == area_type:
                area.tag_redraw()


def _redraw_panels() -> None:
    _redraw("VIEW_3D")


_last_console_line: list[Any] = ["", 0.0]


def _echo_status_headless(status: CaptureStatus) -> None:
    """Headless runs (scripts, the demo) have no panel: print the stage to stderr, at most ~2 lines/s."""
    import sys
    import time

    line = status.text()
    now = time.monotonic()
    if line and line != _last_console_line[0] and (now - _last_console_line[1] > 0.5 or status.state != RUNNING):
        _last_console_line[:] = [line, now]
        print(f"[reel2rig] {line}", file=sys.stderr, flush=True)


def _show_status(status: CaptureStatus) -> None:
    if bpy.app.background:
        _echo_status_headless(status)
    st = properties.status(bpy.context)
    st.running = status.state == RUNNING
    st.progress = min(max(status.fraction, 0.0), 1.0)
    st.stage = status.text()
    st.fps = status.fps
    st.eta_s = status.eta_s if status.eta_s is not None else -1.0
    if status.state != RUNNING:
        st.message = status.message
        st.is_error = status.state not in (FINISHED, CANCELLED)
    _redraw_panels()


def capture_source(context: bpy.types.Context, video: str = "") -> tuple[str, dict[str, Any]]:
    """The footage the scene's settings name (a video file, a Movie Clip's file or an image folder) and the options
    it brings (an image sequence's frame rate). ``video`` overrides the panel. Raises Reel2RigError with the fix."""
    scene_settings = properties.settings(context)
    extra: dict[str, Any] = {}
    if video:
        path = bpy.path.abspath(video)
    elif scene_settings.source == "CLIP":
        clip = scene_settings.movie_clip
        if clip is None:
            raise Reel2RigError("Choose a Movie Clip in the Reel2Rig panel (Source: Movie Clip), or open one in the "
                                "Movie Clip Editor first")
        path = bpy.path.abspath(clip.filepath, library=clip.library)
        if clip.source == "SEQUENCE":  # the clip names its first image: capture the folder
            path = os.path.dirname(path)
            extra["fps"] = float(clip.fps) if getattr(clip, "fps", 0) else float(context.scene.render.fps)
        if not os.path.exists(path):
            raise Reel2RigError(f"Movie Clip '{clip.name}' points at '{path}', which does not exist; relink it in "
                                "the Movie Clip Editor (Clip › Reload or a new path)")
    elif scene_settings.source == "SEQUENCE":
        path = bpy.path.abspath(scene_settings.sequence_dir)
        if not path:
            raise Reel2RigError("Choose the folder of images in the Reel2Rig panel (Source: Images)")
        if not os.path.isdir(path):
            raise Reel2RigError(f"Image folder '{path}' not found; check the path")
        extra["fps"] = float(scene_settings.sequence_fps)
        return os.path.abspath(path), extra
    else:
        path = bpy.path.abspath(scene_settings.video_path)
    if not path:
        raise Reel2RigError("Choose a video in the Reel2Rig panel (3D View › Sidebar › Reel2Rig) first")
    if not os.path.exists(path):
        raise Reel2RigError(f"Video '{path}' not found; check the path")
    return os.path.abspath(path), extra


def capture_settings(context: bpy.types.Context, video: str = "") -> CaptureSettings:
    """Copy the scene's Reel2Rig settings and the preferences into a frozen CaptureSettings."""
    from . import preferences

    scene_settings = properties.settings(context)
    path, options = capture_source(context, video)
    options.update({"mode": scene_settings.mode, "smoothing": float(scene_settings.smoothing),
                    "space": scene_settings.space, "foot_lock": bool(scene_settings.plant_feet)})
    if scene_settings.mode != "hands":                       # a hands-only capture has no body to move
        if scene_settings.motion == "network" and scene_settings.space == "camera":
            raise Reel2RigError("Body Motion 'Learned' gives world-grounded motion only: set Space to World, or "
                                "Body Motion to 'Learned + Fit'")
        options["motion"] = scene_settings.motion
    if scene_settings.mode != "hands" and int(scene_settings.people) != 1:
        options["people"] = int(scene_settings.people)
    options.update(model_options(context, scene_settings.mode, scene_settings.model))
    if scene_settings.focal_px > 0:
        options["focal_px"] = float(scene_settings.focal_px)
    if scene_settings.actor_height > 0:
        options["actor_height_m"] = float(scene_settings.actor_height)
    if scene_settings.use_frame_range:
        first, last = int(scene_settings.frame_first), int(scene_settings.frame_last)
        if last < first:
            raise Reel2RigError(f"Frame range {first}–{last} is empty: set Last to {first} or more")
        options["frame_start"], options["frame_end"] = first - 1, last  # engine: 0-based, end excluded
    device = preferences.default_device(context)
    if device != "cpu":
        options["device"] = device
    if preferences.detector(context) != "auto":
        options["detector"] = preferences.detector(context)
    return CaptureSettings(video=path, engine=preferences.engine_config(context), options=options)


HAND_MODELS = ("anny_hand", "mano")
LICENSED_MODELS = {"mano": "MANO", "smpl": "SMPL", "smplh": "SMPL-H", "smplx": "SMPL-X"}


def model_options(context: bpy.types.Context, mode: str, model: str) -> dict[str, Any]:
    """The capture options for the chosen model ({} for Anny), checked against the mode and the Model Files
    preference before the engine starts."""
    from . import preferences

    if model == "anny":
        return {}
    if model in HAND_MODELS and mode != "hands":
        raise Reel2RigError(f"{model.replace('_', ' ').title()} is a hand model: set Mode to Hands, or choose a body "
                            "model (Anny, SMPL, SMPL-H, SMPL-X)")
    if model not in HAND_MODELS and mode == "hands":
        raise Reel2RigError(f"{LICENSED_MODELS.get(model, model)} is a body model: in Hands mode choose Anny, Anny "
                            "Hand or MANO")
    options: dict[str, Any] = {"model": model}
    if model in LICENSED_MODELS:
        folder = preferences.model_folder(context)
        if not folder:
            raise Reel2RigError(f"{LICENSED_MODELS[model]} needs its model files: set Model Files in Preferences › "
                                "Add-ons › Reel2Rig to the folder that holds them (or choose Anny, which needs none)")
        options["model_dir"] = folder
    return options


def import_finished_take(settings: CaptureSettings, take_path: str) -> str:
    """on_finished of a capture: build the Take into the current scene — and, for a multi-person capture, every
    other person's Take (the sidecar's ``person.takes``, next to it); returns the summary line."""
    from . import take_import, take_prepare

    result = take_import.import_take(bpy.context, take_path, video=settings.video)
    properties.status(bpy.context).take_path = take_path
    others = take_prepare.sibling_takes(take_path)
    for other in others:
        take_import.import_take(bpy.context, other, video=settings.video)
    if others:
        hands = take_path.endswith(("left_hand.take.npz", "right_hand.take.npz"))   # a hand model's Takes
        what = ("hand" if hands else "person") if len(others) == 1 else ("hands" if hands else "people")
        return f"{result.summary()} (+{len(others)} more {what})"
    return result.summary()


def retarget_finished_take(settings: CaptureSettings, take_path: str, armature_name: str, rig_map: str,
                           foot_lock: bool) -> str:
    """on_finished of a capture onto an existing armature: retarget the Take as a new action on it."""
    from . import retarget_apply
    from .preferences import presets_folder

    obj = bpy.data.objects.get(armature_name)
    if obj is None or obj.type != "ARMATURE":
        raise Reel2RigError(f"The target armature '{armature_name}' is gone; the take is kept at {take_path}: "
                            "select an armature and press Apply Take to Rig")
    properties.status(bpy.context).take_path = take_path
    result = retarget_apply.apply_take(bpy.context, obj, take_path, rig_map or "AUTO",
                                       presets_folder(bpy.context), foot_lock=foot_lock)
    return str(result.summary())


def finish_callback(context: bpy.types.Context, settings: CaptureSettings) -> Any:
    """What to do with the finished Take: import a new character, or retarget onto the selected armature (chosen
    now, when the capture starts, so changing the selection meanwhile does not move the target)."""
    scene_settings = properties.settings(context)
    if scene_settings.target != "SELECTED":
        return lambda take, sidecar: import_finished_take(settings, take)
    obj = _active_armature(context)
    if obj is None:
        raise Reel2RigError("Target is Selected Armature: select the armature to animate (or set Target to New "
                            "Character)")
    if settings.options.get("mode") == "hands" and settings.options.get("model") in HAND_MODELS:
        raise Reel2RigError("A hand model's takes are one armature per hand: set Target to New Character, or use "
                            "the Anny model to put the hands on your rig")
    if obj.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    name, rig_map, foot_lock = obj.name, str(scene_settings.rig_map or "AUTO"), bool(scene_settings.foot_lock)
    return lambda take, sidecar: retarget_finished_take(settings, take, name, rig_map, foot_lock)


def check_can_capture() -> None:
    current = engine_session.active_session()
    if (current is not None and current.running) or engine_session.pending_start() is not None:
        raise Reel2RigError("A capture is already running; cancel it first (ESC or the Cancel button)")
    if engine_session.setup_running():
        raise Reel2RigError("The engine is being set up; wait for Set up Engine to finish (Preferences › Add-ons "
                            "› Reel2Rig)")


def begin_capture(context: bpy.types.Context, settings: CaptureSettings, on_finished: Any = None,
                  client: Any = None) -> CaptureSession:
    """Start the engine if needed (blocking; ``client``: one already started), queue the job and make it the
    active session. ``on_finished``: what :func:`finish_callback` chose when the capture was asked for."""
    check_can_capture()
    if on_finished is None:
        on_finished = finish_callback(context, settings)
    if client is None:
        client = engine_session.get_client(settings.engine)
    session = CaptureSession(client, settings, on_status=_show_status, on_finished=on_finished)
    st = properties.status(context)
    st.message, st.is_error = "", False
    session.start()
    engine_session.set_active_session(session)
    return session


def end_capture(operator: bpy.types.Operator, session: CaptureSession) -> Result:
    """Report the outcome of a session that stopped running, release it, and return the operator's result."""
    if engine_session.active_session() is session:
        engine_session.set_active_session(None)
    properties.status(bpy.context).running = False
    state, message = session.status.state, session.status.message
    if state == FINISHED:
        operator.report({"INFO"}, message)
        return {"FINISHED"}
    if state == CANCELLED:
        operator.report({"WARNING"}, message)
        return {"CANCELLED"}
    operator.report({"ERROR"}, message or "Capture failed")
    return {"CANCELLED"}


class REEL2RIG_OT_capture(_Reel2RigOperator):
    bl_idname = "reel2rig.capture"
    bl_label = "Capture"
    bl_description = "Turn the video into a keyframed armature and a matching camera (runs the Reel2Rig engine)"
    bl_options = {"UNDO"}

    video: StringProperty(  # type: ignore[valid-type]
        name="Video", description="Clip to capture; empty: the scene's Reel2Rig video",
        subtype="FILE_PATH", default="", options={"SKIP_SAVE"})
    timeout: FloatProperty(  # type: ignore[valid-type]
        name="Timeout", description="Blocking runs only: give up after this many seconds (0: no limit)",
        default=0.0, min=0.0, options={"SKIP_SAVE"})

    _session: CaptureSession | None = None
    _timer: Any = None
    _start: Any = None          # engine_session.EngineStart while the engine starts in the background
    _settings: CaptureSettings | None = None
    _on_finished: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        session = engine_session.active_session()
        return ((session is None or not session.running) and engine_session.pending_start() is None
                and not engine_session.setup_running())

    def run(self, context: bpy.types.Context) -> Result:
        session = begin_capture(context, capture_settings(context, self.video))
        try:
            session.run_to_end(timeout_s=self.timeout or None)
        except BaseException:
            session.cancel()
            raise
        finally:
            if session.running:  # interrupted (KeyboardInterrupt): do not leave a stale active session
                engine_session.set_active_session(None)
        return end_capture(self, session)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if context.window is None or bpy.app.background:  # headless: no event loop, run to the end
            return self.execute(context)

        def start() -> Result:
            self._begin_interactive(context)
            wm = context.window_manager
            self._timer = wm.event_timer_add(TIMER_INTERVAL_S, window=context.window)
            wm.modal_handler_add(self)
            return {"RUNNING_MODAL"}

        return self.guarded(start)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        session = self._session
        if session is None:
            return REEL2RIG_OT_capture._modal_starting(self, context, event)  # (tests call modal on a stand-in)
        if event.type == "ESC" and event.value == "PRESS":
            session.cancel()
        elif event.type == "TIMER":
            session.pump(MODAL_BUDGET_S)
        if session.running:
            return {"PASS_THROUGH"}
        self._remove_timer(context)
        return end_capture(self, session)

    def _begin_interactive(self, context: bpy.types.Context) -> None:
        """invoke()'s start: the capture begins now when the engine runs, else once it has started in the
        background (modal() waits for it), so Blender never freezes while the engine loads."""
        settings = capture_settings(context, self.video)
        on_finished = finish_callback(context, settings)
        if engine_session.client_ready(settings.engine):
            self._session = begin_capture(context, settings, on_finished)
            return
        check_can_capture()
        self._settings, self._on_finished = settings, on_finished
        self._start = engine_session.start_engine(settings.engine)
        st = properties.status(context)
        st.running, st.progress, st.eta_s, st.message, st.is_error = True, 0.0, -1.0, "", False
        st.stage = "Starting the engine (the first time it loads its models)…"
        _redraw_panels()

    def _modal_starting(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        """modal() while the engine starts: wait for it (Esc asks to cancel), then begin the capture."""
        start = getattr(self, "_start", None)
        if start is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            start.cancelled = True
        if not start.done:
            return {"PASS_THROUGH"}
        self._start = None
        engine_session.finish_start(start)
        st = properties.status(context)
        if start.cancelled or start.error is not None:
            self._remove_timer(context)
            st.running = False
            if start.error is None:
                st.message, st.is_error = "Capture cancelled before it started", False
                self.report({"WARNING"}, st.message)
            else:
                st.message, st.is_error = _message(start.error), True  # type: ignore[arg-type]
                self.report({"ERROR"}, st.message)
            _redraw_panels()
            return {"CANCELLED"}
        try:
            assert self._settings is not None  # set with _start by _begin_interactive
            self._session = begin_capture(context, self._settings, self._on_finished, client=start.client)
        except Exception as exc:  # noqa: BLE001 - reported like any capture failure
            self._remove_timer(context)
            st.running, st.message, st.is_error = False, _message(exc), True
            self.report({"ERROR"}, st.message)
            return {"CANCELLED"}
        return {"PASS_THROUGH"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file load, quit): stop the job too."""
        start = getattr(self, "_start", None)
        if start is not None:
            start.cancelled = True
            properties.status(context).running = False
        if self._session is not None and self._session.running:
            self._session.cancel()
            engine_session.set_active_session(None)
            properties.status(context).running = False
        self._remove_timer(context)

    def _remove_timer(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


class REEL2RIG_OT_cancel(_Reel2RigOperator):
    bl_idname = "reel2rig.cancel"
    bl_label = "Cancel Capture"
    bl_description = "Stop the running capture (finished stages stay cached, so a re-run resumes)"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        session = engine_session.active_session()
        return (session is not None and session.running) or engine_session.pending_start() is not None

    def run(self, context: bpy.types.Context) -> Result:
        start = engine_session.pending_start()
        if start is not None:  # still starting the engine: the capture ends as soon as the start returns
            start.cancelled = True
            self.report({"INFO"}, "Cancelling the capture…")
            return {"FINISHED"}
        session = engine_session.active_session()
        if session is None or not session.running:
            raise Reel2RigError("No capture is running")
        session.cancel()
        self.report({"INFO"}, "Cancelling the capture…")
        return {"FINISHED"}


# ----------------------------------------------------------------------------------------------------------------
# engine setup, check, cache


def _redraw_preferences() -> None:
    _redraw("PREFERENCES")


def _show_setup(runner: Any) -> None:
    """Copy the setup runner's status into the window manager's (the preferences draw it)."""
    from .engine_setup import RUNNING as SETUP_RUNNING

    status = runner.status
    st = properties.status(bpy.context)
    st.setup_running = status.state == SETUP_RUNNING
    st.setup_progress = min(max(status.fraction, 0.0), 1.0)
    st.setup_stage = status.stage
    st.setup_line = status.line
    if status.state != SETUP_RUNNING:
        st.setup_message = status.message
        st.setup_is_error = status.state == "FAILED"
        if runner.report is not None:
            st.check_report = runner.report.to_json()
    if bpy.app.background and status.stage != _last_setup_stage[0]:  # headless: no preferences to look at
        import sys

        _last_setup_stage[0] = status.stage
        print(f"[reel2rig] engine setup: {status.stage}", file=sys.stderr, flush=True)
    _redraw_preferences()


_last_setup_stage: list[str] = [""]


class REEL2RIG_OT_setup_engine(_Reel2RigOperator):
    bl_idname = "reel2rig.setup_engine"
    bl_label = "Set up Engine"
    bl_description = ("Create the engine's own Python environment (Engine Folder) and install its pinned packages "
                      "there (about 3 GB; never into Blender's Python), then check that the engine answers. Safe to "
                      "run again: it resumes and repairs")

    requirements: StringProperty(  # type: ignore[valid-type]
        name="Requirements", description="Package list to install (default: the extension's requirements.txt)",
        subtype="FILE_PATH", default="", options={"HIDDEN", "SKIP_SAVE"})
    pip_options: StringProperty(  # type: ignore[valid-type]
        name="pip Options", description="Override the preference's Extra pip Options",
        default="", options={"HIDDEN", "SKIP_SAVE"})
    warm: BoolProperty(  # type: ignore[valid-type]
        name="Build Model Cache", description="Build the Anny model cache after installing", default=True,
        options={"HIDDEN", "SKIP_SAVE"})

    _runner: Any = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        session = engine_session.active_session()
        return not engine_session.setup_running() and (session is None or not session.running)

    def _begin(self, context: bpy.types.Context) -> Any:
        from . import engine_setup, preferences

        if engine_session.setup_running():
            raise Reel2RigError("Set up Engine is already running")
        session = engine_session.active_session()
        if session is not None and session.running:
            raise Reel2RigError("A capture is running; cancel it or let it finish before setting up the engine")
        pip_options = self.pip_options if self.properties.is_property_set("pip_options") else None
        try:
            plan = preferences.setup_plan(context, self.requirements, pip_options, warm=self.warm)
        except engine_setup.SetupError as exc:
            raise Reel2RigError(str(exc)) from exc
        engine_session.shutdown()  # the old engine may hold files of the environment being replaced
        runner = engine_setup.SetupRunner(plan)
        st = properties.status(context)
        st.setup_message, st.setup_is_error, st.check_report = "", False, ""
        runner.start()
        engine_session.set_active_setup(runner)
        _show_setup(runner)
        return runner

    def _end(self, context: bpy.types.Context, runner: Any) -> Result:
        from . import engine_setup, preferences

        _show_setup(runner)
        status = runner.status
        if status.state == engine_setup.FINISHED:
            prefs = preferences.get_preferences(context)
            if prefs is not None:
                prefs.engine_python = status.python
            self.report({"INFO"}, status.message)
            return {"FINISHED"}
        self.report({"WARNING"} if status.state == engine_setup.CANCELLED else {"ERROR"}, status.message)
        return {"CANCELLED"}

    def run(self, context: bpy.types.Context) -> Result:
        runner = self._begin(context)
        try:
            while runner.wait(0.25).state == "RUNNING":
                _show_setup(runner)
        except BaseException:
            runner.cancel()
            runner.wait(30)
            raise
        return self._end(context, runner)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if context.window is None or bpy.app.background:
            return self.execute(context)

        def start() -> Result:
            self._runner = self._begin(context)
            wm = context.window_manager
            self._timer = wm.event_timer_add(0.25, window=context.window)
            wm.modal_handler_add(self)
            return {"RUNNING_MODAL"}

        return self.guarded(start)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        runner = self._runner
        if runner is None:
            return {"CANCELLED"}
        if event.type == "TIMER":
            _show_setup(runner)
        if runner.running:
            return {"PASS_THROUGH"}
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        return REEL2RIG_OT_setup_engine._end(self, context, runner)  # (tests call modal on a stand-in)


class REEL2RIG_OT_setup_engine_cancel(_Reel2RigOperator):
    bl_idname = "reel2rig.setup_engine_cancel"
    bl_label = "Cancel Setup"
    bl_description = "Stop Set up Engine (what was installed stays; running it again resumes)"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return engine_session.setup_running()

    def run(self, context: bpy.types.Context) -> Result:
        runner = engine_session.active_setup()
        if runner is None or not runner.running:
            raise Reel2RigError("Set up Engine is not running")
        runner.cancel()
        self.report({"INFO"}, "Cancelling the engine setup…")
        return {"FINISHED"}


class REEL2RIG_OT_check_engine(_Reel2RigOperator):
    bl_idname = "reel2rig.check_engine"
    bl_label = "Check Engine"
    bl_description = ("Check the engine's Python: its packages, PyTorch's device, and whether the engine starts and "
                      "answers (10-30 s)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not engine_session.setup_running()

    def run(self, context: bpy.types.Context) -> Result:
        from . import engine_setup, preferences

        st = properties.status(context)
        try:
            config = preferences.engine_config(context)
        except Exception as exc:  # EngineSetupError: no Python configured or found
            report = engine_setup.EngineReport([engine_setup.CheckItem("Engine Python", False, str(exc),
                                                                       engine_setup.SETUP_FIX)])
        else:
            report = engine_setup.check_engine(config.python, Path(config.root), config.cache_dir)
        st.check_report = report.to_json()
        st.setup_message, st.setup_is_error = ("Engine check: " + report.summary()), not report.ok
        _redraw_preferences()
        if not report.ok:
            raise Reel2RigError(f"Engine check: {report.first_problem()}")
        self.report({"INFO"}, f"Engine check: {report.summary()}")
        return {"FINISHED"}


class REEL2RIG_OT_clear_cache(_Reel2RigOperator):
    bl_idname = "reel2rig.clear_cache"
    bl_label = "Clear Cache"
    bl_description = ("Delete the stage caches and logs (they are recomputed when needed); the model builds and the "
                      "takes your scenes use are kept")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        session = engine_session.active_session()
        return session is None or not session.running

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        return context.window_manager.invoke_confirm(self, event)  # type: ignore[no-any-return]

    def run(self, context: bpy.types.Context) -> Result:
        from . import engine_setup, preferences

        session = engine_session.active_session()
        if session is not None and session.running:
            raise Reel2RigError("A capture is running and uses the cache: cancel it or let it finish first")
        cache = preferences.engine_config(context).cache_dir
        if not cache:
            raise Reel2RigError("No cache folder is set: set Cache Folder in the Reel2Rig preferences")
        freed = engine_setup.clear_cache(cache)
        preferences.forget_cache_usage()
        self.report({"INFO"}, f"Cleared {engine_setup.human_bytes(freed)} from {cache}")
        return {"FINISHED"}


# ----------------------------------------------------------------------------------------------------------------
# import


class REEL2RIG_OT_import_take(_Reel2RigOperator, ImportHelper):  # type: ignore[misc]
    bl_idname = "reel2rig.import_take"
    bl_label = "Import Take"
    bl_description = "Build an armature, its action and a matching camera from a Reel2Rig take (.take.npz)"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.take.npz", options={"HIDDEN"})  # type: ignore[valid-type]
    filepath: StringProperty(  # type: ignore[valid-type]
        name="Take", description="The .take.npz file to import", subtype="FILE_PATH", default="")
    video: StringProperty(  # type: ignore[valid-type]
        name="Video", description="Clip for the camera background; empty: the clip the take names",
        subtype="FILE_PATH", default="", options={"SKIP_SAVE"})

    def run(self, context: bpy.types.Context) -> Result:
        from . import take_import

        if not self.filepath:
            raise Reel2RigError("Choose a .take.npz file to import")
        path = bpy.path.abspath(self.filepath)
        result = take_import.import_take(context, path, video=bpy.path.abspath(self.video) if self.video else None)
        st = properties.status(context)
        st.message, st.is_error, st.take_path = result.summary(), False, path
        self.report({"WARNING"} if result.warnings else {"INFO"}, result.summary())
        return {"FINISHED"}


# ----------------------------------------------------------------------------------------------------------------
# retarget

_MAP_ITEMS: list[tuple[str, str, str]] = []  # Blender keeps pointers into dynamic enum items: hold them here


def rig_map_items(_self: Any, context: bpy.types.Context | None) -> list[tuple[str, str, str]]:
    """AUTO, then every built-in map and user preset (for the map drop-downs)."""
    from . import retarget_apply
    from .preferences import presets_folder

    items = [("AUTO", "Auto-detect", "Choose the map that fits the armature's bone names and hierarchy best")]
    try:
        maps = retarget_apply.known_maps(presets_folder(context) if context else None)
    except Exception as exc:  # noqa: BLE001 - a broken built-in must not break the UI; applying reports it
        items.append(("AUTO", f"(maps unreadable: {exc})", ""))
        maps = {}
    for m in sorted(maps.values(), key=lambda m: (not m.builtin, m.name.lower())):
        origin = "built in" if m.builtin else f"preset: {m.path}"
        items.append((m.id, m.name, f"{m.description} ({origin})".strip()))
    _MAP_ITEMS[:] = items
    return _MAP_ITEMS


def _active_armature(context: bpy.types.Context) -> bpy.types.Object | None:
    ob = context.active_object
    return ob if ob is not None and ob.type == "ARMATURE" else None


class REEL2RIG_OT_apply_take(_Reel2RigOperator):
    bl_idname = "reel2rig.apply_take"
    bl_label = "Apply Take to Rig"
    bl_description = ("Retarget a take onto the active armature as a new action (fingers included); the "
                      "armature's current action is kept")
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(  # type: ignore[valid-type]
        name="Take", description="The .take.npz to apply; empty: the Retarget panel's take, else the last capture",
        subtype="FILE_PATH", default="")
    rig_map: EnumProperty(  # type: ignore[valid-type]
        name="Bone Map", description="Which bone of the armature plays which joint", items=rig_map_items)
    foot_lock: BoolProperty(  # type: ignore[valid-type]
        name="Lock Feet", description="Keep feet planted while they touch the ground", default=False)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active_armature(context) is not None

    def run(self, context: bpy.types.Context) -> Result:
        from . import retarget_apply
        from .preferences import presets_folder

        obj = _active_armature(context)
        if obj is None:
            raise Reel2RigError("Select the armature to apply the take to")
        settings = properties.settings(context)
        path = self.filepath or settings.retarget_take or properties.status(context).take_path
        if not path:
            raise Reel2RigError("Choose a take (.take.npz) in the Retarget panel, or capture one first")
        rig_map = self.rig_map if self.properties.is_property_set("rig_map") else settings.rig_map
        if obj.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        foot_lock = self.foot_lock if self.properties.is_property_set("foot_lock") else settings.foot_lock
        result = retarget_apply.apply_take(context, obj, bpy.path.abspath(path), rig_map or "AUTO",
                                           presets_folder(context), foot_lock=foot_lock)
        st = properties.status(context)
        st.message, st.is_error = result.summary(), False
        self.report({"WARNING"} if result.unmatched or result.warnings else {"INFO"}, result.summary())
        return {"FINISHED"}


class REEL2RIG_OT_save_rig_map(_Reel2RigOperator):
    bl_idname = "reel2rig.save_rig_map"
    bl_label = "Save Bone Map"
    bl_description = ("Save the bone map that fits the active armature as a TOML preset in the presets folder, "
                      "to edit by hand; it is listed beside the built-in maps")
    bl_options = {"REGISTER"}

    preset_id: StringProperty(  # type: ignore[valid-type]
        name="Preset Name", description="File name of the preset (letters, digits, _ . -)", default="my_rig")
    overwrite: BoolProperty(name="Overwrite", default=False)  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active_armature(context) is not None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        obj = _active_armature(context)
        if obj is not None and not self.properties.is_property_set("preset_id"):
            self.preset_id = "".join(c if c.isalnum() or c in "_.-" else "_" for c in obj.name) or "my_rig"
        return context.window_manager.invoke_props_dialog(self)  # type: ignore[no-any-return]

    def run(self, context: bpy.types.Context) -> Result:
        from . import retarget_apply
        from .preferences import presets_folder

        obj = _active_armature(context)
        if obj is None:
            raise Reel2RigError("Select the armature whose bone map to save")
        path = retarget_apply.save_map_preset(obj, presets_folder(context) or "", self.preset_id,
                                              overwrite=self.overwrite)
        self.report({"INFO"}, f"Saved bone map preset {path}")
        return {"FINISHED"}
