"""Courier's /lists surface: lists and their subscriptions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Lists"])


@router.get("/lists")
async def list_lists(
    request: Request, ws: str = WS, cursor: str | None = None, pattern: str | None = None
) -> Response:
    """Lists ordered by id; ``pattern`` takes an id or parts with ``*`` / ``**``."""
    return deps.json_response(await deps.services(request).lists.find(ws, pattern, cursor))


@router.get("/lists/{list_id}")
async def retrieve(list_id: str, request: Request, ws: str = WS) -> Response:
    return deps.json_response(await deps.services(request).lists.retrieve(ws, list_id))


@router.put("/lists/{list_id}", status_code=204)
async def put(list_id: str, request: Request, ws: str = WS) -> Response:
    """Create or replace the list's name and preferences."""
    body = deps.parse_object(await request.body())
    await deps.services(request).lists.put(ws, list_id, body)
    return Response(status_code=204)


@router.delete("/lists/{list_id}", status_code=204)
async def delete(list_id: str, request: Request, ws: str = WS) -> Response:
    """Soft delete: ``PUT /lists/{id}/restore`` brings the list and its subscribers back."""
    await deps.services(request).lists.delete(ws, list_id)
    return Response(status_code=204)


@router.put("/lists/{list_id}/restore", status_code=204)
async def restore(list_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).lists.restore(ws, list_id)
    return Response(status_code=204)


@router.get("/lists/{list_id}/subscriptions")
async def subscriptions(
    list_id: str, request: Request, ws: str = WS, cursor: str | None = None
) -> Response:
    found = await deps.services(request).lists.subscriptions(ws, list_id, cursor)
    return deps.json_response(found)


@router.post("/lists/{list_id}/subscriptions", status_code=204)
async def add(list_id: str, request: Request, ws: str = WS) -> Response:
    """Subscribe more users (existing subscriptions untouched; the list is auto-created)."""
    lists = deps.services(request).lists
    return await deps.idempotent_action(
        request, ws, lambda body: lists.add(ws, list_id, body), answer=(204, b"")
    )


@router.put("/lists/{list_id}/subscriptions", status_code=204)
async def replace(list_id: str, request: Request, ws: str = WS) -> Response:
    """Make the given users the list's only subscribers."""
    body = deps.parse_object(await request.body())
    await deps.services(request).lists.replace(ws, list_id, body)
    return Response(status_code=204)


@router.put("/lists/{list_id}/subscriptions/{user_id}", status_code=204)
async def subscribe_user(list_id: str, user_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body(), required=False)
    await deps.services(request).lists.subscribe_user(ws, list_id, user_id, body)
    return Response(status_code=204)


@router.delete("/lists/{list_id}/subscriptions/{user_id}", status_code=204)
async def unsubscribe_user(list_id: str, user_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).lists.unsubscribe_user(ws, list_id, user_id)
    return Response(status_code=204)
