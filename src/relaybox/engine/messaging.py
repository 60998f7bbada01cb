"""The send pipeline's seam: from a send request to a routed, rendered message and back.

Automation ``send`` steps go through here; the /send API of the messaging issue will too.
Planning (template lookup, profile, routing, rendering) has no side effects; the engine
records the attempt durably before ``deliver`` calls the provider, and records the outcome
together with the run's next state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relaybox.clock import Clock
from relaybox.domain import preferences, routing
from relaybox.engine.providers import Configured, ProviderPool
from relaybox.errors import DeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.base import Provider, RenderedMessage
from relaybox.storage.base import Message, MessageEvent, Store
from relaybox.templates import render

NOTIFICATION_KIND = "notification"

#: Default routing: the first channel the recipient can be reached on with a provider set up.
DEFAULT_CHANNELS = ("email", "webhook")

#: What a channel needs in the recipient's profile before it can be used.
_ADDRESS_FIELDS: Mapping[str, str | None] = {"email": "email", "webhook": None}


@dataclass(frozen=True)
class SendRequest:
    workspace_id: str
    message_id: str
    idempotency_key: str
    recipient: str | None
    template: str | None
    data: dict[str, Any] = field(default_factory=dict)
    #: Profile values supplied with the request; they win over the stored profile.
    profile: dict[str, Any] = field(default_factory=dict)
    brand: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Plan:
    """A message routed and rendered for one provider, or a terminal failure to route it."""

    message: Message
    events: list[MessageEvent]
    route: Configured | None = None
    rendered: RenderedMessage | None = None


@dataclass(frozen=True)
class Outcome:
    message: Message
    events: list[MessageEvent]
    delivered: bool
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class Messenger:
    def __init__(
        self, *, store: Store, providers: ProviderPool, clock: Clock, template_ttl: float = 2.0
    ) -> None:
        self._store = store
        self._providers = providers
        self._clock = clock
        # Published templates are immutable per version, so a short cache only delays seeing
        # a newly published version by at most ``template_ttl`` (less in this process: the
        # template service invalidates on publish).
        self._template_ttl = template_ttl
        self._templates: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    def forget_templates(self, workspace_id: str) -> None:
        self._templates = {k: v for k, v in self._templates.items() if k[0] != workspace_id}

    async def plan(self, request: SendRequest, now: float) -> Plan:
        message = Message(
            workspace_id=request.workspace_id,
            id=request.message_id,
            status="ENQUEUED",
            enqueued_at=now,
            updated_at=now,
            recipient=request.recipient,
            notification=request.template,
            event=request.template,
            run_id=request.run_id,
            idempotency_key=request.idempotency_key,
        )
        events = [
            history_event(
                message,
                now,
                "ENQUEUED",
                recipient=request.recipient,
                data=request.data,
                profile=request.profile,
            )
        ]
        template = await self._template(request)
        if template is None:
            why = f'Notification template "{request.template}" not found or not published'
            if not request.template:
                why = "No template given: set template on the step or on the invoke request"
            failed = replace(message, status="UNMAPPED", error=why)
            return Plan(failed, [*events, history_event(message, now, "UNMAPPED", reason=why)])
        filtered = await self._filtered(request, message, events, template, now)
        if filtered is not None:
            return filtered
        profile = await self._profile(request)
        route = await self._route(request.workspace_id, profile)
        if route is None:
            why = "No channel with both a configured provider and an address in the profile"
            failed = replace(message, status="UNROUTABLE", reason="NO_CHANNELS", error=why)
            return Plan(failed, [*events, history_event(message, now, "UNROUTABLE", reason=why)])
        return self._render(request, message, events, template, profile, route, now)

    async def _filtered(
        self,
        request: SendRequest,
        message: Message,
        events: list[MessageEvent],
        template: Mapping[str, Any],
        now: float,
    ) -> Plan | None:
        """A terminal FILTERED plan when the recipient opted out of the template's topic."""
        topic = preferences.template_topic(template)
        if topic is None or not request.recipient:
            return None
        choice = await self._store.get_preference(request.workspace_id, request.recipient, topic)
        if choice is None or not preferences.blocks_delivery(choice.status):
            return None
        why = f'{request.recipient} opted out of subscription topic "{topic}"'
        reason = preferences.UNSUBSCRIBED
        filtered = replace(message, status=preferences.FILTERED, reason=reason, error=why)
        return Plan(
            filtered, [*events, history_event(message, now, preferences.FILTERED, reason=why)]
        )

    async def providers_for(self, workspace_id: str) -> list[Configured]:
        return await self._providers.configured(workspace_id)

    async def template_for(self, workspace_id: str, template: str | None) -> dict[str, Any] | None:
        """The published body of a notification template (by id or alias), cached briefly."""
        return await self._template(_lookup(workspace_id, template))

    async def profile_for(
        self, workspace_id: str, user_id: str | None, supplied: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The stored profile of ``user_id`` overlaid with the values sent with the request."""
        request = replace(_lookup(workspace_id, None), recipient=user_id, profile=dict(supplied))
        return await self._profile(request)

    async def deliver(self, plan: Plan, now: float) -> Outcome:
        """Call the provider; never raises for delivery failures (they are outcomes)."""
        assert plan.route is not None
        assert plan.rendered is not None
        call = await call_provider(
            plan.route.provider, plan.rendered, plan.message, now, {"provider": plan.route.key}
        )
        if call.error is None:
            return Outcome(call.message, [call.event], delivered=True)
        retryable = isinstance(call.error, RetryableDeliveryError)
        failed = replace(
            call.message,
            status="ROUTED" if retryable else "UNDELIVERABLE",
            reason=None if retryable else "PROVIDER_ERROR",
        )
        return Outcome(
            failed,
            [call.event],
            delivered=False,
            error=call.error.message,
            retryable=retryable,
            retry_after=call.error.retry_after,
        )

    async def _template(self, request: SendRequest) -> dict[str, Any] | None:
        if not request.template:
            return None
        key = (request.workspace_id, request.template)
        now = self._clock.now()
        cached = self._templates.get(key)
        if cached is not None and now - cached[0] < self._template_ttl:
            return cached[1]
        found = await self._store.get_resource(
            request.workspace_id, NOTIFICATION_KIND, request.template
        )
        published = None if found is None else found.published
        if len(self._templates) > 4096:
            self._templates.clear()
        self._templates[key] = (now, published)
        return published

    async def _profile(self, request: SendRequest) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        if request.recipient:
            stored = await self._store.get_profile(request.workspace_id, request.recipient) or {}
        return {**stored, **request.profile}

    async def _route(self, workspace_id: str, profile: Mapping[str, Any]) -> Configured | None:
        configured = await self._providers.configured(workspace_id)
        for channel in DEFAULT_CHANNELS:
            address = _ADDRESS_FIELDS[channel]
            if address is not None and not profile.get(address):
                continue
            for item in configured:
                if item.provider.channel == channel:
                    return item
        return None

    def _render(
        self,
        request: SendRequest,
        message: Message,
        events: list[MessageEvent],
        template: dict[str, Any],
        profile: dict[str, Any],
        route: Configured,
        now: float,
    ) -> Plan:
        channel = route.provider.channel
        variables = {
            **request.data,
            "data": request.data,
            "profile": profile,
            "recipient": request.recipient,
            "brand": request.brand,
        }
        try:
            out = render.render(template.get("content") or {}, channel=channel, variables=variables)
        except ValidationError as exc:
            why = f"Template could not be rendered: {exc.message}"
            failed = replace(message, status="UNDELIVERABLE", reason="FAILED", error=why)
            return Plan(
                failed, [*events, history_event(message, now, "UNDELIVERABLE", error_message=why)]
            )
        to = {"email": profile.get("email")} if channel == "email" else {}
        rendered = RenderedMessage(
            message_id=message.id,
            idempotency_key=request.idempotency_key,
            channel=channel,
            to=to,
            subject=out.subject,
            text=out.text,
            html=out.html,
            parts=out.parts,
            profile=profile,
            data=request.data,
            recipient=request.recipient,
            template=request.template,
        )
        content = {"subject": out.subject, "text": out.text, "html": out.html}
        routed = replace(
            message,
            status="ROUTED",
            channel=channel,
            provider=route.key,
            content={channel: {**content, "channel_id": route.config.id}},
        )
        more = [
            history_event(
                message,
                now,
                "ROUTED",
                channel=channel,
                provider=route.key,
                integration=route.config.id,
            ),
            # The full output (HTML included) is kept once, on the message; the history
            # event records what a reader scans for.
            history_event(
                message,
                now,
                "RENDERED",
                channel=channel,
                provider=route.key,
                output={"subject": out.subject, "text": out.text},
            ),
        ]
        return Plan(routed, [*events, *more], route=route, rendered=rendered)


def _lookup(workspace_id: str, template: str | None) -> SendRequest:
    return SendRequest(
        workspace_id=workspace_id,
        message_id="",
        idempotency_key="",
        recipient=None,
        template=template,
    )


@dataclass(frozen=True)
class ProviderCall:
    """One provider call's record: the message with the attempt closed, and its history event.

    On success the message is SENT; on failure its status is left for the caller's routing
    to decide (retry, fail over, give up), and ``error`` says what went wrong.
    """

    message: Message
    event: MessageEvent
    error: DeliveryError | None = None


async def call_provider(
    provider: Provider,
    rendered: RenderedMessage,
    message: Message,
    now: float,
    where: Mapping[str, Any],
) -> ProviderCall:
    """Call ``provider`` and record the outcome; delivery failures are outcomes, not raised.

    ``where`` (provider key, and channel / integration when known) goes into both the
    message's provider log entry and the history event.
    """
    entry: dict[str, Any] = {**where, "ts": now}
    try:
        result = await provider.send(rendered)
    except DeliveryError as exc:
        retryable = isinstance(exc, RetryableDeliveryError)
        entry |= {
            "status": routing.RETRYABLE if retryable else routing.FAILED,
            "error": exc.message,
            **exc.response,
        }
        updated = replace(
            message,
            attempt_state=None,
            updated_at=now,
            error=exc.message,
            providers=[*message.providers, entry],
        )
        kind = "RETRYING" if retryable else "UNDELIVERABLE"
        event = history_event(message, now, kind, **where, error_message=exc.message)
        return ProviderCall(updated, event, exc)
    entry |= {"status": routing.SENT, **dict(result.response)}
    sent = replace(
        message,
        status="SENT",
        attempt_state=None,
        sent_at=now,
        updated_at=now,
        error=None,
        reason=None,
        providers=[*message.providers, entry],
    )
    event = history_event(
        message,
        now,
        "SENT",
        **where,
        reference=result.provider_message_id,
        response=dict(result.response),
    )
    return ProviderCall(sent, event)


def history_event(message: Message, now: float, kind: str, **detail: Any) -> MessageEvent:
    return MessageEvent(
        message_id=message.id,
        ts=now,
        type=kind,
        detail={k: v for k, v in detail.items() if v is not None},
    )
