"""Messages log and a message's detail: rendered output per channel and its history."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.ui import web

router = APIRouter()


@router.get("/messages")
async def messages(request: Request) -> Response:
    workspace = web.signed_in(request)
    q = request.query_params
    params = {
        "status": q.get("status") or None,
        "recipient": (q.get("recipient") or "").strip() or None,
        "cursor": q.get("cursor") or None,
    }
    page = await web.services(request).messages.list(workspace, params)
    return web.render(
        request,
        "messages.html",
        messages=page["results"],
        next_cursor=page["paging"]["cursor"],
        status=params["status"] or "",
        recipient=params["recipient"] or "",
    )


@router.get("/messages/{message_id}")
async def message(request: Request, message_id: str) -> Response:
    workspace = web.signed_in(request)
    service = web.services(request).messages
    detail = await service.retrieve(workspace, message_id)
    output = await service.output(workspace, message_id)
    history = await service.history(workspace, message_id, None)
    return web.render(
        request,
        "message.html",
        message=detail,
        outputs=output["results"],
        history=history["results"],
    )
