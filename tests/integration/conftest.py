"""Integration tests import small shared helpers (e.g. ``fake_service``) from this folder.

The ``http`` fixture is the client every provider and dispatcher test posts through.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

# --import-mode=importlib puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One real HTTP client per test (no proxy from the environment)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client
