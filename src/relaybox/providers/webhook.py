"""Webhook provider (provider key ``webhook``): POSTs each message as JSON to a configured URL.

Settings (validated by ``WebhookSettings.parse``): ``url`` (required, http or https),
``method`` (``POST`` default, or ``PUT``), ``headers`` (string to string; may not set the
headers below), ``secret`` (optional) and ``timeout`` seconds (default 10).

Request body::

    {"message_id", "recipient", "template", "channel": "webhook",
     "subject", "text", "html", "data", "profile"}

A send's ``override`` (``providers.webhook.override`` or ``channels.webhook.override``)
may carry ``body`` (merged deeply into that JSON) and ``headers`` (added, with the same
restrictions as the configured ones).

Request headers:

``Content-Type: application/json``
``Idempotency-Key: <idempotency key>`` — the same for every attempt of one message on this
    channel, so receivers should deduplicate on it; Relaybox may repeat a request whose outcome
    it did not learn (timeout, crash).
``X-Relaybox-Signature: t=<unix seconds>,v1=<hex>`` — only when ``secret`` is set, in the
    style of Stripe: ``v1`` is ``HMAC-SHA256(key=secret, msg=f"{t}.{raw_body}")`` in lowercase
    hex, over the exact body bytes received. Receivers recompute it, compare in constant time,
    and reject timestamps too far from their clock to stop replays.

Outcome: 2xx delivers (``id`` from a JSON response body becomes the provider message id);
408, 429, 5xx, timeouts and connection errors are retried (honouring ``Retry-After``); any
other status, including 3xx since redirects are not followed, is a permanent failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import httpx

from relaybox.errors import PermanentDeliveryError, ValidationError
from relaybox.providers import calls, override
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard, OutboundResponse

Method = Literal["POST", "PUT"]

DEFAULT_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Relaybox-Signature"
_FIELDS = frozenset({"url", "method", "headers", "secret", "timeout"})
#: Headers Relaybox sets itself or that would corrupt the request if overridden.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "idempotency-key",
        SIGNATURE_HEADER.lower(),
    }
)


def _parse_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("webhook setting 'url' is required")
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ValidationError(f"webhook setting 'url' is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError("webhook setting 'url' must be an http:// or https:// URL")
    return url


def _parse_headers(value: Any) -> dict[str, str]:
    return override.check_headers(value, "webhook setting 'headers'", RESERVED_HEADERS)


@dataclass(frozen=True)
class WebhookSettings:
    """Validated webhook settings with defaults applied."""

    url: str
    method: Method = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> WebhookSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field.

        Only the URL's syntax is checked here; whether its host is reachable is decided by the
        OutboundGuard at send time, because DNS answers change.
        """
        f = Fields("webhook", raw, _FIELDS)
        method = raw.get("method") or "POST"
        if not isinstance(method, str) or method.upper() not in ("POST", "PUT"):
            raise ValidationError("webhook setting 'method' must be POST or PUT")
        secret = raw.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise ValidationError("webhook setting 'secret' must be a string")
        return cls(
            url=_parse_url(raw.get("url")),
            method=cast(Method, method.upper()),
            headers=_parse_headers(raw.get("headers")),
            secret=secret or None,
            timeout=f.timeout(default=DEFAULT_TIMEOUT),
        )

    def as_dict(self) -> dict[str, Any]:
        """The normalised settings to store; an unset secret is left out."""
        out: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "timeout": self.timeout,
        }
        if self.secret is not None:
            out["secret"] = self.secret
        return out


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Relaybox-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _json_default(value: object) -> str:
    # Template data may hold datetimes, UUIDs or Decimals; the receiver gets their text form.
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _provider_message_id(resp: OutboundResponse) -> str | None:
    parsed = calls.json_body(resp)
    ident = parsed.get("id") if isinstance(parsed, dict) else None
    if isinstance(ident, str | int) and not isinstance(ident, bool):
        return str(ident)
    return None


class WebhookProvider:
    """Delivers messages as signed JSON requests to one URL."""

    key = "webhook"
    channel = "webhook"
    supports_idempotency = True

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        client: httpx.AsyncClient,
        guard: OutboundGuard,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        # The client is shared and owned by the composition root; aclose leaves it open.
        self._client = client
        self._guard = guard
        self._clock = clock

    def build_body(self, message: RenderedMessage) -> bytes:
        """The exact JSON bytes that are sent (and signed)."""
        payload = {
            "message_id": message.message_id,
            "recipient": message.recipient,
            "template": message.template,
            "channel": "webhook",
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "data": dict(message.data),
            "profile": dict(message.profile),
        }
        if message.parts.get("payload") is not None:
            # The rendered elements as JSON ({title, body, elements}), from the renderer.
            payload["content"] = message.parts["payload"]
        return json.dumps(
            override.body(message, payload),
            ensure_ascii=False,
            separators=(",", ":"),
            default=_json_default,
        ).encode("utf-8")

    def build_headers(
        self, idempotency_key: str, body: bytes, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Configured (and ``extra``) headers plus Content-Type, Idempotency-Key, signature."""
        headers = {
            **self.settings.headers,
            **(extra or {}),
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        if self.settings.secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, int(self._clock()), body)
        return headers

    async def _exchange(
        self, body: bytes, idempotency_key: str, extra: Mapping[str, str] | None
    ) -> OutboundResponse:
        return await calls.exchange(
            self._guard,
            self._client,
            self.settings.method,
            self.settings.url,
            what=f"webhook {self.settings.url}",
            headers=self.build_headers(idempotency_key, body, extra),
            content=body,
            time_limit=self.settings.timeout,
        )

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        """POST/PUT ``message``; see the module docstring for the status mapping."""
        extra = override.headers(message, RESERVED_HEADERS)
        return await self.post(self.build_body(message), message.idempotency_key, extra)

    async def post(
        self, body: bytes, idempotency_key: str, extra: Mapping[str, str] | None = None
    ) -> DeliveryResult:
        """Send ``body`` (signed when a secret is set) through the outbound guard.

        Also used for delivery-event webhooks, whose bodies are not rendered messages.
        """
        resp = await self._exchange(body, idempotency_key, extra)
        status = resp.status_code
        if 200 <= status < 300:
            return DeliveryResult(
                provider_message_id=_provider_message_id(resp), response=calls.summary(resp)
            )
        raise calls.failure(
            f"webhook {self.settings.url} answered {status}",
            resp,
            retryable=calls.retryable_status(status),
            now=self._clock(),
        )

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever injected it."""


def event_poster(
    client: httpx.AsyncClient,
    guard: OutboundGuard,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    reveal: Callable[[str], Any] = str,
) -> Callable[[str, str, bytes, str], Awaitable[int]]:
    """Posts delivery events: ``post(url, secret, body, event_id)`` → the 2xx status.

    The same request, signature and outcome mapping as message webhooks (through the
    outbound guard); raises DeliveryError for anything but a 2xx. ``reveal`` turns the stored
    (sealed) secret into the signing secret.
    """

    async def post(url: str, secret: str, body: bytes, event_id: str) -> int:
        try:
            signing = str(reveal(secret))
        except ValidationError as exc:
            raise PermanentDeliveryError(f"webhook {url}: {exc.message}") from exc
        settings = WebhookSettings(url=url, secret=signing, timeout=timeout)
        result = await WebhookProvider(settings, client=client, guard=guard).post(body, event_id)
        status = result.response.get("status")
        return status if isinstance(status, int) else 200

    return post


def check_url(url: str) -> str:
    """Validate a webhook URL's syntax (ValidationError naming ``url``); returns it trimmed."""
    return _parse_url(url)
