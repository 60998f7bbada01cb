"""Message tracking reads: Courier's /messages/{id}, /history and /output shapes."""

from __future__ import annotations

from typing import Any

from relaybox.clock import to_ms
from relaybox.errors import NotFound
from relaybox.storage.base import Message, Store


class MessageService:
    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def retrieve(self, workspace_id: str, message_id: str) -> dict[str, Any]:
        message = await self._get(workspace_id, message_id)
        return {**details(message), "providers": message.providers}

    async def history(self, workspace_id: str, message_id: str, kind: str | None) -> dict[str, Any]:
        await self._get(workspace_id, message_id)
        events = await self._store.message_events(workspace_id, message_id)
        results = [
            {"ts": to_ms(e.ts), "type": e.type, **e.detail}
            for e in events
            if kind is None or e.type == kind
        ]
        return {"results": results}

    async def output(self, workspace_id: str, message_id: str) -> dict[str, Any]:
        message = await self._get(workspace_id, message_id)
        results = []
        for channel, content in message.content.items():
            results.append(
                {
                    "channel": channel,
                    "channel_id": content.get("channel_id") or channel,
                    "content": {
                        "title": content.get("subject"),
                        "subject": content.get("subject"),
                        "body": content.get("text"),
                        "text": content.get("text"),
                        "html": content.get("html"),
                        "blocks": [],
                    },
                }
            )
        return {"results": results}

    async def _get(self, workspace_id: str, message_id: str) -> Message:
        found = await self._store.get_message(workspace_id, message_id)
        if found is None:
            raise NotFound(f"Message {message_id} not found")
        return found


def details(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "status": message.status,
        "enqueued": to_ms(message.enqueued_at),
        "sent": to_ms(message.sent_at),
        "delivered": to_ms(message.delivered_at),
        "opened": None,
        "clicked": None,
        "recipient": message.recipient or "",
        "event": message.event or "",
        "notification": message.notification or "",
        "error": message.error,
        "reason": message.reason,
        "runId": message.run_id,
        "channel": message.channel,
        "provider": message.provider,
    }
