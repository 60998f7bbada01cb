"""Live provider instances for each workspace, built from stored configuration on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from relaybox.clock import Clock
from relaybox.domain import routing
from relaybox.providers.base import Provider, ProviderFactory
from relaybox.storage.base import Resource, Store

PROVIDER_KIND = "provider"


@dataclass(frozen=True)
class Configured:
    """A provider configuration together with the provider built from it."""

    config: Resource
    provider: Provider

    @property
    def key(self) -> str:
        # Stored as given, which may be Courier's key for it ("firebase-fcm").
        return routing.provider_key(str((self.config.published or {}).get("provider", "")))

    @classmethod
    def ad_hoc(cls, workspace_id: str, integration: str, provider: Provider) -> Configured:
        """A provider built for one message (a direct recipient), under a stand-in
        configuration named ``integration`` so routing and history treat it like any other."""
        config = Resource(
            workspace_id=workspace_id,
            kind=PROVIDER_KIND,
            id=integration,
            created_at=0.0,
            updated_at=0.0,
            published={"provider": provider.key},
        )
        return cls(config=config, provider=provider)


class ProviderPool:
    """Caches built providers per workspace; configurations are re-read after ``ttl`` seconds.

    The short TTL bounds how long another process's configuration change goes unseen; changes
    made through this process invalidate the cache at once.
    """

    def __init__(
        self, *, store: Store, factory: ProviderFactory, clock: Clock, ttl: float = 2.0
    ) -> None:
        self._store = store
        self._factory = factory
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[float, list[Configured]]] = {}
        self._lock = asyncio.Lock()

    async def configured(self, workspace_id: str) -> list[Configured]:
        """The workspace's providers in the order they were configured."""
        cached = self._cache.get(workspace_id)
        if cached is not None and self._clock.now() - cached[0] < self._ttl:
            return cached[1]
        async with self._lock:
            return await self._reload(workspace_id)

    def invalidate(self, workspace_id: str) -> None:
        cached = self._cache.get(workspace_id)
        if cached is not None:
            self._cache[workspace_id] = (float("-inf"), cached[1])

    async def aclose(self) -> None:
        for _, providers in self._cache.values():
            for item in providers:
                await item.provider.aclose()
        self._cache.clear()

    async def _reload(self, workspace_id: str) -> list[Configured]:
        # The version, not updated_at: two saves within one clock tick are still two versions.
        previous = {
            (c.config.id, c.config.published_version): c
            for c in self._cache.get(workspace_id, (0, []))[1]
        }
        configs = await _all_providers(self._store, workspace_id)
        fresh: list[Configured] = []
        for config in configs:
            kept = previous.pop((config.id, config.published_version), None)
            if kept is not None:
                fresh.append(kept)
                continue
            body = config.published or {}
            provider = self._factory(str(body.get("provider")), body.get("settings") or {})
            fresh.append(Configured(config=config, provider=provider))
        for stale in previous.values():
            await stale.provider.aclose()
        fresh.sort(key=lambda c: (c.config.created_at, c.config.id))
        self._cache[workspace_id] = (self._clock.now(), fresh)
        return fresh


async def _all_providers(store: Store, workspace_id: str) -> list[Resource]:
    found: list[Resource] = []
    after: str | None = None
    while True:
        page = await store.list_resources(workspace_id, PROVIDER_KIND, after=after, limit=100)
        found.extend(r for r in page if r.published is not None)
        if len(page) < 100:
            return found
        after = page[-1].id
