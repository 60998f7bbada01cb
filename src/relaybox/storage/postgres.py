"""PostgreSQL backend: psycopg 3, several group-committing writers, SKIP LOCKED claims.

LISTEN/NOTIFY only wakes timer loops early; correctness never depends on it (claims and
fencing are in the rows), and every loop still re-checks the earliest due time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg import errors as pg_errors

from relaybox.storage.dialect import pyformat
from relaybox.storage.sql import SqlStore
from relaybox.storage.writer import Connection

log = logging.getLogger("relaybox.postgres")
CHANNEL = "relaybox_due"


class PostgresDialect:
    name = "postgres"
    exclusive = False
    begin = "BEGIN"
    errors: tuple[type[BaseException], ...] = (psycopg.Error,)
    # Concurrent claimers skip each other's rows instead of waiting on them.
    migration_lock = "SELECT pg_advisory_xact_lock(72260011)"
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, writer_threads: int = 4, schema: str | None = None) -> None:
        self.url = url
        self.writer_threads = writer_threads
        #: Optional schema to keep all tables in (tests give each test its own).
        self.schema = schema

    def connect(self, *, readonly: bool = False) -> Connection:
        # autocommit: transactions are opened explicitly by the writer (BEGIN … COMMIT).
        options = f"-c search_path={self.schema}" if self.schema else ""
        conn: Connection = psycopg.connect(self.url, autocommit=True, options=options)
        if self.schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        return conn

    def sql(self, text: str) -> str:
        return pyformat(text)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation)

    def run_script(self, conn: Connection, script: str) -> None:
        conn.execute(script)

    def notify_due(self, conn: Connection) -> None:
        self.notify(conn, CHANNEL, "")

    def listen(self, on_wake: Callable[[], None]) -> Callable[[], None]:
        return self.listen_channel(CHANNEL, lambda _: on_wake())

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def listen_channel(self, channel: str, on_notify: Callable[[str], None]) -> Callable[[], None]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.url, autocommit=True) as conn:
                        conn.execute(f"LISTEN {channel}")
                        while not stop.is_set():
                            for note in conn.notifies(timeout=0.5, stop_after=1):
                                on_notify(note.payload)
                except psycopg.Error as exc:
                    log.warning("LISTEN connection failed (%s); retrying in 1 s", exc)
                    stop.wait(1.0)

        thread = threading.Thread(target=loop, name=f"relaybox-listen-{channel}", daemon=True)
        thread.start()

        def stopper() -> None:
            stop.set()
            thread.join(timeout=2.0)

        return stopper


class PostgresStore(SqlStore):
    def __init__(
        self, url: str, *, readers: int = 4, writer_threads: int = 4, schema: str | None = None
    ) -> None:
        dialect = PostgresDialect(url, writer_threads=writer_threads, schema=schema)
        super().__init__(dialect, readers=readers)
        self.url = url
