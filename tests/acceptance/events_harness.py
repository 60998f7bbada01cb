"""Helpers for the delivery-event and inbox acceptance tests: a recording receiver of
delivery events and a Server-Sent Events reader over a real streaming HTTP connection."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from relaybox_harness import LOCAL, Workspace

#: A ``plan`` entry: hold the request until ``release`` (then 200).
HOLD = -1


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    status: int


@dataclass
class EventReceiver:
    """A real HTTP server recording each event; answers from ``plan`` (then 200).

    A ``HOLD`` in the plan records the request, sets ``holding`` and answers only once
    ``release`` is set (as a receiver whose reply is lost when the sender dies).
    """

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self.server.server_address[1]}/events"

    def for_message(self, message_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.body["data"]["id"] == message_id]

    def acknowledged(self, message_id: str) -> list[str]:
        """Statuses of the message's events answered with 2xx, in arrival order."""
        found = self.for_message(message_id)
        return [r.body["data"]["status"] for r in found if 200 <= r.status < 300]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver(port: int = 0) -> EventReceiver:
    holder: list[EventReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                status = receiver.plan.pop(0) if receiver.plan else 200
                receiver.requests.append(
                    Received(dict(self.headers.items()), raw, json.loads(raw), status)
                )
            if status == HOLD:
                receiver.holding.set()
                receiver.release.wait(timeout=30)
                status = 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender is gone

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOCAL, port), Handler)
    server.daemon_threads = True
    receiver = EventReceiver(server)
    holder.append(receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


class EventStream:
    """``GET /inbox/{user}/stream`` read line by line on a thread, events parsed into a queue."""

    def __init__(self, ws: Workspace, user: str, *, token: str | None = None) -> None:
        """With ``token``, authenticate as the user with ``?access_token=`` (as a browser's
        EventSource must) instead of the workspace key."""
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._client = httpx.Client(
            base_url=ws.server.url,
            headers={} if token else {"Authorization": f"Bearer {ws.key}"},
            params={"access_token": token} if token else None,
            timeout=httpx.Timeout(10.0, read=None),
        )
        self._user = user
        self.status: int | None = None
        self._response: httpx.Response | None = None
        self.content_type: str | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name = "message"
        try:
            with self._client.stream("GET", f"/inbox/{self._user}/stream") as response:
                self._response = response
                self.status = response.status_code
                self.content_type = response.headers.get("content-type")
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[len("event: ") :]
                    elif line.startswith("data: "):
                        self.events.put((name, json.loads(line[len("data: ") :])))
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass  # closed by the test

    def next(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next event called ``name`` (earlier events of other names are skipped)."""
        while True:
            got, data = self.events.get(timeout=timeout)
            if got == name:
                return data

    def close(self) -> None:
        if self._response is not None:
            self._response.close()  # unblocks the reading thread
        self._client.close()
        self._thread.join(timeout=0.5)  # a read blocked on the socket ends with the process
