"""A single SQLite writer thread with group commit.

SQLite allows one writer at a time, and with ``synchronous=FULL`` every COMMIT costs an
fsync. Funnelling all writes through one thread and committing whatever has queued up
while the previous fsync ran turns N concurrent writes into one fsync, and each caller's
future resolves only after the COMMIT that contains its write has returned: nothing is
acknowledged before it is on disk. Each job runs inside its own SAVEPOINT so a failing job
rolls back alone without spoiling the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from relaybox.errors import StorageError

T = TypeVar("T")
Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]

#: Upper bound on writes in one transaction, so one batch cannot hold the lock for long.
MAX_BATCH = 512


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsync'd at every commit, so an acknowledged write survives power loss,
    # not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Ride out a concurrent writer in another process (e.g. `relaybox keys create`).
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Writer:
    def __init__(self, path: str) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="relaybox-sqlite-writer", daemon=True
        )
        self._conn: sqlite3.Connection | None = None
        #: Commits and jobs so far; read by benchmarks to report the batching factor.
        self.commits = 0
        self.jobs = 0

    def start(self) -> None:
        self._conn = connect(self._path)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._conn is not None:
            self._conn.close()

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, loop, fut))
        return await fut

    def _run(self) -> None:
        assert self._conn is not None
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._commit(self._conn, batch)
            if stop:
                return

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        outcomes: list[tuple[Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                outcomes.append(self._apply(conn, job))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StorageError(f"database write failed: {exc}")
            outcomes = [(job, None, failure) for job in batch]
        self.commits += 1
        self.jobs += len(batch)
        _resolve(outcomes)

    @staticmethod
    def _apply(conn: sqlite3.Connection, job: Job) -> tuple[Job, Any, BaseException | None]:
        conn.execute("SAVEPOINT job")
        try:
            result = job[0](conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return job, None, exc
        conn.execute("RELEASE job")
        return job, result, None


def _resolve(outcomes: list[tuple[Job, Any, BaseException | None]]) -> None:
    """Wake each waiting event loop once per batch rather than once per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, Any]]]
    by_loop = defaultdict(list)
    for (_, loop, fut), result, exc in outcomes:
        by_loop[loop].append((fut, result, exc))
    for loop, items in by_loop.items():
        # The loop may have closed while we were committing; its callers are gone too.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
