"""Delivery-event webhook endpoints (Relaybox's ``/webhooks``): register, list, read, delete.

The signing secret is generated here and returned once, by the create call; afterwards only
its last characters are shown, so a leaked listing cannot forge events.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from relaybox import ids
from relaybox.clock import Clock, to_ms
from relaybox.domain.message_events import STATUS_EVENTS
from relaybox.errors import NotFound, ValidationError
from relaybox.storage.base import Store, WebhookDelivery, WebhookEndpoint

PAGE_SIZE = 50
_FIELDS = frozenset({"url", "events", "description"})

#: Checks a URL's syntax and returns it normalised (the webhook provider's rules).
UrlCheck = Callable[[str], str]
#: Encrypts a secret for storage / decrypts a stored one (identity: stored as is).
Cipher = Callable[[str], Any]


class WebhookService:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        check_url: UrlCheck,
        seal: Cipher = str,
        reveal: Cipher = str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._check_url = check_url
        self._seal = seal
        self._reveal = reveal

    async def create(self, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise ValidationError(
                f"unknown field(s): {', '.join(unknown)}; expected {', '.join(sorted(_FIELDS))}"
            )
        url = body.get("url")
        if not isinstance(url, str):
            raise ValidationError("url: a string is required")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationError("description: Expected string")
        secret = "whsec_" + secrets.token_urlsafe(24)
        endpoint = WebhookEndpoint(
            workspace_id=workspace_id,
            id=ids.short_id("we"),
            url=self._check_url(url),
            # Encrypted at rest like provider secrets; the dispatcher decrypts it to sign.
            secret=str(self._seal(secret)),
            created_at=self._clock.now(),
            events=_events(body.get("events")),
            description=description,
        )
        await self._store.put_webhook_endpoint(endpoint)
        return {**self._present(endpoint), "secret": secret}

    async def list(self, workspace_id: str, cursor: str | None) -> dict[str, Any]:
        found = await self._store.list_webhook_endpoints(
            workspace_id, after=cursor, limit=PAGE_SIZE + 1
        )
        page = found[:PAGE_SIZE]
        more = len(found) > PAGE_SIZE
        return {
            "paging": {"cursor": page[-1].id if more else None, "more": more},
            "results": [self._present(e) for e in page],
        }

    async def retrieve(self, workspace_id: str, endpoint_id: str) -> dict[str, Any]:
        return self._present(await self._get(workspace_id, endpoint_id))

    async def delete(self, workspace_id: str, endpoint_id: str) -> None:
        if not await self._store.delete_webhook_endpoint(workspace_id, endpoint_id):
            raise NotFound(f"Webhook endpoint {endpoint_id} not found")

    async def deliveries(
        self, workspace_id: str, endpoint_id: str, cursor: str | None
    ) -> dict[str, Any]:
        await self._get(workspace_id, endpoint_id)
        before = None
        if cursor:
            if not cursor.isdigit():
                raise ValidationError("cursor: not a cursor this server issued")
            before = int(cursor)
        found = await self._store.list_webhook_deliveries(
            workspace_id, endpoint_id, before=before, limit=PAGE_SIZE + 1
        )
        page = found[:PAGE_SIZE]
        more = len(found) > PAGE_SIZE
        return {
            "paging": {"cursor": str(page[-1].seq) if more else None, "more": more},
            "results": [_delivery(d) for d in page],
        }

    async def redeliver(
        self, workspace_id: str, endpoint_id: str, delivery_id: str
    ) -> dict[str, Any]:
        """Send a failed (or already delivered) event again, from a fresh set of attempts."""
        found = await self._store.redeliver_webhook_delivery(
            workspace_id, endpoint_id, delivery_id, self._clock.now()
        )
        if found is None:
            raise NotFound(f"Delivery {delivery_id} of webhook endpoint {endpoint_id} not found")
        return _delivery(found)

    async def _get(self, workspace_id: str, endpoint_id: str) -> WebhookEndpoint:
        found = await self._store.get_webhook_endpoint(workspace_id, endpoint_id)
        if found is None:
            raise NotFound(f"Webhook endpoint {endpoint_id} not found")
        return found

    def _present(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        try:
            hint: str | None = "whsec_…" + str(self._reveal(endpoint.secret))[-4:]
        except ValidationError:
            hint = None  # sealed with a key this server lacks
        return {
            "id": endpoint.id,
            "url": endpoint.url,
            "events": None if endpoint.events is None else list(endpoint.events),
            "description": endpoint.description,
            "created": to_ms(endpoint.created_at),
            "secret_hint": hint,
        }


def _delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "message_id": delivery.message_id,
        "event": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created": to_ms(delivery.created_at),
        "next_attempt": to_ms(delivery.due_at) if delivery.status == "pending" else None,
        "delivered": to_ms(delivery.delivered_at),
    }


def _events(raw: Any) -> tuple[str, ...] | None:
    """The statuses an endpoint wants; None (absent, null or empty) means all of them."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise ValidationError("events: Expected an array of message statuses")
    unknown = sorted({e for e in raw if e not in STATUS_EVENTS})
    if unknown:
        raise ValidationError(
            f"events: unknown status(es) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(STATUS_EVENTS))}"
        )
    return tuple(dict.fromkeys(raw)) or None
