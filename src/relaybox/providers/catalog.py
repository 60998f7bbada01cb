"""The provider types Relaybox speaks, as Courier's ``GET /providers/catalog`` describes them:
display name, description, channel and each setting's ``type`` and ``required`` (``values``
for enums). Kept beside the providers so a new setting is described where it is parsed."""

from __future__ import annotations

from typing import Any

from relaybox.domain.routing import provider_key

STRING, NUMBER, BOOLEAN, OBJECT, ARRAY = "string", "number", "boolean", "object", "array"


def _field(kind: str, required: bool = False, values: tuple[str, ...] = ()) -> dict[str, Any]:
    described: dict[str, Any] = {"type": "enum" if values else kind, "required": required}
    if values:
        described["values"] = list(values)
    return described


ENTRIES: tuple[dict[str, Any], ...] = (
    {
        "provider": "apn",
        "name": "Apple Push Notification service",
        "description": "Push to Apple devices over HTTP/2 with token (.p8) authentication.",
        "channel": "push",
        "settings": {
            "key_id": _field(STRING, True),
            "team_id": _field(STRING, True),
            "bundle_id": _field(STRING, True),
            "private_key": _field(STRING, True),
            "base_url": _field(STRING),
            "priority": _field(NUMBER, values=("5", "10")),
            "ca_cert": _field(STRING),
            "timeout": _field(NUMBER),
        },
    },
    {
        "provider": "apprise",
        "name": "Apprise",
        "description": "Any of the services the apprise library speaks, configured by URL.",
        "channel": "push",
        "settings": {
            "urls": _field(ARRAY, True),
            "channel": _field(
                STRING, values=("push", "chat", "sms", "email", "direct_message", "webhook")
            ),
            "timeout": _field(NUMBER),
        },
    },
    {
        "provider": "fcm",
        "name": "Firebase Cloud Messaging",
        "description": "Push to Android, iOS and web apps through the FCM HTTP v1 API.",
        "channel": "push",
        "settings": {
            "service_account": _field(OBJECT, True),
            "project_id": _field(STRING),
            "token_uri": _field(STRING),
            "base_url": _field(STRING),
            "timeout": _field(NUMBER),
        },
    },
    {
        "provider": "inbox",
        "name": "Inbox",
        "description": "In-app messages stored per user, read over the inbox API.",
        "channel": "inbox",
        "settings": {},
    },
    {
        "provider": "slack",
        "name": "Slack",
        "description": "Chat messages through an incoming webhook or a bot token.",
        "channel": "chat",
        "settings": {
            "webhook_url": _field(STRING),
            "token": _field(STRING),
            "channel": _field(STRING),
            "base_url": _field(STRING),
            "timeout": _field(NUMBER),
        },
    },
    {
        "provider": "smtp",
        "name": "SMTP",
        "description": "Email through any SMTP server, in plain text, STARTTLS or TLS.",
        "channel": "email",
        "settings": {
            "host": _field(STRING, True),
            "port": _field(NUMBER),
            "from_address": _field(STRING, True),
            "username": _field(STRING),
            "password": _field(STRING),
            "security": _field(STRING, values=("none", "starttls", "tls")),
            "timeout": _field(NUMBER),
            "tls_verify": _field(BOOLEAN),
        },
    },
    {
        "provider": "twilio",
        "name": "Twilio",
        "description": "SMS through Twilio's Messages API.",
        "channel": "sms",
        "settings": {
            "account_sid": _field(STRING, True),
            "auth_token": _field(STRING, True),
            "from_number": _field(STRING),
            "messaging_service_sid": _field(STRING),
            "base_url": _field(STRING),
            "timeout": _field(NUMBER),
        },
    },
    {
        "provider": "webhook",
        "name": "Webhook",
        "description": "Each message as signed JSON to a URL of yours.",
        "channel": "webhook",
        "settings": {
            "url": _field(STRING, True),
            "method": _field(STRING, values=("POST", "PUT")),
            "headers": _field(OBJECT),
            "secret": _field(STRING),
            "timeout": _field(NUMBER),
        },
    },
)


def entries(
    *, channel: str | None = None, keys: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    """The catalog filtered as Courier's query parameters describe (all optional)."""
    # Courier's keys ("firebase-fcm") find the provider Relaybox implements under its own.
    wanted = {provider_key(k.strip()) for k in (keys or "").split(",") if k.strip()}
    found = []
    for entry in ENTRIES:
        if channel and entry["channel"] != channel.strip().lower():
            continue
        if wanted and entry["provider"] not in wanted:
            continue
        if name and name.strip().lower() not in entry["name"].lower():
            continue
        found.append(entry)
    return found
