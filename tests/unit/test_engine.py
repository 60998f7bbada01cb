"""The Engine driving runs against a real SQLite store, a frozen clock and a fake provider."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from relaybox.clock import FrozenClock
from relaybox.domain.retry import RetryPolicy
from relaybox.domain.run import Run, RunContext, RunStatus, StepStatus, new_steps
from relaybox.engine.engine import Engine
from relaybox.engine.messaging import Messenger
from relaybox.engine.providers import ProviderPool
from relaybox.engine.steps.send import SendStep
from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, StaleLease
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.storage.base import Message, Resource
from relaybox.storage.sqlite import SqliteStore

NOW = 1_700_000_000.0
WS = "ws_engine"
LEASE = 60.0
TOKEN = "order-42"
SEND: dict[str, Any] = {"action": "send"}


class FakeProvider:
    """Records every send; ``script`` holds what each call does in turn (None = accept)."""

    key = "fake"
    channel = "email"

    def __init__(self, *, supports_idempotency: bool = False) -> None:
        self.supports_idempotency = supports_idempotency
        self.calls: list[RenderedMessage] = []
        self.script: list[BaseException | None] = []
        self.on_send: Callable[[RenderedMessage], Awaitable[None]] | None = None
        self.closed = False

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        self.calls.append(message)
        if self.on_send is not None:
            await self.on_send(message)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return DeliveryResult(
            provider_message_id=f"fake-{len(self.calls)}", response={"accepted": True}
        )

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class World:
    store: SqliteStore
    clock: FrozenClock
    provider: FakeProvider
    #: The worker that creates runs already claimed ("worker-1").
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = self.engine_for("worker-1")

    def engine_for(self, owner: str, policy: RetryPolicy | None = None) -> Engine:
        """Another worker over the same store, clock and providers."""
        pool = ProviderPool(store=self.store, factory=self._factory, clock=self.clock)
        messenger = Messenger(store=self.store, providers=pool, clock=self.clock)
        send = SendStep(store=self.store, messenger=messenger)
        return Engine(
            store=self.store,
            clock=self.clock,
            executors={"send": send},
            policy=policy,
            lease_seconds=LEASE,
            owner=owner,
        )

    def _factory(self, provider_key: str, settings: Mapping[str, Any]) -> FakeProvider:
        assert provider_key == "fake"
        return self.provider

    async def create(
        self,
        run_id: str,
        *steps_def: dict[str, Any],
        token: str | None = None,
        claimed: bool = True,
    ) -> Run:
        """Create a run as the invoke service does: already claimed by ``engine`` by default."""
        steps = tuple(steps_def) or (SEND,)
        now = self.clock.now()
        run = Run(
            id=run_id,
            workspace_id=WS,
            steps_def=steps,
            steps=new_steps(steps),
            context=RunContext(
                recipient="user_ada",
                data={"order": 42},
                profile={"email": "ada@example.com", "name": "Ada"},
                template="welcome",
            ),
            status=RunStatus.PROCESSING,
            created_at=now,
            updated_at=now,
            cancelation_token=token,
            due_at=now + LEASE if claimed else now,
            lease_token=1 if claimed else 0,
        )
        created = await self.store.create_run(
            run, lease_owner=self.engine.owner if claimed else None, merge_profile=True
        )
        assert created.run is not None
        return created.run

    async def run(self, run_id: str) -> Run:
        found = await self.store.get_run(WS, run_id)
        assert found is not None
        return found

    async def message_of(self, run: Run, index: int = 0) -> Message:
        message_id = run.steps[index].message_id
        assert message_id is not None
        found = await self.store.get_message(WS, message_id)
        assert found is not None
        return found

    async def event_types(self, message: Message) -> list[str]:
        return [e.type for e in await self.store.message_events(WS, message.id)]

    async def claim(self, owner: str) -> list[Run]:
        return await self.store.claim_due_runs(
            owner, self.clock.now(), limit=10, lease_seconds=LEASE
        )


async def _configure(store: SqliteStore) -> None:
    """One provider ("fake", email) and a published notification "welcome" in the workspace."""
    await store.put_resource(
        Resource(
            workspace_id=WS,
            kind="provider",
            id="prv_fake",
            created_at=NOW,
            updated_at=NOW,
            name="Fake",
            published={"provider": "fake", "title": "Fake", "settings": {}},
            published_version=1,
            published_at=NOW,
        )
    )
    await store.put_resource(
        Resource(
            workspace_id=WS,
            kind="notification",
            id="nt_welcome",
            alias="welcome",
            created_at=NOW,
            updated_at=NOW,
            name="Welcome",
            draft={
                "name": "Welcome",
                "content": {"title": "Hi {{profile.name}}", "body": "Order {{data.order}}"},
            },
        )
    )
    assert await store.publish_resource(WS, "notification", "nt_welcome", NOW) is not None


@contextlib.asynccontextmanager
async def _world(tmp_path: Path, *, supports_idempotency: bool) -> AsyncIterator[World]:
    store = SqliteStore(str(tmp_path / "engine.db"))
    await store.open()
    try:
        await _configure(store)
        provider = FakeProvider(supports_idempotency=supports_idempotency)
        yield World(store=store, clock=FrozenClock(NOW), provider=provider)
    finally:
        await store.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with _world(tmp_path, supports_idempotency=False) as w:
        yield w


@pytest.fixture(params=[False, True], ids=["no-idempotency", "idempotent"])
async def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with _world(tmp_path, supports_idempotency=bool(request.param)) as w:
        yield w


# --------------------------------------------------------------------------------------------
# Happy path
# --------------------------------------------------------------------------------------------


async def test_one_send_run_is_processed_with_one_provider_call(world: World) -> None:
    """A one-send run ends PROCESSED after exactly one provider call keyed f'{run_id}/0'."""
    run = await world.create("run_1")
    result = await world.engine.process(run)

    assert result.status is RunStatus.PROCESSED
    assert len(world.provider.calls) == 1
    call = world.provider.calls[0]
    assert call.idempotency_key == "run_1/0"
    assert call.to == {"email": "ada@example.com"}
    assert (call.subject, call.text) == ("Hi Ada", "Order 42")
    assert call.recipient == "user_ada"

    stored = await world.run("run_1")
    assert stored.status is RunStatus.PROCESSED
    assert stored.due_at is None
    assert stored.cursor == 1
    assert stored.steps[0].status is StepStatus.PROCESSED
    assert stored.steps[0].attempts == 1
    message = await world.message_of(stored)
    assert message.id == call.message_id
    assert (message.status, message.attempts, message.attempt_state) == ("SENT", 1, None)
    assert message.idempotency_key == "run_1/0"
    assert message.provider == "fake"
    assert message.sent_at == NOW
    assert await world.event_types(message) == ["ENQUEUED", "ROUTED", "RENDERED", "SENT"]
    # Nothing is left for a timer to pick up.
    assert await world.store.next_due_at() is None
    assert await world.store.release_leases(NOW, world.engine.owner) == 0


async def test_two_sends_run_in_order_with_distinct_keys(world: World) -> None:
    """Each send step gets its own message and idempotency key f'{run_id}/{index}'."""
    run = await world.create("run_1", SEND, SEND)
    assert (await world.engine.process(run)).status is RunStatus.PROCESSED
    assert [c.idempotency_key for c in world.provider.calls] == ["run_1/0", "run_1/1"]
    stored = await world.run("run_1")
    assert stored.steps[0].message_id != stored.steps[1].message_id


# --------------------------------------------------------------------------------------------
# Failures and retries
# --------------------------------------------------------------------------------------------


async def test_retryable_failure_releases_the_run_for_one_second(world: World) -> None:
    """A RetryableDeliveryError leaves the run PROCESSING, due in 1 s, message ROUTED/RETRYING."""
    world.provider.script = [RetryableDeliveryError("mailbox busy")]
    run = await world.create("run_1")
    result = await world.engine.process(run)

    assert result.status is RunStatus.PROCESSING
    assert result.due_at == NOW + 1
    stored = await world.run("run_1")
    assert stored.status is RunStatus.PROCESSING
    assert stored.due_at == NOW + 1
    assert stored.steps[0].status is StepStatus.PROCESSING
    assert stored.steps[0].error == "mailbox busy"
    message = await world.message_of(stored)
    assert (message.status, message.attempt_state, message.error) == (
        "ROUTED",
        None,
        "mailbox busy",
    )
    events = await world.event_types(message)
    assert events[-1] == "RETRYING"
    # Released, not held: nobody owns it and it is not claimable before its retry time.
    assert await world.store.release_leases(NOW, world.engine.owner) == 0
    assert await world.claim("worker-2") == []


async def test_retry_resends_the_same_message_with_the_same_key(world: World) -> None:
    """The retry after the backoff re-sends the same message id and key, then finishes."""
    world.provider.script = [RetryableDeliveryError("mailbox busy")]
    await world.engine.process(await world.create("run_1"))
    world.clock.advance(1)
    [claimed] = await world.claim("worker-2")
    result = await world.engine_for("worker-2").process(claimed)

    assert result.status is RunStatus.PROCESSED
    assert [c.idempotency_key for c in world.provider.calls] == ["run_1/0", "run_1/0"]
    assert world.provider.calls[0].message_id == world.provider.calls[1].message_id
    stored = await world.run("run_1")
    assert stored.steps[0].attempts == 2
    message = await world.message_of(stored)
    assert (message.status, message.attempts, message.error) == ("SENT", 2, None)
    assert len(message.providers) == 2
    events = await world.event_types(message)
    assert events == ["ENQUEUED", "ROUTED", "RENDERED", "RETRYING", "ROUTED", "RENDERED", "SENT"]


async def test_exhausted_retries_make_the_message_undeliverable(world: World) -> None:
    """When the provider's last try fails, the run is ERROR and the message UNDELIVERABLE."""
    world.provider.script = [RetryableDeliveryError("busy")] * 3
    engine = world.engine_for("worker-1")
    result = await engine.process(await world.create("run_1"))
    for wait in (1, 2):
        world.clock.advance(wait)
        [claimed] = await world.claim("worker-1")
        result = await engine.process(claimed)
    assert result.status is RunStatus.ERROR
    assert result.error == "Step 1 (send) failed: busy"
    message = await world.message_of(await world.run("run_1"))
    assert (message.status, message.reason) == ("UNDELIVERABLE", "PROVIDER_ERROR")
    assert await world.store.next_due_at() is None
    assert (await world.event_types(message))[-1] == "UNDELIVERABLE"


