"""send-list with a data_source: a per-subscriber fetch merged into that subscriber's data,
against a real HTTP server on 127.0.0.1, through the official SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_service import Answer, FakeService, Received, fake_service
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


@pytest.fixture(scope="module")
def member_api() -> Iterator[FakeService]:
    """/member answers {"nickname": "nick-<recipient_id>"}; ids ending "bad" get 500."""

    def respond(received: Received) -> Answer:
        who = (received.query.get("recipient_id") or [""])[0]
        status = 500 if who.endswith("bad") else 200
        return status, {}, {"nickname": f"nick-{who}", "tier": received.query.get("tier")}

    with fake_service() as service:
        service.respond = respond
        yield service


def test_each_subscriber_gets_its_own_fetched_data(
    ws: Workspace, smtp: SmtpServer, member_api: FakeService
) -> None:
    """Every subscriber's message renders the data fetched for it; a failed fetch skips only
    that subscriber and is reported on the step."""
    url, seen = f"{member_api.url}/member", member_api.requests
    client = ws.client()
    template = unique("DATASRC")
    ws.add_template(template, "Hi {{nickname}} ({{plan}})", "Body")
    list_id = unique("ds")
    emails = {}
    for name in ("ann", "bob", "carl-bad"):
        user = unique(name) if not name.endswith("bad") else unique("carl") + "-bad"
        emails[user] = unique_email(name)
        client.profiles.create(user, profile={"email": emails[user]})
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": u} for u in emails])
    step = {
        "action": "send-list",
        "list": list_id,
        "template": template,
        "data": {"plan": "basic"},
        "data_source": {
            "webhook": {"method": "GET", "url": url, "params": {"tier": "gold"}},
            "merge_strategy": "overwrite",
        },
    }
    run = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [step]}, recipient=unique("owner")
    )
    detail = ws.wait_run(run.run_id, "PROCESSED", "ERROR")
    assert detail["status"] == "PROCESSED", detail
    for user, email in emails.items():
        if user.endswith("-bad"):
            continue
        (mail,) = smtp.recorder.wait_for(email)
        assert mail.subject == f"Hi nick-{user} (basic)"
    (bad,) = [e for u, e in emails.items() if u.endswith("-bad")]
    assert smtp.recorder.to(bad) == []
    (listed,) = ws.steps(run.run_id)
    output = listed.to_dict()["output"]
    assert output["recipients"] == 2
    assert output["data_source"]["failed"] == 1
    assert "webhook answered HTTP 500" in output["data_source"]["errors"][0]
    mine = [r for r in seen if (r.query.get("recipient_id") or [""])[0] in emails]
    assert sorted(r.query["recipient_id"][0] for r in mine) == sorted(emails)
    assert all(r.query["tier"] == ["gold"] for r in mine)


def test_a_post_data_source_carries_the_recipient_in_its_json_body(
    ws: Workspace, smtp: SmtpServer, member_api: FakeService
) -> None:
    url, seen = f"{member_api.url}/member", member_api.requests
    client = ws.client()
    template = unique("DATAPOST")
    ws.add_template(template, "Hello {{nickname}}", "Body")
    list_id = unique("dspost")
    user, email = unique("dana"), unique_email("dana")
    client.profiles.create(user, profile={"email": email})
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": user}])
    step = {
        "action": "send-list",
        "list": list_id,
        "template": template,
        "data_source": {"webhook": {"method": "POST", "url": url, "body": {"source": "relaybox"}}},
    }
    run = client.automations.invoke.invoke_ad_hoc(automation={"steps": [step]}, recipient="o")
    assert ws.wait_run(run.run_id, "PROCESSED", "ERROR")["status"] == "PROCESSED"
    (mail,) = smtp.recorder.wait_for(email)
    # The default merge_strategy (replace) still renders the fetched field.
    assert mail.subject == f"Hello nick-{user}"
    (posted,) = [r for r in seen if r.method == "POST" and r.json().get("recipient_id") == user]
    assert posted.json() == {"source": "relaybox", "recipient_id": user}


def test_a_refused_data_source_address_fails_every_fetch_and_sends_nothing(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """The outbound guard refuses private addresses not allow-listed (10.0.0.1 here)."""
    client = ws.client()
    list_id = unique("dsrefused")
    user, email = unique("eve"), unique_email("eve")
    client.profiles.create(user, profile={"email": email})
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": user}])
    step = {
        "action": "send-list",
        "list": list_id,
        "template": "x",
        "data_source": {"webhook": {"url": "http://10.0.0.1/member"}},
    }
    run = client.automations.invoke.invoke_ad_hoc(automation={"steps": [step]}, recipient="o")
    assert ws.wait_run(run.run_id, "PROCESSED", "ERROR")["status"] == "PROCESSED"
    (listed,) = ws.steps(run.run_id)
    output = listed.to_dict()["output"]
    assert output["recipients"] == 0
    assert output["data_source"]["failed"] == 1
    assert "10.0.0.1" in output["data_source"]["errors"][0]
    assert smtp.recorder.to(email) == []
