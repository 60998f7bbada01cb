"""Which rendered text a provider sends: the channel's ``parts`` when the renderer filled
them, else the generic subject and text (push title = subject, body = text)."""

from __future__ import annotations

from typing import Any

from relaybox.providers.base import RenderedMessage


def _part(message: RenderedMessage, *names: str) -> str | None:
    for name in names:
        value = message.parts.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def title(message: RenderedMessage) -> str:
    """A push notification's title."""
    return _part(message, "title") or message.subject or ""


def body(message: RenderedMessage) -> str:
    """A push notification's body."""
    return _part(message, "body", "text") or message.text or ""


def text(message: RenderedMessage) -> str:
    """An SMS or chat message's text."""
    return _part(message, "text", "body") or message.text or ""


def blocks(message: RenderedMessage) -> list[Any] | None:
    """Slack Block Kit blocks, when the renderer made them."""
    value = message.parts.get("blocks")
    return list(value) if isinstance(value, list) and value else None


def data(message: RenderedMessage) -> dict[str, Any]:
    """The data payload for push: the renderer's, else the message's template data."""
    value = message.parts.get("data")
    return dict(value) if isinstance(value, dict) else dict(message.data)
