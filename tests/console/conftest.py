"""Fixtures for the console's browser tests: a real ``relaybox serve`` process, a real SMTP
server, and Debian's headless Chromium driven by Playwright.

The tests skip (with the reason) when /usr/bin/chromium is missing; CI installs it and sets
``RELAYBOX_REQUIRE_BROWSER=1`` so that a missing browser fails instead.
Screenshots of every page (desktop and phone width) go to ``test-artifacts/console/``; the
run prints the directory at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# --import-mode=importlib puts no test directory on sys.path; reuse the acceptance harness.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "acceptance"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from console_harness import ADMIN_PASSWORD, ARTIFACTS, sign_in
from relaybox_harness import (
    RelayboxServer,
    SmtpServer,
    Workspace,
    start_smtp,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server recording what the console's runs send."""
    server = start_smtp()
    yield server
    server.controller.stop()


class ConsoleServer(RelayboxServer):
    """The acceptance harness's server with the console's admin password set."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "RELAYBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS.exists():
        terminalreporter.write_line(f"console screenshots: {ARTIFACTS}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayboxServer]:
    """One ``relaybox serve`` (SQLite) for the console tests."""
    directory = tmp_path_factory.mktemp("console")
    process = ConsoleServer(
        db_path=directory / "relaybox.db",
        api_key="rbx_console_" + secrets.token_urlsafe(16),
        log_path=directory / "server.log",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def ws(server: RelayboxServer, smtp: SmtpServer) -> Iterator[Workspace]:
    """The server's default workspace, with an SMTP provider."""
    workspace = Workspace(server, server.api_key)
    workspace.add_smtp_provider(smtp)
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (never Playwright's own download).

    Module-scoped on purpose: Playwright's sync API runs an event loop in this thread while it
    is open, and the asyncio tests collected after this folder cannot start theirs meanwhile.
    """
    if not CHROMIUM.exists():
        missing = "/usr/bin/chromium is missing: apt-get install -y chromium"
        if os.environ.get("RELAYBOX_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280x800."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def console(page: Any, server: RelayboxServer) -> Any:
    """A page signed in to the console with the default workspace's key."""
    sign_in(page, server, server.api_key)
    page.wait_for_url(re.compile(r".*/console/runs$"))
    return page
