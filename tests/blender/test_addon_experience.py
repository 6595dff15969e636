"""The add-on's user-facing pieces in real Blender (headless): preferences (round trip through Blender's own
userpref file, Set up / Check Engine through the operators, the cache's Clear button), the capture panel's sources
(file, Movie Clip, image folder), frame range, device and target (a new character or the selected armature), the
status bar, the panels' drawing, and Import Take as one undo step."""
from __future__ import annotations

import json
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

import synthetic_take as synthetic
from blender_env import (ENGINE_PYTHON, PACKAGE, ROOT, addon_module, drive_modal, enable_addon, id_counts,
                         modal_stand_in)

sys.path.insert(0, str(ROOT / "tests" / "engine"))


def prefs(bpy: ModuleType):
    return bpy.context.preferences.addons[PACKAGE].preferences


class Layout:
    """Records a draw function's layout calls (panels and preferences cannot draw without a window)."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def __getattr__(self, name: str):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return record

    def __setattr__(self, name: str, value) -> None:
        if name == "calls":
            object.__setattr__(self, name, value)


def _draw(draw, owner_attrs: dict, context) -> list:
    calls: list = []
    stand_in = type("StandIn", (), {"layout": Layout(calls), **owner_attrs})()
    draw(stand_in, context)
    return calls


def _labels(calls: list) -> list[str]:
    return [kw.get("text", "") for name, _, kw in calls if name == "label"]


# ----------------------------------------------------------------------------------------------------------------
# preferences


def test_preferences_survive_save_and_reload(bpy: ModuleType, empty_scene: ModuleType, tmp_path: Path) -> None:
    if bpy.app.version < (4, 3, 0):
        pytest.skip("bpy 4.2 as a headless module segfaults in wm.read_userpref, with or without this add-on: it "
                    "reloads the UI icon textures with no GPU context (GPU_texture_create_2d)")
    p = prefs(bpy)
    values = {"cache_dir": str(tmp_path / "cache") + "/", "model_dir": str(tmp_path / "models") + "/",
              "engine_folder": str(tmp_path / "engine") + "/", "base_python": sys.executable,
              "torch_build": "CPU", "pip_options": "--find-links /wheels --no-index", "default_device": "cpu",
              "detector": "torch"}
    for name, value in values.items():
        setattr(p, name, value)
    try:
        assert bpy.ops.wm.save_userpref() == {"FINISHED"}
        for name in values:                                     # change them in memory …
            p.property_unset(name)
        assert p.default_device == "auto" and p.torch_build == "AUTO"
        assert bpy.ops.wm.read_userpref() == {"FINISHED"}      # … and read Blender's userpref.blend back
        enable_addon(bpy)
        p = prefs(bpy)
        for name, value in values.items():
            assert getattr(p, name) == value, name
    finally:
        p = prefs(bpy)
        for name in values:
            p.property_unset(name)
        enable_addon(bpy)
        bpy.ops.wm.save_userpref()


def test_preferences_draw_engine_state(bpy: ModuleType, empty_scene: ModuleType, tmp_path: Path) -> None:
    preferences = addon_module("preferences")
    engine_setup = addon_module("engine_setup")
    st = bpy.context.window_manager.reel2rig_status
    p = prefs(bpy)
    (tmp_path / "cache" / "stages" / "detect").mkdir(parents=True)
    (tmp_path / "cache" / "stages" / "detect" / "a.npz").write_bytes(b"x" * 2048)
    p.cache_dir = str(tmp_path / "cache")
    preferences.forget_cache_usage()
    try:
        report = engine_setup.EngineReport([engine_setup.CheckItem("numpy", True, "1.26.4"),
                                            engine_setup.CheckItem("anny", False, "No module named 'anny'", "set up")])
        st.check_report, st.setup_message, st.setup_is_error = report.to_json(), "Engine check: 1 problem", True
        calls = _draw(preferences.REEL2RIG_AddonPreferences.draw, {k: getattr(p, k) for k in (
            "engine_python", "cache_dir", "model_dir", "presets_dir", "engine_folder", "base_python",
            "torch_build", "pip_options", "default_device", "detector")}, bpy.context)
        ops = [args[0] for name, args, _ in calls if name == "operator"]
        assert {"reel2rig.setup_engine", "reel2rig.check_engine", "reel2rig.clear_cache"} <= set(ops)
        labels = _labels(calls)
        assert any(t.startswith("numpy: 1.26.4") for t in labels) and "Fix: set up" in labels
        assert any("stage caches and logs 2.0 KB" in t for t in labels), labels
        assert any("GPU" in t or "CPU" in t for t in labels)             # what Set up will install for torch
        st.setup_running, st.setup_progress, st.setup_stage = True, 0.3, "Installing PyTorch (1/3)"
        calls = _draw(preferences.REEL2RIG_AddonPreferences.draw, {k: getattr(p, k) for k in (
            "engine_python", "cache_dir", "model_dir", "presets_dir", "engine_folder", "base_python",
            "torch_build", "pip_options", "default_device", "detector")}, bpy.context)
        assert any(n == "progress" and kw.get("text") == "Installing PyTorch (1/3)" for n, _, kw in calls)
        assert "reel2rig.setup_engine_cancel" in [a[0] for n, a, _ in calls if n == "operator"]
    finally:
        st.setup_running, st.check_report, st.setup_message, st.setup_is_error = False, "", "", False
        p.cache_dir = ""


def test_check_engine_operator(bpy: ModuleType, empty_scene: ModuleType, tmp_path: Path) -> None:
    st = bpy.context.window_manager.reel2rig_status
    assert bpy.ops.reel2rig.check_engine() == {"FINISHED"}
    report = addon_module("engine_setup").EngineReport.from_json(st.check_report)
    assert report.ok and report.info.get("engine_version")
    assert not st.setup_is_error and "answers" in st.setup_message
    p = prefs(bpy)
    p.engine_python = str(tmp_path / "missing" / "python")
    try:
        with pytest.raises(RuntimeError, match="Engine Python.*does not exist.*Set up Engine"):
            bpy.ops.reel2rig.check_engine()
        assert st.setup_is_error
    finally:
        p.engine_python = ENGINE_PYTHON
        st.check_report, st.setup_message, st.setup_is_error = "", "", False


def test_set_up_engine_operator_makes_a_working_engine(bpy: ModuleType, empty_scene: ModuleType,
                                                       tmp_path: Path) -> None:
    """The whole Set up Engine path through the operator: a new environment, pip from a wheel folder (offline), the
    model cache, the check — and the preference then points at the new engine. Torch and friends are lent by a
    .pth line to the checkout's environment (see tests/engine/test_engine_setup.py) so this takes seconds."""
    from engine_setup_helpers import lend_checkout_packages, make_wheel, requirements

    engine_setup = addon_module("engine_setup")
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    folder = tmp_path / "engine"
    if ENGINE_PYTHON != sys.executable:   # another Blender under test: the engine's Python makes the environment
        pytest.skip("needs the engine's Python to run this test's interpreter")
    lend_checkout_packages(folder)
    p = prefs(bpy)
    p.engine_folder, p.base_python, p.torch_build = str(folder), sys.executable, "PIP"
    st = bpy.context.window_manager.reel2rig_status
    try:
        result = bpy.ops.reel2rig.setup_engine(requirements=str(requirements(tmp_path)),
                                               pip_options=f"--no-index --find-links {wheels}")
        assert result == {"FINISHED"}
        assert Path(p.engine_python) == engine_setup.venv_python(folder.resolve())
        assert not st.setup_running and not st.setup_is_error and "Engine ready" in st.setup_message
        assert json.loads(st.check_report)["info"]["engine_version"]
        assert addon_module("preferences").engine_config(bpy.context).python == p.engine_python
        # a failing setup (a version the wheel folder lacks) reports the fix and leaves the preference alone
        newer = tmp_path / "newer.txt"
        newer.write_text(requirements(tmp_path).read_text().replace("==1.0", "==2.0"))
        with pytest.raises(RuntimeError, match="no build for this Python"):
            bpy.ops.reel2rig.setup_engine(requirements=str(newer), pip_options=f"--no-index --find-links {wheels}",
                                          warm=False)
        assert st.setup_is_error and Path(p.engine_python) == engine_setup.venv_python(folder.resolve())
    finally:
        p.engine_python, p.engine_folder, p.base_python, p.torch_build = ENGINE_PYTHON, "", "", "AUTO"
        st.check_report, st.setup_message, st.setup_is_error = "", "", False
        addon_module("engine_session").shutdown()


