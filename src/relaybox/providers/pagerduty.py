"""PagerDuty Events API v2, the provider of direct ``pagerduty`` recipients (Courier's
``{"pagerduty": {"routing_key", "event_action", "severity", "source"}}``).

``POST {base_url}/v2/enqueue`` with JSON ``{"routing_key", "event_action", "dedup_key",
"payload": {"summary", "source", "severity", "custom_details"}}``: the summary is the rendered
push title (else the body), cut to PagerDuty's 1,024 characters; ``custom_details`` holds the
body and the template data. ``dedup_key`` is the message's idempotency key, so a repeated
trigger (a retry after a lost answer) lands on the same PagerDuty alert, and ``acknowledge`` /
``resolve`` events need it. PagerDuty answers ``202 {"status": "success", "dedup_key"}``; 400
(an invalid event) is permanent; 429 and 5xx are retried, honouring ``Retry-After``.
Defaults: ``event_action`` ``trigger``, ``severity`` ``error``, ``source`` ``relaybox``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from relaybox.providers import calls, content
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard

DEFAULT_BASE_URL = "https://events.pagerduty.com"
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
_FIELDS = frozenset({"routing_key", "event_action", "severity", "source", "base_url", "timeout"})


@dataclass(frozen=True)
class PagerDutySettings:
    routing_key: str
    event_action: str
    severity: str
    source: str
    base_url: str
    timeout: float

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> PagerDutySettings:
        f = Fields("pagerduty", raw, _FIELDS)
        action = f.text("event_action") or "trigger"
        if action not in EVENT_ACTIONS:
            raise f.invalid("event_action", f"must be one of {', '.join(EVENT_ACTIONS)}")
        severity = f.text("severity") or "error"
        if severity not in SEVERITIES:
            raise f.invalid("severity", f"must be one of {', '.join(SEVERITIES)}")
        return cls(
            routing_key=str(f.text("routing_key", required=True)),
            event_action=action,
            severity=severity,
            source=f.text("source") or "relaybox",
            base_url=f.url("base_url", DEFAULT_BASE_URL),
            timeout=f.timeout(),
        )


class PagerDutyProvider:
    key = "pagerduty"
    channel = "push"
    #: PagerDuty deduplicates on ``dedup_key``.
    supports_idempotency = True

    def __init__(
        self, settings: PagerDutySettings, *, client: httpx.AsyncClient, guard: OutboundGuard
    ) -> None:
        self.settings = settings
        self._client = client
        self._guard = guard

    def reachable(self, profile: Mapping[str, Any]) -> bool:
        """The routing key is the address: no push token needed."""
        return True

    def event(self, message: RenderedMessage) -> dict[str, Any]:
        s = self.settings
        event: dict[str, Any] = {
            "routing_key": s.routing_key,
            "event_action": s.event_action,
            "dedup_key": message.idempotency_key,
        }
        if s.event_action == "trigger":
            body = content.body(message)
            summary = content.title(message) or body or message.message_id
            event["payload"] = {
                "summary": summary[:MAX_SUMMARY],
                "source": s.source,
                "severity": s.severity,
                "custom_details": {"body": body, "data": dict(message.data)},
            }
        return event

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        body = json.dumps(self.event(message), ensure_ascii=False, default=str).encode("utf-8")
        response = await calls.exchange(
            self._guard,
            self._client,
            "POST",
            f"{self.settings.base_url}/v2/enqueue",
            what="pagerduty enqueue",
            headers={"Content-Type": "application/json"},
            content=body,
            time_limit=self.settings.timeout,
        )
        status = response.status_code
        answer = calls.json_body(response)
        found = answer if isinstance(answer, dict) else {}
        if 200 <= status < 300:
            key = found.get("dedup_key")
            return DeliveryResult(
                provider_message_id=key if isinstance(key, str) else None,
                response=calls.summary(response),
            )
        errors = found.get("errors") or found.get("message") or ""
        raise calls.failure(
            f"pagerduty answered {status}: {errors}"[:300],
            response,
            retryable=calls.retryable_status(status),
        )

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever injected it."""
