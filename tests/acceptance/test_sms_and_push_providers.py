"""Twilio SMS and FCM push end to end: providers configured and messages sent through the
official SDK against a real server process, received by real HTTP servers playing Twilio and
Google (token endpoint + FCM v1)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import courier
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_service import FakeService, Received, fake_service
from relaybox_harness import Workspace, unique

SID = "AC00000000000000000000000000000001"
TOKEN = "acceptance-twilio-token"


def send_until_sent(ws: Workspace, profile: dict[str, Any], channel: str, **message: Any) -> str:
    """Send ``message`` on ``channel`` alone to a new user with ``profile``, assert it ends
    SENT and return its id."""
    client = ws.client()
    user = unique("user")
    client.profiles.create(user, profile=profile)
    routing = {"method": "single", "channels": [channel]}
    response = client.send.message(message={"to": {"user_id": user}, "routing": routing, **message})
    sent = ws.wait_message(response.request_id, "SENT", "UNDELIVERABLE", "UNROUTABLE")
    assert sent.status == "SENT", sent
    return str(response.request_id)


@pytest.fixture
def service() -> Iterator[FakeService]:
    with fake_service() as fake:
        yield fake


def test_sms_through_twilio(
    new_workspace: Callable[[str], Workspace], service: FakeService
) -> None:
    """A send to a user whose profile has a phone number reaches Twilio as its API documents."""
    service.respond = lambda r: (201, {}, {"sid": "SM0123", "status": "queued"})
    ws = new_workspace("twilio")
    client = ws.client()
    created = client.providers.create(
        provider="twilio",
        settings={
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": "+15005550006",
            "base_url": service.url,
        },
    )
    assert created.provider == "twilio"
    shown = client.providers.retrieve(created.id).to_dict()
    assert shown["settings"]["auth_token"] == "********"
    message_id = send_until_sent(
        ws,
        {"phone_number": "+14155550123"},
        "sms",
        content={"title": "Code", "body": "Your code is {{code}}"},
        data={"code": "4242"},
    )
    (request,) = service.to(f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert request.method == "POST"
    credentials = (request.header("Authorization") or "").removeprefix("Basic ")
    assert base64.b64decode(credentials).decode() == f"{SID}:{TOKEN}"
    form = request.form()
    assert form["To"] == ["+14155550123"]
    assert form["From"] == ["+15005550006"]
    assert "Your code is 4242" in form["Body"][0]
    sent = [event for event in ws.history(message_id) if event["type"] == "SENT"]
    assert sent[-1]["reference"] == "SM0123"


_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def google(service: FakeService, project: str) -> Callable[[Received], Any]:
    def respond(r: Received) -> Any:
        if r.path == "/token":
            (assertion,) = parse_qs(r.raw.decode())["assertion"]
            jwt.decode(
                assertion, _KEY.public_key(), algorithms=["RS256"], audience=f"{service.url}/token"
            )
            return 200, {}, {"access_token": "ya29.acceptance", "expires_in": 3599}
        assert r.header("Authorization") == "Bearer ya29.acceptance"
        return 200, {}, {"name": f"projects/{project}/messages/0:777"}

    return respond


def fcm_settings(service: FakeService, project: str) -> dict[str, Any]:
    """An FCM configuration whose service account and API are ``service``."""
    pem = _KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "service_account": {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "kid-1",
            "private_key": pem,
            "client_email": f"push@{project}.iam.gserviceaccount.com",
            "token_uri": f"{service.url}/token",
        },
        "base_url": service.url,
    }


def test_courier_provider_key_is_an_alias_of_ours(
    new_workspace: Callable[[str], Workspace], service: FakeService
) -> None:
    """Courier's "firebase-fcm" configures, lists, routes and overrides our FCM provider."""
    project = "relaybox-courier-keys"
    service.respond = google(service, project)
    ws = new_workspace("fcm-alias")
    client = ws.client()
    created = client.providers.create(
        provider="firebase-fcm", settings=fcm_settings(service, project)
    )
    shown = client.providers.retrieve(created.id).to_dict()
    assert shown["provider"] == "firebase-fcm"
    assert shown["settings"]["service_account"] == "********"
    (entry,) = client.providers.catalog.list(keys="firebase-fcm").to_dict()["results"]
    assert entry["provider"] == "fcm"
    message_id = send_until_sent(
        ws,
        {"firebaseToken": "device-xyz"},
        "firebase-fcm",
        content={"title": "Aliased", "body": "b"},
        timeout={"provider": {"firebase-fcm": 60_000}},
        providers={"firebase-fcm": {"override": {"body": {"android": {"priority": "high"}}}}},
    )
    sent_message = service.requests[-1].json()["message"]
    assert sent_message["token"] == "device-xyz"
    assert sent_message["android"] == {"priority": "high"}
    (sent,) = [e for e in ws.history(message_id) if e["type"] == "SENT"]
    assert (sent["provider"], sent["integration"]) == ("fcm", created.id)
    with pytest.raises(courier.BadRequestError, match="unknown provider"):
        client.providers.create(provider="firebase", settings={})


def test_push_through_fcm(new_workspace: Callable[[str], Workspace], service: FakeService) -> None:
    """A push send exchanges the service account's JWT for a token and calls FCM v1."""
    project = "relaybox-acceptance"
    service.respond = google(service, project)
    ws = new_workspace("fcm")
    client = ws.client()
    client.providers.create(provider="fcm", settings=fcm_settings(service, project))
    send_until_sent(
        ws,
        {"firebaseToken": "device-abc"},
        "push",
        content={"title": "Shipped {{order}}", "body": "On its way"},
        data={"order": "ORD-1"},
    )
    assert [r.path for r in service.requests] == [
        "/token",
        f"/v1/projects/{project}/messages:send",
    ]
    sent = service.requests[1].json()["message"]
    assert sent["token"] == "device-abc"
    assert sent["notification"]["title"] == "Shipped ORD-1"
    assert "On its way" in sent["notification"]["body"]
    assert sent["data"] == {"order": "ORD-1"}


def test_provider_secrets_never_leave_and_survive_a_round_trip(
    new_workspace: Callable[[str], Workspace], service: FakeService
) -> None:
    """create/retrieve/list/update/patch show the token masked; PUTting the mask back keeps it."""
    service.respond = lambda r: (201, {}, {"sid": "SM0999"})
    ws = new_workspace("secrets")
    client = ws.client()
    settings = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "messaging_service_sid": "MG01",
        "base_url": service.url,
    }
    created = client.providers.create(provider="twilio", title="SMS", settings=settings)
    shown = client.providers.retrieve(created.id).to_dict()
    listed = client.providers.list().to_dict()["results"]
    assert TOKEN not in str(created.to_dict()) + str(shown) + str(listed)
    assert shown["settings"] == {**settings, "auth_token": "********", "timeout": 10.0}

    updated = client.providers.update(
        created.id, provider="twilio", title="SMS 2", settings=shown["settings"]
    )
    patched = client.providers.patch(created.id, settings={"timeout": 5})
    assert updated.title == "SMS 2"
    assert patched.to_dict()["settings"]["auth_token"] == "********"
    assert patched.to_dict()["settings"]["timeout"] == 5

    send_until_sent(
        ws, {"phone_number": "+14155550999"}, "twilio", content={"title": "T", "body": "B"}
    )
    (request,) = service.requests
    credentials = (request.header("Authorization") or "").removeprefix("Basic ")
    assert base64.b64decode(credentials).decode() == f"{SID}:{TOKEN}"
    assert request.form()["MessagingServiceSid"] == ["MG01"]
