"""Courier's Lists API: lists (with soft delete and restore) and their subscriptions."""

from __future__ import annotations

from typing import Any

from relaybox.clock import Clock, to_iso
from relaybox.domain.lists import ListPattern
from relaybox.errors import NotFound, ValidationError
from relaybox.services import paging
from relaybox.services.validation import optional_object, required_list, required_string
from relaybox.storage.base import Store, Subscription, SubscriptionList

#: Rows fetched per database round trip while filtering lists by a wildcard pattern.
_SCAN = 200


def list_json(lst: SubscriptionList) -> dict[str, Any]:
    return {
        "id": lst.id,
        "name": lst.name,
        "created": to_iso(lst.created_at),
        "updated": to_iso(lst.updated_at),
    }


class ListService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def find(
        self, workspace_id: str, pattern: str | None, cursor: str | None
    ) -> dict[str, Any]:
        matcher = ListPattern.parse(pattern) if pattern else None
        after = paging.decode(cursor)
        prefix = matcher.prefix if matcher else ""
        found: list[SubscriptionList] = []
        # The database narrows by the pattern's literal prefix; the pattern itself is
        # checked here, scanning on until a page (plus one, to know about "more") is full.
        while len(found) <= paging.PAGE_SIZE:
            batch = await self._store.list_lists(
                workspace_id, prefix=prefix, after=after, limit=_SCAN
            )
            found.extend(x for x in batch if matcher is None or matcher.matches(x.id))
            if len(batch) < _SCAN:
                break
            after = batch[-1].id
        more = len(found) > paging.PAGE_SIZE
        found = found[: paging.PAGE_SIZE]
        last = found[-1].id if found else None
        return {"paging": paging.paging(more, last), "items": [list_json(x) for x in found]}

    async def retrieve(self, workspace_id: str, list_id: str) -> dict[str, Any]:
        return list_json(await self._get(workspace_id, list_id))

    async def put(self, workspace_id: str, list_id: str, body: dict[str, Any]) -> None:
        name = required_string(body.get("name"), "name")
        prefs = optional_object(body.get("preferences"), "preferences")
        await self._store.put_list(workspace_id, list_id, name, prefs, self._clock.now())

    async def delete(self, workspace_id: str, list_id: str) -> None:
        if not await self._store.delete_list(workspace_id, list_id, self._clock.now()):
            raise NotFound(f"List {list_id} not found")

    async def restore(self, workspace_id: str, list_id: str) -> None:
        if not await self._store.restore_list(workspace_id, list_id, self._clock.now()):
            raise NotFound(f"List {list_id} not found")

    # --- subscriptions --------------------------------------------------------------------------

    async def subscriptions(
        self, workspace_id: str, list_id: str, cursor: str | None
    ) -> dict[str, Any]:
        after = paging.decode(cursor)
        await self._get(workspace_id, list_id)
        found = await self._store.list_subscribers(
            workspace_id, list_id, after=after, limit=paging.PAGE_SIZE + 1
        )
        more = len(found) > paging.PAGE_SIZE
        found = found[: paging.PAGE_SIZE]
        items = [
            {
                "recipientId": s.user_id,
                "created": to_iso(s.created_at),
                "preferences": s.preferences,
            }
            for s in found
        ]
        last = found[-1].user_id if found else None
        return {"paging": paging.paging(more, last), "items": items}

    async def add(self, workspace_id: str, list_id: str, body: dict[str, Any]) -> None:
        """Subscribe more users; existing subscriptions are left as they are."""
        subs = self._recipients(workspace_id, list_id, body)
        await self._store.subscribe(subs, update_existing=False)

    async def replace(self, workspace_id: str, list_id: str, body: dict[str, Any]) -> None:
        subs = self._recipients(workspace_id, list_id, body)
        await self._store.replace_subscribers(workspace_id, list_id, subs, self._clock.now())

    async def subscribe_user(
        self, workspace_id: str, list_id: str, user_id: str, body: dict[str, Any]
    ) -> None:
        prefs = optional_object(body.get("preferences"), "preferences")
        sub = Subscription(workspace_id, list_id, user_id, self._clock.now(), prefs)
        await self._store.subscribe([sub], update_existing=True)

    async def unsubscribe_user(self, workspace_id: str, list_id: str, user_id: str) -> None:
        if not await self._store.unsubscribe(workspace_id, list_id, user_id):
            raise NotFound(f"{user_id} is not subscribed to list {list_id}")

    def _recipients(
        self, workspace_id: str, list_id: str, body: dict[str, Any]
    ) -> list[Subscription]:
        now = self._clock.now()
        subs: dict[str, Subscription] = {}
        for i, item in enumerate(required_list(body, "recipients")):
            where = f"recipients[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where}: Expected object")
            user_id = item.get("recipientId", item.get("recipient_id"))
            user_id = required_string(user_id, f"{where}.recipientId")
            prefs = optional_object(item.get("preferences"), f"{where}.preferences")
            # A user listed twice is subscribed once, with the last preferences given.
            subs[user_id] = Subscription(workspace_id, list_id, user_id, now, prefs)
        return list(subs.values())

    async def _get(self, workspace_id: str, list_id: str) -> SubscriptionList:
        found = await self._store.get_list(workspace_id, list_id)
        if found is None:
            raise NotFound(f"List {list_id} not found")
        return found
