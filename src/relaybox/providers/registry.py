"""Builds concrete providers from stored configuration; the only place that knows them all.

Every function here takes Courier's key for a provider as an alias of Relaybox's
(``firebase-fcm`` for ``fcm``, see ``domain.routing.COURIER_PROVIDER_KEYS``).

The /providers API uses ``validate_settings`` at write time (so bad configuration is a 400
naming the field) and ``mask_settings`` when reading back, through a ``Catalog`` that also
seals secret fields before they are stored (``providers.secrets``). The composition root binds
``Catalog.build`` (which opens the sealed fields, then calls ``build_provider``) to the shared
HTTP client and outbound guard with ``functools.partial`` to obtain a ``ProviderFactory``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from relaybox.domain.routing import provider_key as _ours
from relaybox.domain.send import DIRECT_CHANNELS
from relaybox.errors import PermanentDeliveryError, ValidationError
from relaybox.providers import catalog, direct, inbox
from relaybox.providers.apn import ApnProvider, ApnSettings
from relaybox.providers.apprise_bridge import AppriseProvider, AppriseSettings
from relaybox.providers.base import DeliveryResult, Provider, RenderedMessage
from relaybox.providers.fcm import FcmProvider, FcmSettings
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.pagerduty import PagerDutyProvider, PagerDutySettings
from relaybox.providers.secrets import SecretBox
from relaybox.providers.slack import SlackProvider, SlackSettings
from relaybox.providers.smtp import SmtpProvider, SmtpSettings
from relaybox.providers.twilio import TwilioProvider, TwilioSettings
from relaybox.providers.webhook import WebhookProvider, WebhookSettings

_CHANNELS: Mapping[str, str] = {
    SmtpProvider.key: SmtpProvider.channel,
    WebhookProvider.key: WebhookProvider.channel,
    TwilioProvider.key: TwilioProvider.channel,
    SlackProvider.key: SlackProvider.channel,
    FcmProvider.key: FcmProvider.channel,
    ApnProvider.key: ApnProvider.channel,
    # The default; an apprise configuration names its own channel in its settings.
    AppriseProvider.key: "push",
    inbox.InboxProvider.key: inbox.InboxProvider.channel,
}
KNOWN_PROVIDERS = tuple(sorted(_CHANNELS))

#: Settings fields that hold credentials: encrypted at rest, never echoed back by the API.
SECRET_FIELDS: Mapping[str, frozenset[str]] = {
    "smtp": frozenset({"password"}),
    "webhook": frozenset({"secret"}),
    "twilio": frozenset({"auth_token"}),
    "slack": frozenset({"webhook_url", "token"}),
    "fcm": frozenset({"service_account"}),
    "apn": frozenset({"private_key"}),
    "apprise": frozenset({"urls"}),
    "inbox": frozenset(),
}
MASK = "********"

_Make = Callable[[Any, httpx.AsyncClient, OutboundGuard], Provider]

#: Each provider with settings: how its settings are parsed (the result has ``as_dict``),
#: and how the provider is made from them, the shared client and the outbound guard.
_PROVIDERS: Mapping[str, tuple[Callable[[Mapping[str, Any]], Any], _Make]] = {
    SmtpProvider.key: (SmtpSettings.parse, lambda s, client, guard: SmtpProvider(s)),
    WebhookProvider.key: (
        WebhookSettings.parse,
        lambda s, client, guard: WebhookProvider(s, client=client, guard=guard),
    ),
    TwilioProvider.key: (
        TwilioSettings.parse,
        lambda s, client, guard: TwilioProvider(s, client=client, guard=guard),
    ),
    SlackProvider.key: (
        SlackSettings.parse,
        lambda s, client, guard: SlackProvider(s, client=client, guard=guard),
    ),
    FcmProvider.key: (
        FcmSettings.parse,
        lambda s, client, guard: FcmProvider(s, client=client, guard=guard),
    ),
    ApnProvider.key: (ApnSettings.parse, lambda s, client, guard: ApnProvider(s, guard=guard)),
    AppriseProvider.key: (
        AppriseSettings.parse,
        lambda s, client, guard: AppriseProvider(s, guard=guard),
    ),
}


def _unknown(provider_key: str) -> ValidationError:
    return ValidationError(
        f"unknown provider {provider_key!r}; known providers: {', '.join(KNOWN_PROVIDERS)}"
    )


def _check_mapping(settings: Any) -> Mapping[str, Any]:
    if not isinstance(settings, Mapping):
        raise ValidationError("provider settings must be a JSON object")
    return settings


def channel_of(provider_key: str) -> str:
    """The channel a provider delivers on; ValidationError for an unknown key."""
    try:
        return _CHANNELS[_ours(provider_key)]
    except KeyError:
        raise _unknown(provider_key) from None


def validate_settings(provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check required fields and types and return the normalised settings (defaults filled).

    Raises:
        ValidationError: unknown provider, or a message naming the offending field.
    """
    settings = _check_mapping(settings)
    provider_key = _ours(provider_key)
    if provider_key in _PROVIDERS:
        parse, _make = _PROVIDERS[provider_key]
        return dict(parse(settings).as_dict())
    if provider_key == inbox.InboxProvider.key:
        return inbox.parse_settings(settings)
    raise _unknown(provider_key)


