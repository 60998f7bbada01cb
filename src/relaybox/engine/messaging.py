"""The send pipeline's seam: what ``engine.steps.routed.RoutedSend`` needs from outside.

Every ``send`` step (the template/recipient form of automations and Courier's ``message``
form behind POST /send) is executed by ``RoutedSend``; this module gives it the template,
profile, preference and provider lookups, the provider call with its record
(``call_provider``) and the history event constructor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from relaybox.clock import Clock
from relaybox.domain import preferences, routing
from relaybox.engine.brands import BrandCache
from relaybox.engine.providers import Configured, ProviderPool
from relaybox.errors import DeliveryError, DeliveryTimeout, RetryableDeliveryError
from relaybox.providers.base import Provider, ProviderFactory, RenderedMessage
from relaybox.storage.base import Message, MessageEvent, Store

NOTIFICATION_KIND = "notification"


class Messenger:
    def __init__(
        self,
        *,
        store: Store,
        providers: ProviderPool,
        clock: Clock,
        template_ttl: float = 2.0,
        direct: ProviderFactory | None = None,
    ) -> None:
        self._store = store
        self._providers = providers
        #: Builds the provider of a direct recipient from its (sealed) settings.
        self._direct = direct
        self._clock = clock
        # Published templates are immutable per version, so a short cache only delays seeing
        # a newly published version by at most ``template_ttl`` (less in this process: the
        # template service invalidates on publish).
        self._template_ttl = template_ttl
        self._templates: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._brands = BrandCache(store=store, clock=clock, ttl=template_ttl)

    def forget_templates(self, workspace_id: str) -> None:
        self._templates = {k: v for k, v in self._templates.items() if k[0] != workspace_id}

    def forget_brands(self, workspace_id: str) -> None:
        self._brands.forget(workspace_id)

    async def brand_for(
        self, workspace_id: str, brand_id: str | None, template: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """The brand to render with: the send's, else the template body's, else the default."""
        return await self._brands.resolve(workspace_id, brand_id, template)

    def now(self) -> float:
        return self._clock.now()

    async def providers_for(self, workspace_id: str) -> list[Configured]:
        return await self._providers.configured(workspace_id)

    def direct_provider(
        self, workspace_id: str, kind: str, recipient: Mapping[str, Any]
    ) -> Configured | None:
        """The provider for a direct recipient (``to: {"webhook": {...}}``); None when this
        messenger was given no way to build one."""
        if self._direct is None:
            return None
        provider = self._direct(kind, recipient)
        return Configured.ad_hoc(workspace_id, f"direct-{kind}", provider)

    async def template_for(self, workspace_id: str, template: str | None) -> dict[str, Any] | None:
        """The published body of a notification template (by id or alias), cached briefly."""
        if not template:
            return None
        key = (workspace_id, template)
        now = self._clock.now()
        cached = self._templates.get(key)
        if cached is not None and now - cached[0] < self._template_ttl:
            return cached[1]
        found = await self._store.get_resource(workspace_id, NOTIFICATION_KIND, template)
        published = None if found is None else found.published
        if len(self._templates) > 4096:
            self._templates.clear()
        self._templates[key] = (now, published)
        return published

    async def profile_for(
        self, workspace_id: str, user_id: str | None, supplied: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The stored profile of ``user_id`` overlaid with the values sent with the request."""
        stored: dict[str, Any] = {}
        if user_id:
            stored = await self._store.get_profile(workspace_id, user_id) or {}
        return {**stored, **supplied}

    async def opted_out_topic(
        self, workspace_id: str, user_id: str | None, template: Mapping[str, Any]
    ) -> str | None:
        """The template's subscription topic when ``user_id`` opted out of it, else None."""
        topic = preferences.template_topic(template)
        if topic is None or not user_id:
            return None
        choice = await self._store.get_preference(workspace_id, user_id, topic)
        if choice is None or not preferences.blocks_delivery(choice.status):
            return None
        return topic


@dataclass(frozen=True)
class ProviderCall:
    """One provider call's record: the message with the attempt closed, and its history event.

    On success the message is SENT; on failure its status is left for the caller's routing
    to decide (retry, fail over, give up), and ``error`` says what went wrong.
    """

    message: Message
    event: MessageEvent
    #: The routing outcome (``routing.SENT``, ``RETRYABLE``, ``FAILED`` or ``TIMEOUT``), as
    #: recorded in the message's provider log.
    outcome: str
    error: DeliveryError | None = None


async def call_provider(
    provider: Provider,
    rendered: RenderedMessage,
    message: Message,
    now: float,
    pick: routing.Candidate,
    time_limit: float | None = None,
) -> ProviderCall:
    """Call ``pick``'s ``provider`` and record the outcome; delivery failures are outcomes,
    not raised.

    ``pick``'s provider key, integration and channel go into both the message's provider
    log entry and the history event. A call still running after ``time_limit`` seconds is
    abandoned as a ``DeliveryTimeout``.
    """
    where = {"provider": pick.provider, "integration": pick.integration, "channel": pick.channel}
    entry: dict[str, Any] = {**where, "ts": now}
    try:
        try:
            async with asyncio.timeout(time_limit):
                result = await provider.send(rendered)
        except TimeoutError:
            if time_limit is None:
                raise
            raise DeliveryTimeout(f"{provider.key}: no answer within {time_limit:g} s") from None
    except DeliveryError as exc:
        retryable = isinstance(exc, RetryableDeliveryError)
        status = routing.RETRYABLE if retryable else routing.FAILED
        outcome = routing.TIMEOUT if isinstance(exc, DeliveryTimeout) else status
        entry |= {
            "status": outcome,
            "error": exc.message,
            # Nested: the provider's own fields (an HTTP "status") must not shadow ours.
            "response": dict(exc.response),
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
        return ProviderCall(updated, event, outcome, exc)
    entry |= {"status": routing.SENT, "response": dict(result.response)}
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
    return ProviderCall(sent, event, routing.SENT)


def history_event(message: Message, now: float, kind: str, **detail: Any) -> MessageEvent:
    return MessageEvent(
        message_id=message.id,
        ts=now,
        type=kind,
        detail={k: v for k, v in detail.items() if v is not None},
    )
