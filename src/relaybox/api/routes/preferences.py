"""Courier's /users/{user_id}/preferences surface (subscription-topic choices).

``tenant_id`` is accepted and ignored: Relaybox keeps one set of choices per user.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Preferences"])


@router.get("/users/{user_id}/preferences")
async def list_preferences(
    user_id: str, request: Request, ws: str = WS, tenant_id: str | None = None
) -> Response:
    return deps.json_response(await deps.services(request).preferences.list_topics(ws, user_id))


@router.post("/users/{user_id}/preferences")
async def bulk_update(
    user_id: str, request: Request, ws: str = WS, tenant_id: str | None = None
) -> Response:
    """Set several topics; topics left out keep their choice."""
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        body = deps.parse_object(raw)
        answer = await deps.services(request).preferences.bulk_update(ws, user_id, body)
        return 200, orjson.dumps(answer)

    return await deps.idempotent(request, ws, raw, handler)


@router.put("/users/{user_id}/preferences")
async def bulk_replace(
    user_id: str, request: Request, ws: str = WS, tenant_id: str | None = None
) -> Response:
    """Replace every topic override of the user."""
    body = deps.parse_object(await request.body())
    answer = await deps.services(request).preferences.bulk_replace(ws, user_id, body)
    return deps.json_response(answer)


@router.get("/users/{user_id}/preferences/{topic_id}")
async def retrieve_topic(
    user_id: str, topic_id: str, request: Request, ws: str = WS, tenant_id: str | None = None
) -> Response:
    found = await deps.services(request).preferences.retrieve(ws, user_id, topic_id)
    return deps.json_response(found)


@router.put("/users/{user_id}/preferences/{topic_id}")
async def put_topic(
    user_id: str, topic_id: str, request: Request, ws: str = WS, tenant_id: str | None = None
) -> Response:
    body = deps.parse_object(await request.body())
    answer = await deps.services(request).preferences.put(ws, user_id, topic_id, body)
    return deps.json_response(answer)


@router.delete("/users/{user_id}/preferences/{topic_id}", status_code=204)
async def delete_topic(
    user_id: str, topic_id: str, request: Request, ws: str = WS, tenant_id: str | None = None
) -> Response:
    await deps.services(request).preferences.delete(ws, user_id, topic_id)
    return Response(status_code=204)
