"""The ``send-list`` step: send to every subscriber of a list, one message each.

``list`` names one list; ``list_pattern`` (``*`` one part, ``**`` one or more, as in
``GET /lists?pattern=``) sends to the subscribers of every matching live list, once each.

Each subscriber gets exactly what a directly addressed /send recipient gets
(engine/send_runs.py): a durable one-step internal run and its message row, created together.
The message is the automation step's ``template``, ``data`` and ``brand``, or, for the run
behind a ``POST /send`` list recipient, the full Courier ``message`` (with ``delay``,
``tags``, ``trace_id``: ``DELAYED`` until its own delivery window opens in its own time zone).

Subscribers are read in pages, never all at once. The step's ``message_id`` is one request
id for the whole fan-out, fixed (checkpointed, or preset by /send) before the first child
exists, and every child message carries it as its ``request_id``.

``data_source`` ({``webhook``, ``merge_strategy``}, as on fetch-data) fetches data for each
subscriber through the outbound guard and merges the JSON object into that subscriber's copy
of the data. Courier documents the field but not how the request names the recipient
(courier-api.md §4.4 and §13 mark it an inference); Relaybox adds the subscriber's id as
``recipient_id``: a query parameter, and also a key of a JSON object body. A subscriber whose
fetch fails gets no message (it would carry the wrong content); the step still sends to the
others and reports the failures in its output.

Rerun safety: each child is created through the store's idempotency record keyed by
(request id, subscriber), so a step re-executed after a crash finds the children it already
created (and skips their fetches) instead of sending twice, and a subscriber of several lists
of one request is sent to once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import orjson

from relaybox import ids
from relaybox.domain import send as send_request
from relaybox.domain.lists import ListPattern
from relaybox.domain.merge import merge
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine import audiences, send_runs
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.engine.steps.fetch_data import WebhookRequest, fetch_object, parse_request
from relaybox.errors import ValidationError
from relaybox.providers.outbound import OutboundGuard
from relaybox.storage.base import IdempotencyWrite, Store

#: Subscribers read (and children created) per round trip.
PAGE_SIZE = 100
#: Data-source requests in flight at once for one step.
FETCH_CONCURRENCY = 10
#: How long a (request, subscriber) -> child record is kept: longer than any lease retry.
_DEDUPE_SECONDS = 30 * 86_400.0
#: Fetch failures quoted in the step's output (the count covers them all).
_ERRORS_SHOWN = 5


@dataclass
class _Tally:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class SendListStep:
    def __init__(
        self,
        *,
        store: Store,
        http: httpx.AsyncClient | None = None,
        guard: OutboundGuard | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._store = store
        self._http = http
        self._guard = guard
        self._page_size = page_size
        self._fetches = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        list_id, pattern = spec.get("list"), spec.get("list_pattern")
        audience_id = spec.get("audience_id")
        if list_id is None and isinstance(audience_id, str):
            # The internal run behind a /send audience_id recipient.
            return await self._to_audience(run, index, now, checkpoint, audience_id)
        if list_id is None and isinstance(pattern, str) and pattern:
            matcher: ListPattern | None = ListPattern.parse(pattern)
        elif isinstance(list_id, str) and list_id:
            matcher = None
        else:
            return _failed(index, "list: Expected the id of a list (or a list_pattern)")
        try:
            source = self._data_source(spec.get("data_source"))
            body = _body(spec, run)
        except ValidationError as exc:
            return _failed(index, exc.message)
        if matcher is None and await self._store.get_list(run.workspace_id, str(list_id)) is None:
            return _failed(index, f"List {list_id} not found")
        request_id = await _request_id(run, index, now, checkpoint)
        fan = self._fan_out(run, index, request_id, body, source, now)
        tally = _Tally()
        if matcher is None:
            await fan.one_list(str(list_id), tally)
            output: dict[str, Any] = {"list_id": list_id, "recipients": tally.sent}
        else:
            lists = 0
            async for matched in self._matching_lists(run.workspace_id, matcher):
                lists += 1
                await fan.one_list(matched, tally)
            output = {"list_pattern": pattern, "lists": lists, "subscriptions": tally.sent}
        if source is not None:
            output["data_source"] = {"failed": tally.failed, "errors": tally.errors}
        return _done(index, request_id, output)

    async def _to_audience(
        self, run: Run, index: int, now: float, checkpoint: Checkpoint, audience_id: str
    ) -> StepResult:
        found = await self._store.get_resource(run.workspace_id, audiences.KIND, audience_id)
        if found is None:
            return _failed(index, f"Audience {audience_id} not found")
        body = _body(run.steps_def[index], run)
        request_id = await _request_id(run, index, now, checkpoint)
        fan = self._fan_out(run, index, request_id, body, None, now)
        tally = _Tally()
        page: list[str] = []
        async for user_id in audiences.members(
            self._store, run.workspace_id, found.published or {}
        ):
            page.append(user_id)
            if len(page) == self._page_size:
                await fan.page(page, tally)
                page = []
        await fan.page(page, tally)
        return _done(index, request_id, {"audience_id": audience_id, "recipients": tally.sent})

    def _fan_out(
        self,
        run: Run,
        index: int,
        request_id: str,
        body: dict[str, Any],
        source: WebhookRequest | None,
        now: float,
    ) -> _FanOut:
        return _FanOut(
            store=self._store,
            http=self._http,
            guard=self._guard,
            fetches=self._fetches,
            page_size=self._page_size,
            run=run,
            index=index,
            request_id=request_id,
            body=body,
            source=source,
            now=now,
        )

    def _data_source(self, raw: Any) -> WebhookRequest | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ValidationError("data_source: Expected object")
        try:
            source = parse_request(raw)
        except ValidationError as exc:
            raise ValidationError(f"data_source: {exc.message}") from None
        if self._http is None or self._guard is None:
            raise ValidationError("data_source: no HTTP client configured")
        return source

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


@dataclass
class _FanOut:
    """One execution's fan-out: creates a child per subscriber, a page at a time."""

    store: Store
    http: httpx.AsyncClient | None
    guard: OutboundGuard | None
    fetches: asyncio.Semaphore
    page_size: int
    run: Run
    index: int
    request_id: str
    body: dict[str, Any]
    source: WebhookRequest | None
    now: float

    async def one_list(self, list_id: str, tally: _Tally) -> None:
        after: str | None = None
        while True:
            page = await self.store.list_subscribers(
                self.run.workspace_id, list_id, after=after, limit=self.page_size
            )
            await self.page([s.user_id for s in page], tally)
            if len(page) < self.page_size:
                return
            after = page[-1].user_id

    async def page(self, user_ids: list[str], tally: _Tally) -> None:
        """Create the children of one page of recipients together (one group commit)."""
        await asyncio.gather(*(self._one(u, tally) for u in user_ids))

    async def _one(self, user_id: str, tally: _Tally) -> None:
        ws = self.run.workspace_id
        key = f"relaybox:send-list:{self.request_id}:{user_id}"
        data = dict(self.body.get("data") or {})
        if self.source is not None:
            if await self.store.get_response(ws, key, self.now) is not None:
                tally.sent += 1  # created by an earlier execution: no second fetch
                return
            try:
                data = merge(data, await self._fetch(user_id), self.source.strategy)
            except ValidationError as exc:
                tally.failed += 1
                if len(tally.errors) < _ERRORS_SHOWN:
                    tally.errors.append(f"{user_id}: {exc.message}")
                return
        dedupe = IdempotencyWrite(
            key=key,
            fingerprint=f"send-list:{self.request_id}",
            status_code=200,
            body=b"",
            expires_at=self.now + _DEDUPE_SECONDS,
        )
        await self._child(user_id, data, dedupe)
        tally.sent += 1

    @property
    def step_spec(self) -> dict[str, Any]:
        return self.run.steps_def[self.index]

    async def _fetch(self, user_id: str) -> dict[str, Any]:
        assert self.source is not None
        assert self.http is not None
        assert self.guard is not None
        request = self.source
        url = str(httpx.URL(request.url).copy_merge_params({"recipient_id": user_id}))
        content = request.content
        if request.body is not None:
            content = orjson.dumps({**request.body, "recipient_id": user_id})
        request = replace(request, url=url, content=content)
        async with self.fetches:
            _, payload = await fetch_object(self.http, self.guard, request)
        return payload

    async def _child(self, user_id: str, data: dict[str, Any], dedupe: IdempotencyWrite) -> None:
        spec = self.step_spec
        to: dict[str, Any] = {"user_id": user_id}
        if spec.get("recipient_data"):
            to["data"] = dict(spec["recipient_data"])
        delay = spec.get("delay")
        # The subscriber's own time zone decides when its window opens.
        profile = await send_runs.zone_profile(self.store, self.run.workspace_id, delay, to)
        built = send_runs.message_run(
            self.run.workspace_id,
            {**self.body, "to": to, "data": data},
            self.now,
            request_id=self.request_id,
            not_before=send_request.send_at(delay, to, profile, self.now),
            tags=tuple(spec.get("tags") or ()),
            trace_id=spec.get("trace_id"),
            window=delay.get("window") if isinstance(delay, dict) else None,
        )
        await self.store.create_runs(
            [built.run],
            messages=[built.message],
            events=built.events,
            lease_owner=None,
            idempotency=dedupe,
        )


