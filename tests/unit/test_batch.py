"""The batch command's parts that need no engine: inputs → clips, settings, the output folder (publishing,
resumability, summary files), the display, and a worker against tiny fixture engines (crash, failure, cancel)."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from batch import cli
from batch.clip import ClipWorker
from batch.inputs import Clip, InputError, expand
from batch.progress import Display
from batch.settings import BatchSettings, SettingsError
from batch.store import OutputFolder, StoreError, report_markdown, summary_csv

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ROOT / "tests" / "fixtures" / "engines"


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- inputs -----------------------------------------------------------------------------------------------------------
def test_a_folder_is_searched_recursively_with_image_sequences_and_unique_names(tmp_path):
    root = tmp_path / "shoot"
    touch(root / "a.mp4")
    touch(root / "a.mov")                       # same stem: both keep their suffix
    touch(root / "day1" / "take3.MP4")          # suffixes in any case
    touch(root / "day1" / "notes.txt")          # ignored, counted
    for i in range(3):
        touch(root / "seq" / f"f_{i}.png")      # a folder of images is one clip
    touch(root / "mixed" / "b.mp4")
    touch(root / "mixed" / "poster.jpg")        # an image beside videos is not a sequence
    touch(root / ".hidden" / "c.mp4")           # hidden folders are skipped
    touch(root / ".d.mp4")
    found = expand([str(root)])
    names = {c.name: c for c in found.clips}
    assert set(names) == {"a.mp4", "a.mov", "day1__take3", "seq", "mixed__b"}
    assert names["seq"].kind == "sequence" and names["seq"].source == root / "seq"
    assert names["day1__take3"].kind == "video"
    assert {p.name for p in found.ignored} == {"notes.txt", "poster.jpg"}


def test_files_globs_and_overlaps(tmp_path, monkeypatch):
    touch(tmp_path / "shots" / "x" / "one.mp4")
    touch(tmp_path / "shots" / "y" / "two.mov")
    touch(tmp_path / "readme.md")
    monkeypatch.chdir(tmp_path)
    found = expand([str(tmp_path / "readme.md"), "shots/**/*.m*", str(tmp_path / "shots" / "x" / "one.mp4")])
    # a named file is a clip whatever its suffix (it then fails as that clip); the glob's names keep their folders
    # below the glob's fixed part; the same file reached twice is one clip
    assert [(c.name, c.kind) for c in found.clips] == [("readme", "video"), ("x__one", "video"), ("y__two", "video")]


@pytest.mark.parametrize("arg, words", [("missing.mp4", "no such file"), ("nothing/*.mp4", "matches no file")])
def test_inputs_that_name_nothing_say_so(tmp_path, monkeypatch, arg, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=words) as info:
        expand([arg])
    assert info.value.fix


def test_fingerprint_changes_when_the_input_does(tmp_path):
    clip = Clip("a", touch(tmp_path / "a.mp4", b"1234"), "video")
    before = clip.fingerprint()
    os.utime(clip.source, (1, 1))
    assert clip.fingerprint() != before
    seq = Clip("s", tmp_path / "s", "sequence")
    touch(tmp_path / "s" / "1.png")
    one = seq.fingerprint()
    touch(tmp_path / "s" / "2.png")
    assert seq.fingerprint()["images"] == 2 and seq.fingerprint() != one


# --- settings ---------------------------------------------------------------------------------------------------------
def test_formats_and_rig_arguments(tmp_path):
    assert BatchSettings.parse_formats("FBX, bvh,.glb,fbx") == ("fbx", "bvh", "glb")
    with pytest.raises(SettingsError, match="obj"):
        BatchSettings.parse_formats("fbx,obj")
    rig = touch(tmp_path / "char.blend")
    assert BatchSettings.parse_rig(f"{rig}:Armature.001") == (rig, "Armature.001")
    assert BatchSettings.parse_rig(str(rig)) == (rig, None)
    with pytest.raises(SettingsError, match="does not exist"):
        BatchSettings.parse_rig(str(tmp_path / "other.blend"))
    with pytest.raises(SettingsError, match="not a .blend"):
        BatchSettings.parse_rig(str(touch(tmp_path / "char.fbx")))


def test_the_settings_key_follows_what_changes_the_outputs(tmp_path):
    base = BatchSettings(out=tmp_path)
    assert base.key() == BatchSettings(out=tmp_path / "elsewhere", clip_timeout_s=5).key()
    for other in (BatchSettings(out=tmp_path, formats=("fbx", "bvh")), BatchSettings(out=tmp_path, smoothing=0.2),
                  BatchSettings(out=tmp_path, bone_map="mixamo"), BatchSettings(out=tmp_path, space="camera")):
        assert other.key() != base.key()
    again = BatchSettings.from_json(json.loads(json.dumps(BatchSettings(out=tmp_path, rig=None).to_json())))
    assert again == BatchSettings(out=tmp_path)
    smplx = BatchSettings(out=tmp_path, model="smplx", model_dir=tmp_path / "models")
    assert smplx.key() != base.key() and BatchSettings.from_json(json.loads(json.dumps(smplx.to_json()))) == smplx


def test_the_body_model_reaches_the_engine_and_hand_models_are_refused(tmp_path, capsys):
    assert "model" not in BatchSettings(out=tmp_path).capture_options()          # Anny: the engine's default
    models = tmp_path / "models"
    models.mkdir()
    assert BatchSettings.check_model("smplh", str(models), environ={}) == models.absolute()
    assert BatchSettings.check_model("smpl", None, environ={"REEL2RIG_MODEL_DIR": str(models)}) == models.absolute()
    options = BatchSettings(out=tmp_path, model="smplh", model_dir=models).capture_options()
    assert options["model"] == "smplh" and options["model_dir"] == str(models)
    with pytest.raises(SettingsError, match="needs its model files") as err:
        BatchSettings.check_model("smplx", None, environ={})
    assert "--model-dir" in err.value.fix
    with pytest.raises(SettingsError, match="no such folder"):
        BatchSettings.check_model("smplx", str(tmp_path / "nope"), environ={})
    touch(tmp_path / "a.mp4")
    assert cli.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"), "--model", "mano"]) == cli.EXIT_USAGE
    assert "one Take per hand" in capsys.readouterr().err and not (tmp_path / "o").exists()


# --- the output folder ------------------------------------------------------------------------------------------------
def finished_clip(store: OutputFolder, clip: Clip, key: str, status: str = "ok") -> Path:
    scratch = store.scratch(clip)
    touch(scratch / "a.fbx")
    (scratch / "result.json").write_text(json.dumps({"name": clip.name, "status": status, "settings_key": key,
                                                     "fingerprint": clip.fingerprint(),
                                                     "files": ["a.fbx", "result.json"]}))
    return store.publish(clip, scratch)


def test_a_clip_is_finished_only_when_ok_same_settings_same_input_and_whole(tmp_path):
    store = OutputFolder(tmp_path / "out")
    store.open()
    clip = Clip("a", touch(tmp_path / "a.mp4"), "video")
    folder = finished_clip(store, clip, "k1")
    assert store.finished(clip, "k1") is not None
    assert store.finished(clip, "k2") is None                  # other settings
    (folder / "a.fbx").unlink()
    assert store.finished(clip, "k1") is None                  # a listed file is gone
    finished_clip(store, clip, "k1")                           # publishing replaces the old folder whole
    assert store.finished(clip, "k1") is not None
    os.utime(clip.source, (5, 5))
    assert store.finished(clip, "k1") is None                  # the input changed
    finished_clip(store, clip, "k1", status="failed")
    assert store.finished(clip, "k1") is None                  # failures are retried
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")] == ["a"]
    store.close()


def test_a_published_clip_folder_is_not_private(tmp_path):
    import stat

    from inference_server.take import _UMASK

    store = OutputFolder(tmp_path / "out")
    store.open()
    try:
        clip = Clip(name="a", source=touch(tmp_path / "a.mp4"), kind="video")
        folder = finished_clip(store, clip, "k")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~_UMASK     # mkdtemp alone would leave 0700
    finally:
        store.close()


def test_a_killed_run_leaves_nothing_half_written_and_one_batch_per_folder(tmp_path):
    store = OutputFolder(tmp_path / "out")
    store.open()
    clip = Clip("a", touch(tmp_path / "a.mp4"), "video")
    touch(store.scratch(clip) / "half.fbx")                    # a clip in progress when the batch was killed
    with pytest.raises(StoreError, match="another batch"):
        OutputFolder(tmp_path / "out").open()
    store._lock_handle.close()                                 # the killed process's lock goes with it
    again = OutputFolder(tmp_path / "out")
    again.open()
    assert list(again.staging.iterdir()) == []                 # its scratch is cleared
    assert not (tmp_path / "out" / "a").exists()
    again.close()


def test_an_unwritable_output_folder_is_refused(tmp_path):
    target = touch(tmp_path / "file")
    with pytest.raises(StoreError, match="cannot create") as info:
        OutputFolder(target / "out").open()
    assert "--out" in info.value.fix


def test_summary_files_list_every_clip_with_its_error_and_fix(tmp_path):
    records = [
        {"name": "good", "status": "ok", "seconds": 10.0, "map_id": "mixamo", "source": "/c/good.mp4",
         "metrics": {"frames": 90, "duration_s": 3.0, "person_pct": 100.0, "left_hand_pct": 80.0,
                     "right_hand_pct": 95.5, "residual_px_median": 4.2, "jitter_mm_per_frame2": 3.1}},
        {"name": "old", "status": "ok", "skipped": True, "seconds": 9.0, "metrics": {"frames": 10}},
        {"name": "bad|clip", "status": "failed", "stage": "capture", "error": "cannot decode", "fix": "re-export",
         "seconds": 1.0},
        {"name": "later", "status": "pending"},
    ]
    rows = list(csv.DictReader(io.StringIO(summary_csv(records))))
    assert [r["name"] for r in rows] == ["good", "old", "bad|clip", "later"]
    assert rows[0]["realtime"] == "0.3" and rows[0]["left_hand_pct"] == "80.0" and rows[0]["map_id"] == "mixamo"
    assert rows[1]["skipped"] == "True" and rows[1]["realtime"] == ""
    assert rows[2]["error"] == "cannot decode" and rows[2]["fix"] == "re-export" and rows[2]["stage"] == "capture"
    touch(tmp_path / "good" / "thumb.jpg")
    text = report_markdown(records, {"counts": {"ok": 2, "skipped": 1, "failed": 1, "pending": 1}, "workers": 2,
                                     "backend": "local", "seconds": 30, "settings": {"formats": ["fbx"]}}, tmp_path)
    assert "![good](good/thumb.jpg)" in text
    assert "| bad\\|clip | failed | capture | cannot decode | re-export |" in text
    assert "skipped (finished before)" in text and "1 failed" in text and "1 not run" in text


def test_the_plain_display_reports_each_clip(tmp_path):
    stream = io.StringIO()
    display = Display(2, 0, plain=True, stream=stream)
    display.started("a")
    display.progress("a", "fit", 5, 10, 20.0)
    display.finished({"name": "a", "status": "ok", "seconds": 2.0, "metrics": {"frames": 90}})
    display.finished({"name": "b", "status": "failed", "stage": "capture", "error": "bad [header]", "fix": "x"})
    display.close()
    text = stream.getvalue()
    assert "[batch] 1/2 ok a: 90 frames in 2.0 s" in text
    assert "[batch] 2/2 FAILED b: failed at capture: bad [header] — fix: x" in text


# --- a worker against fixture engines (no pipeline) --------------------------------------------------------------------
def fixture_worker(tmp_path: Path, engine: str, **settings) -> ClipWorker:
    return ClipWorker(BatchSettings(out=tmp_path / "out", thumbnails=False, formats=(), **settings),
                      cache_dir=str(tmp_path / "cache"), engine_args=[sys.executable, str(ENGINES / engine)])


def test_an_engine_that_dies_fails_that_clip_only_and_is_started_again(tmp_path):
    worker = fixture_worker(tmp_path, "exit_mid_job.py")
    clip = Clip("a", touch(tmp_path / "a.mp4"), "video")
    first = worker.run(clip, tmp_path / "s1")
    pid = worker.engine_pid
    second = worker.run(clip, tmp_path / "s2")
    pid_again = worker.engine_pid
    worker.close()
    assert first["status"] == "failed" and first["stage"] == "capture"
    assert "engine stopped" in first["error"] and first["fix"]
    assert second["status"] == "failed" and None not in (pid, pid_again) and pid_again != pid
    log = (tmp_path / "s1" / "log.txt").read_text()
    assert "segfault in the fit stage" in log                  # the engine's own words are in the clip's log
    assert json.loads((tmp_path / "s1" / "result.json").read_text())["status"] == "failed"


def test_a_failed_job_carries_the_engines_message_and_fix(tmp_path):
    worker = fixture_worker(tmp_path, "fake_engine.py")
    seen = []
    record = worker.run(Clip("f", touch(tmp_path / "fail.mp4"), "video"), tmp_path / "s",
                        lambda *event: seen.append(event))
    worker.close()
    assert record["status"] == "failed" and record["error"].endswith("cannot decode")
    assert record["fix"] == "re-export the clip"


def test_cancel_stops_the_running_clip(tmp_path):
    worker = fixture_worker(tmp_path, "fake_engine.py")
    stages = []

    def progress(stage, done, total, fps):
        stages.append(stage)
        if stage == "detect":
            threading.Thread(target=worker.cancel).start()

    began = time.monotonic()
    record = worker.run(Clip("c", touch(tmp_path / "c.mp4"), "video"), tmp_path / "s", progress)
    worker.close()
    assert record["status"] == "cancelled" and "fit" not in stages
    assert time.monotonic() - began < 10


def test_a_clip_past_its_time_limit_is_stopped_in_the_engine_too(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_STEP_S", "0.2")             # a 4 s job
    worker = fixture_worker(tmp_path, "fake_engine.py", clip_timeout_s=1.5)
    began = time.monotonic()
    record = worker.run(Clip("slow", touch(tmp_path / "slow.mp4"), "video"), tmp_path / "s1")
    stopped = time.monotonic() - began
    assert record["status"] == "failed" and "longer than the batch's limit (1.5 s)" in record["error"]
    assert "--clip-timeout" in record["fix"] and stopped < 3.5
    # the engine was told to stop the job (the real engine runs one job at a time: the next clip would queue behind
    # it): the job never finishes later on
    from addon.client import Failed, Finished

    time.sleep(3.0)
    late = worker.engine().poll()
    worker.close()
    assert not [e for e in late if isinstance(e, (Finished, Failed))]


def test_the_command_line_refuses_bad_arguments_before_running_anything(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == cli.EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
    touch(tmp_path / "a.mp4")
    assert cli.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"), "--format", "obj"]) == cli.EXIT_USAGE
    assert "fix: --format takes" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"), "--rig", "x.blend"]) == cli.EXIT_USAGE
    (tmp_path / "empty").mkdir()
    assert cli.main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == cli.EXIT_USAGE
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()                       # nothing was created


def test_the_engine_limits_heap_growth_on_glibc_unless_the_user_tuned_malloc():
    """config.limit_heap_growth (called first thing by the engine; its effect is measured by `bench batch`)."""
    import subprocess

    code = "from inference_server import config; print(config.limit_heap_growth())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT)
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    tuned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(env, MALLOC_ARENA_MAX="4"), cwd=ROOT)
    assert plain.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")
    assert tuned.stdout.strip() == "False"


def test_the_motion_network_reaches_the_engine_and_a_missing_one_is_refused(tmp_path, capsys, monkeypatch):
    base = BatchSettings(out=tmp_path)
    assert "motion" not in base.capture_options()                                # prior: the engine's default
    assert BatchSettings(out=tmp_path, motion="fit").capture_options()["motion"] == "fit"
    assert BatchSettings.check_motion("fit", None) is None
    net = tmp_path / "motion_net.onnx"
    net.write_bytes(b"onnx")
    assert BatchSettings.check_motion("network", str(net)) == net.absolute()
    monkeypatch.setenv("REEL2RIG_MOTION_MODEL", str(net))
    assert BatchSettings.check_motion("network", None) == net                     # the engine's default file
    settings = BatchSettings(out=tmp_path, motion="network", motion_model=net)
    assert settings.capture_options()["motion"] == "network"
    assert settings.capture_options()["motion_model"] == str(net)
    assert settings.key() != base.key()
    assert BatchSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    monkeypatch.delenv("REEL2RIG_MOTION_MODEL")
    touch(tmp_path / "a.mp4")
    missing = tmp_path / "none.onnx"
    assert cli.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"), "--motion", "network",
                     "--motion-model", str(missing)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert str(missing) in err and "motion_train" in err and not (tmp_path / "o").exists()


def test_the_actors_height_reaches_the_engine_and_a_wrong_one_is_refused(tmp_path, capsys):
    base = BatchSettings(out=tmp_path)
    assert "actor_height_m" not in base.capture_options()                        # Anny's average body
    settings = BatchSettings(out=tmp_path, actor_height_m=1.64)
    assert settings.capture_options()["actor_height_m"] == 1.64
    assert settings.key() != base.key()                                           # finished clips are redone
    assert BatchSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    touch(tmp_path / "a.mp4")
    assert cli.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o"), "--actor-height", "164"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--actor-height 164" in err and "metres" in err and not (tmp_path / "o").exists()
