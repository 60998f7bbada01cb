"""Send timing with an injected clock: Retry-After, provider timeouts, expiry, idempotency keys.

The engine runs against a real SQLite store and a frozen clock; providers are scripted fakes
(their failures are what real providers raise), so every due time is asserted exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from relaybox.clock import FrozenClock
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.engine.engine import Engine
from relaybox.engine.messaging import Messenger
from relaybox.engine.providers import ProviderPool
from relaybox.engine.steps.send import SendStep
from relaybox.errors import RetryableDeliveryError
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.storage.base import Message, Resource
from relaybox.storage.sqlite import SqliteStore

NOW = 1_700_000_000.0
WS = "ws_routed"
LEASE = 60.0
CONTENT = {"title": "Hi", "body": "b"}


@dataclass
class Fake:
    """A provider whose calls fail with the scripted errors in turn, then succeed."""

    key: str
    channel: str = "webhook"
    supports_idempotency: bool = True
    script: list[BaseException] = field(default_factory=list)
    calls: list[tuple[float, RenderedMessage]] = field(default_factory=list)
    clock: FrozenClock | None = None

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        assert self.clock is not None
        self.calls.append((self.clock.now(), message))
        if self.script:
            raise self.script.pop(0)
        return DeliveryResult(provider_message_id=f"{self.key}-{len(self.calls)}")

    async def aclose(self) -> None:
        pass


@dataclass
class World:
    store: SqliteStore
    clock: FrozenClock
    fakes: dict[str, Fake]
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        pool = ProviderPool(store=self.store, factory=self._factory, clock=self.clock)
        messenger = Messenger(store=self.store, providers=pool, clock=self.clock)
        self.engine = Engine(
            store=self.store,
            clock=self.clock,
            executors={"send": SendStep(store=self.store, messenger=messenger)},
            lease_seconds=LEASE,
            owner="worker-1",
        )

    def _factory(self, provider_key: str, settings: Mapping[str, Any]) -> Fake:
        fake = self.fakes[str(settings["name"])]
        fake.clock = self.clock
        return fake

    async def send(
        self, message: dict[str, Any], message_id: str | None = None, run_id: str = "run_1"
    ) -> Run:
        """Create a one-step run sending ``message`` (as POST /send does) and process it."""
        steps = ({"action": "send", "message": message},)
        run = Run(
            id=run_id,
            workspace_id=WS,
            steps_def=steps,
            steps=(replace(new_steps(steps)[0], message_id=message_id),),
            context=RunContext(recipient="user_ada"),
            status=RunStatus.PROCESSING,
            created_at=self.clock.now(),
            updated_at=self.clock.now(),
            due_at=self.clock.now() + LEASE,
            lease_token=1,
        )
        created = await self.store.create_run(run, lease_owner="worker-1", merge_profile=False)
        assert created.run is not None
        return await self.engine.process(created.run)

    async def resume(self) -> Run:
        [claimed] = await self.store.claim_due_runs(
            "worker-1", self.clock.now(), limit=1, lease_seconds=LEASE
        )
        return await self.engine.process(claimed)

    async def message(self, run: Run) -> Message:
        stored = await self.store.get_run(WS, run.id)
        assert stored is not None
        message_id = stored.steps[0].message_id
        assert message_id is not None
        found = await self.store.get_message(WS, message_id)
        assert found is not None
        return found

    async def events(self, message: Message) -> list[dict[str, Any]]:
        return [
            {"type": e.type, **e.detail} for e in await self.store.message_events(WS, message.id)
        ]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SqliteStore(str(tmp_path / "routed.db"))
    await store.open()
    fakes = {
        "a": Fake("webhook"),
        "b": Fake("webhook"),
        # An SMTP-like provider: nothing downstream deduplicates its calls.
        "m": Fake("smtp", channel="email", supports_idempotency=False),
    }
    for name in fakes:
        await store.put_resource(
            Resource(
                workspace_id=WS,
                kind="provider",
                id=f"prv_{name}",
                created_at=NOW + ord(name),
                updated_at=NOW,
                name=name,
                published={"provider": fakes[name].key, "settings": {"name": name}},
                published_version=1,
                published_at=NOW,
            )
        )
    try:
        yield World(store=store, clock=FrozenClock(NOW), fakes=fakes)
    finally:
        await store.close()


def webhook_only(**more: Any) -> dict[str, Any]:
    return {
        "to": {"user_id": "user_ada"},
        "content": CONTENT,
        "routing": {"method": "single", "channels": ["webhook"]},
        **more,
    }


async def test_retry_after_is_the_next_attempt_time(world: World) -> None:
    """Retry-After 42 s beats the 1 s backoff: the run is due then, and history says so."""
    world.fakes["a"].script = [RetryableDeliveryError("busy", retry_after=42)]
    run = await world.send(webhook_only(channels={"webhook": {"providers": ["prv_a"]}}))
    assert run.status is RunStatus.PROCESSING
    assert run.due_at == NOW + 42
    message = await world.message(run)
    retrying = [e for e in await world.events(message) if e["type"] == "RETRYING"]
    assert [e["next_attempt_at"] for e in retrying] == [round((NOW + 42) * 1000)]
    world.clock.advance(42)
    assert (await world.resume()).status is RunStatus.PROCESSED
    assert [t for t, _ in world.fakes["a"].calls] == [NOW, NOW + 42]


async def test_backoff_grows_per_provider_and_failover_starts_fresh(world: World) -> None:
    """Three retryable failures on a: retries after 1 s and 2 s, then b at once."""
    world.fakes["a"].script = [RetryableDeliveryError("down")] * 3
    run = await world.send(webhook_only())
    assert run.due_at == NOW + 1
    world.clock.advance(1)
    assert (await world.resume()).due_at == NOW + 1 + 2
    world.clock.advance(2)
    assert (await world.resume()).status is RunStatus.PROCESSED
    assert [t for t, _ in world.fakes["a"].calls] == [NOW, NOW + 1, NOW + 3]
    assert [t for t, _ in world.fakes["b"].calls] == [NOW + 3]
    keys = {m.idempotency_key for _, m in world.fakes["a"].calls}
    assert len(keys) == 1
    assert world.fakes["b"].calls[0][1].idempotency_key == f"{keys.pop()}/prv_b"


async def test_provider_timeout_window_stops_retries_and_fails_over(world: World) -> None:
    """timeout.provider: no retry of a starts 2 s after its first try; b takes over then."""
    world.fakes["a"].script = [RetryableDeliveryError("down")] * 3
    run = await world.send(webhook_only(timeout={"provider": {"prv_a": 2000}}))
    world.clock.advance(1)
    run = await world.resume()
    assert run.due_at == NOW + 3
    world.clock.advance(2)
    assert (await world.resume()).status is RunStatus.PROCESSED
    assert len(world.fakes["a"].calls) == 2
    assert [t for t, _ in world.fakes["b"].calls] == [NOW + 3]


async def test_expiry_pulls_the_retry_in_and_ends_undeliverable(world: World) -> None:
    """A retry asked for after the expiry is due at the expiry, which gives the message up."""
    world.fakes["a"].script = [RetryableDeliveryError("down", retry_after=600)]
    only_a = {"webhook": {"providers": ["prv_a"]}}
    run = await world.send(webhook_only(channels=only_a, expiry={"expires_in": "PT10S"}))
    assert run.due_at == NOW + 10
    world.clock.advance(10)
    run = await world.resume()
    assert run.status is RunStatus.ERROR
    message = await world.message(run)
    assert (message.status, message.reason) == ("UNDELIVERABLE", "EXPIRED")
    assert len(world.fakes["a"].calls) == 1
    assert (await world.events(message))[-1]["reason"] == "EXPIRED"


async def test_delay_counts_against_expiry_but_not_the_message_timeout(world: World) -> None:
    """Executed 5 s after the request: a 4 s message timeout has not started yet (it bounds
    the sending), a 4 s expiry has passed (the message is stale)."""
    for message_id in ("msg_timeout", "msg_expiry"):
        queued = Message(
            workspace_id=WS,
            id=message_id,
            status="DELAYED",
            enqueued_at=NOW,
            updated_at=NOW,
            recipient="user_ada",
            run_id="run_1",
            idempotency_key=message_id,
        )
        await world.store.save_message(queued)
    world.clock.advance(5)
    sent = await world.send(webhook_only(timeout={"message": 4000}), message_id="msg_timeout")
    assert sent.status is RunStatus.PROCESSED
    assert len(world.fakes["a"].calls) == 1
    stale = await world.send(
        webhook_only(expiry={"expires_in": 4000}), message_id="msg_expiry", run_id="run_2"
    )
    assert stale.status is RunStatus.ERROR
    message = await world.message(stale)
    assert (message.status, message.reason) == ("UNDELIVERABLE", "EXPIRED")
    assert len(world.fakes["a"].calls) == 1


async def test_channel_timeout_abandons_the_channel(world: World) -> None:
    """timeout.channel: a channel still failing 2 s after its first try is given up."""
    world.fakes["a"].script = [RetryableDeliveryError("down")] * 2
    world.fakes["b"].script = [RetryableDeliveryError("down")] * 2
    run = await world.send(webhook_only(timeout={"channel": {"webhook": 2000}}))
    world.clock.advance(1)
    run = await world.resume()
    world.clock.advance(2)
    run = await world.resume()
    assert run.status is RunStatus.ERROR
    message = await world.message(run)
    assert (message.status, message.reason) == ("UNDELIVERABLE", "PROVIDER_ERROR")
    assert world.fakes["b"].calls == []


async def test_unconfirmed_call_counts_as_sent_and_the_rest_of_all_goes_on(world: World) -> None:
    """A crash inside the email call of an ``all`` send: email is not repeated (it cannot be
    deduplicated) but flagged unconfirmed, and the webhook part is still delivered."""
    world.fakes["m"].script = [RuntimeError("worker process killed")]
    message = {
        "to": {"user_id": "user_ada", "email": "ada@example.com"},
        "content": CONTENT,
        "routing": {"method": "all", "channels": ["email", "webhook"]},
    }
    with pytest.raises(RuntimeError, match="killed"):
        await world.send(message)
    world.clock.advance(LEASE)
    run = await world.resume()
    assert run.status is RunStatus.PROCESSED
    assert len(world.fakes["m"].calls) == 1
    assert len(world.fakes["a"].calls) == 1
    stored = await world.message(run)
    assert stored.status == "SENT"
    assert [(p["integration"], p["status"]) for p in stored.providers] == [
        ("prv_m", "SENT"),
        ("prv_a", "SENT"),
    ]
    assert stored.providers[0]["unconfirmed"] is True
    sent = [e for e in await world.events(stored) if e["type"] == "SENT"]
    assert [e.get("unconfirmed", False) for e in sent] == [True, False]


async def test_a_chain_of_three_webhooks_gets_every_retry_past_the_engine_cap(
    world: World,
) -> None:
    """a and b fail three times each, c twice then delivers: seven executions (the engine's
    generic cap is five), each due exactly at its backoff, every attempt in the history."""
    world.fakes["c"] = Fake("webhook")
    await world.store.put_resource(
        Resource(
            workspace_id=WS,
            kind="provider",
            id="prv_c",
            created_at=NOW + ord("c"),
            updated_at=NOW,
            name="c",
            published={"provider": "webhook", "settings": {"name": "c"}},
            published_version=1,
            published_at=NOW,
        )
    )
    world.fakes["a"].script = [RetryableDeliveryError("a down")] * 3
    world.fakes["b"].script = [RetryableDeliveryError("b down")] * 3
    world.fakes["c"].script = [RetryableDeliveryError("c down")] * 2
    run = await world.send(webhook_only())
    due: list[float] = []
    while run.status is RunStatus.PROCESSING:
        assert run.due_at is not None
        due.append(run.due_at - NOW)
        world.clock.advance(run.due_at - world.clock.now())
        run = await world.resume()
    assert run.status is RunStatus.PROCESSED
    assert due == [1, 3, 4, 6, 7, 9]
    assert [t - NOW for t, _ in world.fakes["a"].calls] == [0, 1, 3]
    assert [t - NOW for t, _ in world.fakes["b"].calls] == [3, 4, 6]
    assert [t - NOW for t, _ in world.fakes["c"].calls] == [6, 7, 9]
    message = await world.message(run)
    assert message.status == "SENT"
    history = [(e["type"], e.get("integration")) for e in await world.events(message)]
    tried = [i for kind, i in history if kind == "ROUTED"]
    assert tried == ["prv_a"] * 3 + ["prv_b"] * 3 + ["prv_c"] * 3
    assert history[-1] == ("SENT", "prv_c")
