"""Users' subscription-topic preferences (``/users/{id}/preferences``) and the opt-out check
the send path uses.

Relaybox has no catalogue of topics yet, so every topic's default is OPTED_IN and its name
is its id; a user's stored choice overrides that default.
"""

from __future__ import annotations

from typing import Any

from relaybox.clock import Clock
from relaybox.domain.preferences import blocks_delivery
from relaybox.errors import ValidationError
from relaybox.services.validation import required_list, required_object, required_string
from relaybox.storage.base import Preference, Store

STATUSES = ("OPTED_IN", "OPTED_OUT", "REQUIRED")
#: What the bulk endpoints accept: REQUIRED is a topic default, not a user's choice.
USER_CHOICES = ("OPTED_IN", "OPTED_OUT")
CHANNELS = ("direct_message", "email", "push", "sms", "webhook", "inbox")
DEFAULT_STATUS = "OPTED_IN"


class PreferenceService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def is_opted_out(self, workspace_id: str, user_id: str, topic_id: str) -> bool:
        """True when the user opted out of the topic (messages for it must not be delivered)."""
        found = await self._store.get_preference(workspace_id, user_id, topic_id)
        return found is not None and blocks_delivery(found.status)

    async def list_topics(self, workspace_id: str, user_id: str) -> dict[str, Any]:
        found = await self._store.list_preferences(workspace_id, user_id)
        # Courier documents this endpoint's paging as "not implemented": always one page.
        return {"items": [topic_json(p) for p in found], "paging": {"cursor": None, "more": False}}

    async def retrieve(self, workspace_id: str, user_id: str, topic_id: str) -> dict[str, Any]:
        found = await self._store.get_preference(workspace_id, user_id, topic_id)
        if found is None:
            # No override: the topic's effective default, as Courier answers.
            found = Preference(workspace_id, user_id, topic_id, DEFAULT_STATUS, 0.0)
        return {"topic": topic_json(found)}

    async def put(
        self, workspace_id: str, user_id: str, topic_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        topic = required_object(body, "topic")
        preference = self._parse(workspace_id, user_id, topic_id, topic, "topic", STATUSES)
        await self._store.put_preference(preference)
        return {"message": "success"}

    async def bulk_update(
        self, workspace_id: str, user_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Set several topics; a bad entry is reported in ``errors`` and the rest apply."""
        items, errors = [], []
        for i, raw in enumerate(required_list(body, "topics")):
            topic_id = raw.get("topic_id") if isinstance(raw, dict) else None
            try:
                topic_id = required_string(topic_id, f"topics[{i}].topic_id")
                preference = self._parse(
                    workspace_id, user_id, topic_id, raw, f"topics[{i}]", USER_CHOICES
                )
            except ValidationError as exc:
                errors.append({"topic_id": topic_id or "", "reason": exc.message})
                continue
            await self._store.put_preference(preference)
            items.append(bulk_json(preference))
        return {"items": items, "errors": errors}

    async def bulk_replace(
        self, workspace_id: str, user_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Make the given topics the user's only overrides (all or nothing)."""
        chosen: dict[str, Preference] = {}
        for i, raw in enumerate(required_list(body, "topics")):
            if not isinstance(raw, dict):
                raise ValidationError(f"topics[{i}]: Expected object")
            topic_id = required_string(raw.get("topic_id"), f"topics[{i}].topic_id")
            chosen[topic_id] = self._parse(
                workspace_id, user_id, topic_id, raw, f"topics[{i}]", USER_CHOICES
            )
        deleted = await self._store.replace_preferences(
            workspace_id, user_id, list(chosen.values())
        )
        return {"items": [bulk_json(p) for p in chosen.values()], "deleted": deleted}

    def _parse(
        self,
        workspace_id: str,
        user_id: str,
        topic_id: str,
        topic: dict[str, Any],
        where: str,
        statuses: tuple[str, ...],
    ) -> Preference:
        status = topic.get("status")
        if status not in statuses:
            raise ValidationError(f"{where}.status: Expected one of {', '.join(statuses)}")
        has_custom = topic.get("has_custom_routing")
        if has_custom is not None and not isinstance(has_custom, bool):
            raise ValidationError(f"{where}.has_custom_routing: Expected boolean")
        routing = topic.get("custom_routing") or []
        if not isinstance(routing, list) or any(c not in CHANNELS for c in routing):
            raise ValidationError(
                f"{where}.custom_routing: Expected an array of {', '.join(CHANNELS)}"
            )
        return Preference(
            workspace_id,
            user_id,
            topic_id,
            status,
            self._clock.now(),
            bool(has_custom),
            tuple(dict.fromkeys(routing)),
        )

    async def delete(self, workspace_id: str, user_id: str, topic_id: str) -> None:
        await self._store.delete_preference(workspace_id, user_id, topic_id)


def topic_json(p: Preference) -> dict[str, Any]:
    """A ``TopicPreference`` (SDK type)."""
    body: dict[str, Any] = {
        "topic_id": p.topic_id,
        "topic_name": p.topic_id,
        "status": p.status,
        "default_status": DEFAULT_STATUS,
        "has_custom_routing": p.has_custom_routing,
    }
    if p.has_custom_routing:
        body["custom_routing"] = list(p.custom_routing)
    return body


def bulk_json(p: Preference) -> dict[str, Any]:
    """A ``BulkPreferenceTopic`` (SDK type)."""
    return {
        "topic_id": p.topic_id,
        "status": p.status,
        "has_custom_routing": p.has_custom_routing,
        "custom_routing": list(p.custom_routing) if p.has_custom_routing else [],
    }


def recipient_preferences(topics: list[Preference]) -> dict[str, Any] | None:
    """A profile's ``RecipientPreferences`` view of the user's topic choices (None if none)."""
    if not topics:
        return None
    notifications = {}
    for p in topics:
        details: dict[str, Any] = {"status": p.status}
        if p.has_custom_routing:
            details["channel_preferences"] = [{"channel": c} for c in p.custom_routing]
        notifications[p.topic_id] = details
    return {"notifications": notifications, "categories": {}}