async def test_a_send_is_bounded_by_its_route_not_the_engine_policy(world: World) -> None:
    """The engine's generic cap does not cut a send short: its route sets the bound."""
    world.provider.script = [RetryableDeliveryError("busy")]
    engine = world.engine_for("worker-1", RetryPolicy(max_attempts=1))
    result = await engine.process(await world.create("run_1"))
    assert result.status is RunStatus.PROCESSING
    world.clock.advance(1)
    [claimed] = await world.claim("worker-1")
    result = await engine.process(claimed)
    assert result.status is RunStatus.PROCESSED
    message = await world.message_of(await world.run("run_1"))
    assert message.status == "SENT"


async def test_unpublished_template_fails_without_calling_the_provider(world: World) -> None:
    """A send whose notification is missing ends the run in ERROR with an UNMAPPED message."""
    run = await world.create("run_1", {"action": "send", "template": "missing"})
    result = await world.engine.process(run)
    assert result.status is RunStatus.ERROR
    assert result.error is not None
    assert 'Notification template "missing" not found' in result.error
    assert world.provider.calls == []
    message = await world.message_of(await world.run("run_1"))
    assert message.status == "UNMAPPED"
    assert await world.event_types(message) == ["ENQUEUED", "UNMAPPED"]


async def test_permanent_failure_ends_the_run_in_error(world: World) -> None:
    """A PermanentDeliveryError fails the run at once and marks the message UNDELIVERABLE."""
    world.provider.script = [PermanentDeliveryError("no such mailbox")]
    result = await world.engine.process(await world.create("run_1", SEND, SEND))
    assert result.status is RunStatus.ERROR
    assert result.error == "Step 1 (send) failed: no such mailbox"
    assert len(world.provider.calls) == 1
    stored = await world.run("run_1")
    assert stored.due_at is None
    message = await world.message_of(stored)
    assert (message.status, message.reason) == ("UNDELIVERABLE", "PROVIDER_ERROR")
    assert (await world.event_types(message))[-1] == "UNDELIVERABLE"


