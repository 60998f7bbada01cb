"""The set of use-case services the API, console and CLI are built on."""

from __future__ import annotations

from dataclasses import dataclass

from relaybox.clock import Clock
from relaybox.services.audiences import AudienceService
from relaybox.services.automations import AutomationService
from relaybox.services.brands import BrandService
from relaybox.services.idempotency import IdempotencyService
from relaybox.services.inbox import InboxService
from relaybox.services.keys import KeyService
from relaybox.services.lists import ListService
from relaybox.services.messages import MessageService
from relaybox.services.notifications import NotificationService
from relaybox.services.preferences import PreferenceService
from relaybox.services.profiles import ProfileService
from relaybox.services.providers import ProviderService
from relaybox.services.sending import SendService
from relaybox.services.tokens import TokenService
from relaybox.services.webhooks import WebhookService


@dataclass(frozen=True)
class Services:
    clock: Clock
    keys: KeyService
    idempotency: IdempotencyService
    automations: AutomationService
    notifications: NotificationService
    providers: ProviderService
    messages: MessageService
    profiles: ProfileService
    lists: ListService
    preferences: PreferenceService
    sending: SendService
    brands: BrandService
    webhooks: WebhookService
    inbox: InboxService
    audiences: AudienceService
    tokens: TokenService
