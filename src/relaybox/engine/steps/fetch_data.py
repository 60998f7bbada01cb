"""The ``fetch-data`` step: call a webhook and merge the JSON object it returns into ``data``.

Courier: fixed 10-second timeout, the response must be a JSON object, merged by
``merge_strategy`` (default ``replace``), and a failure is logged while "the automation will
continue processing subsequent steps". Relaybox records such a failure on the step (status
ERROR with the reason, ``refs.<name>`` = ``{"status": "ERROR", "error"}``) and carries on
with the next step; the run itself does not fail. One attempt, no retries: Courier documents
none, and a retry loop would hold later steps back by minutes.

Every request goes through ``OutboundGuard`` (http(s) only, private/loopback addresses
refused unless allow-listed, response size capped). Courier requires https; a self-hosted
server also talks to plain-http services on its own network, so http is allowed and the
guard's allow list is what keeps internal addresses out of reach.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson

from relaybox.domain.merge import STRATEGIES, merge
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import ValidationError
from relaybox.providers.outbound import OutboundGuard

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1 << 20
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class FetchDataStep:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        guard: OutboundGuard,
        timeout: float = TIMEOUT_SECONDS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._http = http
        self._guard = guard
        self._timeout = timeout
        self._max_bytes = max_response_bytes

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        try:
            request = parse_request(spec)
            status, payload = await fetch_object(
                self._http, self._guard, request, self._timeout, self._max_bytes
            )
        except ValidationError as exc:
            return _failed(index, exc.message)
        data = merge(run.context.data, payload, request.strategy)
        output = {"status_code": status, "merge_strategy": request.strategy}
        event = StepSucceeded(index, output=output, ref=payload)
        return StepResult(event, context=replace(run.context, data=data))


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes
    strategy: str
    #: The body as given when it is a JSON object (a send-list data source adds to it).
    body: dict[str, Any] | None = None


async def fetch_object(
    http: httpx.AsyncClient,
    guard: OutboundGuard,
    request: WebhookRequest,
    time_limit: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> tuple[int, dict[str, Any]]:
    """(status code, JSON object) of one guarded call; any failure is a ValidationError."""
    try:
        response = await guard.request(
            http,
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            time_limit=time_limit,
            max_response_bytes=max_bytes,
        )
    except TimeoutError:
        raise ValidationError(f"no response within {time_limit:g} s") from None
    except httpx.HTTPError as exc:
        raise ValidationError(f"request failed: {exc.__class__.__name__}: {exc}") from None
    if response.truncated:
        raise ValidationError(f"response larger than {max_bytes} bytes")
    if not 200 <= response.status_code < 300:
        raise ValidationError(f"webhook answered HTTP {response.status_code}")
    try:
        payload = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        raise ValidationError("response is not JSON") from None
    if not isinstance(payload, dict):
        raise ValidationError("response must be a JSON object")
    return response.status_code, payload


def _failed(index: int, error: str) -> StepResult:
    return StepResult(StepFailed(index, error, retryable=False, continue_run=True))


def parse_request(spec: dict[str, Any]) -> WebhookRequest:
    """The ``webhook`` and ``merge_strategy`` of a fetch-data step or a data source."""
    webhook = spec.get("webhook")
    if not isinstance(webhook, dict):
        raise ValidationError("webhook: Expected object")
    url = webhook.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("Invalid URL: webhook.url is required")
    method = str(webhook.get("method") or "GET").upper()
    if method not in METHODS:
        raise ValidationError(f"webhook.method: expected one of {', '.join(sorted(METHODS))}")
    strategy = spec.get("merge_strategy") or "replace"
    if strategy not in STRATEGIES:
        raise ValidationError(f"merge_strategy: expected one of {', '.join(STRATEGIES)}")
    raw_headers = webhook.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise ValidationError("webhook.headers: Expected object")
    headers = {str(k): str(v) for k, v in raw_headers.items()}
    params = webhook.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise ValidationError("webhook.params: Expected object")
        try:
            url = str(httpx.URL(url).copy_merge_params({str(k): str(v) for k, v in params.items()}))
        except httpx.InvalidURL as exc:
            raise ValidationError(f"Invalid URL: {exc}") from None
    body = webhook.get("body")
    content = b""
    if isinstance(body, str):
        content = body.encode()
    elif body is not None:
        content = orjson.dumps(body)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    as_object = dict(body) if isinstance(body, dict) else None
    return WebhookRequest(method, url, headers, content, strategy, as_object)
