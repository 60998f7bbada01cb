"""One outbound HTTP exchange for the API providers, with transport failures mapped once.

Every call goes through ``OutboundGuard.request`` (base URLs and token URIs are user input).
A refused or malformed URL is permanent; DNS failures, timeouts and connection errors are
retryable, as are 408, 429 and 5xx answers (see ``retryable_status``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.outbound import OutboundGuard, OutboundResponse, UnresolvableHost

#: Only the start of a reply is kept; the cap keeps a hostile receiver from filling memory.
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 1024


async def exchange(
    guard: OutboundGuard,
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str],
    content: bytes = b"",
    time_limit: float,
) -> OutboundResponse:
    """Send one request; raise the delivery error a transport failure means.

    Raises:
        RetryableDeliveryError: DNS failure, timeout, connection or protocol error.
        PermanentDeliveryError: the guard refused the URL, or the URL is malformed.
    """
    try:
        return await guard.request(
            client,
            method,
            url,
            headers=headers,
            content=content,
            time_limit=time_limit,
            max_response_bytes=MAX_RESPONSE_BYTES,
        )
    except UnresolvableHost as exc:
        raise RetryableDeliveryError(f"{what}: {exc.message}") from exc
    except ValidationError as exc:
        raise PermanentDeliveryError(f"{what}: {exc.message}") from exc
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise RetryableDeliveryError(f"{what}: timed out after {time_limit:g} s") from exc
    except httpx.InvalidURL as exc:
        raise PermanentDeliveryError(f"{what}: invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise RetryableDeliveryError(f"{what}: {type(exc).__name__}: {exc}") from exc


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), if usable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retryable_status(status: int) -> bool:
    return status in (408, 429) or 500 <= status < 600


def json_body(response: OutboundResponse) -> Any:
    """The parsed JSON body, or None when it is not (complete) JSON."""
    if response.truncated:
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def summary(response: OutboundResponse) -> dict[str, object]:
    """What goes into the message's provider log: status and the start of the body."""
    return {
        "status": response.status_code,
        "body": response.body.decode("utf-8", errors="replace")[:EXCERPT_CHARS],
    }


def failure(
    what: str,
    response: OutboundResponse,
    *,
    retryable: bool,
    detail: Mapping[str, object] | None = None,
    now: float | None = None,
) -> RetryableDeliveryError | PermanentDeliveryError:
    """The delivery error for a refused request, honouring Retry-After when retryable.

    ``now`` is the caller's clock, for a Retry-After given as an HTTP date.
    """
    recorded = {**summary(response), **(detail or {})}
    if retryable:
        when = time.time() if now is None else now
        wait = parse_retry_after(response.headers.get("Retry-After"), when)
        return RetryableDeliveryError(what, response=recorded, retry_after=wait)
    return PermanentDeliveryError(what, response=recorded)


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
