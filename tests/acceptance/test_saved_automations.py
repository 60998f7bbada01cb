"""Saved automations (Relaybox's PUT/publish API) invoked through Courier's SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import courier
import pytest
from courier import Courier
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def _all_templates(client: Courier, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    cursor: str | None = None
    while True:
        page = client.automations.list(**kwargs, **({"cursor": cursor} if cursor else {}))
        found.extend(page.templates or [])
        if not page.cursor:
            return found
        cursor = page.cursor


@pytest.fixture(scope="module")
def welcome_template(ws: Workspace) -> str:
    alias = unique("WELCOME")
    ws.add_template(alias, "Welcome {{name}}", "Hello {{name}}, your plan is {{plan}}.")
    return alias


def test_saved_automation_invocable_by_id_and_alias_and_listed(
    ws: Workspace, smtp: SmtpServer, welcome_template: str
) -> None:
    """A published automation runs by id and by alias; drafts and unknown ids are 404."""
    client = ws.client()
    automation_id = unique("onboarding")
    alias = unique("onboarding-alias")
    steps = [{"action": "send", "template": welcome_template}]
    published = ws.save_automation(automation_id, steps, alias=alias, name="Onboarding")
    assert published["version"] == "published"
    assert published["published_version"] == 1

    draft_id = unique("draft-only")
    ws.save_automation(draft_id, steps, publish=False)

    by_id_email, by_alias_email = unique_email("by-id"), unique_email("by-alias")
    by_id = client.automations.invoke.invoke_by_template(
        automation_id,
        recipient=unique("u"),
        profile={"email": by_id_email},
        data={"name": "Ada", "plan": "pro"},
    )
    by_alias = client.automations.invoke.invoke_by_template(
        alias,
        recipient=unique("u"),
        profile={"email": by_alias_email},
        data={"name": "Bob", "plan": "free"},
    )
    assert by_id.run_id
    assert by_alias.run_id
    assert by_id.run_id != by_alias.run_id

    (mail_id,) = smtp.recorder.wait_for(by_id_email)
    (mail_alias,) = smtp.recorder.wait_for(by_alias_email)
    assert mail_id.subject == "Welcome Ada"
    assert mail_id.text is not None
    assert "your plan is pro" in mail_id.text
    assert mail_alias.subject == "Welcome Bob"

    for run_id in (by_id.run_id, by_alias.run_id):
        detail = ws.wait_run(run_id, "PROCESSED")
        assert detail["template_id"] == automation_id
        run_steps = client.automations.runs.list_steps(run_id).steps
        assert run_steps is not None
        assert [(s.action, s.status) for s in run_steps] == [("send", "PROCESSED")]

    with pytest.raises(courier.NotFoundError) as draft_error:
        client.automations.invoke.invoke_by_template(draft_id, recipient="u1")
    assert draft_error.value.body["type"] == "invalid_request_error"
    with pytest.raises(courier.NotFoundError):
        client.automations.invoke.invoke_by_template(unique("no-such-automation"), recipient="u1")

    published_list = {t.id: t for t in _all_templates(client)}
    assert automation_id in published_list
    assert draft_id not in published_list
    listed = published_list[automation_id]
    assert listed.name == "Onboarding"
    assert listed.version == "published"
    assert isinstance(listed.created_at, datetime)

    drafts = {t.id: t for t in _all_templates(client, version="draft")}
    assert draft_id in drafts
    assert drafts[draft_id].version == "draft"

    with pytest.raises(courier.BadRequestError) as bad_cursor:
        client.automations.list(cursor="garbage")
    assert bad_cursor.value.body == {
        "type": "invalid_request_error",
        "message": "Invalid cursor format",
    }


def test_invoke_without_recipient_takes_user_from_data(
    ws: Workspace, smtp: SmtpServer, welcome_template: str
) -> None:
    """invoke_by_template(recipient=None, data={"user_id": ...}) runs with that recipient."""
    client = ws.client()
    automation_id = unique("no-recipient")
    ws.save_automation(automation_id, [{"action": "send", "template": welcome_template}])
    user_id = unique("u1")
    email = unique_email("no-recipient")

    response = client.automations.invoke.invoke_by_template(
        automation_id,
        recipient=None,
        data={"user_id": user_id, "name": "Cy", "plan": "team"},
        profile={"email": email},
    )
    assert response.run_id

    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Welcome Cy"
    ws.wait_run(response.run_id, "PROCESSED")
    steps = client.automations.runs.list_steps(response.run_id).steps
    assert steps is not None
    message_id = steps[0].message_id
    assert message_id
    assert client.messages.retrieve(message_id).recipient == user_id


@pytest.mark.parametrize("reserved", ["runs", "invoke"])
def test_automation_saved_under_a_route_name_is_readable_or_refused(
    ws: Workspace, reserved: str
) -> None:
    """PUT /automations/{id} either refuses an id like "runs" or the draft can be read back."""
    with ws.http() as http:
        saved = http.put(f"/automations/{reserved}", json={"name": "Reserved", "steps": []})
        try:
            if saved.status_code == 400:
                assert saved.json()["type"] == "invalid_request_error"
                return
            assert saved.status_code == 200, saved.text
            read = http.get(f"/automations/{reserved}", params={"version": "draft"})
            assert read.status_code == 200, read.text
            assert read.json().get("id") == reserved, read.text
        finally:
            http.delete(f"/automations/{reserved}")


def test_profile_given_at_invoke_is_merged_into_the_stored_profile(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """A later invoke for the same recipient reuses (and can update) the stored profile."""
    template = unique("PROFILE")
    ws.add_template(template, "Hi {{profile.nickname}}", "Plan {{plan}}")
    client = ws.client()
    user = unique("profiled")
    first_email, second_email = unique_email("p1"), unique_email("p2")
    automation = {"steps": [{"action": "send", "template": template}]}

    client.automations.invoke.invoke_ad_hoc(
        automation=automation,
        recipient=user,
        profile={"email": first_email, "nickname": "Zed"},
        data={"plan": "a"},
    )
    smtp.recorder.wait_for(first_email)
    client.automations.invoke.invoke_ad_hoc(
        automation=automation, recipient=user, data={"plan": "b"}
    )
    second = smtp.recorder.wait_for(first_email, count=2)[1]
    assert second.subject == "Hi Zed"
    assert second.text is not None
    assert "Plan b" in second.text

    client.automations.invoke.invoke_ad_hoc(
        automation=automation, recipient=user, profile={"email": second_email}, data={"plan": "c"}
    )
    (third,) = smtp.recorder.wait_for(second_email)
    assert third.subject == "Hi Zed"
