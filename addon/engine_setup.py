"""Set up and check the engine's own Python environment from inside Blender. No bpy.

Reel2Rig never installs packages into Blender's Python. **Set up engine** makes a separate virtual environment
(from a Python the user names, or Blender's own) and installs the pinned engine packages of ``requirements.txt``
into it, section by section exactly as ``./reel2rig setup`` does (torch first, then mediapipe without its
dependencies, then the rest; the development section is skipped). Each step is a child process whose output goes
to a log file; :class:`SetupRunner` runs them on a worker thread and keeps a :class:`SetupStatus` (stage, fraction,
last line) the operator copies into the UI on a timer. Cancel kills the running child; the environment is marked
complete (a stamp file holding the requirements' hash) only after every step and the check passed, so a cancelled
or failed setup is redone from where pip finds it next time.

**Check engine** (:func:`check_engine`) reports, item by item, what works and what to fix: the Python and its
version, each engine package's import and version, torch's CUDA, the model cache, and whether the engine answers
``initialize``.

PyTorch: an NVIDIA GPU is detected with ``nvidia-smi``; :func:`torch_pip_args` picks the wheel index for the
platform (on Linux PyPI's torch is the CUDA build and download.pytorch.org/whl/cpu the small CPU one).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .paths import PACKAGE_ROOT, env_python

REQUIREMENTS_NAME = "requirements.txt"
STAMP_NAME = ".reel2rig-engine"
LOG_NAME = "setup.log"
#: The engine's packages have wheels for these Python versions (mediapipe 0.10.21: 3.9-3.12; torch 2.13 / bpy 5.0: 3.11).
SUPPORTED_PYTHONS = ((3, 10), (3, 11), (3, 12))
RECOMMENDED_PYTHON = "3.11"
#: The Anny model build's usual length (1-2 minutes here; 3.8 measured on 2 busy cores): paces its progress bar.
WARM_EXPECTED_S = 120.0
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
#: Imported by the check, in this order; (module, distribution name for pip).
ENGINE_MODULES = (("numpy", "numpy"), ("scipy", "scipy"), ("cv2", "opencv-contrib-python"), ("torch", "torch"),
                  ("roma", "roma"), ("mediapipe", "mediapipe"), ("anny", "anny"), ("onnxruntime", "onnxruntime"))

RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"


class SetupError(Exception):
    """The engine environment cannot be set up as asked; the message says what to do."""


# ----------------------------------------------------------------------------------------------------------------
# requirements


@dataclasses.dataclass(frozen=True)
class InstallStep:
    title: str
    packages: tuple[str, ...]
    no_deps: bool = False
    is_torch: bool = False


def read_install_steps(requirements: Path) -> list[InstallStep]:
    """The engine's install steps from ``requirements.txt``'s ``# --- step N (...)`` sections, in order.

    A section whose header says ``development`` is skipped (tests and tools: bpy, pytest, mypy, ray...). A section
    header with ``--no-deps`` installs without dependencies. A step made only of ``torch==…`` is the torch step
    (it gets the index :func:`torch_pip_args` picks)."""
    try:
        text = requirements.read_text(encoding="utf-8")
    except OSError as exc:
        raise SetupError(f"cannot read the engine's package list {requirements}: {exc}; reinstall the Reel2Rig "
                         "extension") from exc
    sections: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# --- step"):
            sections.append((line, []))
        elif line and not line.startswith("#") and sections:
            sections[-1][1].append(line.split("#", 1)[0].strip())
    steps: list[InstallStep] = []
    for header, packages in sections:
        if "development" in header or not packages:
            continue
        names = [re.split(r"[=<>!~\[ ;]", p, maxsplit=1)[0].lower() for p in packages]
        is_torch = names == ["torch"]
        title = "PyTorch" if is_torch else (", ".join(names) if len(names) <= 2 else
                                            f"{len(names)} packages ({', '.join(names[:3])}, …)")
        steps.append(InstallStep(title=title, packages=tuple(packages), no_deps="--no-deps" in header,
                                 is_torch=is_torch))
    if not steps:
        raise SetupError(f"{requirements} lists no engine packages; reinstall the Reel2Rig extension")
    return steps


def requirements_hash(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# GPU and PyTorch


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_mb: int


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits`` → GPUs."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0]:
            continue
        try:
            memory = int(float(parts[2])) if len(parts) > 2 else 0
        except ValueError:
            memory = 0
        gpus.append(GpuInfo(name=parts[0], driver=parts[1], memory_mb=memory))
    return gpus


def detect_nvidia(timeout: float = 10.0) -> list[GpuInfo]:
    """The NVIDIA GPUs the driver sees ([] without nvidia-smi, a driver, or a GPU)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        proc = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(proc.stdout) if proc.returncode == 0 else []


