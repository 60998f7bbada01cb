"""Direct recipients as the settings of the provider that delivers to them."""

from __future__ import annotations

import base64

import pytest

from relaybox.errors import ValidationError
from relaybox.providers.direct import provider_settings

SLACK = "http://slack.test/api"


def test_webhook_authentication_becomes_the_authorization_header() -> None:
    hook = {
        "url": "https://x.y/in",
        "method": "PUT",
        "headers": {"authorization": "old", "X-A": "1"},
        "authentication": {"mode": "basic", "username": "u", "password": "p:w"},
    }
    key, settings = provider_settings("webhook", hook, slack_api_base=SLACK)
    basic = base64.b64encode(b"u:p:w").decode()
    assert key == "webhook"
    assert settings == {
        "url": "https://x.y/in",
        "method": "PUT",
        "headers": {"X-A": "1", "Authorization": f"Basic {basic}"},
    }
    bearer = {"url": "https://x.y", "authentication": {"mode": "bearer", "token": "t"}}
    _, settings = provider_settings("webhook", bearer, slack_api_base=SLACK)
    assert settings["headers"] == {"Authorization": "Bearer t"}
    assert settings["method"] == "POST"


def test_without_authentication_the_headers_are_kept_as_given() -> None:
    hook = {"url": "https://x.y", "headers": {"Authorization": "Token abc"}}
    _, settings = provider_settings("webhook", hook, slack_api_base=SLACK)
    assert settings["headers"] == {"Authorization": "Token abc"}


def test_slack_uses_the_recipient_token_and_the_configured_api() -> None:
    key, settings = provider_settings(
        "slack", {"access_token": "xoxb-1", "channel": "C1"}, slack_api_base=SLACK
    )
    assert (key, settings) == ("slack", {"token": "xoxb-1", "base_url": SLACK})


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="ms_teams"):
        provider_settings("ms_teams", {}, slack_api_base=SLACK)
