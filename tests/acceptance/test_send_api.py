"""POST /send through the official SDK: templates and inline content, several recipients,
delays and cancellation, message listing, resends, idempotency and workspace isolation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import courier
import httpx
import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


@pytest.fixture(scope="module")
def send_ws(new_workspace: Callable[[str], Workspace], smtp: SmtpServer) -> Workspace:
    """A workspace with one SMTP provider and a published template WELCOME."""
    ws = new_workspace("send")
    ws.add_smtp_provider(smtp)
    ws.add_template("WELCOME", "Welcome {{name}}", "Hello {{name}}")
    return ws


def test_send_template_with_single_routing(send_ws: Workspace, smtp: SmtpServer) -> None:
    """§15.19: a template send routed single over email,sms is delivered and listed by status."""
    client = send_ws.client()
    email = unique_email("single")
    user = unique("u")
    response = client.send.message(
        message={
            "to": {"user_id": user, "email": email},
            "template": "WELCOME",
            "data": {"name": "Jane"},
            "routing": {"method": "single", "channels": ["email", "sms"]},
        }
    )
    assert response.request_id
    message = send_ws.wait_message(response.request_id, "SENT")
    assert message.recipient == user
    assert message.notification == "WELCOME"
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Welcome Jane"
    listed = client.messages.list(status=["SENT", "DELIVERED"], recipient=user)
    assert [m.id for m in listed.results] == [response.request_id]
    assert client.messages.list(status=["UNDELIVERABLE"], recipient=user).results == []


def test_send_inline_content(send_ws: Workspace, smtp: SmtpServer) -> None:
    """§15.20: title/body sugar renders with data; content() shows the rendered title."""
    client = send_ws.client()
    email = unique_email("inline")
    response = client.send.message(
        message={
            "to": {"email": email},
            "content": {"title": "Hi {{name}}", "body": "Body"},
            "data": {"name": "J"},
        }
    )
    send_ws.wait_message(response.request_id, "SENT")
    content = client.messages.content(response.request_id)
    assert content.results[0].content.title == "Hi J"
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Hi J"


def test_delayed_message_can_be_canceled(send_ws: Workspace, smtp: SmtpServer) -> None:
    """§15.21: a delayed message cancels with 200 CANCELED + canceledAt and is never sent."""
    client = send_ws.client()
    email = unique_email("delayed")
    response = client.send.message(
        message={
            "to": {"email": email},
            "template": "WELCOME",
            "data": {"name": "Later"},
            "delay": {"duration": 600_000},
        }
    )
    assert client.messages.retrieve(response.request_id).status == "DELAYED"
    canceled = client.messages.cancel(response.request_id)
    assert canceled.status == "CANCELED"
    assert canceled.to_dict().get("canceledAt")
    assert client.messages.retrieve(response.request_id).status == "CANCELED"
    assert smtp.recorder.to(email) == []


def test_short_delay_is_honoured(send_ws: Workspace, smtp: SmtpServer) -> None:
    """delay.duration holds the message back, then it is delivered."""
    client = send_ws.client()
    email = unique_email("short")
    response = client.send.message(
        message={"to": {"email": email}, "template": "WELCOME", "delay": {"duration": 1500}}
    )
    assert client.messages.retrieve(response.request_id).status == "DELAYED"
    send_ws.wait_message(response.request_id, "SENT")
    sent = client.messages.retrieve(response.request_id)
    assert sent.sent is not None
    assert sent.sent - sent.enqueued >= 1400


def test_cancel_of_sent_message_conflicts_without_retries(send_ws: Workspace) -> None:
    """§15.21: canceling a sent message is a 409 the SDK does not retry (one request)."""
    seen: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [seen.append]})
    client = send_ws.client(max_retries=2, http_client=http)
    response = client.send.message(
        message={"to": {"email": unique_email("sent")}, "template": "WELCOME"}
    )
    send_ws.wait_message(response.request_id, "SENT")
    seen.clear()
    with pytest.raises(courier.ConflictError) as raised:
        client.messages.cancel(response.request_id)
    assert len(seen) == 1
    assert raised.value.response.headers["x-should-retry"] == "false"
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["status"] == "SENT"
    assert body["id"] == response.request_id
    http.close()


def test_multiple_recipients_get_one_message_each(send_ws: Workspace, smtp: SmtpServer) -> None:
    """An array `to` makes one message per recipient; the request id is neither of them."""
    client = send_ws.client()
    first, second = unique_email("many"), unique_email("many")
    response = client.send.message(
        message={"to": [{"email": first}, {"email": second}], "template": "WELCOME"}
    )
    smtp.recorder.wait_for(first)
    smtp.recorder.wait_for(second)
    for email in (first, second):
        (message,) = client.messages.list(recipient=email).results
        assert message.id != response.request_id
        send_ws.wait_message(message.id, "SENT")


def test_metadata_filters_and_paging(send_ws: Workspace) -> None:
    """Tags, trace ids and message ids filter GET /messages, newest first."""
    client = send_ws.client()
    tag, trace = unique("tag"), unique("trace")
    ids = []
    for i in range(3):
        sent = client.send.message(
            message={
                "to": {"email": unique_email(f"tagged{i}")},
                "template": "WELCOME",
                "metadata": {"tags": [tag, "other"], "trace_id": trace if i == 0 else None},
            }
        )
        ids.append(sent.request_id)
    tagged = client.messages.list(tag=[tag, unique("nope")])
    assert [m.id for m in tagged.results] == list(reversed(ids))
    assert [m.id for m in client.messages.list(trace_id=trace).results] == [ids[0]]
    assert [m.id for m in client.messages.list(message_id=ids[1]).results] == [ids[1]]
    assert tagged.paging.more is False


def test_resend_makes_a_new_message(send_ws: Workspace, smtp: SmtpServer) -> None:
    """resend delivers the same message again under a new id."""
    client = send_ws.client()
    email = unique_email("resend")
    response = client.send.message(
        message={"to": {"email": email}, "template": "WELCOME", "data": {"name": "Re"}}
    )
    send_ws.wait_message(response.request_id, "SENT")
    again = client.messages.resend(response.request_id)
    assert again.message_id
    assert again.message_id != response.request_id
    send_ws.wait_message(again.message_id, "SENT")
    mails = smtp.recorder.wait_for(email, count=2)
    assert [m.subject for m in mails] == ["Welcome Re", "Welcome Re"]


def test_idempotency_key_returns_the_same_request(send_ws: Workspace) -> None:
    """The same Idempotency-Key twice gives the same requestId and one message."""
    client = send_ws.client()
    email = unique_email("idem")
    key = unique("key")
    body = {"to": {"email": email}, "template": "WELCOME"}
    first = client.send.message(message=body, idempotency_key=key)
    second = client.send.message(message=body, idempotency_key=key)
    assert first.request_id == second.request_id
    assert len(client.messages.list(recipient=email).results) == 1


def test_unknown_template_is_unmapped_and_no_route_is_unroutable(send_ws: Workspace) -> None:
    """An unknown template ends UNMAPPED; a recipient no channel can reach ends UNROUTABLE."""
    client = send_ws.client()
    missing = client.send.message(
        message={"to": {"email": unique_email("unmapped")}, "template": unique("NOPE")}
    )
    unmapped = send_ws.wait_message(missing.request_id, "UNMAPPED")
    assert "not found" in (unmapped.error or "")
    phone_only = client.send.message(
        message={
            "to": {"phone_number": "+15550100"},
            "template": "WELCOME",
            "routing": {"method": "single", "channels": ["sms", "email"]},
        }
    )
    unroutable = send_ws.wait_message(phone_only.request_id, "UNROUTABLE")
    assert unroutable.reason == "NO_CHANNELS"


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        pytest.param({"template": "WELCOME"}, "message.to", id="no-to"),
        pytest.param({"to": {"email": "a@b.c"}}, "template or content", id="no-template"),
        pytest.param(
            {"to": {"email": "a@b.c"}, "template": "T", "content": {"title": "t", "body": "b"}},
            "template or content",
            id="both",
        ),
        pytest.param({"to": {}, "template": "T"}, "user_id", id="empty-recipient"),
        pytest.param(
            {"to": {"email": "a@b.c"}, "template": "T", "delay": {"duration": "soon"}},
            "delay.duration",
            id="bad-delay",
        ),
        pytest.param(
            {"to": {"email": "a@b.c"}, "template": "T", "routing": {"method": "some"}},
            "routing.method",
            id="bad-routing",
        ),
    ],
)
def test_invalid_send_is_a_400(send_ws: Workspace, message: dict[str, Any], needle: str) -> None:
    """Bad messages get 400 invalid_request_error naming the field."""
    with pytest.raises(courier.BadRequestError) as raised:
        send_ws.client().send.message(message=message)  # type: ignore[arg-type]
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert needle in body["message"]


def test_messages_are_isolated_by_workspace(
    send_ws: Workspace, new_workspace: Callable[[str], Workspace]
) -> None:
    """Another workspace can neither see, list, cancel nor resend this workspace's messages."""
    response = send_ws.client().send.message(
        message={"to": {"email": unique_email("mine")}, "template": "WELCOME"}
    )
    other = new_workspace("other-send").client()
    with pytest.raises(courier.NotFoundError):
        other.messages.retrieve(response.request_id)
    with pytest.raises(courier.NotFoundError):
        other.messages.cancel(response.request_id)
    with pytest.raises(courier.NotFoundError):
        other.messages.resend(response.request_id)
    assert other.messages.list(message_id=response.request_id).results == []


def test_automation_send_step_with_message_uses_the_pipeline(
    send_ws: Workspace, smtp: SmtpServer
) -> None:
    """An automation send step written as {message: {...}} is routed like POST /send."""
    client = send_ws.client()
    email = unique_email("step")
    response = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {
                    "action": "send",
                    "message": {
                        "template": "WELCOME",
                        "routing": {"method": "single", "channels": ["sms", "email"]},
                    },
                }
            ]
        },
        recipient=unique("u"),
        profile={"email": email},
        data={"name": "Auto"},
    )
    send_ws.wait_run(response.run_id, "PROCESSED")
    (step,) = client.automations.runs.list_steps(response.run_id).steps or []
    assert step.message_id
    assert client.messages.retrieve(step.message_id).status == "SENT"
    assert smtp.recorder.wait_for(email)[0].subject == "Welcome Auto"
