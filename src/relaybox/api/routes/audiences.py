"""Courier's /audiences surface: filter-defined groups of users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Audiences"])


@router.get("/audiences")
async def list_audiences(request: Request, ws: str = WS, cursor: str | None = None) -> Response:
    return deps.json_response(await deps.services(request).audiences.list_audiences(ws, cursor))


@router.get("/audiences/{audience_id}")
async def retrieve(audience_id: str, request: Request, ws: str = WS) -> Response:
    return deps.json_response(await deps.services(request).audiences.retrieve(ws, audience_id))


@router.put("/audiences/{audience_id}")
async def update(audience_id: str, request: Request, ws: str = WS) -> Response:
    """Create or replace the audience's name, description, filter and operator."""
    body = deps.parse_object(await request.body())
    return deps.json_response(await deps.services(request).audiences.update(ws, audience_id, body))


@router.delete("/audiences/{audience_id}", status_code=204)
async def delete(audience_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).audiences.delete(ws, audience_id)
    return Response(status_code=204)


@router.get("/audiences/{audience_id}/members")
async def members(
    audience_id: str, request: Request, ws: str = WS, cursor: str | None = None
) -> Response:
    found = await deps.services(request).audiences.list_members(ws, audience_id, cursor)
    return deps.json_response(found)
