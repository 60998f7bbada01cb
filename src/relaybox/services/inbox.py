"""The user-facing inbox: list a user's in-app messages, mark them, and stream changes live.

Live updates work like the timer loop: a store hint (in-process, or NOTIFY from another
process on PostgreSQL) wakes the user's streams, and each stream re-reads the inbox and
sends what changed. Streams also re-read every ``recheck`` seconds, so a lost hint delays an
update but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from relaybox.clock import Clock, to_iso
from relaybox.errors import NotFound, ValidationError
from relaybox.storage.base import INBOX_TOPIC, InboxMessage, Store, inbox_key

PAGE_SIZE = 50
#: How many of the newest messages a live stream watches for changes.
STREAM_WINDOW = 100

#: Marks the API accepts: (read, archived) to set; None leaves that state alone.
MARKS: dict[str, tuple[bool | None, bool | None]] = {
    "read": (True, None),
    "unread": (False, None),
    "archive": (None, True),
    "unarchive": (None, False),
}


class InboxService:
    def __init__(self, *, store: Store, clock: Clock, recheck: float = 15.0) -> None:
        self._store = store
        self._clock = clock
        self._recheck = recheck
        self._streams: dict[str, set[asyncio.Event]] = {}
        self._watching = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def list(
        self, workspace_id: str, user_id: str, *, cursor: str | None, archived: str | None
    ) -> dict[str, Any]:
        page = await self._store.list_inbox(
            workspace_id,
            user_id,
            archived=_archived(archived),
            cursor=cursor or None,
            limit=PAGE_SIZE,
        )
        unread = await self._store.inbox_unread_count(workspace_id, user_id)
        return {
            "results": [present(m) for m in page.messages],
            "paging": {"cursor": page.next_cursor, "more": page.next_cursor is not None},
            "unreadCount": unread,
        }

    async def mark(
        self, workspace_id: str, user_id: str, message_id: str, action: str
    ) -> dict[str, Any]:
        if action not in MARKS:
            raise NotFound(f"Unknown inbox action {action!r}; use {', '.join(MARKS)}")
        read, archived = MARKS[action]
        updated = await self._store.update_inbox_message(
            workspace_id, user_id, message_id, read=read, archived=archived, now=self._clock.now()
        )
        if updated is None:
            raise NotFound(f"Inbox message {message_id} not found for user {user_id}")
        unread = await self._store.inbox_unread_count(workspace_id, user_id)
        return {**present(updated), "unreadCount": unread}

    async def stream(self, workspace_id: str, user_id: str) -> AsyncIterator[bytes]:
        """Server-Sent Events: ``unread`` at once, then ``message`` for each new message,
        ``message-updated`` for a read/archived change and ``unread`` when the count moves."""
        self._watch()
        key = inbox_key(workspace_id, user_id)
        woken = asyncio.Event()
        self._streams.setdefault(key, set()).add(woken)
        try:
            known = await self._window(workspace_id, user_id)
            unread = await self._store.inbox_unread_count(workspace_id, user_id)
            yield _event("unread", {"unreadCount": unread})
            while not self._closing:
                try:
                    await asyncio.wait_for(woken.wait(), timeout=self._recheck)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                woken.clear()
                if self._closing:
                    return
                current = await self._window(workspace_id, user_id)
                for message in sorted(current.values(), key=lambda m: (m.created_at, m.id)):
                    before = known.get(message.id)
                    if before is None:
                        yield _event("message", present(message))
                    elif (before.read_at, before.archived_at) != (
                        message.read_at,
                        message.archived_at,
                    ):
                        yield _event("message-updated", present(message))
                known = current
                count = await self._store.inbox_unread_count(workspace_id, user_id)
                if count != unread:
                    unread = count
                    yield _event("unread", {"unreadCount": unread})
        finally:
            waiting = self._streams.get(key)
            if waiting is not None:
                waiting.discard(woken)
                if not waiting:
                    del self._streams[key]

    def close(self) -> None:
        """End every live stream (callable from a signal handler), so a shutdown's drain of
        open connections is not held up by clients that never hang up."""
        self._closing = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for events in self._streams.values():
            for event in events:
                event.set()

    async def _window(self, workspace_id: str, user_id: str) -> dict[str, InboxMessage]:
        page = await self._store.list_inbox(
            workspace_id, user_id, archived=None, cursor=None, limit=STREAM_WINDOW
        )
        return {m.id: m for m in page.messages}

    def _watch(self) -> None:
        if self._watching:
            return
        loop = self._loop = asyncio.get_running_loop()

        def wake(key: str) -> None:
            for event in self._streams.get(key, ()):
                event.set()

        def hint(key: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                loop.call_soon_threadsafe(wake, key)

        self._store.watch(INBOX_TOPIC, hint)
        self._watching = True


def present(message: InboxMessage) -> dict[str, Any]:
    return {
        "messageId": message.id,
        "userId": message.user_id,
        "title": message.title,
        "body": message.body,
        "actions": message.actions,
        "data": message.data,
        "created": to_iso(message.created_at),
        "read": to_iso(message.read_at),
        "archived": to_iso(message.archived_at),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _archived(raw: str | None) -> bool | None:
    """``archived`` query: absent/false → unarchived only, true → archived only, all → both."""
    if raw in (None, "", "false"):
        return False
    if raw == "true":
        return True
    if raw == "all":
        return None
    raise ValidationError("archived: expected true, false or all")
