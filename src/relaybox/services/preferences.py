"""Users' subscription-topic preferences (``/users/{id}/preferences``) and the opt-out check
the send path uses.

Relaybox has no catalogue of topics yet, so every topic's default is OPTED_IN and its name
is its id; a user's stored choice overrides that default.
"""

from __future__ import annotations

from typing import Any

from relaybox.clock import Clock
from relaybox.errors import ValidationError
from relaybox.services.validation import required_object
from relaybox.storage.base import Preference, Store

STATUSES = ("OPTED_IN", "OPTED_OUT", "REQUIRED")
CHANNELS = ("direct_message", "email", "push", "sms", "webhook", "inbox")
DEFAULT_STATUS = "OPTED_IN"


class PreferenceService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def is_opted_out(self, workspace_id: str, user_id: str, topic_id: str) -> bool:
        """True when the user opted out of the topic (messages for it must not be delivered)."""
        found = await self._store.get_preference(workspace_id, user_id, topic_id)
        return found is not None and found.status == "OPTED_OUT"

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
        status = topic.get("status")
        if status not in STATUSES:
            raise ValidationError(f"topic.status: Expected one of {', '.join(STATUSES)}")
        has_custom = topic.get("has_custom_routing")
        if has_custom is not None and not isinstance(has_custom, bool):
            raise ValidationError("topic.has_custom_routing: Expected boolean")
        routing = topic.get("custom_routing") or []
        if not isinstance(routing, list) or any(c not in CHANNELS for c in routing):
            raise ValidationError(
                f"topic.custom_routing: Expected an array of {', '.join(CHANNELS)}"
            )
        preference = Preference(
            workspace_id,
            user_id,
            topic_id,
            status,
            self._clock.now(),
            bool(has_custom),
            tuple(dict.fromkeys(routing)),
        )
        await self._store.put_preference(preference)
        return {"message": "success"}

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
