"""kill -9 while a provider call is in flight: SMTP (no idempotency) is not repeated, a
webhook (Idempotency-Key) is repeated with the same key."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from relaybox_harness import (
    WEBHOOK_SECRET,
    RelayboxServer,
    SmtpServer,
    WebhookReceiver,
    Workspace,
    unique,
    unique_email,
    wait_for,
)


@pytest.fixture(scope="module")
def in_flight_server(
    start_server: Callable[[str], RelayboxServer],
    smtp: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> Iterator[Workspace]:
    """A server of this module's own (its tests kill it) with SMTP and webhook providers.

    Routing tries email first, so recipients with an email address get SMTP and recipients
    without one get the webhook.
    """
    server = start_server("in-flight")
    ws = Workspace(server, server.api_key)
    ws.add_smtp_provider(smtp)
    ws.client().providers.create(
        provider="webhook", settings={"url": webhook_receiver.url, "secret": WEBHOOK_SECRET}
    )
    ws.add_template("SLOW", "Slow {{n}}", "Body {{n}}")
    yield ws
    ws.close()
    server.stop()


@pytest.fixture
def crash_server(
    in_flight_server: Workspace, smtp: SmtpServer, webhook_receiver: WebhookReceiver
) -> Iterator[Workspace]:
    """The module's server, running (restarted if an earlier test left it down)."""
    process = in_flight_server.server.process
    if process is None or process.poll() is not None:
        in_flight_server.server.start()
    # The receivers are shared by the session: a hold released by an earlier test must not
    # let this test's first call through unheld.
    for held in (smtp.recorder, webhook_receiver):
        held.holding.clear()
        held.release.clear()
    yield in_flight_server
    # Never leave a held SMTP reply or webhook answer waiting, even if the test failed early.
    smtp.recorder.release.set()
    webhook_receiver.release.set()


def test_smtp_send_cut_off_by_sigkill_is_not_repeated(
    crash_server: Workspace, smtp: SmtpServer
) -> None:
    """An email in flight at kill -9 is not sent again; the run completes, flagged unconfirmed."""
    ws = crash_server
    email = unique_email("hold")
    run_id = (
        ws.client()
        .automations.invoke.invoke_ad_hoc(
            automation={"steps": [{"action": "send", "template": "SLOW"}]},
            recipient=unique("u"),
            profile={"email": email},
            data={"n": 7},
        )
        .run_id
    )
    assert run_id
    assert smtp.recorder.holding.wait(timeout=10), "the send never reached the SMTP server"
    assert ws.server.kill() == -signal.SIGKILL
    smtp.recorder.release.set()
    smtp.recorder.wait_for(email)

    ws.server.start()
    detail = ws.wait_run(run_id, "PROCESSED", timeout=15)
    assert detail["error"] is None
    (step,) = ws.steps(run_id)
    assert step.status == "PROCESSED"
    assert step.message_id
    client = ws.client()
    message = client.messages.retrieve(step.message_id)
    assert message.status == "SENT"
    history = client.messages.history(step.message_id).results or []
    assert any(e.get("unconfirmed") for e in history if isinstance(e, dict)), history
    assert len(smtp.recorder.to(email)) == 1


def test_webhook_call_cut_off_by_sigkill_is_repeated_with_the_same_key(
    crash_server: Workspace, webhook_receiver: WebhookReceiver
) -> None:
    """A webhook call in flight at kill -9 is repeated after restart with its Idempotency-Key."""
    ws = crash_server
    user = unique("hook-hold")
    run_id = (
        ws.client()
        .automations.invoke.invoke_ad_hoc(
            automation={"steps": [{"action": "send", "template": "SLOW"}]},
            recipient=user,
            data={"scenario": "hold", "n": 8},
        )
        .run_id
    )
    assert run_id
    assert webhook_receiver.holding.wait(timeout=10), "the webhook was never called"
    assert ws.server.kill() == -signal.SIGKILL
    webhook_receiver.release.set()

    ws.server.start()
    ws.wait_run(run_id, "PROCESSED", timeout=15)
    (step,) = ws.steps(run_id)
    assert step.message_id
    calls = wait_for(
        lambda: c if len(c := webhook_receiver.for_message(step.message_id)) >= 2 else None,
        what="the repeated webhook call",
    )
    assert len(calls) == 2
    assert calls[0].headers["Idempotency-Key"] == calls[1].headers["Idempotency-Key"]
    assert calls[0].body == calls[1].body
    assert ws.client().messages.retrieve(step.message_id).status == "SENT"
