"""Store verbs for people: profile edits, lists, subscriptions and topic preferences.

A mixin of ``SqlStore`` (kept apart so the run/message verbs stay readable); the SQL is
shared by every dialect like the rest of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaybox.storage import rows
from relaybox.storage.base import Preference, ProfileChange, Subscription, SubscriptionList
from relaybox.storage.sql_verbs import SqlStoreParts
from relaybox.storage.writer import Connection

_LIST_COLUMNS = "workspace_id, id, name, preferences, created_at, updated_at, deleted_at"
_SUB_COLUMNS = "workspace_id, list_id, user_id, preferences, created_at"
_PREF_COLUMNS = (
    "workspace_id, user_id, topic_id, status, has_custom_routing, custom_routing, updated_at"
)


def _like_prefix(prefix: str) -> str:
    """``prefix`` as a LIKE pattern matching ids that start with it (wildcards escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _after(column: str, after: str | None) -> str:
    """The keyset-paging condition (built, not bound: untyped NULL parameters upset PostgreSQL)."""
    return "" if after is None else f"AND {column} > ?"


def _args(workspace_id: str, scope: str, after: str | None, limit: int) -> tuple[Any, ...]:
    return (workspace_id, scope, limit) if after is None else (workspace_id, scope, after, limit)


def _list_from_row(row: tuple[Any, ...]) -> SubscriptionList:
    ws, id_, name, prefs, created, updated, deleted = row
    return SubscriptionList(ws, id_, name, created, updated, rows.loads(prefs), deleted)


def _sub_from_row(row: tuple[Any, ...]) -> Subscription:
    ws, list_id, user_id, prefs, created = row
    return Subscription(ws, list_id, user_id, created, rows.loads(prefs))


def _pref_from_row(row: tuple[Any, ...]) -> Preference:
    ws, user_id, topic_id, status, has_custom, custom, updated = row
    return Preference(
        ws, user_id, topic_id, status, updated, bool(has_custom), tuple(rows.loads(custom))
    )


def _dumps_or_none(value: Any) -> str | None:
    return None if value is None else rows.dumps(value)


class PeopleVerbs(SqlStoreParts):
    # --- profiles ----------------------------------------------------------------------------

    async def update_profile(
        self, workspace_id: str, user_id: str, change: ProfileChange, now: float
    ) -> dict[str, Any] | None:
        key = (workspace_id, user_id)
        # A no-op UPDATE takes the row lock on every database (SQLite serialises writers
        # anyway; PostgreSQL's READ COMMITTED would otherwise lose concurrent merges), and
        # the SELECT after it sees the latest committed profile.
        lock = self.q(
            "UPDATE profiles SET updated_at = updated_at WHERE workspace_id = ? AND user_id = ?"
        )
        select = self.q("SELECT profile FROM profiles WHERE workspace_id = ? AND user_id = ?")
        update = self.q(
            "UPDATE profiles SET profile = ?, updated_at = ? WHERE workspace_id = ? AND user_id = ?"
        )
        insert = self.q(
            "INSERT INTO profiles (workspace_id, user_id, profile, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, user_id) DO NOTHING"
        )

        def write(c: Connection) -> dict[str, Any] | None:
            while True:
                current = None
                if c.execute(lock, key).rowcount == 1:
                    current = dict(rows.loads(c.execute(select, key).fetchone()[0]))
                new = change(current)
                if new is None:
                    return current
                if current is not None:
                    c.execute(update, (rows.dumps(new), now, *key))
                    return new
                if c.execute(insert, (*key, rows.dumps(new), now)).rowcount == 1:
                    return new
                # Another writer created the profile since we looked: redo under its lock.

        return await self._writer.submit(write)

    async def delete_profile(self, workspace_id: str, user_id: str) -> bool:
        sql = self.q("DELETE FROM profiles WHERE workspace_id = ? AND user_id = ?")
        found = await self._writer.submit(
            lambda c: c.execute(sql, (workspace_id, user_id)).rowcount
        )
        return bool(found)

    async def list_profiles(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        sql = self.q(
            "SELECT user_id, profile FROM profiles WHERE workspace_id = ? AND user_id > ? "
            "ORDER BY user_id LIMIT ?"
        )
        found = await self._read(
            lambda c: c.execute(sql, (workspace_id, after or "", limit)).fetchall()
        )
        return [(user_id, dict(rows.loads(profile) or {})) for user_id, profile in found]

    # --- lists ---------------------------------------------------------------------------------

    async def put_list(
        self,
        workspace_id: str,
        list_id: str,
        name: str,
        preferences: dict[str, Any] | None,
        now: float,
    ) -> None:
        def write(c: Connection) -> None:
            self._ensure_list(c, workspace_id, list_id, now)
            c.execute(
                self.q(
                    "UPDATE lists SET name = ?, preferences = ?, updated_at = ? "
                    "WHERE workspace_id = ? AND id = ?"
                ),
                (name, _dumps_or_none(preferences), now, workspace_id, list_id),
            )

        await self._writer.submit(write)

    def _ensure_list(self, c: Connection, workspace_id: str, list_id: str, now: float) -> None:
        """Make the list exist and be live; a soft-deleted one is recreated empty.

        Writing to a deleted list treats it as absent (Courier auto-creates missing lists),
        so its old subscribers must not silently come back with it.
        """
        key = (workspace_id, list_id)
        row = c.execute(
            self.q("SELECT deleted_at FROM lists WHERE workspace_id = ? AND id = ?"), key
        ).fetchone()
        if row is None:
            c.execute(
                self.q(
                    "INSERT INTO lists (workspace_id, id, name, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace_id, id) DO NOTHING"
                ),
                (workspace_id, list_id, list_id, now, now),
            )
        elif row[0] is not None:
            c.execute(
                self.q("DELETE FROM list_subscriptions WHERE workspace_id = ? AND list_id = ?"),
                key,
            )
            c.execute(
                self.q(
                    "UPDATE lists SET deleted_at = NULL, name = id, preferences = NULL, "
                    "created_at = ?, updated_at = ? WHERE workspace_id = ? AND id = ?"
                ),
                (now, now, *key),
            )

    async def get_list(self, workspace_id: str, list_id: str) -> SubscriptionList | None:
        sql = self.q(
            f"SELECT {_LIST_COLUMNS} FROM lists "
            "WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL"
        )
        row = await self._read(lambda c: c.execute(sql, (workspace_id, list_id)).fetchone())
        return None if row is None else _list_from_row(row)

    async def list_lists(
        self, workspace_id: str, *, prefix: str, after: str | None, limit: int
    ) -> list[SubscriptionList]:
        sql = self.q(
            f"SELECT {_LIST_COLUMNS} FROM lists WHERE workspace_id = ? AND deleted_at IS NULL "
            f"AND id LIKE ? ESCAPE '\\' {_after('id', after)} ORDER BY id LIMIT ?"
        )
        args = _args(workspace_id, _like_prefix(prefix), after, limit)
        found = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [_list_from_row(r) for r in found]

    async def delete_list(self, workspace_id: str, list_id: str, now: float) -> bool:
        sql = self.q(
            "UPDATE lists SET deleted_at = ?, updated_at = ? "
            "WHERE workspace_id = ? AND id = ? AND deleted_at IS NULL"
        )
        args = (now, now, workspace_id, list_id)
        return bool(await self._writer.submit(lambda c: c.execute(sql, args).rowcount))

    async def restore_list(self, workspace_id: str, list_id: str, now: float) -> bool:
        sql = self.q(
            "UPDATE lists SET deleted_at = NULL, updated_at = CASE WHEN deleted_at IS NULL "
            "THEN updated_at ELSE ? END WHERE workspace_id = ? AND id = ?"
        )
        args = (now, workspace_id, list_id)
        return bool(await self._writer.submit(lambda c: c.execute(sql, args).rowcount))

    # --- subscriptions -------------------------------------------------------------------------

    async def subscribe(
        self, subscriptions: Sequence[Subscription], *, update_existing: bool
    ) -> None:
        conflict = (
            "DO UPDATE SET preferences = excluded.preferences"
            if update_existing
            else ("DO NOTHING")
        )
        sql = self.q(
            f"INSERT INTO list_subscriptions ({_SUB_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            f"ON CONFLICT (workspace_id, list_id, user_id) {conflict}"
        )

        # One lock order for every writer (by list, then user): concurrent multi-list
        # subscribes on PostgreSQL cannot then deadlock on each other's new rows.
        ordered = sorted(subscriptions, key=lambda s: (s.workspace_id, s.list_id, s.user_id))

        def write(c: Connection) -> None:
            for sub in ordered:
                self._ensure_list(c, sub.workspace_id, sub.list_id, sub.created_at)
                c.execute(sql, self._sub_params(sub))

        await self._writer.submit(write)

    @staticmethod
    def _sub_params(sub: Subscription) -> tuple[Any, ...]:
        prefs = _dumps_or_none(sub.preferences)
        return (sub.workspace_id, sub.list_id, sub.user_id, prefs, sub.created_at)

    async def replace_subscribers(
        self, workspace_id: str, list_id: str, subscriptions: Sequence[Subscription], now: float
    ) -> None:
        delete = self.q("DELETE FROM list_subscriptions WHERE workspace_id = ? AND list_id = ?")
        # Users who stay subscribed keep their original subscription time.
        keep = self.q(
            "SELECT user_id, created_at FROM list_subscriptions "
            "WHERE workspace_id = ? AND list_id = ?"
        )
        insert = self.q(
            f"INSERT INTO list_subscriptions ({_SUB_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, list_id, user_id) "
            "DO UPDATE SET preferences = excluded.preferences"
        )

        def write(c: Connection) -> None:
            self._ensure_list(c, workspace_id, list_id, now)
            since = {r[0]: r[1] for r in c.execute(keep, (workspace_id, list_id)).fetchall()}
            c.execute(delete, (workspace_id, list_id))
            for sub in sorted(subscriptions, key=lambda s: s.user_id):
                created = since.get(sub.user_id, sub.created_at)
                prefs = _dumps_or_none(sub.preferences)
                c.execute(insert, (workspace_id, list_id, sub.user_id, prefs, created))

        await self._writer.submit(write)

    async def unsubscribe(self, workspace_id: str, list_id: str, user_id: str) -> bool:
        sql = self.q(
            "DELETE FROM list_subscriptions WHERE workspace_id = ? AND list_id = ? AND user_id = ?"
        )
        args = (workspace_id, list_id, user_id)
        return bool(await self._writer.submit(lambda c: c.execute(sql, args).rowcount))

    async def unsubscribe_all(self, workspace_id: str, user_id: str) -> int:
        sql = self.q("DELETE FROM list_subscriptions WHERE workspace_id = ? AND user_id = ?")
        args = (workspace_id, user_id)
        return int(await self._writer.submit(lambda c: c.execute(sql, args).rowcount))

    async def list_subscribers(
        self, workspace_id: str, list_id: str, *, after: str | None, limit: int
    ) -> list[Subscription]:
        sql = self.q(
            f"SELECT {_SUB_COLUMNS} FROM list_subscriptions WHERE workspace_id = ? "
            f"AND list_id = ? {_after('user_id', after)} ORDER BY user_id LIMIT ?"
        )
        args = _args(workspace_id, list_id, after, limit)
        return [
            _sub_from_row(r) for r in await self._read(lambda c: c.execute(sql, args).fetchall())
        ]

    async def user_subscriptions(
        self, workspace_id: str, user_id: str, *, after: str | None, limit: int
    ) -> list[tuple[SubscriptionList, Subscription]]:
        columns = ", ".join(f"l.{c.strip()}" for c in _LIST_COLUMNS.split(","))
        sql = self.q(
            f"SELECT {columns}, s.preferences, s.created_at FROM list_subscriptions s "
            "JOIN lists l ON l.workspace_id = s.workspace_id AND l.id = s.list_id "
            "WHERE s.workspace_id = ? AND s.user_id = ? AND l.deleted_at IS NULL "
            f"{_after('s.list_id', after)} ORDER BY s.list_id LIMIT ?"
        )
        args = _args(workspace_id, user_id, after, limit)
        found = await self._read(lambda c: c.execute(sql, args).fetchall())
        pairs = []
        for row in found:
            lst = _list_from_row(row[:7])
            sub = Subscription(workspace_id, lst.id, user_id, row[8], rows.loads(row[7]))
            pairs.append((lst, sub))
        return pairs

    # --- preferences ---------------------------------------------------------------------------

    async def put_preference(self, preference: Preference) -> None:
        await self._writer.submit(lambda c: self._store_preference(c, preference))

    def _store_preference(self, c: Connection, p: Preference) -> None:
        sql = self.q(
            f"INSERT INTO preferences ({_PREF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, user_id, topic_id) DO UPDATE SET "
            "status = excluded.status, has_custom_routing = excluded.has_custom_routing, "
            "custom_routing = excluded.custom_routing, updated_at = excluded.updated_at"
        )
        args = (
            p.workspace_id,
            p.user_id,
            p.topic_id,
            p.status,
            1 if p.has_custom_routing else 0,
            rows.dumps(list(p.custom_routing)),
            p.updated_at,
        )
        c.execute(sql, args)

    async def replace_preferences(
        self, workspace_id: str, user_id: str, preferences: Sequence[Preference]
    ) -> list[str]:
        select = self.q(
            "SELECT topic_id FROM preferences WHERE workspace_id = ? AND user_id = ? "
            "ORDER BY topic_id"
        )
        delete = self.q("DELETE FROM preferences WHERE workspace_id = ? AND user_id = ?")
        keep = {p.topic_id for p in preferences}

        def write(c: Connection) -> list[str]:
            before = [r[0] for r in c.execute(select, (workspace_id, user_id)).fetchall()]
            c.execute(delete, (workspace_id, user_id))
            for preference in preferences:
                self._store_preference(c, preference)
            return [topic for topic in before if topic not in keep]

        return await self._writer.submit(write)

    async def get_preference(
        self, workspace_id: str, user_id: str, topic_id: str
    ) -> Preference | None:
        sql = self.q(
            f"SELECT {_PREF_COLUMNS} FROM preferences "
            "WHERE workspace_id = ? AND user_id = ? AND topic_id = ?"
        )
        args = (workspace_id, user_id, topic_id)
        row = await self._read(lambda c: c.execute(sql, args).fetchone())
        return None if row is None else _pref_from_row(row)

    async def list_preferences(self, workspace_id: str, user_id: str) -> list[Preference]:
        sql = self.q(
            f"SELECT {_PREF_COLUMNS} FROM preferences WHERE workspace_id = ? AND user_id = ? "
            "ORDER BY topic_id"
        )
        found = await self._read(lambda c: c.execute(sql, (workspace_id, user_id)).fetchall())
        return [_pref_from_row(r) for r in found]

    async def delete_preference(self, workspace_id: str, user_id: str, topic_id: str) -> bool:
        sql = self.q(
            "DELETE FROM preferences WHERE workspace_id = ? AND user_id = ? AND topic_id = ?"
        )
        args = (workspace_id, user_id, topic_id)
        return bool(await self._writer.submit(lambda c: c.execute(sql, args).rowcount))
