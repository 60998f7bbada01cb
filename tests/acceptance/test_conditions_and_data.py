"""Step conditions, refs, interpolation, fetch-data and invoke through the official SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import courier
import pytest
from fake_service import Answer, FakeService, Received, fake_service
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


@pytest.fixture(scope="module")
def data_server() -> Iterator[FakeService]:
    """Serve /plan {"plan": "pro"}, /array [1], /text, /fail 500; record every request."""

    def respond(received: Received) -> Answer:
        if received.path.startswith("/plan"):
            status, payload = 200, json.dumps({"plan": "pro", "seats": 3})
        elif received.path.startswith("/array"):
            status, payload = 200, "[1, 2]"
        elif received.path.startswith("/text"):
            status, payload = 200, "plain text"
        else:
            status, payload = 500, json.dumps({"error": "boom"})
        return status, {"Content-Type": "application/json"}, payload

    with fake_service() as service:
        service.respond = respond
        yield service


def step_dicts(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    return [s.to_dict() for s in ws.steps(run_id)]


@pytest.fixture(scope="module")
def plan_template(ws: Workspace) -> str:
    alias = unique("PLAN")
    ws.add_template(alias, "Plan {{plan}}", "Your plan is {{plan}}.")
    return alias


def test_false_condition_skips_the_step_and_shows_why(
    ws: Workspace, smtp: SmtpServer, plan_template: str
) -> None:
    """An if that is false marks the step SKIPPED with expression, result and values read."""
    email = unique_email("cond")
    run = ws.client().automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "send", "template": plan_template, "if": "data.amount > 100"},
                {
                    "action": "send",
                    "template": plan_template,
                    "if": "data.orders.filter(o => o.total > 100).length > 0",
                },
            ]
        },
        recipient=unique("u"),
        profile={"email": email},
        data={"amount": 50, "plan": "basic", "orders": [{"total": 120}]},
    )
    ws.wait_run(run.run_id, "PROCESSED", "ERROR")
    skipped, sent = step_dicts(ws, run.run_id)
    assert skipped["status"] == "SKIPPED"
    assert "message_id" not in skipped
    assert skipped["condition"] == {
        "expression": "data.amount > 100",
        "result": False,
        "reads": [{"path": "data.amount", "value": 50}],
    }
    assert sent["status"] == "PROCESSED"
    assert sent["condition"]["result"] is True
    assert {"path": "data.orders.0.total", "value": 120} in sent["condition"]["reads"]
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Plan basic"


def test_condition_syntax_error_fails_the_step_with_the_message(
    ws: Workspace, plan_template: str
) -> None:
    """An if with a syntax error puts the step and the run in ERROR, naming the problem."""
    run = ws.client().automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": plan_template, "if": "data.("}]},
        recipient=unique("u"),
    )
    detail = ws.wait_run(run.run_id, "ERROR")
    (step,) = step_dicts(ws, run.run_id)
    assert step["status"] == "ERROR"
    assert "SyntaxError" in step["error"]
    assert "data.(" in step["error"]
    assert "SyntaxError" in detail["error"]


def test_runaway_condition_hits_its_time_cap_and_the_server_keeps_working(
    ws: Workspace, plan_template: str
) -> None:
    """An endless loop in an if fails the step within its CPU cap; later runs are unaffected."""
    client = ws.client()
    looping = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [{"action": "send", "template": plan_template, "if": "(() => {for(;;){}})()"}]
        },
        recipient=unique("u"),
    )
    ws.wait_run(looping.run_id, "ERROR")
    (step,) = step_dicts(ws, looping.run_id)
    assert "time limit" in step["error"]
    fine = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "delay", "duration": "0s", "if": "true"}]},
    )
    ws.wait_run(fine.run_id, "PROCESSED")


def test_fetch_data_overwrite_feeds_the_next_send(
    ws: Workspace, smtp: SmtpServer, plan_template: str, data_server: FakeService
) -> None:
    """fetch-data merges {"plan": "pro"} into data; the send renders it; refs expose it."""
    email = unique_email("fetch")
    user = unique("u x")
    run = ws.client().automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {
                    "action": "fetch-data",
                    "ref": "account",
                    "merge_strategy": "overwrite",
                    "webhook": {
                        "method": "POST",
                        "url": f"{data_server.url}/plan/${{data.user}}",
                        "headers": {"X-User": {"$ref": "data.user"}},
                        "params": {"q": "${data.plan}"},
                        "body": {"who": "me"},
                    },
                },
                {
                    "action": "send",
                    "template": plan_template,
                    "if": "refs.account.seats === 3 && data.keep === 'yes'",
                },
            ]
        },
        recipient=unique("u"),
        profile={"email": email},
        data={"plan": "basic", "keep": "yes", "user": user},
    )
    ws.wait_run(run.run_id, "PROCESSED", "ERROR")
    fetch, send = step_dicts(ws, run.run_id)
    assert fetch["status"] == "PROCESSED"
    assert fetch["output"] == {"status_code": 200, "merge_strategy": "overwrite"}
    assert send["status"] == "PROCESSED"
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Plan pro"
    assert "pro" in ws.client().messages.content(send["message_id"]).to_json()
    (request,) = [r for r in data_server.requests if r.header("X-User") == user]
    assert request.method == "POST"
    assert request.path == f"/plan/{user.replace(' ', '%20')}"
    assert request.query == {"q": ["basic"]}
    assert request.json() == {"who": "me"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/secret", "refusing to send to '10.0.0.1'"),
        ("http://127.0.0.2:9/x", "loopback"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("/array", "response must be a JSON object"),
        ("/text", "response is not JSON"),
        ("/fail", "HTTP 500"),
    ],
)
def test_fetch_failure_is_recorded_and_the_run_continues(
    ws: Workspace, data_server: FakeService, url: str, message: str
) -> None:
    """A refused address, bad response or error status is recorded on the step; the run goes on."""
    target = f"{data_server.url}{url}" if url.startswith("/") else url
    run = ws.client().automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "fetch-data", "ref": "f", "webhook": {"method": "GET", "url": target}},
                {"action": "delay", "duration": "0s", "if": "refs.f.status === 'ERROR'"},
            ]
        },
        data={"kept": True},
    )
    ws.wait_run(run.run_id, "PROCESSED")
    fetch, after = step_dicts(ws, run.run_id)
    assert fetch["status"] == "ERROR"
    assert message in fetch["error"]
    assert after["status"] == "PROCESSED"
    assert after["condition"]["result"] is True


def test_invoke_step_starts_the_saved_automation_with_its_context(
    ws: Workspace, smtp: SmtpServer, plan_template: str
) -> None:
    """An invoke step starts the child run (listed with its template_id) with the given context."""
    client = ws.client()
    child_id, alias = unique("child"), unique("child-alias")
    ws.save_automation(child_id, [{"action": "send", "template": plan_template}], alias=alias)
    email = unique_email("child")
    parent = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {
                    "action": "invoke",
                    "template": alias,
                    "ref": "child",
                    "context": {
                        "recipient": unique("kid"),
                        "profile": {"email": email},
                        "data": {"plan": "${data.plan}-child"},
                    },
                }
            ]
        },
        data={"plan": "gold"},
    )
    ws.wait_run(parent.run_id, "PROCESSED", "ERROR")
    (step,) = step_dicts(ws, parent.run_id)
    assert step["status"] == "PROCESSED"
    child_run = step["output"]["run_id"]
    assert step["output"]["template_id"] == child_id
    ws.wait_run(child_run, "PROCESSED")
    listed = ws.find_run(child_run, template_id=child_id)
    assert listed is not None
    assert listed.template_id == child_id
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Plan gold-child"


def test_invoke_step_with_unknown_template_errors(ws: Workspace) -> None:
    """Invoking an automation that does not exist (or is unpublished) fails the step."""
    run = ws.client().automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "invoke", "template": unique("missing")}]}
    )
    ws.wait_run(run.run_id, "ERROR")
    (step,) = step_dicts(ws, run.run_id)
    assert step["status"] == "ERROR"
    assert "not found" in step["error"]


def test_interpolated_cancelation_token_cancels_the_matching_run(
    ws: Workspace, plan_template: str
) -> None:
    """A cancel step's ${...} token is evaluated when it runs and cancels runs holding it."""
    client = ws.client()
    user = unique("user")
    waiting = client.automations.invoke.invoke_ad_hoc(
        automation={
            "cancelation_token": f"onboarding-{user}",
            "steps": [
                {"action": "delay", "duration": "1 hour"},
                {"action": "send", "template": plan_template},
            ],
        },
        recipient=user,
    )
    ws.wait_run(waiting.run_id, "WAITING")
    cancel = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [{"action": "cancel", "cancelation_token": "${`onboarding-${data.user}`}"}]
        },
        data={"user": user},
    )
    ws.wait_run(cancel.run_id, "PROCESSED")
    (step,) = step_dicts(ws, cancel.run_id)
    assert step["output"] == {"cancelation_token": f"onboarding-{user}"}
    ws.wait_run(waiting.run_id, "CANCELED")


