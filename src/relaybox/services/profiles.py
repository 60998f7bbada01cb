"""Courier's Profiles API: merge, replace, JSON Patch, read and delete user profiles, plus
the lists a user is subscribed to (``/profiles/{id}/lists``)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from relaybox.clock import Clock, to_iso
from relaybox.errors import NotFound, ValidationError
from relaybox.services import paging
from relaybox.services.preferences import recipient_preferences
from relaybox.services.validation import (
    optional_object,
    required_list,
    required_object,
    required_string,
)
from relaybox.storage.base import Store, Subscription


class ProfileService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def merge(self, workspace_id: str, user_id: str, body: dict[str, Any]) -> None:
        """Shallow-merge ``body.profile`` into the stored profile, creating it if absent."""
        values = required_object(body, "profile")
        await self._store.update_profile(
            workspace_id, user_id, lambda current: {**(current or {}), **values}, self._now()
        )

    async def replace(self, workspace_id: str, user_id: str, body: dict[str, Any]) -> None:
        profile = required_object(body, "profile")
        await self._store.put_profile(workspace_id, user_id, profile, self._now())

    async def patch(self, workspace_id: str, user_id: str, body: dict[str, Any]) -> None:
        """Apply an RFC 6902 patch; a failing operation changes nothing (400)."""
        operations = required_list(body, "patch")
        for i, op in enumerate(operations):
            if not isinstance(op, dict):
                raise ValidationError(f"patch[{i}]: Expected object")
        try:
            patch = jsonpatch.JsonPatch(operations)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise ValidationError(f"patch: {exc}") from None

        def apply(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise NotFound(f"Profile {user_id} not found")
            try:
                patched = patch.apply(current)
            except (
                jsonpatch.JsonPatchException,
                jsonpointer.JsonPointerException,
                TypeError,
                ValueError,
            ) as exc:
                raise ValidationError(f"patch: {exc}") from None
            if not isinstance(patched, dict):
                raise ValidationError("patch: the profile must remain a JSON object")
            return patched

        # Applied inside the write's transaction on the row it locked: concurrent edits
        # cannot interleave, and an exception rolls the whole patch back.
        await self._store.update_profile(workspace_id, user_id, apply, self._now())

    async def retrieve(self, workspace_id: str, user_id: str) -> dict[str, Any]:
        profile = await self._store.get_profile(workspace_id, user_id)
        if profile is None:
            raise NotFound(f"Profile {user_id} not found")
        topics = await self._store.list_preferences(workspace_id, user_id)
        return {"profile": profile, "preferences": recipient_preferences(topics)}

    async def delete(self, workspace_id: str, user_id: str) -> None:
        # Idempotent: deleting an absent profile is not an error (the SDK expects no body).
        await self._store.delete_profile(workspace_id, user_id)

    # --- the user's lists ---------------------------------------------------------------------

    async def lists(self, workspace_id: str, user_id: str, cursor: str | None) -> dict[str, Any]:
        after = paging.decode(cursor)
        found = await self._store.user_subscriptions(
            workspace_id, user_id, after=after, limit=paging.PAGE_SIZE + 1
        )
        more = len(found) > paging.PAGE_SIZE
        found = found[: paging.PAGE_SIZE]
        results = [
            {
                "id": lst.id,
                "name": lst.name,
                "created": to_iso(lst.created_at),
                "updated": to_iso(lst.updated_at),
                "preferences": sub.preferences,
            }
            for lst, sub in found
        ]
        last = found[-1][0].id if found else None
        return {"paging": paging.paging(more, last), "results": results}

    async def subscribe(self, workspace_id: str, user_id: str, body: dict[str, Any]) -> None:
        """Subscribe the user to each list (creating missing lists); preferences update."""
        now = self._now()
        subscriptions = []
        for i, item in enumerate(required_list(body, "lists")):
            where = f"lists[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where}: Expected object")
            list_id = required_string(item.get("listId", item.get("list_id")), f"{where}.listId")
            prefs = optional_object(item.get("preferences"), f"{where}.preferences")
            subscriptions.append(Subscription(workspace_id, list_id, user_id, now, prefs))
        await self._store.subscribe(subscriptions, update_existing=True)

    async def unsubscribe_all(self, workspace_id: str, user_id: str) -> None:
        await self._store.unsubscribe_all(workspace_id, user_id)

    def _now(self) -> float:
        return self._clock.now()
