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
from dataclasses import replace
from typing import Any

from relaybox.domain import routing, send
from relaybox.domain.run import Run
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.messaging import Messenger, call_provider, history_event
from relaybox.engine.providers import Configured
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import DeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.base import RenderedMessage
from relaybox.storage.base import Message, MessageEvent
from relaybox.templates import render


class RoutedSend:
    def __init__(self, *, messenger: Messenger) -> None:
        self._messenger = messenger

    async def _content(self, ws: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """Inline content, else the published template's content (None: unknown template)."""
        if spec.get("content") is not None:
            return dict(spec["content"])
        template = await self._messenger.template_for(ws, spec.get("template"))
        return None if template is None else dict(template.get("content") or {})

    async def execute(
        self,
        run: Run,
        index: int,
        now: float,
        checkpoint: Checkpoint,
        *,
        message_id: str,
        previous: Message | None,
    ) -> StepResult:
        spec: Mapping[str, Any] = run.steps_def[index].get("message") or {}
        to = dict(spec.get("to") or {}) if isinstance(spec.get("to"), dict) else {}
        supplied: dict[str, Any] = {}
        if send.recipient_id(to) is None and run.context.recipient:
            # An automation step without its own recipient sends to the run's recipient.
            to["user_id"] = run.context.recipient
            supplied = dict(run.context.profile)
        base = previous or _new_message(run, message_id, spec, to, now)
        events: list[MessageEvent] = []
        if previous is None:
            events.append(history_event(base, now, "ENQUEUED", recipient=base.recipient))
        ws = run.workspace_id
        content = await self._content(ws, spec)
        if content is None:
            why = f'Notification template "{spec.get("template")}" not found or not published'
            return _fail(index, base, events, now, "UNMAPPED", None, why)
        profile = await self._messenger.profile_for(
            ws, to.get("user_id"), {**supplied, **send.supplied_profile(to)}
        )
        # Template data: the run's (automation steps), then the recipient's, then the message's.
        data = {**run.context.data, **(to.get("data") or {}), **(spec.get("data") or {})}
        configured = {c.config.id: c for c in await self._messenger.providers_for(ws)}
        route = spec.get("routing") or send.DEFAULT_ROUTING
        groups = routing.build_groups(
            method=str(route.get("method") or "single"),
            entries=list(route.get("channels") or []),
            configured=[_candidate(c) for c in configured.values()],
            profile=profile,
            channel_providers={
                name: ch.get("providers") or [] for name, ch in (spec.get("channels") or {}).items()
            },
        )
        if not groups:
            why = "No channel with both a configured provider and an address in the profile"
            return _fail(index, base, events, now, "UNROUTABLE", "NO_CHANNELS", why)
        attempts = _attempts(base.providers)
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
                    content, channel=pick.channel, variables=_variables(spec, data, profile, to)
                )
            except ValidationError as exc:
                why = f"Template could not be rendered: {exc.message}"
                return _fail(index, message, events, now, "UNDELIVERABLE", "FAILED", why)
            if pick.channel not in message.content:
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
                # Stable per (message, provider): retries of this provider can be deduplicated.
                idempotency_key=f"{message.id}/{pick.integration}",
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
        return _fail(index, message, events, now, "UNDELIVERABLE", "PROVIDER_ERROR", _why(message))


def _why(message: Message) -> str:
    """Each provider's last error, from every execution (not only this one)."""
    last: dict[str, str] = {}
    for entry in message.providers:
        if entry.get("integration") and entry.get("error"):
            last[f"{entry.get('provider')} ({entry['integration']})"] = str(entry["error"])
    if not last:
        return "All providers failed"
    return "All providers failed: " + "; ".join(f"{k}: {v}" for k, v in last.items())


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
) -> StepResult:
    failed = replace(
        message, status=status, reason=reason, error=why, updated_at=now, attempt_state=None
    )
    # Courier's history items: UNDELIVERABLE carries error_message, UNMAPPED/UNROUTABLE reason.
    detail = {"error_message": why} if status == "UNDELIVERABLE" else {"reason": why}
    event = history_event(message, now, status, **detail)
    result = StepFailed(index, why, retryable=False, message_id=message.id)
    return StepResult(result, [failed], [*events, event])


def _new_message(
    run: Run, message_id: str, spec: Mapping[str, Any], to: Mapping[str, Any], now: float
) -> Message:
    """The message of an automation step that carries ``message`` (POST /send pre-creates it)."""
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
        idempotency_key=message_id,
    )


def _candidate(configured: Configured) -> routing.Candidate:
    return routing.Candidate(
        channel=configured.provider.channel,
        integration=configured.config.id,
        provider=configured.key,
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