def test_automation_cancelation_token_is_interpolated_at_invoke(
    ws: Workspace, plan_template: str
) -> None:
    """An automation's ${...} cancelation_token is evaluated against the invoke's context."""
    client = ws.client()
    user = unique("user")
    waiting = client.automations.invoke.invoke_ad_hoc(
        automation={
            "cancelation_token": "${`flow-${data.userId}`}",
            "steps": [
                {"action": "delay", "duration": "1 hour"},
                {"action": "send", "template": plan_template},
            ],
        },
        data={"userId": user},
    )
    detail = ws.wait_run(waiting.run_id, "WAITING")
    assert detail["automation"]["cancelation_token"] == f"flow-{user}"
    cancel = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "cancel", "cancelation_token": f"flow-{user}"}]}
    )
    ws.wait_run(cancel.run_id, "PROCESSED")
    ws.wait_run(waiting.run_id, "CANCELED")


def test_broken_automation_cancelation_token_is_a_bad_request(ws: Workspace) -> None:
    """A cancelation_token expression that fails is rejected with 400 invalid_request_error."""
    with pytest.raises(courier.BadRequestError) as caught:
        ws.client(max_retries=0).automations.invoke.invoke_ad_hoc(
            automation={"cancelation_token": "${data.(}", "steps": []}
        )
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert body["message"].startswith("automation.cancelation_token:")


