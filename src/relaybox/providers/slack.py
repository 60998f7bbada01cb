"""Slack chat provider (provider key ``slack``): an incoming webhook or a bot token.

Two modes, chosen by the settings (exactly one of these, both encrypted at rest):

``webhook_url``: an incoming webhook; ``POST`` JSON ``{"text", "blocks"}`` to it. The channel
    is fixed by the webhook. Slack answers ``200 ok`` or an error status with a short text
    (``invalid_payload``, ``channel_not_found``, ...).
``token``: a bot token (``xoxb-...``); ``POST {base_url}/chat.postMessage`` with
    ``Authorization: Bearer <token>`` and JSON ``{"channel", "text", "blocks"}``. Slack answers
    ``200`` with ``{"ok": true, "ts"}``, or ``200`` with ``{"ok": false, "error"}``, which is
    permanent except ``ratelimited``. A recipient known only by ``email`` is first looked up
    with ``users.lookupByEmail``; posting to a user id opens the bot's direct message.

Where a message goes, first match wins: the recipient profile's ``slack`` object (Courier's
``{"access_token", "channel" | "user_id" | "email"}``; its ``access_token`` replaces the bot
token), else the settings' ``channel``. ``base_url`` defaults to ``https://slack.com/api``.
429 (honouring ``Retry-After``) and 5xx are retried. Slack has no idempotency key for
posting, so ``supports_idempotency`` is False.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from relaybox.errors import PermanentDeliveryError, ValidationError
from relaybox.providers import calls, content, override
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard, OutboundResponse

DEFAULT_BASE_URL = "https://slack.com/api"
_FIELDS = frozenset({"webhook_url", "token", "channel", "base_url", "timeout"})


@dataclass(frozen=True)
class SlackSettings:
    webhook_url: str | None = None
    token: str | None = None
    channel: str | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SlackSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field."""
        f = Fields("slack", raw, _FIELDS)
        webhook_url = f.url("webhook_url") if f.text("webhook_url") else None
        token = f.text("token")
        if (webhook_url is None) == (token is None):
            raise ValidationError("slack settings need exactly one of 'webhook_url' and 'token'")
        return cls(
            webhook_url=webhook_url,
            token=token,
            channel=f.text("channel"),
            base_url=f.url("base_url", DEFAULT_BASE_URL),
            timeout=f.timeout(),
        )

    def as_dict(self) -> dict[str, Any]:
        out = {
            "webhook_url": self.webhook_url,
            "token": self.token,
            "channel": self.channel,
            "base_url": self.base_url,
            "timeout": self.timeout,
        }
        return {k: v for k, v in out.items() if v is not None}


def _slack_profile(message: RenderedMessage) -> Mapping[str, Any]:
    found = message.to.get("slack") or message.profile.get("slack")
    return found if isinstance(found, Mapping) else {}


class SlackProvider:
    """Posts chat messages to Slack."""

    key = "slack"
    channel = "chat"
    supports_idempotency = False

    def __init__(
        self, settings: SlackSettings, *, client: httpx.AsyncClient, guard: OutboundGuard
    ) -> None:
        self.settings = settings
        self._client = client
        self._guard = guard

    def reachable(self, profile: Mapping[str, Any]) -> bool:
        """Whether this provider knows where ``profile``'s messages go."""
        if self.settings.webhook_url or self.settings.channel:
            return True
        slack = profile.get("slack")
        return isinstance(slack, Mapping) and any(
            slack.get(k) for k in ("channel", "user_id", "email")
        )

    def payload(self, message: RenderedMessage) -> dict[str, Any]:
        """``text`` (always: it is the notification fallback) and ``blocks`` when rendered,
        with a send's ``override.body`` merged over them (``unfurl_links``, ``username``...)."""
        body: dict[str, Any] = {"text": content.text(message)}
        blocks = content.blocks(message)
        if blocks is not None:
            body["blocks"] = blocks
        return override.body(message, body)

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        if self.settings.webhook_url is not None:
            return await self._webhook(self.settings.webhook_url, message)
        return await self._post_message(message)

    async def _request(
        self, method: str, url: str, what: str, headers: Mapping[str, str], body: bytes = b""
    ) -> OutboundResponse:
        return await calls.exchange(
            self._guard,
            self._client,
            method,
            url,
            what=what,
            headers=headers,
            content=body,
            time_limit=self.settings.timeout,
        )

    async def _webhook(self, url: str, message: RenderedMessage) -> DeliveryResult:
        body = json.dumps(self.payload(message), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        response = await self._request("POST", url, "slack webhook", headers, body)
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(response=calls.summary(response))
        error = response.body.decode("utf-8", errors="replace").strip()[:200]
        raise calls.failure(
            f"slack webhook answered {status}: {error}",
            response,
            retryable=calls.retryable_status(status),
            detail={"error": error},
        )

    def _target(self, message: RenderedMessage) -> tuple[str | None, str | None, str | None]:
        """(channel or user id, email to look up, token) for a bot-token send."""
        slack = _slack_profile(message)
        token = slack.get("access_token") or self.settings.token
        for name in ("channel", "user_id"):
            if isinstance(slack.get(name), str) and slack[name]:
                return slack[name], None, token
        if isinstance(slack.get("email"), str) and slack["email"]:
            return None, slack["email"], token
        return self.settings.channel, None, token

    async def _post_message(self, message: RenderedMessage) -> DeliveryResult:
        channel, email, token = self._target(message)
        if not token:
            raise PermanentDeliveryError("slack: no bot token (settings 'token' or access_token)")
        if channel is None and email is not None:
            channel = await self._lookup(email, token)
        if not channel:
            raise PermanentDeliveryError(
                "slack: no channel: set the profile's slack.channel, user_id or email, "
                "or the provider's 'channel' setting"
            )
        body = json.dumps({"channel": channel, **self.payload(message)}, ensure_ascii=False)
        answer = await self._web_api(
            "POST",
            "chat.postMessage",
            token,
            body.encode("utf-8"),
        )
        ts = answer.get("ts")
        return DeliveryResult(
            provider_message_id=ts if isinstance(ts, str) else None,
            response={"ok": True, "channel": answer.get("channel"), "ts": ts},
        )

    async def _lookup(self, email: str, token: str) -> str:
        answer = await self._web_api(
            "GET", f"users.lookupByEmail?email={quote(email, safe='')}", token
        )
        user = answer.get("user")
        ident = user.get("id") if isinstance(user, Mapping) else None
        if not isinstance(ident, str) or not ident:
            raise PermanentDeliveryError("slack users.lookupByEmail returned no user id")
        return ident

    async def _web_api(
        self, method: str, call: str, token: str, body: bytes = b""
    ) -> dict[str, Any]:
        """One Web API call; its JSON answer when ``ok`` is true, else the delivery error."""
        headers = {"Authorization": f"Bearer {token}"}
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        name = call.split("?", 1)[0]
        url = f"{self.settings.base_url}/{call}"
        response = await self._request(method, url, f"slack {name}", headers, body)
        status = response.status_code
        parsed = calls.json_body(response)
        answer: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        if 200 <= status < 300 and answer.get("ok") is True:
            return answer
        error = str(answer.get("error") or f"HTTP {status}")
        what = f"slack {name} failed: {error}"
        if error == "ratelimited" or calls.retryable_status(status):
            raise calls.failure(what, response, retryable=True, detail={"error": error})
        if not 200 <= status < 300:
            raise calls.failure(what, response, retryable=False, detail={"error": error})
        raise PermanentDeliveryError(what, response={"ok": False, "error": error})

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever injected it."""
