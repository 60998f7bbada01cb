"""Courier's ``POST /auth/issue-token``: JWTs for client-side use (the inbox routes)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps

router = APIRouter(tags=["Authentication"])


@router.post("/auth/issue-token")
async def issue_token(request: Request, ws: str = Depends(deps.workspace)) -> Response:
    body = deps.parse_object(await request.body())
    return deps.json_response(await deps.services(request).tokens.issue(ws, body))
