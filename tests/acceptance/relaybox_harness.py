"""Support for the acceptance suite: a real ``relaybox serve`` process, a recording SMTP server,
a recording webhook receiver and polling helpers.

Everything here talks to the server over the network exactly as a user would: through the
official Courier SDK (``trycourier``), or plain HTTP for Relaybox's own extensions.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from courier import Courier

LOCAL = "127.0.0.1"
#: The signing secret of the webhook provider the suite configures.
WEBHOOK_SECRET = "whsec_acceptance"
T = TypeVar("T")

#: Every server process started by the suite, so a failing test can show their output.
LIVE_SERVERS: list[RelayboxServer] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the same database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unique_email(prefix: str = "user") -> str:
    return f"{unique(prefix)}@example.test"


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError naming ``what`` and the last value seen when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.1f} s waiting for {what}; last={value!r}"
            )
        time.sleep(interval)


# --- SMTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted, parsed."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    headers: dict[str, str]
    #: time.monotonic() and time.time() when the DATA command completed.
    monotonic: float
    wall: float


class MailRecorder:
    """aiosmtpd handler that records every accepted message with its arrival time.

    Messages to an address containing ``hold`` are recorded, then the reply waits until
    ``release`` is set (``holding`` is set meanwhile).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        monotonic, wall = time.monotonic(), time.time()
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        text_part = parsed.get_body(preferencelist=("plain",))
        html_part = parsed.get_body(preferencelist=("html",))
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            subject=str(parsed.get("Subject", "")),
            text=None if text_part is None else str(text_part.get_content()),
            html=None if html_part is None else str(html_part.get_content()),
            headers={k: str(v) for k, v in parsed.items()},
            monotonic=monotonic,
            wall=wall,
        )
        with self._lock:
            self._mails.append(mail)
        if any("hold" in str(rcpt) for rcpt in envelope.rcpt_tos):
            # The message is taken; only the reply is held back (as when a connection drops).
            self.holding.set()
            await asyncio.to_thread(self.release.wait, 30)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedMail]:
        """Messages received so far for ``address``, in arrival order."""
        with self._lock:
            return [m for m in self._mails if address in m.rcpt_tos]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages for ``address`` arrived; return them all."""
        return wait_for(
            lambda: found if len(found := self.to(address)) >= count else None,
            timeout=timeout,
            what=f"{count} email(s) to {address}",
        )


@dataclass
class SmtpServer:
    controller: Controller
    recorder: MailRecorder

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def provider_settings(self) -> dict[str, Any]:
        return {
            "host": LOCAL,
            "port": self.port,
            "from_address": "relaybox@example.test",
            "security": "none",
        }


def start_smtp() -> SmtpServer:
    recorder = MailRecorder()
    controller = Controller(recorder, hostname=LOCAL, port=free_port())
    controller.start()
    return SmtpServer(controller, recorder)


# --- webhook receiver --------------------------------------------------------------------------

#: A ``WebhookReceiver.plan`` entry: hold the request until ``release`` (then 200).
HOLD = -1


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    status: int
    wall: float


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 recording each request.

    While ``plan`` has entries, each request takes the next one as its answer; a ``HOLD``
    entry is recorded as such, then waits until ``release`` is set (``holding`` is set
    meanwhile) before answering 200. After that the answer is chosen from ``data.scenario``
    in the JSON body: absent or ``"ok"`` → 200, ``"reject"`` → 400, ``"flaky"`` → 500 for
    the first two attempts of an Idempotency-Key, then 200; ``"hold"`` → the first attempt
    waits for ``release`` as a ``HOLD`` does.
    """

    server: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[WebhookRequest] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self.server.server_address[1]}/hook"

    def for_message(self, message_id: str) -> list[WebhookRequest]:
        with self.lock:
            return [r for r in self.requests if r.body.get("message_id") == message_id]

    def events_for(self, message_id: str) -> list[WebhookRequest]:
        """The delivery events (``data.id`` is the message) received for ``message_id``."""
        with self.lock:
            return [r for r in self.requests if (r.body.get("data") or {}).get("id") == message_id]

    def acknowledged(self, message_id: str) -> list[str]:
        """Statuses of the message's delivery events answered with 2xx, in arrival order."""
        found = self.events_for(message_id)
        return [r.body["data"]["status"] for r in found if 200 <= r.status < 300]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_webhook_receiver(port: int = 0) -> WebhookReceiver:
    holder: list[WebhookReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            scenario = (body.get("data") or {}).get("scenario", "ok")
            key = self.headers.get("Idempotency-Key", "")
            with receiver.lock:
                earlier = sum(
                    1 for r in receiver.requests if r.headers.get("Idempotency-Key") == key
                )
                status = 200
                if receiver.plan:
                    status = receiver.plan.pop(0)
                elif scenario == "reject":
                    status = 400
                elif scenario == "flaky" and earlier < 2:
                    status = 500
                elif scenario == "hold" and earlier == 0:
                    status = HOLD
                receiver.requests.append(
                    WebhookRequest(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        raw=raw,
                        body=body,
                        status=status,
                        wall=time.time(),
                    )
                )
            if status == HOLD:
                receiver.holding.set()
                receiver.release.wait(timeout=30)
                status = 200
            answer = json.dumps({"id": f"hook-{uuid.uuid4().hex[:8]}", "status": status}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the caller is gone (a killed server); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOCAL, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    receiver = WebhookReceiver(server=server, thread=thread)
    holder.append(receiver)
    thread.start()
    return receiver


def verify_signature(secret: str, header: str, raw: bytes) -> bool:
    """Check ``X-Relaybox-Signature: t=<ts>,v1=<hex>`` the way a receiver would."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + raw, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


# --- the server process --------------------------------------------------------------------


class RelayboxServer:
    """``python -m relaybox serve`` on a free port with its own database.

    The database is a SQLite file unless ``database_url`` names another (the suite runs once
    per backend: see ``backend`` in conftest.py).
    """

    def __init__(
        self,
        *,
        db_path: Path,
        api_key: str,
        log_path: Path,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.db_path = db_path
        self.api_key = api_key
        self.log_path = log_path
        self._database_url = database_url
        #: More ``RELAYBOX_*`` settings for this server (e.g. a fake service's base URL).
        self.extra_env = dict(extra_env or {})
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        return self._database_url or f"sqlite:///{self.db_path}"

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://{LOCAL}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYBOX_", "COURIER_"))}
        env.update(
            RELAYBOX_API_KEY=self.api_key,
            RELAYBOX_OUTBOUND_ALLOW=LOCAL,
            # On a shared database (PostgreSQL) a killed process's runs wait for its leases
            # to expire; keep that short so crash tests resume quickly.
            RELAYBOX_LEASE_SECONDS="3",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, *, port: int | None = None, timeout: float = 20.0) -> None:
        """Start (or restart) the process and wait until /healthz answers 200."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.port = port or free_port()
        with self.log_path.open("ab") as log:
            log.write(f"\n===== starting on port {self.port} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "relaybox", "serve",
                    "--host", LOCAL, "--port", str(self.port),
                    "--database-url", self.database_url,
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if self not in LIVE_SERVERS:
            LIVE_SERVERS.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"relaybox exited with {self.process.returncode} during startup:\n"
                    + self.output()
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"relaybox not healthy after {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Teardown: terminate if still running, kill if it does not stop."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)

    def output(self, limit: int = 20_000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return text[-limit:]

    def create_key(self, workspace: str) -> str:
        """``relaybox keys create`` against this server's database (while it runs)."""
        done = subprocess.run(
            [
                sys.executable, "-m", "relaybox", "keys", "create",
                "--workspace", workspace, "--database-url", self.database_url,
            ],
            env=self.env(),
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"keys create failed ({done.returncode}):\n{done.stdout.decode()}\n"
                f"{done.stderr.decode()}"
            )
        key = done.stdout.decode().strip().splitlines()[-1].strip()
        assert key, done
        return key


# --- a workspace seen through its API key ------------------------------------------------------


class Workspace:
    """One API key on one server: SDK client, raw HTTP client and convenience calls."""

    def __init__(self, server: RelayboxServer, key: str, name: str = "default") -> None:
        self.server = server
        self.key = key
        self.name = name
        self._clients: list[Courier] = []
        self._http: list[httpx.Client] = []

    def client(self, **options: Any) -> Courier:
        """A fresh SDK client (no retries unless asked) pointed at the server's current URL."""
        options.setdefault("max_retries", 0)
        client = Courier(api_key=self.key, base_url=self.server.url, **options)
        self._clients.append(client)
        return client

    def http(self) -> httpx.Client:
        client = httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30.0,
        )
        self._http.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for http in self._http:
            http.close()
        self._clients.clear()
        self._http.clear()

    # --- setup ---------------------------------------------------------------------------

    def add_smtp_provider(self, smtp: SmtpServer) -> str:
        created = self.client().providers.create(provider="smtp", settings=smtp.provider_settings())
        return str(created.id)

    def add_template(self, alias: str, title: str, text: str) -> str:
        """A published email template with a subject (meta title) and a text element."""
        created = self.client().notifications.create(
            notification={
                "name": alias,
                "tags": [],
                "brand": None,
                "routing": None,
                "subscription": None,
                "content": {
                    "version": "2022-01-01",
                    "elements": [
                        {"type": "meta", "title": title},
                        {"type": "text", "content": text},
                    ],
                },
                "alias": alias,
            },
            state="PUBLISHED",
        )
        return str(created.id)

    def save_automation(
        self,
        automation_id: str,
        steps: list[dict[str, Any]],
        *,
        alias: str | None = None,
        name: str | None = None,
        publish: bool = True,
        cancelation_token: str | None = None,
    ) -> dict[str, Any]:
        with self.http() as http:
            put = http.put(
                f"/automations/{automation_id}",
                json={
                    "name": name or automation_id,
                    "alias": alias,
                    "steps": steps,
                    "cancelation_token": cancelation_token,
                },
            )
            assert put.status_code == 200, put.text
            if not publish:
                return dict(put.json())
            published = http.post(f"/automations/{automation_id}/publish")
            assert published.status_code == 200, published.text
            return dict(published.json())

    # --- runs ----------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        """``GET /automations/runs/{id}`` (Relaybox's run detail)."""
        response = httpx.get(
            f"{self.server.url}/automations/runs/{run_id}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10.0,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_run(self, run_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll the run detail until its status is one of ``statuses``."""
        seen: list[dict[str, Any]] = []

        def probe() -> dict[str, Any] | None:
            detail = self.run(run_id)
            seen[:] = [detail]
            return detail if detail["status"] in statuses else None

        try:
            return wait_for(probe, timeout=timeout, what=f"run {run_id} to reach {statuses}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast detail: {seen}") from None

    def wait_message(self, message_id: str, *statuses: str, timeout: float = 20.0) -> Any:
        """Poll ``messages.retrieve`` until the message's status is one of ``statuses``."""
        client = self.client()
        return wait_for(
            lambda: m if (m := client.messages.retrieve(message_id)).status in statuses else None,
            timeout=timeout,
            what=f"message {message_id} in {statuses}",
        )

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """The message's history events as plain dicts."""
        return [dict(e) for e in self.client().messages.history(message_id).results]

    def steps(self, run_id: str) -> list[Any]:
        with self.client() as client:
            return list(client.automations.runs.list_steps(run_id).steps or [])

    def find_run(self, run_id: str, **filters: Any) -> Any | None:
        """The ``automations.runs.list`` item for ``run_id`` (paging newest first), or None."""
        client = self.client()
        cursor: str | None = None
        while True:
            kwargs = {"limit": "50", **filters}
            if cursor:
                kwargs["cursor"] = cursor
            page = client.automations.runs.list(**kwargs)
            for item in page.runs or []:
                if item.run_id == run_id:
                    return item
            if not page.next_cursor:
                return None
            cursor = page.next_cursor

    def all_runs(self, **filters: Any) -> list[Any]:
        """Every page of ``automations.runs.list`` with these filters."""
        client = self.client()
        found: list[Any] = []
        cursor: str | None = None
        while True:
            kwargs = dict(filters)
            if cursor:
                kwargs["cursor"] = cursor
            page = client.automations.runs.list(**kwargs)
            found.extend(page.runs or [])
            if not page.next_cursor:
                return found
            cursor = page.next_cursor
