"""Request plumbing shared by the routes: auth, JSON bodies, idempotent POSTs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from relaybox.errors import AuthenticationError, ValidationError
from relaybox.services.container import Services
from relaybox.services.idempotency import Idempotency, fingerprint


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def workspace(request: Request) -> str:
    """The caller's workspace, from ``Authorization: Bearer <key>``."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationError("Unauthorized: send Authorization: Bearer <api key>")
    found = await services(request).keys.workspace_for(key.strip())
    if found is None:
        raise AuthenticationError("Unauthorized: unknown API key")
    return found


async def test_mode(request: Request) -> bool:
    """True when the (already authenticated) key is a test-environment key."""
    _, _, key = request.headers.get("authorization", "").partition(" ")
    return await services(request).keys.is_test(key.strip())


def parse_object(raw: bytes, *, required: bool = True) -> dict[str, Any]:
    if not raw.strip():
        if required:
            raise ValidationError("Request body is required")
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"Malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    return body


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def idempotency_for(request: Request, workspace_id: str, raw: bytes) -> Idempotency | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    fp = fingerprint(request.method, request.url.path, raw)
    expiration = request.headers.get("x-idempotency-expiration")
    return services(request).idempotency.begin(workspace_id, key, expiration, fp)


async def idempotent(
    request: Request,
    workspace_id: str,
    raw: bytes,
    handler: Callable[[], Awaitable[tuple[int, bytes]]],
) -> Response:
    """Run a POST handler under Courier's idempotency contract."""
    idem = idempotency_for(request, workspace_id, raw)
    if idem is None:
        status, body = await handler()
        return _response(status, body)
    earlier = await replayed(request, idem)
    if earlier is not None:
        return earlier
    status, body = await services(request).idempotency.run(idem, handler)
    return _response(status, body)


async def replayed(request: Request, idem: Idempotency | None) -> Response | None:
    """The saved answer to an earlier request with the same Idempotency-Key, if there is one."""
    if idem is None:
        return None
    saved = await services(request).idempotency.saved(idem)
    return None if saved is None else replay(saved.status_code, saved.body)


async def idempotent_create(
    request: Request,
    workspace_id: str,
    create: Callable[[dict[str, Any]], Awaitable[Any]],
    *,
    status: int = 201,
) -> Response:
    """A POST that makes a resource from a JSON object body and answers it, idempotently."""
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        return status, orjson.dumps(await create(parse_object(raw)))

    return await idempotent(request, workspace_id, raw, handler)


async def idempotent_action(
    request: Request,
    workspace_id: str,
    act: Callable[[dict[str, Any]], Awaitable[Any]],
    *,
    answer: tuple[int, bytes],
    required: bool = True,
) -> Response:
    """A POST that acts on its JSON object body and gives a fixed ``answer``, idempotently."""
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        await act(parse_object(raw, required=required))
        return answer

    return await idempotent(request, workspace_id, raw, handler)


def replay(status: int, body: bytes) -> Response:
    response = _response(status, body)
    response.headers["idempotent-replayed"] = "true"
    return response


def _response(status: int, body: bytes) -> Response:
    if not body:
        return Response(status_code=status)
    return raw_json(body, status)
