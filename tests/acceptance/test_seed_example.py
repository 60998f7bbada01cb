"""The Courier guide's seed example, end to end: send → delay → send through the SDK."""

from __future__ import annotations

import pytest
from courier import Courier
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


@pytest.fixture(scope="module")
def order_templates(ws: Workspace) -> None:
    """ORDER_CONFIRMATION and SHIPPING_UPDATE in the shared workspace."""
    ws.add_template(
        "ORDER_CONFIRMATION",
        "Order {{order_id}} confirmed",
        "Hi {{name}}, thanks for ordering {{item_name}} (order {{order_id}}).",
    )
    ws.add_template(
        "SHIPPING_UPDATE",
        "Your {{item_name}} has shipped",
        "Order {{order_id}} is on its way, {{name}}.",
    )


def _seed_invoke(client: Courier, email: str, order_id: str) -> str:
    response = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "send", "template": "ORDER_CONFIRMATION"},
                {"action": "delay", "duration": "2 seconds"},
                {"action": "send", "template": "SHIPPING_UPDATE"},
            ]
        },
        recipient="user_123",
        profile={"email": email},
        data={"order_id": order_id, "item_name": "Blue Widget", "name": "Ada"},
    )
    assert isinstance(response.run_id, str)
    assert response.run_id
    return response.run_id


@pytest.mark.usefixtures("order_templates")
def test_seed_example_sends_two_rendered_emails_two_seconds_apart(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """Ad hoc send → delay "2 seconds" → send delivers both rendered emails ≥ 2 s apart."""
    client = ws.client()
    email = unique_email("seed")
    order_id = unique("ORD")
    run_id = _seed_invoke(client, email, order_id)

    first, second = smtp.recorder.wait_for(email, count=2, timeout=15)

    assert first.subject == f"Order {order_id} confirmed"
    assert first.text is not None
    assert f"Hi Ada, thanks for ordering Blue Widget (order {order_id})." in first.text
    assert first.html is not None
    assert "Blue Widget" in first.html
    assert second.subject == "Your Blue Widget has shipped"
    assert second.text is not None
    assert f"Order {order_id} is on its way, Ada." in second.text
    assert first.headers["To"] == email
    gap = second.monotonic - first.monotonic
    assert 2.0 <= gap < 6.0, f"second email came {gap:.2f} s after the first"

    detail = ws.wait_run(run_id, "PROCESSED")
    assert detail["recipient"] == "user_123"
    assert detail["error"] is None

    steps = client.automations.runs.list_steps(run_id).steps
    assert steps is not None
    assert [s.action for s in steps] == ["send", "delay", "send"]
    assert [s.status for s in steps] == ["PROCESSED"] * 3
    send_ids = [steps[0].message_id, steps[2].message_id]
    assert all(isinstance(mid, str) and mid for mid in send_ids)
    assert send_ids[0] != send_ids[1]
    assert steps[1].message_id is None

    # Each email carries the message id the step reports.
    assert first.headers["X-Relaybox-Message-Id"] == send_ids[0]
    assert second.headers["X-Relaybox-Message-Id"] == send_ids[1]

    for mid, subject in zip(send_ids, [first.subject, second.subject], strict=True):
        assert mid is not None
        message = client.messages.retrieve(mid)
        assert message.status == "SENT"
        assert message.recipient == "user_123"
        assert message.id == mid
        content = client.messages.content(mid)
        assert content.results
        assert content.results[0].content.subject == subject

    listed = ws.find_run(run_id, status="PROCESSED")
    assert listed is not None
    assert listed.status == "PROCESSED"
    assert listed.template_id is None
    assert listed.created_at is not None
