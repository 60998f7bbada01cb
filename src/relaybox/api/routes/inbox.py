"""Relaybox's user-facing inbox API (Courier Inbox's in-app messages): list, mark, and a
Server-Sent Events stream per user. Authenticated with the workspace API key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Inbox"])


@router.get("/inbox/{user_id}/messages")
async def list_messages(
    user_id: str,
    request: Request,
    ws: str = WS,
    cursor: str | None = None,
    archived: str | None = None,
) -> Response:
    found = await deps.services(request).inbox.list(ws, user_id, cursor=cursor, archived=archived)
    return deps.json_response(found)


@router.post("/inbox/{user_id}/messages/{message_id}/{action}")
async def mark(
    user_id: str, message_id: str, action: str, request: Request, ws: str = WS
) -> Response:
    marked = await deps.services(request).inbox.mark(ws, user_id, message_id, action)
    return deps.json_response(marked)


@router.get("/inbox/{user_id}/stream")
async def stream(user_id: str, request: Request, ws: str = WS) -> StreamingResponse:
    events = deps.services(request).inbox.stream(ws, user_id)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # No buffering by proxies: each event must reach the client as it happens.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
