"""The engine: executes runs by applying the state machine's decisions and persisting them.

A run is worked on by one worker at a time, which holds it under a lease whose fencing
token every commit checks; each step's outcome is committed before the next step starts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from relaybox.clock import Clock
from relaybox.domain.context_changes import context_changes
from relaybox.domain.retry import RetryPolicy
from relaybox.domain.run import Run, RunContext, StepStatus
from relaybox.domain.transitions import (
    Advance,
    Decision,
    StepFailed,
    StepPrepared,
    StepSucceeded,
    decide,
)
from relaybox.engine.expressions import ExpressionError, Sandbox
from relaybox.engine.steps.base import StepExecutor, StepResult
from relaybox.errors import StaleLease
from relaybox.storage.base import Message, MessageEvent, Store

log = logging.getLogger("relaybox.engine")


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        executors: Mapping[str, StepExecutor],
        policy: RetryPolicy | None = None,
        lease_seconds: float = 60.0,
        concurrency: int = 64,
        owner: str | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner or f"worker-{secrets.token_hex(6)}"
        self.lease_seconds = lease_seconds
        self._executors = dict(executors)
        self._io_actions = frozenset(executors)
        self._policy = policy or RetryPolicy()
        self._concurrency = concurrency
        self._queue: asyncio.Queue[Run] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._wake_listeners: list[asyncio.Event] = []
        self._next_wake: list[float] = []
        self._sandbox = sandbox or Sandbox()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._workers = [
            asyncio.create_task(self._work(), name=f"relaybox-worker-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the steps in progress, then hand every claimed run back to the database."""
        self._stopping = True
        for task in self._workers:
            if task not in self._running:
                task.cancel()
        if self._workers:
            await asyncio.wait(self._workers, timeout=grace)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._queue = asyncio.Queue()
        await self.store.release_leases(self.clock.now(), self.owner)

    # --- intake ------------------------------------------------------------------------------

    def submit(self, run: Run) -> None:
        """Queue a run this worker has claimed (or created already claimed)."""
        self._queue.put_nowait(run)

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._running)

    def on_release(self, listener: asyncio.Event) -> None:
        """Set ``listener`` whenever a run is released with a due time (e.g. starts waiting)."""
        self._wake_listeners.append(listener)

    def scheduled(self) -> None:
        """Tell the listeners a run was stored with a future due time (e.g. a delayed send)."""
        for listener in self._wake_listeners:
            listener.set()

    # --- execution ---------------------------------------------------------------------------

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            run = await self._queue.get()
            self._running.add(me)
            try:
                await self.process(run)
            except StaleLease as exc:
                log.info("dropped run %s: %s", run.id, exc)
            except Exception:
                log.exception("run %s failed in the engine; it will be retried", run.id)
            finally:
                self._running.discard(me)

    async def process(self, run: Run) -> Run:
        """Drive a claimed run until it finishes or yields (delay, retry)."""
        while True:
            now = self.clock.now()
            decision = decide(run, Advance(), now, self._policy, self._io_actions)
            spec = None
            if decision.prepare is not None:
                prepared = await self._prepare(decision.run, decision.prepare)
                spec = prepared.spec
                decision = decide(decision.run, prepared, now, self._policy, self._io_actions)
            messages: Sequence[Message] = ()
            events: Sequence[MessageEvent] = ()
            if decision.execute is not None:
                decision, messages, events = await self._execute(decision, spec)
            run = await self._commit(decision, messages, events)
            if decision.yields or self._stopping:
                return run

    async def _prepare(self, run: Run, index: int) -> StepPrepared:
        """Evaluate the step's ``if`` and resolve its ``$ref``/``${...}`` fields (sandboxed)."""
        spec = run.steps_def[index]
        try:
            prepared = await self._sandbox.prepare(
                spec,
                await self._scope(run),
                self.clock.now(),
                evaluate_condition=run.steps[index].condition is None,
            )
        except ExpressionError as exc:
            condition = None
            if isinstance(spec.get("if"), str) and run.steps[index].condition is None:
                condition = {"expression": spec["if"], "error": exc.message}
            return StepPrepared(index, spec, condition=condition, error=exc.message)
        return StepPrepared(index, prepared.spec, condition=prepared.condition)

    async def _scope(self, run: Run) -> dict[str, Any]:
        """The run's scope with each message ref's status read now, not when it was sent.

        Courier's step-ref conditions test e.g. ``welcome_email.status`` against OPENED or
        CLICKED after a delay, so the status must be the message's current one.
        """
        refs = dict(run.context.refs)
        for name, value in run.context.refs.items():
            if isinstance(value, dict) and isinstance(value.get("message_id"), str):
                message = await self.store.get_message(run.workspace_id, value["message_id"])
                if message is not None:
                    refs[name] = {**value, "status": message.status}
        return replace(run.context, refs=refs).scope()

    async def _execute(
        self, decision: Decision, spec: dict[str, object] | None = None
    ) -> tuple[Decision, Sequence[Message], Sequence[MessageEvent]]:
        run = decision.run
        index = decision.execute
        assert index is not None
        original = run.steps_def
        holder = [run]

        async def checkpoint(
            state: Run, messages: Sequence[Message], events: Sequence[MessageEvent]
        ) -> None:
            state = replace(state, steps_def=original)
            holder[0] = await self._commit(Decision(state), messages, events)

        # The executor sees the resolved definition; the stored one keeps the expressions.
        view = run
        if spec is not None:
            resolved = list(original)
            resolved[index] = dict(spec)
            view = replace(run, steps_def=tuple(resolved))
        executor = self._executors[run.steps[index].action]
        result = await executor.execute(view, index, self.clock.now(), checkpoint)
        result = _with_message_ref(result)
        if result.wake:
            for listener in self._wake_listeners:
                listener.set()
        current = replace(holder[0], steps_def=original)
        if result.context is not None:
            current = replace(current, context=result.context)
        after = decide(current, result.event, self.clock.now(), self._policy, self._io_actions)
        after = _with_changes(after, index, run.context)
        if (
            isinstance(result.event, StepFailed)
            and after.run.steps[index].status is StepStatus.ERROR
        ):
            return after, *_undeliverable(result.messages, result.events)
        return after, result.messages, result.events

    async def _commit(
        self, decision: Decision, messages: Sequence[Message], events: Sequence[MessageEvent]
    ) -> Run:
        run = decision.run
        now = self.clock.now()
        if run.finished:
            due = None
        elif decision.release_until is not None:
            due = decision.release_until
        else:
            due = now + self.lease_seconds
        run = replace(run, due_at=due)
        try:
            canceled = await self.store.commit_run(
                run,
                messages=messages,
                events=events,
                cancel_token=decision.cancel_token,
                keep_lease=not decision.yields,
            )
        except StaleLease:
            await self._keep_outcomes(run, messages, events)
            raise
        if canceled:
            log.info("run %s canceled %d run(s) by token", run.id, len(canceled))
        if decision.release_until is not None and not run.finished:
            for listener in self._wake_listeners:
                listener.set()
        return run

    async def _keep_outcomes(
        self, run: Run, messages: Sequence[Message], events: Sequence[MessageEvent]
    ) -> None:
        """Record delivery outcomes of a run that was canceled while its provider call ran.

        The run's own commit was fenced off, but the message did go out (or fail) and nothing
        will revisit it. Only a finished run qualifies: if another worker re-claimed the run,
        it owns the message and will resolve the in-flight attempt itself.
        """
        if not messages:
            return
        stored = await self.store.get_run(run.workspace_id, run.id)
        if stored is None or not stored.finished:
            return
        for message in messages:
            current = await self.store.get_message(run.workspace_id, message.id)
            in_flight = current is not None and current.attempt_state == "in_flight"
            if in_flight and current is not None and current.attempts == message.attempts:
                mine = [e for e in events if e.message_id == message.id]
                await self.store.save_message(message, mine)


