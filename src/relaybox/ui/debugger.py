"""Debugger pages: the runs list and a run's step timeline, with live refresh and cancel."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.domain.run import Run, RunStatus, StepState, StepStatus
from relaybox.errors import NotFound, ValidationError
from relaybox.ui import web

router = APIRouter()

STATUSES = [s.value for s in RunStatus]
#: The runs list's query parameters besides the cursor.
FILTERS = ("status", "automation", "recipient", "start", "end", "run_id")


@router.get("/runs")
async def runs(request: Request) -> Response:
    workspace = web.signed_in(request)
    q = request.query_params
    filters = {name: (q.get(name) or "").strip() for name in FILTERS}
    found: list[Run] = []
    next_cursor = None
    error = None
    service = web.services(request).automations
    if filters["run_id"]:
        # Search by runId is an exact lookup: ids are opaque, so there is nothing to match on.
        try:
            found = [await service.get_run(workspace, filters["run_id"])]
        except NotFound:
            found = []
    else:
        try:
            page = await service.list_runs(
                workspace,
                cursor=q.get("cursor") or None,
                limit="50",
                status=filters["status"] or None,
                template_id=filters["automation"] or None,
                start_date=filters["start"] or None,
                end_date=filters["end"] or None,
                recipient=filters["recipient"] or None,
            )
            found, next_cursor = page.runs, page.next_cursor
        except ValidationError as exc:
            error = exc.message
    template = "_runs_table.html" if q.get("partial") else "runs.html"
    kept = {k: v for k, v in filters.items() if v}
    return web.render(
        request,
        template,
        400 if error else 200,
        runs=found,
        statuses=STATUSES,
        filters=filters,
        error=error,
        next_cursor=next_cursor,
        more="/runs?" + urlencode({**kept, "cursor": next_cursor or ""}),
        poll="/runs?" + urlencode({**dict(q), "partial": "1"}),
    )


@router.get("/runs/{run_id}")
async def run_detail(request: Request, run_id: str) -> Response:
    workspace = web.signed_in(request)
    run = await web.services(request).automations.get_run(workspace, run_id)
    now = web.services(request).clock.now()
    template = "_run_body.html" if request.query_params.get("partial") else "run.html"
    return web.render(
        request,
        template,
        run=run,
        steps=[_step(run, s, now) for s in run.visible_steps()],
        now=now,
    )


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str) -> Response:
    await web.form(request)
    workspace = web.signed_in(request)
    await web.services(request).automations.cancel_run(workspace, run_id)
    return web.redirect(request, f"/runs/{run_id}")


def _step(run: Run, step: StepState, now: float) -> dict[str, Any]:
    """What the timeline shows for one step: its state plus the definition it ran."""
    duration = None
    # A step still waiting or running has lasted until now, not until its last update.
    active = step.status in {StepStatus.WAITING, StepStatus.PROCESSING} and not run.finished
    end = now if active else step.updated_at
    if step.started_at is not None and end is not None:
        duration = max(0.0, end - step.started_at)
    spec = run.steps_def[step.index] if step.index < len(run.steps_def) else {}
    return {
        "index": step.index,
        "action": step.action,
        "status": step.status.value,
        "started_at": step.started_at,
        "updated_at": step.updated_at,
        "duration": duration,
        "active": active,
        "attempts": step.attempts,
        "error": step.error,
        "wake_at": step.wake_at,
        "message_id": step.message_id,
        "condition": step.condition,
        "changes": step.changes,
        "output": step.output,
        "spec": spec,
    }
