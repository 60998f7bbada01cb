"""Relaybox's /webhooks: endpoints that receive signed delivery events (Courier configures
these in its UI; this is the API for them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Webhooks"])


@router.post("/webhooks")
async def create(request: Request, ws: str = WS) -> Response:
    webhooks = deps.services(request).webhooks
    return await deps.idempotent_create(request, ws, lambda body: webhooks.create(ws, body))


@router.get("/webhooks")
async def list_endpoints(request: Request, ws: str = WS, cursor: str | None = None) -> Response:
    return deps.json_response(await deps.services(request).webhooks.list(ws, cursor))


@router.get("/webhooks/{endpoint_id}")
async def retrieve(endpoint_id: str, request: Request, ws: str = WS) -> Response:
    return deps.json_response(await deps.services(request).webhooks.retrieve(ws, endpoint_id))


@router.get("/webhooks/{endpoint_id}/deliveries")
async def deliveries(
    endpoint_id: str, request: Request, ws: str = WS, cursor: str | None = None
) -> Response:
    found = await deps.services(request).webhooks.deliveries(ws, endpoint_id, cursor)
    return deps.json_response(found)


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry")
async def redeliver(endpoint_id: str, delivery_id: str, request: Request, ws: str = WS) -> Response:
    found = await deps.services(request).webhooks.redeliver(ws, endpoint_id, delivery_id)
    return deps.json_response(found)


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete(endpoint_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).webhooks.delete(ws, endpoint_id)
    return Response(status_code=204)
