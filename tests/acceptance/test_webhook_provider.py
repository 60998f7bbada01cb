"""The webhook provider against a real HTTP receiver: signing, retries, permanent failures."""

from __future__ import annotations

import time

from relaybox_harness import (
    WEBHOOK_SECRET,
    WebhookReceiver,
    Workspace,
    unique,
    verify_signature,
    wait_for,
)


def _invoke(ws: Workspace, template: str, scenario: str, user: str) -> str:
    response = ws.client().automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": template}]},
        recipient=user,
        data={"scenario": scenario, "name": "Hal"},
    )
    assert response.run_id
    return response.run_id


def _message_id(ws: Workspace, run_id: str) -> str:
    def probe() -> str | None:
        steps = ws.steps(run_id)
        return steps[0].message_id if steps and steps[0].message_id else None

    return wait_for(probe, what=f"run {run_id} to get a message id")


def test_webhook_delivery_is_signed_and_retried_until_accepted(
    webhook_ws: Workspace, webhook_receiver: WebhookReceiver
) -> None:
    """A webhook answering 500 twice is retried and delivered on the third, signed attempt."""
    ws = webhook_ws
    client = ws.client()
    template = unique("HOOK")
    ws.add_template(template, "Hook for {{name}}", "Body for {{name}}")
    user = unique("hook-user")
    started = time.time()
    run_id = _invoke(ws, template, "flaky", user)

    detail = ws.wait_run(run_id, "PROCESSED", timeout=20)
    assert detail["error"] is None
    message_id = _message_id(ws, run_id)
    requests = webhook_receiver.for_message(message_id)
    assert [r.status for r in requests] == [500, 500, 200]

    keys = {r.headers.get("Idempotency-Key") for r in requests}
    assert len(keys) == 1
    assert None not in keys
    for request in requests:
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Test"] == "acceptance"
        signature = request.headers["X-Relaybox-Signature"]
        assert verify_signature(WEBHOOK_SECRET, signature, request.raw)
        timestamp = int(dict(p.split("=", 1) for p in signature.split(","))["t"])
        assert abs(timestamp - request.wall) < 5
        assert not verify_signature("wrong-secret", signature, request.raw)
        assert request.body["message_id"] == message_id
        assert request.body["recipient"] == user
        assert request.body["subject"] == "Hook for Hal"
        assert request.body["data"]["scenario"] == "flaky"
    # Backoff between attempts (1 s, then 2 s).
    assert requests[1].wall - requests[0].wall >= 0.9
    assert requests[2].wall - requests[1].wall >= 1.9
    assert requests[0].wall >= started

    message = client.messages.retrieve(message_id)
    assert message.status == "SENT"
    assert message.recipient == user
    history = client.messages.history(message_id).results or []
    types = [event.get("type") if isinstance(event, dict) else event.type for event in history]
    assert types.count("RETRYING") == 2
    assert types[-1] == "SENT"
    steps = ws.steps(run_id)
    assert steps[0].status == "PROCESSED"
    assert steps[0].to_dict().get("attempts") == 3


def test_webhook_rejection_is_undeliverable(
    webhook_ws: Workspace, webhook_receiver: WebhookReceiver
) -> None:
    """A webhook answering 400 is not retried: message UNDELIVERABLE, step and run ERROR."""
    ws = webhook_ws
    client = ws.client()
    template = unique("HOOK")
    ws.add_template(template, "Hook for {{name}}", "Body for {{name}}")
    run_id = _invoke(ws, template, "reject", unique("hook-user"))

    detail = ws.wait_run(run_id, "ERROR", timeout=10)
    assert "400" in detail["error"]
    message_id = _message_id(ws, run_id)
    assert [r.status for r in webhook_receiver.for_message(message_id)] == [400]

    message = client.messages.retrieve(message_id)
    assert message.status == "UNDELIVERABLE"
    assert message.error
    assert "400" in message.error
    assert message.reason
    (step,) = ws.steps(run_id)
    assert step.status == "ERROR"
    assert "400" in step.to_dict().get("error", "")
    history = client.messages.history(message_id).results or []
    types = [event.get("type") if isinstance(event, dict) else event.type for event in history]
    assert "UNDELIVERABLE" in types
    assert "RETRYING" not in types


def test_canceling_a_run_between_retries_stops_them_and_cancels_the_message(
    webhook_ws: Workspace, webhook_receiver: WebhookReceiver
) -> None:
    """A run canceled while its send waits to retry makes no more calls; the message is CANCELED."""
    ws = webhook_ws
    client = ws.client()
    template = unique("HOOK")
    ws.add_template(template, "Hook for {{name}}", "Body for {{name}}")
    run_id = _invoke(ws, template, "flaky", unique("hook-user"))
    message_id = _message_id(ws, run_id)
    wait_for(lambda: webhook_receiver.for_message(message_id), what="the first attempt")
    with ws.http() as http:
        canceled = http.post(f"/automations/runs/{run_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "CANCELED"

    # A control run started later retries after the same backoff: once its second attempt
    # has arrived, the canceled run's retry time has passed too.
    control = _invoke(ws, template, "flaky", unique("hook-user"))
    control_message = _message_id(ws, control)
    wait_for(
        lambda: len(webhook_receiver.for_message(control_message)) >= 2,
        what="the control run's retry",
    )
    assert len(webhook_receiver.for_message(message_id)) == 1
    assert ws.run(run_id)["status"] == "CANCELED"
    (step,) = ws.steps(run_id)
    assert step.status == "CANCELED"
    message = client.messages.retrieve(message_id)
    assert message.status == "CANCELED", f"message left {message.status} after its run was canceled"
