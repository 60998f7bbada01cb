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

from dataclasses import replace
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
            method, url, headers, content, strategy = _request(spec)
        except ValidationError as exc:
            return _failed(index, exc.message)
        try:
            response = await self._guard.request(
                self._http,
                method,
                url,
                headers=headers,
                content=content,
                time_limit=self._timeout,
                max_response_bytes=self._max_bytes,
            )
        except ValidationError as exc:
            return _failed(index, exc.message)
        except TimeoutError:
            return _failed(index, f"no response within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return _failed(index, f"request failed: {exc.__class__.__name__}: {exc}")
        if response.truncated:
            return _failed(index, f"response larger than {self._max_bytes} bytes")
        if not 200 <= response.status_code < 300:
            return _failed(index, f"webhook answered HTTP {response.status_code}")
        try:
            payload = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return _failed(index, "response is not JSON")
        if not isinstance(payload, dict):
            return _failed(index, "response must be a JSON object")
        data = merge(run.context.data, payload, strategy)
        output = {"status_code": response.status_code, "merge_strategy": strategy}
        event = StepSucceeded(index, output=output, ref=payload)
        return StepResult(event, context=replace(run.context, data=data))


def _failed(index: int, error: str) -> StepResult:
    return StepResult(StepFailed(index, error, retryable=False, continue_run=True))


def _request(spec: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes, str]:
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
    return method, url, headers, content, strategy
