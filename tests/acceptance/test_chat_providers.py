"""Chat end to end through the official SDK: Slack (bot token, recipient from the profile) and
the apprise bridge (a json:// URL), each received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fake_service import FakeService, fake_service
from relaybox_harness import Workspace, unique, wait_for


@pytest.fixture
def service() -> Iterator[FakeService]:
    with fake_service() as fake:
        yield fake


def send_chat(ws: Workspace, user: str) -> Any:
    client = ws.client()
    response = client.send.message(
        message={
            "to": {"user_id": user},
            "content": {"title": "Deploy {{version}}", "body": "Rolled out to production"},
            "data": {"version": "v2.3"},
            "routing": {"method": "single", "channels": ["chat"]},
        }
    )
    return wait_for(
        lambda: (
            m
            if (m := client.messages.retrieve(response.request_id)).status
            in ("SENT", "UNDELIVERABLE", "UNROUTABLE")
            else None
        ),
        timeout=20,
        what="the chat message to settle",
    )


def test_slack_bot_posts_to_the_profile_channel(
    new_workspace: Callable[[str], Workspace], service: FakeService
) -> None:
    """A user with profile.slack.channel gets a chat.postMessage with the bot token."""
    service.respond = lambda r: (200, {}, {"ok": True, "channel": "C0TEAM", "ts": "17.42"})
    ws = new_workspace("slack")
    client = ws.client()
    client.providers.create(
        provider="slack", settings={"token": "xoxb-acceptance", "base_url": f"{service.url}/api"}
    )
    assert client.providers.list().to_dict()["results"][0]["settings"]["token"] == "********"
    user = unique("slack-user")
    client.profiles.create(user, profile={"slack": {"channel": "C0TEAM"}})

    message = send_chat(ws, user)

    assert message.status == "SENT", message
    (request,) = service.to("/api/chat.postMessage")
    assert request.header("Authorization") == "Bearer xoxb-acceptance"
    body = request.json()
    assert body["channel"] == "C0TEAM"
    assert "Rolled out to production" in body["text"]


def test_slack_without_an_address_is_unroutable(
    new_workspace: Callable[[str], Workspace], service: FakeService
) -> None:
    """A bot-token Slack provider without a default channel cannot reach a user without slack."""
    ws = new_workspace("slack-none")
    ws.client().providers.create(
        provider="slack", settings={"token": "xoxb-acceptance", "base_url": f"{service.url}/api"}
    )
    message = send_chat(ws, unique("nobody"))
    assert message.status == "UNROUTABLE"
    assert service.requests == []


def test_apprise_json_url(new_workspace: Callable[[str], Workspace], service: FakeService) -> None:
    """An apprise provider on the chat channel delivers to its json:// URL."""
    ws = new_workspace("apprise")
    ws.client().providers.create(
        provider="apprise",
        settings={"urls": f"json://{urlsplit(service.url).netloc}/notify", "channel": "chat"},
    )

    message = send_chat(ws, unique("apprise-user"))

    assert message.status == "SENT", message
    (request,) = service.to("/notify")
    body = request.json()
    assert body["title"] == "Deploy v2.3"
    assert "Rolled out to production" in body["message"]


def test_provider_catalog_through_the_sdk(new_workspace: Callable[[str], Workspace]) -> None:
    """providers.catalog.list describes each provider type; its filters narrow the list."""
    client = new_workspace("catalog").client()
    push = client.providers.catalog.list(channel="push")
    assert sorted(e.provider for e in push.results) == ["apn", "apprise", "fcm"]
    (twilio,) = client.providers.catalog.list(keys="twilio").results
    assert twilio.channel == "sms"
    assert twilio.name == "Twilio"
    assert twilio.settings["auth_token"].required is True
    assert twilio.settings["from_number"].required is False
    assert [e.provider for e in client.providers.catalog.list(name="slack").results] == ["slack"]
