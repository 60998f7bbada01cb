"""The FCM provider against a real HTTP server playing Google's token endpoint and FCM v1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_service import LOCAL, FakeService, Received, fake_service, rendered

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.fcm import FcmProvider, FcmSettings
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.registry import mask_settings, validate_settings

PROJECT = "relaybox-test"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
PUBLIC_KEY = _KEY.public_key()


def service_account(token_uri: str) -> dict[str, Any]:
    """A service-account key file in Google's format."""
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-id-1",
        "private_key": PRIVATE_PEM,
        "client_email": f"firebase-adminsdk@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


class Google:
    """Token endpoint + FCM v1 send: verifies the assertion, then the bearer token."""

    def __init__(self, service: FakeService) -> None:
        self.service = service
        self.issued = 0
        self.send_answer: tuple[int, dict[str, str], Any] = (200, {}, {})
        self.token_answer: tuple[int, dict[str, str], Any] | None = None
        service.respond = self.respond

    def respond(self, r: Received) -> tuple[int, dict[str, str], Any]:
        if r.path == "/token":
            return self.token(r)
        assert r.header("Authorization") == f"Bearer ya29.token-{self.issued}"
        return self.send_answer

    def token(self, r: Received) -> tuple[int, dict[str, str], Any]:
        assert r.method == "POST"
        assert r.header("Content-Type") == "application/x-www-form-urlencoded"
        form = parse_qs(r.raw.decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        (assertion,) = form["assertion"]
        assert jwt.get_unverified_header(assertion) == {
            "alg": "RS256",
            "typ": "JWT",
            "kid": "key-id-1",
        }
        claims = jwt.decode(
            assertion, PUBLIC_KEY, algorithms=["RS256"], audience=f"{self.service.url}/token"
        )
        assert claims["iss"] == f"firebase-adminsdk@{PROJECT}.iam.gserviceaccount.com"
        assert claims["scope"] == SCOPE
        assert claims["exp"] - claims["iat"] == 3600
        assert claims["iat"] <= time.time() + 60
        if self.token_answer is not None:
            return self.token_answer
        self.issued += 1
        return 200, {}, {"access_token": f"ya29.token-{self.issued}", "expires_in": 3599}

    def sends(self) -> list[Received]:
        return self.service.to(SEND_PATH)


@pytest.fixture
def google() -> Iterator[Google]:
    with fake_service() as service:
        yield Google(service)


def provider(google: Google, http: httpx.AsyncClient, **extra: Any) -> FcmProvider:
    settings = FcmSettings.parse(
        {
            "service_account": service_account(f"{google.service.url}/token"),
            "base_url": google.service.url,
            **extra,
        }
    )
    return FcmProvider(settings, client=http, guard=OutboundGuard([LOCAL]))


def push(**overrides: Any) -> Any:
    return rendered("push", **{"to": {"push_token": "device-token-1"}, **overrides})


async def test_token_exchange_then_v1_send(google: Google, http: httpx.AsyncClient) -> None:
    """A signed JWT is exchanged for an access token, then the v1 message is POSTed with it."""
    google.send_answer = (200, {}, {"name": f"projects/{PROJECT}/messages/0:1500415314455276"})

    result = await provider(google, http).send(push(data={"order": 42, "sku": "A-1"}))

    assert [r.path for r in google.service.requests] == ["/token", SEND_PATH]
    send = google.sends()[0]
    assert send.method == "POST"
    assert send.header("Content-Type") == "application/json; charset=utf-8"
    assert send.json() == {
        "message": {
            "token": "device-token-1",
            "notification": {"title": "Order shipped", "body": "Your order 42 is on its way."},
            "data": {"order": "42", "sku": "A-1"},
        }
    }
    assert result.provider_message_id == f"projects/{PROJECT}/messages/0:1500415314455276"


async def test_push_parts_are_used_and_the_token_is_cached(
    google: Google, http: httpx.AsyncClient
) -> None:
    """Rendered push parts give title/body/data; a second send reuses the access token."""
    p = provider(google, http)
    parts = {"title": "Shipped!", "body": "Track it", "data": {"deep_link": "app://o/42"}}
    await p.send(push(parts=parts))
    await p.send(push(to={}, profile={"firebaseToken": "device-token-2"}))

    assert [r.path for r in google.service.requests] == ["/token", SEND_PATH, SEND_PATH]
    first, second = (r.json()["message"] for r in google.sends())
    assert first["notification"] == {"title": "Shipped!", "body": "Track it"}
    assert first["data"] == {"deep_link": "app://o/42"}
    assert second["token"] == "device-token-2"


async def test_token_is_fetched_again_after_expiry(google: Google, http: httpx.AsyncClient) -> None:
    """An access token is renewed once it is about to expire."""
    # The first token is issued (a fake) 59 minutes ago, so it is inside the renewal margin now.
    now = [time.time() - 3599 + 30]
    p = provider(google, http)
    p._clock = lambda: now[0]
    await p.send(push())
    now[0] = time.time()
    await p.send(push())
    assert [r.path for r in google.service.requests] == ["/token", SEND_PATH, "/token", SEND_PATH]


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (404, "UNREGISTERED", PermanentDeliveryError),
        (400, "INVALID_ARGUMENT", PermanentDeliveryError),
        (403, "SENDER_ID_MISMATCH", PermanentDeliveryError),
        (503, "UNAVAILABLE", RetryableDeliveryError),
        (500, "INTERNAL", RetryableDeliveryError),
        (429, "QUOTA_EXCEEDED", RetryableDeliveryError),
    ],
)
async def test_fcm_errors(
    google: Google, http: httpx.AsyncClient, status: int, code: str, kind: type[Exception]
) -> None:
    """FCM's error codes decide: unregistered/invalid tokens are permanent, outages retried."""
    google.send_answer = (
        status,
        {},
        {
            "error": {
                "code": status,
                "message": "Requested entity was not found.",
                "status": "NOT_FOUND" if status == 404 else code,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": code,
                    }
                ],
            }
        },
    )
    with pytest.raises(kind, match=code) as caught:
        await provider(google, http).send(push())
    assert caught.value.response["error_code"] == code  # type: ignore[attr-defined]


