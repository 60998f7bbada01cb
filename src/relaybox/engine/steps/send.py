"""The ``send`` step: plan a message, record the attempt durably, call the provider."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relaybox import ids
from relaybox.domain.preferences import FILTERED
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.messaging import Messenger, Outcome, SendRequest
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.engine.steps.routed import RoutedSend
from relaybox.storage.base import Message, MessageEvent, Store


def idempotency_key(run: Run, index: int) -> str:
    """Stable for a run's send step across retries, restarts and workers."""
    return f"{run.id}/{index}"


def request_for(run: Run, index: int, message_id: str) -> SendRequest:
    spec = run.steps_def[index]
    ctx = run.context
    data: dict[str, Any] = {**ctx.data, **(spec.get("data") or {})}
    recipient = spec.get("recipient") or ctx.recipient or _recipient_from(data)
    # The run's profile belongs to the run's recipient; a step addressed to someone else
    # must not inherit (and send to) the run recipient's email address.
    inherited = ctx.profile if spec.get("recipient") in (None, ctx.recipient) else {}
    return SendRequest(
        workspace_id=run.workspace_id,
        message_id=message_id,
        idempotency_key=idempotency_key(run, index),
        recipient=recipient,
        template=spec.get("template") or ctx.template,
        data=data,
        profile={**inherited, **(spec.get("profile") or {})},
        brand=spec.get("brand") or ctx.brand,
        run_id=run.id,
    )


def _recipient_from(data: dict[str, Any]) -> str | None:
    # Courier's examples invoke without a recipient and carry the user in data.
    value = data.get("user_id") or data.get("userId")
    return value if isinstance(value, str) else None


class SendStep:
    def __init__(self, *, store: Store, messenger: Messenger) -> None:
        self._store = store
        self._messenger = messenger
        self._routed = RoutedSend(messenger=messenger)

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        step = run.steps[index]
        previous = None
        if step.message_id is not None:
            previous = await self._store.get_message(run.workspace_id, step.message_id)
        if previous is not None and previous.attempt_state == "in_flight":
            interrupted = await self._interrupted(previous, index, now)
            if interrupted is not None:
                return interrupted
        message_id = step.message_id or ids.courier_id(now)
        if isinstance(run.steps_def[index].get("message"), dict):
            # A full Courier message (POST /send, or a send step written that way).
            return await self._routed.execute(
                run, index, now, checkpoint, message_id=message_id, previous=previous
            )
        plan = await self._messenger.plan(request_for(run, index, message_id), now)
        if plan.message.status == FILTERED:
            # The recipient opted out: nothing to deliver, and nothing went wrong.
            done = StepSucceeded(index, message_id=message_id)
            return StepResult(done, [plan.message], plan.events)
        if plan.route is None:
            error = plan.message.error or plan.message.status
            failed = StepFailed(index, error, retryable=False, message_id=message_id)
            return StepResult(failed, [plan.message], plan.events)
        attempt = replace(
            plan.message,
            attempts=(previous.attempts if previous else 0) + 1,
            attempt_state="in_flight",
            providers=previous.providers if previous else [],
            enqueued_at=previous.enqueued_at if previous else now,
        )
        events = plan.events if previous is None else plan.events[1:]
        # The attempt is on disk before the provider sees the message: after a crash the
        # next worker knows a call may have happened and does not blindly repeat it.
        await checkpoint(run.with_step(replace(step, message_id=message_id)), [attempt], events)
        outcome = await self._messenger.deliver(replace(plan, message=attempt), now)
        return _result(index, outcome)

    async def _interrupted(self, message: Message, index: int, now: float) -> StepResult | None:
        """A previous attempt was cut off mid-call; decide whether repeating it is safe."""
        if message.provider is not None and await self._repeatable(message):
            return None
        note = (
            "Delivery unconfirmed: the worker stopped while the provider call was in flight; "
            "not repeated because this provider cannot deduplicate"
        )
        sent = replace(
            message, status="SENT", attempt_state=None, sent_at=now, updated_at=now, error=note
        )
        event = MessageEvent(message.id, now, "SENT", {"unconfirmed": True, "note": note})
        return StepResult(StepSucceeded(index, message_id=message.id), [sent], [event])

    async def _repeatable(self, message: Message) -> bool:
        configured = await self._messenger.providers_for(message.workspace_id)
        return any(
            c.key == message.provider and c.provider.supports_idempotency for c in configured
        )


def _result(index: int, outcome: Outcome) -> StepResult:
    if outcome.delivered:
        event: StepSucceeded | StepFailed = StepSucceeded(index, message_id=outcome.message.id)
    else:
        event = StepFailed(
            index,
            outcome.error or "delivery failed",
            retryable=outcome.retryable,
            retry_after=outcome.retry_after,
            message_id=outcome.message.id,
        )
    return StepResult(event, [outcome.message], outcome.events)