def test_cancel_setup_operator_stops_a_running_setup(bpy: ModuleType, empty_scene: ModuleType,
                                                     tmp_path: Path) -> None:
    """Set up Engine runs modal in a window; headless, its runner is started here and Cancel Setup stops it."""
    import time

    from engine_setup_helpers import requirements, slow_index

    engine_setup = addon_module("engine_setup")
    engine_session = addon_module("engine_session")
    assert not bpy.ops.reel2rig.setup_engine_cancel.poll()
    server, index = slow_index()
    try:
        plan = engine_setup.SetupPlan(folder=tmp_path / "engine", base_python=ENGINE_PYTHON,
                                      requirements=requirements(tmp_path), warm=False,
                                      pip_args=("--index-url", index, "--timeout", "120", "--retries", "0"))
        runner = engine_setup.SetupRunner(plan)
        runner.start()
        engine_session.set_active_setup(runner)
        deadline = time.monotonic() + 300
        while not runner.status.stage.startswith("Installing") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.running and bpy.ops.reel2rig.setup_engine_cancel.poll()
        assert not bpy.ops.reel2rig.capture.poll() and not bpy.ops.reel2rig.check_engine.poll()
        # the operator's modal() (Set up Engine in a window) passes events through while the runner works ...
        from types import SimpleNamespace

        reports: list = []
        stand_in = SimpleNamespace(_runner=runner, _timer=None, report=lambda kind, text: reports.append((kind, text)))
        tick = SimpleNamespace(type="TIMER", value="NOTHING")
        assert addon_module("operators").REEL2RIG_OT_setup_engine.modal(stand_in, bpy.context, tick) \
            == {"PASS_THROUGH"}
        st = bpy.context.window_manager.reel2rig_status
        assert st.setup_running and st.setup_stage.startswith("Installing")
        assert bpy.ops.reel2rig.setup_engine_cancel() == {"FINISHED"}
        assert runner.wait(30).state == engine_setup.CANCELLED
        assert not bpy.ops.reel2rig.setup_engine_cancel.poll()
        # ... and, once it stops, reports how it ended
        assert addon_module("operators").REEL2RIG_OT_setup_engine.modal(stand_in, bpy.context, tick) \
            == {"CANCELLED"}
        assert reports[-1][0] == {"WARNING"} and "run it again to resume" in reports[-1][1]
        assert not st.setup_running and not st.setup_is_error
    finally:
        engine_session.set_active_setup(None)
        server.shutdown()