def resolve_torch_build(choice: str, gpus: Sequence[GpuInfo]) -> str:
    """'cpu', 'cuda' or 'pip' (pip's own configuration decides) from the preference 'AUTO' / 'CPU' / 'CUDA' /
    'PIP'. AUTO: CUDA when an NVIDIA GPU was found (never on macOS), else CPU."""
    choice = choice.upper()
    if choice == "PIP":
        return "pip"
    if choice == "CUDA":
        if sys.platform == "darwin":
            raise SetupError("PyTorch has no CUDA build for macOS: choose CPU (Apple GPUs are not used yet)")
        return "cuda"
    if choice == "CPU":
        return "cpu"
    if choice != "AUTO":
        raise SetupError(f"unknown PyTorch build {choice!r}: choose Auto, CPU, CUDA or pip's configuration")
    return "cuda" if gpus and sys.platform != "darwin" else "cpu"


def torch_pip_args(build: str, platform: str = sys.platform) -> list[str]:
    """pip arguments for the torch step. Linux: PyPI's torch is the CUDA build, the CPU build (a tenth of the
    size) comes from download.pytorch.org. Windows: PyPI's torch is CPU only, CUDA comes from download.pytorch.org.
    macOS: PyPI's torch (CPU/Metal). 'pip': no index arguments (a wheelhouse or mirror in pip.conf decides)."""
    if build == "pip" or platform == "darwin":
        return []
    if build == "cpu":
        return [] if platform == "win32" else ["--index-url", TORCH_CPU_INDEX]
    if build == "cuda":
        return ["--index-url", TORCH_CUDA_INDEX] if platform == "win32" else []
    raise SetupError(f"unknown PyTorch build {build!r}")


def describe_gpus(gpus: Sequence[GpuInfo]) -> str:
    if not gpus:
        return "No NVIDIA GPU found: the engine runs on the CPU"
    first = gpus[0]
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return f"NVIDIA {first.name}, {first.memory_mb / 1024:.0f} GB, driver {first.driver}{more}: CUDA PyTorch"


# ----------------------------------------------------------------------------------------------------------------
# Pythons and environments


#: The interpreter of the environment in ``folder`` (paths.env_python: one layout rule for the add-on).
venv_python = env_python


def python_version(python: str | Path, timeout: float = 30.0) -> tuple[int, int, int]:
    """The version of the interpreter at ``python`` (SetupError when it cannot be run)."""
    try:
        proc = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:3])"],
                              capture_output=True, text=True, timeout=timeout, env=clean_env())
    except (OSError, subprocess.SubprocessError) as exc:
        raise SetupError(f"cannot run Python '{python}': {exc}") from exc
    try:
        major, minor, micro = (int(x) for x in proc.stdout.split())
    except ValueError as exc:
        raise SetupError(f"'{python}' is not a working Python: {(proc.stderr or proc.stdout).strip()[-300:]}") \
            from exc
    return major, minor, micro


def check_base_python(version: tuple[int, ...], python: str | Path) -> None:
    if tuple(version[:2]) not in SUPPORTED_PYTHONS:
        supported = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_PYTHONS)
        raise SetupError(f"Python {version[0]}.{version[1]} at '{python}' cannot run the engine (its packages "
                         f"exist for Python {supported}): install Python {RECOMMENDED_PYTHON} and choose it as Base "
                         "Python in the Reel2Rig preferences")


