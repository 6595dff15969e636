"""Set up / Check Engine, the pure parts (addon/engine_setup.py): the install plan read from requirements.txt, the
PyTorch choice, pip failures in words, the cache's size and clearing; and the capture's time-left estimate."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from addon import engine_setup as es
from addon.capture import estimate_time_left, format_duration

ROOT = Path(__file__).resolve().parents[2]


def test_install_steps_follow_requirements_and_skip_development() -> None:
    steps = es.read_install_steps(ROOT / "requirements.txt")
    assert steps[0].is_torch and steps[0].packages == ("torch==2.13.0",)
    assert steps[1].no_deps and steps[1].packages == ("mediapipe==0.10.21",)
    names = [p.split("==")[0] for step in steps for p in step.packages]
    for engine_needs in ("numpy", "opencv-contrib-python", "anny", "roma", "scipy", "onnxruntime"):
        assert engine_needs in names
    for dev_only in ("bpy", "pytest", "mypy", "ray", "fake-bpy-module-5.0"):
        assert dev_only not in names, f"{dev_only} is for development, not the engine"
    assert all("==" in p for step in steps for p in step.packages), "every engine package is pinned"


def test_install_steps_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(es.SetupError, match="cannot read"):
        es.read_install_steps(tmp_path / "missing.txt")
    empty = tmp_path / "requirements.txt"
    empty.write_text("# --- step 1 (development)\npytest==9.2.0\n")
    with pytest.raises(es.SetupError, match="lists no engine packages"):
        es.read_install_steps(empty)


def test_nvidia_smi_parsing() -> None:
    text = "NVIDIA GeForce RTX 4090, 555.42.06, 24564\nNVIDIA H100 80GB HBM3, 560.35.03, 81559\n\n"
    gpus = es.parse_nvidia_smi(text)
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3"]
    assert gpus[0].driver == "555.42.06" and gpus[1].memory_mb == 81559
    assert es.parse_nvidia_smi("") == [] and es.parse_nvidia_smi("No devices were found") == []
    assert "RTX 4090" in es.describe_gpus(gpus) and "+1 more" in es.describe_gpus(gpus)
    assert "CPU" in es.describe_gpus([])


def test_torch_build_choice() -> None:
    gpu = [es.GpuInfo("RTX", "550", 8000)]
    auto_with_gpu = es.resolve_torch_build("AUTO", gpu)
    assert auto_with_gpu == ("cpu" if sys.platform == "darwin" else "cuda")
    assert es.resolve_torch_build("AUTO", []) == "cpu"
    assert es.resolve_torch_build("cpu", gpu) == "cpu" and es.resolve_torch_build("PIP", []) == "pip"
    with pytest.raises(es.SetupError, match="unknown PyTorch build"):
        es.resolve_torch_build("ROCM", [])
    # Linux: PyPI's torch is the CUDA build, the CPU one comes from PyTorch's own index; Windows the other way round.
    assert es.torch_pip_args("cpu", "linux") == ["--index-url", es.TORCH_CPU_INDEX]
    assert es.torch_pip_args("cuda", "linux") == []
    assert es.torch_pip_args("cuda", "win32") == ["--index-url", es.TORCH_CUDA_INDEX]
    assert es.torch_pip_args("cpu", "win32") == [] and es.torch_pip_args("cpu", "darwin") == []
    assert es.torch_pip_args("pip", "linux") == []


def test_base_python_versions() -> None:
    es.check_base_python((3, 11, 7), "/usr/bin/python3.11")
    with pytest.raises(es.SetupError, match=r"Python 3\.13 .*install Python 3\.11"):
        es.check_base_python((3, 13, 0), "/blender/python/bin/python3.13")
    assert es.python_version(sys.executable)[:2] == sys.version_info[:2]
    with pytest.raises(es.SetupError, match="cannot run Python"):
        es.python_version("/nonexistent/python")


@pytest.mark.parametrize("tail, fix", [
    (["ERROR: Could not find a version that satisfies the requirement torch==2.13.0"], "no build for this Python"),
    (["WARNING: Retrying ... Failed to establish a new connection", "ERROR: No matching distribution found for x"],
     "no build for this Python"),
    (["Temporary failure in name resolution"], "cannot be reached"),
    (["ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"], "disk is full"),
])
def test_pip_failures_name_the_fix(tail: list[str], fix: str) -> None:
    message = es.explain_failure(["/env/bin/python", "-m", "pip", "install", "torch==2.13.0"], tail, 1)
    assert fix in message and "pip install" in message


def _tree(root: Path, files: dict[str, int]) -> None:
    for rel, size in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)


def test_cache_usage_and_clear_keep_models_and_takes(tmp_path: Path) -> None:
    _tree(tmp_path, {"takes/clip.take.npz": 1000, "takes/clip.take.json": 10,
                     "anny/abc/build_compact_model_data_1.safetensors": 5000, "warp/kernel.bin": 300,
                     "stages/anny_skeleton_v6_0.6.2.npz": 200, "stages/anny_mesh_v1_0.6.2.npz": 400,
                     "stages/detect/aa/bb.npz": 7000, "stages/fit/cc.npz": 900, "logs/engine-1.log": 50})
    usage = es.cache_usage(tmp_path)
    assert (usage.total, usage.takes, usage.models, usage.clearable) == (14860, 1010, 5900, 7950)
    assert "takes 1010 B" in usage.text() and "7.8 KB" in usage.text()
    assert es.clear_cache(tmp_path) == 7950
    assert es.cache_usage(tmp_path) == es.CacheUsage(6910, 1010, 5900, 0)
    assert not (tmp_path / "stages" / "detect").exists() and not (tmp_path / "logs").exists()
    assert (tmp_path / "stages" / "anny_mesh_v1_0.6.2.npz").is_file() and (tmp_path / "takes").is_dir()
    assert es.cache_usage(tmp_path / "nothing") == es.CacheUsage(0, 0, 0, 0)
    assert es.clear_cache(tmp_path / "nothing") == 0


def test_engine_report_round_trip() -> None:
    report = es.EngineReport([es.CheckItem("numpy", True, "1.26.4"),
                              es.CheckItem("anny", False, "ModuleNotFoundError: No module named 'anny'", "set up")])
    again = es.EngineReport.from_json(report.to_json())
    assert again.items == report.items and not again.ok
    assert again.first_problem().startswith("anny: ModuleNotFoundError") and "set up" in again.first_problem()
    assert "[FAIL] anny" in again.text() and "fix: set up" in again.text()


def test_time_left() -> None:
    assert estimate_time_left(1.0, 0.5) is None            # too early: under 2 s
    assert estimate_time_left(10.0, 0.01) is None          # too early: under 3 %
    assert estimate_time_left(30.0, 0.25) == pytest.approx(90.0)
    assert estimate_time_left(30.0, 1.0) is None
    assert [format_duration(s) for s in (4.4, 65, 3723)] == ["4 s", "1:05", "1:02:03"]


def test_a_quiet_step_still_moves_the_bar(tmp_path: Path) -> None:
    """The model build prints nothing for minutes: its share of the bar fills with time instead."""
    import subprocess

    runner = es.SetupRunner(es.SetupPlan(folder=tmp_path / "engine", base_python=sys.executable))
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    runner._tick(proc, 0.5, 0.2, expected_s=1.0)                  # returns when the child ends
    fraction = runner.status.fraction
    assert 0.5 + 0.2 * 0.5 < fraction < 0.5 + 0.2 * 0.95, fraction   # more than half its share, never all of it
