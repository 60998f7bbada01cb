"""Cancellation: by token with a cancel step, and of a single run through Relaybox's API."""

from __future__ import annotations

from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def _delayed_send(ws: Workspace, template: str, token: str | None, delay: str, email: str) -> str:
    automation: dict[str, object] = {
        "steps": [
            {"action": "delay", "duration": delay},
            {"action": "send", "template": template},
        ]
    }
    if token is not None:
        automation["cancelation_token"] = token
    response = ws.client().automations.invoke.invoke_ad_hoc(
        automation=automation, recipient=unique("u"), profile={"email": email}
    )
    assert response.run_id
    return response.run_id


def test_cancel_step_cancels_every_waiting_run_sharing_the_token(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """A cancel step cancels all runs with its token; a run with another token keeps waiting."""
    client = ws.client()
    template = unique("REMINDER")
    ws.add_template(template, "Reminder", "Don't forget!")
    token, other_token = unique("tok-X"), unique("tok-Y")
    emails = [unique_email("cancel-a"), unique_email("cancel-b"), unique_email("cancel-c")]
    run_a = _delayed_send(ws, template, token, "1 hour", emails[0])
    run_b = _delayed_send(ws, template, token, "1 hour", emails[1])
    run_c = _delayed_send(ws, template, other_token, "1 hour", emails[2])
    for run_id in (run_a, run_b, run_c):
        ws.wait_run(run_id, "WAITING")

    cancel = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "cancel", "cancelation_token": token}]}
    )
    assert cancel.run_id
    ws.wait_run(cancel.run_id, "PROCESSED")

    for run_id in (run_a, run_b):
        detail = ws.wait_run(run_id, "CANCELED", timeout=5)
        assert detail["automation"]["cancelation_token"] == token
        steps = client.automations.runs.list_steps(run_id).steps
        assert steps is not None
        assert [(s.action, s.status) for s in steps] == [
            ("delay", "CANCELED"),
            ("send", "NOT PROCESSED"),
        ]
        assert steps[1].message_id is None

    for run_id in (run_a, run_b):
        listed = ws.find_run(run_id, status="CANCELED")
        assert listed is not None
        assert listed.status == "CANCELED"
    assert ws.find_run(run_c, status="CANCELED") is None
    assert ws.run(run_c)["status"] == "WAITING"
    c_steps = client.automations.runs.list_steps(run_c).steps
    assert c_steps is not None
    assert c_steps[0].status == "WAITING"
    for email in emails:
        assert smtp.recorder.to(email) == []


def test_canceled_run_never_sends_after_its_wake_time(ws: Workspace, smtp: SmtpServer) -> None:
    """POST /automations/runs/{id}/cancel stops a run: nothing is sent when its delay ends."""
    template = unique("NUDGE")
    ws.add_template(template, "Nudge", "Still there?")
    canceled_email, control_email = unique_email("canceled"), unique_email("control")
    canceled = _delayed_send(ws, template, None, "2 seconds", canceled_email)
    ws.wait_run(canceled, "WAITING")
    with ws.http() as http:
        response = http.post(f"/automations/runs/{canceled}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "CANCELED"
        missing = http.post(f"/automations/runs/{unique('1-none')}/cancel")
        assert missing.status_code == 404
    # A control run with the same delay, started later, proves the wake time has passed.
    control = _delayed_send(ws, template, None, "2 seconds", control_email)
    smtp.recorder.wait_for(control_email, timeout=10)
    ws.wait_run(control, "PROCESSED")

    assert smtp.recorder.to(canceled_email) == []
    assert ws.run(canceled)["status"] == "CANCELED"
    steps = ws.steps(canceled)
    assert [s.status for s in steps] == ["CANCELED", "NOT PROCESSED"]
    # Canceling a finished run changes nothing.
    with ws.http() as http:
        again = http.post(f"/automations/runs/{control}/cancel")
    assert again.status_code in (200, 409), again.text
    assert ws.run(control)["status"] == "PROCESSED"
