"""Courier's /notifications (templates) surface."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Notifications"])


@router.post("/notifications")
async def create(request: Request, ws: str = WS) -> Response:
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        body = deps.parse_object(raw)
        created = await deps.services(request).notifications.create(ws, body)
        return 201, orjson.dumps(created)

    return await deps.idempotent(request, ws, raw, handler)


@router.get("/notifications")
async def list_templates(request: Request, ws: str = WS, cursor: str | None = None) -> Response:
    return deps.json_response(await deps.services(request).notifications.list(ws, cursor))


@router.get("/notifications/{template_id}")
async def retrieve(
    template_id: str,
    request: Request,
    ws: str = WS,
    version: str | None = None,
) -> Response:
    found = await deps.services(request).notifications.retrieve(ws, template_id, version)
    return deps.json_response(found)


@router.put("/notifications/{template_id}")
async def replace(
    template_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    body = deps.parse_object(await request.body())
    updated = await deps.services(request).notifications.replace(ws, template_id, body)
    return deps.json_response(updated)


@router.delete("/notifications/{template_id}", status_code=204)
async def archive(
    template_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    await deps.services(request).notifications.archive(ws, template_id)
    return Response(status_code=204)


@router.post("/notifications/{template_id}/publish", status_code=204)
async def publish(
    template_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        await deps.services(request).notifications.publish(ws, template_id)
        return 204, b""

    return await deps.idempotent(request, ws, raw, handler)