def _with_changes(decision: Decision, index: int, before: RunContext) -> Decision:
    """Record on the step what it changed in the context, for the console's debugger."""
    changes = context_changes(before, decision.run.context)
    if changes is None:
        return decision
    step = replace(decision.run.steps[index], changes=changes)
    return replace(decision, run=decision.run.with_step(step))


def _with_message_ref(result: StepResult) -> StepResult:
    """A messaging step's ref is its message: ``refs.<name>.status`` / ``.message_id``."""
    event = result.event
    if not isinstance(event, StepSucceeded) or event.ref is not None or not event.message_id:
        return result
    status = next((m.status for m in result.messages if m.id == event.message_id), None)
    ref = {"status": status, "message_id": event.message_id}
    return replace(result, event=replace(event, ref=ref))


def _undeliverable(
    messages: Sequence[Message], events: Sequence[MessageEvent]
) -> tuple[list[Message], list[MessageEvent]]:
    """Retries are exhausted: pending messages are now undeliverable, not merely delayed."""
    final = {"UNDELIVERABLE", "UNMAPPED", "UNROUTABLE", "SENT", "SIMULATED"}
    updated = [
        m if m.status in final else replace(m, status="UNDELIVERABLE", reason="PROVIDER_ERROR")
        for m in messages
    ]
    history = [replace(e, type="UNDELIVERABLE") if e.type == "RETRYING" else e for e in events]
    return updated, history
