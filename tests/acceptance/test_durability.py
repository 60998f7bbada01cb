"""Waiting runs survive the process: SIGKILL and SIGTERM, then a new process on the same DB."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest
from relaybox_harness import RelayboxServer, SmtpServer, Workspace, unique, unique_email


@pytest.fixture(scope="module")
def durable_server(
    start_server: Callable[[str], RelayboxServer], smtp: SmtpServer
) -> Iterator[Workspace]:
    """A server of this module's own (its tests kill it), with SMTP and two templates."""
    server = start_server("durable")
    ws = Workspace(server, server.api_key)
    ws.add_smtp_provider(smtp)
    ws.add_template("FIRST", "First for {{name}}", "Step one, {{name}}.")
    ws.add_template("SECOND", "Second for {{name}}", "Step two, {{name}}.")
    yield ws
    ws.close()
    server.stop()


@pytest.fixture
def own_server(durable_server: Workspace) -> Workspace:
    """The module's server, running (restarted if an earlier test left it down)."""
    process = durable_server.server.process
    if process is None or process.poll() is not None:
        durable_server.server.start()
    return durable_server


def _invoke(ws: Workspace, email: str, delay: str) -> str:
    response = ws.client().automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "send", "template": "FIRST"},
                {"action": "delay", "duration": delay},
                {"action": "send", "template": "SECOND"},
            ]
        },
        recipient=unique("u"),
        profile={"email": email},
        data={"name": "Dee"},
    )
    assert response.run_id
    return response.run_id


def test_waiting_run_survives_sigkill(own_server: Workspace, smtp: SmtpServer) -> None:
    """After kill -9 mid-delay a new process sends the second email exactly once."""
    ws = own_server
    email = unique_email("kill9")
    run_id = _invoke(ws, email, "3 seconds")
    ws.wait_run(run_id, "WAITING", timeout=5)
    (first,) = smtp.recorder.wait_for(email)

    assert ws.server.kill() == -signal.SIGKILL
    ws.server.start()

    done = ws.wait_run(run_id, "PROCESSED", timeout=15)
    assert done["error"] is None
    mails = smtp.recorder.to(email)
    assert [m.subject for m in mails] == ["First for Dee", "Second for Dee"]
    assert mails[0] == first
    assert mails[1].monotonic - first.monotonic >= 3.0

    steps = ws.steps(run_id)
    assert [(s.action, s.status) for s in steps] == [
        ("send", "PROCESSED"),
        ("delay", "PROCESSED"),
        ("send", "PROCESSED"),
    ]
    client = ws.client()
    for step in (steps[0], steps[2]):
        assert step.message_id
        assert client.messages.retrieve(step.message_id).status == "SENT"


def test_sigterm_exits_cleanly_and_the_run_resumes(own_server: Workspace, smtp: SmtpServer) -> None:
    """SIGTERM while a run waits exits with code 0 promptly; after restart the run completes."""
    ws = own_server
    email = unique_email("sigterm")
    run_id = _invoke(ws, email, "3 seconds")
    ws.wait_run(run_id, "WAITING", timeout=5)
    smtp.recorder.wait_for(email)

    started = time.monotonic()
    code = ws.server.terminate(timeout=10)
    elapsed = time.monotonic() - started
    ws.server.start()

    ws.wait_run(run_id, "PROCESSED", timeout=15)
    assert [m.subject for m in smtp.recorder.to(email)] == ["First for Dee", "Second for Dee"]
    assert elapsed < 5.0, f"graceful shutdown took {elapsed:.1f} s"
    assert code == 0, f"relaybox serve exited with {code} on SIGTERM (expected 0)"


def test_open_batch_and_throttle_counts_survive_sigkill(own_server: Workspace) -> None:
    """After kill -9 an open batch releases once with every item; a throttle keeps its count."""
    ws = own_server
    client = ws.client()
    batch = {"action": "add-to-batch", "batch_key": unique("durable"), "wait_period": "PT3S"}
    runs = [
        client.automations.invoke.invoke_ad_hoc(
            automation={"steps": [batch]}, recipient="d", data={"n": n}
        ).run_id
        for n in range(3)
    ]
    for joiner in runs[1:]:
        ws.wait_run(joiner, "PROCESSED")
    throttle = {
        "action": "throttle",
        "max_allowed": 1,
        "period": "P365D",
        "throttle_key": unique("t"),
    }
    first = client.automations.invoke.invoke_ad_hoc(automation={"steps": [throttle]}, recipient="d")
    assert ws.wait_run(first.run_id, "PROCESSED", "THROTTLED")["status"] == "PROCESSED"
    assert ws.server.kill() == -signal.SIGKILL
    ws.server.start()
    client = ws.client()
    carrier = ws.wait_run(runs[0], "PROCESSED", "ERROR", timeout=20.0)
    assert carrier["data"]["batch"] == {"count": 3, "items": [{"n": 0}, {"n": 1}, {"n": 2}]}
    again = client.automations.invoke.invoke_ad_hoc(automation={"steps": [throttle]}, recipient="d")
    assert ws.wait_run(again.run_id, "PROCESSED", "THROTTLED")["status"] == "THROTTLED"
