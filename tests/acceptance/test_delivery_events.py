"""Delivery-event webhooks against a real server process and a real HTTP receiver: endpoints
registered over /webhooks, events for each status change of messages sent with the SDK,
signatures, retries until a 2xx, and events queued before a kill -9 delivered after restart."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from relaybox_harness import (
    HOLD,
    RelayboxServer,
    SmtpServer,
    WebhookReceiver,
    Workspace,
    start_webhook_receiver,
    unique,
    unique_email,
    verify_signature,
    wait_for,
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    found = start_webhook_receiver()
    yield found
    found.stop()


@pytest.fixture
def events_ws(new_workspace: Callable[[str], Workspace], smtp: SmtpServer) -> Workspace:
    ws = new_workspace("events")
    ws.add_smtp_provider(smtp)
    return ws


def register(ws: Workspace, url: str, **extra: Any) -> dict[str, Any]:
    with ws.http() as http:
        created = http.post("/webhooks", json={"url": url, **extra})
    assert created.status_code == 201, created.text
    return dict(created.json())


def send_email(ws: Workspace, email: str) -> str:
    response = ws.client().send.message(
        message={
            "to": {"user_id": unique("u"), "email": email},
            "content": {"title": "Hi {{name}}", "body": "Hello"},
            "data": {"name": "Ada"},
        }
    )
    assert response.request_id
    return str(response.request_id)


def test_status_changes_arrive_signed_in_order(
    events_ws: Workspace, receiver: WebhookReceiver, smtp: SmtpServer
) -> None:
    endpoint = register(events_ws, receiver.url, description="ops")
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    email = unique_email("ev")
    message_id = send_email(events_ws, email)
    smtp.recorder.wait_for(email)

    wait_for(lambda: "SENT" in receiver.acknowledged(message_id), what="the SENT event", timeout=15)
    assert receiver.acknowledged(message_id) == ["ENQUEUED", "ROUTED", "SENT"]
    requests = receiver.events_for(message_id)
    ids = set()
    for request in requests:
        signature = request.headers["X-Relaybox-Signature"]
        assert verify_signature(secret, signature, request.raw)
        assert not verify_signature(secret + "x", signature, request.raw)
        timestamp = int(dict(p.split("=", 1) for p in signature.split(","))["t"])
        assert abs(timestamp - time.time()) < 60
        assert request.headers["Content-Type"] == "application/json"
        ids.add(request.headers["Idempotency-Key"])
        assert request.body["type"] == "message:updated"
    assert len(ids) == 3  # one event id per status change
    sent = requests[-1].body["data"]
    message = events_ws.client().messages.retrieve(message_id)
    assert sent["status"] == "SENT"
    assert sent["recipient"] == message.recipient
    assert sent["enqueued"] == message.enqueued
    assert sent["sent"] == message.sent
    assert sent["channel"] == "email"
    assert sent["providers"][0]["provider"] == "smtp"
    assert requests[0].body["data"]["status"] == "ENQUEUED"

    # The endpoint is readable without its secret, and its deliveries are listed.
    with events_ws.http() as http:
        listed = http.get("/webhooks").json()
        assert [e["id"] for e in listed["results"]] == [endpoint["id"]]
        assert "secret" not in listed["results"][0]
        assert listed["results"][0]["secret_hint"].endswith(secret[-4:])
        got = http.get(f"/webhooks/{endpoint['id']}").json()
        assert got["description"] == "ops"
        assert "secret" not in got
        deliveries = http.get(f"/webhooks/{endpoint['id']}/deliveries").json()["results"]
        assert {d["status"] for d in deliveries} == {"delivered"}
        assert sorted(d["event"] for d in deliveries) == ["ENQUEUED", "ROUTED", "SENT"]

        # A delivered event can be sent again on request, with the same id and body.
        [sent_delivery] = [d for d in deliveries if d["event"] == "SENT"]
        resent = http.post(f"/webhooks/{endpoint['id']}/deliveries/{sent_delivery['id']}/retry")
        assert resent.status_code == 200, resent.text
        assert (resent.json()["status"], resent.json()["attempts"]) == ("pending", 0)
        wait_for(lambda: receiver.acknowledged(message_id).count("SENT") == 2, what="the resend")
        first, again = [
            r for r in receiver.events_for(message_id) if r.body["data"]["status"] == "SENT"
        ]
        assert first.raw == again.raw
        assert (
            first.headers["Idempotency-Key"]
            == again.headers["Idempotency-Key"]
            == sent_delivery["id"]
        )
        missing = http.post(f"/webhooks/{endpoint['id']}/deliveries/evt_missing/retry")
        assert missing.status_code == 404


def test_event_filter_and_delete(
    events_ws: Workspace, receiver: WebhookReceiver, smtp: SmtpServer, ws: Workspace
) -> None:
    endpoint = register(events_ws, receiver.url, events=["SENT"])
    with ws.http() as other:  # another workspace sees nothing of it
        assert other.get(f"/webhooks/{endpoint['id']}").status_code == 404
        assert endpoint["id"] not in {e["id"] for e in other.get("/webhooks").json()["results"]}
        assert other.delete(f"/webhooks/{endpoint['id']}").status_code == 404
    email = unique_email("filtered")
    message_id = send_email(events_ws, email)
    wait_for(lambda: receiver.acknowledged(message_id), what="the SENT event", timeout=15)
    assert receiver.acknowledged(message_id) == ["SENT"]

    with events_ws.http() as http:
        assert http.delete(f"/webhooks/{endpoint['id']}").status_code == 204
        missing = http.get(f"/webhooks/{endpoint['id']}")
        assert missing.status_code == 404
        assert missing.json()["type"] == "invalid_request_error"
    # A live endpoint's SENT event marks when the deleted one would have had its own.
    witness = start_webhook_receiver()
    try:
        register(events_ws, witness.url, events=["SENT"])
        later = send_email(events_ws, unique_email("after-delete"))
        events_ws.wait_message(later, "SENT")
        wait_for(lambda: witness.acknowledged(later), what="the live endpoint's SENT", timeout=15)
        assert receiver.events_for(later) == []
    finally:
        witness.stop()


def test_failing_endpoint_is_retried_until_acknowledged(
    events_ws: Workspace, receiver: WebhookReceiver
) -> None:
    receiver.plan = [500, 500]  # the first event is refused twice
    endpoint = register(events_ws, receiver.url, events=["ENQUEUED"])
    message_id = send_email(events_ws, unique_email("retry"))
    wait_for(lambda: receiver.acknowledged(message_id), what="an acknowledged event", timeout=20)
    requests = receiver.events_for(message_id)
    assert [r.status for r in requests] == [500, 500, 200]
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1
    assert len({r.raw for r in requests}) == 1
    with events_ws.http() as http:
        [delivery] = http.get(f"/webhooks/{endpoint['id']}/deliveries").json()["results"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "delivered",
        3,
        200,
    )


def test_bad_endpoints_are_refused(events_ws: Workspace) -> None:
    with events_ws.http() as http:
        for body, why in (
            ({}, "url"),
            ({"url": "ftp://example.test/x"}, "url"),
            ({"url": "https://example.test/x", "events": ["NOPE"]}, "NOPE"),
            ({"url": "https://example.test/x", "secret": "mine"}, "secret"),
        ):
            answer = http.post("/webhooks", json=body)
            assert answer.status_code == 400, body
            assert answer.json()["type"] == "invalid_request_error"
            assert why in answer.json()["message"]
        assert http.get("/webhooks/we_missing").status_code == 404
        assert http.delete("/webhooks/we_missing").status_code == 404


def test_events_queued_before_kill_9_are_delivered_after_restart(
    start_server: Callable[[str], RelayboxServer], smtp: SmtpServer
) -> None:
    """The receiver is down while the message is sent; the server is killed with the events
    still queued; after a restart they are delivered once the receiver is back."""
    server = start_server("events-kill")
    ws = Workspace(server, server.api_key)
    try:
        ws.add_smtp_provider(smtp)
        down = start_webhook_receiver()
        port = int(down.server.server_address[1])
        endpoint = register(ws, down.url)
        stored = _stored_secrets(server)
        assert len(stored) == 1
        assert stored[0].startswith("rbx:sealed:v1:")  # encrypted at rest
        assert endpoint["secret"] not in stored[0]
        down.stop()  # connection refused from now on
        email = unique_email("killed")
        message_id = send_email(ws, email)
        smtp.recorder.wait_for(email)
        ws.wait_message(message_id, "SENT")
        with ws.http() as http:
            pending = http.get(f"/webhooks/{endpoint['id']}/deliveries").json()["results"]
        assert {d["status"] for d in pending} == {"pending"}
        server.kill()

        back = start_webhook_receiver(port)
        try:
            server.start()
            wait_for(
                lambda: "SENT" in back.acknowledged(message_id),
                what="events after restart",
                timeout=40,
            )
            assert back.acknowledged(message_id) == ["ENQUEUED", "ROUTED", "SENT"]
            for request in back.events_for(message_id):
                assert verify_signature(
                    endpoint["secret"], request.headers["X-Relaybox-Signature"], request.raw
                )
        finally:
            back.stop()
    finally:
        ws.close()
        server.stop()


def test_an_event_in_flight_at_kill_9_is_sent_again_with_its_id(
    start_server: Callable[[str], RelayboxServer], smtp: SmtpServer
) -> None:
    """The server dies while the receiver holds an event's request: the reply is lost, so the
    event is sent again after restart, with the same id and body for the receiver to
    deduplicate on."""
    server = start_server("events-in-flight")
    ws = Workspace(server, server.api_key)
    receiver = start_webhook_receiver()
    try:
        ws.add_smtp_provider(smtp)
        receiver.plan = [HOLD]
        register(ws, receiver.url, events=["SENT"])
        message_id = send_email(ws, unique_email("in-flight"))
        assert receiver.holding.wait(timeout=20)
        server.kill()
        receiver.release.set()
        server.start()
        wait_for(
            lambda: receiver.acknowledged(message_id) == ["SENT"],
            timeout=40,
            what="the event sent again",
        )
        first, again = receiver.events_for(message_id)
        assert (first.status, again.status) == (HOLD, 200)
        assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"]
        assert first.raw == again.raw
    finally:
        receiver.stop()
        ws.close()
        server.stop()


def _stored_secrets(server: RelayboxServer) -> list[str]:
    """The signing secrets as the database holds them."""
    sql = "SELECT secret FROM webhook_endpoints"
    if server.database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(server.db_path)) as db:
            return [str(r[0]) for r in db.execute(sql).fetchall()]
    with psycopg.connect(server.database_url) as db:
        return [str(r[0]) for r in db.execute(sql).fetchall()]
