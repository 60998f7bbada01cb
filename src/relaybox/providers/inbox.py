"""Inbox provider (provider key ``inbox``, channel ``inbox``): in-app messages (Courier Inbox).

Delivering stores the message for the recipient user in the workspace's inbox, where the
user-facing API lists it, marks it read/archived and streams changes live. No settings.

Content comes from the channel's rendered ``parts`` (``{title, body, actions: [{content,
href}]}``), falling back to the rendered subject and text. Storing is idempotent per message
id, so a send repeated after a crash stores nothing twice (``supports_idempotency``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from relaybox.errors import PermanentDeliveryError, ValidationError
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.storage.base import InboxMessage


class InboxStore(Protocol):
    """The store verbs the provider uses (``storage.base.Store`` has them)."""

    async def put_inbox_message(self, message: InboxMessage) -> bool: ...


def parse_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    if raw:
        raise ValidationError(f"the inbox provider takes no settings; got {', '.join(sorted(raw))}")
    return {}


def _actions(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    return [
        {"content": str(a.get("content") or ""), "href": str(a.get("href") or "")}
        for a in raw
        if isinstance(a, Mapping)
    ]


class InboxProvider:
    key = "inbox"
    channel = "inbox"
    supports_idempotency = True

    def __init__(self, store: InboxStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        if not message.recipient:
            raise PermanentDeliveryError("inbox: the message has no recipient user_id")
        workspace_id = message.workspace_id
        if not workspace_id:
            # Without it the message would be stored where no user's inbox lists it.
            raise PermanentDeliveryError(f"inbox: message {message.message_id} has no workspace")
        parts = message.parts
        now = self._clock()
        await self._store.put_inbox_message(
            InboxMessage(
                workspace_id=workspace_id,
                id=message.message_id,
                user_id=message.recipient,
                created_at=now,
                updated_at=now,
                title=str(parts.get("title") or message.subject or "") or None,
                body=str(parts.get("body") or message.text or "") or None,
                actions=_actions(parts.get("actions")),
                data=dict(message.data),
            )
        )
        return DeliveryResult(
            provider_message_id=message.message_id,
            response={"inbox": "stored", "user_id": message.recipient},
        )

    async def aclose(self) -> None:
        """Nothing to release."""
