"""GET /automations/runs through the SDK: filters, newest-first order and cursor paging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import courier
import pytest
from relaybox_harness import Workspace, unique

QUICK_OK = {"steps": [{"action": "delay", "duration": "1ms"}]}
#: A send without any template fails at once (UNMAPPED).
QUICK_ERROR = {"steps": [{"action": "send"}]}
WAITS = {"steps": [{"action": "delay", "duration": "1 hour"}]}


def test_runs_list_filters_orders_and_pages(new_workspace: Callable[[str], Workspace]) -> None:
    """runs.list filters by status and template_id, newest first, with next_cursor paging."""
    ws = new_workspace("runs")
    client = ws.client()
    automation_id = unique("saved")
    ws.save_automation(automation_id, QUICK_OK["steps"])

    def adhoc(automation: dict[str, Any], final: str) -> str:
        run_id = client.automations.invoke.invoke_ad_hoc(automation=automation).run_id
        assert run_id
        ws.wait_run(run_id, final)
        return run_id

    r1 = adhoc(QUICK_OK, "PROCESSED")
    r2 = adhoc(QUICK_ERROR, "ERROR")
    r3 = adhoc(QUICK_OK, "PROCESSED")
    r4 = adhoc(WAITS, "WAITING")
    r5 = client.automations.invoke.invoke_by_template(automation_id, recipient="u1").run_id
    assert r5
    ws.wait_run(r5, "PROCESSED")
    r6 = adhoc(QUICK_ERROR, "ERROR")

    first = client.automations.runs.list(status="PROCESSED,ERROR", limit="2")
    assert [r.run_id for r in first.runs] == [r6, r5]
    assert first.next_cursor
    second = client.automations.runs.list(
        status="PROCESSED,ERROR", limit="2", cursor=first.next_cursor
    )
    assert [r.run_id for r in second.runs] == [r3, r2]
    assert second.next_cursor
    last = client.automations.runs.list(
        status="PROCESSED,ERROR", limit="2", cursor=second.next_cursor
    )
    assert [r.run_id for r in last.runs] == [r1]
    assert last.next_cursor is None
    assert "next_cursor" not in last.to_dict()

    every = client.automations.runs.list()
    assert [r.run_id for r in every.runs] == [r6, r5, r4, r3, r2, r1]
    assert every.next_cursor is None
    created = [r.created_at for r in every.runs]
    assert created == sorted(created, reverse=True)
    statuses = {r.run_id: r.status for r in every.runs}
    assert statuses == {
        r1: "PROCESSED",
        r2: "ERROR",
        r3: "PROCESSED",
        r4: "WAITING",
        r5: "PROCESSED",
        r6: "ERROR",
    }

    waiting = client.automations.runs.list(status="WAITING")
    assert [r.run_id for r in waiting.runs] == [r4]

    saved = client.automations.runs.list(template_id=automation_id)
    assert [r.run_id for r in saved.runs] == [r5]
    assert saved.runs[0].template_id == automation_id
    assert saved.runs[0].source == [f"invoke/{automation_id}"]

    clamped = client.automations.runs.list(limit="0")
    assert [r.run_id for r in clamped.runs] == [r6]
    assert clamped.next_cursor
    assert len(client.automations.runs.list(limit="lots").runs) == 6

    assert client.automations.runs.list(end_date="2000-01-01").runs == []
    assert len(client.automations.runs.list(start_date="2000-01-01").runs) == 6
    with pytest.raises(courier.BadRequestError) as caught:
        client.automations.runs.list(start_date="yesterday")
    assert caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(courier.BadRequestError):
        client.automations.runs.list(end_date="not-a-date")
    with pytest.raises(courier.BadRequestError) as bad_cursor:
        client.automations.runs.list(cursor="garbage")
    assert bad_cursor.value.body["message"] == "Invalid cursor format"
