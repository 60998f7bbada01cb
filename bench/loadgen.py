"""Open-loop load generator: invokes at a fixed rate, whatever the server's response times.

Requests are scheduled at ``start + i / rate`` and written on a pool of keep-alive HTTP/1.1
connections (raw asyncio streams, opened on demand when all are busy), so a slow server does
not slow the generator down (no coordinated omission). Each request's scheduled, written and
answered times (``time.time()``) and the ``runId`` of the answer are recorded.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


@dataclass
class Sent:
    scheduled: float
    sent: float = 0.0
    acked: float = 0.0
    #: HTTP status, or -1 for a transport error.
    status: int = 0
    run_id: str | None = None


class RawClient:
    """POSTs to one path over a pool of asyncio stream connections; cheap enough at 2k/s."""

    def __init__(self, host: str, port: int, key: str, path: str) -> None:
        self._host = host
        self._port = port
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        #: Requests re-sent because the server had closed the idle connection they went out on.
        self.retried = 0

    async def open(self, n: int) -> None:
        for _ in range(n):
            self._idle.append(await self._connect())

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self._host, self._port)

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """An idle connection the server has not closed (uvicorn drops idle ones after 5 s)."""
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def post(self, body: bytes, record: Sent) -> None:
        reused = self._take()
        conn = reused or await self._connect()
        record.sent = time.time()
        ok = await self._exchange(conn, body, record)
        if not ok and reused is not None:
            # The server closed the idle connection as we wrote to it: it never saw this
            # request, so send it again on a fresh connection (and count it).
            self.retried += 1
            conn = await self._connect()
            record.sent = time.time()
            ok = await self._exchange(conn, body, record)
        if ok:
            self._idle.append(conn)

    async def _exchange(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        body: bytes,
        record: Sent,
    ) -> bool:
        reader, writer = conn
        try:
            writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            payload = await reader.readexactly(int(match.group(1))) if match else b""
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            record.acked = time.time()
            record.status = -1
            return False
        record.acked = time.time()
        record.status = int(head[9:12])
        if record.status == 200:
            record.run_id = orjson.loads(payload).get("runId")
        return True

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def open_loop(
    client: RawClient,
    rate: float,
    seconds: float,
    body_for: Callable[[int], bytes],
    *,
    prewarm: int = 16,
    settle: float = 60.0,
) -> list[Sent]:
    """Send ``rate * seconds`` requests on a fixed schedule; wait ``settle`` s for the last."""
    await client.open(prewarm)
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    records = [Sent(0.0) for _ in range(total)]
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.05
    start_wall = time.time() + (start - loop.time())
    i = 0
    while i < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while i < due:
            records[i].scheduled = start_wall + i / rate
            task = asyncio.create_task(client.post(body_for(i), records[i]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=settle)
    await client.close()
    return records


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles ``{"p50": ..., "p99": ..., "max": ...}`` (None if empty)."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for p in points:
        key = f"p{p:g}".replace(".", "")
        if not ordered:
            out[key] = None
            continue
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        out[key] = ordered[rank]
    out["max"] = ordered[-1] if ordered else None
    return out
