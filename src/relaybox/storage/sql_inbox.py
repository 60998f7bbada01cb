"""Store verbs for the in-app inbox, shared by every SQL dialect.

A mixin of ``SqlStore``. Every change to a user's inbox is signalled on ``INBOX_TOPIC``
once committed (NOTIFY on a shared database), so live streams held by any process look again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from relaybox.storage import rows
from relaybox.storage.base import (
    INBOX_TOPIC,
    InboxMessage,
    InboxPage,
    MessageEvent,
    inbox_key,
)
from relaybox.storage.dialect import scalar
from relaybox.storage.sql_verbs import SqlStoreParts
from relaybox.storage.writer import Connection

INBOX_COLUMNS = (
    "workspace_id, id, user_id, created_at, updated_at, title, body, actions, data, "
    "read_at, archived_at"
)


def _inbox(row: Sequence[Any]) -> InboxMessage:
    ws, id_, user, created, updated, title, body, actions, data, read, archived = row
    return InboxMessage(
        workspace_id=ws,
        id=id_,
        user_id=user,
        created_at=float(created),
        updated_at=float(updated),
        title=title,
        body=body,
        actions=list(rows.loads(actions) or []),
        data=dict(rows.loads(data) or {}),
        read_at=None if read is None else float(read),
        archived_at=None if archived is None else float(archived),
    )


class InboxVerbs(SqlStoreParts):
    """Needs ``_store_events`` as well from the store it is mixed into."""

    def _store_events(self, c: Connection, events: Sequence[MessageEvent]) -> None:
        raise NotImplementedError

    def _inbox_changed(self, c: Connection, workspace_id: str, user_id: str) -> None:
        self._hints.notify(c, INBOX_TOPIC, inbox_key(workspace_id, user_id))

    async def message_workspace(self, message_id: str) -> str | None:
        sql = self.q("SELECT workspace_id FROM messages WHERE id = ?")
        found = await self._read(lambda c: scalar(c.execute(sql, (message_id,)).fetchone()))
        return None if found is None else str(found)

    async def put_inbox_message(self, message: InboxMessage) -> bool:
        sql = self.q(
            f"INSERT INTO inbox_messages ({INBOX_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id, id) DO NOTHING"
        )
        args = (
            message.workspace_id,
            message.id,
            message.user_id,
            message.created_at,
            message.updated_at,
            message.title,
            message.body,
            rows.dumps(message.actions),
            rows.dumps(message.data),
            message.read_at,
            message.archived_at,
        )

        def write(c: Connection) -> bool:
            if c.execute(sql, args).rowcount != 1:
                return False
            self._inbox_changed(c, message.workspace_id, message.user_id)
            return True

        created = bool(await self._writer.submit(write))
        if created:
            self._hints.fire(INBOX_TOPIC, inbox_key(message.workspace_id, message.user_id))
        return created

    async def list_inbox(
        self,
        workspace_id: str,
        user_id: str,
        *,
        archived: bool | None,
        cursor: str | None,
        limit: int,
    ) -> InboxPage:
        where = ["workspace_id = ?", "user_id = ?"]
        if archived is not None:
            where.append("archived_at IS NOT NULL" if archived else "archived_at IS NULL")
        page, nxt = await self._newest_first(
            f"SELECT {INBOX_COLUMNS} FROM inbox_messages",
            "created_at",
            where,
            [workspace_id, user_id],
            cursor,
            limit,
            _inbox,
            lambda m: (m.created_at, m.id),
        )
        return InboxPage(messages=page, next_cursor=nxt)

    async def inbox_unread_count(self, workspace_id: str, user_id: str) -> int:
        sql = self.q(
            "SELECT COUNT(*) FROM inbox_messages WHERE workspace_id = ? AND user_id = ? "
            "AND read_at IS NULL AND archived_at IS NULL"
        )
        return int(
            await self._read(lambda c: scalar(c.execute(sql, (workspace_id, user_id)).fetchone()))
        )

    async def update_inbox_message(
        self,
        workspace_id: str,
        user_id: str,
        message_id: str,
        *,
        read: bool | None,
        archived: bool | None,
        now: float,
    ) -> InboxMessage | None:
        select = self.q(
            f"SELECT {INBOX_COLUMNS} FROM inbox_messages "
            "WHERE workspace_id = ? AND user_id = ? AND id = ?"
        )
        update = self.q(
            "UPDATE inbox_messages SET read_at = ?, archived_at = ?, updated_at = ? "
            "WHERE workspace_id = ? AND id = ?"
        )
        # Reading an in-app message is opening it (Courier's OPENED), once.
        opened = self.q(
            "UPDATE messages SET status = 'OPENED', updated_at = ? "
            "WHERE workspace_id = ? AND id = ? AND status IN ('SENT', 'DELIVERED')"
        )

        def write(c: Connection) -> tuple[InboxMessage | None, bool]:
            row = c.execute(select, (workspace_id, user_id, message_id)).fetchone()
            if row is None:
                return None, False
            found = _inbox(row)
            read_at = found.read_at if read is None else _mark(found.read_at, read, now)
            archived_at = (
                found.archived_at if archived is None else _mark(found.archived_at, archived, now)
            )
            if (read_at, archived_at) == (found.read_at, found.archived_at):
                return found, False
            c.execute(update, (read_at, archived_at, now, workspace_id, message_id))
            first_read = found.read_at is None and read_at is not None
            if first_read and c.execute(opened, (now, workspace_id, message_id)).rowcount:
                self._store_events(c, [MessageEvent(message_id, now, "OPENED")])
            self._inbox_changed(c, workspace_id, user_id)
            return replace(found, read_at=read_at, archived_at=archived_at, updated_at=now), True

        updated, changed = await self._writer.submit(write)
        if changed:
            self._hints.fire(INBOX_TOPIC, inbox_key(workspace_id, user_id))
        return updated


def _mark(current: float | None, on: bool, now: float) -> float | None:
    if not on:
        return None
    return current if current is not None else now
