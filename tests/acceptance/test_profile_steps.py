"""The update-profile, get-profile and subscribe automation steps, end to end via the SDK."""

from __future__ import annotations

from typing import Any

import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def _run(ws: Workspace, steps: list[dict[str, Any]], **invoke: Any) -> dict[str, Any]:
    run_id = ws.client().automations.invoke.invoke_ad_hoc(automation={"steps": steps}, **invoke)
    assert run_id.run_id
    return ws.wait_run(run_id.run_id, "PROCESSED", "ERROR")


@pytest.mark.parametrize(
    ("merge", "expected"),
    [
        ("soft-merge", {"a": 1, "b": 3}),
        ("replace", {"a": 2, "b": 3}),
        ("overwrite", {"a": 2, "b": 3, "keep": True}),
        ("none", {"a": 1, "keep": True}),
    ],
)
def test_update_profile_merge_modes(ws: Workspace, merge: str, expected: dict[str, Any]) -> None:
    """update-profile on {"a":1,...} with {"a":2,"b":3} follows each documented merge mode."""
    client = ws.client()
    uid = unique("up")
    start = {"a": 1} if merge in ("soft-merge", "replace") else {"a": 1, "keep": True}
    client.profiles.create(uid, profile=start)
    step = {"action": "update-profile", "profile": {"a": 2, "b": 3}, "merge": merge}
    detail = _run(ws, [step], recipient=uid)
    assert detail["status"] == "PROCESSED", detail
    assert client.profiles.retrieve(uid).profile == expected


def test_update_profile_defaults_to_replace_and_creates(ws: Workspace) -> None:
    """Without merge the profile is replaced; recipient_id addresses another user's profile."""
    client = ws.client()
    other = unique("other")
    detail = _run(
        ws,
        [{"action": "update-profile", "recipient_id": other, "profile": {"tier": "gold"}}],
        recipient=unique("run"),
    )
    assert detail["status"] == "PROCESSED"
    assert client.profiles.retrieve(other).profile == {"tier": "gold"}


def test_update_profile_without_a_recipient_errors_clearly(ws: Workspace) -> None:
    """No recipient_id and no run recipient: the step ends ERROR saying what is missing."""
    detail = _run(ws, [{"action": "update-profile", "profile": {"a": 1}}])
    assert detail["status"] == "ERROR"
    assert "recipient_id" in detail["error"]


def test_get_profile_then_send_uses_the_stored_email(ws: Workspace, smtp: SmtpServer) -> None:
    """get-profile brings a stored profile into the run; the next send mails its address."""
    client = ws.client()
    template = unique("GETPROFILE")
    ws.add_template(template, "Hello from {{manager.name}}", "Body")
    source, email = unique("stored"), unique_email("stored")
    client.profiles.create(source, profile={"email": email, "name": "Grace"})
    steps = [
        {"action": "get-profile", "user_id": source, "merge_strategy": "overwrite"},
        {"action": "get-profile", "user_id": source, "path": "data.manager"},
        {"action": "send", "template": template},
    ]
    detail = _run(ws, steps, recipient=unique("runner"))
    assert detail["status"] == "PROCESSED", detail
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "Hello from Grace"


def test_get_profile_of_an_unknown_user_changes_nothing(ws: Workspace) -> None:
    """get-profile for a user without a profile is PROCESSED and leaves the run as it was."""
    detail = _run(ws, [{"action": "get-profile", "user_id": unique("ghost")}], recipient="x")
    assert detail["status"] == "PROCESSED"


def test_subscribe_step_adds_the_subscription(ws: Workspace) -> None:
    """subscribe creates the list if needed and subscribes the recipient with preferences."""
    client = ws.client()
    list_id, user = unique("steps.list"), unique("sub")
    prefs = {"notifications": {"digest": {"status": "OPTED_IN"}}}
    steps = [
        {"action": "subscribe", "list_id": list_id, "subscription": {"preferences": prefs}},
        {"action": "subscribe", "list_id": list_id, "recipient_id": f"{user}-2"},
    ]
    detail = _run(ws, steps, recipient=user)
    assert detail["status"] == "PROCESSED", detail
    items = {s.recipient_id: s for s in client.lists.subscriptions.list(list_id).items}
    assert set(items) == {user, f"{user}-2"}
    found = items[user].preferences
    assert found is not None
    assert found.notifications is not None
    assert found.notifications["digest"].status == "OPTED_IN"
    assert [r.id for r in client.profiles.lists.retrieve(user).results] == [list_id]


def test_send_for_an_opted_out_topic_is_filtered(ws: Workspace, smtp: SmtpServer) -> None:
    """A send of a template linked to a topic the user opted out of ends FILTERED/UNSUBSCRIBED."""
    client = ws.client()
    topic, alias = unique("topic"), unique("TOPICAL")
    client.notifications.create(
        notification={
            "name": alias,
            "alias": alias,
            "tags": [],
            "brand": None,
            "routing": None,
            "subscription": {"topic_id": topic},
            "content": {
                "version": "2022-01-01",
                "elements": [{"type": "meta", "title": "News"}, {"type": "text", "content": "Hi"}],
            },
        },
        state="PUBLISHED",
    )
    out, stays = unique("out"), unique("in")
    out_email, in_email = unique_email("out"), unique_email("in")
    client.users.preferences.update_or_create_topic(
        topic, user_id=out, topic={"status": "OPTED_OUT"}
    )
    client.users.preferences.update_or_create_topic(
        topic, user_id=stays, topic={"status": "OPTED_IN"}
    )
    steps = [{"action": "send", "template": alias}]
    detail = _run(ws, steps, recipient=out, profile={"email": out_email})
    assert detail["status"] == "PROCESSED", detail
    (step,) = ws.steps(detail["run_id"])
    assert step.message_id
    message = client.messages.retrieve(step.message_id)
    assert (message.status, message.reason) == ("FILTERED", "UNSUBSCRIBED")

    _run(ws, steps, recipient=stays, profile={"email": in_email})
    smtp.recorder.wait_for(in_email)
    assert smtp.recorder.to(out_email) == []
