"""Fixtures for the Store contract suite: one suite, parametrized over every storage backend.

Each backend is a factory that builds an *unopened* store on a location (a per-test temp
directory). Calling the factory twice with the same location must give two stores over the
same data: the durability tests close one and open another.

To add a backend (e.g. PostgreSQL), add one entry to ``BACKENDS``::

    async def _postgres(location: Path) -> Store:
        url = os.environ.get("RELAYBOX_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("set RELAYBOX_TEST_POSTGRES_URL to run the contract suite on PostgreSQL")
        return PostgresStore(url, schema=f"t_{location.name}")  # one fresh schema per test

    BACKENDS["postgres"] = _postgres

Backend-specific tests (e.g. the SQLite writer's group commit) check ``backend_name``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from relaybox.storage.base import Store
from relaybox.storage.sqlite import SqliteStore

#: Builds an unopened store over the data kept at ``location``.
BackendFactory = Callable[[Path], Awaitable[Store]]


async def _sqlite(location: Path) -> Store:
    return SqliteStore(str(location / "relaybox.db"))


BACKENDS: dict[str, BackendFactory] = {
    "sqlite": _sqlite,
    # "postgres": _postgres,  -- see the module docstring.
}


class StoreHarness:
    """Opens stores of one backend on one location and closes whatever is left at teardown."""

    def __init__(self, name: str, factory: BackendFactory, location: Path) -> None:
        self.name = name
        self._factory = factory
        self._location = location
        self._open: list[Store] = []

    async def open(self) -> Store:
        store = await self._factory(self._location)
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
async def harness(backend_name: str, tmp_path: Path) -> AsyncIterator[StoreHarness]:
    h = StoreHarness(backend_name, BACKENDS[backend_name], tmp_path)
    try:
        yield h
    finally:
        await h.close_all()


@pytest.fixture
async def store(harness: StoreHarness) -> Store:
    return await harness.open()
