"""SMTP and webhook providers against real servers on 127.0.0.1, plus the outbound guard.

No test sends traffic to a non-loopback address: refusals of private addresses are checked to
happen before any connection (a transport that fails the test if used), and host name
resolution is faked where a name other than localhost is needed.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import gc
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from fake_service import free_port

from relaybox.errors import PermanentDeliveryError, RetryableDeliveryError, ValidationError
from relaybox.providers.base import RenderedMessage
from relaybox.providers.outbound import OutboundGuard, UnresolvableHost
from relaybox.providers.registry import (
    SECRET_FIELDS,
    build_provider,
    channel_of,
    mask_settings,
    validate_settings,
)
from relaybox.providers.smtp import SmtpProvider, SmtpSettings, message_id_for
from relaybox.providers.webhook import WebhookProvider, WebhookSettings

LOCAL = "127.0.0.1"
FIXED_NOW = 1_700_000_000.0
SECRET = "whsec_test_secret"


def make_message(key: str = "msg_1:email", **overrides: Any) -> RenderedMessage:
    """A rendered message with both text and HTML bodies."""
    fields: dict[str, Any] = {
        "message_id": "msg_1",
        "idempotency_key": key,
        "channel": "email",
        "to": {"email": "alice@example.com"},
        "subject": "Your order shipped",
        "text": "Hello Alice, it shipped.",
        "html": "<p>Hello <b>Alice</b>, it shipped.</p>",
        "profile": {"email": "alice@example.com", "name": "Alice"},
        "data": {"order": 42},
        "recipient": "user_alice",
        "template": "order-shipped",
    }
    fields.update(overrides)
    return RenderedMessage(**fields)


# --------------------------------------------------------------------------------------------
# SMTP servers
# --------------------------------------------------------------------------------------------


class RecordingHandler:
    """aiosmtpd handler that keeps every accepted message and can refuse recipients."""

    def __init__(self, rcpt_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def parsed(self, index: int = -1) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    """Accepts exactly relay/hunter22."""
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"relay", b"hunter22")
    # handled=False makes aiosmtpd send the 535 reply itself.
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    """A running aiosmtpd controller and its handler."""

    controller: Controller
    handler: RecordingHandler

    @property
    def port(self) -> int:
        return int(self.controller.port)


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., SmtpServer]]:
    """Start aiosmtpd controllers on free loopback ports; stop them all afterwards."""
    started: list[Controller] = []

    def start(handler: RecordingHandler | None = None, **kwargs: Any) -> SmtpServer:
        handler = handler or RecordingHandler()
        controller = Controller(handler, hostname=LOCAL, port=free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return SmtpServer(controller, handler)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (openssl; cryptography isn't installed)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        "openssl", "req", "-x509", "-nodes", "-days", "1",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(key), "-out", str(cert),
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


@pytest.fixture
def server_tls(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    """Server-side TLS context with the self-signed certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert_files)
    return context


def smtp(port: int, **settings: Any) -> SmtpProvider:
    """An SmtpProvider for a loopback server, built through the registry's validation."""
    raw = {"host": LOCAL, "port": port, "from_address": "noreply@relaybox.test", **settings}
    return SmtpProvider(SmtpSettings.parse(raw))


# --------------------------------------------------------------------------------------------
# SMTP tests
# --------------------------------------------------------------------------------------------


async def test_smtp_delivers_multipart_email(start_smtp: Callable[..., SmtpServer]) -> None:
    """A plain SMTP server receives subject, text and HTML parts and the Relaybox headers."""
    server = start_smtp()
    result = await smtp(server.port).send(make_message())

    envelope = server.handler.envelopes[0]
    assert envelope.mail_from == "noreply@relaybox.test"
    assert envelope.rcpt_tos == ["alice@example.com"]
    parsed = server.handler.parsed()
    assert parsed["Subject"] == "Your order shipped"
    assert parsed["To"] == "alice@example.com"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "Hello Alice, it shipped."
    assert html.get_content().strip() == "<p>Hello <b>Alice</b>, it shipped.</p>"
    assert parsed["X-Relaybox-Message-Id"] == "msg_1"
    assert parsed["Message-ID"] == message_id_for("msg_1:email")
    assert result.provider_message_id == message_id_for("msg_1:email")
    assert "accepted" in str(result.response["smtp"]).lower()


