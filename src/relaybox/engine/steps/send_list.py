"""The ``send-list`` step: send the template to every subscriber of a list.

``list`` names one list; ``list_pattern`` (``*`` one part, ``**`` one or more, as in
``GET /lists?pattern=``) sends to the subscribers of every matching live list, once each.

Each subscriber gets a durable one-step internal send run (the shape POST /send uses), so
delivery, retries and crash recovery are the send step's own. Subscribers are read in
pages, never all at once. The step's ``message_id`` is one request id for the whole fan-out,
fixed (checkpointed) before the first child exists so a rerun reuses it.

Rerun safety: each child is created through the store's idempotency record keyed by
(run, step, subscriber), so a step re-executed after a crash finds the children it already
created instead of sending twice. A page's creations are submitted together, so the
group-committing writer stores them in one commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from relaybox import ids
from relaybox.domain.lists import ListPattern
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.storage.base import IdempotencyWrite, Store, Subscription

#: ``Run.source`` of internal send runs (kept out of automation run listings by the store).
_SEND_SOURCE = "send"
#: Subscribers read (and children created) per round trip.
PAGE_SIZE = 100
#: How long a (run, step, subscriber) -> child record is kept: longer than any lease retry.
_DEDUPE_SECONDS = 30 * 86_400.0


class SendListStep:
    def __init__(self, *, store: Store, page_size: int = PAGE_SIZE) -> None:
        self._store = store
        self._page_size = page_size

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        list_id, pattern = spec.get("list"), spec.get("list_pattern")
        if list_id is None and isinstance(pattern, str) and pattern:
            matcher: ListPattern | None = ListPattern.parse(pattern)
        elif isinstance(list_id, str) and list_id:
            matcher = None
        else:
            return _failed(index, "list: Expected the id of a list (or a list_pattern)")
        if spec.get("data_source") is not None:
            # Refused rather than ignored: sending without the per-recipient data the author
            # asked for would deliver the wrong content.
            return _failed(index, "data_source is not executed by this version of Relaybox")
        template = spec.get("template") or run.context.template
        if not isinstance(template, str) or not template:
            return _failed(index, "template: Expected a notification template id or alias")
        extra = spec.get("data")
        if extra is not None and not isinstance(extra, dict):
            return _failed(index, "data: Expected object")
        if matcher is None and await self._store.get_list(run.workspace_id, str(list_id)) is None:
            return _failed(index, f"List {list_id} not found")
        step = run.steps[index]
        request_id = step.message_id
        if request_id is None:
            request_id = ids.courier_id(now)
            # On disk before any child exists: a rerun fans out under the same request id.
            await checkpoint(run.with_step(replace(step, message_id=request_id)), [], [])
        body = {
            "template": template,
            "data": {**run.context.data, **(extra or {})},
            "brand": spec.get("brand") or run.context.brand,
        }
        if matcher is None:
            count = await self._fan_out(run, index, request_id, body, str(list_id), now)
            output: dict[str, Any] = {"list_id": list_id, "recipients": count}
        else:
            # A subscriber of several matching lists is sent to once: the per-subscriber
            # idempotency record turns the repeats into replays.
            lists = count = 0
            async for matched in self._matching_lists(run.workspace_id, matcher):
                lists += 1
                count += await self._fan_out(run, index, request_id, body, matched, now)
            output = {"list_pattern": pattern, "lists": lists, "subscriptions": count}
        # An explicit ref: the request id names no single message whose status could be read.
        ref = {"status": "PROCESSED", "message_id": request_id, **output}
        done = StepSucceeded(index, message_id=request_id, output=output, ref=ref)
        return StepResult(done, wake=True)

    async def _matching_lists(self, workspace_id: str, matcher: ListPattern) -> AsyncIterator[str]:
        after: str | None = None
        while True:
            page = await self._store.list_lists(
                workspace_id, prefix=matcher.prefix, after=after, limit=self._page_size
            )
            for found in page:
                if matcher.matches(found.id):
                    yield found.id
            if len(page) < self._page_size:
                return
            after = page[-1].id

    async def _fan_out(
        self,
        run: Run,
        index: int,
        request_id: str,
        body: dict[str, Any],
        list_id: str,
        now: float,
    ) -> int:
        """Create a child send run per subscriber of ``list_id``, a page at a time."""
        count = 0
        after: str | None = None
        while True:
            page = await self._store.list_subscribers(
                run.workspace_id, list_id, after=after, limit=self._page_size
            )
            await asyncio.gather(
                *(self._create_child(run, index, request_id, body, s, now) for s in page)
            )
            count += len(page)
            if len(page) < self._page_size:
                return count
            after = page[-1].user_id

    async def _create_child(
        self,
        run: Run,
        index: int,
        request_id: str,
        body: dict[str, Any],
        subscription: Subscription,
        now: float,
    ) -> None:
        user_id = subscription.user_id
        steps_def = (
            {
                "action": "send",
                "recipient": user_id,
                "template": body["template"],
                "data": body["data"],
                "brand": body["brand"],
            },
        )
        child = Run(
            id=ids.courier_id(now),
            workspace_id=run.workspace_id,
            steps_def=steps_def,
            steps=new_steps(steps_def),
            # The subscriber's stored profile (their email) is merged in at creation.
            context=RunContext(recipient=user_id, brand=body["brand"]),
            status=RunStatus.PROCESSING,
            created_at=now,
            updated_at=now,
            source=_SEND_SOURCE,
            due_at=now,
        )
        dedupe = IdempotencyWrite(
            key=f"relaybox:send-list:{run.id}:{index}:{user_id}",
            fingerprint=f"send-list:{request_id}",
            status_code=200,
            body=child.id.encode(),
            expires_at=now + _DEDUPE_SECONDS,
        )
        await self._store.create_run(
            child, lease_owner=None, merge_profile=True, idempotency=dedupe
        )


def _failed(index: int, error: str) -> StepResult:
    return StepResult(StepFailed(index, error, retryable=False))
