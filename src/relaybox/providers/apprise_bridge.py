"""Apprise provider (provider key ``apprise``): a bridge to the services the apprise library
speaks (ntfy, Gotify, Telegram, Discord, Matrix, Pushover, generic ``json://`` and ``form://``
endpoints, ...).

Settings: ``urls`` (one apprise URL or a list; they carry tokens, so they are encrypted at
rest), ``channel`` (the Courier channel the provider serves, default ``push``) and
``timeout`` (seconds for the whole notification, default 30). The addresses are in the URLs,
so every recipient is reachable. Title and body come from the channel's rendered parts, else
the subject and text.

Apprise makes its own network calls, so before each send every URL's host goes through the
outbound guard's policy: a host resolving to a private, loopback or otherwise non-public
address is refused unless allow-listed. A host that does not resolve is let through: such
URLs (e.g. ``tgram://<bot token>/...``) name a token, not a server, and the plugin talks to
its service's fixed public endpoint. Redirects are switched off in every plugin (apprise
follows them by default). Apprise resolves names again when it connects; like the guard's
DNS-rebinding gap, that is accepted.

Apprise reports only success or failure with log lines; a failure whose log names an HTTP
4xx status other than 408/429 (``error=400``) is permanent, any other failure is retried.
There is no idempotency key to pass on, so ``supports_idempotency`` is False.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apprise

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers import content, override
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard, UnresolvableHost

DEFAULT_CHANNEL = "push"
DEFAULT_TIMEOUT = 30.0
#: Channels an apprise URL can sensibly stand in for.
CHANNELS = frozenset({"push", "chat", "sms", "email", "direct_message", "webhook"})
_FIELDS = frozenset({"urls", "channel", "timeout"})
_HTTP_ERROR = re.compile(r"error=(\d{3})\b")


def _plugin(url: str) -> Any:
    # Apprise logs a warning and returns None for a URL it does not understand.
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is not None:
        # A redirect could lead past the host check (as with the guard); this wins over a
        # "?redirect=yes" in the URL.
        plugin.redirects = False
    return plugin


@dataclass(frozen=True)
class AppriseSettings:
    urls: tuple[str, ...]
    channel: str = DEFAULT_CHANNEL
    timeout: float = DEFAULT_TIMEOUT
    #: The plugins ``parse`` made while validating ``urls``, so the provider need not make
    #: them again; empty when the settings were built by hand.
    plugins: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> AppriseSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field."""
        f = Fields("apprise", raw, _FIELDS)
        value = raw.get("urls")
        urls = [value] if isinstance(value, str) else value
        if (
            not isinstance(urls, list)
            or not urls
            or not all(isinstance(u, str) and u.strip() for u in urls)
        ):
            raise f.invalid("urls", "must be an apprise URL or a non-empty list of them")
        plugins = []
        for index, url in enumerate(urls):
            plugin = _plugin(url.strip())
            if plugin is None:
                raise f.invalid("urls", f"entry {index} is not a URL apprise supports")
            plugins.append(plugin)
        channel = f.text("channel") or DEFAULT_CHANNEL
        if channel not in CHANNELS:
            raise f.invalid("channel", f"must be one of {', '.join(sorted(CHANNELS))}")
        return cls(
            urls=tuple(u.strip() for u in urls),
            channel=channel,
            timeout=f.timeout(default=DEFAULT_TIMEOUT),
            plugins=tuple(plugins),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"urls": list(self.urls), "channel": self.channel, "timeout": self.timeout}


def _failure(logs: Sequence[str]) -> RetryableDeliveryError | PermanentDeliveryError:
    text = "; ".join(logs[-3:]) or "no details"
    what = f"apprise notification failed: {text}"
    codes = [int(code) for line in logs for code in _HTTP_ERROR.findall(line)]
    if codes and all(400 <= c < 500 and c not in (408, 429) for c in codes):
        return PermanentDeliveryError(what, response={"logs": list(logs[-5:])})
    return RetryableDeliveryError(what, response={"logs": list(logs[-5:])})


class AppriseProvider:
    """Delivers through one or more apprise URLs."""

    key = "apprise"
    supports_idempotency = False

    def __init__(self, settings: AppriseSettings, *, guard: OutboundGuard) -> None:
        self.settings = settings
        self.channel = settings.channel
        self._guard = guard
        self._plugins = list(settings.plugins) or [_plugin(url) for url in settings.urls]

    def reachable(self, profile: Mapping[str, Any]) -> bool:
        return True

    async def check_hosts(self) -> None:
        """Apply the outbound policy to every URL's host (see the module docstring).

        Raises:
            PermanentDeliveryError: a host resolves to a refused address.
        """
        for plugin in self._plugins:
            host = getattr(plugin, "host", None)
            if not isinstance(host, str) or not host:
                continue
            port = getattr(plugin, "port", None)
            secure = bool(getattr(plugin, "secure", False))
            try:
                await self._guard.check_host(host, int(port or (443 if secure else 80)))
            except UnresolvableHost:
                continue
            except ValidationError as exc:
                raise PermanentDeliveryError(f"apprise: {exc.message}") from exc

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        await self.check_hosts()
        # A send's override.body may set the title and body the services receive.
        texts = override.body(
            message, {"title": content.title(message), "body": content.body(message)}
        )
        title = str(texts.get("title") or "")
        body = str(texts.get("body") or "") or title
        if not body:
            raise PermanentDeliveryError("apprise: the message has no text to send")
        notifier = apprise.Apprise()
        for plugin in self._plugins:
            notifier.add(plugin)
        result = await notifier.async_notify(
            body=body,
            title=title,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=self.settings.timeout,
        )
        logs = [
            str(entry.message)
            for entry in result.logs()
            if entry.level in ("WARNING", "ERROR", "CRITICAL")
        ]
        if not result:
            raise _failure(logs)
        return DeliveryResult(response={"services": len(self._plugins), "status": "SUCCESS"})

    async def aclose(self) -> None:
        """Nothing to release: apprise opens a connection per notification."""
