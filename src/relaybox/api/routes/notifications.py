"""Courier's /notifications (templates) surface, as the trycourier SDK calls it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Notifications"])


@router.post("/notifications")
async def create(request: Request, ws: str = WS) -> Response:
    notifications = deps.services(request).notifications
    return await deps.idempotent_create(request, ws, lambda body: notifications.create(ws, body))


@router.get("/notifications")
async def list_templates(
    request: Request,
    ws: str = WS,
    cursor: str | None = None,
    event_id: str | None = None,
    tags: str | None = None,
    notes: bool | None = None,  # legacy (V1) templates only: accepted, nothing to add
) -> Response:
    listing = await deps.services(request).notifications.list(
        ws, cursor, tags=tags, event_id=event_id
    )
    return deps.json_response(listing)


@router.get("/notifications/{template_id}")
async def retrieve(
    template_id: str, request: Request, ws: str = WS, version: str | None = None
) -> Response:
    found = await deps.services(request).notifications.retrieve(ws, template_id, version)
    return deps.json_response(found)


@router.put("/notifications/{template_id}")
async def replace(template_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body())
    updated = await deps.services(request).notifications.replace(ws, template_id, body)
    return deps.json_response(updated)


@router.delete("/notifications/{template_id}", status_code=204)
async def archive(template_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).notifications.archive(ws, template_id)
    return Response(status_code=204)


@router.get("/notifications/{template_id}/versions")
async def list_versions(
    template_id: str,
    request: Request,
    ws: str = WS,
    cursor: str | None = None,
    limit: int | None = None,
) -> Response:
    listing = await deps.services(request).notifications.list_versions(
        ws, template_id, cursor, limit
    )
    return deps.json_response(listing)


@router.post("/notifications/{template_id}/publish", status_code=204)
async def publish(template_id: str, request: Request, ws: str = WS) -> Response:
    notifications = deps.services(request).notifications
    return await deps.idempotent_action(
        request,
        ws,
        lambda body: notifications.publish(ws, template_id, body),
        answer=(204, b""),
        required=False,
    )


@router.get("/notifications/{template_id}/metrics")
async def metrics(
    template_id: str,
    request: Request,
    ws: str = WS,
    start: str | None = None,
    end: str | None = None,
    lookback: str | None = None,
    granularity: str | None = None,
) -> Response:
    found = await deps.services(request).notifications.metrics(
        ws, template_id, start=start, end=end, lookback=lookback, granularity=granularity
    )
    return deps.json_response(found)


@router.get("/notifications/{template_id}/content")
async def get_content(
    template_id: str, request: Request, ws: str = WS, version: str | None = None
) -> Response:
    content = await deps.services(request).notifications.get_content(ws, template_id, version)
    return deps.json_response(content)


@router.put("/notifications/{template_id}/content")
async def put_content(template_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body())
    changed = await deps.services(request).notifications.put_content(ws, template_id, body)
    return deps.json_response(changed)


@router.put("/notifications/{template_id}/elements/{element_id}")
async def put_element(
    template_id: str, element_id: str, request: Request, ws: str = WS
) -> Response:
    body = deps.parse_object(await request.body())
    service = deps.services(request).notifications
    return deps.json_response(await service.put_element(ws, template_id, element_id, body))


@router.put("/notifications/{template_id}/locales/{locale_id}")
async def put_locale(template_id: str, locale_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body())
    service = deps.services(request).notifications
    return deps.json_response(await service.put_locale(ws, template_id, locale_id, body))


@router.put("/notifications/{template_id}/{submission_id}/checks")
async def put_checks(
    template_id: str, submission_id: str, request: Request, ws: str = WS
) -> Response:
    body = deps.parse_object(await request.body())
    service = deps.services(request).notifications
    return deps.json_response(await service.put_checks(ws, template_id, submission_id, body))


@router.get("/notifications/{template_id}/{submission_id}/checks")
async def list_checks(
    template_id: str, submission_id: str, request: Request, ws: str = WS
) -> Response:
    service = deps.services(request).notifications
    return deps.json_response(await service.list_checks(ws, template_id, submission_id))


@router.delete("/notifications/{template_id}/{submission_id}/checks", status_code=204)
async def cancel_submission(
    template_id: str, submission_id: str, request: Request, ws: str = WS
) -> Response:
    await deps.services(request).notifications.cancel_submission(ws, template_id, submission_id)
    return Response(status_code=204)
