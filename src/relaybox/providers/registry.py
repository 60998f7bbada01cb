"""Builds concrete providers from stored configuration; the only place that knows them all.

The /providers API uses ``validate_settings`` at write time (so bad configuration is a 400
naming the field) and ``mask_settings`` when reading back. The composition root binds
``build_provider`` to the shared HTTP client and outbound guard, e.g. with
``functools.partial``, to obtain a ``ProviderFactory``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from relaybox.errors import ValidationError
from relaybox.providers import inbox
from relaybox.providers.base import Provider
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.smtp import SmtpProvider, SmtpSettings
from relaybox.providers.webhook import WebhookProvider, WebhookSettings

_CHANNELS: Mapping[str, str] = {
    SmtpProvider.key: SmtpProvider.channel,
    WebhookProvider.key: WebhookProvider.channel,
    inbox.InboxProvider.key: inbox.InboxProvider.channel,
}
KNOWN_PROVIDERS = tuple(sorted(_CHANNELS))

#: Settings fields that hold credentials; never echoed back by the API.
SECRET_FIELDS: Mapping[str, frozenset[str]] = {
    "smtp": frozenset({"password"}),
    "webhook": frozenset({"secret"}),
}
MASK = "********"


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
        return _CHANNELS[provider_key]
    except KeyError:
        raise _unknown(provider_key) from None


def validate_settings(provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check required fields and types and return the normalised settings (defaults filled).

    Raises:
        ValidationError: unknown provider, or a message naming the offending field.
    """
    settings = _check_mapping(settings)
    if provider_key == SmtpProvider.key:
        return SmtpSettings.parse(settings).as_dict()
    if provider_key == WebhookProvider.key:
        return WebhookSettings.parse(settings).as_dict()
    if provider_key == inbox.InboxProvider.key:
        return inbox.parse_settings(settings)
    raise _unknown(provider_key)


def mask_settings(provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``settings`` safe to return from the API: secret values become ``MASK``.

    Settings of an unknown provider (e.g. one stored by a newer version) are masked entirely,
    since which of their fields are secret is not known.
    """
    secret = SECRET_FIELDS.get(provider_key)
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
    if provider_key == SmtpProvider.key:
        return SmtpProvider(SmtpSettings.parse(settings))
    if provider_key == WebhookProvider.key:
        return WebhookProvider(WebhookSettings.parse(settings), client=http_client, guard=guard)
    if provider_key == inbox.InboxProvider.key and inbox_store is not None:
        inbox.parse_settings(settings)
        return inbox.InboxProvider(inbox_store)
    raise _unknown(provider_key)
