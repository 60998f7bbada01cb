"""The event dispatcher over a real SQLite store, the real signed poster and a real HTTP
receiver on 127.0.0.1, driven tick by tick with an injected clock: backoff due times, the
attempt cap, and an endpoint's later events waiting behind a failing one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fake_service import Answer, FakeService, Received, fake_service

from relaybox.clock import FrozenClock
from relaybox.domain.retry import RetryPolicy
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.webhook import event_poster
from relaybox.services.event_dispatch import EventDispatcher
from relaybox.storage.base import Message, MessageEvent, WebhookEndpoint
from relaybox.storage.sqlite import SqliteStore

WS = "ws_events"
SECRET = "whsec_integration"


@dataclass
class Receiver:
    """A fake_service answering from ``answers`` in turn, then 200."""

    service: FakeService
    answers: list[int] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)

    def respond(self, _request: Received) -> Answer:
        code = self.answers.pop(0) if self.answers else 200
        self.codes.append(code)
        return code, {}, b""

    @property
    def url(self) -> str:
        return f"{self.service.url}/events"

    @property
    def seen(self) -> list[Received]:
        return self.service.requests

    def statuses(self) -> list[tuple[str, int]]:
        answered = zip(self.seen, self.codes, strict=True)
        return [(r.json()["data"]["status"], code) for r, code in answered]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with fake_service() as service:
        found = Receiver(service)
        service.respond = found.respond
        yield found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "events.db"))
    await opened.open()
    yield opened
    await opened.close()


async def queue_events(store: SqliteStore, url: str, now: float, *statuses: str) -> None:
    await store.put_webhook_endpoint(WebhookEndpoint(WS, "we_1", url, SECRET, now))
    message = Message(
        workspace_id=WS, id="m_1", status=statuses[-1], enqueued_at=now, updated_at=now
    )
    await store.save_message(message, [MessageEvent("m_1", now, s) for s in statuses])


def dispatcher(store: SqliteStore, http: httpx.AsyncClient, clock: FrozenClock) -> EventDispatcher:
    return EventDispatcher(
        store=store,
        clock=clock,
        post=event_poster(http, OutboundGuard(allow=["127.0.0.1"]), timeout=5),
        policy=RetryPolicy(max_attempts=3, base_seconds=10.0, max_seconds=60.0),
        # The clock is frozen, so an idle tick's wall-clock sleep only slows the test down: the
        # due times it sleeps towards are reached by advancing the clock, not by waiting.
        idle_check=0.01,
    )


async def tick(d: EventDispatcher) -> None:
    await d.tick()
    await d.settle()


async def test_backoff_cap_and_order_behind_a_failing_event(
    store: SqliteStore, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    clock = FrozenClock()
    start = clock.now()
    await queue_events(store, receiver.url, start, "ENQUEUED", "SENT")
    receiver.answers = [500, 503, 500]  # ENQUEUED fails three times: its cap
    d = dispatcher(store, http, clock)

    await tick(d)
    assert receiver.statuses() == [("ENQUEUED", 500)]  # SENT waits behind it
    assert await store.next_webhook_due_at(d.owner) == start + 10  # backoff 10 s
    clock.advance(9)
    await tick(d)
    assert len(receiver.seen) == 1  # not due yet
    clock.advance(1)
    await tick(d)
    assert receiver.statuses()[-1] == ("ENQUEUED", 503)
    assert await store.next_webhook_due_at(d.owner) == start + 10 + 20  # then 20 s
    clock.advance(20)
    await tick(d)
    # Third failure: the cap. The event is marked failed and SENT goes out at once.
    await tick(d)
    assert receiver.statuses() == [
        ("ENQUEUED", 500),
        ("ENQUEUED", 503),
        ("ENQUEUED", 500),
        ("SENT", 200),
    ]
    deliveries = {
        d.event_type: d
        for d in await store.list_webhook_deliveries(WS, "we_1", before=None, limit=10)
    }
    failed, sent = deliveries["ENQUEUED"], deliveries["SENT"]
    assert (failed.status, failed.attempts, failed.last_status) == ("failed", 3, 500)
    assert "answered 500" in (failed.last_error or "")
    assert (sent.status, sent.attempts, sent.last_status) == ("delivered", 1, 200)
    assert await store.next_webhook_due_at() is None

    # Finished deliveries are listed for the retention period, then deleted.
    clock.advance(29 * 86400)
    await tick(d)
    assert len(await store.list_webhook_deliveries(WS, "we_1", before=None, limit=10)) == 2
    clock.advance(2 * 86400)
    await tick(d)
    assert await store.list_webhook_deliveries(WS, "we_1", before=None, limit=10) == []

    # Every attempt of an event is the same body and id, signed over timestamp and body.
    first_three = receiver.seen[:3]
    assert len({r.raw for r in first_three}) == 1
    assert len({r.headers["Idempotency-Key"] for r in first_three}) == 1
    for request in receiver.seen:
        signature = request.headers["X-Relaybox-Signature"]
        parts = dict(p.split("=", 1) for p in signature.split(","))
        mac = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + request.raw, hashlib.sha256)
        assert hmac.compare_digest(mac.hexdigest(), parts["v1"])


async def test_refused_addresses_are_failures_not_crashes(
    store: SqliteStore, http: httpx.AsyncClient
) -> None:
    """A URL the outbound guard refuses is recorded as a failed attempt with the reason."""
    clock = FrozenClock()
    await queue_events(store, "http://10.1.2.3/hook", clock.now(), "SENT")
    await tick(dispatcher(store, http, clock))
    [delivery] = await store.list_webhook_deliveries(WS, "we_1", before=None, limit=5)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "private" in (delivery.last_error or "")


async def test_stop_hands_back_claimed_events(
    store: SqliteStore, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    clock = FrozenClock()
    await queue_events(store, receiver.url, clock.now(), "ENQUEUED", "ROUTED", "SENT")
    d = dispatcher(store, http, clock)
    await d.stop()
    await tick(d)  # a claim racing stop(): its events are handed back unattempted
    assert receiver.seen == []
    pending = await store.list_webhook_deliveries(WS, "we_1", before=None, limit=5)
    assert {(p.status, p.attempts, p.due_at) for p in pending} == {("pending", 0, clock.now())}
