"""Courier's Idempotency-Key contract on POST /automations/invoke."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import courier
import pytest
from relaybox_harness import Workspace, unique


def test_idempotent_invoke_returns_the_same_run(new_workspace: Callable[[str], Workspace]) -> None:
    """Repeating an invoke with the same Idempotency-Key replays its runId; one run exists."""
    ws = new_workspace("idem")
    client = ws.client()
    automation = {"steps": [{"action": "delay", "duration": "1 ms"}]}
    key = unique("k1")

    first = client.automations.invoke.invoke_ad_hoc(
        automation=automation, recipient="u1", data={"n": 1}, idempotency_key=key
    )
    second = client.automations.invoke.invoke_ad_hoc(
        automation=automation, recipient="u1", data={"n": 1}, idempotency_key=key
    )
    assert first.run_id
    assert second.run_id == first.run_id
    raw = client.automations.invoke.with_raw_response.invoke_ad_hoc(
        automation=automation, recipient="u1", data={"n": 1}, idempotency_key=key
    )
    assert raw.status_code == 200
    assert raw.parse().run_id == first.run_id
    ws.wait_run(first.run_id, "PROCESSED")
    assert [r.run_id for r in ws.all_runs()] == [first.run_id]

    expiring_key = unique("k2")
    expiration = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    third = client.automations.invoke.invoke_ad_hoc(
        automation=automation,
        recipient="u1",
        idempotency_key=expiring_key,
        x_idempotency_expiration=expiration,
    )
    fourth = client.automations.invoke.invoke_ad_hoc(
        automation=automation,
        recipient="u1",
        idempotency_key=expiring_key,
        x_idempotency_expiration=expiration,
    )
    assert third.run_id
    assert fourth.run_id == third.run_id
    assert third.run_id != first.run_id
    assert sorted(r.run_id for r in ws.all_runs()) == sorted([first.run_id, third.run_id])

    with pytest.raises(courier.UnprocessableEntityError) as caught:
        client.automations.invoke.invoke_ad_hoc(
            automation=automation, recipient="u2", data={"n": 2}, idempotency_key=key
        )
    assert caught.value.body["type"] == "invalid_request_error"
    assert len(ws.all_runs()) == 2


def test_idempotent_invoke_by_template_returns_the_same_run(
    new_workspace: Callable[[str], Workspace],
) -> None:
    """The saved-automation invoke honours Idempotency-Key too."""
    ws = new_workspace("idem-saved")
    automation_id = unique("noop")
    ws.save_automation(automation_id, [{"action": "delay", "duration": "1 ms"}])
    client = ws.client()
    key = unique("k3")
    first = client.automations.invoke.invoke_by_template(
        automation_id, recipient="u1", idempotency_key=key
    )
    second = client.automations.invoke.invoke_by_template(
        automation_id, recipient="u1", idempotency_key=key
    )
    assert first.run_id
    assert second.run_id == first.run_id
    ws.wait_run(first.run_id, "PROCESSED")
    assert [r.run_id for r in ws.all_runs(template_id=automation_id)] == [first.run_id]


def test_concurrent_invokes_with_one_key_create_one_run(
    new_workspace: Callable[[str], Workspace],
) -> None:
    """Eight simultaneous invokes sharing an Idempotency-Key all get the same single run."""
    ws = new_workspace("idem-race")
    client = ws.client()
    key = unique("race")

    def invoke(_: int) -> str | None:
        return client.automations.invoke.invoke_ad_hoc(
            automation={"steps": []}, recipient="u1", idempotency_key=key
        ).run_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = set(pool.map(invoke, range(8)))
    assert len(run_ids) == 1
    (run_id,) = run_ids
    assert run_id
    assert [r.run_id for r in ws.all_runs()] == [run_id]


def test_rejected_request_does_not_use_up_its_key(
    new_workspace: Callable[[str], Workspace],
) -> None:
    """A 400 is not saved under its Idempotency-Key: the corrected request then runs."""
    ws = new_workspace("idem-400")
    client = ws.client()
    key = unique("fixme")
    with pytest.raises(courier.BadRequestError):
        client.automations.invoke.invoke_ad_hoc(
            automation={"steps": "nope"}, recipient="u1", idempotency_key=key
        )
    assert ws.all_runs() == []
    fixed = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": []}, recipient="u1", idempotency_key=key
    )
    assert fixed.run_id
    assert [r.run_id for r in ws.all_runs()] == [fixed.run_id]