async def test_smtp_message_id_is_stable_per_idempotency_key(
    start_smtp: Callable[..., SmtpServer],
) -> None:
    """Resending with the same key reuses the Message-ID; another key gets another one."""
    server = start_smtp()
    provider = smtp(server.port)
    await provider.send(make_message("k1"))
    await provider.send(make_message("k1"))
    await provider.send(make_message("k2"))

    ids = [server.handler.parsed(i)["Message-ID"] for i in range(3)]
    assert ids[0] == ids[1] == "<" + hashlib.sha256(b"k1").hexdigest()[:32] + "@relaybox>"
    assert ids[2] != ids[0]


async def test_smtp_override_body_replaces_rendered_parts(
    start_smtp: Callable[..., SmtpServer],
) -> None:
    """override.body subject / text / html (a send's providers.smtp.override) win."""
    server = start_smtp()
    override = {"body": {"subject": "Overridden", "text": "Plain override", "html": None}}
    await smtp(server.port).send(make_message(override=override))
    parsed = server.handler.parsed()
    assert parsed["Subject"] == "Overridden"
    text = parsed.get_body(("plain",))
    assert text is not None
    assert text.get_content().strip() == "Plain override"
    assert parsed.get_body(("html",)) is not None  # html=None is not a string: kept


async def test_smtp_text_only_is_single_part(start_smtp: Callable[..., SmtpServer]) -> None:
    """Without HTML the email is a plain text/plain message."""
    server = start_smtp()
    await smtp(server.port).send(make_message(html=None))
    parsed = server.handler.parsed()
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().strip() == "Hello Alice, it shipped."


# aiosmtpd can leave the pre-STARTTLS transport of a session behind (a ResourceWarning at garbage
# collection, in the server library, not in our client); collect it inside the test so it cannot
# surface, at random, in a later one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_smtp_starttls_with_auth(
    start_smtp: Callable[..., SmtpServer], server_tls: ssl.SSLContext
) -> None:
    """STARTTLS plus AUTH against a server that requires both (self-signed, tls_verify off)."""
    server = start_smtp(
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    provider = smtp(
        server.port, security="starttls", username="relay", password="hunter22", tls_verify=False
    )
    await provider.send(make_message())
    assert server.handler.parsed()["Subject"] == "Your order shipped"
    await asyncio.sleep(0.05)
    gc.collect()


# aiosmtpd can leave the pre-STARTTLS transport of a session behind (a ResourceWarning at garbage
# collection, in the server library, not in our client); collect it inside the test so it cannot
# surface, at random, in a later one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_smtp_auth_failure_is_permanent(
    start_smtp: Callable[..., SmtpServer], server_tls: ssl.SSLContext
) -> None:
    """Rejected credentials are a permanent failure, not something to retry."""
    server = start_smtp(
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    provider = smtp(
        server.port, security="starttls", username="relay", password="wrong", tls_verify=False
    )
    with pytest.raises(PermanentDeliveryError, match="authentication"):
        await provider.send(make_message())
    assert server.handler.envelopes == []
    await asyncio.sleep(0.05)
    gc.collect()


# A TLS handshake aborted over a refused certificate leaves a transport behind in the SMTP
# libraries (seen as a ResourceWarning at garbage collection, not in our code); collect it
# inside this test so it cannot surface, at random, in a later one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_smtp_untrusted_certificate_is_permanent(
    start_smtp: Callable[..., SmtpServer], server_tls: ssl.SSLContext
) -> None:
    """With tls_verify on (the default) a self-signed server certificate is refused."""
    # Implicit TLS rather than STARTTLS: aiosmtpd leaks its socket when a client aborts a
    # STARTTLS handshake, and the late ResourceWarning fails an unrelated test.
    server = start_smtp(ssl_context=server_tls)
    with pytest.raises(PermanentDeliveryError, match="certificate"):
        await smtp(server.port, security="tls").send(make_message())
    assert server.handler.envelopes == []
    await asyncio.sleep(0.05)
    gc.collect()


async def test_smtp_starttls_unsupported_is_permanent(
    start_smtp: Callable[..., SmtpServer],
) -> None:
    """security=starttls against a server without STARTTLS never falls back to plain text."""
    server = start_smtp()
    with pytest.raises(PermanentDeliveryError, match="STARTTLS"):
        await smtp(server.port, security="starttls", tls_verify=False).send(make_message())
    assert server.handler.envelopes == []