def test_ref_accessor_and_interpolation_in_send_and_delay_fields(
    ws: Workspace, smtp: SmtpServer, plan_template: str
) -> None:
    """A send's recipient from {"$ref"} and a delay's ${...} duration resolve when they run."""
    client = ws.client()
    friend, friend_email = unique("friend"), unique_email("friend")
    seeded = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": []}, recipient=friend, profile={"email": friend_email}
    )
    ws.wait_run(seeded.run_id, "PROCESSED")
    run = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "send", "template": plan_template, "recipient": {"$ref": "data.friend"}},
                {"action": "delay", "duration": "${data.wait}"},
            ]
        },
        recipient=unique("u"),
        data={"friend": friend, "plan": "shared", "wait": "1 hour"},
    )
    detail = ws.wait_run(run.run_id, "WAITING")
    send, delay = step_dicts(ws, run.run_id)
    assert client.messages.retrieve(send["message_id"]).recipient == friend
    (mail,) = smtp.recorder.wait_for(friend_email)
    assert mail.subject == "Plan shared"
    assert delay["status"] == "WAITING"
    waited = datetime.fromisoformat(delay["wake_at"]) - datetime.fromisoformat(detail["created_at"])
    assert 3590 < waited.total_seconds() < 3610
    assert detail["automation"]["steps"][1]["duration"] == "${data.wait}"
    with ws.http() as http:
        assert http.post(f"/automations/runs/{run.run_id}/cancel").status_code == 200
