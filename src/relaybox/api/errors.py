"""The one place Relaybox errors become HTTP responses, in Courier's error envelope."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from relaybox.errors import RelayboxError

log = logging.getLogger("relaybox.api")


def envelope(status: int, message: str) -> Response:
    headers = {}
    if status == 409:
        # Business conflicts are final; without this the SDK retries a 409 twice.
        headers["x-should-retry"] = "false"
    body = orjson.dumps({"type": "invalid_request_error", "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def install(app: FastAPI) -> None:
    async def relaybox_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RelayboxError)
        if exc.status_code >= 500:
            log.error("request failed: %s", exc.message)
        return envelope(exc.status_code, exc.message)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        return envelope(exc.status_code, message)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return envelope(400, "; ".join(parts) or "Invalid request")

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return envelope(500, "Internal server error")

    app.add_exception_handler(RelayboxError, relaybox_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
