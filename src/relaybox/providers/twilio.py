"""Twilio SMS provider (provider key ``twilio``), speaking Twilio's Messages REST API.

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, form-encoded ``To``,
``Body`` and either ``From`` or ``MessagingServiceSid``, with HTTP Basic auth
``account_sid:auth_token``. A 201 answer carries the message ``sid``.

Settings: ``account_sid`` and ``auth_token`` (required; the token is encrypted at rest),
``from_number`` or ``messaging_service_sid`` (one is required; the service wins when both
are set, as on Twilio), ``base_url`` (default ``https://api.twilio.com``) and ``timeout``.

The recipient's number is the profile's ``phone_number``. 408, 429 and 5xx are retried; any
other refusal (e.g. 400 with code 21211, an invalid ``To``) is permanent, with Twilio's ``code`` and
``message`` recorded. Twilio documents no idempotency key for creating messages, so
``supports_idempotency`` is False: a call cut off by a crash is not blindly repeated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from relaybox.errors import PermanentDeliveryError
from relaybox.providers import calls, content, override
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard

DEFAULT_BASE_URL = "https://api.twilio.com"
_FIELDS = frozenset(
    {"account_sid", "auth_token", "from_number", "messaging_service_sid", "base_url", "timeout"}
)


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> TwilioSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field."""
        f = Fields("twilio", raw, _FIELDS)
        from_number = f.text("from_number")
        service = f.text("messaging_service_sid")
        if from_number is None and service is None:
            raise f.error("twilio settings need 'from_number' or 'messaging_service_sid'")
        return cls(
            account_sid=f.required("account_sid"),
            auth_token=f.required("auth_token"),
            from_number=from_number,
            messaging_service_sid=service,
            base_url=f.url("base_url", DEFAULT_BASE_URL),
            timeout=f.timeout(),
        )

    def as_dict(self) -> dict[str, Any]:
        out = {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": self.from_number,
            "messaging_service_sid": self.messaging_service_sid,
            "base_url": self.base_url,
            "timeout": self.timeout,
        }
        return {k: v for k, v in out.items() if v is not None}


class TwilioProvider:
    """Sends SMS through Twilio's Messages API."""

    key = "twilio"
    channel = "sms"
    supports_idempotency = False

    def __init__(
        self, settings: TwilioSettings, *, client: httpx.AsyncClient, guard: OutboundGuard
    ) -> None:
        self.settings = settings
        self._client = client
        self._guard = guard

    @property
    def url(self) -> str:
        sid = quote(self.settings.account_sid, safe="")
        return f"{self.settings.base_url}/2010-04-01/Accounts/{sid}/Messages.json"

    def form(self, message: RenderedMessage) -> dict[str, Any]:
        """The form fields Twilio receives; a send's ``override.body`` sets any field
        (``From``, ``Body``, ``MediaUrl`` as a string or a list of them, ...)."""
        to = message.to.get("phone_number") or message.profile.get("phone_number")
        if not isinstance(to, str) or not to.strip():
            raise PermanentDeliveryError("message has no recipient phone number (phone_number)")
        fields = {"To": to.strip(), "Body": content.text(message)}
        if self.settings.messaging_service_sid:
            fields["MessagingServiceSid"] = self.settings.messaging_service_sid
        else:
            assert self.settings.from_number is not None
            fields["From"] = self.settings.from_number
        return override.body(message, fields)

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        s = self.settings
        response = await calls.exchange(
            self._guard,
            self._client,
            "POST",
            self.url,
            what="twilio",
            headers={
                "Authorization": calls.basic_auth(s.account_sid, s.auth_token),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            content=urlencode(self.form(message), doseq=True).encode("ascii"),
            time_limit=s.timeout,
        )
        parsed = calls.json_body(response)
        answer = parsed if isinstance(parsed, dict) else {}
        status = response.status_code
        if 200 <= status < 300:
            sid = answer.get("sid")
            return DeliveryResult(
                provider_message_id=sid if isinstance(sid, str) else None,
                response={"status": status, "sid": sid, "twilio_status": answer.get("status")},
            )
        detail = {k: answer[k] for k in ("code", "message", "more_info") if k in answer}
        what = f"twilio answered {status}"
        if "code" in detail or "message" in detail:
            what += f": {detail.get('code', '')} {detail.get('message', '')}".rstrip()
        raise calls.failure(what, response, retryable=calls.retryable_status(status), detail=detail)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever injected it."""
