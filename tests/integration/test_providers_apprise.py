"""The apprise bridge against a real HTTP server reached through apprise's json:// and form://
URLs, and the outbound policy applied to apprise's hosts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fake_service import LOCAL, FakeService, fake_service, rendered

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.apprise_bridge import AppriseProvider, AppriseSettings
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.registry import mask_settings, validate_settings


@pytest.fixture
def receiver() -> Iterator[FakeService]:
    with fake_service() as service:
        yield service


def url(service: FakeService, scheme: str, path: str) -> str:
    return f"{scheme}://{urlsplit(service.url).netloc}{path}"


def provider(allow: tuple[str, ...] = (LOCAL,), **raw: Any) -> AppriseProvider:
    return AppriseProvider(AppriseSettings.parse(raw), guard=OutboundGuard(allow))


async def test_json_url_receives_title_and_body(receiver: FakeService) -> None:
    """A json:// URL gets apprise's JSON document with the push title and body."""
    p = provider(urls=url(receiver, "json", "/notify"))
    assert p.channel == "push"

    result = await p.send(rendered("push", parts={"title": "Shipped!", "body": "Track it"}))

    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/notify"
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {
        "version": "1.0",
        "title": "Shipped!",
        "message": "Track it",
        "attachments": [],
        "type": "info",
    }
    assert result.response["services"] == 1


async def test_every_url_is_notified_and_subject_text_are_the_fallback(
    receiver: FakeService,
) -> None:
    """Several URLs (json and form) each get the message; without parts subject/text are used."""
    p = provider(urls=[url(receiver, "json", "/a"), url(receiver, "form", "/b")], channel="chat")
    assert p.channel == "chat"

    await p.send(rendered("chat"))

    by_path = {r.path: r for r in receiver.requests}
    assert by_path["/a"].json()["title"] == "Order shipped"
    assert by_path["/a"].json()["message"] == "Your order 42 is on its way."
    assert by_path["/b"].header("Content-Type") == "application/x-www-form-urlencoded"
    assert by_path["/b"].form() == {
        "version": ["1.0"],
        "title": ["Order shipped"],
        "message": ["Your order 42 is on its way."],
        "type": ["info"],
    }


async def test_client_error_is_permanent(receiver: FakeService) -> None:
    """A 400 from the apprise target is a permanent failure with apprise's log line."""
    receiver.respond = lambda r: (400, {}, {})
    with pytest.raises(PermanentDeliveryError, match="error=400"):
        await provider(urls=url(receiver, "json", "/notify")).send(rendered("push"))


async def test_server_error_is_retryable(receiver: FakeService) -> None:
    """A 503 from the apprise target is retryable."""
    receiver.respond = lambda r: (503, {}, {})
    with pytest.raises(RetryableDeliveryError, match="error=503"):
        await provider(urls=url(receiver, "json", "/notify")).send(rendered("push"))


async def test_redirects_are_not_followed(receiver: FakeService) -> None:
    """A redirect (which could lead past the host check) fails the send and is not followed."""
    receiver.respond = lambda r: (
        (307, {"Location": f"{receiver.url}/elsewhere"}, b"")
        if r.path == "/notify"
        else (200, {}, {})
    )
    with pytest.raises(RetryableDeliveryError):
        await provider(urls=url(receiver, "json", "/notify?redirect=yes")).send(rendered("push"))
    assert [r.path for r in receiver.requests] == ["/notify"]


async def test_loopback_hosts_are_refused_unless_allow_listed(receiver: FakeService) -> None:
    """Apprise URLs obey the outbound policy: no request reaches a loopback host by default."""
    p = provider(allow=(), urls=url(receiver, "json", "/notify"))
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        await p.send(rendered("push"))
    named = provider(allow=(), urls=f"form://localhost:{urlsplit(receiver.url).port}/x")
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        await named.send(rendered("push"))
    assert receiver.requests == []


async def test_token_hosts_that_do_not_resolve_pass_the_check() -> None:
    """A URL whose "host" is a token (Telegram's bot token) is not refused by the host check."""
    p = provider(allow=(), urls="tgram://123456789:AAbbCCddEEff/987654321")
    await p.check_hosts()


def test_settings_validate_urls_and_channel_and_mask_the_urls() -> None:
    """Unknown URL schemes and channels are refused; the URLs (with tokens) are masked."""
    with pytest.raises(ValidationError, match="urls"):
        validate_settings("apprise", {})
    with pytest.raises(ValidationError, match="entry 1"):
        validate_settings("apprise", {"urls": ["json://example.com/x", "nope://what"]})
    with pytest.raises(ValidationError, match="channel"):
        validate_settings("apprise", {"urls": "json://example.com/x", "channel": "fax"})
    stored = validate_settings("apprise", {"urls": "ntfy://ntfy.example.com/topic"})
    assert stored == {"urls": ["ntfy://ntfy.example.com/topic"], "channel": "push", "timeout": 30.0}
    assert mask_settings("apprise", stored)["urls"] == "********"


async def test_override_body_sets_title_and_body(receiver: FakeService) -> None:
    """A send's override.body title / body are what the services receive."""
    p = provider(urls=url(receiver, "json", "/notify"))
    override = {"body": {"title": "Overridden", "body": "New body"}}

    await p.send(
        rendered("push", parts={"title": "Shipped!", "body": "Track it"}, override=override)
    )

    (request,) = receiver.requests
    assert (request.json()["title"], request.json()["message"]) == ("Overridden", "New body")