def default_base_python() -> str:
    """Blender's own Python (``sys.executable`` inside Blender 2.91+)."""
    return sys.executable


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the engine's Python: Blender's PYTHONHOME/PYTHONPATH must not leak into it."""
    env = dict(os.environ)
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONNOUSERSITE"):
        env.pop(name, None)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra or {})
    return env


def is_complete(folder: Path, requirements: Path) -> bool:
    """True when ``folder`` holds an environment a setup finished for exactly these requirements."""
    try:
        stamp = (folder / STAMP_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return venv_python(folder).is_file() and stamp == requirements_hash(requirements)


# ----------------------------------------------------------------------------------------------------------------
# the setup runner


@dataclasses.dataclass
class SetupStatus:
    state: str = RUNNING
    stage: str = "starting"
    fraction: float = 0.0
    line: str = ""          # the last line a child wrote
    message: str = ""       # the outcome, when not RUNNING
    python: str = ""        # the new environment's Python, when FINISHED


@dataclasses.dataclass(frozen=True)
class SetupPlan:
    folder: Path                     # the environment goes here (created)
    base_python: str                 # makes the environment
    requirements: Path = PACKAGE_ROOT / REQUIREMENTS_NAME
    torch_build: str = "cpu"         # 'cpu' | 'cuda' | 'pip'
    pip_args: tuple[str, ...] = ()   # extra, for every pip call (e.g. --find-links WHEELHOUSE, --no-index)
    root: Path = PACKAGE_ROOT        # the engine's code (inference_server/)
    cache_dir: str | None = None     # where the check builds/finds the model cache
    warm: bool = True                # build the Anny model cache after installing (first time: 1-2 minutes)


#: Share of the progress bar per phase: create, installs (split evenly), warm, check.
_CREATE, _INSTALL, _WARM = 0.05, 0.75, 0.12


class SetupRunner:
    """Runs a :class:`SetupPlan` on a worker thread. ``status`` is safe to read from Blender's main thread."""

    def __init__(self, plan: SetupPlan, on_line: Callable[[str], None] | None = None):
        self.plan = plan
        self.on_line = on_line
        self.log_path = plan.folder.parent / f"{plan.folder.name}-{LOG_NAME}"
        self.report: EngineReport | None = None
        self._status = SetupStatus()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._log: Any = None

    # -- control ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.plan.folder.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="reel2rig-engine-setup", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _kill_tree(proc)

    def wait(self, timeout: float | None = None) -> SetupStatus:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status

    @property
    def status(self) -> SetupStatus:
        with self._lock:
            return dataclasses.replace(self._status)

    @property
    def running(self) -> bool:
        return self.status.state == RUNNING

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self._status, name, value)

    # -- the work --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with open(self.log_path, "w", encoding="utf-8") as log:
                self._log = log
                log.write(f"Reel2Rig engine setup {time.strftime('%Y-%m-%d %H:%M:%S')}\n{self.plan}\n")
                python = self._work()
            self._set(state=FINISHED, fraction=1.0, stage="done", python=str(python),
                      message=f"Engine ready: {python}" + (f" ({self.report.summary()})" if self.report else ""))
        except _Cancelled:
            self._set(state=CANCELLED, message=f"Engine setup cancelled; run it again to resume. Log: {self.log_path}")
        except SetupError as exc:
            self._set(state=FAILED, message=f"{exc} (log: {self.log_path})")
        except Exception as exc:  # noqa: BLE001 - reported to the user, never lost in a thread
            self._set(state=FAILED, message=f"Engine setup failed: {type(exc).__name__}: {exc} (log: {self.log_path})")

    def _work(self) -> Path:
        plan = self.plan
        steps = read_install_steps(plan.requirements)
        self._set(stage="Checking Python", fraction=0.0)
        version = python_version(plan.base_python)
        check_base_python(version, plan.base_python)
        python = venv_python(plan.folder)
        if not python.is_file():
            self._set(stage=f"Creating the environment (Python {version[0]}.{version[1]})")
            self._call([plan.base_python, "-m", "venv", str(plan.folder)], 0.0, _CREATE)
        (plan.folder / STAMP_NAME).unlink(missing_ok=True)
        share = _INSTALL / len(steps)
        for i, step in enumerate(steps):
            start = _CREATE + i * share
            self._set(stage=f"Installing {step.title} ({i + 1}/{len(steps)})", fraction=start)
            args = [str(python), "-m", "pip", "install", "--progress-bar", "off", *plan.pip_args]
            if step.no_deps:
                args.append("--no-deps")
            if step.is_torch:
                args += torch_pip_args(plan.torch_build)
            self._call(args + list(step.packages), start, share, expected=len(step.packages))
        if plan.warm:
            self._set(stage="Building the Anny body model (first time: 1–2 minutes)", fraction=_CREATE + _INSTALL)
            env = {"PYTHONPATH": str(plan.root)}
            if plan.cache_dir:
                env["REEL2RIG_CACHE"] = plan.cache_dir
            self._call([str(python), "-m", "inference_server", "warm"], _CREATE + _INSTALL, _WARM,
                       env=env, cwd=plan.root, expected_s=WARM_EXPECTED_S)
        self._set(stage="Checking the engine", fraction=_CREATE + _INSTALL + _WARM)
        self.report = check_engine(str(python), plan.root, plan.cache_dir)
        self._log.write("\n" + self.report.text() + "\n")
        if not self.report.ok:
            raise SetupError(f"the packages installed but the engine does not work: {self.report.first_problem()}")
        (plan.folder / STAMP_NAME).write_text(requirements_hash(plan.requirements) + "\n", encoding="utf-8")
        return python

    def _call(self, args: list[str], start: float, share: float, expected: int = 0,
              env: dict[str, str] | None = None, cwd: Path | None = None, expected_s: float | None = None) -> None:
        """Run one child, streaming its output to the log; progress moves within [start, start+share]: by the
        lines pip writes (``expected`` packages), or by the time it has run against ``expected_s`` for a child that
        stays quiet (the model build)."""
        if self._cancel.is_set():
            raise _Cancelled
        self._log.write(f"\n$ {' '.join(args)}\n")
        self._log.flush()
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    encoding="utf-8", errors="replace", env=clean_env(env),
                                    cwd=str(cwd) if cwd else None, **kwargs)
        except OSError as exc:
            raise SetupError(f"cannot run {args[0]}: {exc}") from exc
        self._proc = proc
        if self._cancel.is_set():  # cancelled between the check above and Popen
            _kill_tree(proc)
        if expected_s:
            threading.Thread(target=self._tick, args=(proc, start, share, expected_s), daemon=True).start()
        tail: list[str] = []
        seen = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            self._log.write(line)
            text = line.strip()
            if not text:
                continue
            tail = (tail + [text])[-15:]
            if self.on_line is not None:
                self.on_line(text)
            seen += pip_progress_weight(text)
            within = min(seen / (2.0 * expected + 1.0), 0.95) if expected else 0.0
            self._set(line=text[:200], fraction=start + share * within)
        code = proc.wait()
        self._proc = None
        self._log.flush()
        if self._cancel.is_set():
            raise _Cancelled
        if code != 0:
            raise SetupError(explain_failure(args, tail, code))
        self._set(fraction=start + share)


    def _tick(self, proc: subprocess.Popen, start: float, share: float, expected_s: float) -> None:
        """Move the bar while a quiet child runs: 1 − exp(−t / expected) of its share, never quite full."""
        began = time.monotonic()
        while proc.poll() is None:
            within = 0.95 * (1.0 - math.exp(-(time.monotonic() - began) / expected_s))
            with self._lock:
                if self._status.state == RUNNING:
                    self._status.fraction = max(self._status.fraction, start + share * within)
            time.sleep(0.5)


