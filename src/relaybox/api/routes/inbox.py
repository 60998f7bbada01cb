"""Relaybox's user-facing inbox API (Courier Inbox's in-app messages): list, mark, and a
Server-Sent Events stream per user.

Callers authenticate with the workspace API key, or with a user token from
``POST /auth/issue-token`` whose scope names the user (``user_id:<id>``) and grants
``inbox:read:messages`` (list, stream) or ``inbox:write:events`` (marks). Browsers'
EventSource cannot send headers, so the stream also takes the token as ``?access_token=``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from relaybox.api import deps
from relaybox.errors import AuthenticationError
from relaybox.services.tokens import looks_like_token

router = APIRouter(tags=["Inbox"])
READ = "inbox:read:messages"
WRITE = "inbox:write:events"


async def _workspace(
    request: Request, user_id: str, scope: str, *, query_token: bool = False
) -> str:
    _, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if not credential and query_token:
        credential = request.query_params.get("access_token", "")
    if not looks_like_token(credential):
        return await deps.workspace(request)
    services = deps.services(request)
    try:
        token = await services.tokens.verify(credential)
    except AuthenticationError:
        # An operator-chosen API key may happen to look like a token.
        workspace = await services.keys.workspace_for(credential)
        if workspace is None:
            raise
        return workspace
    token.require(user_id, scope)
    return token.workspace_id


@router.get("/inbox/{user_id}/messages")
async def list_messages(
    user_id: str, request: Request, cursor: str | None = None, archived: str | None = None
) -> Response:
    ws = await _workspace(request, user_id, READ)
    found = await deps.services(request).inbox.list(ws, user_id, cursor=cursor, archived=archived)
    return deps.json_response(found)


@router.post("/inbox/{user_id}/messages/{message_id}/{action}")
async def mark(user_id: str, message_id: str, action: str, request: Request) -> Response:
    ws = await _workspace(request, user_id, WRITE)
    marked = await deps.services(request).inbox.mark(ws, user_id, message_id, action)
    return deps.json_response(marked)


@router.get("/inbox/{user_id}/stream")
async def stream(user_id: str, request: Request) -> StreamingResponse:
    ws = await _workspace(request, user_id, READ, query_token=True)
    events = deps.services(request).inbox.stream(ws, user_id)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # No buffering by proxies: each event must reach the client as it happens.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
