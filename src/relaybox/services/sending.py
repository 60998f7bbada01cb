"""POST /send and message resends: each message becomes a one-step internal run.

The run's single ``send`` step carries the full message, so the engine's machinery applies
unchanged: a delay is the run's due time (a row, not a sleeping coroutine), provider retries
are releases with backoff, and attempts are fenced and checkpointed. The request is
acknowledged only after the runs, their messages and the idempotency record are committed
together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from relaybox import ids
from relaybox.clock import Clock
from relaybox.domain import send as send_request
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.engine.engine import Engine
from relaybox.errors import NotFound
from relaybox.services.idempotency import Idempotency, check_same_request
from relaybox.storage.base import Message, MessageEvent, Store, StoredResponse

#: ``Run.source`` of the internal runs behind /send (kept out of automation run listings).
SEND_SOURCE = "send"


@dataclass(frozen=True)
class Accepted:
    request_id: str | None = None
    replay: StoredResponse | None = None

    def body(self) -> bytes:
        if self.replay is not None:
            return self.replay.body
        return orjson.dumps({"requestId": self.request_id})


class SendService:
    def __init__(self, *, store: Store, clock: Clock, engine: Engine | None) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine

    async def send(
        self,
        workspace_id: str,
        body: dict[str, Any],
        idem: Idempotency | None = None,
        *,
        simulated: bool = False,
    ) -> Accepted:
        """Accept a send; ``simulated`` (a test key) routes and renders but delivers nothing."""
        now = self._clock.now()
        plan = send_request.parse(body, now)
        if simulated:
            # Carried on the stored message so retries and resends stay simulated.
            plan = replace(plan, messages=[{**m, "simulated": True} for m in plan.messages])
        return await self._enqueue(workspace_id, plan, now, idem)

    async def resend(self, workspace_id: str, message_id: str) -> str:
        """Send a message again as a new message (same content and recipient); its new id."""
        found = await self._store.get_message(workspace_id, message_id)
        if found is None:
            raise NotFound(f"Message {message_id} not found")
        body = await self._original(found)
        now = self._clock.now()
        plan = send_request.SendPlan(
            messages=[body], not_before=None, tags=found.tags, trace_id=found.trace_id
        )
        accepted = await self._enqueue(workspace_id, plan, now, None)
        assert accepted.request_id is not None
        return accepted.request_id

    async def _original(self, message: Message) -> dict[str, Any]:
        run = (
            None
            if message.run_id is None
            else await self._store.get_run(message.workspace_id, message.run_id)
        )
        if run is not None:
            for step_def, step in zip(run.steps_def, run.steps, strict=True):
                if step.message_id == message.id and isinstance(step_def.get("message"), dict):
                    return dict(step_def["message"])
        # A message of a template send step: rebuild the equivalent message.
        data = {} if run is None else run.context.data
        return {
            "to": {"user_id": message.recipient},
            "template": message.notification,
            "data": data,
            "routing": send_request.DEFAULT_ROUTING,
            "channels": {},
        }

    async def _enqueue(
        self,
        workspace_id: str,
        plan: send_request.SendPlan,
        now: float,
        idem: Idempotency | None,
    ) -> Accepted:
        delayed = plan.not_before is not None and plan.not_before > now
        # Created already claimed by this process's engine when it can start at once.
        local = self._engine is not None and not delayed
        runs: list[Run] = []
        messages: list[Message] = []
        events: list[MessageEvent] = []
        for body in plan.messages:
            message_id = ids.courier_id(now)
            run = _run(workspace_id, body, message_id, now)
            if delayed:
                run = replace(run, due_at=plan.not_before)
            elif self._engine is not None:
                run = replace(run, due_at=now + self._engine.lease_seconds, lease_token=1)
            runs.append(run)
            message = Message(
                workspace_id=workspace_id,
                id=message_id,
                status="DELAYED" if delayed else "ENQUEUED",
                enqueued_at=now,
                updated_at=now,
                recipient=send_request.recipient_id(body["to"]),
                notification=body.get("template"),
                event=body.get("template"),
                run_id=run.id,
                idempotency_key=message_id,
                tags=plan.tags,
                trace_id=plan.trace_id,
            )
            messages.append(message)
            events.append(
                MessageEvent(
                    message_id,
                    now,
                    "ENQUEUED",
                    {"recipient": message.recipient, "data": body.get("data") or {}},
                )
            )
            if delayed:
                events.append(MessageEvent(message_id, now, "DELAYED", {"until": plan.not_before}))
        # Courier: one recipient → the request id is the message id.
        request_id = messages[0].id if len(messages) == 1 else ids.courier_id(now)
        write = None
        if idem is not None:
            write = idem.write(202, orjson.dumps({"requestId": request_id}))
        replay = await self._store.create_runs(
            runs,
            messages=messages,
            events=events,
            lease_owner=self._engine.owner if local and self._engine else None,
            idempotency=write,
        )
        if replay is not None:
            assert idem is not None
            check_same_request(replay, idem)
            return Accepted(replay=replay)
        if local and self._engine is not None:
            for run in runs:
                self._engine.submit(run)
        elif self._engine is not None:
            self._engine.scheduled()
        return Accepted(request_id=request_id)


def _run(workspace_id: str, body: dict[str, Any], message_id: str, now: float) -> Run:
    steps_def = ({"action": "send", "message": body},)
    steps = new_steps(steps_def)
    return Run(
        id=ids.courier_id(now),
        workspace_id=workspace_id,
        steps_def=steps_def,
        # The message id is fixed up front so GET /messages/{requestId} works at once.
        steps=(replace(steps[0], message_id=message_id),),
        context=RunContext(recipient=send_request.recipient_id(body["to"])),
        status=RunStatus.PROCESSING,
        created_at=now,
        updated_at=now,
        source=SEND_SOURCE,
        due_at=now,
    )
