"""Courier's message tracking reads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Messages"])


@router.get("/messages/{message_id}")
async def retrieve(
    message_id: str, request: Request, ws: str = Depends(deps.workspace)
) -> Response:
    return deps.json_response(await deps.services(request).messages.retrieve(ws, message_id))


@router.get("/messages/{message_id}/history")
async def history(
    message_id: str,
    request: Request,
    ws: str = WS,
    type: str | None = None,
) -> Response:
    found = await deps.services(request).messages.history(ws, message_id, type)
    return deps.json_response(found)


@router.get("/messages/{message_id}/output")
async def output(message_id: str, request: Request, ws: str = WS) -> Response:
    return deps.json_response(await deps.services(request).messages.output(ws, message_id))
