"""Notification templates (read-only for now): the list and one template's content."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.errors import NotFound
from relaybox.ui import web

router = APIRouter()


@router.get("/templates")
async def templates(request: Request) -> Response:
    workspace = web.signed_in(request)
    cursor = request.query_params.get("cursor") or None
    page = await web.services(request).notifications.list(workspace, cursor)
    return web.render(
        request, "templates.html", templates=page["results"], next_cursor=page["paging"]["cursor"]
    )


@router.get("/templates/{template_id}")
async def template(request: Request, template_id: str) -> Response:
    workspace = web.signed_in(request)
    service = web.services(request).notifications
    draft = await service.retrieve(workspace, template_id, "draft")
    try:
        published = await service.retrieve(workspace, template_id, "published")
    except NotFound:
        published = None
    return web.render(request, "template.html", draft=draft, published=published)
