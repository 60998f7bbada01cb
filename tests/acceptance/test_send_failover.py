"""Provider failover and outages on POST /send, against real SMTP and HTTP servers."""

from __future__ import annotations

import time
from collections.abc import Callable

from relaybox_harness import (
    WEBHOOK_SECRET,
    RelayboxServer,
    SmtpServer,
    WebhookReceiver,
    Workspace,
    free_port,
    unique,
    unique_email,
)


def add_webhook(ws: Workspace, receiver: WebhookReceiver) -> str:
    """Configure a signed webhook provider pointing at ``receiver``; its id."""
    created = ws.client().providers.create(
        provider="webhook", settings={"url": receiver.url, "secret": WEBHOOK_SECRET}
    )
    return str(created.id)


def test_primary_smtp_down_fails_over_to_secondary(
    new_workspace: Callable[[str], Workspace], smtp: SmtpServer
) -> None:
    """Primary SMTP on a closed port is retried, then the secondary delivers; both in history."""
    ws = new_workspace("failover")
    client = ws.client()
    down = {**smtp.provider_settings(), "port": free_port()}
    primary = str(client.providers.create(provider="smtp", settings=down).id)
    secondary = ws.add_smtp_provider(smtp)
    email = unique_email("failover")
    response = client.send.message(
        message={"to": {"email": email}, "content": {"title": "Failover", "body": "b"}}
    )
    message = ws.wait_message(response.request_id, "SENT")
    assert smtp.recorder.wait_for(email)[0].subject == "Failover"
    events = ws.history(response.request_id)
    retries = [e for e in events if e["type"] == "RETRYING"]
    assert retries
    assert {e["integration"] for e in retries} == {primary}
    assert all("SMTP" in e["error_message"] for e in retries)
    (sent,) = [e for e in events if e["type"] == "SENT"]
    assert sent["integration"] == secondary
    providers = message.to_dict()["providers"]
    assert [p["integration"] for p in providers] == [primary] * len(retries) + [secondary]


def test_channel_provider_order_is_honoured(
    new_workspace: Callable[[str], Workspace], smtp: SmtpServer
) -> None:
    """channels.email.providers puts the working provider first: one attempt, no retry."""
    ws = new_workspace("order")
    client = ws.client()
    down = {**smtp.provider_settings(), "port": free_port()}
    client.providers.create(provider="smtp", settings=down)
    good = ws.add_smtp_provider(smtp)
    email = unique_email("order")
    response = client.send.message(
        message={
            "to": {"email": email},
            "content": {"title": "Ordered", "body": "b"},
            "channels": {"email": {"providers": [good]}},
        }
    )
    message = ws.wait_message(response.request_id, "SENT")
    assert [p["integration"] for p in message.to_dict()["providers"]] == [good]