async def test_401_drops_the_access_token(google: Google, http: httpx.AsyncClient) -> None:
    """An access token refused with 401 is retried with a fresh one."""
    p = provider(google, http)
    google.send_answer = (401, {}, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    with pytest.raises(RetryableDeliveryError, match="UNAUTHENTICATED"):
        await p.send(push())
    google.send_answer = (200, {}, {"name": "projects/p/messages/1"})
    await p.send(push())
    assert [r.path for r in google.service.requests] == ["/token", SEND_PATH, "/token", SEND_PATH]


async def test_refused_assertion_is_permanent(google: Google, http: httpx.AsyncClient) -> None:
    """invalid_grant from the token endpoint (a revoked key) fails without sending."""
    google.token_answer = (400, {}, {"error": "invalid_grant", "error_description": "Invalid JWT"})
    with pytest.raises(PermanentDeliveryError, match="invalid_grant"):
        await provider(google, http).send(push())
    assert google.sends() == []


async def test_no_device_token_is_permanent(google: Google, http: httpx.AsyncClient) -> None:
    """A recipient without firebaseToken fails before any request; reachability agrees."""
    p = provider(google, http)
    with pytest.raises(PermanentDeliveryError, match="device token"):
        await p.send(rendered("push"))
    assert google.service.requests == []
    assert not p.reachable({"email": "a@b.c"})
    assert p.reachable({"firebaseToken": ["t1", "t2"]})


def test_settings_accept_the_key_file_as_text_and_mask_it() -> None:
    """The service account may be pasted as JSON text; a broken key is refused; it is masked."""
    account = service_account("https://oauth2.googleapis.com/token")
    stored = validate_settings("fcm", {"service_account": json.dumps(account)})
    assert stored["service_account"] == account
    assert mask_settings("fcm", stored) == {
        "service_account": "********",
        "base_url": "https://fcm.googleapis.com",
        "timeout": 10.0,
    }
    with pytest.raises(ValidationError, match="private_key"):
        validate_settings("fcm", {"service_account": {**account, "private_key": "nope"}})
    with pytest.raises(ValidationError, match="not valid JSON"):
        validate_settings("fcm", {"service_account": "{"})
    with pytest.raises(ValidationError, match="project_id"):
        validate_settings("fcm", {"service_account": {**account, "project_id": ""}})


async def test_override_body_is_merged_into_the_v1_message(
    google: Google, http: httpx.AsyncClient
) -> None:
    """A send's override.body (providers.firebase-fcm.override) reshapes FCM's ``message``."""
    google.send_answer = (200, {}, {"name": f"projects/{PROJECT}/messages/0:2"})
    override = {
        "body": {
            "notification": {"title": "Overridden"},
            "android": {"priority": "high"},
        }
    }

    await provider(google, http).send(push(data={}, override=override))

    assert google.sends()[0].json() == {
        "message": {
            "token": "device-token-1",
            "notification": {"title": "Overridden", "body": "Your order 42 is on its way."},
            "android": {"priority": "high"},
        }
    }
