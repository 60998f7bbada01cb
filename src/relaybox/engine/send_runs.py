"""One /send message as a one-step internal run plus its message row, ready to store.

Shared by ``POST /send`` (services/sending.py) and the fan-out of list recipients
(engine/steps/send_list.py), so a message addressed directly and one reached through a list
are the same thing: an ``ENQUEUED`` (or ``DELAYED``) message whose run's ``send`` step
carries the full message and already names the message id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from relaybox import ids
from relaybox.clock import to_ms
from relaybox.domain import send as send_request
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.storage.base import Message, MessageEvent

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
    recipient = send_request.recipient_id(body["to"])
    steps_def = ({"action": "send", "message": body},)
    run = Run(
        id=ids.courier_id(now),
        workspace_id=workspace_id,
        steps_def=steps_def,
        # The message id is fixed up front so GET /messages/{id} works at once.
        steps=(replace(new_steps(steps_def)[0], message_id=message_id),),
        context=RunContext(recipient=recipient),
        status=RunStatus.PROCESSING,
        created_at=now,
        updated_at=now,
        source=SEND_SOURCE,
        due_at=not_before if delayed else now,
    )
    message = Message(
        workspace_id=workspace_id,
        id=message_id,
        status="DELAYED" if delayed else "ENQUEUED",
        enqueued_at=now,
        updated_at=now,
        recipient=recipient,
        notification=body.get("template"),
        event=body.get("template"),
        run_id=run.id,
        idempotency_key=message_id,
        tags=tags,
        trace_id=trace_id,
        request_id=request_id or message_id,
    )
    events = [
        MessageEvent(
            message_id, now, "ENQUEUED", {"recipient": recipient, "data": body.get("data") or {}}
        )
    ]
    if delayed:
        held: dict[str, Any] = {"until": to_ms(not_before)}
        if window:
            held["window"] = window
        events.append(MessageEvent(message_id, now, "DELAYED", held))
    return MessageRun(run, message, events)