def test_permanent_failure_moves_to_the_next_channel_at_once(
    new_workspace: Callable[[str], Workspace],
    smtp: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    """A webhook answering 400 is not retried; routing single falls through to email."""
    ws = new_workspace("permanent")
    hook = add_webhook(ws, webhook_receiver)
    ws.add_smtp_provider(smtp)
    email = unique_email("fallthrough")
    started = time.monotonic()
    response = ws.client().send.message(
        message={
            "to": {"user_id": unique("u"), "email": email},
            "content": {"title": "Fell through", "body": "b"},
            "data": {"scenario": "reject"},
            "routing": {"method": "single", "channels": ["webhook", "email"]},
        }
    )
    ws.wait_message(response.request_id, "SENT")
    assert time.monotonic() - started < 5
    assert len(webhook_receiver.for_message(response.request_id)) == 1
    assert smtp.recorder.wait_for(email)[0].subject == "Fell through"
    kinds = [(e["type"], e.get("channel")) for e in ws.history(response.request_id)]
    assert ("UNDELIVERABLE", "webhook") in kinds
    assert ("SENT", "email") in kinds
    assert ("RETRYING", "webhook") not in kinds
    (failed,) = [e for e in ws.history(response.request_id) if e["type"] == "UNDELIVERABLE"]
    assert failed["integration"] == hook


def test_outage_of_the_only_provider_is_retried_until_it_returns(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> None:
    """A webhook failing with 500 twice is retried with backoff and delivered once, same key."""
    ws = new_workspace("outage")
    add_webhook(ws, webhook_receiver)
    response = ws.client().send.message(
        message={
            "to": {"user_id": unique("u")},
            "content": {"title": "Outage", "body": "b"},
            "data": {"scenario": "flaky"},
        }
    )
    ws.wait_message(response.request_id, "SENT")
    calls = webhook_receiver.for_message(response.request_id)
    assert [c.status for c in calls] == [500, 500, 200]
    assert len({c.headers.get("Idempotency-Key") for c in calls}) == 1
    assert calls[1].wall - calls[0].wall >= 0.9
    assert calls[2].wall - calls[1].wall >= 1.9
    kinds = [e["type"] for e in ws.history(response.request_id)]
    assert kinds.count("RETRYING") == 2
    assert kinds[-1] == "SENT"


def test_all_providers_failing_is_undeliverable_with_the_reason(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> None:
    """When the only provider rejects for good the message is UNDELIVERABLE saying why."""
    ws = new_workspace("rejected")
    add_webhook(ws, webhook_receiver)
    response = ws.client().send.message(
        message={
            "to": {"user_id": unique("u")},
            "content": {"title": "No", "body": "b"},
            "data": {"scenario": "reject"},
        }
    )
    message = ws.wait_message(response.request_id, "UNDELIVERABLE")
    assert message.reason == "PROVIDER_ERROR"
    assert "400" in (message.error or "")
    assert "webhook (" in (message.error or "")


def test_routing_all_sends_on_every_listed_channel(
    new_workspace: Callable[[str], Workspace],
    smtp: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    """routing.method all delivers on email and on the webhook."""
    ws = new_workspace("all")
    ws.add_smtp_provider(smtp)
    add_webhook(ws, webhook_receiver)
    email = unique_email("all")
    response = ws.client().send.message(
        message={
            "to": {"user_id": unique("u"), "email": email},
            "content": {"title": "Everywhere", "body": "b"},
            "routing": {"method": "all", "channels": ["email", "webhook"]},
        }
    )
    message = ws.wait_message(response.request_id, "SENT")
    assert smtp.recorder.wait_for(email)[0].subject == "Everywhere"
    assert len(webhook_receiver.for_message(response.request_id)) == 1
    channels = [p["channel"] for p in message.to_dict()["providers"]]
    assert channels == ["email", "webhook"]
    outputs = ws.client().messages.content(response.request_id).results
    assert {o.channel for o in outputs} == {"email", "webhook"}


def test_delayed_send_survives_a_restart(
    start_server: Callable[[str], RelayboxServer], smtp: SmtpServer
) -> None:
    """A delayed send acknowledged before SIGKILL is delivered once by the next process."""
    server = start_server("send-durable")
    ws = Workspace(server, server.api_key)
    ws.add_smtp_provider(smtp)
    email = unique_email("restart")
    response = ws.client().send.message(
        message={
            "to": {"email": email},
            "content": {"title": "Survived", "body": "b"},
            "delay": {"duration": 2000},
        }
    )
    server.kill()
    server.start()
    assert smtp.recorder.wait_for(email, timeout=15)[0].subject == "Survived"
    ws.wait_message(response.request_id, "SENT")
    time.sleep(0.5)
    assert len(smtp.recorder.to(email)) == 1
    ws.close()


def test_send_cut_off_by_sigkill_is_repeated_with_the_same_key(
    start_server: Callable[[str], RelayboxServer], webhook_receiver: WebhookReceiver
) -> None:
    """A /send webhook call in flight at kill -9 is repeated after restart with its key."""
    server = start_server("send-crash")
    ws = Workspace(server, server.api_key)
    add_webhook(ws, webhook_receiver)
    webhook_receiver.holding.clear()
    webhook_receiver.release.clear()
    try:
        response = ws.client().send.message(
            message={
                "to": {"user_id": unique("u")},
                "content": {"title": "Held", "body": "b"},
                "data": {"scenario": "hold"},
            }
        )
        assert webhook_receiver.holding.wait(timeout=10), "the webhook was never called"
        server.kill()
        webhook_receiver.release.set()
        server.start()
        ws.wait_message(response.request_id, "SENT")
        calls = webhook_receiver.for_message(response.request_id)
        assert len(calls) == 2
        assert calls[0].headers["Idempotency-Key"] == calls[1].headers["Idempotency-Key"]
    finally:
        webhook_receiver.release.set()
        ws.close()
