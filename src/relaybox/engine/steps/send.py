"""The ``send`` step, in both of Courier's forms, executed by one pipeline (``RoutedSend``).

The legacy form (``template`` / ``recipient`` / ``profile`` / ``data`` / ``brand``, defaulting
from the run context) is turned into the equivalent Courier ``message`` here; the ``message``
form (POST /send, or a step written that way) is taken as it is. A send cut off mid-call by a
crash is resolved here too, before anything is routed again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relaybox import ids
from relaybox.domain import send
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepSucceeded
from relaybox.engine.messaging import Messenger
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.engine.steps.routed import Outgoing, RoutedSend
from relaybox.storage.base import Message, MessageEvent, Store


def idempotency_key(run: Run, index: int) -> str:
    """Stable for a run's send step across retries, restarts and workers."""
    return f"{run.id}/{index}"


def outgoing(run: Run, index: int) -> Outgoing:
    """What step ``index`` sends, with what the run supplies around it."""
    spec = run.steps_def[index]
    ctx = run.context
    if isinstance(spec.get("message"), dict):
        message = dict(spec["message"])
        to = dict(message["to"]) if isinstance(message.get("to"), dict) else {}
        profile: dict[str, Any] = {}
        if send.recipient_id(to) is None and ctx.recipient:
            # An automation step without its own recipient sends to the run's recipient.
            to["user_id"] = ctx.recipient
            profile = dict(ctx.profile)
        return Outgoing({**message, "to": to}, profile=profile, data=dict(ctx.data))
    return _legacy(run, index)


def _legacy(run: Run, index: int) -> Outgoing:
    spec = run.steps_def[index]
    ctx = run.context
    data: dict[str, Any] = {**ctx.data, **(spec.get("data") or {})}
    recipient = spec.get("recipient") or ctx.recipient or _recipient_from(data)
    # The run's profile belongs to the run's recipient; a step addressed to someone else
    # must not inherit (and send to) the run recipient's email address.
    inherited = ctx.profile if spec.get("recipient") in (None, ctx.recipient) else {}
    message = {
        "to": {"user_id": recipient} if recipient else {},
        "template": spec.get("template") or ctx.template,
        "data": data,
        "brand_id": spec.get("brand") or ctx.brand,
    }
    return Outgoing(
        message,
        # The whole profile, not only the address fields a /send recipient may carry.
        profile={**inherited, **(spec.get("profile") or {})},
        idempotency_key=idempotency_key(run, index),
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
        return await self._routed.execute(
            run,
            index,
            now,
            checkpoint,
            outgoing(run, index),
            message_id=message_id,
            previous=previous,
        )

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
