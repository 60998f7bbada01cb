"""Helper for the inbox and delivery-event acceptance tests: a Server-Sent Events reader over a
real streaming HTTP connection (delivery events are recorded by relaybox_harness's
``WebhookReceiver``)."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import httpx
from relaybox_harness import Workspace


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
