"""Run a Relaybox server for benchmarking, in-process, exactly as ``relaybox serve`` runs it.

The app is built with ``relaybox.bootstrap.build`` and served by uvicorn with the same options
as the CLI (uvloop, httptools, no access log). Two routes are added for the benchmark:

``POST /bench/noop``
    The reference endpoint: the same middleware, router and auth dependency
    (``Depends(deps.workspace)``) as ``POST /automations/invoke``, reads and parses the JSON
    body with orjson and answers ``{"runId": "noop"}`` — the same stack minus the database.
``GET /bench/stats``
    Writer counters (commits, jobs → batching factor), engine backlog and CPU seconds per
    thread group (event loop, SQLite writer, SQLite readers, other), read from /proc.

Usage: ``python bench/server.py --db /tmp/x/bench.db --port 8181 --api-key KEY``.
The server prints nothing on success; poll ``GET /healthz`` for readiness.
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
from typing import Any

import orjson
import uvicorn
from fastapi import Depends, Request
from starlette.responses import Response

from relaybox import bootstrap
from relaybox.api import deps
from relaybox.settings import Settings

_TICKS = os.sysconf("SC_CLK_TCK")


def _thread_cpu(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux /proc)."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return 0.0
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _group(name: str) -> str:
    if name == "MainThread":
        return "loop"
    if name.startswith("relaybox-sqlite-writer"):
        return "writer"
    if name.startswith("relaybox-read"):
        return "readers"
    return "other"


def cpu_by_thread_group() -> dict[str, float]:
    """CPU seconds so far for the event loop thread, the writer, the reader pool and the rest.

    Threads that have exited are counted in "process" (getrusage) but not in the groups.
    """
    groups = {"loop": 0.0, "writer": 0.0, "readers": 0.0, "other": 0.0}
    for thread in threading.enumerate():
        if thread.native_id is not None:
            groups[_group(thread.name)] += _thread_cpu(thread.native_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    groups["process"] = usage.ru_utime + usage.ru_stime
    return groups


def _place_next_to_invoke(routes: list[Any]) -> None:
    """Move the just-added no-op route next to ``POST /automations/invoke``.

    Starlette tries routes in order, so this gives both endpoints the same routing cost.
    """
    noop = routes.pop()
    at = next(
        (i for i, r in enumerate(routes) if getattr(r, "path", None) == "/automations/invoke"),
        len(routes) - 1,
    )
    routes.insert(at + 1, noop)


def build_app(settings: Settings) -> Any:
    """The Relaybox app plus the benchmark routes; returns the Runtime."""
    runtime = bootstrap.build(settings)
    app = runtime.app

    @app.post("/bench/noop", include_in_schema=False)
    async def noop(request: Request, ws: str = Depends(deps.workspace)) -> Response:
        deps.parse_object(await request.body())
        return deps.raw_json(orjson.dumps({"runId": "noop"}))

    _place_next_to_invoke(app.router.routes)

    @app.get("/bench/stats", include_in_schema=False)
    async def stats() -> Response:
        writer = getattr(runtime.store, "writer", None)
        engine = runtime.engine
        body = {
            "commits": getattr(writer, "commits", None),
            "jobs": getattr(writer, "jobs", None),
            "backlog": engine.backlog if engine is not None else None,
            "cpu": cpu_by_thread_group(),
            "pid": os.getpid(),
        }
        return deps.raw_json(orjson.dumps(body))

    return runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--concurrency", type=int, default=None, help="engine workers")
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    if args.concurrency is not None:
        overrides["concurrency"] = args.concurrency
    settings = Settings(
        database_url=f"sqlite:///{os.path.abspath(args.db)}",
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        outbound_allow=["127.0.0.1"],
        log_level="warning",
        **overrides,
    )
    runtime = build_app(settings)
    # The same options as relaybox.cli.main._serve.
    config = uvicorn.Config(
        runtime.app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