async def test_smtp_implicit_tls(
    start_smtp: Callable[..., SmtpServer], server_tls: ssl.SSLContext
) -> None:
    """security=tls speaks TLS from the first byte (SMTPS)."""
    server = start_smtp(ssl_context=server_tls)
    await smtp(server.port, security="tls", tls_verify=False).send(make_message())
    assert len(server.handler.envelopes) == 1


async def test_smtp_server_down_is_retryable() -> None:
    """A closed port (connection refused) is retryable."""
    with pytest.raises(RetryableDeliveryError):
        await smtp(free_port(), timeout=5).send(make_message())


async def test_smtp_silent_server_times_out_retryably() -> None:
    """A server that accepts but never greets is a retryable timeout."""
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(w), LOCAL, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RetryableDeliveryError, match="Timed out"):
            await smtp(port, timeout=0.3).send(make_message())
    finally:
        # Server.close() leaves accepted connections open; close them to avoid ResourceWarnings.
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_smtp_550_recipient_refused_is_permanent(
    start_smtp: Callable[..., SmtpServer],
) -> None:
    """A 5xx RCPT reply is permanent and carries the server's words."""
    server = start_smtp(RecordingHandler(rcpt_reply="550 5.1.1 No such user"))
    with pytest.raises(PermanentDeliveryError) as info:
        await smtp(server.port).send(make_message())
    assert "550" in str(info.value.response["smtp"])
    assert "No such user" in info.value.message


async def test_smtp_451_recipient_deferred_is_retryable(
    start_smtp: Callable[..., SmtpServer],
) -> None:
    """A 4xx RCPT reply (greylisting, mailbox busy) is retryable."""
    server = start_smtp(RecordingHandler(rcpt_reply="451 4.7.1 Greylisted, try later"))
    with pytest.raises(RetryableDeliveryError, match="451"):
        await smtp(server.port).send(make_message())


async def test_smtp_missing_email_address_is_permanent() -> None:
    """A message without to.email fails permanently before connecting anywhere."""
    with pytest.raises(PermanentDeliveryError, match=r"to\.email"):
        await smtp(free_port()).send(make_message(to={"phone_number": "+15550100"}))


async def test_smtp_header_injection_is_refused() -> None:
    """A subject with CR/LF cannot add headers; the message is refused permanently."""
    with pytest.raises(PermanentDeliveryError):
        await smtp(free_port()).send(make_message(subject="Hi\r\nBcc: eve@example.com"))


# --------------------------------------------------------------------------------------------
# Webhook server
# --------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request the webhook server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers by path."""

    base_url: str
    requests: list[Recorded] = field(default_factory=list)


class QuietHTTPServer(ThreadingHTTPServer):
    """Threaded server that does not print tracebacks for clients that hung up early."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Timeout tests abandon connections on purpose; a broken pipe then is expected."""


