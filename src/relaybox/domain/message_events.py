"""Delivery events: which history events are status changes, and their retry schedule."""

from __future__ import annotations

from relaybox.domain.retry import RetryPolicy

#: The event type of Courier's outbound message webhooks.
MESSAGE_UPDATED = "message:updated"

#: History event types that are message statuses (Courier's), so each is a status change.
#: RENDERED and RETRYING are steps within a status and produce no event.
STATUS_EVENTS = frozenset(
    {
        "ENQUEUED",
        "DELAYED",
        "ROUTED",
        "SENT",
        "DELIVERED",
        "OPENED",
        "CLICKED",
        "UNDELIVERABLE",
        "UNMAPPED",
        "UNROUTABLE",
        "FILTERED",
        "SIMULATED",
        "CANCELED",
        "THROTTLED",
        "DIGESTED",
    }
)

#: Until a 2xx: 1 s, 2 s, 4 s, … capped at 10 minutes, 12 attempts (about 25 minutes) in all.
DELIVERY_RETRY = RetryPolicy(max_attempts=12, base_seconds=1.0, max_seconds=600.0)
