"""Provider configurations through Courier's /providers API; secrets never leave in full.

Secret settings are sealed (encrypted) by the catalog before they are stored. A secret sent
back as the mask the API shows (``********``, e.g. a client that reads a configuration,
changes its title and PUTs it back) keeps the stored secret instead of replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from relaybox import ids
from relaybox.clock import Clock, to_ms
from relaybox.engine.providers import PROVIDER_KIND, ProviderPool
from relaybox.errors import NotFound, ValidationError
from relaybox.storage.base import Resource, Store

#: What the API shows instead of a secret (``providers.registry.MASK``).
MASK = "********"


class ProviderCatalog(Protocol):
    """What the API needs to know about provider kinds (implemented by providers.registry)."""

    def validate_settings(
        self, provider_key: str, settings: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    def mask_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]: ...

    def secret_fields(self, provider_key: str) -> frozenset[str]: ...

    def entries(
        self, *, channel: str | None = None, keys: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]: ...

    def seal_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]: ...

    def open_settings(self, provider_key: str, settings: Mapping[str, Any]) -> dict[str, Any]: ...


class ProviderService:
    def __init__(
        self, *, store: Store, clock: Clock, catalog: ProviderCatalog, pool: ProviderPool
    ) -> None:
        self._store = store
        self._clock = clock
        self._catalog = catalog
        self._pool = pool

    async def create(self, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        config = self._parse(body)
        now = self._clock.now()
        resource = Resource(
            workspace_id=workspace_id,
            kind=PROVIDER_KIND,
            id=ids.short_id("prv"),
            alias=config.get("alias"),
            name=config["title"],
            published=config,
            published_version=1,
            published_at=now,
            created_at=now,
            updated_at=now,
        )
        saved = await self._store.put_resource(resource)
        self._pool.invalidate(workspace_id)
        return self.present(saved)

    async def replace(
        self, workspace_id: str, provider_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = await self._get(workspace_id, provider_id)
        config = self._parse(body, current)
        return await self._save(current, config)

    async def patch(
        self, workspace_id: str, provider_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = await self._get(workspace_id, provider_id)
        merged = dict(current.published or {})
        for name in ("provider", "title", "alias"):
            if name in body:
                merged[name] = body[name]
        settings = self._stored_settings(current)
        patch = body.get("settings") or {}
        if not isinstance(patch, dict):
            raise ValidationError("settings: Expected object")
        for key, value in patch.items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        merged["settings"] = settings
        return await self._save(current, self._parse(merged, current))

    def catalog(
        self, *, channel: str | None = None, keys: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """The provider types this server speaks (one page: the catalog is small)."""
        results = self._catalog.entries(channel=channel, keys=keys, name=name)
        return {"paging": {"more": False, "cursor": None}, "results": results}

    async def retrieve(self, workspace_id: str, provider_id: str) -> dict[str, Any]:
        return self.present(await self._get(workspace_id, provider_id))

    async def list(self, workspace_id: str, cursor: str | None) -> dict[str, Any]:
        page = await self._store.list_resources(
            workspace_id, PROVIDER_KIND, after=cursor or None, limit=51
        )
        more = len(page) > 50
        page = page[:50]
        return {
            "paging": {"more": more, "cursor": page[-1].id if more else None},
            "results": [self.present(r) for r in page],
        }

    async def delete(self, workspace_id: str, provider_id: str) -> None:
        found = await self._get(workspace_id, provider_id)
        await self._store.delete_resource(workspace_id, PROVIDER_KIND, found.id)
        self._pool.invalidate(workspace_id)

    def present(self, resource: Resource) -> dict[str, Any]:
        config = resource.published or {}
        key = str(config.get("provider"))
        return {
            "id": resource.id,
            "provider": key,
            "title": config.get("title") or "Default Configuration",
            "alias": config.get("alias"),
            "settings": self._catalog.mask_settings(key, config.get("settings") or {}),
            "created": to_ms(resource.created_at),
            "updated": to_ms(resource.updated_at),
        }

    async def _save(self, current: Resource, config: dict[str, Any]) -> dict[str, Any]:
        now = self._clock.now()
        updated = replace(
            current,
            alias=config.get("alias"),
            name=config["title"],
            published=config,
            published_version=current.published_version + 1,
            published_at=now,
            updated_at=now,
        )
        saved = await self._store.put_resource(updated)
        self._pool.invalidate(current.workspace_id)
        return self.present(saved)

    def _keep_masked(self, key: str, settings: dict[str, Any], current: Resource) -> dict[str, Any]:
        """``settings`` with secrets sent back as the mask replaced by the stored values."""
        masked = [name for name in self._catalog.secret_fields(key) if settings.get(name) == MASK]
        if not masked:
            return settings
        stored = self._stored_settings(current)
        return {**settings, **{name: stored.get(name) for name in masked}}

    async def _get(self, workspace_id: str, provider_id: str) -> Resource:
        found = await self._store.get_resource(workspace_id, PROVIDER_KIND, provider_id)
        if found is None:
            raise NotFound(f"Provider configuration {provider_id} not found")
        return found

    def _stored_settings(self, resource: Resource) -> dict[str, Any]:
        config = resource.published or {}
        return self._catalog.open_settings(
            str(config.get("provider")), config.get("settings") or {}
        )

    def _parse(self, body: dict[str, Any], current: Resource | None = None) -> dict[str, Any]:
        key = body.get("provider")
        if not isinstance(key, str) or not key:
            raise ValidationError("provider: Required")
        settings = body.get("settings") or {}
        if not isinstance(settings, dict):
            raise ValidationError("settings: Expected object")
        if current is not None and (current.published or {}).get("provider") == key:
            settings = self._keep_masked(key, settings, current)
        normalised = self._catalog.seal_settings(
            key, self._catalog.validate_settings(key, settings)
        )
        title = body.get("title") or "Default Configuration"
        alias = body.get("alias")
        if not isinstance(title, str):
            raise ValidationError("title: Expected string")
        if alias is not None and (not isinstance(alias, str) or not alias):
            raise ValidationError("alias: Expected a non-empty string")
        return {"provider": key, "title": title, "alias": alias, "settings": normalised}
