"""Numbered SQL migrations shipped as package data, applied in order exactly once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """Every migration for ``dialect`` ("sqlite", "postgres"), lowest version first."""
    folder = resources.files("relaybox.storage.migrations").joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    # Strictly increasing and unique, not 1..n: branches reserve numbers in parallel, so a
    # branch may lack a number another branch took (e.g. 0001 and 0003 without 0002).
    if len(set(versions)) != len(versions) or any(v < 1 for v in versions):
        raise RuntimeError(
            f"migrations for {dialect} must have unique positive numbers: {versions}"
        )
    return found


class _Dialect(Protocol):
    name: str
    begin: str
    #: Run right after ``begin`` so concurrent migrators (several processes starting at
    #: once) take turns; empty where ``begin`` already serialises writers.
    migration_lock: str
    errors: tuple[type[BaseException], ...]

    def sql(self, text: str) -> str: ...

    def run_script(self, conn: Any, script: str) -> None: ...


def apply(conn: Any, dialect: _Dialect) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction; returns versions.

    Both backends share one numbered history (``migrations/<dialect>/NNNN_name.sql`` with the
    same numbers and names), recorded in ``schema_migrations``.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    done = []
    for migration in load(dialect.name):
        if migration.version in applied:
            continue
        conn.execute(dialect.begin)
        try:
            if dialect.migration_lock:
                conn.execute(dialect.migration_lock)
            recorded = conn.execute(
                dialect.sql("SELECT 1 FROM schema_migrations WHERE version = ?"),
                (migration.version,),
            ).fetchone()
            if recorded is not None:  # another process applied it while we waited
                conn.execute("ROLLBACK")
                continue
            dialect.run_script(conn, migration.sql)
            conn.execute(
                dialect.sql(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
                ),
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(migration.version)
    return done
