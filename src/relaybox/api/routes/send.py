"""Courier's Send API: ``POST /send`` → ``202 {"requestId"}`` once the request is committed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from relaybox.api import deps
from relaybox.api.schemas import SEND, doc

router = APIRouter(tags=["Send"])


@router.post("/send", status_code=202, openapi_extra=doc(SEND))
async def send_message(request: Request, ws: str = Depends(deps.workspace)) -> Response:
    """Send a message to one or more recipients (template or inline Elemental content)."""
    raw = await request.body()
    body = deps.parse_object(raw)
    idem = deps.idempotency_for(request, ws, raw)
    earlier = await deps.replayed(request, idem)
    if earlier is not None:
        return earlier
    svc = deps.services(request)
    simulated = await deps.test_mode(request)
    accepted = await svc.sending.send(ws, body, idem, simulated=simulated)
    if accepted.replay is not None:
        return deps.replay(accepted.replay.status_code, accepted.replay.body)
    return deps.raw_json(accepted.body(), 202)
