"""A minimal, fast HTTP sink standing in for a webhook provider during benchmarks.

Every request to any path other than ``/_records`` and ``/_count`` is recorded as
``(Idempotency-Key header, arrival time)`` — the key is ``<runId>/<step index>`` and the time
is ``time.time()`` when the request has been fully read — and answered ``200 {}``.

``GET /_records`` returns ``[[key, time], ...]`` as JSON; ``GET /_count`` returns
``{"count", "connections"}`` (requests recorded, connections accepted).

Built on uvloop + httptools with a bare asyncio Protocol (HTTP/1.1 keep-alive), so it costs
a few tens of microseconds of CPU per request: it shares the machine with the server.

Usage: ``python bench/sink.py --port 8282``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import cast

import httptools
import orjson
import uvloop

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _reply(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Sink:
    """The recorded requests, shared by all connections."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float]] = []
        #: Connections accepted so far: shows whether the server's HTTP client reuses them.
        self.connections = 0


class _Connection(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._key = ""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._sink.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._key = ""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"idempotency-key":
            self._key = value.decode("latin-1")

    def on_message_complete(self) -> None:
        now = time.time()
        assert self._transport is not None
        if self._url.startswith(b"/_records"):
            self._transport.write(_reply(orjson.dumps(self._sink.records)))
        elif self._url.startswith(b"/_count"):
            counts = {"count": len(self._sink.records), "connections": self._sink.connections}
            self._transport.write(_reply(orjson.dumps(counts)))
        else:
            self._sink.records.append((self._key, now))
            self._transport.write(_OK)
        if not self._parser.should_keep_alive():
            self._transport.close()


async def serve(host: str, port: int) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(sink), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8282)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
