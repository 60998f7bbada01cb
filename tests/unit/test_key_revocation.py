"""API key listing and revocation through KeyService, as two processes sharing one database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaybox.clock import FrozenClock
from relaybox.errors import NotFound
from relaybox.services.keys import CACHE_SECONDS, KeyService, hash_key
from relaybox.storage.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "keys.db"))
    await s.open()
    yield s
    await s.close()


async def test_revoked_key_stops_at_once_here_and_within_the_cache_time_elsewhere(
    store: SqliteStore,
) -> None:
    """The revoking process refuses the key at once; another one after CACHE_SECONDS."""
    clock = FrozenClock()
    here = KeyService(store=store, clock=clock)
    elsewhere = KeyService(store=store, clock=clock)
    key = await here.create("ws")
    assert await here.workspace_for(key) == "ws"
    assert await elsewhere.workspace_for(key) == "ws"
    [listed] = await here.list("ws")
    assert (listed.key_hash, listed.prefix, listed.revoked_at) == (hash_key(key), key[:8], None)

    await here.revoke("ws", hash_key(key))
    assert await here.workspace_for(key) is None
    clock.advance(CACHE_SECONDS)
    assert await elsewhere.workspace_for(key) is None
    [revoked] = await here.list("ws")
    assert revoked.revoked_at is not None
    with pytest.raises(NotFound):
        await here.revoke("ws", hash_key(key))
    with pytest.raises(NotFound):
        await here.revoke("other", hash_key(key))
