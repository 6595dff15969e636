"""Helpers for the Set up Engine tests (tests/engine/test_engine_setup.py and the Blender operator test): an
offline wheel, a package list, and a venv that borrows this checkout's heavy packages. A unique module name, so
tests in other folders can import it."""
from __future__ import annotations

import http.server
import sys
import threading
import time
import sysconfig
import zipfile
from pathlib import Path

PROBE = "reel2rig_probe_pkg"


def make_wheel(folder: Path, name: str = PROBE, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel (a zip with a module and its dist-info) that pip installs offline."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VALUE = {version!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: reel2rig-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{dist}/RECORD", record)
    return wheel


def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(f"# --- step 1\n{PROBE}==1.0\n# --- step 2 (development)\npytest==9.2.0\n")
    return path


def lend_checkout_packages(env_folder: Path) -> None:
    """Make ``env_folder`` a venv that also sees this checkout's .venv packages (a .pth line)."""
    import subprocess

    subprocess.run([sys.executable, "-m", "venv", str(env_folder)], check=True, timeout=300)
    site = Path(sysconfig.get_path("purelib"))  # this (the checkout's) environment's site-packages
    targets = list(env_folder.glob("lib/python3*/site-packages")) + list(env_folder.glob("Lib/site-packages"))
    assert targets, f"no site-packages in {env_folder}"
    (targets[0] / "reel2rig_checkout.pth").write_text(str(site) + "\n")


class _SlowIndex(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        time.sleep(60)

    def log_message(self, *args: object) -> None:
        pass


def slow_index() -> tuple[http.server.ThreadingHTTPServer, str]:
    """A package index on localhost that never answers in time (pip waits on it): for cancel tests. Returns the
    server (call .shutdown()) and its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowIndex)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/simple"
