"""The ``send`` step, in both of Courier's forms, executed by one pipeline (``RoutedSend``).

The legacy form (``template`` / ``recipient`` / ``profile`` / ``data`` / ``brand``, defaulting
from the run context) is turned into the equivalent Courier ``message`` here; the ``message``
form (POST /send, or a step written that way) is taken as it is. A send cut off mid-call by a
crash is resolved here too, before anything is routed again.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from relaybox import ids
from relaybox.domain import send
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepSucceeded
from relaybox.engine.expressions import Sandbox
from relaybox.engine.messaging import Messenger
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.engine.steps.routed import Outgoing, RoutedSend
from relaybox.storage.base import IdempotencyWrite, Message, MessageEvent, Store

#: How long a send step's ``idempotency_key`` holds when the step gives no expiry.
IDEMPOTENCY_SECONDS = 86_400.0


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
        # The legacy step's ``override`` is keyed by provider, like ``message.providers``.
        "providers": {
            name: {"override": value}
            for name, value in (spec.get("override") or {}).items()
            if isinstance(value, dict)
        },
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
    def __init__(
        self, *, store: Store, messenger: Messenger, sandbox: Sandbox | None = None
    ) -> None:
        self._store = store
        self._messenger = messenger
        self._routed = RoutedSend(messenger=messenger, sandbox=sandbox)

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        step = run.steps[index]
        previous = None
        if step.message_id is not None:
            previous = await self._store.get_message(run.workspace_id, step.message_id)
        resolved: list[MessageEvent] = []
        if previous is not None and previous.attempt_state == "in_flight":
            interrupted = await self._interrupted(previous, index, now)
            if isinstance(interrupted, StepResult):
                return interrupted
            if interrupted is not None:
                previous, event = interrupted
                resolved.append(event)
        message_id = step.message_id or ids.courier_id(now)
        sending = outgoing(run, index)
        key = run.steps_def[index].get("idempotency_key")
        if previous is None and isinstance(key, str) and key:
            claim = await self._claim(run, index, key, message_id, now)
            if claim.get("run") != run.id or claim.get("step") != index:
                return _duplicate(index, key, str(claim["message_id"]))
            message_id = str(claim["message_id"])
            # Scoped to the workspace, as the key itself is.
            sending = replace(sending, idempotency_key=f"{run.workspace_id}/{key}")
        return await self._routed.execute(
            run,
            index,
            now,
            checkpoint,
            sending,
            message_id=message_id,
            previous=previous,
            events=resolved,
        )

    async def _claim(
        self, run: Run, index: int, key: str, message_id: str, now: float
    ) -> dict[str, Any]:
        """The step that holds ``key`` in the workspace: this one, unless another came first.

        The store's idempotency record lets exactly one claimant win a key, even when two
        runs race; a rerun of the winning step finds its own claim (and its message id).
        """
        claimed = orjson.dumps({"run": run.id, "step": index, "message_id": message_id})
        expiry = _expiry(run.steps_def[index].get("idempotency_expiry"), now)
        write = IdempotencyWrite(
            key=f"relaybox:send-step:{key}",
            fingerprint="send-step",
            status_code=200,
            body=claimed,
            expires_at=expiry,
        )
        await self._store.save_response(run.workspace_id, write, now)
        saved = await self._store.get_response(run.workspace_id, write.key, now)
        found = orjson.loads(saved.body if saved is not None else claimed)
        return dict(found)

    async def _interrupted(
        self, message: Message, index: int, now: float
    ) -> StepResult | tuple[Message, MessageEvent] | None:
        """A previous attempt was cut off mid-call; decide whether repeating it is safe.

        None: repeat it (the provider deduplicates on the key). Otherwise the attempt counts
        as sent, unconfirmed: recorded as a delivered attempt so the rest of the route (the
        other parts of an ``all``) still goes ahead, or, when the attempt cannot be placed in
        the route, as the step's result.
        """
        if message.provider is not None and await self._repeatable(message):
            return None
        note = (
            "Delivery unconfirmed: the worker stopped while the provider call was in flight; "
            "not repeated because this provider cannot deduplicate"
        )
        integration = (message.content.get(message.channel or "") or {}).get("channel_id")
        entry = {
            "provider": message.provider,
            "integration": integration,
            "channel": message.channel,
            "ts": now,
            "status": "SENT",
            "unconfirmed": True,
        }
        sent = replace(
            message,
            status="SENT",
            attempt_state=None,
            sent_at=now,
            updated_at=now,
            error=note,
            providers=[*message.providers, entry] if integration else message.providers,
        )
        event = MessageEvent(message.id, now, "SENT", {"unconfirmed": True, "note": note})
        if not integration:
            return StepResult(StepSucceeded(index, message_id=message.id), [sent], [event])
        return sent, event

    async def _repeatable(self, message: Message) -> bool:
        configured = await self._messenger.providers_for(message.workspace_id)
        return any(
            c.key == message.provider and c.provider.supports_idempotency for c in configured
        )


def _duplicate(index: int, key: str, original: str) -> StepResult:
    """Another send step of the workspace already sent under this key: nothing is sent."""
    output = {"idempotency_key": key, "duplicate_of": original}
    ref = {"message_id": original, "duplicate": True}
    return StepResult(StepSucceeded(index, message_id=original, output=output, ref=ref))


def _expiry(value: Any, now: float) -> float:
    """``idempotency_expiry``: epoch seconds or an ISO 8601 date; 24 h by default, the
    shortest lifetime Courier gives an idempotency key."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > now:
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            if parsed.timestamp() > now:
                return parsed.timestamp()
    return now + IDEMPOTENCY_SECONDS
