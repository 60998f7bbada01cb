"""Courier's message tracking reads."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Messages"])


@router.get("/messages")
async def list_messages(request: Request, ws: str = WS) -> Response:
    """Newest first; list filters arrive comma-joined (``status=SENT,DELIVERED``)."""
    params = dict(request.query_params)
    return deps.json_response(await deps.services(request).messages.list(ws, params))


@router.post("/messages/{message_id}/cancel")
async def cancel(message_id: str, request: Request, ws: str = WS) -> Response:
    """200 with the CANCELED record, or 409 with the record when it is too late to cancel."""
    canceled, record = await deps.services(request).messages.cancel(ws, message_id)
    if canceled:
        return deps.json_response(record)
    why = f"Message {message_id} is {record['status']} and can no longer be canceled"
    response = deps.json_response({**record, "type": "invalid_request_error", "message": why}, 409)
    # A final answer: without this the SDK would retry the 409.
    response.headers["x-should-retry"] = "false"
    return response


@router.post("/messages/{message_id}/resend")
async def resend(message_id: str, request: Request, ws: str = WS) -> Response:
    """Send the message again as a new message; ``{"messageId": <new id>}``."""
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        new_id = await deps.services(request).sending.resend(ws, message_id)
        return 200, orjson.dumps({"messageId": new_id})

    return await deps.idempotent(request, ws, raw, handler)


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
