"""What differs between the SQL backends, as named hooks; the shared store calls only these."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from relaybox.storage.writer import Connection


class Dialect(Protocol):
    #: Migration folder name: "sqlite" or "postgres".
    name: str
    #: True when one process owns the database (SQLite): leases left by a crashed process can
    #: be released at start instead of waiting for them to expire.
    exclusive: bool
    #: Statement that opens a write transaction.
    begin: str
    #: The driver's base error classes.
    errors: tuple[type[BaseException], ...]
    #: Run after ``begin`` while migrating, so concurrent migrators take turns.
    migration_lock: str
    #: Appended to the due-run selection of a claim (row locking where the database has it).
    claim_lock: str
    writer_threads: int

    def connect(self, *, readonly: bool = False) -> Connection: ...

    def sql(self, text: str) -> str:
        """Translate the shared SQL text (``?`` and ``:name`` placeholders) to the driver's."""
        ...

    def is_unique_violation(self, exc: BaseException) -> bool: ...

    def run_script(self, conn: Connection, script: str) -> None:
        """Run a multi-statement migration script inside the caller's transaction."""
        ...

    def notify_due(self, conn: Connection) -> None:
        """Tell other processes that a run became due (inside the write's transaction)."""
        ...

    def listen(self, on_wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_wake`` when another process signals due work; returns a stopper."""
        ...

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        """Signal ``channel`` to other processes once the write's transaction commits."""
        ...

    def listen_channel(self, channel: str, on_notify: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_notify(payload)`` for each signal on ``channel``; returns a stopper."""
        ...


_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@lru_cache(maxsize=512)
def pyformat(text: str) -> str:
    """``?`` → ``%s`` and ``:name`` → ``%(name)s``, for drivers with the pyformat paramstyle."""
    return _NAMED.sub(r"%(\1)s", text.replace("%", "%%").replace("?", "%s"))


def no_listen(on_wake: Callable[..., None]) -> Callable[[], None]:
    return lambda: None


def scalar(row: Any) -> Any:
    return None if row is None else row[0]