def mask_settings(provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``settings`` safe to return from the API: secret values become ``MASK``.

    Settings of an unknown provider (e.g. one stored by a newer version) are masked entirely,
    since which of their fields are secret is not known.
    """
    secret = SECRET_FIELDS.get(_ours(provider_key))
    masked: dict[str, Any] = {}
    for name, value in settings.items():
        is_secret = secret is None or name in secret
        masked[name] = MASK if is_secret and value not in (None, "") else value
    return masked


def build_provider(
    provider_key: str,
    settings: Mapping[str, Any],
    *,
    http_client: httpx.AsyncClient,
    guard: OutboundGuard,
    inbox_store: inbox.InboxStore | None = None,
) -> Provider:
    """Build the provider for ``provider_key`` from its stored settings.

    Raises:
        ValidationError: unknown provider or invalid settings.
    """
    settings = _check_mapping(settings)
    provider_key = _ours(provider_key)
    if provider_key in _PROVIDERS:
        parse, make = _PROVIDERS[provider_key]
        return make(parse(settings), http_client, guard)
    if provider_key == inbox.InboxProvider.key:
        inbox.parse_settings(settings)
        if inbox_store is None:
            raise ValidationError("the inbox provider needs the store (inbox_store)")
        return inbox.InboxProvider(inbox_store)
    raise _unknown(provider_key)


class Catalog:
    """The provider catalog the /providers service and the provider pool use, with secrets
    sealed by ``box`` (see ``providers.secrets``) on the way into storage and opened on the
    way out to a provider."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def validate_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        return validate_settings(provider_key, settings)

    def mask_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        return mask_settings(provider_key, settings)

    def entries(
        self, *, channel: str | None = None, keys: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Courier's provider catalog (``GET /providers/catalog``), filtered."""
        return catalog.entries(channel=channel, keys=keys, name=name)

    def secret_fields(self, provider_key: str) -> frozenset[str]:
        return SECRET_FIELDS.get(_ours(provider_key), frozenset())

    def seal_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` with every secret field encrypted, ready to store."""
        secret = self.secret_fields(provider_key)
        return {k: self._box.seal(v) if k in secret else v for k, v in settings.items()}

    def open_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Stored ``settings`` with sealed values decrypted; plaintext (older rows) as is.

        Raises:
            UndecryptableSecret: a value was sealed with a key this server lacks.
        """
        return {k: self._box.open(v) for k, v in settings.items()}

    def build(
        self,
        provider_key: str,
        settings: Mapping[str, Any],
        *,
        http_client: httpx.AsyncClient,
        guard: OutboundGuard,
        inbox_store: inbox.InboxStore | None = None,
    ) -> Provider:
        """``build_provider`` over the opened settings.

        A configuration that cannot be built (its secret sealed with a lost key, or settings
        stored by another version) becomes a provider that fails every send permanently with
        the reason, so it shows in the message history and the workspace's other providers
        keep working.
        """
        try:
            opened = self.open_settings(provider_key, _check_mapping(settings))
            return build_provider(
                provider_key, opened, http_client=http_client, guard=guard, inbox_store=inbox_store
            )
        except ValidationError as exc:
            key = _ours(provider_key)
            channel = settings.get("channel") if key == AppriseProvider.key else None
            return Unavailable(
                key=key,
                channel=str(channel or _CHANNELS.get(key, "")),
                reason=exc.message,
            )

    def build_direct(
        self,
        kind: str,
        recipient: Mapping[str, Any],
        *,
        http_client: httpx.AsyncClient,
        guard: OutboundGuard,
        slack_api_base: str,
        pagerduty_api_base: str,
    ) -> Provider:
        """The provider for a direct recipient (``{"webhook": {...}}``), built from its sealed
        settings (see ``domain.send.seal_direct``) rather than from stored configuration; one
        that cannot be built fails its send permanently with the reason, like ``build``."""
        try:
            opened = {k: self._box.open(v) for k, v in _check_mapping(recipient).items()}
            key, settings = direct.provider_settings(
                kind,
                opened,
                slack_api_base=slack_api_base,
                pagerduty_api_base=pagerduty_api_base,
            )
            if key == PagerDutyProvider.key:
                # Direct recipients only: not a provider a workspace configures.
                parsed = PagerDutySettings.parse(settings)
                return PagerDutyProvider(parsed, client=http_client, guard=guard)
            return build_provider(key, settings, http_client=http_client, guard=guard)
        except ValidationError as exc:
            channel = DIRECT_CHANNELS.get(kind, "")
            return Unavailable(key=kind, channel=channel, reason=exc.message)


class Unavailable:
    """Stands in for a provider whose stored configuration cannot be used."""

    supports_idempotency = False

    def __init__(self, *, key: str, channel: str, reason: str) -> None:
        self.key = key
        self.channel = channel
        self.reason = reason

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        raise PermanentDeliveryError(f"{self.key} provider is misconfigured: {self.reason}")

    async def aclose(self) -> None:
        """Nothing to release."""