def _make_handler(
    requests: list[Recorded], release: threading.Event
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
            if self.path == "/ok":
                self._reply(200, b'{"id": "evt_123", "ok": true}')
            elif self.path == "/big":
                self._reply(200, b"x" * 300_000)
            elif self.path == "/redirect":
                self._reply(302, b"", {"Location": "/ok"})
            elif self.path == "/slow":
                release.wait(5)
                self._reply(200, b"late")
            elif self.path.startswith("/status/"):
                status = int(self.path.rsplit("/", 1)[1])
                extra = {"Retry-After": "7"} if status == 429 else {}
                self._reply(status, b"nope", extra)
            else:
                self._reply(404, b"unknown path")

        do_POST = _handle
        do_PUT = _handle

    return Handler


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """Serve the recording handler from a background thread for one test."""
    requests: list[Recorded] = []
    release = threading.Event()
    httpd = QuietHTTPServer((LOCAL, 0), _make_handler(requests, release))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield WebhookServer(f"http://{LOCAL}:{httpd.server_address[1]}", requests)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that ignores proxy environment variables."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


LOOPBACK_GUARD = OutboundGuard(allow=["127.0.0.1"])


def webhook(
    client: httpx.AsyncClient,
    url: str,
    guard: OutboundGuard = LOOPBACK_GUARD,
    **settings: Any,
) -> WebhookProvider:
    """A WebhookProvider with a fixed clock so signatures are predictable."""
    parsed = WebhookSettings.parse({"url": url, **settings})
    return WebhookProvider(parsed, client=client, guard=guard, clock=lambda: FIXED_NOW)


def refuse_transport() -> httpx.AsyncClient:
    """A client whose transport fails the test if the guard ever lets a request through."""

    def handler(request: httpx.Request) -> httpx.Response:
        pytest.fail(f"request to {request.url} should have been refused before connecting")

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# --------------------------------------------------------------------------------------------
# Webhook tests
# --------------------------------------------------------------------------------------------


async def test_webhook_delivers_signed_json(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """2xx delivers; body, Idempotency-Key, custom headers and HMAC signature arrive intact."""
    provider = webhook(
        http_client,
        webhook_server.base_url + "/ok",
        secret=SECRET,
        headers={"Authorization": "Bearer abc"},
    )
    result = await provider.send(make_message(channel="webhook"))

    assert result.provider_message_id == "evt_123"
    assert result.response["status"] == 200
    assert "evt_123" in str(result.response["body"])
    (req,) = webhook_server.requests
    assert req.method == "POST"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == "msg_1:email"
    assert req.headers["Authorization"] == "Bearer abc"
    body = json.loads(req.body)
    assert body == {
        "message_id": "msg_1",
        "recipient": "user_alice",
        "template": "order-shipped",
        "channel": "webhook",
        "subject": "Your order shipped",
        "text": "Hello Alice, it shipped.",
        "html": "<p>Hello <b>Alice</b>, it shipped.</p>",
        "data": {"order": 42},
        "profile": {"email": "alice@example.com", "name": "Alice"},
    }
    # Verify the signature the way a receiver would: over the raw bytes received.
    parts = dict(p.split("=", 1) for p in req.headers["X-Relaybox-Signature"].split(","))
    assert parts["t"] == str(int(FIXED_NOW))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + req.body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest())


async def test_webhook_put_without_secret_is_unsigned(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """method=PUT is honoured and no signature header is sent without a secret."""
    await webhook(http_client, webhook_server.base_url + "/ok", method="put").send(make_message())
    (req,) = webhook_server.requests
    assert req.method == "PUT"
    assert "X-Relaybox-Signature" not in req.headers
    assert req.headers["Idempotency-Key"] == "msg_1:email"


async def test_webhook_body_carries_the_rendered_elements(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """The renderer's webhook payload (title, body, elements) arrives as `content`."""
    rendered = {
        "title": "Your order shipped",
        "body": "Hello Alice",
        "elements": [{"type": "text", "content": "Hello Alice", "text_style": "text"}],
    }
    message = make_message(channel="webhook", parts={"payload": rendered})
    await webhook(http_client, webhook_server.base_url + "/ok").send(message)
    (req,) = webhook_server.requests
    assert json.loads(req.body)["content"] == rendered


async def test_webhook_500_is_retryable(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """A 5xx answer is retryable and keeps status and body for the delivery log."""
    with pytest.raises(RetryableDeliveryError) as info:
        await webhook(http_client, webhook_server.base_url + "/status/500").send(make_message())
    assert info.value.response == {"status": 500, "body": "nope"}
    assert info.value.retry_after is None


async def test_webhook_429_passes_retry_after(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """429 is retryable and its Retry-After seconds reach the engine."""
    with pytest.raises(RetryableDeliveryError) as info:
        await webhook(http_client, webhook_server.base_url + "/status/429").send(make_message())
    assert info.value.retry_after == 7.0


async def test_webhook_408_is_retryable(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """408 Request Timeout is the one 4xx besides 429 worth retrying."""
    with pytest.raises(RetryableDeliveryError):
        await webhook(http_client, webhook_server.base_url + "/status/408").send(make_message())


async def test_webhook_400_is_permanent(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """Other 4xx answers are permanent."""
    with pytest.raises(PermanentDeliveryError) as info:
        await webhook(http_client, webhook_server.base_url + "/status/400").send(make_message())
    assert info.value.response["status"] == 400


async def test_webhook_redirect_is_not_followed(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """A 3xx is not followed (it could lead past the guard) and fails permanently."""
    with pytest.raises(PermanentDeliveryError, match="302"):
        await webhook(http_client, webhook_server.base_url + "/redirect").send(make_message())
    assert [r.path for r in webhook_server.requests] == ["/redirect"]


async def test_webhook_large_response_is_capped(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """An oversized 2xx body still counts as delivered; only 1 KB of it is kept."""
    result = await webhook(http_client, webhook_server.base_url + "/big").send(make_message())
    assert result.response["status"] == 200
    assert result.response["body"] == "x" * 1024
    assert result.provider_message_id is None


async def test_guard_request_stops_reading_at_cap(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """OutboundGuard.request reads no more than max_response_bytes and flags truncation."""
    response = await LOOPBACK_GUARD.request(
        http_client,
        "POST",
        webhook_server.base_url + "/big",
        headers={},
        content=b"{}",
        time_limit=5,
        max_response_bytes=10_000,
    )
    assert response.status_code == 200
    assert response.body == b"x" * 10_000
    assert response.truncated


async def test_webhook_timeout_is_retryable(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """A receiver slower than the configured timeout is retryable."""
    provider = webhook(http_client, webhook_server.base_url + "/slow", timeout=0.2)
    with pytest.raises(RetryableDeliveryError, match="timed out"):
        await provider.send(make_message())


async def test_webhook_connection_refused_is_retryable(http_client: httpx.AsyncClient) -> None:
    """Nothing listening on the port is retryable."""
    with pytest.raises(RetryableDeliveryError):
        await webhook(http_client, f"http://{LOCAL}:{free_port()}/hook").send(make_message())


async def test_webhook_guard_blocks_loopback_without_allow_list(
    webhook_server: WebhookServer, http_client: httpx.AsyncClient
) -> None:
    """Without an allow-list entry the local server is never contacted."""
    provider = webhook(http_client, webhook_server.base_url + "/ok", guard=OutboundGuard())
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        await provider.send(make_message())
    assert webhook_server.requests == []


async def test_webhook_guard_blocks_private_address_before_connecting() -> None:
    """A private target is refused without any request being attempted."""
    async with refuse_transport() as client:
        provider = webhook(client, "http://10.0.0.1/hook", guard=OutboundGuard())
        with pytest.raises(PermanentDeliveryError, match="private"):
            await provider.send(make_message())


async def test_webhook_unresolvable_host_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DNS failure may be transient, so it is retried rather than failed for good."""
    loop = asyncio.get_running_loop()

    async def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", no_dns)
    async with refuse_transport() as client:
        provider = webhook(client, "https://hooks.example.test/x", guard=OutboundGuard())
        with pytest.raises(RetryableDeliveryError, match="resolve"):
            await provider.send(make_message())


# --------------------------------------------------------------------------------------------
# OutboundGuard
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("https://192.168.1.10:8443/x", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-global"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "private"),
        ("http://localhost:8080/", "loopback"),
    ],
)
async def test_guard_refuses_non_public_addresses(url: str, reason: str) -> None:
    """Loopback, private, link-local, multicast, reserved and mapped addresses are refused."""
    with pytest.raises(ValidationError, match=reason):
        await OutboundGuard().check_url(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "example.com/hook"]
)
async def test_guard_refuses_other_schemes(url: str) -> None:
    """Only http and https URLs are allowed."""
    with pytest.raises(ValidationError, match="scheme"):
        await OutboundGuard().check_url(url)


@pytest.mark.parametrize("url", ["http:///nohost", "http://:80/", "http://example.com:99999/"])
async def test_guard_refuses_malformed_urls(url: str) -> None:
    """URLs without a host or with a bad port are refused with a message."""
    with pytest.raises(ValidationError):
        await OutboundGuard().check_url(url)


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8080/hook"),
        (["127.0.0.0/8"], "http://127.1.2.3/"),
        (["localhost"], "http://LOCALHOST./hook"),
        (["::1"], "http://[::1]/"),
        (["10.0.0.0/8"], "http://[::ffff:10.1.2.3]/"),
    ],
)
async def test_guard_allow_list(allow: list[str], url: str) -> None:
    """Allow-listed hosts, IPs and CIDRs pass even though they are not public."""
    await OutboundGuard(allow=allow).check_url(url)


async def test_guard_allow_list_is_exact() -> None:
    """Allow-listing 127.0.0.1 does not open other private addresses."""
    guard = OutboundGuard(allow=["127.0.0.1", "hooks.internal"])
    with pytest.raises(ValidationError, match="private"):
        await guard.check_url("http://10.0.0.1/")
    with pytest.raises(ValidationError, match="loopback"):
        await guard.check_url("http://127.0.0.2/")


async def test_guard_allows_public_ip_literal() -> None:
    """A public address passes the check (which never connects)."""
    await OutboundGuard().check_url("https://93.184.215.14/hook")


async def test_guard_checks_every_resolved_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with one public and one private address is refused (DNS faked, no traffic)."""
    loop = asyncio.get_running_loop()

    async def fake_dns(host: str, port: int, **kwargs: Any) -> list[Any]:
        assert host == "mixed.example.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", fake_dns)
    with pytest.raises(ValidationError, match=r"10\.9\.8\.7"):
        await OutboundGuard().check_url("https://mixed.example.test/")
    await OutboundGuard(allow=["10.9.8.0/24"]).check_url("https://mixed.example.test/")


async def test_guard_unresolvable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that does not resolve raises UnresolvableHost, a ValidationError."""
    loop = asyncio.get_running_loop()

    async def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", no_dns)
    with pytest.raises(UnresolvableHost, match="cannot resolve"):
        await OutboundGuard().check_url("https://nowhere.example.test/")


# --------------------------------------------------------------------------------------------
# Registry: validation, masking, building
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("security", "port"), [(None, 25), ("none", 25), ("starttls", 587), ("tls", 465)]
)
def test_validate_smtp_defaults(security: str | None, port: int) -> None:
    """SMTP settings get the port for their security mode and the other defaults."""
    raw: dict[str, Any] = {"host": "smtp.example.com", "from_address": "a@example.com"}
    if security is not None:
        raw["security"] = security
    assert validate_settings("smtp", raw) == {
        "host": "smtp.example.com",
        "port": port,
        "from_address": "a@example.com",
        "security": security or "none",
        "timeout": 30.0,
        "tls_verify": True,
    }


def test_validate_smtp_full() -> None:
    """Explicit values are kept; a numeric string port is accepted and normalised."""
    out = validate_settings(
        "smtp",
        {
            "host": "smtp.example.com",
            "port": "2525",
            "from_address": "a@example.com",
            "username": "u",
            "password": "p",
            "security": "starttls",
            "timeout": 5,
            "tls_verify": False,
        },
    )
    assert out["port"] == 2525
    assert out["username"] == "u"
    assert out["password"] == "p"
    assert out["timeout"] == 5.0
    assert out["tls_verify"] is False


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"from_address": "a@example.com"}, "'host' is required"),
        ({"host": "h"}, "'from_address' is required"),
        ({"host": "h", "from_address": "nobody"}, "email address"),
        ({"host": "h", "from_address": "a@b.c", "port": 0}, "'port'"),
        ({"host": "h", "from_address": "a@b.c", "port": True}, "'port'"),
        ({"host": "h", "from_address": "a@b.c", "port": "smtp"}, "'port'"),
        ({"host": "h", "from_address": "a@b.c", "security": "ssl"}, "'security'"),
        ({"host": "h", "from_address": "a@b.c", "username": "u"}, "'password'"),
        ({"host": "h", "from_address": "a@b.c", "timeout": -1}, "'timeout'"),
        ({"host": "h", "from_address": "a@b.c", "tls_verify": "no"}, "'tls_verify'"),
        ({"host": "h", "from_address": "a@b.c", "hostname": "x"}, "unknown smtp setting"),
        ({"host": 5, "from_address": "a@b.c"}, "'host' must be a string"),
    ],
)
def test_validate_smtp_rejects(settings: dict[str, Any], message: str) -> None:
    """Bad SMTP settings are a ValidationError naming the field."""
    with pytest.raises(ValidationError, match=message):
        validate_settings("smtp", settings)


def test_validate_webhook_defaults() -> None:
    """Webhook settings default to POST, no headers and a 10 s timeout."""
    assert validate_settings("webhook", {"url": "https://hooks.example.com/x"}) == {
        "url": "https://hooks.example.com/x",
        "method": "POST",
        "headers": {},
        "timeout": 10.0,
    }
    out = validate_settings(
        "webhook",
        {"url": "https://h.example.com", "method": "put", "headers": {"X-A": "1"}, "secret": "s"},
    )
    assert out["method"] == "PUT"
    assert out["headers"] == {"X-A": "1"}
    assert out["secret"] == "s"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "'url' is required"),
        ({"url": "file:///etc/passwd"}, "http"),
        ({"url": "https://h.example.com:99999/"}, "not a valid URL"),
        ({"url": "https://h.example.com", "method": "GET"}, "POST or PUT"),
        ({"url": "https://h.example.com", "headers": {"X": 1}}, "'headers'"),
        ({"url": "https://h.example.com", "headers": ["X"]}, "'headers'"),
        ({"url": "https://h.example.com", "headers": {"Idempotency-Key": "x"}}, "may not set"),
        ({"url": "https://h.example.com", "headers": {"X": "a\r\nB: c"}}, "line breaks"),
        ({"url": "https://h.example.com", "secret": 123}, "'secret'"),
        ({"url": "https://h.example.com", "timeout": 0}, "'timeout'"),
        ({"url": "https://h.example.com", "uri": "x"}, "unknown webhook setting"),
    ],
)
def test_validate_webhook_rejects(settings: dict[str, Any], message: str) -> None:
    """Bad webhook settings are a ValidationError naming the field."""
    with pytest.raises(ValidationError, match=message):
        validate_settings("webhook", settings)


def test_unknown_provider_lists_known_keys() -> None:
    """Unknown provider keys are refused everywhere with the list of known ones."""
    with pytest.raises(
        ValidationError, match="apn, apprise, fcm, inbox, slack, smtp, twilio, webhook"
    ):
        validate_settings("sendgrid", {})
    with pytest.raises(
        ValidationError, match="apn, apprise, fcm, inbox, slack, smtp, twilio, webhook"
    ):
        channel_of("sendgrid")
    with pytest.raises(ValidationError, match="JSON object"):
        validate_settings("smtp", ["not", "a", "mapping"])  # type: ignore[arg-type]


def test_channel_of_and_secret_fields() -> None:
    """Each provider maps to its channel and declares its secret fields."""
    assert channel_of("smtp") == "email"
    assert channel_of("webhook") == "webhook"
    assert SECRET_FIELDS["smtp"] == {"password"}
    assert SECRET_FIELDS["webhook"] == {"secret"}


def test_mask_settings() -> None:
    """Secrets are masked, other fields and unset secrets are shown as they are."""
    smtp_settings = {"host": "h", "username": "u", "password": "hunter22"}
    assert mask_settings("smtp", smtp_settings) == {
        "host": "h",
        "username": "u",
        "password": "********",
    }
    assert smtp_settings["password"] == "hunter22"  # the input is not modified
    assert mask_settings("webhook", {"url": "https://x", "secret": ""}) == {
        "url": "https://x",
        "secret": "",
    }
    # Which fields of an unknown provider are secret is unknown, so all are masked.
    assert mask_settings("future", {"api_key": "k", "region": "eu"}) == {
        "api_key": "********",
        "region": "********",
    }


async def test_build_provider(http_client: httpx.AsyncClient) -> None:
    """build_provider returns configured providers and validates their settings."""
    guard = OutboundGuard()
    smtp_provider = build_provider(
        "smtp", {"host": "h", "from_address": "a@b.c"}, http_client=http_client, guard=guard
    )
    assert isinstance(smtp_provider, SmtpProvider)
    assert (smtp_provider.key, smtp_provider.channel) == ("smtp", "email")
    assert smtp_provider.supports_idempotency is False
    hook = build_provider("webhook", {"url": "https://h"}, http_client=http_client, guard=guard)
    assert isinstance(hook, WebhookProvider)
    assert (hook.key, hook.channel, hook.supports_idempotency) == ("webhook", "webhook", True)
    await hook.aclose()
    assert not http_client.is_closed  # the shared client belongs to the caller
    with pytest.raises(ValidationError, match="'url'"):
        build_provider("webhook", {}, http_client=http_client, guard=guard)
    with pytest.raises(ValidationError, match="known providers"):
        build_provider("sms", {}, http_client=http_client, guard=guard)
