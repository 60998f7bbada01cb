"""Courier's /profiles surface: user profiles and the lists a user is subscribed to."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

WS = Depends(deps.workspace)
router = APIRouter(tags=["Profiles"])
SUCCESS = orjson.dumps({"status": "SUCCESS"})


@router.post("/profiles/{user_id}")
async def merge(user_id: str, request: Request, ws: str = WS) -> Response:
    """Merge into the profile, creating it if absent."""
    profiles = deps.services(request).profiles
    return await deps.idempotent_action(
        request, ws, lambda body: profiles.merge(ws, user_id, body), answer=(200, SUCCESS)
    )


@router.put("/profiles/{user_id}")
async def replace(user_id: str, request: Request, ws: str = WS) -> Response:
    body = deps.parse_object(await request.body())
    await deps.services(request).profiles.replace(ws, user_id, body)
    return deps.raw_json(SUCCESS)


@router.patch("/profiles/{user_id}", status_code=204)
async def patch(user_id: str, request: Request, ws: str = WS) -> Response:
    """Apply a JSON Patch (RFC 6902); all or nothing."""
    body = deps.parse_object(await request.body())
    await deps.services(request).profiles.patch(ws, user_id, body)
    return Response(status_code=204)


@router.get("/profiles/{user_id}")
async def retrieve(user_id: str, request: Request, ws: str = WS) -> Response:
    return deps.json_response(await deps.services(request).profiles.retrieve(ws, user_id))


@router.delete("/profiles/{user_id}", status_code=204)
async def delete(user_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).profiles.delete(ws, user_id)
    return Response(status_code=204)


@router.get("/profiles/{user_id}/lists")
async def lists(
    user_id: str, request: Request, ws: str = WS, cursor: str | None = None
) -> Response:
    return deps.json_response(await deps.services(request).profiles.lists(ws, user_id, cursor))


@router.post("/profiles/{user_id}/lists")
async def subscribe(user_id: str, request: Request, ws: str = WS) -> Response:
    """Subscribe the user to lists, creating lists that do not exist yet."""
    profiles = deps.services(request).profiles
    return await deps.idempotent_action(
        request, ws, lambda body: profiles.subscribe(ws, user_id, body), answer=(200, SUCCESS)
    )


@router.delete("/profiles/{user_id}/lists")
async def unsubscribe_all(user_id: str, request: Request, ws: str = WS) -> Response:
    await deps.services(request).profiles.unsubscribe_all(ws, user_id)
    return deps.raw_json(SUCCESS)
