"""The APN provider against a real HTTP/2 server over TLS (hypercorn, self-signed certificate)
that checks each request as APNs documents it, including the ES256 provider token."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fake_service import LOCAL, free_port, rendered
from hypercorn.asyncio import serve
from hypercorn.config import Config

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.apn import ApnProvider, ApnSettings, apns_id
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.registry import mask_settings, validate_settings

TEAM = "TEAM123456"
KEY_ID = "KEYID12345"
TOPIC = "com.example.shop"

_SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
P8 = _SIGNING_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()

#: What the fake APNs answers per device token: (status, reason).
ANSWERS: dict[str, tuple[int, str]] = {
    "bad": (400, "BadDeviceToken"),
    "gone": (410, "Unregistered"),
    "busy": (429, "TooManyRequests"),
    "down": (503, "ServiceUnavailable"),
    "expired": (403, "ExpiredProviderToken"),
    "forbidden": (403, "InvalidProviderToken"),
}


@dataclass
class Push:
    http_version: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    claims: dict[str, Any]
    token_header: dict[str, Any]


@dataclass
class FakeApns:
    url: str
    ca_pem: str
    pushes: list[Push] = field(default_factory=list)


def _self_signed(directory: Path) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake apns")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCAL))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(key_pem)
    return directory / "cert.pem", directory / "key.pem", cert_pem.decode()


def _apns_app(fake: list[FakeApns]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            event = await receive()
            raw += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        assert scheme == "bearer"
        # Verifying the signature with the team's public key is what APNs does.
        claims = jwt.decode(token, _SIGNING_KEY.public_key(), algorithms=["ES256"])
        fake[0].pushes.append(
            Push(
                http_version=scope["http_version"],
                path=scope["path"],
                headers=headers,
                body=json.loads(raw),
                claims=claims,
                token_header=jwt.get_unverified_header(token),
            )
        )
        device = scope["path"].rsplit("/", 1)[-1]
        status, reason = ANSWERS.get(device, (200, ""))
        body = b"" if status == 200 else json.dumps({"reason": reason}).encode()
        reply = [(b"apns-id", headers.get("apns-id", "").encode())]
        if status == 429:
            reply.append((b"retry-after", b"5"))
        await send({"type": "http.response.start", "status": status, "headers": reply})
        await send({"type": "http.response.body", "body": body})

    return app


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOCAL, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("fake APNs did not start")


@pytest.fixture(scope="module")
def apns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeApns]:
    """hypercorn serving HTTP/2 only (ALPN h2) over TLS on 127.0.0.1, in its own thread."""
    cert, key, ca_pem = _self_signed(tmp_path_factory.mktemp("apns"))
    port = free_port()
    config = Config()
    config.bind = [f"{LOCAL}:{port}"]
    config.certfile = str(cert)
    config.keyfile = str(key)
    config.alpn_protocols = ["h2"]
    holder = [FakeApns(url=f"https://{LOCAL}:{port}", ca_pem=ca_pem)]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(_apns_app(holder), config, shutdown_trigger=stop.wait))

    thread = threading.Thread(target=run, name="fake-apns", daemon=True)
    thread.start()
    _wait_listening(port)
    yield holder[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)
    loop.close()


def settings(apns: FakeApns, **extra: Any) -> ApnSettings:
    return ApnSettings.parse(
        {
            "key_id": KEY_ID,
            "team_id": TEAM,
            "bundle_id": TOPIC,
            "private_key": P8,
            "base_url": apns.url,
            "ca_cert": apns.ca_pem,
            **extra,
        }
    )


def push(token: str = "a1b2c3", **overrides: Any) -> Any:
    return rendered("push", **{"to": {"push_token": token}, **overrides})


async def test_push_over_http2_with_a_verified_provider_token(apns: FakeApns) -> None:
    """One HTTP/2 POST to /3/device/<token> with APNs headers, a valid ES256 JWT and payload."""
    apns.pushes.clear()
    provider = ApnProvider(settings(apns), guard=OutboundGuard([LOCAL]))
    key = str(uuid.uuid4())
    try:
        result = await provider.send(push(idempotency_key=key, data={"order_id": "42"}))
    finally:
        await provider.aclose()

    (received,) = apns.pushes
    assert received.http_version == "2"
    assert received.path == "/3/device/a1b2c3"
    assert received.token_header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    assert received.claims["iss"] == TEAM
    assert isinstance(received.claims["iat"], int)
    assert received.headers["apns-topic"] == TOPIC
    assert received.headers["apns-push-type"] == "alert"
    assert received.headers["apns-priority"] == "10"
    assert received.headers["apns-id"] == key
    assert received.body == {
        "aps": {"alert": {"title": "Order shipped", "body": "Your order 42 is on its way."}},
        "order_id": "42",
    }
    assert result.provider_message_id == key


async def test_parts_profile_token_and_a_derived_apns_id(apns: FakeApns) -> None:
    """Push parts give the alert; the profile's apn token is used; non-UUID keys map to a UUID."""
    apns.pushes.clear()
    provider = ApnProvider(settings(apns, priority=5), guard=OutboundGuard([LOCAL]))
    message = push(
        parts={"title": "Hi", "body": "There"}, to={}, profile={"apn": "feedbeef"}, data={}
    )
    try:
        await provider.send(message)
        await provider.send(message)
    finally:
        await provider.aclose()

    first, second = apns.pushes
    assert first.path == "/3/device/feedbeef"
    assert first.body == {"aps": {"alert": {"title": "Hi", "body": "There"}}}
    assert first.headers["apns-priority"] == "5"
    derived = apns_id("1-msg/prv_1")
    assert uuid.UUID(derived).version == 5
    assert first.headers["apns-id"] == second.headers["apns-id"] == derived
    # The provider token is reused between pushes, not signed anew each time.
    assert first.headers["authorization"] == second.headers["authorization"]


