"""Fixtures for the acceptance suite: one shared ``relaybox serve`` process and SMTP server per
session, extra workspaces created with ``relaybox keys create``, and fresh servers for the
tests that kill or stop the process.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path; the
# test modules import the shared harness module next to this file, and the fake provider
# service (fake_service) shared with the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from relaybox_harness import (
    LIVE_SERVERS,
    WEBHOOK_SECRET,
    RelayboxServer,
    SmtpServer,
    WebhookReceiver,
    Workspace,
    start_smtp,
    start_webhook_receiver,
    unique,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Attach the output of every running server to a failing test's report."""
    report: pytest.TestReport = yield
    if report.failed:
        for server in LIVE_SERVERS:
            name = f"relaybox server {server.log_path.parent.name} (stdout+stderr)"
            report.sections.append((name, server.output()))
    return report


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 recording every message."""
    server = start_smtp()
    yield server
    server.controller.stop()


def backend() -> str:
    """The database the servers run on: ``RELAYBOX_TEST_BACKEND`` = sqlite (default) or postgres.

    ``scripts/test`` runs this suite once per backend.
    """
    return os.environ.get("RELAYBOX_TEST_BACKEND", "sqlite")


@pytest.fixture(scope="session")
def start_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RelayboxServer]]:
    """Start ``relaybox serve`` processes with their own databases; stops them all at the end."""
    started: list[RelayboxServer] = []

    def start(name: str, env: dict[str, str] | None = None) -> RelayboxServer:
        directory = tmp_path_factory.mktemp(name)
        database_url = None
        if backend() == "postgres":
            database_url = _fresh_postgres_database(request.getfixturevalue("postgres_url"), name)
        server = RelayboxServer(
            db_path=Path(directory) / "relaybox.db",
            api_key="rbx_test_" + secrets.token_urlsafe(16),
            log_path=Path(directory) / "server.log",
            database_url=database_url,
            extra_env=env,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        if server.database_url.startswith("postgresql"):
            _drop_postgres_database(server.database_url)


@pytest.fixture(scope="session")
def server(start_server: Callable[[str], RelayboxServer]) -> RelayboxServer:
    """The shared server most tests use; tests isolate themselves by unique names."""
    return start_server("shared")


@pytest.fixture(scope="session")
def ws(server: RelayboxServer, smtp: SmtpServer) -> Iterator[Workspace]:
    """The default workspace (RELAYBOX_API_KEY) of the shared server, with an SMTP provider."""
    workspace = Workspace(server, server.api_key)
    workspace.add_smtp_provider(smtp)
    yield workspace
    workspace.close()


@pytest.fixture(scope="session")
def new_workspace(server: RelayboxServer) -> Iterator[Callable[[str], Workspace]]:
    """Make a fresh workspace on the shared server via ``relaybox keys create``."""
    made: list[Workspace] = []

    def make(prefix: str) -> Workspace:
        name = unique(prefix)
        workspace = Workspace(server, server.create_key(name), name)
        made.append(workspace)
        return workspace

    yield make
    for workspace in made:
        workspace.close()


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = start_webhook_receiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def webhook_ws(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> Workspace:
    """A workspace whose only provider is a signed webhook to ``webhook_receiver``."""
    workspace = new_workspace("hooks")
    workspace.client().providers.create(
        provider="webhook",
        settings={
            "url": webhook_receiver.url,
            "method": "POST",
            "headers": {"X-Test": "acceptance"},
            "secret": WEBHOOK_SECRET,
        },
    )
    return workspace


def _fresh_postgres_database(session_url: str, name: str) -> str:
    """A new database next to the session's (dropped with the server at the end)."""
    base = session_url.rpartition("/")[0]
    database = f"{session_url.rpartition('/')[2]}_{name}_{secrets.token_hex(3)}"[:63]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    return f"{base}/{database}"


def _drop_postgres_database(url: str) -> None:
    base, _, database = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
