"""Fixtures for the Store contract suite: one suite, parametrized over every storage backend.

Each backend is a factory that builds an *unopened* store on a location (a per-test temp
directory). Calling the factory twice with the same location must give two stores over the
same data: the durability tests close one and open another.

PostgreSQL runs in the session's throwaway database (``postgres_url`` in tests/conftest.py),
one schema per test, so every test starts empty.

Backend-specific tests (e.g. the SQLite writer's group commit) check ``backend_name``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from relaybox.storage.base import Store
from relaybox.storage.postgres import PostgresStore
from relaybox.storage.sqlite import SqliteStore

#: Builds an unopened store over the data kept at ``location``.
BackendFactory = Callable[[Path, pytest.FixtureRequest], Awaitable[Store]]


async def _sqlite(location: Path, request: pytest.FixtureRequest) -> Store:
    return SqliteStore(str(location / "relaybox.db"))


async def _postgres(location: Path, request: pytest.FixtureRequest) -> Store:
    url = request.getfixturevalue("postgres_url")
    schema = "t_" + hashlib.sha1(str(location).encode()).hexdigest()[:16]
    return PostgresStore(url, schema=schema, writer_threads=2, readers=2)


BACKENDS: dict[str, BackendFactory] = {"sqlite": _sqlite, "postgres": _postgres}


class StoreHarness:
    """Opens stores of one backend on one location and closes whatever is left at teardown."""

    def __init__(
        self, name: str, factory: BackendFactory, location: Path, request: pytest.FixtureRequest
    ) -> None:
        self.name = name
        self._factory = factory
        self._location = location
        self._request = request
        self._open: list[Store] = []

    async def open(self) -> Store:
        store = await self._factory(self._location, self._request)
        await store.open()
        self._open.append(store)
        return store

    async def close(self, store: Store) -> None:
        self._open.remove(store)
        await store.close()

    async def close_all(self) -> None:
        while self._open:
            await self.close(self._open[-1])


@pytest.fixture(params=sorted(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def harness(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreHarness]:
    h = StoreHarness(backend_name, BACKENDS[backend_name], tmp_path, request)
    try:
        yield h
    finally:
        await h.close_all()


@pytest.fixture
async def store(harness: StoreHarness) -> Store:
    return await harness.open()
