"""Sends that cannot happen: no address for any configured channel, an unknown template, and
steps this version accepts but does not execute."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


@pytest.fixture(scope="module")
def email_only_ws(new_workspace: Callable[[str], Workspace], smtp: SmtpServer) -> Workspace:
    """A workspace (created while the server runs) whose only provider is SMTP."""
    ws = new_workspace("email-only")
    ws.add_smtp_provider(smtp)
    ws.add_template("NOTICE", "Notice for {{name}}", "Hello {{name}}")
    return ws


def test_recipient_without_email_is_unroutable(email_only_ws: Workspace, smtp: SmtpServer) -> None:
    """A send to a profile with no email, and no webhook provider, fails the step and run."""
    ws = email_only_ws
    client = ws.client()
    user = unique("no-email")
    response = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": "NOTICE"}]},
        recipient=user,
        profile={"phone_number": "+15550100"},
        data={"name": "Eve"},
    )
    detail = ws.wait_run(response.run_id, "ERROR")
    assert "channel" in detail["error"]
    assert "provider" in detail["error"]

    (step,) = client.automations.runs.list_steps(response.run_id).steps or []
    assert step.action == "send"
    assert step.status == "ERROR"
    step_error = step.to_dict().get("error", "")
    assert "channel" in step_error
    assert "provider" in step_error
    assert step.message_id
    message = client.messages.retrieve(step.message_id)
    assert message.status == "UNROUTABLE"
    assert message.recipient == user


def test_unknown_template_is_unmapped(email_only_ws: Workspace, smtp: SmtpServer) -> None:
    """A send naming a template that does not exist is UNMAPPED and the step errors."""
    ws = email_only_ws
    client = ws.client()
    email = unique_email("unmapped")
    missing = unique("NO_SUCH_TEMPLATE")
    response = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": missing}]},
        recipient=unique("u"),
        profile={"email": email},
    )
    detail = ws.wait_run(response.run_id, "ERROR")
    assert missing in detail["error"]
    (step,) = client.automations.runs.list_steps(response.run_id).steps or []
    assert step.status == "ERROR"
    assert step.message_id
    message = client.messages.retrieve(step.message_id)
    assert message.status == "UNMAPPED"
    assert smtp.recorder.to(email) == []


def test_doc_only_steps_are_accepted_and_run(ws: Workspace) -> None:
    """get-profile runs; a send with message, if and ref is stored verbatim and skipped."""
    client = ws.client()
    user = unique("no-email")
    response = client.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "get-profile", "user_id": user},
                {
                    "action": "send",
                    "message": {"to": {"user_id": user}, "template": "T"},
                    "if": "profile.email != null",
                    "ref": "s1",
                },
            ]
        },
        recipient=user,
    )
    assert response.run_id
    detail = ws.wait_run(response.run_id, "PROCESSED")
    assert detail["automation"]["steps"][1]["ref"] == "s1"
    assert detail["automation"]["steps"][1]["message"] == {
        "to": {"user_id": user},
        "template": "T",
    }
    steps = client.automations.runs.list_steps(response.run_id).steps or []
    assert [(s.action, s.status) for s in steps] == [
        ("get-profile", "PROCESSED"),
        ("send", "SKIPPED"),
    ]
    condition = steps[1].to_dict()["condition"]
    assert (condition["expression"], condition["result"]) == ("profile.email != null", False)
