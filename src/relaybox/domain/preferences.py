"""The delivery rule for subscription-topic preferences, shared by the API and the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The message status and reason Courier reports for a send the recipient opted out of.
FILTERED = "FILTERED"
UNSUBSCRIBED = "UNSUBSCRIBED"


def blocks_delivery(status: str | None) -> bool:
    """Only an explicit opt-out stops a message; REQUIRED topics cannot be opted out of."""
    return status == "OPTED_OUT"


def template_topic(template: Mapping[str, Any]) -> str | None:
    """The subscription topic a notification template is linked to, if any."""
    subscription = template.get("subscription")
    if not isinstance(subscription, Mapping):
        return None
    topic = subscription.get("topic_id")
    return topic if isinstance(topic, str) and topic else None
