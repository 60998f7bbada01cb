"""The ``send`` step that carries a full Courier ``message``: routing with failover.

Each provider attempt is committed (``checkpoint``) before the call, so a crash mid-call is
known to the next worker. Which provider to try next is derived from the attempts recorded on
the message (``domain.routing``), so resuming after a backoff or a crash continues the same
failover sequence. A retryable failure on a provider that should be retried ends this
execution with a retryable ``StepFailed``: the run is released with a due time (backoff,
honouring Retry-After) instead of sleeping in a coroutine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relaybox.domain import preferences, routing, send
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.messaging import Messenger, call_provider, history_event
from relaybox.engine.providers import Configured
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import DeliveryError, RetryableDeliveryError, ValidationError
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


class RoutedSend:
    def __init__(self, *, messenger: Messenger) -> None:
        self._messenger = messenger

    async def _template(self, ws: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """Inline content as a template, else the published template (None: unknown)."""
        if spec.get("content") is not None:
            return {"content": dict(spec["content"])}
        return await self._messenger.template_for(ws, spec.get("template"))

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
    ) -> StepResult:
        spec = outgoing.message
        to: Mapping[str, Any] = spec.get("to") or {}
        # Template data: the run's (automation steps), then the recipient's, then the message's.
        data = {**outgoing.data, **(to.get("data") or {}), **(spec.get("data") or {})}
        base = previous or _new_message(run, message_id, outgoing, now)
        events: list[MessageEvent] = []
        if previous is None:
            events.append(
                history_event(
                    base,
                    now,
                    "ENQUEUED",
                    recipient=base.recipient,
                    data=data,
                    profile=dict(outgoing.profile) or None,
                )
            )
        ws = run.workspace_id
        template = await self._template(ws, spec)
        if template is None:
            why = f'Notification template "{spec.get("template")}" not found or not published'
            if not spec.get("template"):
                why = "No template given: set template on the step or on the invoke request"
            return _fail(index, base, events, now, "UNMAPPED", None, why)
        content = dict(template.get("content") or {})
        user_id = to.get("user_id")
        topic = await self._messenger.opted_out_topic(ws, user_id, template)
        if topic is not None:
            return _filtered(
                index, base, events, now, f'{user_id} opted out of subscription topic "{topic}"'
            )
        profile = await self._messenger.profile_for(
            ws, user_id, {**outgoing.profile, **send.supplied_profile(to)}
        )
        configured = {c.config.id: c for c in await self._messenger.providers_for(ws)}
        route = spec.get("routing") or send.DEFAULT_ROUTING
        groups = routing.build_groups(
            method=str(route.get("method") or "single"),
            entries=list(route.get("channels") or []),
            configured=[_candidate(c, profile) for c in configured.values()],
            profile=profile,
            channel_providers={
                name: ch.get("providers") or [] for name, ch in (spec.get("channels") or {}).items()
            },
        )
        if not groups:
            why = "No channel with both a configured provider and an address in the profile"
            return _fail(index, base, events, now, "UNROUTABLE", "NO_CHANNELS", why)
        attempts = _attempts(base.providers)
        brand = await self._messenger.brand_for(ws, spec.get("brand_id"), template)
        message = base
        tried: dict[str, DeliveryError] = {}
        step = replace(run.steps[index], message_id=message_id)
        while (pick := routing.next_candidate(groups, attempts)) is not None:
            if pick.integration in tried:
                # It just failed retryably and has tries left: back off before retrying.
                exc = tried[pick.integration]
                failed = StepFailed(
                    index,
                    exc.message,
                    retryable=True,
                    retry_after=exc.retry_after,
                    message_id=message_id,
                )
                return StepResult(failed, [message], events)
            chosen = configured[pick.integration]
            try:
                out = render.render(
                    content,
                    channel=pick.channel,
                    variables=_variables(spec, data, profile, to),
                    brand=brand,
                )
            except ValidationError as exc:
                why = f"Template could not be rendered: {exc.message}"
                return _fail(index, message, events, now, "UNDELIVERABLE", "FAILED", why)
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
                        "channel_id": pick.integration,
                    },
                },
            )
            events.append(
                history_event(
                    message,
                    now,
                    "ROUTED",
                    channel=pick.channel,
                    provider=pick.provider,
                    integration=pick.integration,
                    attempt=attempt.attempts,
                ),
            )
            # The full output (HTML included) is kept once, on the message; the history
            # event records what a reader scans for.
            events.append(
                history_event(
                    message,
                    now,
                    "RENDERED",
                    channel=pick.channel,
                    provider=pick.provider,
                    output={"subject": out.subject, "text": out.text},
                )
            )
            if spec.get("simulated"):
                # A test-environment send: routed and rendered, never handed to a provider.
                message, event = _simulate(attempt, pick, now)
                events.append(event)
                attempts.append(routing.Attempt(pick.integration, routing.SENT))
                continue
            # On disk before the provider sees it: see the module docstring.
            await checkpoint(run.with_step(step), [attempt], events)
            events = []
            rendered = RenderedMessage(
                message_id=message.id,
                idempotency_key=_provider_key(message, pick, groups),
                channel=pick.channel,
                to=_address(pick.channel, profile),
                subject=out.subject,
                text=out.text,
                html=out.html,
                parts=out.parts,
                profile=profile,
                data=data,
                recipient=message.recipient,
                template=spec.get("template"),
            )
            where = {
                "provider": pick.provider,
                "integration": pick.integration,
                "channel": pick.channel,
            }
            call = await call_provider(chosen.provider, rendered, attempt, now, where)
            message, outcome = call.message, call.error
            events.append(call.event)
            if isinstance(outcome, DeliveryError):
                tried[pick.integration] = outcome
                kind = (
                    routing.RETRYABLE
                    if isinstance(outcome, RetryableDeliveryError)
                    else routing.FAILED
                )
            else:
                kind = routing.SENT
            attempts.append(routing.Attempt(pick.integration, kind))
        if routing.delivered(attempts):
            return StepResult(StepSucceeded(index, message_id=message_id), [message], events)
        why, errors = _why(message)
        # The step's error is the provider's own when only one was tried.
        alone = next(iter(errors.values())) if len(errors) == 1 else why
        return _fail(index, message, events, now, "UNDELIVERABLE", "PROVIDER_ERROR", why, alone)


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
    event = history_event(message, now, status, **detail)
    result = StepFailed(index, step_error or why, retryable=False, message_id=message.id)
    return StepResult(result, [failed], [*events, event])


def _provider_key(
    message: Message, pick: routing.Candidate, groups: list[list[routing.Candidate]]
) -> str:
    """The idempotency key ``pick`` receives: stable per (message, provider).

    The route's first provider gets the message's own key, so a plain send carries exactly
    that key (``<run>/<step>`` for an automation step, or the user's ``idempotency_key``);
    any other provider gets it suffixed with its configuration id, so two integrations that
    share a downstream (two webhooks to one receiver) are not deduplicated against each other.
    """
    key = message.idempotency_key or message.id
    if groups and groups[0] and groups[0][0].integration == pick.integration:
        return key
    return f"{key}/{pick.integration}"


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


def _new_message(run: Run, message_id: str, outgoing: Outgoing, now: float) -> Message:
    """The message of a send step (POST /send pre-creates it)."""
    spec = outgoing.message
    to = spec.get("to") or {}
    template = spec.get("template")
    return Message(
        workspace_id=run.workspace_id,
        id=message_id,
        status="ENQUEUED",
        enqueued_at=now,
        updated_at=now,
        recipient=send.recipient_id(to),
        notification=template,
        event=template,
        run_id=run.id,
        idempotency_key=outgoing.idempotency_key or message_id,
    )


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
    return [
        routing.Attempt(str(p["integration"]), str(p["status"]))
        for p in providers
        if p.get("integration") and p.get("status")
    ]


def _variables(
    spec: Mapping[str, Any],
    data: dict[str, Any],
    profile: Mapping[str, Any],
    to: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        **data,
        "data": data,
        "profile": profile,
        "recipient": send.recipient_id(to),
        "brand": spec.get("brand_id"),
    }


def _address(channel: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    field = routing.ADDRESS_FIELDS.get(channel)
    return {} if field is None else {field: profile.get(field)}
