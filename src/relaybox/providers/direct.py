"""Courier's direct recipients (``{"webhook": {...}}``, ``{"slack": {...}}``) as the settings
of the provider that delivers to them, so a direct send reuses the configured providers'
request building instead of repeating it.

``webhook``: Courier's ``WebhookProfile`` — ``url``, ``method``, ``headers`` and
``authentication`` (``basic`` / ``bearer`` become the ``Authorization`` header, replacing one
given in ``headers``). The request is the webhook provider's (JSON body, ``Idempotency-Key``),
unsigned since there is no shared secret.

``slack``: ``access_token`` is the bot token of a ``chat.postMessage`` send to the Slack Web
API at ``slack_api_base``; the target (``channel``, ``user_id`` or ``email``) travels as the
message's ``slack`` profile (``domain.send.supplied_profile``), as for a profile recipient.

``pagerduty``: ``routing_key``, ``event_action``, ``severity`` and ``source`` of an Events API
v2 event sent to ``pagerduty_api_base`` (see ``providers.pagerduty``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relaybox.errors import ValidationError
from relaybox.providers.calls import basic_auth


def provider_settings(
    kind: str, recipient: Mapping[str, Any], *, slack_api_base: str, pagerduty_api_base: str
) -> tuple[str, dict[str, Any]]:
    """(provider key, settings) for a direct recipient whose secrets are already opened.

    Raises:
        ValidationError: an unknown kind (the request was validated when accepted).
    """
    if kind == "webhook":
        return "webhook", _webhook(recipient)
    if kind == "slack":
        return "slack", {"token": recipient.get("access_token"), "base_url": slack_api_base}
    if kind == "pagerduty":
        return "pagerduty", {**recipient, "base_url": pagerduty_api_base}
    raise ValidationError(f"no provider delivers {kind!r} recipients")


def _webhook(recipient: Mapping[str, Any]) -> dict[str, Any]:
    headers = dict(recipient.get("headers") or {})
    auth = recipient.get("authentication") or {}
    mode = auth.get("mode") or "none"
    if mode != "none":
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    if mode == "bearer":
        headers["Authorization"] = f"Bearer {auth.get('token')}"
    elif mode == "basic":
        headers["Authorization"] = basic_auth(str(auth.get("username")), str(auth.get("password")))
    return {
        "url": recipient.get("url"),
        "method": recipient.get("method") or "POST",
        "headers": headers,
    }