class _Cancelled(Exception):
    pass


def pip_progress_weight(line: str) -> int:
    """How far a line of pip's output moves an install: 1 per package collected, 1 when installing starts."""
    return 1 if line.startswith(("Collecting ", "Requirement already satisfied", "Installing collected")) else 0


def explain_failure(args: Sequence[str], tail: Sequence[str], code: int) -> str:
    """A pip/venv failure in a sentence that names the fix."""
    text = "\n".join(tail)
    what = " ".join(args[:4]) + (" …" if len(args) > 4 else "")
    errors = [line for line in tail if line.startswith("ERROR")] or list(tail[-2:])
    detail = errors[0] if errors else f"exit status {code}"
    if re.search(r"No matching distribution|Could not find a version", text):
        fix = ("a package has no build for this Python or platform, or no index is reachable: check the network, "
               f"use Python {RECOMMENDED_PYTHON}, or give a wheel folder with --find-links in Extra pip Options")
    elif re.search(r"Temporary failure in name resolution|Failed to establish|ConnectionError|timed out", text):
        fix = "the package index cannot be reached: check the network or proxy, or install from a wheel folder"
    elif re.search(r"No space left on device", text):
        fix = "the disk is full: free space (the engine needs about 3 GB) or choose another Engine Folder"
    elif "ensurepip" in text or "venv" in what:
        fix = "this Python cannot make virtual environments: choose another Base Python (python.org's installers can)"
    else:
        fix = "see the log for the whole output"
    return f"'{what}' failed: {detail} — {fix}"


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        if sys.platform == "win32":
            proc.kill()
        else:
            os.killpg(proc.pid, 9)
    except (OSError, ProcessLookupError):
        pass


