"""Integration tests import small shared helpers (e.g. ``fake_service``) from this folder."""

from __future__ import annotations

import sys
from pathlib import Path

# --import-mode=importlib puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
