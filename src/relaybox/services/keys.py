"""API keys: generated once, stored only as a SHA-256 hash, mapped to a workspace.

Keys carry 192 bits of randomness, so a fast unsalted hash is the right tool (as for
GitHub tokens): there is nothing to brute-force, and checks stay cheap on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict

from relaybox.clock import Clock
from relaybox.errors import NotFound
from relaybox.storage.base import ApiKey, Store

DEFAULT_WORKSPACE = "default"
#: How long a key's workspace is trusted from memory before the database is asked again,
#: which bounds how long a key revoked by another process keeps working here.
CACHE_SECONDS = 30.0
_PREFIX = "rbx_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    def __init__(self, *, store: Store, clock: Clock, cache_size: int = 4096) -> None:
        self._store = store
        self._clock = clock
        #: digest -> (workspace, when it was read); see ``CACHE_SECONDS``.
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._modes: dict[str, bool] = {}
        self._cache_size = cache_size

    async def create(self, workspace_id: str = DEFAULT_WORKSPACE, *, test: bool = False) -> str:
        """Create a key for the workspace (creating the workspace too); returns the key.

        A ``test`` key acts on the same workspace, but its sends deliver nothing: they end
        SIMULATED with their rendered output (Courier's test environment).
        """
        key = _PREFIX + secrets.token_urlsafe(24)
        digest = hash_key(key)
        mode = "test" if test else "live"
        await self._store.add_api_key(workspace_id, digest, key[:8], self._clock.now(), mode=mode)
        return key

    async def register(self, key: str, workspace_id: str = DEFAULT_WORKSPACE) -> None:
        """Accept an operator-chosen key (e.g. ``RELAYBOX_API_KEY``) for the workspace."""
        digest = hash_key(key)
        if await self._store.workspace_for_key(digest) is not None:
            return
        await self._store.add_api_key(workspace_id, digest, key[:8], self._clock.now())

    async def is_test(self, key: str) -> bool:
        """True for a test-environment key (a key's mode never changes, so it is cached)."""
        digest = hash_key(key)
        cached = self._modes.get(digest)
        if cached is None:
            cached = await self._store.key_mode(digest) == "test"
            if len(self._modes) >= self._cache_size:
                self._modes.clear()
            self._modes[digest] = cached
        return cached

    async def list(self, workspace_id: str) -> list[ApiKey]:
        """The workspace's keys (hash and first characters only), revoked ones included."""
        return await self._store.list_api_keys(workspace_id)

    async def revoke(self, workspace_id: str, key_hash: str) -> None:
        """Revoke a key of the workspace: from now on it authenticates nothing.

        At once in this process; other processes sharing the database stop accepting it
        within ``CACHE_SECONDS``.
        """
        if not await self._store.revoke_api_key(workspace_id, key_hash, self._clock.now()):
            raise NotFound("API key not found (or already revoked)")
        self._cache.pop(key_hash, None)
        self._modes.pop(key_hash, None)

    async def ensure_workspace(self, workspace_id: str) -> None:
        """Create the workspace if it is new (an admin may open one that has no key yet)."""
        await self._store.ensure_workspace(workspace_id, self._clock.now())

    async def count(self) -> int:
        return await self._store.count_api_keys()

    async def workspace_for(self, key: str) -> str | None:
        """The workspace a key belongs to, or None; positive answers are cached."""
        digest = hash_key(key)
        now = self._clock.now()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            self._cache.move_to_end(digest)
            return cached[0]
        workspace = await self._store.workspace_for_key(digest)
        if workspace is None:
            self._cache.pop(digest, None)
        else:
            self._cache[digest] = (workspace, now)
            self._cache.move_to_end(digest)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return workspace