# ----------------------------------------------------------------------------------------------------------------
# check engine

_PROBE = r"""
import importlib, json, sys
out = {"python": sys.executable, "version": "%d.%d.%d" % sys.version_info[:3], "modules": {}}
for name in MODULES:
    try:
        mod = importlib.import_module(name)
        out["modules"][name] = {"ok": True, "version": str(getattr(mod, "__version__", "?"))}
    except BaseException as exc:
        out["modules"][name] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
if out["modules"].get("torch", {}).get("ok"):
    import torch
    out["cuda"] = bool(torch.cuda.is_available())
    out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if out["cuda"] else []
print("REEL2RIG-PROBE " + json.dumps(out))
"""


@dataclasses.dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclasses.dataclass
class EngineReport:
    items: list[CheckItem]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)   # the engine's initialize result

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)

    def first_problem(self) -> str:
        for item in self.items:
            if not item.ok:
                return f"{item.name}: {item.detail}" + (f" — {item.fix}" if item.fix else "")
        return ""

    def summary(self) -> str:
        bad = [i for i in self.items if not i.ok]
        if not bad:
            devices = ", ".join(self.info.get("devices", [])) or "cpu"
            return f"engine {self.info.get('engine_version', '?')} answers; devices: {devices}"
        return f"{len(bad)} problem{'s' if len(bad) > 1 else ''}: {self.first_problem()}"

    def text(self) -> str:
        lines = []
        for item in self.items:
            lines.append(f"[{'ok' if item.ok else 'FAIL'}] {item.name}: {item.detail}")
            if item.fix and not item.ok:
                lines.append(f"       fix: {item.fix}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"items": [dataclasses.asdict(i) for i in self.items], "info": self.info})

    @classmethod
    def from_json(cls, text: str) -> "EngineReport":
        data = json.loads(text)
        return cls(items=[CheckItem(**i) for i in data.get("items", [])], info=dict(data.get("info", {})))


SETUP_FIX = "press Set up Engine in Preferences › Add-ons › Reel2Rig"


def check_engine(python: str, root: Path = PACKAGE_ROOT, cache_dir: str | None = None,
                 start_timeout: float = 180.0, probe_timeout: float = 180.0) -> EngineReport:
    """What works in the engine environment at ``python`` and what to fix, item by item (never raises)."""
    items: list[CheckItem] = []
    report = EngineReport(items)
    if not python or not Path(python).is_file():
        items.append(CheckItem("Engine Python", False, f"'{python}' does not exist", SETUP_FIX))
        return report
    try:
        version = python_version(python)
    except SetupError as exc:
        items.append(CheckItem("Engine Python", False, str(exc), SETUP_FIX))
        return report
    supported = tuple(version[:2]) in SUPPORTED_PYTHONS
    items.append(CheckItem("Engine Python", supported, f"{python} (Python {'.'.join(map(str, version))})",
                           "" if supported else f"use Python {RECOMMENDED_PYTHON}: {SETUP_FIX}"))
    modules = [m for m, _ in ENGINE_MODULES]
    script = _PROBE.replace("MODULES", repr(modules))
    try:
        proc = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=probe_timeout,
                              env=clean_env({"PYTHONPATH": str(root)}), cwd=str(root))
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("REEL2RIG-PROBE ")), "")
        probe = json.loads(line[len("REEL2RIG-PROBE "):]) if line else None
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        probe, proc = None, None
        items.append(CheckItem("Packages", False, f"the import check did not run: {exc}", SETUP_FIX))
    if probe is None and proc is not None:
        items.append(CheckItem("Packages", False, f"the import check failed: {(proc.stderr or '').strip()[-300:]}",
                               SETUP_FIX))
    if probe is not None:
        for module, dist in ENGINE_MODULES:
            entry = probe["modules"].get(module, {})
            if entry.get("ok"):
                items.append(CheckItem(dist, True, entry.get("version", "?")))
            else:
                items.append(CheckItem(dist, False, entry.get("error", "not checked"),
                                       f"{SETUP_FIX} (or: '{python}' -m pip install {dist})"))
        if "cuda" in probe:
            gpus = probe.get("cuda_devices") or []
            detail = f"CUDA: {', '.join(gpus)}" if probe["cuda"] else "CPU only (no CUDA device or a CPU build)"
            items.append(CheckItem("PyTorch device", True, detail))
    if not report.ok:
        items.append(CheckItem("Engine", False, "not started: the packages above are missing", SETUP_FIX))
        return report
    from .client import EngineClient, EngineError
    client = EngineClient(python, root=root, cache_dir=cache_dir)
    try:
        info = client.start(timeout=start_timeout)
        report.info = dict(info)
        items.append(CheckItem("Engine", True, f"version {info.get('engine_version', '?')} answers initialize; "
                               f"devices: {', '.join(info.get('devices', []))}; cache: {info.get('cache_dir', '?')}"))
    except EngineError as exc:
        tail = (exc.stderr_tail or "").strip().splitlines()
        items.append(CheckItem("Engine", False, f"{exc.message if hasattr(exc, 'message') else exc}"
                               + (f" ({tail[-1]})" if tail else ""), f"see the engine log {client.log_path}"))
    finally:
        client.shutdown()
    return report


