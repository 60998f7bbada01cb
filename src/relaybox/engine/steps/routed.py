"""Every ``send`` step's pipeline: template → preferences → profile → route → render → provider.

The route (``domain.routing``) is a tree of ``single`` (failover in order) and ``all`` parts
built from the message's ``routing``, ``channels`` and ``providers``, leaving out channels and
providers whose ``if`` is false. Which provider to try next is derived from the attempts
recorded on the message, so resuming after a backoff or a crash continues the same sequence.

Each provider attempt is committed (``checkpoint``) before the call, so a crash mid-call is
known to the next worker. A retryable failure on a provider that should be retried ends this
execution with a retryable ``StepFailed`` carrying the time of the next try (backoff,
honouring Retry-After, never past the message's deadline): the run is released with that due
time instead of sleeping in a coroutine. A message not delivered by its deadline (``expiry``
or the message timeout) ends UNDELIVERABLE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relaybox.domain import delivery, preferences, routing, send
from relaybox.domain.retry import RetryPolicy
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine import send_runs
from relaybox.engine.expressions import ExpressionError, Sandbox
from relaybox.engine.messaging import Messenger, call_provider, history_event
from relaybox.engine.providers import Configured
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import ValidationError
from relaybox.providers.base import RenderedMessage
from relaybox.storage.base import Message, MessageEvent
from relaybox.templates import render


@dataclass(frozen=True)
class Outgoing:
    """What one send step sends: a Courier ``message`` and what the run supplies around it."""

    #: Courier's message object (``to`` a single recipient, ``template`` or ``content``, …).
    message: Mapping[str, Any]
    #: Profile values sent with the request; the recipient's own ``to`` fields win over them,
    #: and both win over the stored profile.
    profile: Mapping[str, Any] = field(default_factory=dict)
    #: Template data the run supplies; the recipient's and the message's data win over it.
    data: Mapping[str, Any] = field(default_factory=dict)
    #: The message's idempotency key, which providers' keys derive from (default: its id).
    idempotency_key: str | None = None


@dataclass
class _Send:
    """One execution's working state."""

    run: Run
    index: int
    now: float
    spec: Mapping[str, Any]
    message: Message
    events: list[MessageEvent]
    deadline: delivery.Deadline