def test_clear_cache_operator_keeps_takes_and_models(bpy: ModuleType, empty_scene: ModuleType,
                                                     tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for rel in ("takes/a.take.npz", "stages/anny_mesh_v1_0.6.2.npz", "stages/detect/x/y.npz", "logs/e.log"):
        (cache / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache / rel).write_bytes(b"1" * 100)
    p = prefs(bpy)
    p.cache_dir = str(cache)
    try:
        assert bpy.ops.reel2rig.clear_cache() == {"FINISHED"}
        assert (cache / "takes/a.take.npz").is_file() and (cache / "stages/anny_mesh_v1_0.6.2.npz").is_file()
        assert not (cache / "stages/detect").exists() and not (cache / "logs").exists()
    finally:
        p.cache_dir = ""


# ----------------------------------------------------------------------------------------------------------------
# capture panel: sources, frame range, device, target


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("cv2")
    return synthetic.write_clip(tmp_path_factory.mktemp("clip") / "wave_test.mp4")


def test_sources_frame_range_and_device_reach_the_options(bpy: ModuleType, empty_scene: ModuleType, clip: Path,
                                                          tmp_path: Path) -> None:
    import cv2

    operators = addon_module("operators")
    settings = bpy.context.scene.reel2rig
    settings.video_path = str(clip)
    s = operators.capture_settings(bpy.context)
    assert s.video == str(clip) and s.options["device"] == "auto" and "frame_start" not in s.options

    assert s.options["motion"] == "prior"                                     # the learned network, then the fit
    settings.motion, settings.space = "network", "camera"
    with pytest.raises(operators.Reel2RigError, match="world-grounded motion only"):
        operators.capture_settings(bpy.context)
    settings.space = "world"
    assert operators.capture_settings(bpy.context).options["motion"] == "network"
    settings.mode = "hands"
    assert "motion" not in operators.capture_settings(bpy.context).options    # no body to move
    settings.mode, settings.motion = "body+hands", "prior"

    assert "actor_height_m" not in s.options                                  # 0: Anny's average body
    settings.actor_height = 1.58
    assert operators.capture_settings(bpy.context).options["actor_height_m"] == pytest.approx(1.58)
    settings.actor_height = 0.0

    settings.use_frame_range, settings.frame_first, settings.frame_last = True, 5, 12
    s = operators.capture_settings(bpy.context)
    assert (s.options["frame_start"], s.options["frame_end"]) == (4, 12)      # 0-based start, end excluded
    settings.frame_last = 3
    with pytest.raises(operators.Reel2RigError, match="Frame range 5–3 is empty"):
        operators.capture_settings(bpy.context)
    settings.use_frame_range = False

    prefs(bpy).default_device = "cpu"
    try:
        assert "device" not in operators.capture_settings(bpy.context).options    # the engine's default
    finally:
        prefs(bpy).default_device = "auto"
    assert "detector" not in operators.capture_settings(bpy.context).options      # auto: the engine decides
    prefs(bpy).detector = "torch"
    try:
        assert operators.capture_settings(bpy.context).options["detector"] == "torch"
    finally:
        prefs(bpy).detector = "auto"

    settings.source = "CLIP"                                      # a Movie Clip of the file
    with pytest.raises(operators.Reel2RigError, match="Choose a Movie Clip"):
        operators.capture_settings(bpy.context)
    settings.movie_clip = bpy.data.movieclips.load(str(clip))
    assert operators.capture_settings(bpy.context).video == str(clip)

    frames = tmp_path / "frames"                                  # an image-sequence Movie Clip: its folder
    frames.mkdir()
    cap = cv2.VideoCapture(str(clip))
    for i in range(5):
        ok, image = cap.read()
        assert ok
        cv2.imwrite(str(frames / f"frame_{i + 1:04d}.png"), image)
    cap.release()
    seq_clip = bpy.data.movieclips.load(str(frames / "frame_0001.png"))
    assert seq_clip.source == "SEQUENCE"
    settings.movie_clip = seq_clip
    s = operators.capture_settings(bpy.context)
    assert s.video == str(frames) and s.options["fps"] > 0

    settings.source = "SEQUENCE"                                  # a folder of images named in the panel
    settings.sequence_dir, settings.sequence_fps = str(frames), 24.0
    s = operators.capture_settings(bpy.context)
    assert s.video == str(frames) and s.options["fps"] == 24.0
    settings.sequence_dir = str(tmp_path / "nope")
    with pytest.raises(operators.Reel2RigError, match="Image folder .* not found"):
        operators.capture_settings(bpy.context)
    settings.source = "FILE"


def test_target_selected_armature_retargets_instead_of_importing(bpy: ModuleType, empty_scene: ModuleType,
                                                                  clip: Path, tmp_path: Path) -> None:
    if not synthetic.SAMPLE_TRUTH.is_file():
        pytest.skip("samples/sample_wave_truth.npz missing")
    import rig_builders

    operators = addon_module("operators")
    settings = bpy.context.scene.reel2rig
    settings.video_path, settings.target = str(clip), "SELECTED"
    with pytest.raises(operators.Reel2RigError, match="select the armature"):
        operators.finish_callback(bpy.context, operators.capture_settings(bpy.context))
    rig = rig_builders.build_mixamo(bpy)
    bpy.context.view_layer.objects.active = rig
    on_finished = operators.finish_callback(bpy.context, operators.capture_settings(bpy.context))
    bpy.context.view_layer.objects.active = None                 # the target was fixed when the capture started
    take, _ = synthetic.anny_motion_take(tmp_path / "walk.take.npz")
    before = id_counts(bpy)
    summary = on_finished(str(take), "")
    after = id_counts(bpy)
    assert after["armatures"] == before["armatures"] and after["objects"] == before["objects"]
    assert after["actions"] == before["actions"] + 1 and rig.animation_data.action is not None
    assert "Mixamo" in summary or rig.animation_data.action.name in summary
    bpy.data.objects.remove(rig)                                  # gone before the capture ends: a clear error
    with pytest.raises(operators.Reel2RigError, match="is gone; the take is kept"):
        on_finished(str(take), "")
    settings.target = "NEW"


def test_the_panels_name_the_detected_bone_map(bpy: ModuleType, empty_scene: ModuleType) -> None:
    import rig_builders

    panels = addon_module("panels")
    settings = bpy.context.scene.reel2rig
    rig = rig_builders.build_mixamo(bpy)
    bpy.context.view_layer.objects.active = rig
    settings.target = "SELECTED"
    try:
        for panel in (panels.REEL2RIG_PT_capture, panels.REEL2RIG_PT_retarget):
            labels = _labels(_draw(panel.draw, {}, bpy.context))
            assert any(t.startswith("Detected: Mixamo") for t in labels), labels
    finally:
        settings.target = "NEW"


# ----------------------------------------------------------------------------------------------------------------
# status bar, panels, undo


def test_status_bar_and_export_panel_draw(bpy: ModuleType, empty_scene: ModuleType) -> None:
    panels = addon_module("panels")
    st = bpy.context.window_manager.reel2rig_status
    st.running, st.progress, st.stage = False, 0.0, ""
    assert _draw(panels.draw_status_bar, {}, bpy.context) == []               # nothing while idle
    st.running, st.progress, st.stage = True, 0.42, "detect: 40/100, 12.0 frames/s, 0:05 left"
    try:
        calls = _draw(panels.draw_status_bar, {}, bpy.context)
        assert any(n == "progress" and kw.get("factor") == pytest.approx(0.42) for n, _, kw in calls)
        assert "Reel2Rig: detect: 40/100, 12.0 frames/s, 0:05 left" in _labels(calls)
    finally:
        st.running, st.progress, st.stage = False, 0.0, ""
    assert panels.draw_status_bar in bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()
    calls = _draw(panels.REEL2RIG_PT_export.draw, {}, bpy.context)
    assert [a[0] for n, a, _ in calls if n == "operator"].count("reel2rig.export") == 5


def test_capture_panel_draws_each_source(bpy: ModuleType, empty_scene: ModuleType) -> None:
    panels = addon_module("panels")
    settings = bpy.context.scene.reel2rig
    seen = {}
    for source in ("FILE", "CLIP", "SEQUENCE"):
        settings.source = source
        calls = _draw(panels.REEL2RIG_PT_capture.draw, {}, bpy.context)
        seen[source] = {args[1] for n, args, _ in calls if n in ("prop", "template_ID") and len(args) > 1}
    settings.source, settings.target = "FILE", "SELECTED"
    calls = _draw(panels.REEL2RIG_PT_capture.draw, {}, bpy.context)
    settings.target = "NEW"
    assert "video_path" in seen["FILE"] and "movie_clip" in seen["CLIP"] and "sequence_dir" in seen["SEQUENCE"]
    assert {"use_frame_range", "frame_first", "frame_last", "target"} <= seen["FILE"]
    assert "Select the armature to animate" in _labels(calls)


def test_import_is_one_undo_step(bpy: ModuleType, empty_scene: ModuleType, tmp_path: Path) -> None:
    take, _ = synthetic.write_synthetic_take(tmp_path / "undo.take.npz")
    bpy.ops.ed.undo_push(message="before import")
    before = id_counts(bpy)
    # 'EXEC_DEFAULT', True: run with undo as the UI does (the operator's UNDO flag then pushes its own step)
    assert bpy.ops.reel2rig.import_take("EXEC_DEFAULT", True, filepath=str(take)) == {"FINISHED"}
    imported = id_counts(bpy)
    assert imported["objects"] > before["objects"] and imported["actions"] > before["actions"]
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert id_counts(bpy)["objects"] == before["objects"] and id_counts(bpy)["armatures"] == before["armatures"]
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert id_counts(bpy)["objects"] == imported["objects"]


# ----------------------------------------------------------------------------------------------------------------
# misbehaving engines, through the operators (the engine Python is a wrapper that runs a fixture script)

ENGINES = ROOT / "tests" / "fixtures" / "engines"


def _engine_wrapper(tmp_path: Path, script: str, *args: str) -> str:
    wrapper = tmp_path / f"python-{Path(script).stem}"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ENGINES / script}" {" ".join(args)}\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.parametrize("script, args, message", [
    ("die_during_initialize.py", (), "cannot load model weights"),
    ("garbage_stdout.py", ("only",), "non-protocol output"),
])
def test_an_engine_that_fails_to_start_is_reported_and_changes_nothing(
        bpy: ModuleType, empty_scene: ModuleType, clip: Path, tmp_path: Path, script: str, args: tuple,
        message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform == "win32":
        pytest.skip("the wrapper is a shell script")
    monkeypatch.setattr(addon_module("engine_session"), "START_TIMEOUT_S", 5.0)  # garbage only: no answer ever
    p = prefs(bpy)
    p.engine_python = _engine_wrapper(tmp_path, script, *args)
    before = id_counts(bpy)
    try:
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.reel2rig.capture(video=str(clip))
        assert id_counts(bpy) == before
        assert addon_module("engine_session").active_session() is None
    finally:
        p.engine_python = ENGINE_PYTHON
        addon_module("engine_session").shutdown()



def test_an_engine_that_crashes_mid_job_is_reported(bpy: ModuleType, empty_scene: ModuleType, clip: Path,
                                                    tmp_path: Path) -> None:
    operators = addon_module("operators")
    p = prefs(bpy)
    p.engine_python = _engine_wrapper(tmp_path, "exit_mid_job.py")
    before = id_counts(bpy)
    try:
        session = operators.begin_capture(bpy.context, operators.capture_settings(bpy.context, str(clip)))
        result, reports = drive_modal(bpy, session, [], tick_s=0.05)
        assert result == {"CANCELLED"} and reports[-1][0] == {"ERROR"}
        assert "engine exited (status 7)" in reports[-1][1] and "segfault" in reports[-1][1]
        st = bpy.context.window_manager.reel2rig_status
        assert st.is_error and not st.running and id_counts(bpy) == before
    finally:
        p.engine_python = ENGINE_PYTHON
        addon_module("engine_session").shutdown()


def test_cancel_stops_an_engine_that_hangs(bpy: ModuleType, empty_scene: ModuleType, clip: Path,
                                           tmp_path: Path) -> None:
    """The engine accepts the job, then never answers again: ESC still ends the capture within the cancel wait,
    stops the engine, and the next capture starts a fresh one."""
    import time

    operators = addon_module("operators")
    engine_session = addon_module("engine_session")
    p = prefs(bpy)
    p.engine_python = _engine_wrapper(tmp_path, "hangs_mid_job.py")
    before = id_counts(bpy)
    try:
        session = operators.begin_capture(bpy.context, operators.capture_settings(bpy.context, str(clip)))
        client = engine_session.current_client()
        started = time.monotonic()
        result, reports = drive_modal(bpy, session, ["TIMER"] * 5 + ["ESC"], tick_s=0.05)
        assert result == {"CANCELLED"} and reports[-1][0] == {"WARNING"}
        assert "did not answer" in reports[-1][1] and "was stopped" in reports[-1][1]
        assert time.monotonic() - started < addon_module("capture").CANCEL_ANSWER_S + 10
        assert not client.alive and id_counts(bpy) == before
        assert engine_session.active_session() is None
    finally:
        p.engine_python = ENGINE_PYTHON
        engine_session.shutdown()


# ----------------------------------------------------------------------------------------------------------------
# the engine starts in the background: Blender keeps drawing, Esc works, errors are reported


def _fake_take_engine_wrapper(tmp_path: Path, delay_s: float = 0.0) -> str:
    wrapper = tmp_path / "python-fake-take-engine"
    engine = ROOT / "tests" / "blender" / "fake_take_engine.py"
    wrapper.write_text(f'#!/bin/sh\nsleep {delay_s}\nexec "{sys.executable}" "{engine}"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _begin_interactive(bpy: ModuleType, video: str):
    operators = addon_module("operators")
    stand_in = modal_stand_in(video=video)
    operators.REEL2RIG_OT_capture._begin_interactive(stand_in, bpy.context)
    return stand_in


def test_the_engine_starts_in_the_background_then_the_capture_runs(bpy: ModuleType, empty_scene: ModuleType,
                                                                    clip: Path, tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("the wrapper is a shell script")
    engine_session = addon_module("engine_session")
    engine_session.shutdown()
    p = prefs(bpy)
    p.engine_python, p.cache_dir = _fake_take_engine_wrapper(tmp_path, delay_s=1.0), str(tmp_path / "cache")
    st = bpy.context.window_manager.reel2rig_status
    try:
        stand_in = _begin_interactive(bpy, str(clip))
        assert stand_in._session is None and engine_session.pending_start() is stand_in._start
        assert st.running and st.stage.startswith("Starting the engine")
        assert bpy.ops.reel2rig.cancel.poll() and not bpy.ops.reel2rig.capture.poll()
        result, reports = drive_modal(bpy, None, [], limit_s=60, tick_s=0.05, stand_in=stand_in)
        assert result == {"FINISHED"}, reports
        assert "Imported 20 frames" in reports[-1][1] and clip.stem in bpy.data.objects
        assert engine_session.pending_start() is None and not st.running
        # the engine now runs: the next interactive capture begins at once
        again = _begin_interactive(bpy, str(clip))
        assert again._session is not None and again._start is None
        assert drive_modal(bpy, None, [], limit_s=60, stand_in=again)[0] == {"FINISHED"}
    finally:
        p.engine_python, p.cache_dir = ENGINE_PYTHON, ""
        engine_session.shutdown()


def test_escape_while_the_engine_starts_cancels_and_keeps_the_engine(bpy: ModuleType, empty_scene: ModuleType,
                                                                      clip: Path, tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("the wrapper is a shell script")
    engine_session = addon_module("engine_session")
    engine_session.shutdown()
    p = prefs(bpy)
    p.engine_python, p.cache_dir = _fake_take_engine_wrapper(tmp_path, delay_s=2.0), str(tmp_path / "cache")
    before = id_counts(bpy)
    try:
        stand_in = _begin_interactive(bpy, str(clip))
        config = stand_in._settings.engine
        result, reports = drive_modal(bpy, None, ["ESC"], limit_s=60, tick_s=0.05, stand_in=stand_in)
        assert result == {"CANCELLED"} and reports[-1] == ({"WARNING"}, "Capture cancelled before it started")
        assert id_counts(bpy) == before and engine_session.pending_start() is None
        assert engine_session.client_ready(config)                      # kept for the next capture
        # and an engine that fails to start is reported through the same path
        p.engine_python = _engine_wrapper(tmp_path, "die_during_initialize.py")
        failing = _begin_interactive(bpy, str(clip))
        result, reports = drive_modal(bpy, None, [], limit_s=60, tick_s=0.05, stand_in=failing)
        assert result == {"CANCELLED"} and reports[-1][0] == {"ERROR"} and "model weights" in reports[-1][1]
        st = bpy.context.window_manager.reel2rig_status
        assert st.is_error and not st.running and id_counts(bpy) == before
    finally:
        p.engine_python, p.cache_dir = ENGINE_PYTHON, ""
        engine_session.shutdown()
