"""Which brand a message is rendered with, read through a short cache.

Order (Courier's): the send's own `brand_id` (an automation's `brand`), then the template's
`brand.id`, then the workspace default brand — the brand whose id is `default`. A named brand
that does not exist is skipped rather than failing the send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relaybox.clock import Clock
from relaybox.storage.base import Store

BRAND_KIND = "brand"
DEFAULT_BRAND_ID = "default"


def template_brand_id(template: Mapping[str, Any] | None) -> str | None:
    brand = (template or {}).get("brand")
    found = brand.get("id") if isinstance(brand, Mapping) else None
    return found if isinstance(found, str) and found else None


class BrandCache:
    def __init__(self, *, store: Store, clock: Clock, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._brands: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    def forget(self, workspace_id: str) -> None:
        self._brands = {k: v for k, v in self._brands.items() if k[0] != workspace_id}

    async def resolve(
        self, workspace_id: str, brand_id: str | None, template: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """The brand to render with (`{id, name, settings, snippets}`), or None for none."""
        for candidate in (brand_id, template_brand_id(template), DEFAULT_BRAND_ID):
            if isinstance(candidate, str) and candidate:
                found = await self._get(workspace_id, candidate)
                if found is not None:
                    return found
        return None

    async def _get(self, workspace_id: str, brand_id: str) -> dict[str, Any] | None:
        key = (workspace_id, brand_id)
        now = self._clock.now()
        cached = self._brands.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        found = await self._store.get_resource(workspace_id, BRAND_KIND, brand_id)
        brand = None
        if found is not None and found.published is not None:
            brand = {**found.published, "id": found.id}
        if len(self._brands) > 4096:
            self._brands.clear()
        self._brands[key] = (now, brand)
        return brand
