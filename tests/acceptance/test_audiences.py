"""Audiences (filter-defined user groups) and sends to an audience, via the official SDK."""

from __future__ import annotations

import courier
import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email, wait_for


def _audience(ws: Workspace, cohort: str) -> str:
    audience_id = unique("aud")
    saved = ws.client().audiences.update(
        audience_id,
        name="Pro users of one cohort",
        description="plan pro and the cohort",
        operator="AND",
        filter={
            "filters": [
                {"operator": "EQ", "path": "cohort", "value": cohort},
                {
                    "operator": "OR",
                    "filters": [
                        {"operator": "EQ", "path": "plan", "value": "pro"},
                        {"operator": "GTE", "path": "seats", "value": "10"},
                    ],
                },
            ]
        },
    )
    assert saved.audience.id == audience_id
    return audience_id


def test_members_follow_the_filter_and_profile_changes(ws: Workspace) -> None:
    client = ws.client()
    cohort = unique("cohort")
    users = {name: unique(name) for name in ("pro", "big", "free", "outsider")}
    client.profiles.create(users["pro"], profile={"cohort": cohort, "plan": "pro"})
    client.profiles.create(users["big"], profile={"cohort": cohort, "plan": "free", "seats": 12})
    client.profiles.create(users["free"], profile={"cohort": cohort, "plan": "free", "seats": 2})
    client.profiles.create(users["outsider"], profile={"cohort": "other", "plan": "pro"})
    audience_id = _audience(ws, cohort)

    fetched = client.audiences.retrieve(audience_id)
    assert (fetched.name, fetched.operator) == ("Pro users of one cohort", "AND")
    assert fetched.filter is not None
    assert len(fetched.filter.filters) == 2
    assert audience_id in [a.id for a in client.audiences.list().items]

    members = client.audiences.list_members(audience_id)
    assert sorted(m.member_id for m in members.items) == sorted([users["pro"], users["big"]])
    assert {m.audience_id for m in members.items} == {audience_id}

    client.profiles.create(users["free"], profile={"plan": "pro"})  # merge: now a member
    again = client.audiences.list_members(audience_id)
    assert len(again.items) == 3

    client.audiences.delete(audience_id)
    with pytest.raises(courier.NotFoundError):
        client.audiences.retrieve(audience_id)


def test_bad_filter_is_a_400(ws: Workspace) -> None:
    with pytest.raises(courier.BadRequestError) as caught:
        ws.client().audiences.update(
            unique("aud"), filter={"filters": [{"operator": "LIKE", "path": "a", "value": "b"}]}
        )
    assert "operator" in str(caught.value.body)


def test_send_to_an_audience_reaches_each_member_under_one_request_id(
    ws: Workspace, smtp: SmtpServer
) -> None:
    client = ws.client()
    cohort = unique("cohort")
    emails = {}
    for n in range(3):
        user = unique(f"audmember{n}")
        emails[user] = unique_email(f"aud{n}")
        plan = "pro" if n < 2 else "free"
        client.profiles.create(
            user, profile={"cohort": cohort, "plan": plan, "email": emails[user]}
        )
    audience_id = _audience(ws, cohort)
    sent = client.send.message(
        message={"to": {"audience_id": audience_id}, "content": {"title": "Aud", "body": "b"}}
    )
    members = [u for u in emails if list(emails).index(u) < 2]
    for user in members:
        smtp.recorder.wait_for(emails[user])

    def listed() -> list[str] | None:
        found = client.messages.list(message_id=sent.request_id).results or []
        return [m.recipient for m in found] if len(found) >= 2 else None

    assert sorted(wait_for(listed, timeout=15.0, what="audience messages")) == sorted(members)
    (outsider,) = [u for u in emails if u not in members]
    assert smtp.recorder.to(emails[outsider]) == []


def test_send_to_an_unknown_audience_is_a_404(ws: Workspace) -> None:
    missing = unique("noaud")
    with pytest.raises(courier.NotFoundError) as caught:
        ws.client().send.message(
            message={"to": {"audience_id": missing}, "content": {"title": "x", "body": "y"}}
        )
    assert f"Audience {missing} not found" in str(caught.value.body)
