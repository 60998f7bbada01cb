"""Routing, timeouts, expiry, overrides and send-step idempotency, through the official SDK
against a real server, with real HTTP provider endpoints (webhook, Twilio) on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import courier
import pytest
from fake_service import Answer, FakeService, Received, fake_service
from relaybox_harness import (
    SmtpServer,
    Workspace,
    unique,
    unique_email,
    wait_for,
)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (a slow provider).
    delay: float = 0.0


class ScriptedEndpoints:
    """A fake_service answering each path from a script (default 200)."""

    def __init__(self, service: FakeService) -> None:
        self.service = service
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        service.respond = self._respond

    def _respond(self, request: Received) -> Answer:
        with self._lock:
            queue = self._scripts.get(request.path) or []
            reply = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else Reply())
        time.sleep(reply.delay)
        answer = {"id": f"ok-{len(self.service.requests)}", "sid": "SM1"}
        return reply.status, reply.headers, answer

    @property
    def base(self) -> str:
        return self.service.url

    def script(self, path: str, *replies: Reply) -> str:
        """Answer ``path`` with ``replies`` in turn (the last one repeats); its URL."""
        with self._lock:
            self._scripts[path] = list(replies)
        return self.base + path

    def to(self, path: str) -> list[Received]:
        return self.service.to(path)

    def for_message(self, path: str, message_id: str) -> list[Received]:
        return [r for r in self.to(path) if body(r).get("message_id") == message_id]


def body(request: Received) -> Any:
    """A JSON body, or a form (Twilio's) as single values."""
    try:
        return request.json()
    except ValueError:
        return {k: v[0] for k, v in parse_qs(request.raw.decode()).items()}


@pytest.fixture
def endpoints() -> Iterator[ScriptedEndpoints]:
    with fake_service() as service:
        yield ScriptedEndpoints(service)


def add_hook(ws: Workspace, url: str) -> str:
    return str(ws.client().providers.create(provider="webhook", settings={"url": url}).id)


def add_twilio(ws: Workspace, endpoints: ScriptedEndpoints, reply: Reply) -> str:
    sid = "AC" + "0" * 32
    endpoints.script(f"/2010-04-01/Accounts/{sid}/Messages.json", reply)
    settings = {
        "account_sid": sid,
        "auth_token": "token",
        "from_number": "+15550000000",
        "base_url": endpoints.base,
    }
    return str(ws.client().providers.create(provider="twilio", settings=settings).id)


def send(ws: Workspace, **message: Any) -> str:
    body = {"content": {"title": "Hello", "body": "b"}, **message}
    return str(ws.client().send.message(message=body).request_id)


def test_nested_all_and_single_fail_over_across_channels(
    new_workspace: Callable[[str], Workspace],
    smtp: SmtpServer,
    endpoints: ScriptedEndpoints,
) -> None:
    """all [email, single [sms, webhook]]: email delivers, and the SMS provider refusing for
    good fails that part over to the webhook."""
    ws = new_workspace("nested")
    ws.add_smtp_provider(smtp)
    sms = add_twilio(ws, endpoints, Reply(400))
    hook = add_hook(ws, endpoints.script("/hook", Reply(200)))
    email = unique_email("nested")
    message_id = send(
        ws,
        to={"user_id": unique("u"), "email": email, "phone_number": "+15550100"},
        routing={
            "method": "all",
            "channels": ["email", {"method": "single", "channels": ["sms", "webhook"]}],
        },
    )
    message = ws.wait_message(message_id, "SENT", "UNDELIVERABLE")
    assert message.status == "SENT"
    assert smtp.recorder.wait_for(email)[0].subject == "Hello"
    assert len(endpoints.for_message("/hook", message_id)) == 1
    assert [p["integration"] for p in message.to_dict()["providers"]][1:] == [sms, hook]
    kinds = [(e["type"], e.get("channel")) for e in ws.history(message_id)]
    assert ("UNDELIVERABLE", "sms") in kinds
    assert ("SENT", "email") in kinds
    assert ("SENT", "webhook") in kinds


def test_single_falls_through_to_the_next_channel(
    new_workspace: Callable[[str], Workspace],
    smtp: SmtpServer,
    endpoints: ScriptedEndpoints,
) -> None:
    """single [sms, email]: the SMS provider refusing moves the message to email at once."""
    ws = new_workspace("fallthrough")
    ws.add_smtp_provider(smtp)
    add_twilio(ws, endpoints, Reply(400))
    email = unique_email("fall")
    message_id = send(
        ws,
        to={"email": email, "phone_number": "+15550101"},
        routing={"method": "single", "channels": ["sms", "email"]},
    )
    ws.wait_message(message_id, "SENT")
    assert smtp.recorder.wait_for(email)[0].subject == "Hello"
    channels = [e.get("channel") for e in ws.history(message_id) if e["type"] == "ROUTED"]
    assert channels == ["sms", "email"]


def test_channel_routing_method_all_sends_through_every_provider(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """channels.webhook.routing_method all: both webhook providers receive the message."""
    ws = new_workspace("chall")
    first = add_hook(ws, endpoints.script("/one"))
    second = add_hook(ws, endpoints.script("/two"))
    message_id = send(
        ws,
        to={"user_id": unique("u")},
        routing={"method": "single", "channels": ["webhook"]},
        channels={"webhook": {"routing_method": "all", "providers": [second, first]}},
    )
    message = ws.wait_message(message_id, "SENT")
    assert len(endpoints.for_message("/one", message_id)) == 1
    assert len(endpoints.for_message("/two", message_id)) == 1
    assert [p["integration"] for p in message.to_dict()["providers"]] == [second, first]
    # Each provider gets its own key, so one receiver behind both would not drop either.
    keys = {r.headers["Idempotency-Key"] for r in endpoints.to("/one") + endpoints.to("/two")}
    assert len(keys) == 2


def test_channel_if_false_skips_the_channel(
    new_workspace: Callable[[str], Workspace],
    smtp: SmtpServer,
    endpoints: ScriptedEndpoints,
) -> None:
    """channels.webhook.if is a JS condition over data/profile: false skips the webhook."""
    ws = new_workspace("chif")
    ws.add_smtp_provider(smtp)
    add_hook(ws, endpoints.script("/vip"))
    routing = {"method": "single", "channels": ["webhook", "email"]}
    channels = {"webhook": {"if": "data.vip === true && profile.email.endsWith('.test')"}}
    plain, vip = unique_email("plain"), unique("vip") + "@example.test"
    skipped = send(ws, to={"email": plain}, data={"vip": False}, routing=routing, channels=channels)
    taken = send(ws, to={"email": vip}, data={"vip": True}, routing=routing, channels=channels)
    ws.wait_message(skipped, "SENT")
    ws.wait_message(taken, "SENT")
    assert smtp.recorder.wait_for(plain)[0].subject == "Hello"
    assert endpoints.for_message("/vip", skipped) == []
    assert len(endpoints.for_message("/vip", taken)) == 1
    assert smtp.recorder.to(vip) == []


def test_provider_timeout_fails_over_with_both_attempts_in_history(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """A provider answering after its timeout is abandoned and the next one delivers."""
    ws = new_workspace("ptimeout")
    slow = add_hook(ws, endpoints.script("/slow", Reply(200, delay=3.0)))
    fast = add_hook(ws, endpoints.script("/fast"))
    message_id = send(
        ws,
        to={"user_id": unique("u")},
        routing={"method": "single", "channels": ["webhook"]},
        timeout={"provider": {slow: 500}},
    )
    message = ws.wait_message(message_id, "SENT")
    assert len(endpoints.for_message("/fast", message_id)) == 1
    events = ws.history(message_id)
    routed = [e["integration"] for e in events if e["type"] == "ROUTED"]
    assert routed == [slow, fast]
    (retrying,) = [e for e in events if e["type"] == "RETRYING"]
    assert retrying["integration"] == slow
    assert "0.5 s" in retrying["error_message"]
    assert "next_attempt_at" not in retrying  # timed out: failed over, not retried
    statuses = [p["status"] for p in message.to_dict()["providers"]]
    assert statuses == ["TIMEOUT", "SENT"]


def test_retry_after_sets_the_next_attempt(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """A 429 with Retry-After: 30 schedules the retry 30 s later (not the 1 s backoff)."""
    ws = new_workspace("retryafter")
    add_hook(ws, endpoints.script("/busy", Reply(429, {"Retry-After": "30"})))
    message_id = send(ws, to={"user_id": unique("u")})
    retrying = wait_for(
        lambda: next((e for e in ws.history(message_id) if e["type"] == "RETRYING"), None),
        what="the RETRYING event",
    )
    waited = retrying["next_attempt_at"] - retrying["ts"]
    # From the end of the call, which took at most a few seconds on a loaded machine.
    assert 30_000 <= waited < 35_000
    assert ws.client().messages.retrieve(message_id).status == "ROUTED"
    assert len(endpoints.for_message("/busy", message_id)) == 1


def test_expiry_ends_the_message_undeliverable(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """A message still retrying at its expiry ends UNDELIVERABLE (EXPIRED); the retry the
    provider asked for (60 s) is pulled in to the expiry."""
    ws = new_workspace("expiry")
    add_hook(ws, endpoints.script("/down", Reply(503, {"Retry-After": "60"})))
    message_id = send(ws, to={"user_id": unique("u")}, expiry={"expires_in": 1500})
    message = ws.wait_message(message_id, "UNDELIVERABLE", timeout=20)
    assert message.reason == "EXPIRED"
    assert "expiry" in (message.error or "")
    events = ws.history(message_id)
    (retrying,) = [e for e in events if e["type"] == "RETRYING"]
    assert abs(retrying["next_attempt_at"] - (message.enqueued + 1500)) <= 1
    assert events[-1]["type"] == "UNDELIVERABLE"
    assert events[-1]["reason"] == "EXPIRED"
    assert len(endpoints.for_message("/down", message_id)) == 1


def test_send_step_idempotency_key_sends_once_per_workspace(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """Two runs whose send steps share an idempotency_key deliver once; the provider gets a
    key derived from it, and the second step points at the first message."""
    ws = new_workspace("stepkey")
    add_hook(ws, endpoints.script("/once"))
    ws.add_template("ONCE", "Once {{n}}", "Body")
    key = unique("order-42")
    client = ws.client()
    step = {"action": "send", "template": "ONCE", "idempotency_key": key}
    runs = [
        client.automations.invoke.invoke_ad_hoc(
            automation={"steps": [step]}, recipient=unique("u"), data={"n": n}
        ).run_id
        for n in (1, 2)
    ]
    for run_id in runs:
        ws.wait_run(run_id, "PROCESSED", timeout=15)
    (first,), (second,) = (ws.steps(r) for r in runs)
    assert first.message_id == second.message_id
    calls = endpoints.to("/once")
    assert len(calls) == 1
    assert body(calls[0])["subject"] == "Once 1"
    assert calls[0].headers["Idempotency-Key"].endswith("/" + key)


def test_send_step_override_reaches_the_provider(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """A send step's override (by provider) and a message's providers override reshape the
    webhook request."""
    ws = new_workspace("override")
    add_hook(ws, endpoints.script("/ovr"))
    ws.add_template("OVR", "Override", "Body")
    run_id = (
        ws.client()
        .automations.invoke.invoke_ad_hoc(
            automation={
                "steps": [
                    {
                        "action": "send",
                        "template": "OVR",
                        "override": {
                            "webhook": {
                                "body": {"campaign": "spring", "data": {"extra": 1}},
                                "headers": {"X-Override": "yes"},
                            }
                        },
                    }
                ]
            },
            recipient=unique("u"),
            data={"kept": True},
        )
        .run_id
    )
    ws.wait_run(run_id, "PROCESSED", timeout=15)
    (call,) = endpoints.to("/ovr")
    assert body(call)["campaign"] == "spring"
    assert body(call)["data"] == {"kept": True, "extra": 1}
    assert body(call)["subject"] == "Override"
    assert call.headers["X-Override"] == "yes"
    message_id = send(
        ws,
        to={"user_id": unique("u")},
        providers={"webhook": {"override": {"body": {"channel": "custom"}}}},
    )
    ws.wait_message(message_id, "SENT")
    (sent,) = endpoints.for_message("/ovr", message_id)
    assert body(sent)["channel"] == "custom"


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (
            {"message": {"template": "T", "routing": {"method": "both", "channels": []}}},
            "automation.steps[0].message.routing.method",
        ),
        (
            {"message": {"template": "T", "expiry": {"expires_in": "soon"}}},
            "automation.steps[0].message.expiry.expires_in",
        ),
        ({"template": "T", "idempotency_key": 7}, "automation.steps[0].idempotency_key"),
        ({"template": "T", "override": "webhook"}, "automation.steps[0].override"),
    ],
)
def test_bad_send_step_delivery_fields_are_a_400(
    ws: Workspace, step: dict[str, Any], field: str
) -> None:
    """A send step's routing, expiry, idempotency_key or override is checked at invoke."""
    with pytest.raises(courier.BadRequestError) as bad:
        ws.client().automations.invoke.invoke_ad_hoc(
            automation={"steps": [{"action": "send", **step}]}, recipient=unique("u")
        )
    assert field in str(bad.value)
    assert bad.value.status_code == 400


def test_provider_if_false_leaves_the_provider_out(
    new_workspace: Callable[[str], Workspace], endpoints: ScriptedEndpoints
) -> None:
    """providers.<id>.if false: that provider is skipped even under routing_method all."""
    ws = new_workspace("provif")
    add_hook(ws, endpoints.script("/always"))
    gold = add_hook(ws, endpoints.script("/gold"))
    message = {
        "routing": {"method": "single", "channels": ["webhook"]},
        "channels": {"webhook": {"routing_method": "all"}},
        "providers": {gold: {"if": "data.tier === 'gold'"}},
    }
    silver_id = send(ws, to={"user_id": unique("u")}, data={"tier": "silver"}, **message)
    gold_id = send(ws, to={"user_id": unique("u")}, data={"tier": "gold"}, **message)
    ws.wait_message(silver_id, "SENT")
    ws.wait_message(gold_id, "SENT")
    assert len(endpoints.for_message("/always", silver_id)) == 1
    assert endpoints.for_message("/gold", silver_id) == []
    assert len(endpoints.for_message("/always", gold_id)) == 1
    assert len(endpoints.for_message("/gold", gold_id)) == 1
