"""Courier's /providers surface: configured integrations, secrets masked on the way out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Providers"])


@router.post("/providers")
async def create(request: Request, ws: str = WS) -> Response:
    providers = deps.services(request).providers
    return await deps.idempotent_create(request, ws, lambda body: providers.create(ws, body))


@router.get("/providers")
async def list_providers(request: Request, ws: str = WS, cursor: str | None = None) -> Response:
    return deps.json_response(await deps.services(request).providers.list(ws, cursor))


@router.get("/providers/catalog")
async def catalog(
    request: Request,
    ws: str = WS,
    channel: str | None = None,
    keys: str | None = None,
    name: str | None = None,
) -> Response:
    # Declared before /providers/{provider_id}, which would otherwise take "catalog" as an id.
    found = deps.services(request).providers.catalog(channel=channel, keys=keys, name=name)
    return deps.json_response(found)


@router.get("/providers/{provider_id}")
async def retrieve(
    provider_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    return deps.json_response(await deps.services(request).providers.retrieve(ws, provider_id))


@router.put("/providers/{provider_id}")
async def replace(
    provider_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    body = deps.parse_object(await request.body())
    return deps.json_response(await deps.services(request).providers.replace(ws, provider_id, body))


@router.patch("/providers/{provider_id}")
async def patch(provider_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body())
    return deps.json_response(await deps.services(request).providers.patch(ws, provider_id, body))


@router.delete("/providers/{provider_id}", status_code=204)
async def delete(provider_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).providers.delete(ws, provider_id)
    return Response(status_code=204)
