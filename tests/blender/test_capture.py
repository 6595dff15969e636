"""The capture path inside Blender — operator, CaptureSession.pump, progress properties, cancel, errors — against
a protocol-correct fake engine (tests/blender/fake_take_engine.py) that writes a synthetic Take with known joints.
The real engine is exercised in test_end_to_end.py."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

import synthetic_take as synthetic
from blender_env import HERE, PACKAGE, addon_module, drive_modal, id_counts


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("cv2")
    folder = tmp_path_factory.mktemp("clips")
    base = synthetic.write_clip(folder / "wave_test.mp4")
    for name in ("slow_clip.mp4", "fail_clip.mp4", "crash_clip.mp4"):
        shutil.copy(base, folder / name)
    return folder


@pytest.fixture
def fake_engine(empty_scene: ModuleType, tmp_path: Path) -> Iterator[object]:
    """Start the fake engine and make it the add-on's shared client for the preferences' engine config."""
    bpy = empty_scene
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.cache_dir = str(tmp_path / "cache")
    engine_session = addon_module("engine_session")
    client_mod = addon_module("client")
    config = addon_module("preferences").engine_config(bpy.context)
    client = client_mod.EngineClient(config.python, root=config.root, cache_dir=config.cache_dir,
                                     args=[sys.executable, str(HERE / "fake_take_engine.py")])
    client.start(timeout=60)
    engine_session.adopt_client(client, config)
    try:
        yield client
    finally:
        engine_session.shutdown()
        prefs.cache_dir = ""


def status(bpy: ModuleType):
    return bpy.context.window_manager.reel2rig_status


def test_capture_operator_runs_to_the_end_and_imports(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    bpy = empty_scene
    clip = clip_dir / "wave_test.mp4"
    bpy.context.scene.reel2rig.video_path = str(clip)
    assert bpy.ops.reel2rig.capture() == {"FINISHED"}
    st = status(bpy)
    assert not st.running and not st.is_error and st.progress == pytest.approx(1.0)
    assert "Imported 20 frames" in st.message
    take_path = Path(st.take_path)
    assert take_path.is_file() and take_path.parent == Path(bpy.context.preferences.addons[PACKAGE].preferences
                                                             .cache_dir) / "takes"
    obj = bpy.data.objects["wave_test"]
    arrays = synthetic.take_arrays()
    scene = bpy.context.scene
    worst = 0.0
    for t in range(arrays["frame_ids"].shape[0]):
        scene.frame_set(scene.frame_start + t)
        heads = np.array([list(obj.matrix_world @ pb.head) for pb in obj.pose.bones])
        worst = max(worst, float(np.abs(heads - arrays["joints_world"][t]).max()))
    assert worst < 1e-3
    assert scene.camera.data.background_images[0].clip is not None
    assert addon_module("engine_session").active_session() is None


def test_pump_reports_progress_and_cancel_stops_it(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    bpy = empty_scene
    operators = addon_module("operators")
    capture = addon_module("capture")
    before = id_counts(bpy)
    settings = operators.capture_settings(bpy.context, str(clip_dir / "slow_clip.mp4"))
    assert settings.options["mode"] == "body+hands" and settings.video.endswith("slow_clip.mp4")
    session = operators.begin_capture(bpy.context, settings)
    assert addon_module("engine_session").active_session() is session
    # a second capture while one runs is refused
    assert not bpy.ops.reel2rig.capture.poll()
    deadline = time.monotonic() + 10
    while session.status.done < 3 and time.monotonic() < deadline:
        assert session.pump(0.1)
    st = status(bpy)
    assert st.running and 0.0 < st.progress < 0.25 and st.stage.startswith("decode: ")
    assert session.status.fps == pytest.approx(100.0)

    assert bpy.ops.reel2rig.cancel.poll()
    assert bpy.ops.reel2rig.cancel() == {"FINISHED"}
    deadline = time.monotonic() + 10
    while session.pump(0.1) and time.monotonic() < deadline:
        pass
    assert session.status.state == capture.CANCELLED
    assert operators.end_capture(_Reporter(), session) == {"CANCELLED"}
    assert not st.running and not st.is_error and "cancelled" in st.message.lower()
    assert id_counts(bpy) == before
    assert not bpy.ops.reel2rig.cancel.poll()


def test_invoke_without_event_loop_runs_to_the_end(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    """Headless Blender has no window events: invoke (what the panel's button calls) falls back to execute."""
    bpy = empty_scene
    assert bpy.ops.reel2rig.capture("INVOKE_DEFAULT", video=str(clip_dir / "wave_test.mp4")) == {"FINISHED"}
    assert "wave_test" in bpy.data.objects
    assert not status(bpy).running


def _drive_modal(bpy: ModuleType, session, events: list[str]) -> tuple[set, "_Reporter"]:
    reporter = _Reporter()
    result, reporter.reports = drive_modal(bpy, session, events, limit_s=20)
    return result, reporter


def test_modal_pumps_until_the_take_is_imported(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    bpy = empty_scene
    operators = addon_module("operators")
    session = operators.begin_capture(bpy.context, operators.capture_settings(bpy.context,
                                                                                str(clip_dir / "wave_test.mp4")))
    result, reporter = _drive_modal(bpy, session, [])
    assert result == {"FINISHED"}
    assert reporter.reports[-1][0] == {"INFO"} and "Imported 20 frames" in reporter.reports[-1][1]
    assert "wave_test" in bpy.data.objects


def test_modal_escape_cancels(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    bpy = empty_scene
    operators = addon_module("operators")
    before = id_counts(bpy)
    session = operators.begin_capture(bpy.context, operators.capture_settings(bpy.context,
                                                                                str(clip_dir / "slow_clip.mp4")))
    result, reporter = _drive_modal(bpy, session, ["TIMER", "TIMER", "ESC"])
    assert result == {"CANCELLED"}
    assert reporter.reports[-1][0] == {"WARNING"} and "cancelled" in reporter.reports[-1][1].lower()
    assert id_counts(bpy) == before
    assert addon_module("engine_session").active_session() is None


def test_engine_failure_is_reported_with_its_fix(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    bpy = empty_scene
    before = id_counts(bpy)
    with pytest.raises(RuntimeError, match="cannot decode.*Fix: re-export the clip"):
        bpy.ops.reel2rig.capture(video=str(clip_dir / "fail_clip.mp4"))
    st = status(bpy)
    assert st.is_error and not st.running and "cannot decode" in st.message
    assert id_counts(bpy) == before


def test_engine_crash_is_reported(empty_scene: ModuleType, fake_engine, clip_dir: Path) -> None:
    bpy = empty_scene
    with pytest.raises(RuntimeError, match="engine exited"):
        bpy.ops.reel2rig.capture(video=str(clip_dir / "crash_clip.mp4"))
    assert status(bpy).is_error
    assert addon_module("engine_session").active_session() is None


def test_capture_needs_a_video(empty_scene: ModuleType, tmp_path: Path) -> None:
    bpy = empty_scene
    with pytest.raises(RuntimeError, match="Choose a video"):
        bpy.ops.reel2rig.capture()
    with pytest.raises(RuntimeError, match="not found"):
        bpy.ops.reel2rig.capture(video=str(tmp_path / "missing.mp4"))


class _Reporter:
    """Stands in for an operator's report() when end_capture is called outside an operator."""

    def __init__(self) -> None:
        self.reports: list[tuple[set, str]] = []

    def report(self, kind: set, message: str) -> None:
        self.reports.append((kind, message))


def test_the_model_choice_reaches_the_engine_options(empty_scene: ModuleType, clip_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bpy = empty_scene
    operators = addon_module("operators")
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    scene = bpy.context.scene.reel2rig
    clip = str(clip_dir / "wave_test.mp4")
    monkeypatch.delenv("REEL2RIG_MODEL_DIR", raising=False)
    assert "model" not in operators.capture_settings(bpy.context, clip).options        # Anny: the default
    scene.mode, scene.model = "hands", "anny_hand"
    assert operators.capture_settings(bpy.context, clip).options["model"] == "anny_hand"
    scene.model = "mano"                                                                 # licensed: needs its folder
    with pytest.raises(operators.Reel2RigError, match="Model Files"):
        operators.capture_settings(bpy.context, clip)
    prefs.model_dir = str(tmp_path)
    try:
        options = operators.capture_settings(bpy.context, clip).options
        assert options["model"] == "mano" and options["model_dir"] == str(tmp_path)
        scene.mode = "body+hands"                                                        # a hand model needs Hands
        with pytest.raises(operators.Reel2RigError, match="hand model"):
            operators.capture_settings(bpy.context, clip)
        scene.mode, scene.model = "hands", "smplx"                                       # a body model does not
        with pytest.raises(operators.Reel2RigError, match="body model"):
            operators.capture_settings(bpy.context, clip)
        scene.mode = "body"
        assert operators.capture_settings(bpy.context, clip).options == {
            "mode": "body", "smoothing": scene.smoothing, "space": "world", "foot_lock": True, "motion": "prior",
            "model": "smplx", "model_dir": str(tmp_path), "device": "auto"}
    finally:
        prefs.model_dir = ""
        scene.mode, scene.model = "body+hands", "anny"