# --------------------------------------------------------------------------------------------
# Crash recovery
# --------------------------------------------------------------------------------------------


async def test_attempt_is_recorded_in_flight_before_the_provider_call(world: World) -> None:
    """A worker dying inside the provider call leaves the message in_flight and the run held."""
    world.provider.script = [RuntimeError("worker process killed")]
    with pytest.raises(RuntimeError, match="killed"):
        await world.engine.process(await world.create("run_1"))
    stored = await world.run("run_1")
    assert stored.status is RunStatus.PROCESSING
    assert stored.due_at == NOW + LEASE
    message = await world.message_of(stored)
    assert (message.status, message.attempt_state, message.attempts) == ("ROUTED", "in_flight", 1)


async def test_in_flight_attempt_after_crash(any_world: World) -> None:
    """After a crash mid-call, a non-idempotent provider is not called again; an idempotent one is.

    Without deduplication the message is marked SENT with an 'unconfirmed' note; with it the
    message is re-sent under the same idempotency key.
    """
    world = any_world
    world.provider.script = [RuntimeError("worker process killed")]
    with pytest.raises(RuntimeError, match="killed"):
        await world.engine.process(await world.create("run_1"))

    world.clock.advance(LEASE)
    [claimed] = await world.claim("worker-2")
    result = await world.engine_for("worker-2").process(claimed)

    assert result.status is RunStatus.PROCESSED
    stored = await world.run("run_1")
    message = await world.message_of(stored)
    assert message.status == "SENT"
    assert message.attempt_state is None
    events = await world.store.message_events(WS, message.id)
    if world.provider.supports_idempotency:
        assert [c.idempotency_key for c in world.provider.calls] == ["run_1/0", "run_1/0"]
        assert world.provider.calls[1].message_id == message.id
        assert message.attempts == 2
        assert message.error is None
        assert events[-1].type == "SENT"
        assert "unconfirmed" not in events[-1].detail
    else:
        assert len(world.provider.calls) == 1
        assert message.attempts == 1
        assert message.error is not None
        assert "unconfirmed" in message.error
        assert events[-1].type == "SENT"
        assert events[-1].detail["unconfirmed"] is True


