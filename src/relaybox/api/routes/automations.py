"""Courier's Automations API plus Relaybox's endpoints for saved automations."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from relaybox.api import deps, presenters
from relaybox.api.schemas import AD_HOC_INVOKE, AUTOMATION_DRAFT, INVOKE, doc
from relaybox.errors import NotFound
from relaybox.services.automations import Invocation

router = APIRouter(tags=["Automations"])


def _invoked(invocation: Invocation) -> Response:
    if invocation.replay is not None:
        return deps.replay(invocation.replay.status_code, invocation.replay.body)
    return deps.raw_json(invocation.body())


@router.post("/automations/invoke", openapi_extra=doc(AD_HOC_INVOKE))
async def invoke_ad_hoc(request: Request, ws: str = Depends(deps.workspace)) -> Response:
    """Invoke an ad hoc automation; answers ``{"runId"}`` once the run is durably stored."""
    raw = await request.body()
    body = deps.parse_object(raw)
    idem = deps.idempotency_for(request, ws, raw)
    earlier = await deps.replayed(request, idem)
    if earlier is not None:
        return earlier
    svc = deps.services(request)
    return _invoked(await svc.automations.invoke_ad_hoc(ws, body, idem))


@router.post("/automations/{template_id:path}/invoke", openapi_extra=doc(INVOKE))
async def invoke_saved(
    template_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    """Invoke the published version of a saved automation, by id or alias."""
    raw = await request.body()
    body = deps.parse_object(raw, required=False)
    idem = deps.idempotency_for(request, ws, raw)
    earlier = await deps.replayed(request, idem)
    if earlier is not None:
        return earlier
    svc = deps.services(request)
    return _invoked(await svc.automations.invoke_saved(ws, template_id, body, idem))


@router.get("/automations")
async def list_automations(
    request: Request,
    ws: str = Depends(deps.workspace),
    cursor: str | None = None,
    version: str = "published",
) -> Response:
    found, nxt = await deps.services(request).automations.list(ws, version=version, cursor=cursor)
    body: dict[str, object] = {
        "templates": [presenters.automation_summary(r, version) for r in found]
    }
    if nxt:
        body["cursor"] = nxt
    return deps.json_response(body)


@router.get("/automations/runs")
async def list_runs(
    request: Request,
    ws: str = Depends(deps.workspace),
    cursor: str | None = None,
    limit: str | None = None,
    status: str | None = None,
    template_id: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
) -> Response:
    page = await deps.services(request).automations.list_runs(
        ws,
        cursor=cursor,
        limit=limit,
        status=status,
        template_id=template_id,
        start_date=start_date,
        end_date=end_date,
    )
    body: dict[str, object] = {"runs": [presenters.run_item(r) for r in page.runs]}
    if page.next_cursor:
        body["next_cursor"] = page.next_cursor
    return deps.json_response(body)


@router.get("/automations/runs/{run_id}")
async def get_run(run_id: str, request: Request, ws: str = Depends(deps.workspace)) -> Response:
    run = await deps.services(request).automations.get_run(ws, run_id)
    return deps.json_response(presenters.run_detail(run))


@router.get("/automations/runs/{run_id}/steps")
async def get_run_steps(
    run_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    run = await deps.services(request).automations.get_run(ws, run_id)
    return deps.json_response(presenters.run_steps(run))


@router.post("/automations/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request, ws: str = Depends(deps.workspace)) -> Response:
    """Cancel one run (Relaybox extension; Courier's logs page has the same button)."""
    run = await deps.services(request).automations.cancel_run(ws, run_id)
    return deps.json_response(presenters.run_detail(run))


@router.put("/automations/{automation_id}", openapi_extra=doc(AUTOMATION_DRAFT))
async def put_automation(
    automation_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    """Create or replace the draft of a saved automation (Relaybox extension)."""
    body = deps.parse_object(await request.body())
    saved = await deps.services(request).automations.put_draft(ws, automation_id, body)
    return deps.json_response(presenters.automation(saved, "draft"))


@router.get("/automations/{automation_id}")
async def get_automation(
    automation_id: str,
    request: Request,
    ws: str = Depends(deps.workspace),
    version: str = Query("published", pattern="^(draft|published)$"),
) -> Response:
    found = await deps.services(request).automations.get(ws, automation_id)
    if version == "published" and found.published is None:
        raise NotFound(f"Automation template {automation_id} has no published version")
    return deps.json_response(presenters.automation(found, version))


@router.delete("/automations/{automation_id}", status_code=204)
async def delete_automation(
    automation_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    await deps.services(request).automations.delete(ws, automation_id)
    return Response(status_code=204)


@router.post("/automations/{automation_id}/publish")
async def publish_automation(
    automation_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    """Freeze the draft as the next immutable published version (Relaybox extension)."""
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        published = await deps.services(request).automations.publish(ws, automation_id)
        return 200, orjson.dumps(presenters.automation(published, "published"))

    return await deps.idempotent(request, ws, raw, handler)
