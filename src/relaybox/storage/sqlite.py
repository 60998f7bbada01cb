"""SQLite backend: WAL with ``synchronous=FULL``, one group-committing writer thread."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from relaybox.errors import ValidationError
from relaybox.storage.dialect import no_listen
from relaybox.storage.sql import SqlStore
from relaybox.storage.writer import Connection


def path_from_url(url: str) -> str:
    """``sqlite:///./relaybox.db`` → ``./relaybox.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    if not url.startswith("sqlite:///"):
        raise ValidationError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return url[len("sqlite:///") :]


class SqliteDialect:
    name = "sqlite"
    exclusive = True
    # IMMEDIATE takes the write lock up front, so a batch never fails half-way on a lock upgrade.
    begin = "BEGIN IMMEDIATE"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    migration_lock = ""
    claim_lock = ""
    # SQLite has one writer at a time; more threads would only queue on its lock.
    writer_threads = 1

    def __init__(self, path: str) -> None:
        self.path = path

    def connect(self, *, readonly: bool = False) -> Connection:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsync'd at every commit, so an acknowledged write survives power
        # loss, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        # Ride out a concurrent writer in another process (e.g. `relaybox keys create`).
        conn.execute("PRAGMA busy_timeout=30000")
        if readonly:
            conn.execute("PRAGMA query_only=ON")
        return conn

    def sql(self, text: str) -> str:
        return text

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def run_script(self, conn: Connection, script: str) -> None:
        # executescript() would COMMIT the caller's transaction first; split instead.
        statement = ""
        for line in script.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                conn.execute(statement)
                statement = ""
        if statement.strip():
            conn.execute(statement)

    def notify_due(self, conn: Connection) -> None:
        """One process owns the file and pokes its own timer loop; nothing to signal."""

    def listen(self, on_wake: Callable[[], None]) -> Callable[[], None]:
        return no_listen(on_wake)

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        """Only this process writes; the store's in-process hints reach every listener."""

    def listen_channel(self, channel: str, on_notify: Callable[[str], None]) -> Callable[[], None]:
        return no_listen(on_notify)


class SqliteStore(SqlStore):
    def __init__(self, path: str, *, readers: int = 4) -> None:
        super().__init__(SqliteDialect(path), readers=readers)
        self.path = path
