"""Dispatches queued delivery events to webhook endpoints, durably.

Events are outbox rows the store writes in the commit of each status change. This loop works
like the timer loop: it sleeps until the earliest due delivery (or a hint that new ones were
queued, from this or another process), claims a bounded batch under a lease, and posts each
event signed. Nothing waits in memory: a failed attempt is a due time in its row (exponential
backoff), and a crash leaves leased rows that come due again when the lease ends.

An endpoint's events go out one at a time in the order they were queued, across processes:
a claim leases the endpoint as well as its deliveries, so only one dispatcher sends to it until
that lease ends. After a failure the rest of its batch waits behind the failed one, so a
receiver sees ENQUEUED before SENT unless an event had to be retried or ran out of attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from relaybox.clock import Clock
from relaybox.domain.message_events import DELIVERY_RETRY, MESSAGE_UPDATED
from relaybox.domain.retry import RetryPolicy
from relaybox.errors import DeliveryError
from relaybox.scheduler.due_loop import keep_ticking, sleep_until_due, wait_for_poke
from relaybox.services.messages import details
from relaybox.storage.base import WEBHOOK_TOPIC, Store, WebhookDelivery

log = logging.getLogger("relaybox.webhooks")

#: Posts ``body`` to ``url`` signed with ``secret``, ``Idempotency-Key: key``; returns the
#: response status. Raises DeliveryError for anything but a 2xx.
Post = Callable[[str, str, bytes, str], Awaitable[int]]

#: How long delivered, failed and canceled deliveries stay listed before they are deleted.
DELIVERY_RETENTION = 30 * 86400.0
PURGE_EVERY = 3600.0
PURGE_LIMIT = 1000

#: Longest one attempt may take (the poster's own limit is shorter).
ATTEMPT_SECONDS = 15.0


def event_body(delivery: WebhookDelivery) -> bytes:
    """Courier's outbound message webhook: ``{"type": "message:updated", "data": message}``.

    ``data`` is the message as GET /messages/{id} shows it, as committed with the change,
    with ``status`` the status this event reports.
    """
    message = delivery.message
    data: dict[str, Any] = {
        **details(message),
        "status": delivery.event_type,
        "providers": message.providers,
    }
    return orjson.dumps({"type": MESSAGE_UPDATED, "data": data})


class EventDispatcher:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        post: Post,
        lease_seconds: float = 60.0,
        batch: int = 64,
        concurrency: int = 16,
        policy: RetryPolicy = DELIVERY_RETRY,
        idle_check: float = 30.0,
        retention: float = DELIVERY_RETENTION,
    ) -> None:
        self._store = store
        self._clock = clock
        self._post = post
        # A lease must outlast at least one attempt, or a slow receiver gets duplicates.
        self._lease = max(lease_seconds, ATTEMPT_SECONDS + 1.0)
        self._batch = batch
        self._concurrency = concurrency
        self._policy = policy
        self._idle_check = idle_check
        self._retention = retention
        self._next_purge = 0.0
        self.owner = f"dispatcher-{secrets.token_hex(6)}"
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        #: Claimed events per endpoint not yet attempted, with their claim times.
        self._queues: dict[tuple[str, str], list[tuple[WebhookDelivery, float]]] = {}

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def hint(_: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                loop.call_soon_threadsafe(self._poke.set)

        self._store.watch(WEBHOOK_TOPIC, hint)
        self._task = asyncio.create_task(self._run(), name="relaybox-event-dispatch")

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the attempts in progress (up to ``grace`` seconds) and hand back the rest.

        An attempt still running after that is abandoned and its event handed back too, due
        at once (receivers deduplicate on its id); the endpoints this dispatcher held are
        freed for the others.
        """
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        try:
            await self._store.release_webhook_leases(self._clock.now(), owner=self.owner)
        except Exception:  # the leases end by themselves; stopping must not fail on it
            log.warning("could not release webhook leases on stop", exc_info=True)

    async def settle(self) -> None:
        """Wait until the deliveries started so far have finished (or been handed back)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _run(self) -> None:
        await keep_ticking(self.tick, log, "event dispatch")

    async def tick(self) -> None:
        """Claim what is due (as far as there is room), then sleep until due or poked."""
        self._poke.clear()
        await self._purge()
        room = self._concurrency - len(self._inflight)
        if room > 0:
            now = self._clock.now()
            claimed = await self._store.claim_webhook_deliveries(
                self.owner, now, limit=min(self._batch, room * 4), lease_seconds=self._lease
            )
            for delivery in claimed:
                self._enqueue(delivery, now)
            if claimed:
                return
        else:
            # Every slot is busy: the next finished endpoint pokes the loop.
            await wait_for_poke(self._poke, self._idle_check)
            return
        next_due = await self._store.next_webhook_due_at(self.owner)
        await sleep_until_due(
            self._poke, self._clock, (next_due,), idle_check=self._idle_check, leased_pause=0.01
        )

    async def _purge(self) -> None:
        """Now and then, delete finished deliveries older than the retention (bounded)."""
        now = self._clock.now()
        if now < self._next_purge:
            return
        deleted = await self._store.purge_webhook_deliveries(
            now - self._retention, limit=PURGE_LIMIT
        )
        # More left: go on at the next tick; otherwise look again in an hour.
        self._next_purge = now if deleted >= PURGE_LIMIT else now + PURGE_EVERY

    def _enqueue(self, delivery: WebhookDelivery, claimed_at: float) -> None:
        """Queue behind the endpoint's events in flight, or start delivering to it."""
        key = (delivery.workspace_id, delivery.endpoint_id)
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((delivery, claimed_at))
            return
        self._queues[key] = [(delivery, claimed_at)]
        task = asyncio.create_task(self._drain(key))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._poke.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivering events failed", exc_info=task.exception())

    async def _drain(self, key: tuple[str, str]) -> None:
        """Deliver one endpoint's queued events one at a time, in order."""
        queue = self._queues[key]
        try:
            while queue:
                delivery, claimed_at = queue.pop(0)
                now = self._clock.now()
                if self._stopping or now + ATTEMPT_SECONDS > claimed_at + self._lease:
                    # Shutting down, or the lease would end mid-attempt: hand it back now
                    # rather than leave it leased or race another dispatcher for it.
                    await self._put_back([delivery], now)
                    continue
                retry_at = await self._attempt(delivery)
                # After a failure the endpoint's other claimed events (including any queued
                # while handing these back) wait behind the failed one.
                while retry_at is not None and queue:
                    rest = [d for d, _ in queue]
                    queue.clear()
                    await self._put_back(rest, retry_at)
        finally:
            del self._queues[key]

    async def _put_back(self, rest: list[WebhookDelivery], at: float) -> None:
        for delivery in rest:
            await self._store.finish_webhook_delivery(
                delivery, now=at, status="pending", retry_at=at, attempted=False
            )

    async def _attempt(self, delivery: WebhookDelivery) -> float | None:
        """Post one event and record the outcome; the retry time if it must be retried."""
        try:
            code = await asyncio.wait_for(
                self._post(delivery.url, delivery.secret, event_body(delivery), delivery.id),
                timeout=ATTEMPT_SECONDS,
            )
        except (DeliveryError, TimeoutError) as exc:
            return await self._failed(delivery, exc)
        except Exception as exc:  # a bug must not lose the event: retry it like a failure
            log.exception("posting event %s failed unexpectedly", delivery.id)
            return await self._failed(delivery, exc)
        await self._store.finish_webhook_delivery(
            delivery, now=self._clock.now(), status="delivered", status_code=code
        )
        return None

    async def _failed(self, delivery: WebhookDelivery, exc: BaseException) -> float | None:
        now = self._clock.now()
        attempt = delivery.attempts + 1
        error = exc.message if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        raw_code = exc.response.get("status") if isinstance(exc, DeliveryError) else None
        code = raw_code if isinstance(raw_code, int) else None
        if self._policy.exhausted(attempt):
            log.warning("event %s to %s failed for good: %s", delivery.id, delivery.url, error)
            await self._store.finish_webhook_delivery(
                delivery, now=now, status="failed", error=error, status_code=code
            )
            return now
        retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
        retry_at = now + self._policy.backoff(attempt, retry_after)
        await self._store.finish_webhook_delivery(
            delivery, now=now, status="pending", retry_at=retry_at, error=error, status_code=code
        )
        return retry_at
