"""Benchmark delivery-event dispatch: how fast one process drains a backlog to one endpoint.

::

    python bench/events.py [--messages 2000] [--store sqlite|postgres]

Queues ``--messages`` messages with three status events each (ENQUEUED, ROUTED, SENT) for
one endpoint — the common single-receiver deployment — in a fresh store, then starts the
stock ``EventDispatcher`` with the real signed poster (httpx, through the outbound guard)
against ``bench/sink.py`` and times the drain until the sink has every event. Reported:
events/s and the dispatcher process's CPU per event (store included: SQLite runs in-process,
PostgreSQL's own CPU is not counted). Sink and dispatcher share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from run import sink_process  # noqa: E402  (bench/run.py: the sink's start, readiness, stop)

from relaybox.clock import SystemClock  # noqa: E402
from relaybox.providers.outbound import OutboundGuard  # noqa: E402
from relaybox.providers.webhook import event_poster  # noqa: E402
from relaybox.services.event_dispatch import EventDispatcher  # noqa: E402
from relaybox.storage.base import Message, MessageEvent, Store, WebhookEndpoint  # noqa: E402
from relaybox.storage.postgres import PostgresStore  # noqa: E402
from relaybox.storage.sqlite import SqliteStore  # noqa: E402

WS = "ws_bench"
POSTGRES = os.environ.get("RELAYBOX_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _open_store(kind: str, work: Path) -> tuple[Store, str | None]:
    if kind == "sqlite":
        store: Store = SqliteStore(str(work / "events.db"))
        await store.open()
        return store, None
    name = f"relaybox_bench_events_{secrets.token_hex(3)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    store = PostgresStore(f"{POSTGRES}/{name}")
    await store.open()
    return store, name


async def _seed(store: Store, url: str, messages: int) -> None:
    now = time.time()
    await store.put_webhook_endpoint(WebhookEndpoint(WS, "we_bench", url, "whsec_bench", now))
    for i in range(messages):
        message = Message(
            workspace_id=WS, id=f"m_{i:06d}", status="SENT", enqueued_at=now, updated_at=now
        )
        events = [MessageEvent(message.id, now, s) for s in ("ENQUEUED", "ROUTED", "SENT")]
        await store.save_message(message, events)


async def _count(client: httpx.AsyncClient, sink: str) -> int:
    return int((await client.get(f"{sink}/_count")).json()["count"])


async def measure(kind: str, messages: int, concurrency: int, base: str) -> dict[str, object]:
    database: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        store, database = await _open_store(kind, Path(tmp))
        try:
            async with httpx.AsyncClient() as probe:
                await _seed(store, f"{base}/events", messages)
                expected = 3 * messages
                async with httpx.AsyncClient() as http:
                    dispatcher = EventDispatcher(
                        store=store,
                        clock=SystemClock(),
                        post=event_poster(http, OutboundGuard(allow=["127.0.0.1"])),
                        concurrency=concurrency,
                    )
                    cpu, start = _cpu(), time.perf_counter()
                    dispatcher.start()
                    while await _count(probe, base) < expected:  # noqa: ASYNC110 (a poll)
                        await asyncio.sleep(0.02)
                    elapsed = time.perf_counter() - start
                    used = _cpu() - cpu
                    await dispatcher.stop()
        finally:
            await store.close()
            if database is not None:
                with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return {
        "store": kind,
        "messages": messages,
        "events": expected,
        "seconds": round(elapsed, 2),
        "events_per_s": round(expected / elapsed),
        "cpu_ms_per_event": round(1000 * used / expected, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, sink_process(Path(work)) as sink:
        result = asyncio.run(measure(args.store, args.messages, args.concurrency, sink.url))
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {python}")
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
