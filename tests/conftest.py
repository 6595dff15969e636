"""Shared test setup: the repository root on sys.path, package caches pointed into the project cache."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference_server.config import prepare_environment  # noqa: E402

prepare_environment()
os.environ.setdefault("PYTHONPATH", str(ROOT))
