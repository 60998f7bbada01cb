"""The Slack provider against a real HTTP server: incoming webhooks and chat.postMessage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_service import LOCAL, FakeService, Received, fake_service, rendered

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.registry import mask_settings, validate_settings
from relaybox.providers.slack import SlackProvider, SlackSettings

BOT_TOKEN = "xoxb-1234-5678-secret"
HOOK_PATH = "/services/T000/B000/XXXXSECRET"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Order shipped*"}}]


@pytest.fixture
def slack() -> Iterator[FakeService]:
    with fake_service() as service:
        yield service


def provider(service: FakeService, http: httpx.AsyncClient, **settings: Any) -> SlackProvider:
    parsed = SlackSettings.parse({"base_url": f"{service.url}/api", **settings})
    return SlackProvider(parsed, client=http, guard=OutboundGuard([LOCAL]))


def chat(**overrides: Any) -> Any:
    return rendered("chat", **overrides)


async def test_incoming_webhook_gets_text_and_blocks(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """Webhook mode POSTs JSON {text, blocks} to the webhook URL; Slack's "ok" delivers."""
    slack.respond = lambda r: (200, {"Content-Type": "text/plain"}, "ok")
    p = provider(slack, http, webhook_url=slack.url + HOOK_PATH)

    await p.send(chat(parts={"blocks": BLOCKS, "text": "Order shipped (fallback)"}))

    (request,) = slack.requests
    assert request.method == "POST"
    assert request.path == HOOK_PATH
    assert request.header("Content-Type") == "application/json"
    assert request.header("Authorization") is None
    assert request.json() == {"text": "Order shipped (fallback)", "blocks": BLOCKS}


async def test_webhook_without_parts_sends_the_text(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """Without rendered chat parts the text is the message's text and no blocks are sent."""
    slack.respond = lambda r: (200, {}, "ok")
    slack.respond = lambda r: (200, {"Content-Type": "text/plain"}, "ok")
    await provider(slack, http, webhook_url=slack.url + HOOK_PATH).send(chat())
    assert slack.requests[0].json() == {"text": "Your order 42 is on its way."}


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, "invalid_payload", PermanentDeliveryError),
        (404, "channel_not_found", PermanentDeliveryError),
        (410, "channel_is_archived", PermanentDeliveryError),
        (429, "rate_limited", RetryableDeliveryError),
        (500, "rollup_error", RetryableDeliveryError),
    ],
)
async def test_webhook_errors(
    slack: FakeService, http: httpx.AsyncClient, status: int, error: str, kind: type[Exception]
) -> None:
    """Webhook error texts are recorded; 4xx is permanent, 429 and 5xx retryable."""
    slack.respond = lambda r: (status, {"Content-Type": "text/plain"}, error)
    with pytest.raises(kind, match=error) as caught:
        await provider(slack, http, webhook_url=slack.url + HOOK_PATH).send(chat())
    assert caught.value.response["error"] == error  # type: ignore[attr-defined]


def post_message_ok(r: Received) -> tuple[int, dict[str, str], Any]:
    if r.path == "/api/users.lookupByEmail":
        return 200, {}, {"ok": True, "user": {"id": "U0LOOKUP"}}
    return 200, {}, {"ok": True, "channel": r.json()["channel"], "ts": "1503435956.000247"}