# ----------------------------------------------------------------------------------------------------------------
# cache


CACHE_KEEP = ("anny", "warp", "takes")      # model builds and the Takes scenes refer to
CACHE_KEEP_PREFIXES = ("anny_skeleton_", "anny_mesh_")   # model files inside stages/


@dataclasses.dataclass(frozen=True)
class CacheUsage:
    total: int
    takes: int
    models: int
    clearable: int

    def text(self) -> str:
        return (f"{human_bytes(self.total)}: takes {human_bytes(self.takes)}, models {human_bytes(self.models)}, "
                f"stage caches and logs {human_bytes(self.clearable)}")


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _clearable(path: Path, cache: Path) -> bool:
    rel = path.relative_to(cache).parts
    if not rel or rel[0] in CACHE_KEEP:
        return False
    return not (rel[0] == "stages" and len(rel) == 2 and rel[1].startswith(CACHE_KEEP_PREFIXES))


def _files(folder: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, names in os.walk(folder):
        out += [Path(dirpath, n) for n in names]
    return out


def cache_usage(cache_dir: str | Path) -> CacheUsage:
    cache = Path(cache_dir)
    total = takes = models = clearable = 0
    if not cache.is_dir():
        return CacheUsage(0, 0, 0, 0)
    for path in _files(cache):
        try:
            size = path.lstat().st_size
        except OSError:
            continue
        total += size
        first = path.relative_to(cache).parts[0]
        if first == "takes":
            takes += size
        elif _clearable(path, cache):
            clearable += size
        else:
            models += size
    return CacheUsage(total, takes, models, clearable)


def clear_cache(cache_dir: str | Path) -> int:
    """Delete the stage caches and logs (recomputed or rewritten when needed); keep model builds and Takes.
    Returns the bytes freed."""
    cache = Path(cache_dir)
    if not cache.is_dir():
        return 0
    freed = 0
    for path in _files(cache):
        if _clearable(path, cache):
            try:
                size = path.lstat().st_size
                path.unlink()
                freed += size
            except OSError:
                pass
    folders = sorted((Path(d) for d, _, _ in os.walk(cache)), key=lambda f: -len(f.parts))
    for folder in folders:  # deepest first: a folder left empty goes too
        if folder != cache and _clearable(folder, cache):
            try:
                folder.rmdir()
            except OSError:  # not empty (it holds something kept)
                pass
    return freed


# ----------------------------------------------------------------------------------------------------------------
# command line: the same setup and check without Blender (provisioning machines, timing a setup)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m addon.engine_setup setup FOLDER [...]`` / ``check PYTHON``: what the preferences' buttons do."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m addon.engine_setup",
                                     description="Set up or check a Reel2Rig engine environment (as the add-on's "
                                                 "Set up Engine / Check Engine buttons do)")
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="create FOLDER's environment and install the engine's packages")
    setup.add_argument("folder", type=Path)
    setup.add_argument("--python", default=default_base_python(), help="base Python (3.10-3.12)")
    setup.add_argument("--torch", default="AUTO", choices=("AUTO", "CPU", "CUDA", "PIP"), type=str.upper,
                       help="PyTorch build (AUTO: CUDA when nvidia-smi finds a GPU; PIP: pip.conf decides)")
    setup.add_argument("--pip-option", action="append", default=[], help="extra pip argument (repeatable)")
    setup.add_argument("--cache", default=None, help="the engine's cache folder (the model build goes there)")
    setup.add_argument("--no-warm", action="store_true", help="skip building the Anny model cache")
    setup.add_argument("--requirements", type=Path, default=PACKAGE_ROOT / REQUIREMENTS_NAME,
                       help="package list with '# --- step N' sections (default: the extension's requirements.txt)")
    check = sub.add_parser("check", help="check the engine environment of PYTHON")
    check.add_argument("python")
    check.add_argument("--cache", default=None)
    args = parser.parse_args(argv)
    if args.command == "check":
        report = check_engine(args.python, PACKAGE_ROOT, args.cache)
        print(report.text())
        return 0 if report.ok else 1
    try:
        build = resolve_torch_build(args.torch, detect_nvidia())
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plan = SetupPlan(folder=args.folder.resolve(), base_python=args.python, torch_build=build,
                     requirements=args.requirements,
                     pip_args=tuple(args.pip_option), cache_dir=args.cache, warm=not args.no_warm)
    runner = SetupRunner(plan)
    started = time.monotonic()
    runner.start()
    last = ""
    try:
        while runner.running:
            status = runner.status
            if status.stage != last:
                last = status.stage
                print(f"[{time.monotonic() - started:6.0f} s] {status.fraction * 100:3.0f}%  {status.stage}",
                      flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        runner.cancel()
    status = runner.wait()
    print(f"[{time.monotonic() - started:6.0f} s] {status.state}: {status.message}")
    if runner.report is not None:
        print(runner.report.text())
    return {FINISHED: 0, CANCELLED: 130}.get(status.state, 1)


if __name__ == "__main__":
    sys.exit(main())
