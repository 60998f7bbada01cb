"""What every SQL store mixin needs from ``SqlStore``, declared once.

``SqlStore`` supplies ``q``, ``_read``, ``_writer``, ``dialect`` and ``_hints``; the verb mixins
(people, batches, webhooks, inbox) inherit these declarations so each type-checks on its own.
Keyset paging lives here because both runs/messages (sql.py) and the inbox page newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from relaybox.storage import rows
from relaybox.storage.dialect import Dialect
from relaybox.storage.hints import Hints
from relaybox.storage.writer import Connection, Writer

T = TypeVar("T")


class SqlStoreParts:
    _writer: Writer
    dialect: Dialect
    _hints: Hints

    def q(self, text: str) -> str:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    async def _newest_first(
        self,
        select: str,
        time_column: str,
        where: list[str],
        args: list[Any],
        cursor: str | None,
        limit: int,
        from_row: Callable[[Any], T],
        key: Callable[[T], tuple[float, str]],
    ) -> tuple[list[T], str | None]:
        """One page of records, newest first, keyset-paged on (time, id)."""
        if cursor is not None:
            at, last_id = rows.decode_cursor(cursor)
            where = [*where, f"({time_column} < ? OR ({time_column} = ? AND id < ?))"]
            args = [*args, at, at, last_id]
        sql = self.q(
            f"{select} WHERE {' AND '.join(where)} ORDER BY {time_column} DESC, id DESC LIMIT ?"
        )
        found = await self._read(lambda c: c.execute(sql, [*args, limit + 1]).fetchall())
        page = [from_row(r) for r in found[:limit]]
        if len(found) <= limit or not page:
            return page, None
        return page, rows.encode_cursor(*key(page[-1]))
