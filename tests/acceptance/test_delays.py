"""Delay steps with ``until``: basic ISO 8601 instants in the future and in the past."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email

BASIC = "%Y%m%dT%H%M%S.000"


@pytest.fixture(scope="module")
def ping_template(ws: Workspace) -> str:
    alias = unique("PING")
    ws.add_template(alias, "Ping {{n}}", "Ping number {{n}}")
    return alias


def test_until_in_basic_iso_form_waits_until_that_instant(
    ws: Workspace, smtp: SmtpServer, ping_template: str
) -> None:
    """A delay until a basic-format instant 3 s ahead keeps the run WAITING until then."""
    until = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    until_text = until.strftime(BASIC)
    email = unique_email("until")
    response = ws.client().automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "delay", "until": until_text},
                {"action": "send", "template": ping_template},
            ]
        },
        recipient=unique("u"),
        profile={"email": email},
        data={"n": 1},
    )
    assert response.run_id
    waiting = ws.wait_run(response.run_id, "WAITING", timeout=2)
    assert waiting["status"] == "WAITING"
    assert time.time() < until.timestamp(), "the run should still be waiting"
    steps = ws.steps(response.run_id)
    assert steps[0].status == "WAITING"

    (mail,) = smtp.recorder.wait_for(email, timeout=10)
    assert mail.subject == "Ping 1"
    assert mail.wall >= until.timestamp()
    assert mail.wall < until.timestamp() + 3
    ws.wait_run(response.run_id, "PROCESSED")
    assert [s.status for s in ws.steps(response.run_id)] == ["PROCESSED", "PROCESSED"]


def test_until_in_the_past_does_not_wait(
    ws: Workspace, smtp: SmtpServer, ping_template: str
) -> None:
    """A delay until an instant already past completes at once."""
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime(BASIC)
    email = unique_email("past")
    started = time.monotonic()
    response = ws.client().automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [
                {"action": "delay", "until": past},
                {"action": "send", "template": ping_template},
            ]
        },
        recipient=unique("u"),
        profile={"email": email},
        data={"n": 2},
    )
    (mail,) = smtp.recorder.wait_for(email, timeout=5)
    assert mail.monotonic - started < 1.5
    ws.wait_run(response.run_id, "PROCESSED")
    assert [(s.action, s.status) for s in ws.steps(response.run_id)] == [
        ("delay", "PROCESSED"),
        ("send", "PROCESSED"),
    ]
