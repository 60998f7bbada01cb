"""Courier's idempotency contract for POST requests (courier-api.md §2.3).

The first response for a key (success or server error) is saved and replayed for every
later request with the same key until it expires (24 h by default; the caller may ask for
between 24 h and one year). Validation failures save nothing, so a corrected retry runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from relaybox.clock import Clock
from relaybox.errors import ConflictError, UnprocessableError, ValidationError
from relaybox.storage.base import IdempotencyWrite, Store, StoredResponse

DAY = 86_400.0
YEAR = 365 * DAY
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Idempotency:
    """An idempotent request in progress: its key, fingerprint and expiry."""

    workspace_id: str
    key: str
    fingerprint: str
    expires_at: float

    def write(self, status_code: int, body: bytes) -> IdempotencyWrite:
        return IdempotencyWrite(self.key, self.fingerprint, status_code, body, self.expires_at)


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


def parse_expiration(raw: str | None, now: float) -> float:
    """``x-idempotency-expiration``: epoch milliseconds or ISO 8601, clamped to [24 h, 1 y]."""
    if raw is None or not raw.strip():
        return now + DAY
    value = raw.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                "x-idempotency-expiration: expected epoch milliseconds or an ISO 8601 date"
            ) from None
        when = parsed.timestamp() if parsed.tzinfo else parsed.replace(tzinfo=None).timestamp()
    else:
        # Courier documents milliseconds; values too small to be milliseconds of this era
        # are taken as seconds (the SDK's own example sends seconds).
        when = number / 1000 if number > 1e11 else number
    return min(max(when, now + DAY), now + YEAR)


class IdempotencyService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._in_flight: set[tuple[str, str]] = set()

    def begin(self, workspace_id: str, key: str, expiration: str | None, fp: str) -> Idempotency:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValidationError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        return Idempotency(workspace_id, key, fp, parse_expiration(expiration, self._clock.now()))

    async def saved(self, idem: Idempotency) -> StoredResponse | None:
        found = await self._store.get_response(idem.workspace_id, idem.key, self._clock.now())
        if found is not None:
            check_same_request(found, idem)
        return found

    async def run(
        self,
        idem: Idempotency,
        handler: Callable[[], Awaitable[tuple[int, bytes]]],
        *,
        saves_itself: bool = False,
    ) -> tuple[int, bytes]:
        """Run ``handler`` once per key, saving its response unless it was a client error.

        ``saves_itself`` marks handlers that persist the response atomically with their own
        write (invokes do, inside the run's transaction).
        """
        slot = (idem.workspace_id, idem.key)
        if slot in self._in_flight:
            raise ConflictError("A request with this Idempotency-Key is already in progress")
        self._in_flight.add(slot)
        try:
            status, body = await handler()
            if not saves_itself and (status < 400 or status >= 500 or status in {404, 409}):
                await self._store.save_response(
                    idem.workspace_id, idem.write(status, body), self._clock.now()
                )
            return status, body
        finally:
            self._in_flight.discard(slot)


def check_same_request(found: StoredResponse, idem: Idempotency) -> None:
    if found.fingerprint != idem.fingerprint:
        raise UnprocessableError(
            "This Idempotency-Key was already used with a different request; "
            "use a new key for a different request"
        )
