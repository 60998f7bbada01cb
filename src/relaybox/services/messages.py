"""Message tracking reads: Courier's /messages/{id}, /history and /output shapes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relaybox.clock import Clock, SystemClock, to_ms
from relaybox.errors import NotFound, ValidationError
from relaybox.storage.base import Message, MessageFilter, Store
from relaybox.templates import channels

#: Statuses in which nothing has been handed to a provider yet, so a cancel can still win.
CANCELABLE = frozenset({"ENQUEUED", "DELAYED"})
PAGE_SIZE = 50


class MessageService:
    def __init__(self, *, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._clock = clock or SystemClock()

    async def list(self, workspace_id: str, params: Mapping[str, str | None]) -> dict[str, Any]:
        """GET /messages: the SDK sends list filters comma-joined (status=SENT,DELIVERED)."""
        flt = MessageFilter(
            statuses=_csv(params.get("status")),
            tags=_csv(params.get("tag")) + _csv(params.get("tags")),
            providers=_csv(params.get("provider")),
            recipient=params.get("recipient") or None,
            notification=params.get("notification") or params.get("event") or None,
            message_id=params.get("messageId") or None,
            trace_id=params.get("traceId") or None,
            enqueued_after=_enqueued_after(params.get("enqueued_after")),
        )
        page = await self._store.list_messages(
            workspace_id, flt, cursor=params.get("cursor") or None, limit=PAGE_SIZE
        )
        return {
            "paging": {"cursor": page.next_cursor, "more": page.next_cursor is not None},
            "results": [details(m) for m in page.messages],
        }

    async def cancel(self, workspace_id: str, message_id: str) -> tuple[bool, dict[str, Any]]:
        """Cancel a delayed or queued message; (canceled?, the record as it now stands).

        Canceling the message's run fences any worker holding it, so once the run is canceled
        no provider call can start; re-reading the message then tells the truth about whether
        one had already started.
        """
        found = await self._get(workspace_id, message_id)
        if found.status in CANCELABLE and found.attempt_state is None and found.run_id:
            await self._store.cancel_run(workspace_id, found.run_id, self._clock.now())
            found = await self._get(workspace_id, message_id)
        return found.status == "CANCELED", details(found)

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
                        "blocks": channels.output_blocks(
                            channel, content.get("parts") or {}, content.get("text")
                        ),
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
        "canceledAt": to_ms(message.updated_at) if message.status == "CANCELED" else None,
        "tags": list(message.tags),
        "traceId": message.trace_id,
        "channel": message.channel,
        "provider": message.provider,
    }


def _csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _enqueued_after(raw: str | None) -> float | None:
    """An ISO 8601 timestamp or epoch milliseconds."""
    if not raw:
        return None
    try:
        return float(raw) / 1000.0
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            "enqueued_after: expected an ISO 8601 timestamp or epoch milliseconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
