"""In-process and cross-process change hints behind ``Store.watch``.

A write made by this process calls the local callbacks directly; on a shared database the
dialect's NOTIFY carries the same hint to other processes (and back to this one, which is
harmless: hints only make readers look again sooner).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from relaybox.storage.dialect import Dialect
from relaybox.storage.writer import Connection

log = logging.getLogger("relaybox.storage")

#: NOTIFY channel per ``Store.watch`` topic.
CHANNELS = {"webhooks": "relaybox_webhooks", "inbox": "relaybox_inbox"}


class Hints:
    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._lock = threading.Lock()
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._stoppers: list[Callable[[], None]] = []

    def watch(self, topic: str, callback: Callable[[str], None]) -> None:
        channel = CHANNELS[topic]
        with self._lock:
            first = topic not in self._callbacks
            self._callbacks.setdefault(topic, []).append(callback)
        if first:
            stopper = self._dialect.listen_channel(channel, lambda p: self.fire(topic, p))
            with self._lock:
                self._stoppers.append(stopper)

    def fire(self, topic: str, payload: str) -> None:
        with self._lock:
            callbacks = list(self._callbacks.get(topic, ()))
        for callback in callbacks:
            try:
                callback(payload)
            except Exception:  # a hint must never fail the write that sent it
                log.exception("change hint callback failed")

    def notify(self, conn: Connection, topic: str, payload: str) -> None:
        """Send the hint to other processes with the write (inside its transaction)."""
        self._dialect.notify(conn, CHANNELS[topic], payload)

    def stop(self) -> None:
        with self._lock:
            stoppers, self._stoppers = self._stoppers, []
            self._callbacks.clear()
        for stop in stoppers:
            stop()
