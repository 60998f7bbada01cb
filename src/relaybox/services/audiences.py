"""Courier's Audiences API: filter-defined groups of users, evaluated against profiles.

Audiences are stored as configuration objects (kind ``audience``); membership is not stored
but computed from the profiles whenever it is read or sent to, so it follows profile changes
("membership recalculates automatically as profiles change").
"""

from __future__ import annotations

from typing import Any

from relaybox.clock import Clock, to_iso
from relaybox.domain import audiences
from relaybox.engine.audiences import KIND, members
from relaybox.errors import NotFound
from relaybox.services import paging
from relaybox.storage.base import Resource, Store


def audience_json(resource: Resource) -> dict[str, Any]:
    body = resource.published or {}
    return {
        "id": resource.id,
        "name": body.get("name", ""),
        "description": body.get("description", ""),
        "filter": body.get("filter"),
        "operator": body.get("operator"),
        "created_at": to_iso(resource.created_at),
        "updated_at": to_iso(resource.updated_at),
    }


class AudienceService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def update(
        self, workspace_id: str, audience_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create or replace; the version counts replacements (membership is per version)."""
        fields = audiences.validate(body)
        now = self._clock.now()
        found = await self._store.get_resource(workspace_id, KIND, audience_id)
        version = 1 if found is None else int((found.published or {}).get("version", 0)) + 1
        saved = await self._store.put_resource(
            Resource(
                workspace_id=workspace_id,
                kind=KIND,
                id=audience_id,
                created_at=now if found is None else found.created_at,
                updated_at=now,
                name=fields["name"],
                published={**fields, "version": version},
            )
        )
        return {"audience": audience_json(saved)}

    async def retrieve(self, workspace_id: str, audience_id: str) -> dict[str, Any]:
        return audience_json(await self.get(workspace_id, audience_id))

    async def list_audiences(self, workspace_id: str, cursor: str | None) -> dict[str, Any]:
        found = await self._store.list_resources(
            workspace_id, KIND, after=paging.decode(cursor), limit=paging.PAGE_SIZE + 1
        )
        more = len(found) > paging.PAGE_SIZE
        found = found[: paging.PAGE_SIZE]
        last = found[-1].id if found else None
        return {"items": [audience_json(r) for r in found], "paging": paging.paging(more, last)}

    async def delete(self, workspace_id: str, audience_id: str) -> None:
        if not await self._store.delete_resource(workspace_id, KIND, audience_id):
            raise NotFound(f"Audience {audience_id} not found")

    async def list_members(
        self, workspace_id: str, audience_id: str, cursor: str | None
    ) -> dict[str, Any]:
        resource = await self.get(workspace_id, audience_id)
        body = resource.published or {}
        found: list[str] = []
        async for user_id in members(self._store, workspace_id, body, paging.decode(cursor)):
            found.append(user_id)
            if len(found) > paging.PAGE_SIZE:
                break
        more = len(found) > paging.PAGE_SIZE
        found = found[: paging.PAGE_SIZE]
        items = [
            {
                "audience_id": resource.id,
                "audience_version": int(body.get("version", 1)),
                "member_id": user_id,
                "added_at": to_iso(resource.updated_at),
                "reason": "MATCHES_FILTER",
            }
            for user_id in found
        ]
        return {"items": items, "paging": paging.paging(more, found[-1] if found else None)}

    async def get(self, workspace_id: str, audience_id: str) -> Resource:
        found = await self._store.get_resource(workspace_id, KIND, audience_id)
        if found is None:
            raise NotFound(f"Audience {audience_id} not found")
        return found
