"""POST /send and message resends: each message becomes a one-step internal run.

The run's single ``send`` step carries the full message, so the engine's machinery applies
unchanged: a delay is the run's due time (a row, not a sleeping coroutine), provider retries
are releases with backoff, and attempts are fenced and checkpointed. The request is
acknowledged only after the runs, their messages and the idempotency record are committed
together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from relaybox import ids
from relaybox.clock import Clock
from relaybox.domain import send as send_request
from relaybox.domain.run import Run
from relaybox.engine import audiences, send_runs
from relaybox.engine.engine import Engine
from relaybox.errors import NotFound
from relaybox.services.idempotency import Idempotency, check_same_request
from relaybox.storage.base import Message, Store, StoredResponse


@dataclass(frozen=True)
class Accepted:
    request_id: str | None = None
    replay: StoredResponse | None = None

    def body(self) -> bytes:
        if self.replay is not None:
            return self.replay.body
        return orjson.dumps({"requestId": self.request_id})


class SendService:
    def __init__(
        self, *, store: Store, clock: Clock, engine: Engine | None, seal: Callable[[Any], Any]
    ) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine
        # A direct recipient's credentials (a webhook's authentication and headers, a Slack
        # token) are sealed with the server's key before the run carrying the message is
        # stored: the engine needs them again for every retry and resend, so they are kept,
        # but encrypted, and opened only when the provider is built for a call.
        self._seal = seal

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
        sealed = [{**m, "to": send_request.seal_direct(m["to"], self._seal)} for m in plan.messages]
        plan = replace(plan, messages=sealed)
        if simulated:
            # Carried on the stored message so retries and resends stay simulated.
            # A list or audience fan-out copies ``shared`` to every subscriber's message.
            plan = replace(
                plan,
                messages=[{**m, "simulated": True} for m in plan.messages],
                shared={**plan.shared, "simulated": True},
            )
        return await self._enqueue(workspace_id, plan, now, idem)

    async def resend(self, workspace_id: str, message_id: str) -> str:
        """Send a message again as a new message (same content and recipient); its new id."""
        found = await self._store.get_message(workspace_id, message_id)
        if found is None:
            raise NotFound(f"Message {message_id} not found")
        body = await self._original(found)
        now = self._clock.now()
        plan = send_request.SendPlan(messages=[body], tags=found.tags, trace_id=found.trace_id)
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
        profiles = await asyncio.gather(
            *(
                send_runs.zone_profile(self._store, workspace_id, plan.delay, body["to"])
                for body in plan.messages
            )
        )
        built = [
            send_runs.message_run(
                workspace_id,
                body,
                now,
                not_before=send_request.send_at(plan.delay, body["to"], profile, now),
                tags=plan.tags,
                trace_id=plan.trace_id,
                window=(plan.delay or {}).get("window"),
            )
            for body, profile in zip(plan.messages, profiles, strict=True)
        ]
        # Courier: one recipient → the request id is the message id.
        single = len(built) == 1 and not plan.fan_outs
        request_id = built[0].message.id if single else ids.courier_id(now)
        built = [replace(b, message=replace(b.message, request_id=request_id)) for b in built]
        fan_outs = [
            await self._fan_out(workspace_id, plan, f, request_id, now) for f in plan.fan_outs
        ]
        runs = [b.run for b in built] + fan_outs
        # Created already claimed by this process's engine when they can start at once.
        local: list[Run] = []
        if self._engine is not None:
            due = now + self._engine.lease_seconds
            at_once = {r.id for r in runs if r.due_at is not None and r.due_at <= now}
            runs = [replace(r, due_at=due, lease_token=1) if r.id in at_once else r for r in runs]
            local = [r for r in runs if r.id in at_once]
        write = None
        if idem is not None:
            write = idem.write(202, orjson.dumps({"requestId": request_id}))
        replay = await self._store.create_runs(
            runs,
            messages=[b.message for b in built],
            events=[e for b in built for e in b.events],
            lease_owner=self._engine.owner if local and self._engine else None,
            idempotency=write,
        )
        if replay is not None:
            assert idem is not None
            check_same_request(replay, idem)
            return Accepted(replay=replay)
        if self._engine is not None:
            for run in local:
                self._engine.submit(run)
            if len(local) < len(runs):
                self._engine.scheduled()
        return Accepted(request_id=request_id)

    async def _fan_out(
        self,
        workspace_id: str,
        plan: send_request.SendPlan,
        target: dict[str, Any],
        request_id: str,
        now: float,
    ) -> Run:
        """A run whose send-list step sends the message to every subscriber of the list(s), or
        every member of the audience."""
        list_id = target.get("list_id")
        if list_id is not None and await self._store.get_list(workspace_id, list_id) is None:
            raise NotFound(f"List {list_id} not found")
        audience_id = target.get("audience_id")
        if audience_id is not None and (
            await self._store.get_resource(workspace_id, audiences.KIND, audience_id) is None
        ):
            raise NotFound(f"Audience {audience_id} not found")
        step: dict[str, Any] = {
            "action": "send-list",
            "message": plan.shared,
            "recipient_data": target["data"],
            "delay": plan.delay,
            "tags": list(plan.tags),
            "trace_id": plan.trace_id,
        }
        step.update({k: target[k] for k in ("list_pattern", "audience_id") if k in target})
        if list_id is not None:
            step["list"] = list_id
        # The fan-out's children all carry this request id (fixed before any exists).
        return send_runs.one_step_run(workspace_id, step, now, message_id=request_id, due_at=now)
