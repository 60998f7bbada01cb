"""SQLite backend: WAL, one group-committing writer thread, a small pool of readers."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from relaybox.domain.run import Run, RunStatus
from relaybox.errors import ConflictError, StaleLease, ValidationError
from relaybox.storage import migrate, rows
from relaybox.storage.base import (
    CreatedRun,
    IdempotencyWrite,
    Message,
    MessageEvent,
    Resource,
    RunFilter,
    RunPage,
    StoredResponse,
)
from relaybox.storage.sqlite_writer import Writer, connect

T = TypeVar("T")
_ACTIVE = (RunStatus.PROCESSING.value, RunStatus.WAITING.value)


def path_from_url(url: str) -> str:
    """``sqlite:///./relaybox.db`` → ``./relaybox.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    if not url.startswith("sqlite:///"):
        raise ValidationError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return url[len("sqlite:///") :]


class SqliteStore:
    def __init__(self, path: str, *, readers: int = 4) -> None:
        self.path = path
        self._writer = Writer(path)
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="relaybox-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def writer(self) -> Writer:
        return self._writer

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._writer.start()

    def _prepare(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = connect(self.path)
        try:
            _migrate(conn)
        finally:
            conn.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._with_reader, fn)

    def _with_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return fn(conn)

    # --- workspaces and keys ----------------------------------------------------------------

    async def ensure_workspace(self, workspace_id: str, now: float) -> None:
        await self._writer.submit(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO workspaces (id, created_at) VALUES (?, ?)",
                (workspace_id, now),
            )
        )

    async def add_api_key(self, workspace_id: str, key_hash: str, prefix: str, now: float) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR IGNORE INTO workspaces (id, created_at) VALUES (?, ?)",
                (workspace_id, now),
            )
            c.execute(
                "INSERT INTO api_keys (key_hash, workspace_id, prefix, created_at) "
                "VALUES (?, ?, ?, ?)",
                (key_hash, workspace_id, prefix, now),
            )

        await self._writer.submit(write)

    async def workspace_for_key(self, key_hash: str) -> str | None:
        def read(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                "SELECT workspace_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                (key_hash,),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read(read)

    async def count_api_keys(self) -> int:
        return await self._read(
            lambda c: int(c.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])
        )

    # --- versioned configuration -----------------------------------------------------------

    async def put_resource(self, resource: Resource) -> Resource:
        params = rows.resource_params(resource)

        def write(c: sqlite3.Connection) -> Resource:
            try:
                # Upsert on the primary key only: INSERT OR REPLACE would also "resolve" an
                # alias clash by deleting the object that owns the alias.
                c.execute(
                    f"INSERT INTO resources ({rows.RESOURCE_COLUMNS}) VALUES "
                    "(:workspace_id, :kind, :id, :alias, :name, :draft, :published, "
                    ":published_version, :published_at, :created_at, :updated_at) "
                    "ON CONFLICT (workspace_id, kind, id) DO UPDATE SET alias = excluded.alias, "
                    "name = excluded.name, draft = excluded.draft, published = excluded.published, "
                    "published_version = excluded.published_version, "
                    "published_at = excluded.published_at, created_at = excluded.created_at, "
                    "updated_at = excluded.updated_at",
                    params,
                )
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f'The alias "{resource.alias}" is already used by another {resource.kind}'
                ) from None
            return resource

        return await self._writer.submit(write)

    async def get_resource(self, workspace_id: str, kind: str, id_or_alias: str) -> Resource | None:
        def read(c: sqlite3.Connection) -> Resource | None:
            row = c.execute(
                f"SELECT {rows.RESOURCE_COLUMNS} FROM resources "
                "WHERE workspace_id = ? AND kind = ? AND (id = ? OR alias = ?) "
                "ORDER BY id = ? DESC LIMIT 1",
                (workspace_id, kind, id_or_alias, id_or_alias, id_or_alias),
            ).fetchone()
            return None if row is None else rows.resource_from_row(row)

        return await self._read(read)

    async def list_resources(
        self, workspace_id: str, kind: str, *, after: str | None, limit: int
    ) -> list[Resource]:
        def read(c: sqlite3.Connection) -> list[Resource]:
            found = c.execute(
                f"SELECT {rows.RESOURCE_COLUMNS} FROM resources "
                "WHERE workspace_id = ? AND kind = ? AND id > ? ORDER BY id LIMIT ?",
                (workspace_id, kind, after or "", limit),
            ).fetchall()
            return [rows.resource_from_row(r) for r in found]

        return await self._read(read)

    async def delete_resource(self, workspace_id: str, kind: str, id: str) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM resources WHERE workspace_id = ? AND kind = ? AND id = ?",
                (workspace_id, kind, id),
            )
            return cur.rowcount > 0

        return await self._writer.submit(write)

    async def publish_resource(
        self, workspace_id: str, kind: str, id: str, now: float
    ) -> Resource | None:
        def write(c: sqlite3.Connection) -> Resource | None:
            row = c.execute(
                f"SELECT {rows.RESOURCE_COLUMNS} FROM resources "
                "WHERE workspace_id = ? AND kind = ? AND id = ?",
                (workspace_id, kind, id),
            ).fetchone()
            if row is None:
                return None
            current = rows.resource_from_row(row)
            if current.draft is None:
                return current
            version = current.published_version + 1
            c.execute(
                "INSERT INTO resource_versions (workspace_id, kind, id, version, body, "
                "published_at) VALUES (?, ?, ?, ?, ?, ?)",
                (workspace_id, kind, id, version, rows.dumps(current.draft), now),
            )
            c.execute(
                "UPDATE resources SET published = draft, published_version = ?, "
                "published_at = ?, updated_at = ? WHERE workspace_id = ? AND kind = ? AND id = ?",
                (version, now, now, workspace_id, kind, id),
            )
            return replace(
                current,
                published=current.draft,
                published_version=version,
                published_at=now,
                updated_at=now,
            )

        return await self._writer.submit(write)

    # --- profiles ----------------------------------------------------------------------------

    async def get_profile(self, workspace_id: str, user_id: str) -> dict[str, Any] | None:
        return await self._read(lambda c: _load_profile(c, workspace_id, user_id))

    async def put_profile(
        self, workspace_id: str, user_id: str, profile: dict[str, Any], now: float
    ) -> None:
        await self._writer.submit(lambda c: _store_profile(c, workspace_id, user_id, profile, now))

    # --- runs -------------------------------------------------------------------------------

    async def create_run(
        self,
        run: Run,
        *,
        lease_owner: str | None,
        merge_profile: bool,
        idempotency: IdempotencyWrite | None = None,
    ) -> CreatedRun:
        def write(c: sqlite3.Connection) -> CreatedRun:
            if idempotency is not None:
                saved = _load_response(c, run.workspace_id, idempotency.key, run.created_at)
                if saved is not None:
                    return CreatedRun(replay=saved)
                _store_response(c, run.workspace_id, idempotency)
            created = run
            recipient = run.context.recipient
            if merge_profile and recipient:
                stored = _load_profile(c, run.workspace_id, recipient) or {}
                merged = {**stored, **run.context.profile}
                if merged != stored:
                    _store_profile(c, run.workspace_id, recipient, merged, run.created_at)
                created = replace(run, context=replace(run.context, profile=merged))
            params = rows.run_params(created)
            params["lease_owner"] = lease_owner
            c.execute(
                f"INSERT INTO runs ({rows.RUN_COLUMNS}, lease_owner) VALUES (:id, :workspace_id, "
                ":template_id, :source, :status, :cancelation_token, :definition, :context, "
                ":steps, :cursor, :error, :due_at, :lease_token, :created_at, :updated_at, "
                ":lease_owner)",
                params,
            )
            return CreatedRun(run=created)

        return await self._writer.submit(write)

    async def get_run(self, workspace_id: str, run_id: str) -> Run | None:
        def read(c: sqlite3.Connection) -> Run | None:
            row = c.execute(
                f"SELECT {rows.RUN_COLUMNS} FROM runs WHERE workspace_id = ? AND id = ?",
                (workspace_id, run_id),
            ).fetchone()
            return None if row is None else rows.run_from_row(row)

        return await self._read(read)

    async def list_runs(
        self, workspace_id: str, flt: RunFilter, *, cursor: str | None, limit: int
    ) -> RunPage:
        where = ["workspace_id = ?"]
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
        if cursor is not None:
            created_at, run_id = rows.decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args.extend([created_at, created_at, run_id])
        sql = (
            f"SELECT {rows.RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        args.append(limit + 1)

        def read(c: sqlite3.Connection) -> RunPage:
            found = [rows.run_from_row(r) for r in c.execute(sql, args).fetchall()]
            more = len(found) > limit
            page = found[:limit]
            nxt = rows.encode_cursor(page[-1].created_at, page[-1].id) if more else None
            return RunPage(runs=page, next_cursor=nxt)

        return await self._read(read)

    async def claim_due_runs(
        self, owner: str, now: float, *, limit: int, lease_seconds: float
    ) -> list[Run]:
        def write(c: sqlite3.Connection) -> list[Run]:
            found = c.execute(
                "UPDATE runs SET due_at = ?, lease_owner = ?, lease_token = lease_token + 1 "
                "WHERE id IN (SELECT id FROM runs WHERE due_at <= ? ORDER BY due_at LIMIT ?) "
                f"RETURNING {rows.RUN_COLUMNS}",
                (now + lease_seconds, owner, now, limit),
            ).fetchall()
            return [rows.run_from_row(r) for r in found]

        return await self._writer.submit(write)

    async def next_due_at(self) -> float | None:
        def read(c: sqlite3.Connection) -> float | None:
            row = c.execute("SELECT MIN(due_at) FROM runs WHERE due_at IS NOT NULL").fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._read(read)

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

        def write(c: sqlite3.Connection) -> list[str]:
            cur = c.execute(
                "UPDATE runs SET status = :status, steps = :steps, cursor = :cursor, "
                "error = :error, due_at = :due_at, updated_at = :updated_at, "
                "context = :context, "
                "lease_owner = CASE WHEN :keep_lease = 1 THEN lease_owner ELSE NULL END "
                "WHERE id = :id AND lease_token = :lease_token",
                params,
            )
            if cur.rowcount != 1:
                raise StaleLease(f"run {run.id} was claimed or canceled by someone else")
            for message in messages:
                _store_message(c, message)
            _store_events(c, events)
            if cancel_token is None:
                return []
            canceled = c.execute(
                "UPDATE runs SET status = 'CANCELED', due_at = NULL, lease_owner = NULL, "
                "lease_token = lease_token + 1, updated_at = ? "
                "WHERE workspace_id = ? AND cancelation_token = ? AND due_at IS NOT NULL "
                "AND id != ? RETURNING id",
                (run.updated_at, run.workspace_id, cancel_token, run.id),
            ).fetchall()
            return [str(r[0]) for r in canceled]

        return await self._writer.submit(write)

    async def cancel_run(self, workspace_id: str, run_id: str, now: float) -> Run | None:
        def write(c: sqlite3.Connection) -> Run | None:
            c.execute(
                "UPDATE runs SET status = 'CANCELED', due_at = NULL, lease_owner = NULL, "
                "lease_token = lease_token + 1, updated_at = ? "
                "WHERE workspace_id = ? AND id = ? AND due_at IS NOT NULL",
                (now, workspace_id, run_id),
            )
            row = c.execute(
                f"SELECT {rows.RUN_COLUMNS} FROM runs WHERE workspace_id = ? AND id = ?",
                (workspace_id, run_id),
            ).fetchone()
            return None if row is None else rows.run_from_row(row)

        return await self._writer.submit(write)

    async def release_leases(self, now: float, owner: str | None = None) -> int:
        def write(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "UPDATE runs SET due_at = ?, lease_owner = NULL WHERE lease_owner IS NOT NULL "
                "AND due_at IS NOT NULL AND (? IS NULL OR lease_owner = ?)",
                (now, owner, owner),
            )
            return int(cur.rowcount)

        return await self._writer.submit(write)

    # --- messages ---------------------------------------------------------------------------

    async def save_message(self, message: Message, events: Sequence[MessageEvent] = ()) -> None:
        def write(c: sqlite3.Connection) -> None:
            _store_message(c, message)
            _store_events(c, events)

        await self._writer.submit(write)

    async def get_message(self, workspace_id: str, message_id: str) -> Message | None:
        def read(c: sqlite3.Connection) -> Message | None:
            row = c.execute(
                f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE workspace_id = ? AND id = ?",
                (workspace_id, message_id),
            ).fetchone()
            return None if row is None else rows.message_from_row(row)

        return await self._read(read)

    async def message_events(self, workspace_id: str, message_id: str) -> list[MessageEvent]:
        def read(c: sqlite3.Connection) -> list[MessageEvent]:
            found = c.execute(
                "SELECT e.ts, e.type, e.detail FROM message_events e JOIN messages m "
                "ON m.id = e.message_id WHERE m.workspace_id = ? AND e.message_id = ? "
                "ORDER BY e.seq",
                (workspace_id, message_id),
            ).fetchall()
            return [rows.event_from_row(message_id, r) for r in found]

        return await self._read(read)

    # --- idempotency ----------------------------------------------------------------------

    async def get_response(self, workspace_id: str, key: str, now: float) -> StoredResponse | None:
        return await self._read(lambda c: _load_response(c, workspace_id, key, now))

    async def save_response(self, workspace_id: str, write: IdempotencyWrite, now: float) -> None:
        def do(c: sqlite3.Connection) -> None:
            if _load_response(c, workspace_id, write.key, now) is None:
                _store_response(c, workspace_id, write)

        await self._writer.submit(do)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    for migration in migrate.load("sqlite"):
        if migration.version in applied:
            continue
        # executescript runs the whole file; wrapping it in BEGIN/COMMIT makes the migration
        # and its bookkeeping row one atomic step.
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;\n"
                + migration.sql
                + f"\n;INSERT INTO schema_migrations (version, name, applied_at) VALUES "
                f"({migration.version}, '{migration.name}', datetime('now'));\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _load_profile(c: sqlite3.Connection, workspace_id: str, user_id: str) -> dict[str, Any] | None:
    row = c.execute(
        "SELECT profile FROM profiles WHERE workspace_id = ? AND user_id = ?",
        (workspace_id, user_id),
    ).fetchone()
    return None if row is None else dict(rows.loads(row[0]))


def _store_profile(
    c: sqlite3.Connection, workspace_id: str, user_id: str, profile: dict[str, Any], now: float
) -> None:
    c.execute(
        "INSERT INTO profiles (workspace_id, user_id, profile, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (workspace_id, user_id) DO UPDATE SET profile = excluded.profile, "
        "updated_at = excluded.updated_at",
        (workspace_id, user_id, rows.dumps(profile), now),
    )


def _store_message(c: sqlite3.Connection, message: Message) -> None:
    c.execute(
        f"INSERT OR REPLACE INTO messages ({rows.MESSAGE_COLUMNS}) VALUES (:id, :workspace_id, "
        ":status, :recipient, :notification, :event, :run_id, :channel, :provider, "
        ":idempotency_key, :attempts, :attempt_state, :enqueued_at, :sent_at, :delivered_at, "
        ":error, :reason, :content, :providers, :updated_at)",
        rows.message_params(message),
    )


def _store_events(c: sqlite3.Connection, events: Sequence[MessageEvent]) -> None:
    for event in events:
        c.execute(
            "INSERT INTO message_events (message_id, seq, ts, type, detail) VALUES (?, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM message_events WHERE message_id = ?), ?, ?, ?)",
            (event.message_id, event.message_id, event.ts, event.type, rows.dumps(event.detail)),
        )


def _load_response(
    c: sqlite3.Connection, workspace_id: str, key: str, now: float
) -> StoredResponse | None:
    row = c.execute(
        "SELECT status_code, body, fingerprint, expires_at FROM idempotency_keys "
        "WHERE workspace_id = ? AND key = ? AND expires_at > ?",
        (workspace_id, key, now),
    ).fetchone()
    if row is None:
        return None
    return StoredResponse(
        status_code=row[0], body=bytes(row[1]), fingerprint=row[2], expires_at=row[3]
    )


def _store_response(c: sqlite3.Connection, workspace_id: str, write: IdempotencyWrite) -> None:
    c.execute(
        "INSERT OR REPLACE INTO idempotency_keys (workspace_id, key, fingerprint, status_code, "
        "body, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            workspace_id,
            write.key,
            write.fingerprint,
            write.status_code,
            write.body,
            write.expires_at,
        ),
    )
