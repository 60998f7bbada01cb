"""One /send message as a one-step internal run plus its message row, ready to store.

Shared by ``POST /send`` (services/sending.py) and the fan-out of list recipients
(engine/steps/send_list.py), so a message addressed directly and one reached through a list
are the same thing: an ``ENQUEUED`` (or ``DELAYED``) message whose run's ``send`` step
carries the full message and already names the message id. The pieces are the one way to
build such runs (also /send's fan-out run) and messages (also an automation send step's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from relaybox import ids
from relaybox.clock import to_ms
from relaybox.domain import send as send_request
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.storage.base import Message, MessageEvent, Store

#: ``Run.source`` of the internal runs behind /send (kept out of automation run listings).
SEND_SOURCE = "send"


@dataclass(frozen=True)
class MessageRun:
    run: Run
    message: Message
    events: list[MessageEvent]


def message_run(
    workspace_id: str,
    body: dict[str, Any],
    now: float,
    *,
    message_id: str | None = None,
    request_id: str | None = None,
    not_before: float | None = None,
    tags: tuple[str, ...] = (),
    trace_id: str | None = None,
    window: str | None = None,
) -> MessageRun:
    """The run and message for one per-recipient ``body``; held until ``not_before`` if later
    (``window``: the delivery window that time was computed from, shown in the history)."""
    message_id = message_id or ids.courier_id(now)
    delayed = not_before is not None and not_before > now
    run = one_step_run(
        workspace_id,
        {"action": "send", "message": body},
        now,
        # Fixed up front so GET /messages/{id} works at once.
        message_id=message_id,
        due_at=not_before if delayed else now,
        recipient=send_request.recipient_id(body["to"]),
    )
    message, enqueued = new_message(
        workspace_id,
        message_id,
        run.id,
        body,
        now,
        data=body.get("data") or {},
        status="DELAYED" if delayed else "ENQUEUED",
        tags=tags,
        trace_id=trace_id,
        request_id=request_id or message_id,
    )
    events = [enqueued]
    if delayed:
        held: dict[str, Any] = {"until": to_ms(not_before)}
        if window:
            held["window"] = window
        events.append(MessageEvent(message_id, now, "DELAYED", held))
    return MessageRun(run, message, events)


def one_step_run(
    workspace_id: str,
    step: dict[str, Any],
    now: float,
    *,
    message_id: str,
    due_at: float | None,
    recipient: str | None = None,
) -> Run:
    """An internal run of the single ``step``, whose message id is already ``message_id``."""
    steps_def = (step,)
    return Run(
        id=ids.courier_id(now),
        workspace_id=workspace_id,
        steps_def=steps_def,
        steps=(replace(new_steps(steps_def)[0], message_id=message_id),),
        context=RunContext(recipient=recipient),
        status=RunStatus.PROCESSING,
        created_at=now,
        updated_at=now,
        source=SEND_SOURCE,
        due_at=due_at,
    )


def new_message(
    workspace_id: str,
    message_id: str,
    run_id: str,
    body: Mapping[str, Any],
    now: float,
    *,
    data: Mapping[str, Any],
    profile: Mapping[str, Any] | None = None,
    status: str = "ENQUEUED",
    idempotency_key: str | None = None,
    tags: tuple[str, ...] = (),
    trace_id: str | None = None,
    request_id: str | None = None,
) -> tuple[Message, MessageEvent]:
    """A send's message as first stored, and its ``ENQUEUED`` history event (``data`` and
    ``profile``: what the message was enqueued with)."""
    recipient = send_request.recipient_id(body.get("to") or {})
    template = body.get("template")
    message = Message(
        workspace_id=workspace_id,
        id=message_id,
        status=status,
        enqueued_at=now,
        updated_at=now,
        recipient=recipient,
        notification=template,
        event=template,
        run_id=run_id,
        idempotency_key=idempotency_key or message_id,
        tags=tags,
        trace_id=trace_id,
        request_id=request_id,
    )
    detail: dict[str, Any] = {} if recipient is None else {"recipient": recipient}
    detail["data"] = dict(data)
    if profile:
        detail["profile"] = dict(profile)
    return message, MessageEvent(message_id, now, "ENQUEUED", detail)


async def zone_profile(
    store: Store, workspace_id: str, delay: Mapping[str, Any] | None, to: Mapping[str, Any]
) -> dict[str, Any]:
    """The recipient's stored profile, read only when a delivery window needs its time zone
    (neither the ``delay`` nor the recipient names one); else empty."""
    if not isinstance(delay, Mapping) or not delay.get("window"):
        return {}
    if delay.get("timezone") or to.get("timezone"):
        return {}
    user_id = to.get("user_id")
    if not isinstance(user_id, str):
        return {}
    return await store.get_profile(workspace_id, user_id) or {}
