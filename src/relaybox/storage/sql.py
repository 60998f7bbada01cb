"""The Store implemented once over SQL; backends supply a Dialect and nothing else.

All writes go through the group-committing ``Writer``; reads run on a small thread pool with
one connection per thread. The SQL is written once with ``?`` / ``:name`` placeholders and
translated by the dialect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from relaybox.domain.run import Run
from relaybox.errors import ConflictError, StaleLease
from relaybox.storage import migrate, rows
from relaybox.storage.base import (
    ApiKey,
    CreatedRun,
    IdempotencyWrite,
    Message,
    MessageEvent,
    MessageFilter,
    MessagePage,
    Resource,
    ResourceVersion,
    RunFilter,
    RunPage,
    StoredResponse,
)
from relaybox.storage.dialect import Dialect, scalar
from relaybox.storage.hints import Hints
from relaybox.storage.sql_batches import BatchVerbs
from relaybox.storage.sql_inbox import InboxVerbs
from relaybox.storage.sql_people import PeopleVerbs
from relaybox.storage.sql_webhooks import WebhookVerbs
from relaybox.storage.writer import Connection, Writer

T = TypeVar("T")


class SqlStore(PeopleVerbs, BatchVerbs, WebhookVerbs, InboxVerbs):
    def __init__(self, dialect: Dialect, *, readers: int = 4) -> None:
        self.dialect = dialect
        self.exclusive = dialect.exclusive
        self._readers = readers
        self._writer = self._new_writer()
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._stop_listening: Callable[[], None] = lambda: None
        self._hints = Hints(dialect)

    @property
    def writer(self) -> Writer:
        return self._writer

    def _new_writer(self) -> Writer:
        return Writer(
            lambda: self.dialect.connect(),
            threads=self.dialect.writer_threads,
            begin=self.dialect.begin,
            errors=self.dialect.errors,
            name=f"relaybox-{self.dialect.name}-writer",
        )

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        if migrate:
            await asyncio.to_thread(self.migrate)
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="relaybox-read")
        self._writer.start()

    async def close(self) -> None:
        self._stop_listening()
        self._hints.stop()
        await asyncio.to_thread(self._writer.stop)
        await self._close_batch_writer()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        self._writer = self._new_writer()

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied."""
        conn = self.dialect.connect()
        try:
            return migrate.apply(conn, self.dialect)
        finally:
            conn.close()

    def listen(self, on_wake: Callable[[], None]) -> None:
        """Call ``on_wake`` (from any thread) when another process makes a run due."""
        self._stop_listening = self.dialect.listen(on_wake)

    def q(self, text: str) -> str:
        return self.dialect.sql(text)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        assert self._pool is not None, "store is not open"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._with_reader, fn)

    def _with_reader(self, fn: Callable[[Connection], T]) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.dialect.connect(readonly=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return fn(conn)

    # --- workspaces and keys ----------------------------------------------------------------

    async def ensure_workspace(self, workspace_id: str, now: float) -> None:
        await self._writer.submit(lambda c: self._ensure_workspace(c, workspace_id, now))

    def _ensure_workspace(self, c: Connection, workspace_id: str, now: float) -> None:
        c.execute(
            self.q("INSERT INTO workspaces (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING"),
            (workspace_id, now),
        )

    async def add_api_key(
        self, workspace_id: str, key_hash: str, prefix: str, now: float, *, mode: str = "live"
    ) -> None:
        def write(c: Connection) -> None:
            self._ensure_workspace(c, workspace_id, now)
            c.execute(
                self.q(
                    "INSERT INTO api_keys (key_hash, workspace_id, prefix, created_at, mode) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (key_hash, workspace_id, prefix, now, mode),
            )

        await self._writer.submit(write)

    async def workspace_for_key(self, key_hash: str) -> str | None:
        sql = self.q("SELECT workspace_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
        found = await self._read(lambda c: scalar(c.execute(sql, (key_hash,)).fetchone()))
        return None if found is None else str(found)

    async def key_mode(self, key_hash: str) -> str | None:
        sql = self.q("SELECT mode FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
        found = await self._read(lambda c: scalar(c.execute(sql, (key_hash,)).fetchone()))
        return None if found is None else str(found)

    async def count_api_keys(self) -> int:
        sql = self.q("SELECT COUNT(*) FROM api_keys")
        return int(await self._read(lambda c: scalar(c.execute(sql).fetchone())))

    async def server_secret(self, name: str, candidate: str | None, now: float) -> str | None:
        insert = self.q(
            "INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING"
        )
        select = self.q("SELECT value FROM server_secrets WHERE name = ?")

        def write(c: Connection) -> str | None:
            if candidate is not None:
                c.execute(insert, (name, candidate, now))
            found = scalar(c.execute(select, (name,)).fetchone())
            return None if found is None else str(found)

        return await self._writer.submit(write)

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        sql = self.q(
            "SELECT key_hash, prefix, mode, created_at, revoked_at FROM api_keys "
            "WHERE workspace_id = ? ORDER BY created_at, key_hash"
        )
        found = await self._read(lambda c: c.execute(sql, (workspace_id,)).fetchall())
        return [ApiKey(str(r[0]), str(r[1]), str(r[2]), float(r[3]), r[4]) for r in found]

    async def revoke_api_key(self, workspace_id: str, key_hash: str, now: float) -> bool:
        sql = self.q(
            "UPDATE api_keys SET revoked_at = ? "
            "WHERE workspace_id = ? AND key_hash = ? AND revoked_at IS NULL"
        )
        return await self._writer.submit(
            lambda c: c.execute(sql, (now, workspace_id, key_hash)).rowcount > 0
        )

    # --- versioned configuration -----------------------------------------------------------

    async def put_resource(self, resource: Resource) -> Resource:
        params = rows.resource_params(resource)
        # Upsert on the primary key only: a replace-style upsert would also "resolve" an
        # alias clash by deleting the object that owns the alias.
        sql = self.q(
            f"INSERT INTO resources ({rows.RESOURCE_COLUMNS}) VALUES "
            "(:workspace_id, :kind, :id, :alias, :name, :draft, :published, "
            ":published_version, :published_at, :created_at, :updated_at, :archived_at) "
            "ON CONFLICT (workspace_id, kind, id) DO UPDATE SET alias = excluded.alias, "
            "name = excluded.name, draft = excluded.draft, published = excluded.published, "
            "published_version = excluded.published_version, "
            "published_at = excluded.published_at, created_at = excluded.created_at, "
            "updated_at = excluded.updated_at, archived_at = excluded.archived_at"
        )

        def write(c: Connection) -> Resource:
            try:
                c.execute(sql, params)
            except self.dialect.errors as exc:
                if not self.dialect.is_unique_violation(exc):
                    raise
                raise ConflictError(
                    f'The alias "{resource.alias}" is already used by another {resource.kind}'
                ) from None
            return resource

        return await self._writer.submit(write)

    async def get_resource(
        self, workspace_id: str, kind: str, id_or_alias: str, *, include_archived: bool = False
    ) -> Resource | None:
        args: tuple[str, ...]
        if include_archived:
            where, args = "id = ?", (workspace_id, kind, id_or_alias)
        else:
            where = "(id = ? OR alias = ?) AND archived_at IS NULL"
            args = (workspace_id, kind, id_or_alias, id_or_alias)
        sql = self.q(
            f"SELECT {rows.RESOURCE_COLUMNS} FROM resources "
            f"WHERE workspace_id = ? AND kind = ? AND {where} ORDER BY (id = ?) DESC LIMIT 1"
        )
        row = await self._read(lambda c: c.execute(sql, (*args, id_or_alias)).fetchone())
        return None if row is None else rows.resource_from_row(row)

    async def list_resources(
        self, workspace_id: str, kind: str, *, after: str | None, limit: int
    ) -> list[Resource]:
        sql = self.q(
            f"SELECT {rows.RESOURCE_COLUMNS} FROM resources WHERE workspace_id = ? AND kind = ? "
            "AND id > ? AND archived_at IS NULL ORDER BY id LIMIT ?"
        )
        args = (workspace_id, kind, after or "", limit)
        found = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [rows.resource_from_row(r) for r in found]

    async def delete_resource(self, workspace_id: str, kind: str, id: str) -> bool:
        where = "WHERE workspace_id = ? AND kind = ? AND id = ?"
        args = (workspace_id, kind, id)

        def write(c: Connection) -> bool:
            # Its versions go with it: an object made later with the same id starts again at
            # version 1 and must not meet (or collide with) the old one's history.
            c.execute(self.q("DELETE FROM resource_versions " + where), args)
            return bool(c.execute(self.q("DELETE FROM resources " + where), args).rowcount > 0)

        return await self._writer.submit(write)

    async def archive_resource(
        self, workspace_id: str, kind: str, id: str, now: float
    ) -> Resource | None:
        def write(c: Connection) -> Resource | None:
            c.execute(
                self.q(
                    "UPDATE resources SET archived_at = ?, updated_at = ? "
                    "WHERE workspace_id = ? AND kind = ? AND id = ? AND archived_at IS NULL"
                ),
                (now, now, workspace_id, kind, id),
            )
            return self._load_resource(c, workspace_id, kind, id)

        return await self._writer.submit(write)

    def _load_resource(
        self, c: Connection, workspace_id: str, kind: str, id: str
    ) -> Resource | None:
        row = c.execute(
            self.q(
                f"SELECT {rows.RESOURCE_COLUMNS} FROM resources "
                "WHERE workspace_id = ? AND kind = ? AND id = ?"
            ),
            (workspace_id, kind, id),
        ).fetchone()
        return None if row is None else rows.resource_from_row(row)

    async def publish_resource(
        self, workspace_id: str, kind: str, id: str, now: float, *, version: int | None = None
    ) -> Resource | None:
        key = (workspace_id, kind, id)

        def write(c: Connection) -> Resource | None:
            current = self._load_resource(c, workspace_id, kind, id)
            if current is None:
                return None
            if version is not None:
                old = self._load_version(c, workspace_id, kind, id, version)
                if old is None:
                    return None
                body, number = old.body, version
            elif current.draft is None:
                return current
            else:
                body = current.draft
                # After a rollback the published version is not the newest one.
                latest = c.execute(
                    self.q(
                        "SELECT MAX(version) FROM resource_versions "
                        "WHERE workspace_id = ? AND kind = ? AND id = ?"
                    ),
                    key,
                ).fetchone()
                number = max(int(scalar(latest) or 0), current.published_version) + 1
                c.execute(
                    self.q(
                        "INSERT INTO resource_versions (workspace_id, kind, id, version, body, "
                        "published_at) VALUES (?, ?, ?, ?, ?, ?)"
                    ),
                    (*key, number, rows.dumps(body), now),
                )
            c.execute(
                self.q(
                    "UPDATE resources SET published = ?, published_version = ?, "
                    "published_at = ?, updated_at = ? "
                    "WHERE workspace_id = ? AND kind = ? AND id = ?"
                ),
                (rows.dumps(body), number, now, now, *key),
            )
            return replace(
                current,
                published=body,
                published_version=number,
                published_at=now,
                updated_at=now,
            )

        return await self._writer.submit(write)

    async def list_resource_versions(
        self,
        workspace_id: str,
        kind: str,
        id: str,
        *,
        before: int | None = None,
        limit: int = 2**31 - 1,
    ) -> list[ResourceVersion]:
        sql = self.q(
            "SELECT version, body, published_at FROM resource_versions "
            "WHERE workspace_id = ? AND kind = ? AND id = ? AND version < ? "
            "ORDER BY version DESC LIMIT ?"
        )
        args = (workspace_id, kind, id, 2**31 - 1 if before is None else before, limit)
        found = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [ResourceVersion(int(v), dict(rows.loads(b)), float(at)) for v, b, at in found]

    async def get_resource_version(
        self, workspace_id: str, kind: str, id: str, version: int
    ) -> ResourceVersion | None:
        return await self._read(lambda c: self._load_version(c, workspace_id, kind, id, version))

    def _load_version(
        self, c: Connection, workspace_id: str, kind: str, id: str, version: int
    ) -> ResourceVersion | None:
        row = c.execute(
            self.q(
                "SELECT body, published_at FROM resource_versions "
                "WHERE workspace_id = ? AND kind = ? AND id = ? AND version = ?"
            ),
            (workspace_id, kind, id, version),
        ).fetchone()
        if row is None:
            return None
        return ResourceVersion(version, dict(rows.loads(row[0])), float(row[1]))

    # --- profiles ----------------------------------------------------------------------------

    async def get_profile(self, workspace_id: str, user_id: str) -> dict[str, Any] | None:
        return await self._read(lambda c: self._load_profile(c, workspace_id, user_id))

    async def put_profile(
        self, workspace_id: str, user_id: str, profile: dict[str, Any], now: float
    ) -> None:
        await self._writer.submit(
            lambda c: self._store_profile(c, workspace_id, user_id, profile, now)
        )

    def _load_profile(
        self, c: Connection, workspace_id: str, user_id: str
    ) -> dict[str, Any] | None:
        found = scalar(
            c.execute(
                self.q("SELECT profile FROM profiles WHERE workspace_id = ? AND user_id = ?"),
                (workspace_id, user_id),
            ).fetchone()
        )
        return None if found is None else dict(rows.loads(found))

    def _store_profile(
        self, c: Connection, workspace_id: str, user_id: str, profile: dict[str, Any], now: float
    ) -> None:
        c.execute(
            self.q(
                "INSERT INTO profiles (workspace_id, user_id, profile, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, user_id) DO UPDATE SET "
                "profile = excluded.profile, updated_at = excluded.updated_at"
            ),
            (workspace_id, user_id, rows.dumps(profile), now),
        )

    # --- runs -------------------------------------------------------------------------------

    async def create_run(
        self,
        run: Run,
        *,
        lease_owner: str | None,
        merge_profile: bool,
        idempotency: IdempotencyWrite | None = None,
    ) -> CreatedRun:
        insert = self.q(
            f"INSERT INTO runs ({rows.RUN_COLUMNS}, lease_owner) VALUES (:id, :workspace_id, "
            ":template_id, :source, :status, :cancelation_token, :definition, :context, "
            ":steps, :cursor, :error, :due_at, :lease_token, :created_at, :updated_at, "
            ":lease_owner)"
        )

        def write(c: Connection) -> CreatedRun:
            if idempotency is not None:
                saved = self._claim_key(c, run.workspace_id, idempotency, run.created_at)
                if saved is not None:
                    return CreatedRun(replay=saved)
            created = run
            recipient = run.context.recipient
            if merge_profile and recipient:
                stored = self._load_profile(c, run.workspace_id, recipient) or {}
                merged = {**stored, **run.context.profile}
                if merged != stored:
                    self._store_profile(c, run.workspace_id, recipient, merged, run.created_at)
                created = replace(run, context=replace(run.context, profile=merged))
            params = rows.run_params(created)
            params["lease_owner"] = lease_owner
            c.execute(insert, params)
            if lease_owner is None:
                self.dialect.notify_due(c)
            return CreatedRun(run=created)

        return await self._writer.submit(write)

    async def get_run(self, workspace_id: str, run_id: str) -> Run | None:
        sql = self.q(f"SELECT {rows.RUN_COLUMNS} FROM runs WHERE workspace_id = ? AND id = ?")
        row = await self._read(lambda c: c.execute(sql, (workspace_id, run_id)).fetchone())
        return None if row is None else rows.run_from_row(row)

    async def list_runs(
        self, workspace_id: str, flt: RunFilter, *, cursor: str | None, limit: int
    ) -> RunPage:
        # Runs behind POST /send are internal; Courier lists only automation runs.
        where = ["workspace_id = ?", "source <> 'send'"]
        args: list[Any] = [workspace_id]
        if flt.statuses:
            where.append(f"status IN ({','.join('?' * len(flt.statuses))})")
            args.extend(flt.statuses)
        if flt.template_ids:
            where.append(f"template_id IN ({','.join('?' * len(flt.template_ids))})")
            args.extend(flt.template_ids)
        if flt.start is not None:
            where.append("created_at >= ?")
            args.append(flt.start)
        if flt.end is not None:
            where.append("created_at <= ?")
            args.append(flt.end)
        if flt.recipient is not None:
            where.append("recipient = ?")
            args.append(flt.recipient)
        runs, nxt = await self._newest_first(
            f"SELECT {rows.RUN_COLUMNS} FROM runs",
            "created_at",
            where,
            args,
            cursor,
            limit,
            rows.run_from_row,
            lambda run: (run.created_at, run.id),
        )
        return RunPage(runs=runs, next_cursor=nxt)

    async def claim_due_runs(
        self, owner: str, now: float, *, limit: int, lease_seconds: float
    ) -> list[Run]:
        sql = self.q(
            "UPDATE runs SET due_at = ?, lease_owner = ?, lease_token = lease_token + 1 "
            "WHERE id IN (SELECT id FROM runs WHERE due_at <= ? ORDER BY due_at LIMIT ?"
            f"{self.dialect.claim_lock}) RETURNING {rows.RUN_COLUMNS}"
        )
        args = (now + lease_seconds, owner, now, limit)
        found = await self._writer.submit(lambda c: c.execute(sql, args).fetchall())
        return [rows.run_from_row(r) for r in found]

    async def next_due_at(self) -> float | None:
        sql = self.q("SELECT MIN(due_at) FROM runs WHERE due_at IS NOT NULL")
        found = await self._read(lambda c: scalar(c.execute(sql).fetchone()))
        return None if found is None else float(found)

    async def commit_run(
        self,
        run: Run,
        *,
        messages: Sequence[Message] = (),
        events: Sequence[MessageEvent] = (),
        cancel_token: str | None = None,
        keep_lease: bool = False,
    ) -> list[str]:
        params = rows.run_params(run)
        params["keep_lease"] = 1 if keep_lease else 0
        update = self.q(
            "UPDATE runs SET status = :status, steps = :steps, cursor = :cursor, "
            "error = :error, due_at = :due_at, updated_at = :updated_at, context = :context, "
            "lease_owner = CASE WHEN :keep_lease = 1 THEN lease_owner ELSE NULL END "
            "WHERE id = :id AND lease_token = :lease_token"
        )
        cancel = self.q(
            "UPDATE runs SET status = 'CANCELED', due_at = NULL, lease_owner = NULL, "
            "lease_token = lease_token + 1, updated_at = ? "
            "WHERE workspace_id = ? AND cancelation_token = ? AND due_at IS NOT NULL "
            "AND id <> ? RETURNING id"
        )

        def write(c: Connection) -> list[str]:
            if c.execute(update, params).rowcount != 1:
                raise StaleLease(f"run {run.id} was claimed or canceled by someone else")
            for message in messages:
                self._store_message(c, message)
            self._store_events(c, events)
            if not keep_lease and run.due_at is not None:
                self.dialect.notify_due(c)
            if cancel_token is None:
                return []
            args = (run.updated_at, run.workspace_id, cancel_token, run.id)
            canceled = [str(r[0]) for r in c.execute(cancel, args).fetchall()]
            self._cancel_messages(c, run.workspace_id, canceled, run.updated_at)
            return canceled

        return await self._writer.submit(write)

    async def cancel_run(self, workspace_id: str, run_id: str, now: float) -> Run | None:
        def write(c: Connection) -> Run | None:
            canceled = c.execute(
                self.q(
                    "UPDATE runs SET status = 'CANCELED', due_at = NULL, lease_owner = NULL, "
                    "lease_token = lease_token + 1, updated_at = ? "
                    "WHERE workspace_id = ? AND id = ? AND due_at IS NOT NULL"
                ),
                (now, workspace_id, run_id),
            ).rowcount
            if canceled:
                self._cancel_messages(c, workspace_id, [run_id], now)
            row = c.execute(
                self.q(f"SELECT {rows.RUN_COLUMNS} FROM runs WHERE workspace_id = ? AND id = ?"),
                (workspace_id, run_id),
            ).fetchone()
            return None if row is None else rows.run_from_row(row)

        return await self._writer.submit(write)

    async def release_leases(self, now: float, owner: str | None = None) -> int:
        base = (
            "UPDATE runs SET due_at = ?, lease_owner = NULL "
            "WHERE lease_owner IS NOT NULL AND due_at IS NOT NULL"
        )
        args: tuple[Any, ...] = (now,)
        if owner is not None:
            base += " AND lease_owner = ?"
            args = (now, owner)
        sql = self.q(base)

        def write(c: Connection) -> int:
            released = int(c.execute(sql, args).rowcount)
            if released:
                self.dialect.notify_due(c)
            return released

        return await self._writer.submit(write)

    def _cancel_messages(
        self, c: Connection, workspace_id: str, run_ids: Sequence[str], now: float
    ) -> None:
        """Messages of canceled runs that were waiting (e.g. for a retry) end CANCELED too.

        A message whose attempt is in flight is left alone: its outcome is still coming.
        """
        if not run_ids:
            return
        marks = ",".join("?" * len(run_ids))
        found = c.execute(
            self.q(
                "UPDATE messages SET status = 'CANCELED', updated_at = ? "
                f"WHERE workspace_id = ? AND run_id IN ({marks}) "
                "AND status IN ('ENQUEUED', 'DELAYED', 'ROUTED') AND attempt_state IS NULL "
                "RETURNING id"
            ),
            (now, workspace_id, *run_ids),
        ).fetchall()
        self._store_events(c, [MessageEvent(str(r[0]), now, "CANCELED") for r in found])

    # --- messages ---------------------------------------------------------------------------

    async def save_message(self, message: Message, events: Sequence[MessageEvent] = ()) -> None:
        def write(c: Connection) -> None:
            self._store_message(c, message)
            self._store_events(c, events)

        await self._writer.submit(write)

    async def get_message(self, workspace_id: str, message_id: str) -> Message | None:
        sql = self.q(
            f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE workspace_id = ? AND id = ?"
        )
        row = await self._read(lambda c: c.execute(sql, (workspace_id, message_id)).fetchone())
        return None if row is None else rows.message_from_row(row)

    async def message_events(self, workspace_id: str, message_id: str) -> list[MessageEvent]:
        sql = self.q(
            "SELECT e.ts, e.type, e.detail FROM message_events e JOIN messages m "
            "ON m.id = e.message_id WHERE m.workspace_id = ? AND e.message_id = ? ORDER BY e.seq"
        )
        found = await self._read(lambda c: c.execute(sql, (workspace_id, message_id)).fetchall())
        return [rows.event_from_row(message_id, r) for r in found]

    async def list_messages(
        self, workspace_id: str, flt: MessageFilter, *, cursor: str | None, limit: int
    ) -> MessagePage:
        where = ["workspace_id = ?"]
        args: list[Any] = [workspace_id]
        for column, values in (("status", flt.statuses), ("provider", flt.providers)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if flt.tags:
            where.append("(" + " OR ".join("tags LIKE ? ESCAPE '!'" for _ in flt.tags) + ")")
            args.extend(f"%,{_like_escape(tag)},%" for tag in flt.tags)
        for column, value in (
            ("recipient", flt.recipient),
            ("notification", flt.notification),
            ("trace_id", flt.trace_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if flt.message_id is not None:
            # Courier: the id /send returned, i.e. one message or every message of a request.
            where.append("(id = ? OR request_id = ?)")
            args.extend((flt.message_id, flt.message_id))
        if flt.enqueued_after is not None:
            where.append("enqueued_at > ?")
            args.append(flt.enqueued_after)
        page, nxt = await self._newest_first(
            f"SELECT {rows.MESSAGE_COLUMNS} FROM messages",
            "enqueued_at",
            where,
            args,
            cursor,
            limit,
            rows.message_from_row,
            lambda message: (message.enqueued_at, message.id),
        )
        return MessagePage(messages=page, next_cursor=nxt)

    async def create_runs(
        self,
        runs: Sequence[Run],
        *,
        messages: Sequence[Message],
        events: Sequence[MessageEvent],
        lease_owner: str | None,
        idempotency: IdempotencyWrite | None = None,
    ) -> StoredResponse | None:
        insert = self.q(
            f"INSERT INTO runs ({rows.RUN_COLUMNS}, lease_owner) VALUES (:id, :workspace_id, "
            ":template_id, :source, :status, :cancelation_token, :definition, :context, "
            ":steps, :cursor, :error, :due_at, :lease_token, :created_at, :updated_at, "
            ":lease_owner)"
        )

        def write(c: Connection) -> StoredResponse | None:
            if idempotency is not None and runs:
                first = runs[0]
                saved = self._claim_key(c, first.workspace_id, idempotency, first.created_at)
                if saved is not None:
                    return saved
            for run in runs:
                params = rows.run_params(run)
                # Only runs created leased (token bumped) are the owner's; a delayed one must
                # not be woken early when that owner's leases are released.
                params["lease_owner"] = lease_owner if run.lease_token > 0 else None
                c.execute(insert, params)
            for message in messages:
                self._store_message(c, message)
            self._store_events(c, events)
            if lease_owner is None or any(run.lease_token == 0 for run in runs):
                self.dialect.notify_due(c)
            return None

        return await self._writer.submit(write)

    def _store_message(self, c: Connection, message: Message) -> None:
        columns = rows.MESSAGE_COLUMNS.replace(" ", "").split(",")
        updates = ", ".join(f"{col} = excluded.{col}" for col in columns if col != "id")
        c.execute(
            self.q(
                f"INSERT INTO messages ({rows.MESSAGE_COLUMNS}) VALUES "
                f"({', '.join(':' + col for col in columns)}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}"
            ),
            rows.message_params(message),
        )

    def _store_events(self, c: Connection, events: Sequence[MessageEvent]) -> None:
        sql = self.q(
            "INSERT INTO message_events (message_id, seq, ts, type, detail) VALUES (?, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM message_events WHERE message_id = ?), "
            "?, ?, ?)"
        )
        if events:
            c.cursor().executemany(
                sql,
                [(e.message_id, e.message_id, e.ts, e.type, rows.dumps(e.detail)) for e in events],
            )
            self._queue_deliveries(c, events)  # the outbox: same transaction as the change

    # --- idempotency ----------------------------------------------------------------------

    async def get_response(self, workspace_id: str, key: str, now: float) -> StoredResponse | None:
        return await self._read(lambda c: self._load_response(c, workspace_id, key, now))

    async def save_response(self, workspace_id: str, write: IdempotencyWrite, now: float) -> None:
        await self._writer.submit(lambda c: self._claim_key(c, workspace_id, write, now))

    def _claim_key(
        self, c: Connection, workspace_id: str, write: IdempotencyWrite, now: float
    ) -> StoredResponse | None:
        """Save ``write`` as the key's response, or return the live response saved earlier.

        Exactly one of several racing requests wins a key, even with writers committing in
        parallel (PostgreSQL): the losing insert waits for the winner's commit on the
        unique index and then matches nothing.
        """
        saved = self._load_response(c, workspace_id, write.key, now)
        if saved is not None or self._store_response(c, workspace_id, write, now):
            return saved
        saved = self._load_response(c, workspace_id, write.key, now)
        assert saved is not None
        return saved

    def _load_response(
        self, c: Connection, workspace_id: str, key: str, now: float
    ) -> StoredResponse | None:
        row = c.execute(
            self.q(
                "SELECT status_code, body, fingerprint, expires_at FROM idempotency_keys "
                "WHERE workspace_id = ? AND key = ? AND expires_at > ?"
            ),
            (workspace_id, key, now),
        ).fetchone()
        if row is None:
            return None
        return StoredResponse(
            status_code=row[0], body=bytes(row[1]), fingerprint=row[2], expires_at=row[3]
        )

    def _store_response(
        self, c: Connection, workspace_id: str, write: IdempotencyWrite, now: float
    ) -> bool:
        """Save the response unless a live one exists; False if one does.

        Only an expired row is overwritten: the conflict check waits for a concurrent
        inserter's commit, so exactly one of several racing requests wins the key.
        """
        sql = self.q(
            "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, status_code, "
            "body, expires_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "status_code = excluded.status_code, body = excluded.body, "
            "expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= ?"
        )
        args = (
            workspace_id,
            write.key,
            write.fingerprint,
            write.status_code,
            write.body,
            write.expires_at,
            now,
        )
        return int(c.execute(sql, args).rowcount) == 1


def _like_escape(value: str) -> str:
    return value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
