"""The send-list and throttle automation steps, end to end via the official SDK."""

from __future__ import annotations

from typing import Any

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


def test_send_list_to_an_unknown_list_errors(ws: Workspace) -> None:
    """send-list naming a list that does not exist ends the run ERROR saying so."""
    missing = unique("nolist")
    detail = _run(ws, [{"action": "send-list", "list": missing, "template": "t"}], recipient="x")
    assert detail["status"] == "ERROR"
    assert f"List {missing} not found" in detail["error"]
