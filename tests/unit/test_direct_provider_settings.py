"""Direct recipients as the settings of the provider that delivers to them."""

from __future__ import annotations

import base64

import httpx
import pytest
from cryptography.fernet import Fernet

from relaybox.domain.send import seal_direct
from relaybox.errors import PermanentDeliveryError, ValidationError
from relaybox.providers.base import RenderedMessage
from relaybox.providers.direct import provider_settings
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.registry import Catalog
from relaybox.providers.secrets import SecretBox
from relaybox.providers.webhook import WebhookProvider

SLACK = "http://slack.test/api"
PAGERDUTY = "http://pagerduty.test"
BASES = {"slack_api_base": SLACK, "pagerduty_api_base": PAGERDUTY}


def test_webhook_authentication_becomes_the_authorization_header() -> None:
    hook = {
        "url": "https://x.y/in",
        "method": "PUT",
        "headers": {"authorization": "old", "X-A": "1"},
        "authentication": {"mode": "basic", "username": "u", "password": "p:w"},
    }
    key, settings = provider_settings("webhook", hook, **BASES)
    basic = base64.b64encode(b"u:p:w").decode()
    assert key == "webhook"
    assert settings == {
        "url": "https://x.y/in",
        "method": "PUT",
        "headers": {"X-A": "1", "Authorization": f"Basic {basic}"},
    }
    bearer = {"url": "https://x.y", "authentication": {"mode": "bearer", "token": "t"}}
    _, settings = provider_settings("webhook", bearer, **BASES)
    assert settings["headers"] == {"Authorization": "Bearer t"}
    assert settings["method"] == "POST"


def test_without_authentication_the_headers_are_kept_as_given() -> None:
    hook = {"url": "https://x.y", "headers": {"Authorization": "Token abc"}}
    _, settings = provider_settings("webhook", hook, **BASES)
    assert settings["headers"] == {"Authorization": "Token abc"}


def test_slack_uses_the_recipient_token_and_the_configured_api() -> None:
    key, settings = provider_settings("slack", {"access_token": "xoxb-1", "channel": "C1"}, **BASES)
    assert (key, settings) == ("slack", {"token": "xoxb-1", "base_url": SLACK})


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="ms_teams"):
        provider_settings("ms_teams", {}, **BASES)


def test_pagerduty_keeps_the_event_fields_and_uses_the_configured_api() -> None:
    pager = {"routing_key": "R", "severity": "critical", "source": "db-1"}
    key, settings = provider_settings("pagerduty", pager, **BASES)
    assert (key, settings) == ("pagerduty", {**pager, "base_url": PAGERDUTY})


async def test_the_catalog_opens_sealed_credentials_only_to_build_the_provider() -> None:
    box = SecretBox([Fernet.generate_key()])
    catalog = Catalog(box)
    sealed = seal_direct(
        {"webhook": {"url": "https://x.y", "authentication": {"mode": "bearer", "token": "t"}}},
        box.seal,
    )["webhook"]
    assert str(sealed["authentication"]).startswith("rbx:sealed:v1:")
    async with httpx.AsyncClient() as http:
        guard = OutboundGuard()
        provider = catalog.build_direct("webhook", sealed, http_client=http, guard=guard, **BASES)
        assert isinstance(provider, WebhookProvider)
        assert provider.settings.headers == {"Authorization": "Bearer t"}
        # Sealed with a key this server lacks: a provider that fails with the reason.
        other = Catalog(SecretBox([Fernet.generate_key()]))
        lost = other.build_direct("webhook", sealed, http_client=http, guard=guard, **BASES)
        assert lost.channel == "webhook"
        with pytest.raises(PermanentDeliveryError, match="cannot be decrypted"):
            await lost.send(RenderedMessage("m", "m", "webhook", to={}))
