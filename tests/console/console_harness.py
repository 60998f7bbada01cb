"""Helpers the console's browser tests share (imported by module name, beside conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relaybox_harness import RelayboxServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
ADMIN_PASSWORD = "console admin pass phrase"
PHONE = {"width": 390, "height": 844}


def sign_in(page: Any, server: RelayboxServer, key: str) -> None:
    page.goto(f"{server.url}/console/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in", exact=True).click()


def shot(page: Any, name: str) -> None:
    """Save full-page screenshots at the current size and at phone width as test artifacts.

    Also checks the page does not scroll sideways at phone width (it must be usable there).
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} scrolls sideways at phone width ({width}px)"
    finally:
        page.set_viewport_size(size)


def admin_sign_in(page: Any, server: RelayboxServer, password: str, workspace: str = "") -> None:
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Admin password").fill(password)
    if workspace:
        page.get_by_label("Workspace").fill(workspace)
    page.get_by_role("button", name="Sign in as administrator").click()