async def test_bot_token_posts_chat_post_message(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """Bot mode: POST chat.postMessage, Bearer token, JSON {channel, text, blocks}; ts returned."""
    slack.respond = post_message_ok
    p = provider(slack, http, token=BOT_TOKEN, channel="C0DEFAULT")

    result = await p.send(chat(parts={"blocks": BLOCKS}))

    (request,) = slack.requests
    assert request.method == "POST"
    assert request.path == "/api/chat.postMessage"
    assert request.header("Authorization") == f"Bearer {BOT_TOKEN}"
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert request.json() == {
        "channel": "C0DEFAULT",
        "text": "Your order 42 is on its way.",
        "blocks": BLOCKS,
    }
    assert result.provider_message_id == "1503435956.000247"


async def test_profile_slack_address_and_token_win(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """The recipient's slack {user_id, access_token} replaces the default channel and token."""
    slack.respond = post_message_ok
    p = provider(slack, http, token=BOT_TOKEN, channel="C0DEFAULT")
    profile = {"slack": {"user_id": "U0USER", "access_token": "xoxb-user-workspace"}}

    await p.send(chat(profile=profile))

    (request,) = slack.requests
    assert request.json()["channel"] == "U0USER"
    assert request.header("Authorization") == "Bearer xoxb-user-workspace"


async def test_email_is_looked_up_first(slack: FakeService, http: httpx.AsyncClient) -> None:
    """A recipient known by email is resolved with users.lookupByEmail, then messaged."""
    slack.respond = post_message_ok
    p = provider(slack, http, token=BOT_TOKEN)

    await p.send(chat(profile={"slack": {"email": "jane+shop@example.com"}}))

    lookup, post = slack.requests
    assert lookup.method == "GET"
    assert lookup.path == "/api/users.lookupByEmail"
    assert lookup.query == {"email": ["jane+shop@example.com"]}
    assert lookup.header("Authorization") == f"Bearer {BOT_TOKEN}"
    assert post.json()["channel"] == "U0LOOKUP"


async def test_ok_false_is_permanent_unless_ratelimited(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """Slack's 200 {ok: false, error} is permanent; error "ratelimited" is retryable."""
    p = provider(slack, http, token=BOT_TOKEN, channel="C1")
    slack.respond = lambda r: (200, {}, {"ok": False, "error": "channel_not_found"})
    with pytest.raises(PermanentDeliveryError, match="channel_not_found") as caught:
        await p.send(chat())
    assert caught.value.response == {"ok": False, "error": "channel_not_found"}

    slack.respond = lambda r: (200, {}, {"ok": False, "error": "ratelimited"})
    with pytest.raises(RetryableDeliveryError, match="ratelimited"):
        await p.send(chat())


async def test_http_429_is_retryable_with_retry_after(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """Slack's HTTP 429 with Retry-After is retried after that many seconds."""
    slack.respond = lambda r: (429, {"Retry-After": "30"}, {"ok": False, "error": "ratelimited"})
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider(slack, http, token=BOT_TOKEN, channel="C1").send(chat())
    assert caught.value.retry_after == 30.0


async def test_unknown_email_is_permanent(slack: FakeService, http: httpx.AsyncClient) -> None:
    """users.lookupByEmail answering users_not_found fails the send without posting."""
    slack.respond = lambda r: (200, {}, {"ok": False, "error": "users_not_found"})
    with pytest.raises(PermanentDeliveryError, match="users_not_found"):
        await provider(slack, http, token=BOT_TOKEN).send(
            chat(profile={"slack": {"email": "nobody@example.com"}})
        )
    assert [r.path for r in slack.requests] == ["/api/users.lookupByEmail"]


def test_reachability_follows_the_settings(slack: FakeService) -> None:
    """A webhook or a default channel reaches everyone; a bare bot token needs profile.slack."""
    http = httpx.AsyncClient()
    hook = provider(slack, http, webhook_url="https://hooks.slack.com/services/T/B/X")
    bot = provider(slack, http, token=BOT_TOKEN)
    assert hook.reachable({})
    assert provider(slack, http, token=BOT_TOKEN, channel="C1").reachable({})
    assert not bot.reachable({})
    assert bot.reachable({"slack": {"channel": "C2"}})


def test_settings_need_one_mode_and_hide_secrets() -> None:
    """Exactly one of webhook_url and token; both are masked."""
    with pytest.raises(ValidationError, match="exactly one"):
        validate_settings("slack", {})
    with pytest.raises(ValidationError, match="exactly one"):
        validate_settings("slack", {"webhook_url": "https://h/x", "token": "xoxb"})
    with pytest.raises(ValidationError, match="webhook_url"):
        validate_settings("slack", {"webhook_url": "not a url"})
    stored = validate_settings("slack", {"token": BOT_TOKEN, "channel": "C1"})
    assert mask_settings("slack", stored) == {
        "token": "********",
        "channel": "C1",
        "base_url": "https://slack.com/api",
        "timeout": 10.0,
    }


async def test_override_body_is_merged_into_the_message(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """A send's override.body (providers.slack.override) is merged into chat.postMessage."""
    slack.respond = post_message_ok
    override = {"body": {"unfurl_links": False, "username": "Relaybox", "channel": "C0OVERRIDE"}}

    await provider(slack, http, token=BOT_TOKEN, channel="C0DEFAULT").send(chat(override=override))

    (posted,) = slack.requests
    assert posted.json() == {
        "channel": "C0OVERRIDE",
        "text": "Your order 42 is on its way.",
        "unfurl_links": False,
        "username": "Relaybox",
    }


async def test_override_body_reaches_an_incoming_webhook(
    slack: FakeService, http: httpx.AsyncClient
) -> None:
    """Webhook mode: the override.body is merged into the posted JSON."""
    slack.respond = lambda r: (200, {"Content-Type": "text/plain"}, "ok")
    await provider(slack, http, webhook_url=slack.url + HOOK_PATH).send(
        chat(override={"body": {"text": "Replaced", "icon_emoji": ":bell:"}})
    )
    (hooked,) = slack.requests
    assert hooked.json() == {"text": "Replaced", "icon_emoji": ":bell:"}
