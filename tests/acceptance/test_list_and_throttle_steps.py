"""The send-list and throttle automation steps, end to end via the official SDK."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from courier import AsyncCourier
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def _run(ws: Workspace, steps: list[dict[str, Any]], **invoke: Any) -> dict[str, Any]:
    response = ws.client().automations.invoke.invoke_ad_hoc(automation={"steps": steps}, **invoke)
    return ws.wait_run(response.run_id, "PROCESSED", "ERROR", "THROTTLED")


def test_send_list_mails_every_subscriber_under_one_request_id(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """send-list to a list of 3 subscribers sends 3 emails; the step shows one message_id."""
    client = ws.client()
    template = unique("SENDLIST")
    ws.add_template(template, "News: {{topic}}", "Body")
    list_id = unique("team.eng")
    emails = {}
    for n in range(3):
        user = unique(f"member{n}")
        emails[user] = unique_email(f"member{n}")
        client.profiles.create(user, profile={"email": emails[user], "name": f"M{n}"})
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": u} for u in emails])
    step = {"action": "send-list", "list": list_id, "template": template, "data": {"topic": "x"}}
    detail = _run(ws, [step], recipient=unique("runner"))
    assert detail["status"] == "PROCESSED", detail
    for email in emails.values():
        (mail,) = smtp.recorder.wait_for(email)
        assert mail.subject == "News: x"
    (listed,) = ws.steps(detail["run_id"])
    assert listed.status == "PROCESSED"
    assert listed.message_id
    # The step's one message id lists every subscriber's message.
    messages = client.messages.list(message_id=listed.message_id).results or []
    assert sorted(m.recipient for m in messages) == sorted(emails)


def test_send_list_to_an_unknown_list_errors(ws: Workspace) -> None:
    """send-list naming a list that does not exist ends the run ERROR saying so."""
    missing = unique("nolist")
    detail = _run(ws, [{"action": "send-list", "list": missing, "template": "t"}], recipient="x")
    assert detail["status"] == "ERROR"
    assert f"List {missing} not found" in detail["error"]


async def _invoke_all(ws: Workspace, bodies: list[dict[str, Any]]) -> list[str]:
    async with AsyncCourier(api_key=ws.key, base_url=ws.server.url, max_retries=0) as client:
        responses = await asyncio.gather(
            *(client.automations.invoke.invoke_ad_hoc(**body) for body in bodies)
        )
    return [r.run_id for r in responses]


def test_concurrent_invokes_over_the_limit_end_throttled(ws: Workspace) -> None:
    """N+k concurrent invokes through a throttle of N: exactly N pass, k end THROTTLED."""
    allowed, extra = 5, 7
    key = unique("throttle")
    steps = [
        {"action": "throttle", "max_allowed": allowed, "period": "P365D", "throttle_key": key},
        {"action": "update-profile", "profile": {"passed": True}},
    ]
    bodies = [
        {"automation": {"steps": steps}, "recipient": unique("thr")} for _ in range(allowed + extra)
    ]
    run_ids = asyncio.run(_invoke_all(ws, bodies))
    finals = [ws.wait_run(r, "PROCESSED", "THROTTLED", "ERROR")["status"] for r in run_ids]
    assert Counter(finals) == {"PROCESSED": allowed, "THROTTLED": extra}
    throttled = run_ids[finals.index("THROTTLED")]
    assert [s.status for s in ws.steps(throttled)] == ["THROTTLED", "NOT PROCESSED"]


def test_user_scope_throttles_per_recipient(ws: Workspace) -> None:
    """The default user scope counts per recipient (or data.user_id), not across users."""
    step = {"action": "throttle", "max_allowed": 1, "period": "365 days"}
    first, second = unique("ua"), unique("ub")
    assert _run(ws, [step], recipient=first)["status"] == "PROCESSED"
    assert _run(ws, [step], recipient=first)["status"] == "THROTTLED"
    assert _run(ws, [step], data={"user_id": second})["status"] == "PROCESSED"


def test_throttle_with_bad_fields_errors(ws: Workspace) -> None:
    """A throttle without max_allowed, or with an unparseable period, ends the run ERROR."""
    bad = _run(ws, [{"action": "throttle", "period": "1h", "scope": "global"}], recipient="x")
    assert "max_allowed" in bad["error"]
    bad = _run(ws, [{"action": "throttle", "max_allowed": 1, "period": "soon"}], recipient="x")
    assert "period: Invalid" in bad["error"]


def test_global_scope_counts_per_saved_automation(ws: Workspace) -> None:
    """A global throttle counts the runs of its own saved automation, not of other ones."""
    client = ws.client()
    step = {"action": "throttle", "max_allowed": 1, "period": "P365D", "scope": "global"}
    first, other = unique("thr-a"), unique("thr-b")
    ws.save_automation(first, [step])
    ws.save_automation(other, [step])
    runs = [
        client.automations.invoke.invoke_by_template(t, recipient=unique("g")).run_id
        for t in (first, first, other)
    ]
    statuses = [ws.wait_run(r, "PROCESSED", "THROTTLED", "ERROR")["status"] for r in runs]
    assert statuses == ["PROCESSED", "THROTTLED", "PROCESSED"]