class RoutedSend:
    def __init__(
        self,
        *,
        messenger: Messenger,
        sandbox: Sandbox | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._messenger = messenger
        self._sandbox = sandbox
        #: Backoff between tries of one provider (the route bounds the executions, not the
        #: engine's generic cap: see ``routing.execution_budget``).
        self._policy = policy or RetryPolicy()

    async def execute(
        self,
        run: Run,
        index: int,
        now: float,
        checkpoint: Checkpoint,
        outgoing: Outgoing,
        *,
        message_id: str,
        previous: Message | None,
        events: list[MessageEvent] | None = None,
    ) -> StepResult:
        """``events``: history already due for ``previous`` (a resolved interrupted call)."""
        spec = outgoing.message
        to: Mapping[str, Any] = spec.get("to") or {}
        # Template data: the run's (automation steps), then the recipient's, then the message's.
        data = {**outgoing.data, **(to.get("data") or {}), **(spec.get("data") or {})}
        events = list(events or [])
        base = previous
        if base is None:
            # POST /send pre-creates its message; an automation step's is made here.
            base, enqueued = send_runs.new_message(
                run.workspace_id,
                message_id,
                run.id,
                spec,
                now,
                data=data,
                profile=outgoing.profile,
                idempotency_key=outgoing.idempotency_key,
            )
            events.append(enqueued)
        try:
            delivery.check(spec)
            ends = delivery.deadline(spec, base.enqueued_at, _started(base, now))
        except ValidationError as exc:
            return _fail(index, base, events, now, "UNDELIVERABLE", "FAILED", exc.message)
        state = _Send(run, index, now, spec, base, events, ends)
        earlier = _attempts(base.providers)
        if now >= ends.at:
            return _expired(state, earlier)
        ws = run.workspace_id
        template = await self._template(ws, spec)
        if template is None and routing.delivered(earlier):
            # Delivered before the template went away: that stands.
            return _settled(state, earlier)
        if template is None:
            why = f'Notification template "{spec.get("template")}" not found or not published'
            if not spec.get("template") and spec.get("content") is None:
                why = "No template given: set template on the step or on the invoke request"
            return _fail(index, base, events, now, "UNMAPPED", None, why)
        user_id = to.get("user_id")
        topic = await self._messenger.opted_out_topic(ws, user_id, template)
        if topic is not None:
            return _filtered(
                index, base, events, now, f'{user_id} opted out of subscription topic "{topic}"'
            )
        profile = await self._messenger.profile_for(
            ws, user_id, {**outgoing.profile, **send.supplied_profile(to)}
        )
        configured, routes = await self._providers(ws, to, spec)
        scope = {**run.context.scope(), "data": data, "profile": profile, "recipient": user_id}
        skipped, broken = await self._conditions(spec, scope, now)
        route = routing.build_route(
            routes,
            configured=[_candidate(c, profile) for c in configured.values()],
            profile=profile,
            channels=spec.get("channels") or {},
            excluded_channels=skipped["channels"],
            excluded_providers=skipped["providers"],
        )
        if route is None and routing.delivered(earlier):
            # Delivered on a provider that has since gone (or is now excluded): that stands.
            return _settled(state, earlier)
        if route is None:
            why = "No channel with both a configured provider and an address in the profile"
            if broken:
                why += "; conditions that failed: " + "; ".join(broken)
            return _fail(index, base, events, now, "UNROUTABLE", "NO_CHANNELS", why)
        content = dict(template.get("content") or {})
        brand = await self._messenger.brand_for(ws, spec.get("brand_id"), template)
        context = _Context(content, data, profile, to, configured, route, brand)
        return await self._deliver(state, context, checkpoint, earlier)

    async def _providers(
        self, ws: str, to: Mapping[str, Any], spec: Mapping[str, Any]
    ) -> tuple[dict[str, Configured], Mapping[str, Any]]:
        """The providers to route over, by configuration id, and the routing: for a direct
        recipient (``{"webhook": {...}}``) the one provider built from its own settings, on its
        channel; else the workspace's configured providers and the message's routing."""
        found = send.direct(to)
        if found is None:
            configured = await self._messenger.providers_for(ws)
            return {c.config.id: c for c in configured}, spec.get("routing") or send.DEFAULT_ROUTING
        ad_hoc = self._messenger.direct_provider(ws, *found)
        channel = send.DIRECT_CHANNELS[found[0]]
        providers = {} if ad_hoc is None else {ad_hoc.config.id: ad_hoc}
        return providers, {"method": "single", "channels": [channel]}

    async def _template(self, ws: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """Inline content as a template, else the published template (None: unknown)."""
        if spec.get("content") is not None:
            return {"content": dict(spec["content"])}
        return await self._messenger.template_for(ws, spec.get("template"))

    async def _conditions(
        self, spec: Mapping[str, Any], scope: Mapping[str, Any], now: float
    ) -> tuple[dict[str, set[str]], list[str]]:
        """Channels and providers whose ``if`` is false (or fails), and the failures."""
        skipped: dict[str, set[str]] = {"channels": set(), "providers": set()}
        broken: list[str] = []
        for kind in ("channels", "providers"):
            for name, rule in (spec.get(kind) or {}).items():
                condition = rule.get("if") if isinstance(rule, Mapping) else None
                if not isinstance(condition, str):
                    continue
                if self._sandbox is None:
                    self._sandbox = Sandbox()
                try:
                    holds = await self._sandbox.holds(condition, scope, now)
                except ExpressionError as exc:
                    # A condition that cannot be evaluated does not hold: sending on a channel
                    # the author meant to guard would be worse than not sending.
                    broken.append(f"{kind}.{name}.if: {exc.message}")
                    holds = False
                if not holds:
                    skipped[kind].add(name)
        return skipped, broken

    async def _deliver(
        self,
        state: _Send,
        ctx: _Context,
        checkpoint: Checkpoint,
        attempts: list[routing.Attempt],
    ) -> StepResult:
        """``attempts``: those recorded on ``state.message``; this execution's are added."""
        limits = delivery.limits(state.spec, ctx.route)
        execution = delivery.Execution(ctx.route, limits, attempts, self._policy, state.deadline.at)
        outputs: dict[str, render.RenderedContent] = {}
        step = replace(state.run.steps[state.index], message_id=state.message.id)
        now = state.now
        while True:
            found = execution.next(now)
            pick = found.candidate
            if pick is None:
                break
            try:
                out = _output(ctx, state.spec, pick.channel, outputs)
            except ValidationError as exc:
                why = f"Template could not be rendered: {exc.message}"
                return _fail(
                    state.index, state.message, state.events, now, "UNDELIVERABLE", "FAILED", why
                )
            attempt = _attempt(state, pick, out, now)
            if state.spec.get("simulated"):
                # A test-environment send: routed and rendered, never handed to a provider.
                state.message, event = _simulate(attempt, pick, now)
                state.events.append(event)
                execution.record(pick, routing.SENT, now, ended=now)
                continue
            # On disk before the provider sees it: see the module docstring.
            await checkpoint(state.run.with_step(step), [attempt], state.events)
            state.events = []
            rendered = ctx.rendered(state, attempt, pick, out)
            call = await call_provider(
                ctx.configured[pick.integration].provider,
                rendered,
                attempt,
                now,
                pick,
                time_limit=limits.provider_seconds.get(pick.integration),
            )
            at = execution.record(
                pick,
                call.outcome,
                now,
                ended=self._messenger.now(),
                retry_after=call.error.retry_after if call.error else None,
            )
            event = call.event
            if at is not None:
                # Epoch milliseconds, like the history's ``ts``.
                event = replace(event, detail={**event.detail, "next_attempt_at": _ms(at)})
            state.events.append(event)
            state.message = call.message
        if found.state == routing.PENDING:
            failed = execution.release(
                state.index, state.message.error or "delivery failed", state.message.id
            )
            return StepResult(failed, [state.message], state.events)
        return _settled(state, attempts)


@dataclass(frozen=True)
class _Context:
    """What every attempt of one execution shares."""

    content: dict[str, Any]
    data: dict[str, Any]
    profile: dict[str, Any]
    to: Mapping[str, Any]
    configured: dict[str, Configured]
    route: routing.Group
    brand: dict[str, Any] | None

    def variables(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return render.template_variables(
            self.data, self.profile, send.recipient_id(self.to), spec.get("brand_id")
        )

    def rendered(
        self, state: _Send, attempt: Message, pick: routing.Candidate, out: render.RenderedContent
    ) -> RenderedMessage:
        return RenderedMessage(
            message_id=attempt.id,
            idempotency_key=_provider_key(attempt, pick, self.route),
            channel=pick.channel,
            to=_address(pick.channel, self.profile),
            subject=out.subject,
            text=out.text,
            html=out.html,
            parts=out.parts,
            profile=self.profile,
            data=self.data,
            recipient=attempt.recipient,
            template=state.spec.get("template"),
            override=delivery.overrides(state.spec, pick),
            workspace_id=attempt.workspace_id,
        )


def _output(
    ctx: _Context,
    spec: Mapping[str, Any],
    channel: str,
    outputs: dict[str, render.RenderedContent],
) -> render.RenderedContent:
    """The content rendered for ``channel``, kept in ``outputs``: within one execution a
    failover to another provider on the same channel sends what was rendered already."""
    if channel not in outputs:
        outputs[channel] = render.render(
            ctx.content, channel=channel, variables=ctx.variables(spec), brand=ctx.brand
        )
    return outputs[channel]


def _attempt(
    state: _Send, pick: routing.Candidate, out: render.RenderedContent, now: float
) -> Message:
    """The message with this attempt in flight, and its ROUTED / RENDERED history."""
    message = state.message
    attempt = replace(
        message,
        status="ROUTED",
        channel=pick.channel,
        provider=pick.provider,
        attempts=message.attempts + 1,
        attempt_state="in_flight",
        updated_at=now,
        content={
            **message.content,
            pick.channel: {
                "subject": out.subject,
                "text": out.text,
                "html": out.html,
                # What GET /messages/{id}/output shows as blocks (push, chat, webhook, inbox).
                "parts": dict(out.parts),
                "channel_id": pick.integration,
            },
        },
    )
    where = {"channel": pick.channel, "provider": pick.provider}
    state.events.append(
        history_event(
            message,
            now,
            "ROUTED",
            **where,
            integration=pick.integration,
            attempt=attempt.attempts,
        )
    )
    # The full output (HTML included) is kept once, on the message; the history event
    # records what a reader scans for.
    state.events.append(
        history_event(
            message, now, "RENDERED", **where, output={"subject": out.subject, "text": out.text}
        )
    )
    return attempt


def _settled(state: _Send, attempts: list[routing.Attempt]) -> StepResult:
    """The route is settled: delivered somewhere, or every provider failed."""
    message = state.message
    if routing.delivered(attempts):
        if message.status not in ("SENT", "SIMULATED"):
            # ``all``: a later part failed after an earlier one delivered.
            message = replace(message, status="SENT", attempt_state=None)
        done = StepSucceeded(state.index, message_id=message.id)
        return StepResult(done, [message], state.events)
    why, errors = _why(message)
    # The step's error is the provider's own when only one was tried.
    alone = next(iter(errors.values())) if len(errors) == 1 else why
    return _fail(
        state.index,
        message,
        state.events,
        state.now,
        "UNDELIVERABLE",
        "PROVIDER_ERROR",
        why,
        alone,
    )


def _expired(state: _Send, attempts: list[routing.Attempt]) -> StepResult:
    """The deadline passed: what was delivered stands, the rest is given up."""
    if routing.delivered(attempts):
        return _settled(state, attempts)
    what = "expiry" if state.deadline.reason == delivery.EXPIRED else "message timeout"
    why = f"Not delivered before its {what} ({_ms(state.deadline.at)})"
    if state.message.error:
        why += f"; last error: {state.message.error}"
    reason = state.deadline.reason
    return _fail(state.index, state.message, state.events, state.now, "UNDELIVERABLE", reason, why)


def _started(message: Message, now: float) -> float:
    """When sending began: the first recorded attempt, else now (this is the first)."""
    times = [float(p["ts"]) for p in message.providers if isinstance(p.get("ts"), int | float)]
    return min(times, default=now)


def _ms(at: float) -> int:
    return round(at * 1000)


def _why(message: Message) -> tuple[str, dict[str, str]]:
    """Each provider's last error, from every execution (not only this one): a summary and
    the errors by provider."""
    last: dict[str, str] = {}
    for entry in message.providers:
        if entry.get("integration") and entry.get("error"):
            last[f"{entry.get('provider')} ({entry['integration']})"] = str(entry["error"])
    if not last:
        return "All providers failed", last
    return "All providers failed: " + "; ".join(f"{k}: {v}" for k, v in last.items()), last


def _simulate(
    attempt: Message, pick: routing.Candidate, now: float
) -> tuple[Message, MessageEvent]:
    entry = {
        "provider": pick.provider,
        "integration": pick.integration,
        "channel": pick.channel,
        "ts": now,
        "status": "SIMULATED",
    }
    simulated = replace(
        attempt,
        status="SIMULATED",
        attempt_state=None,
        error=None,
        providers=[*attempt.providers, entry],
    )
    event = history_event(
        attempt,
        now,
        "SIMULATED",
        channel=pick.channel,
        provider=pick.provider,
        integration=pick.integration,
    )
    return simulated, event


def _fail(
    index: int,
    message: Message,
    events: list[MessageEvent],
    now: float,
    status: str,
    reason: str | None,
    why: str,
    step_error: str | None = None,
) -> StepResult:
    failed = replace(
        message, status=status, reason=reason, error=why, updated_at=now, attempt_state=None
    )
    # Courier's history items: UNDELIVERABLE carries error_message, UNMAPPED/UNROUTABLE reason.
    detail = {"error_message": why} if status == "UNDELIVERABLE" else {"reason": why}
    if status == "UNDELIVERABLE" and reason in (delivery.EXPIRED, delivery.TIMED_OUT):
        detail["reason"] = reason
    event = history_event(message, now, status, **detail)
    result = StepFailed(index, step_error or why, retryable=False, message_id=message.id)
    return StepResult(result, [failed], [*events, event])


def _provider_key(message: Message, pick: routing.Candidate, route: routing.Group) -> str:
    """The idempotency key ``pick`` receives: stable per (message, provider).

    The route's first provider gets the message's own key, so a plain send carries exactly
    that key (``<run>/<step>`` for an automation step, or one derived from the step's
    ``idempotency_key``); any other provider gets it suffixed with its configuration id, so
    two integrations that share a downstream (two webhooks to one receiver) are not
    deduplicated against each other.
    """
    key = message.idempotency_key or message.id
    first = routing.first_candidate(route)
    return key if first.integration == pick.integration else f"{key}/{pick.integration}"


def _filtered(
    index: int, message: Message, events: list[MessageEvent], now: float, why: str
) -> StepResult:
    """The recipient opted out: nothing to deliver, and nothing went wrong."""
    filtered = replace(
        message,
        status=preferences.FILTERED,
        reason=preferences.UNSUBSCRIBED,
        error=why,
        updated_at=now,
    )
    event = history_event(message, now, preferences.FILTERED, reason=why)
    done = StepSucceeded(index, message_id=message.id)
    return StepResult(done, [filtered], [*events, event])


def _candidate(configured: Configured, profile: Mapping[str, Any]) -> routing.Candidate:
    # Optional on providers: whether this profile gives them an address (see Provider).
    check = getattr(configured.provider, "reachable", None)
    return routing.Candidate(
        channel=configured.provider.channel,
        integration=configured.config.id,
        provider=configured.key,
        addressed=None if check is None else bool(check(profile)),
    )


def _attempts(providers: list[dict[str, Any]]) -> list[routing.Attempt]:
    """The attempts recorded on a message (a simulated delivery counts as delivered)."""
    found = []
    for p in providers:
        if not p.get("integration") or not p.get("status"):
            continue
        outcome = routing.SENT if p["status"] == "SIMULATED" else str(p["status"])
        at = p.get("ts")
        found.append(
            routing.Attempt(
                str(p["integration"]), outcome, float(at) if isinstance(at, int | float) else None
            )
        )
    return found


def _address(channel: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    field_name = routing.ADDRESS_FIELDS.get(channel)
    return {} if field_name is None else {field_name: profile.get(field_name)}
