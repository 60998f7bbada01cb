"""Group-committing writer threads, shared by the SQL backends.

Every write is a job (a function of a DB-API connection) submitted to one queue. A writer
thread takes whatever has queued up, runs each job inside its own SAVEPOINT (so a failing
job rolls back alone), and commits the batch once: N concurrent writes cost one commit
(one fsync). Each caller's future resolves only after the COMMIT containing its write has
returned, so nothing is acknowledged before it is durable. SQLite runs one writer thread
(it has one writer anyway); PostgreSQL runs several, each with its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from relaybox.errors import StorageError

T = TypeVar("T")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...

    def cursor(self) -> Any: ...

    def close(self) -> None: ...


JobFn = Callable[[Any], Any]
Job = tuple[JobFn, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]

#: Upper bound on writes in one transaction, so one batch cannot hold locks for long.
MAX_BATCH = 512


class Writer:
    def __init__(
        self,
        connect: Callable[[], Connection],
        *,
        threads: int = 1,
        begin: str = "BEGIN",
        errors: tuple[type[BaseException], ...] = (),
        name: str = "relaybox-writer",
    ) -> None:
        self._connect = connect
        self._begin = begin
        self._errors = errors
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        self._lock = threading.Lock()
        #: Commits and jobs so far; benchmarks report jobs / commits as the batching factor.
        self.commits = 0
        self.jobs = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    async def submit(self, fn: Callable[[Any], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, loop, fut))
        return await fut

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _next_batch(self) -> tuple[list[Job], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _commit(self, conn: Connection, batch: list[Job]) -> None:
        outcomes: list[tuple[Job, Any, BaseException | None]] = []
        try:
            conn.execute(self._begin)
            if len(batch) == 1:
                # Alone in its transaction, a job needs no savepoint: rolling back the
                # transaction undoes exactly that job (and saves two round trips).
                outcomes.append(self._apply_alone(conn, batch[0]))
            else:
                for job in batch:
                    outcomes.append(self._apply(conn, job))
            if outcomes[0][2] is not None and len(batch) == 1:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
        except self._errors as exc:
            with contextlib.suppress(*self._errors):
                conn.execute("ROLLBACK")
            failure = StorageError(f"database write failed: {exc}")
            outcomes = [(job, None, failure) for job in batch]
        with self._lock:
            self.commits += 1
            self.jobs += len(batch)
        _resolve(outcomes)

    def _apply_alone(self, conn: Connection, job: Job) -> tuple[Job, Any, BaseException | None]:
        try:
            return job, job[0](conn), None
        except Exception as exc:
            if isinstance(exc, self._errors):
                exc = StorageError(f"database write failed: {exc}")
            return job, None, exc

    def _apply(self, conn: Connection, job: Job) -> tuple[Job, Any, BaseException | None]:
        conn.execute("SAVEPOINT job")
        try:
            result = job[0](conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO SAVEPOINT job")
            conn.execute("RELEASE SAVEPOINT job")
            if isinstance(exc, self._errors):
                exc = StorageError(f"database write failed: {exc}")
            return job, None, exc
        conn.execute("RELEASE SAVEPOINT job")
        return job, result, None


def _resolve(outcomes: Sequence[tuple[Job, Any, BaseException | None]]) -> None:
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