async def test_provider_token_is_renewed_after_50_minutes(apns: FakeApns) -> None:
    """A provider token older than 50 minutes is replaced by a new one."""
    apns.pushes.clear()
    now = [time.time() - 51 * 60]
    provider = ApnProvider(settings(apns), guard=OutboundGuard([LOCAL]), clock=lambda: now[0])
    try:
        await provider.send(push())
        now[0] = time.time()
        await provider.send(push())
    finally:
        await provider.aclose()
    first, second = apns.pushes
    assert second.claims["iat"] - first.claims["iat"] >= 50 * 60


@pytest.mark.parametrize(
    ("token", "kind", "reason"),
    [
        ("bad", PermanentDeliveryError, "BadDeviceToken"),
        ("gone", PermanentDeliveryError, "Unregistered"),
        ("forbidden", PermanentDeliveryError, "InvalidProviderToken"),
        ("busy", RetryableDeliveryError, "TooManyRequests"),
        ("down", RetryableDeliveryError, "ServiceUnavailable"),
        ("expired", RetryableDeliveryError, "ExpiredProviderToken"),
    ],
)
async def test_apns_errors(apns: FakeApns, token: str, kind: type[Exception], reason: str) -> None:
    """APNs reasons decide: bad or unregistered tokens are permanent, 429/5xx retried."""
    provider = ApnProvider(settings(apns), guard=OutboundGuard([LOCAL]))
    try:
        with pytest.raises(kind, match=reason) as caught:
            await provider.send(push(token))
    finally:
        await provider.aclose()
    assert caught.value.response["reason"] == reason  # type: ignore[attr-defined]
    if token == "busy":
        assert caught.value.retry_after == 5.0  # type: ignore[attr-defined]


async def test_an_untrusted_certificate_is_refused(apns: FakeApns) -> None:
    """Without the test CA the self-signed server is not trusted: a retryable TLS failure."""
    apns.pushes.clear()
    raw = {
        "key_id": KEY_ID,
        "team_id": TEAM,
        "bundle_id": TOPIC,
        "private_key": P8,
        "base_url": apns.url,
    }
    provider = ApnProvider(ApnSettings.parse(raw), guard=OutboundGuard([LOCAL]))
    try:
        with pytest.raises(RetryableDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            await provider.send(push())
    finally:
        await provider.aclose()
    assert apns.pushes == []


async def test_loopback_needs_the_allow_list(apns: FakeApns) -> None:
    """The APNs base URL goes through the outbound guard."""
    provider = ApnProvider(settings(apns), guard=OutboundGuard())
    try:
        with pytest.raises(PermanentDeliveryError, match="loopback"):
            await provider.send(push())
    finally:
        await provider.aclose()


def test_settings_need_an_es256_key_and_hide_it() -> None:
    """The .p8 key must be an EC key; it is masked on the way out."""
    base = {"key_id": KEY_ID, "team_id": TEAM, "bundle_id": TOPIC}
    with pytest.raises(ValidationError, match="private_key"):
        validate_settings("apn", base)
    with pytest.raises(ValidationError, match="private_key"):
        validate_settings("apn", {**base, "private_key": "-----BEGIN PRIVATE KEY-----\nx\n"})
    with pytest.raises(ValidationError, match="priority"):
        validate_settings("apn", {**base, "private_key": P8, "priority": 7})
    stored = validate_settings("apn", {**base, "private_key": P8})
    assert stored["base_url"] == "https://api.push.apple.com"
    assert mask_settings("apn", stored)["private_key"] == "********"


async def test_override_body_and_headers_reach_apns(apns: FakeApns) -> None:
    """A send's override.body is merged into the payload and its headers into the request;
    the provider's own credentials and apns-id cannot be overridden."""
    apns.pushes.clear()
    provider = ApnProvider(settings(apns), guard=OutboundGuard([LOCAL]))
    override = {
        "body": {"aps": {"sound": "default", "alert": {"title": "Overridden"}}},
        "headers": {"apns-priority": "5", "apns-collapse-id": "order-42"},
    }
    try:
        await provider.send(push(data={}, override=override))
        with pytest.raises(PermanentDeliveryError, match="may not set authorization"):
            await provider.send(push(data={}, override={"headers": {"authorization": "x"}}))
    finally:
        await provider.aclose()

    (received,) = apns.pushes
    assert received.headers["apns-priority"] == "5"
    assert received.headers["apns-collapse-id"] == "order-42"
    assert received.body == {
        "aps": {
            "alert": {"title": "Overridden", "body": "Your order 42 is on its way."},
            "sound": "default",
        }
    }
