"""Set up Engine and Check Engine for real (addon/engine_setup.py): a real virtual environment, real pip, a real
engine process. No network: the packages come from a wheel folder made here (``--no-index --find-links``), and the
heavy engine packages (torch, mediapipe, anny) are lent to the new environment by a ``.pth`` line pointing at this
checkout's .venv — so the whole path, from ``python -m venv`` to the engine answering ``initialize``, runs in
seconds instead of installing 3 GB."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from addon import engine_setup as es
from engine_setup_helpers import PROBE, lend_checkout_packages, make_wheel, requirements, slow_index

ROOT = Path(__file__).resolve().parents[2]
def test_a_new_environment_without_the_engine_packages_fails_with_the_fix(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    plan = es.SetupPlan(folder=tmp_path / "engine", base_python=sys.executable, requirements=requirements(tmp_path),
                        pip_args=("--no-index", "--find-links", str(wheels)), root=ROOT, warm=False)
    runner = es.SetupRunner(plan)
    runner.start()
    status = runner.wait(300)
    assert status.state == es.FAILED, status
    # the environment and the package are there; the check then names what is missing and how to fix it
    python = es.venv_python(plan.folder)
    assert python.is_file()
    assert list(plan.folder.glob(f"lib/python3*/site-packages/{PROBE}/__init__.py")) \
        or list(plan.folder.glob(f"Lib/site-packages/{PROBE}/__init__.py"))
    assert "numpy" in status.message and "Set up Engine" in status.message, status.message
    assert runner.report is not None and not runner.report.ok
    assert not es.is_complete(plan.folder, plan.requirements), "a failed setup must not be marked complete"
    log = runner.log_path.read_text()
    assert "-m venv" in log and "pip install" in log and "Successfully installed" in log
    assert "[FAIL] numpy" in log


def test_setup_succeeds_and_the_engine_answers(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    folder = tmp_path / "engine"
    lend_checkout_packages(folder)
    plan = es.SetupPlan(folder=folder, base_python=sys.executable, requirements=requirements(tmp_path),
                        pip_args=("--no-index", "--find-links", str(wheels)), root=ROOT,
                        cache_dir=os.environ.get("REEL2RIG_CACHE", str(ROOT / ".cache")), warm=True)
    stages: list[str] = []
    runner = es.SetupRunner(plan)
    runner.start()
    while runner.running:
        status = runner.status
        if not stages or stages[-1] != status.stage:
            stages.append(status.stage)
        time.sleep(0.05)
    status = runner.wait()
    assert status.state == es.FINISHED, status.message
    assert status.python == str(es.venv_python(folder)) and status.fraction == 1.0
    assert es.is_complete(folder, plan.requirements)
    assert runner.report is not None and runner.report.ok
    assert any(item.name == "Engine" and "answers initialize" in item.detail for item in runner.report.items)
    assert any(s.startswith("Installing") for s in stages) and any(s.startswith("Building the Anny") for s in stages)
    # a second run resumes: nothing to install, still complete
    again = es.SetupRunner(plan)
    again.start()
    assert again.wait(300).state == es.FINISHED
    assert "Requirement already satisfied" in again.log_path.read_text()


def test_cancel_stops_pip_and_leaves_the_environment_incomplete(tmp_path: Path) -> None:
    server, index = slow_index()
    try:
        plan = es.SetupPlan(folder=tmp_path / "engine", base_python=sys.executable,
                            requirements=requirements(tmp_path),
                            pip_args=("--index-url", index, "--timeout", "120", "--retries", "0"), root=ROOT,
                            warm=False)
        runner = es.SetupRunner(plan)
        runner.start()
        deadline = time.monotonic() + 300
        while not runner.status.stage.startswith("Installing") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # pip is waiting on the index now
        assert runner.running
        started = time.monotonic()
        runner.cancel()
        status = runner.wait(30)
        assert status.state == es.CANCELLED and time.monotonic() - started < 10, status
        assert "run it again to resume" in status.message
        assert not es.is_complete(plan.folder, plan.requirements)
    finally:
        server.shutdown()


def test_check_engine_on_the_checkout_environment() -> None:
    report = es.check_engine(sys.executable, ROOT, os.environ.get("REEL2RIG_CACHE"))
    assert report.ok, report.text()
    names = [item.name for item in report.items]
    for name in ("Engine Python", "torch", "mediapipe", "anny", "PyTorch device", "Engine"):
        assert name in names
    assert "cpu" in report.info.get("devices", [])


def test_check_engine_names_what_is_missing(tmp_path: Path) -> None:
    report = es.check_engine(str(tmp_path / "nope" / "python"), ROOT)
    assert not report.ok and "does not exist" in report.first_problem() and "Set up Engine" in report.first_problem()


def test_command_line_sets_up_and_checks(tmp_path: Path) -> None:
    """``python -m addon.engine_setup``: the buttons' work for provisioning machines without Blender."""
    import subprocess

    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    folder = tmp_path / "engine"
    lend_checkout_packages(folder)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "addon.engine_setup", "setup", str(folder), "--python",
                           sys.executable, "--torch", "pip", "--requirements", str(requirements(tmp_path)),
                           "--pip-option=--no-index", f"--pip-option=--find-links={wheels}", "--no-warm"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FINISHED: Engine ready" in proc.stdout and "Installing reel2rig_probe_pkg (1/1)" in proc.stdout
    check = subprocess.run([sys.executable, "-m", "addon.engine_setup", "check", str(tmp_path / "none")],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert check.returncode == 1 and "[FAIL] Engine Python" in check.stdout