# --------------------------------------------------------------------------------------------
# Cancellation and fencing
# --------------------------------------------------------------------------------------------


async def test_cancel_step_cancels_runs_with_the_token(world: World) -> None:
    """A run's cancel step cancels the other active runs carrying that token."""
    victim = await world.create("victim", {"action": "delay", "duration": "1h"}, SEND, token=TOKEN)
    assert (await world.engine.process(victim)).status is RunStatus.WAITING
    canceler = await world.create("canceler", {"action": "cancel", "cancelation_token": TOKEN})
    assert (await world.engine.process(canceler)).status is RunStatus.PROCESSED
    stored = await world.run("victim")
    assert stored.status is RunStatus.CANCELED
    assert stored.visible_steps()[0].status is StepStatus.CANCELED
    assert await world.store.next_due_at() is None
    assert world.provider.calls == []


async def test_stale_lease_when_canceled_by_token_between_claim_and_commit(world: World) -> None:
    """A run canceled by token after its claim raises StaleLease and never reaches the provider."""
    await world.create("victim", token=TOKEN, claimed=False)
    [held] = await world.claim(world.engine.owner)
    canceler = await world.create("canceler", {"action": "cancel", "cancelation_token": TOKEN})
    await world.engine.process(canceler)

    with pytest.raises(StaleLease):
        await world.engine.process(held)
    assert world.provider.calls == []
    stored = await world.run("victim")
    assert stored.status is RunStatus.CANCELED
    assert stored.steps[0].message_id is None


async def test_cancel_during_provider_call_fences_the_final_commit(world: World) -> None:
    """A cancel landing while the provider call is in flight makes the outcome commit stale."""

    async def cancel_meanwhile(message: RenderedMessage) -> None:
        await world.store.cancel_run(WS, "run_1", world.clock.now())

    world.provider.on_send = cancel_meanwhile
    with pytest.raises(StaleLease):
        await world.engine.process(await world.create("run_1", SEND, SEND))
    assert len(world.provider.calls) == 1
    stored = await world.run("run_1")
    assert stored.status is RunStatus.CANCELED
    assert stored.cursor == 0


async def test_delivery_outcome_is_kept_when_the_run_was_canceled_meanwhile(world: World) -> None:
    """A message the provider accepted is recorded SENT even if its run was canceled mid-call."""

    async def cancel_meanwhile(message: RenderedMessage) -> None:
        await world.store.cancel_run(WS, "run_1", world.clock.now())

    world.provider.on_send = cancel_meanwhile
    with pytest.raises(StaleLease):
        await world.engine.process(await world.create("run_1"))
    message = await world.message_of(await world.run("run_1"))
    # The provider accepted it: the message must not stay in_flight/ROUTED forever.
    assert (message.status, message.attempt_state) == ("SENT", None)


