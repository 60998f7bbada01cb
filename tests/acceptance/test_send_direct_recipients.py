"""Direct recipients of POST /send (Courier's ``WebhookRecipient`` and ``SlackRecipient``)
through the official SDK: delivered straight to the address the request names, with no
configured provider, each received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import courier
import psycopg
import pytest
from fake_service import FakeService, fake_service
from relaybox_harness import (
    RelayboxServer,
    SmtpServer,
    WebhookReceiver,
    Workspace,
    unique,
    unique_email,
)
from test_send_test_mode import create_test_key

SETTLED = ("SENT", "UNDELIVERABLE", "UNROUTABLE", "SIMULATED")


def send(ws: Workspace, to: Any, **message: Any) -> str:
    body = {"to": to, "content": {"title": "Hi {{name}}", "body": "Order {{order}} shipped"}}
    body["data"] = {"name": "Ada", "order": 42}
    response = ws.client().send.message(message={**body, **message})
    return str(response.request_id)


def as_text(ws: Workspace, message_id: str) -> str:
    """Everything GET /messages/{id} (with its history and output) shows about a message."""
    http = ws.http()
    parts = [
        http.get(f"/messages/{message_id}{suffix}").text for suffix in ("", "/history", "/output")
    ]
    return "\n".join(parts)


def stored_rows(server: RelayboxServer) -> list[str]:
    """Every row of every table, as text: what a database dump would show."""
    dumped: list[str] = []
    if server.database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(server.db_path)) as db:
            tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            for (table,) in tables:
                dumped.extend(map(str, db.execute(f'SELECT * FROM "{table}"').fetchall()))
        return dumped
    with psycopg.connect(server.database_url) as db:
        tables = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            dumped.extend(map(str, db.execute(f'SELECT * FROM "{table}"').fetchall()))
    return dumped


def test_webhook_recipient_with_bearer_auth_is_posted_to_its_url(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> None:
    """No provider configured: the message goes to the recipient's URL with its token and
    headers, the rendered content as the webhook provider's JSON body; the token is shown
    nowhere and stored only sealed."""
    ws = new_workspace("direct-bearer")
    token = unique("bearer-secret")
    hook = {
        "url": webhook_receiver.url,
        "authentication": {"mode": "bearer", "token": token},
        "headers": {"X-Shop": "north"},
    }
    message_id = send(ws, {"webhook": hook})
    message = ws.wait_message(message_id, *SETTLED)
    assert message.status == "SENT"
    [request] = webhook_receiver.for_message(message_id)
    assert request.method == "POST"
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert request.headers["X-Shop"] == "north"
    assert request.headers["Idempotency-Key"] == message_id
    assert request.body["channel"] == "webhook"
    assert request.body["subject"] == "Hi Ada"
    assert "Order 42 shipped" in request.body["text"]
    assert request.body["data"] == {"name": "Ada", "order": 42}
    assert request.body["content"]["title"] == "Hi Ada"
    kinds = [e["type"] for e in ws.history(message_id)]
    assert kinds[0] == "ENQUEUED"
    assert "ROUTED" in kinds
    assert kinds[-1] == "SENT"
    assert message.recipient == webhook_receiver.url
    shown = as_text(ws, message_id)
    assert message_id in shown
    assert token not in shown
    stored = stored_rows(ws.server)
    # The rows are really read: the message's run holds the recipient, its token sealed.
    assert any(message_id in r and "rbx:sealed:v1:" in r for r in stored)
    assert not [r for r in stored if token in r]


def test_webhook_recipient_with_basic_auth_also_on_resend(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> None:
    """Basic auth; a resend, built from the stored (sealed) message, authenticates the same."""
    ws = new_workspace("direct-basic")
    password = unique("pw")
    auth = {"mode": "basic", "username": "shop", "password": password}
    message_id = send(ws, {"webhook": {"url": webhook_receiver.url, "authentication": auth}})
    assert ws.wait_message(message_id, *SETTLED).status == "SENT"
    [request] = webhook_receiver.for_message(message_id)
    expected = base64.b64encode(f"shop:{password}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    again = ws.client().messages.resend(message_id).message_id
    assert again != message_id
    assert ws.wait_message(again, *SETTLED).status == "SENT"
    [resent] = webhook_receiver.for_message(again)
    assert resent.headers["Authorization"] == f"Basic {expected}"
    assert password not in as_text(ws, message_id)
    assert not [r for r in stored_rows(ws.server) if password in r]


def test_a_retryable_answer_is_retried_with_backoff(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> None:
    """500 twice, then 200: the same request (same Idempotency-Key) until it is delivered."""
    ws = new_workspace("direct-flaky")
    message_id = send(ws, {"webhook": {"url": webhook_receiver.url}}, data={"scenario": "flaky"})
    assert ws.wait_message(message_id, *SETTLED, timeout=30).status == "SENT"
    requests = webhook_receiver.for_message(message_id)
    assert [r.status for r in requests] == [500, 500, 200]
    assert {r.headers["Idempotency-Key"] for r in requests} == {message_id}


def test_user_and_webhook_recipients_share_one_request(
    ws: Workspace, smtp: SmtpServer, webhook_receiver: WebhookReceiver
) -> None:
    """A list of a user recipient and a webhook recipient: one request id, one message each."""
    email = unique_email("mixed")
    request_id = send(ws, [{"email": email}, {"webhook": {"url": webhook_receiver.url}}])
    client = ws.client()
    found = client.messages.list(message_id=request_id).results or []
    assert len(found) == 2
    ids = [m.id for m in found]
    assert request_id not in ids
    settled = [ws.wait_message(i, *SETTLED) for i in ids]
    assert {m.status for m in settled} == {"SENT"}
    assert {m.channel for m in settled} == {"email", "webhook"}
    hook = next(m for m in settled if m.channel == "webhook")
    assert len(webhook_receiver.for_message(hook.id)) == 1
    assert len(smtp.recorder.wait_for(email)) == 1


def test_a_private_address_is_refused_and_nothing_is_sent(
    new_workspace: Callable[[str], Workspace],
) -> None:
    """10.0.0.1 is not allow-listed: the guard refuses it, the message is UNDELIVERABLE with
    the reason, after a single attempt (a refusal is permanent)."""
    ws = new_workspace("direct-private")
    message_id = send(ws, {"webhook": {"url": "http://10.0.0.1:8080/hook"}})
    message = ws.wait_message(message_id, *SETTLED)
    assert message.status == "UNDELIVERABLE"
    history = ws.history(message_id)
    assert [e["type"] for e in history].count("ROUTED") == 1
    assert history[-1]["type"] == "UNDELIVERABLE"
    assert "10.0.0.1" in json.dumps(history[-1])


def test_a_test_key_simulates_a_direct_recipient(
    new_workspace: Callable[[str], Workspace], webhook_receiver: WebhookReceiver
) -> None:
    live = new_workspace("direct-test-mode")
    test = Workspace(live.server, create_test_key(live), live.name)
    message_id = send(test, {"webhook": {"url": webhook_receiver.url}})
    assert test.wait_message(message_id, *SETTLED).status == "SIMULATED"
    assert webhook_receiver.for_message(message_id) == []
    test.close()


def test_unsupported_direct_recipients_are_refused_by_name(ws: Workspace) -> None:
    with pytest.raises(courier.BadRequestError) as teams:
        send(ws, {"ms_teams": {"user_id": "u1", "tenant_id": "t1"}})
    assert "ms_teams" in str(teams.value)
    assert "Bot Framework" in str(teams.value)
    hook = {"url": "http://127.0.0.1:9/x", "authentication": {"mode": "bearer"}}
    with pytest.raises(courier.BadRequestError) as auth:
        send(ws, {"webhook": hook})
    assert "message.to.webhook.authentication.token" in str(auth.value)


# --- Slack and PagerDuty (their APIs' base URLs are server settings) ---------------------


@pytest.fixture(scope="module")
def slack_api() -> Iterator[FakeService]:
    with fake_service() as fake:
        yield fake


@pytest.fixture(scope="module")
def pagerduty_api() -> Iterator[FakeService]:
    with fake_service() as fake:
        yield fake


@pytest.fixture(scope="module")
def apis_ws(
    start_server: Callable[..., RelayboxServer],
    slack_api: FakeService,
    pagerduty_api: FakeService,
) -> Iterator[Workspace]:
    """A server whose Slack Web API and PagerDuty Events API are the fakes."""
    env = {
        "RELAYBOX_SLACK_API_BASE": slack_api.url,
        "RELAYBOX_PAGERDUTY_API_BASE": pagerduty_api.url,
    }
    server = start_server("direct-apis", env=env)
    workspace = Workspace(server, server.api_key)
    yield workspace
    workspace.close()


def test_slack_recipient_posts_with_its_own_token(
    apis_ws: Workspace, slack_api: FakeService
) -> None:
    token = unique("xoxb")
    slack_api.respond = lambda r: (200, {}, {"ok": True, "channel": "C0DEPLOY", "ts": "17.01"})
    message_id = send(apis_ws, {"slack": {"access_token": token, "channel": "C0DEPLOY"}})
    message = apis_ws.wait_message(message_id, *SETTLED)
    assert message.status == "SENT"
    assert message.channel == "chat"
    [request] = [r for r in slack_api.to("/chat.postMessage") if token in str(r.headers)]
    assert request.header("Authorization") == f"Bearer {token}"
    assert request.header("Content-Type").startswith("application/json")
    body = request.json()
    assert body["channel"] == "C0DEPLOY"
    assert "Hi Ada" in body["text"]
    assert "Order 42 shipped" in body["text"]
    assert any("Order 42 shipped" in json.dumps(b) for b in body["blocks"])
    assert token not in as_text(apis_ws, message_id)
    assert not [r for r in stored_rows(apis_ws.server) if token in r]


def test_slack_recipient_by_email_is_looked_up_first(
    apis_ws: Workspace, slack_api: FakeService
) -> None:
    token = unique("xoxb")

    def answer(request: Any) -> tuple[int, dict[str, str], Any]:
        if request.path == "/users.lookupByEmail":
            return 200, {}, {"ok": True, "user": {"id": "U0ADA"}}
        return 200, {}, {"ok": True, "channel": "D0ADA", "ts": "18.02"}

    slack_api.respond = answer
    to = {"slack": {"access_token": token, "email": "ada@example.test"}}
    message_id = send(apis_ws, to)
    assert apis_ws.wait_message(message_id, *SETTLED).status == "SENT"
    mine = [r for r in slack_api.requests if token in str(r.headers)]
    assert [r.path for r in mine] == ["/users.lookupByEmail", "/chat.postMessage"]
    assert mine[0].query["email"] == ["ada@example.test"]
    assert mine[1].json()["channel"] == "U0ADA"


def test_pagerduty_recipient_triggers_an_event(
    apis_ws: Workspace, pagerduty_api: FakeService
) -> None:
    """An Events API v2 trigger with the recipient's routing key, the message id as dedup key
    and the rendered title as summary; the routing key is shown nowhere and stored sealed."""
    routing_key = unique("R0UTING")

    def accepted(request: Any) -> tuple[int, dict[str, str], Any]:
        dedup = request.json().get("dedup_key")
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    pagerduty_api.respond = accepted
    pager = {"routing_key": routing_key, "severity": "critical", "source": "checkout"}
    message_id = send(apis_ws, {"pagerduty": pager})
    message = apis_ws.wait_message(message_id, *SETTLED)
    assert message.status == "SENT"
    [request] = [r for r in pagerduty_api.to("/v2/enqueue") if routing_key in r.raw.decode()]
    assert request.method == "POST"
    event = request.json()
    assert event["routing_key"] == routing_key
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == message_id
    assert event["payload"]["summary"] == "Hi Ada"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["source"] == "checkout"
    assert "Order 42 shipped" in event["payload"]["custom_details"]["body"]
    assert routing_key not in as_text(apis_ws, message_id)
    assert not [r for r in stored_rows(apis_ws.server) if routing_key in r]
