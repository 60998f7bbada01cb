"""A small real HTTP server on 127.0.0.1 standing in for a provider's API.

It records every request (method, path, query, headers, raw body) and answers with whatever
the test's ``respond`` function returns for it, so each test checks the request exactly as
the real service documents it and scripts the service's answers (success, 429, 5xx, 4xx).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOCAL = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes

    def header(self, name: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.raw)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)


#: (status, headers, body): a dict or list body is sent as JSON.
Answer = tuple[int, dict[str, str], Any]
Respond = Callable[[Received], Answer]


class FakeService:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.respond: Respond = lambda _r: (200, {}, {})

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self._server.server_address[1]}"

    def record(self, received: Received) -> Answer:
        with self._lock:
            self.requests.append(received)
        return self.respond(received)

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


@contextmanager
def fake_service() -> Iterator[FakeService]:
    holder: list[FakeService] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            received = Received(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers=dict(self.headers.items()),
                raw=raw,
            )
            status, headers, body = holder[0].record(received)
            if isinstance(body, dict | list):
                data = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **headers}
            else:
                data = body if isinstance(body, bytes) else str(body).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout ran out while ``respond`` was slow)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOCAL, 0), Handler)
    server.daemon_threads = True
    service = FakeService(server)
    holder.append(service)
    thread = threading.Thread(target=server.serve_forever, name="fake-service", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rendered(channel: str, **overrides: Any) -> Any:
    """A RenderedMessage for ``channel`` with a subject, text and template data."""
    from relaybox.providers.base import RenderedMessage

    fields: dict[str, Any] = {
        "message_id": "1-msg",
        "idempotency_key": "1-msg/prv_1",
        "channel": channel,
        "to": {},
        "subject": "Order shipped",
        "text": "Your order 42 is on its way.",
        "profile": {},
        "data": {"order": 42},
        "recipient": "user_1",
    }
    fields.update(overrides)
    return RenderedMessage(**fields)
