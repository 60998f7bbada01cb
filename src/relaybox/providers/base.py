"""The provider seam: one async ``send`` per configured integration.

The engine only sees this module. Concrete providers (SMTP, webhook, …) live beside it
and are built from stored configuration by ``providers.registry`` in the composition root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RenderedMessage:
    """A message ready for one provider: rendered content plus where it goes."""

    message_id: str
    #: Stable per (message, channel); providers that accept one pass it downstream so
    #: a resend after a crash can be deduplicated by the receiver.
    idempotency_key: str
    channel: str
    #: Addressing for the channel, e.g. {"email": "a@b.c"}; the full profile is in ``profile``.
    to: Mapping[str, Any]
    subject: str | None = None
    text: str = ""
    html: str | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    recipient: str | None = None
    template: str | None = None
    #: Channel-specific rendered parts (``templates.render.RenderedContent.parts``).
    parts: Mapping[str, Any] = field(default_factory=dict)
    #: The send's channel and provider ``override`` objects merged (Courier's provider
    #: overrides); providers apply ``body`` and ``headers`` through ``providers.override``.
    override: Mapping[str, Any] = field(default_factory=dict)
    #: The workspace the message belongs to, for providers that store per workspace (inbox).
    workspace_id: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    """What the provider said when it accepted the message."""

    provider_message_id: str | None = None
    response: Mapping[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    #: Provider key as used by Courier's /providers API, e.g. "smtp".
    key: str
    #: The channel this provider delivers on, e.g. "email".
    channel: str
    #: True when the provider passes ``idempotency_key`` to a receiver that deduplicates on it,
    #: so an attempt whose outcome is unknown after a crash may safely be repeated.
    supports_idempotency: bool

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        """Deliver one message.

        Raises:
            RetryableDeliveryError: transient failure; the engine retries with backoff.
            PermanentDeliveryError: the provider refused the message for good.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    # Optional (looked up with getattr, so providers without it keep working):
    #
    #     def reachable(self, profile: Mapping[str, Any]) -> bool
    #
    # whether ``profile`` gives this provider an address (FCM: ``firebaseToken``; a Slack
    # webhook or an apprise URL: always). Without it the channel's profile field decides
    # (``domain.routing.ADDRESS_FIELDS``).


class ProviderFactory(Protocol):
    def __call__(self, provider_key: str, settings: Mapping[str, Any]) -> Provider:
        """Build a provider from its stored configuration (raises ValidationError if invalid)."""
        ...
