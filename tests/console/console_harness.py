"""Helpers the console's browser tests share (imported by module name, beside conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relaybox_harness import RelayboxServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


def sign_in(page: Any, server: RelayboxServer, key: str) -> None:
    page.goto(f"{server.url}/console/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