async def test_expired_lease_passes_the_run_to_another_worker_and_fences_the_first(
    world: World,
) -> None:
    """A worker whose lease expired mid-call cannot commit; the next worker finishes the run."""
    second = world.engine_for("worker-2")
    taken_over: list[Run] = []

    async def stall_past_the_lease(message: RenderedMessage) -> None:
        # The first worker hangs in the provider call until its lease is long gone, and
        # another worker claims the run meanwhile (its timer loop would do exactly this).
        world.provider.on_send = None
        world.clock.advance(LEASE + 1)
        taken_over.extend(await world.claim(second.owner))
        await second.process(taken_over[0])

    world.provider.on_send = stall_past_the_lease
    with pytest.raises(StaleLease):
        await world.engine.process(await world.create("run_1", SEND, SEND))

    assert [r.id for r in taken_over] == ["run_1"]
    stored = await world.run("run_1")
    assert stored.status is RunStatus.PROCESSED
    # The in-flight first send was not repeated (this provider cannot deduplicate); the
    # second send ran once, by the second worker.
    assert [c.idempotency_key for c in world.provider.calls] == ["run_1/0", "run_1/1"]
    first = await world.message_of(stored, 0)
    assert first.status == "SENT"
    assert "unconfirmed" in (first.error or "")


# --------------------------------------------------------------------------------------------
# Conditions and refs (evaluated by the engine's sandbox before the state machine acts)
# --------------------------------------------------------------------------------------------


async def test_condition_uses_the_engine_clock_and_skips_the_step(world: World) -> None:
    """Date.now() in an if is the engine's (frozen) clock; a false if skips without sending."""
    spec = {**SEND, "if": f"Date.now() > {(NOW + 1) * 1000}", "ref": "maybe"}
    run = await world.create("run_1", spec, {**SEND, "if": "maybe.status === 'SKIPPED'"})
    result = await world.engine.process(run)

    assert result.status is RunStatus.PROCESSED
    assert [s.status for s in result.steps] == [StepStatus.SKIPPED, StepStatus.PROCESSED]
    assert result.steps[0].condition == {
        "expression": spec["if"],
        "result": False,
        "reads": [],
    }
    assert len(world.provider.calls) == 1
    stored = await world.run("run_1")
    assert stored.context.refs["maybe"] == {"status": "SKIPPED"}
    assert stored.steps_def[0]["if"] == spec["if"]


async def test_message_ref_status_is_read_live_when_a_later_step_is_prepared(
    world: World,
) -> None:
    """refs.<name>.status reflects the message's current status (e.g. after a click)."""
    run = await world.create(
        "run_1",
        {**SEND, "ref": "welcome"},
        {"action": "delay", "duration": "1 hour"},
        {**SEND, "if": "welcome.status !== 'CLICKED'"},
    )
    waiting = await world.engine.process(run)
    assert waiting.status is RunStatus.WAITING
    assert waiting.context.refs["welcome"]["status"] == "SENT"
    message = await world.message_of(waiting)
    await world.store.save_message(replace(message, status="CLICKED"))

    world.clock.advance(3600)
    (claimed,) = await world.claim("worker-1")
    result = await world.engine.process(claimed)
    assert result.status is RunStatus.PROCESSED
    assert result.steps[2].status is StepStatus.SKIPPED
    assert result.steps[2].condition is not None
    assert result.steps[2].condition["reads"] == [{"path": "welcome.status", "value": "CLICKED"}]
    assert len(world.provider.calls) == 1


async def test_resolved_fields_reach_the_executor_but_not_the_stored_definition(
    world: World,
) -> None:
    """A send's ${...} template is resolved for the send; the stored step keeps the expression."""
    run = await world.create("run_1", {**SEND, "template": "${data.order > 40 ? 'welcome' : 'x'}"})
    result = await world.engine.process(run)
    assert result.status is RunStatus.PROCESSED
    assert world.provider.calls[0].subject == "Hi Ada"
    stored = await world.run("run_1")
    assert stored.steps_def[0]["template"].startswith("${")
