"""Hostile JavaScript conditions against a real server: each fails its step within the
sandbox's caps, and the worker keeps running other runs (issue 4's sandbox test)."""

from __future__ import annotations

import asyncio

import pytest
from courier import AsyncCourier
from relaybox_harness import Workspace, unique

HOSTILE = {
    "endless loop": ("(() => { for (;;) {} })()", "time limit"),
    "unbounded allocation": (
        "(() => { const a = []; for (;;) a.push('x'.repeat(1e6)) })()",
        "memory limit",
    ),
    "fetch to the network": ("fetch('http://127.0.0.1:1/')", "'fetch' is not defined"),
    "XMLHttpRequest": ("new XMLHttpRequest()", "is not defined"),
    "module import": ("import('os')", "asynchronous expressions"),
    "std file access": ("std.open('/etc/passwd', 'r')", "'std' is not defined"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_condition_errors_the_step_with_the_reason(ws: Workspace, name: str) -> None:
    expression, reason = HOSTILE[name]
    run = ws.client().automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "delay", "duration": "0s", "if": expression}]},
        recipient=unique("sandbox"),
    )
    detail = ws.wait_run(run.run_id, "ERROR", "PROCESSED", timeout=20.0)
    assert detail["status"] == "ERROR", detail
    (step,) = ws.steps(run.run_id)
    assert step.status == "ERROR"
    assert reason in (step.to_dict().get("error") or "")


async def _invoke_all(ws: Workspace, bodies: list[dict[str, object]]) -> list[str]:
    async with AsyncCourier(api_key=ws.key, base_url=ws.server.url, max_retries=0) as client:
        runs = await asyncio.gather(
            *(client.automations.invoke.invoke_ad_hoc(**body) for body in bodies)  # type: ignore[arg-type]
        )
    return [r.run_id for r in runs]


def test_hostile_conditions_at_once_leave_the_worker_serving_normal_runs(ws: Workspace) -> None:
    """Every hostile expression twice, concurrently with normal runs: the hostile ones end
    ERROR, the normal ones PROCESSED, and the same server process is still serving."""
    hostile = [expr for expr, _ in HOSTILE.values()] * 2
    bodies: list[dict[str, object]] = [
        {"automation": {"steps": [{"action": "delay", "duration": "0s", "if": e}]}} for e in hostile
    ]
    bodies += [
        {
            "automation": {"steps": [{"action": "delay", "duration": "0s", "if": "data.n >= 0"}]},
            "data": {"n": n},
        }
        for n in range(10)
    ]
    run_ids = asyncio.run(_invoke_all(ws, bodies))
    statuses = [ws.wait_run(r, "ERROR", "PROCESSED", timeout=30.0)["status"] for r in run_ids]
    assert statuses == ["ERROR"] * len(hostile) + ["PROCESSED"] * 10
    # poll() reaps: a crashed server would show an exit code here, not pass as alive.
    assert ws.server.process is not None
    assert ws.server.process.poll() is None
    after = ws.client().automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "delay", "duration": "0s", "if": "1 + 1 === 2"}]}
    )
    assert ws.wait_run(after.run_id, "PROCESSED", "ERROR")["status"] == "PROCESSED"
