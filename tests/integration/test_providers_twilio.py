"""The Twilio provider against a real HTTP server speaking Twilio's Messages API."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_service import LOCAL, FakeService, fake_service, rendered

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.registry import mask_settings, validate_settings
from relaybox.providers.twilio import TwilioProvider, TwilioSettings

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-secret"
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def twilio() -> Iterator[FakeService]:
    with fake_service() as service:
        yield service


def provider(
    service: FakeService, http: httpx.AsyncClient, allow: tuple[str, ...] = (LOCAL,), **extra: Any
) -> TwilioProvider:
    settings = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": "+15005550006",
        "base_url": service.url,
        **extra,
    }
    return TwilioProvider(TwilioSettings.parse(settings), client=http, guard=OutboundGuard(allow))


def sms(**overrides: Any) -> Any:
    return rendered("sms", **{"to": {"phone_number": "+14155550123"}, **overrides})


async def test_send_posts_form_fields_with_basic_auth(
    twilio: FakeService, http: httpx.AsyncClient
) -> None:
    """A send is one form POST to Messages.json with To/From/Body and Basic auth; sid returned."""
    twilio.respond = lambda r: (201, {}, {"sid": "SM42", "status": "queued"})

    result = await provider(twilio, http).send(sms())

    (request,) = twilio.requests
    assert request.method == "POST"
    assert request.path == PATH
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    scheme, _, credentials = (request.header("Authorization") or "").partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{SID}:{TOKEN}"
    assert request.form() == {
        "To": ["+14155550123"],
        "From": ["+15005550006"],
        "Body": ["Your order 42 is on its way."],
    }
    assert result.provider_message_id == "SM42"
    assert result.response["twilio_status"] == "queued"


async def test_messaging_service_replaces_from_and_parts_give_the_text(
    twilio: FakeService, http: httpx.AsyncClient
) -> None:
    """With a messaging service the form has MessagingServiceSid, no From; parts win over text."""
    twilio.respond = lambda r: (201, {}, {"sid": "SM43"})
    p = provider(twilio, http, messaging_service_sid="MG0001", from_number=None)

    await p.send(sms(parts={"text": "SMS version"}, profile={"phone_number": "+1999"}))

    assert twilio.requests[0].form() == {
        "To": ["+14155550123"],
        "MessagingServiceSid": ["MG0001"],
        "Body": ["SMS version"],
    }


async def test_the_profile_phone_number_is_used_when_not_routed(
    twilio: FakeService, http: httpx.AsyncClient
) -> None:
    """Without a routed address the profile's phone_number is the recipient."""
    twilio.respond = lambda r: (201, {}, {"sid": "SM44"})
    await provider(twilio, http).send(rendered("sms", profile={"phone_number": "+3312345678"}))
    assert twilio.requests[0].form()["To"] == ["+3312345678"]


async def test_invalid_number_is_permanent_with_twilio_code(
    twilio: FakeService, http: httpx.AsyncClient
) -> None:
    """Twilio's 400 error (code 21211) is permanent and its code and message are recorded."""
    error = {
        "code": 21211,
        "message": "The 'To' number +14155550123 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    twilio.respond = lambda r: (400, {}, error)

    with pytest.raises(PermanentDeliveryError) as caught:
        await provider(twilio, http).send(sms())

    assert "21211" in caught.value.message
    assert "not a valid phone number" in caught.value.message
    assert caught.value.response["code"] == 21211
    assert caught.value.response["status"] == 400
    assert len(twilio.requests) == 1


async def test_bad_credentials_are_permanent(twilio: FakeService, http: httpx.AsyncClient) -> None:
    """A 401 (code 20003, authenticate) is not retried."""
    twilio.respond = lambda r: (401, {}, {"code": 20003, "message": "Authenticate", "status": 401})
    with pytest.raises(PermanentDeliveryError, match="20003"):
        await provider(twilio, http).send(sms())


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_retryable(
    twilio: FakeService, http: httpx.AsyncClient, status: int
) -> None:
    """429 and 5xx are retryable; Retry-After is honoured."""
    body = {"code": 20429, "message": "Too Many Requests", "status": status}
    twilio.respond = lambda r: (status, {"Retry-After": "7"}, body)
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider(twilio, http).send(sms())
    assert caught.value.retry_after == 7.0
    assert caught.value.response["status"] == status


async def test_connection_refused_is_retryable(http: httpx.AsyncClient) -> None:
    """A Twilio endpoint that is down is a retryable failure."""
    with fake_service() as gone:
        dead = provider(gone, http)
    with pytest.raises(RetryableDeliveryError):
        await dead.send(sms())


async def test_loopback_base_url_needs_the_allow_list(
    twilio: FakeService, http: httpx.AsyncClient
) -> None:
    """The base URL goes through the outbound guard: loopback is refused unless allow-listed."""
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        await provider(twilio, http, allow=()).send(sms())
    assert twilio.requests == []


async def test_no_phone_number_is_permanent(twilio: FakeService, http: httpx.AsyncClient) -> None:
    """A message without a phone number fails before any request."""
    with pytest.raises(PermanentDeliveryError, match="phone"):
        await provider(twilio, http).send(rendered("sms"))
    assert twilio.requests == []


def test_settings_are_validated_and_the_token_masked() -> None:
    """Missing fields are named; the auth token never comes back from the API."""
    with pytest.raises(ValidationError, match="account_sid"):
        validate_settings("twilio", {"auth_token": "t", "from_number": "+1"})
    with pytest.raises(ValidationError, match="from_number"):
        validate_settings("twilio", {"account_sid": SID, "auth_token": "t"})
    with pytest.raises(ValidationError, match="unknown twilio setting"):
        validate_settings("twilio", {"account_sid": SID, "auth_token": "t", "sender": "x"})
    with pytest.raises(ValidationError, match="base_url"):
        validate_settings(
            "twilio",
            {"account_sid": SID, "auth_token": "t", "from_number": "+1", "base_url": "ftp://x"},
        )
    stored = validate_settings(
        "twilio", {"account_sid": SID, "auth_token": TOKEN, "from_number": "+1"}
    )
    assert stored["base_url"] == "https://api.twilio.com"
    masked = mask_settings("twilio", stored)
    assert masked["auth_token"] == "********"
    assert masked["account_sid"] == SID


async def test_override_body_sets_form_fields(twilio: FakeService, http: httpx.AsyncClient) -> None:
    """A send's override.body (providers.twilio.override) sets any form field; lists repeat."""
    twilio.respond = lambda r: (201, {}, {"sid": "SM43", "status": "queued"})
    media = ["https://cdn.example.com/a.png", "https://cdn.example.com/b.png"]
    override = {"body": {"From": "+15005550009", "Body": "Overridden", "MediaUrl": media}}

    await provider(twilio, http).send(sms(override=override))

    (request,) = twilio.requests
    assert request.form() == {
        "To": ["+14155550123"],
        "From": ["+15005550009"],
        "Body": ["Overridden"],
        "MediaUrl": media,
    }