async def _request_id(run: Run, index: int, now: float, checkpoint: Checkpoint) -> str:
    """The step's one request id: preset by /send, else made and checkpointed here."""
    step = run.steps[index]
    if step.message_id is not None:
        return step.message_id
    request_id = ids.courier_id(now)
    # On disk before any child exists: a rerun fans out under the same request id.
    await checkpoint(run.with_step(replace(step, message_id=request_id)), [], [])
    return request_id


def _body(spec: dict[str, Any], run: Run) -> dict[str, Any]:
    """What every child sends: /send's message, or the automation step's template send."""
    if isinstance(spec.get("message"), dict):
        return dict(spec["message"])
    template = spec.get("template") or run.context.template
    if not isinstance(template, str) or not template:
        raise ValidationError("template: Expected a notification template id or alias")
    extra = spec.get("data")
    if extra is not None and not isinstance(extra, dict):
        raise ValidationError("data: Expected object")
    return {
        "template": template,
        "data": {**run.context.data, **(extra or {})},
        "brand_id": spec.get("brand") or run.context.brand,
    }


def _done(index: int, request_id: str, output: dict[str, Any]) -> StepResult:
    # An explicit ref: the request id names no single message whose status could be read.
    ref = {"status": "PROCESSED", "message_id": request_id, **output}
    done = StepSucceeded(index, message_id=request_id, output=output, ref=ref)
    return StepResult(done, wake=True)


def _failed(index: int, error: str) -> StepResult:
    return StepResult(StepFailed(index, error, retryable=False))
