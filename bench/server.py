"""Run a Relaybox server for benchmarking, in-process, exactly as ``relaybox serve`` runs it.

The app is built with ``relaybox.bootstrap.build`` and served by uvicorn with the same options
as the CLI (uvloop, httptools, no access log). Three routes are added for the benchmark:

``POST /bench/noop``
    The reference endpoint: the same middleware, router and auth dependency
    (``Depends(deps.workspace)``) as ``POST /automations/invoke``, reads and parses the JSON
    body with orjson and answers ``{"runId": "noop"}`` — the same stack minus the database.
``POST /bench/raw-noop``
    The floor: the same auth check (``KeyService.workspace_for``) and orjson parse in a bare
    ASGI callable in front of the app — uvicorn and httptools only, no FastAPI/Starlette.
``GET /bench/stats``
    Writer counters (commits, jobs → batching factor; jobs by the store method that submitted
    them), engine backlog and CPU seconds per thread group (event loop, SQLite writer, SQLite
    readers, other), read from /proc.

Usage: ``python bench/server.py --db /tmp/x/bench.db --port 8181 --api-key KEY``.
The server prints nothing on success; poll ``GET /healthz`` for readiness.

``--experiment NAME`` (repeatable) patches the running process — never the source tree — to
measure what a suggested server change would buy. The default (no experiment) is the stock
server. Experiments:

``no-telemetry``
    FastAPI's native OpenTelemetry hook disabled, as ``FastAPI(telemetry={"tracing": False,
    "metrics": False, "logs": False})`` would do: it otherwise asks OpenTelemetry for the global
    providers (an environment lookup each) on every request.
``buffered-ids``
    ``relaybox.ids.courier_id`` draws its 12 random bytes from a 4 KiB ``os.urandom`` buffer
    instead of one ``getrandom`` call per id. Same CSPRNG; what changes is that ``os.urandom``
    releases the GIL, and taking it back from the busy SQLite writer thread stalls the loop.
    (Moot since d8936f9, where ids come from a seeded PRNG.)
``lean-http``
    Plain-http webhook requests bypass httpx: after the same ``OutboundGuard.check_url``, they
    go over a minimal HTTP/1.1 keep-alive pool on asyncio streams (Content-Length responses;
    anything else falls back to httpx). Measures what the HTTP client costs per delivery.
``pool16``
    The outbound ``httpx.AsyncClient`` gets ``Limits(max_connections=16,
    max_keepalive_connections=16)`` instead of httpx's 100/20: httpcore checks every pooled
    connection (a ``poll()`` each) whenever a request is assigned or released.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import resource
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import uvicorn
from fastapi import Depends, Request
from starlette.responses import Response

from relaybox import bootstrap, ids
from relaybox.api import deps
from relaybox.providers.outbound import OutboundGuard, OutboundResponse
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
    if name.startswith("relaybox-") and "-writer" in name:
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


def _invoke_router(routes: list[Any]) -> tuple[Any, int] | None:
    """The router whose route list holds ``POST /automations/invoke``, and its index there.

    FastAPI up to 0.11x copies included routes into the app's list; newer versions keep each
    included router as a node (``_IncludedRouter.original_router``) and match through it.
    """
    for i, route in enumerate(routes):
        if getattr(route, "path", None) == "/automations/invoke" and "POST" in getattr(
            route, "methods", ()
        ):
            return routes, i
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found = _invoke_router(inner.routes)
            if found is not None:
                return inner, found[1]
    return None


def add_noop_next_to_invoke(app: Any, endpoint: Any) -> None:
    """Register ``POST /bench/noop`` right after ``POST /automations/invoke``, in its router.

    Starlette and FastAPI try routes in order, so both endpoints then pay the same routing
    cost (and the same router-level dependencies); appended to the app instead, the no-op
    would first be matched against every included router.
    """
    found = _invoke_router(app.router.routes)
    if found is None or isinstance(found[0], list):
        app.add_api_route("/bench/noop", endpoint, methods=["POST"], include_in_schema=False)
        routes = app.router.routes
        at = found[1] if found is not None else len(routes) - 1
    else:
        router, at = found
        router.add_api_route("/bench/noop", endpoint, methods=["POST"], include_in_schema=False)
        routes = router.routes
    routes.insert(at + 1, routes.pop())
    for target in (app.router, found[0] if found else None):
        # FastAPI >= 0.12x caches each included router's effective routes by version.
        mark = getattr(target, "_mark_routes_changed", None)
        if mark is not None:
            mark()


EXPERIMENTS = ("no-telemetry", "buffered-ids", "lean-http", "pool16")

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length: *(\d+)\r$")
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _LeanHttp:
    """HTTP/1.1 over asyncio streams with one keep-alive pool per (host, port)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Conn]] = collections.defaultdict(list)

    def _take(self, key: tuple[str, int]) -> Conn | None:
        idle = self._idle[key]
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def request(
        self, method: str, url: str, headers: Any, content: bytes, max_bytes: int
    ) -> OutboundResponse | None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None
        key = (parts.hostname, parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in {"Accept-Encoding": "identity", **headers}.items()]
        lines.append(f"Content-Length: {len(content)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content
        reused = self._take(key)
        try:
            return await self._exchange(key, reused or await self._open(key), message, max_bytes)
        except (OSError, asyncio.IncompleteReadError):
            if reused is None:
                raise
            # The receiver closed the idle connection: it never saw this request.
            return await self._exchange(key, await self._open(key), message, max_bytes)

    async def _open(self, key: tuple[str, int]) -> Conn:
        return await asyncio.open_connection(*key)

    async def _exchange(
        self, key: tuple[str, int], conn: Conn, message: bytes, max_bytes: int
    ) -> OutboundResponse | None:
        reader, writer = conn
        try:
            writer.write(message)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            if match is None:
                writer.close()
                return None
            body = await reader.readexactly(int(match.group(1)))
        except BaseException:
            writer.close()
            raise
        pairs = [line.split(":", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line]
        found = httpx.Headers([(k.strip(), v.strip()) for k, v in pairs])
        if found.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle[key].append(conn)
        return OutboundResponse(
            status_code=int(head[9:12]),
            headers=found,
            body=body[:max_bytes],
            truncated=len(body) > max_bytes,
        )


def _use_lean_http() -> None:
    lean = _LeanHttp()
    stock = OutboundGuard.request

    async def request(
        self: OutboundGuard,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        headers: Any,
        content: bytes,
        time_limit: float,
        max_response_bytes: int,
    ) -> OutboundResponse:
        await self.check_url(url)
        try:
            async with asyncio.timeout(time_limit):
                done = await lean.request(method, url, headers, content, max_response_bytes)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        if done is not None:
            return done
        return await stock(
            self,
            client,
            method,
            url,
            headers=headers,
            content=content,
            time_limit=time_limit,
            max_response_bytes=max_response_bytes,
        )

    OutboundGuard.request = request


class _RandomBuffer:
    """CSPRNG bytes fetched 4 KiB at a time (one getrandom call per ~340 ids)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._buf = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._buf):
            self._buf = os.urandom(self._size)
            self._at = 0
        out = self._buf[self._at : self._at + n]
        self._at += n
        return out


def apply_experiments(names: list[str], runtime: Any = None) -> None:
    """Patch this process for the named experiments (before build: pass runtime=None)."""
    if runtime is None:
        if "pool16" in names:
            limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
            stock = httpx.AsyncClient

            class LimitedClient(stock):
                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    kwargs.setdefault("limits", limits)
                    super().__init__(*args, **kwargs)

            httpx.AsyncClient = LimitedClient
        if "lean-http" in names:
            _use_lean_http()
        if "buffered-ids" in names:
            randoms = _RandomBuffer()

            def courier_id(now: float) -> str:
                return f"1-{int(now):08x}-{randoms.take(12).hex()}"

            ids.courier_id = courier_id
        return
    if "no-telemetry" in names:
        # FastAPI keeps the dict it was given; NativeTelemetry.enabled() reads these flags
        # first and stops there when they are all off.
        config = getattr(runtime.app, "_telemetry", None)
        if isinstance(config, dict):
            config.update(tracing=False, metrics=False, logs=False)


def count_writer_jobs(runtime: Any) -> collections.Counter[str]:
    """Count the writer's jobs by the store method that submitted them (e.g. ``create_run``).

    Wraps the writer's ``submit`` on the instance: about a microsecond per job.
    """
    kinds: collections.Counter[str] = collections.Counter()
    writer = getattr(runtime.store, "writer", None)
    if writer is None:
        return kinds
    submit = writer.submit

    async def counted(fn: Any) -> Any:
        name = getattr(fn, "__qualname__", "?").split(".<locals>")[0]
        kinds[name.rsplit(".", 1)[-1]] += 1
        return await submit(fn)

    writer.submit = counted
    return kinds


def build_app(settings: Settings) -> Any:
    """The Relaybox app plus the benchmark routes; returns the Runtime."""
    runtime = bootstrap.build(settings)
    app = runtime.app

    async def noop(request: Request, ws: str = Depends(deps.workspace)) -> Response:
        deps.parse_object(await request.body())
        return deps.raw_json(orjson.dumps({"runId": "noop"}))

    add_noop_next_to_invoke(app, noop)
    kinds = count_writer_jobs(runtime)

    @app.get("/bench/stats", include_in_schema=False)
    async def stats() -> Response:
        writer = getattr(runtime.store, "writer", None)
        engine = runtime.engine
        body = {
            "commits": getattr(writer, "commits", None),
            "jobs": getattr(writer, "jobs", None),
            "backlog": engine.backlog if engine is not None else None,
            "job_kinds": dict(kinds),
            "cpu": cpu_by_thread_group(),
            "pid": os.getpid(),
        }
        return deps.raw_json(orjson.dumps(body))

    return runtime


_UNAUTHORIZED = b'{"type":"authentication_error","message":"Unauthorized"}'
_RAW_OK = b'{"runId":"noop"}'


def with_raw_noop(runtime: Any) -> Any:
    """An ASGI app answering ``POST /bench/raw-noop`` itself and passing the rest on."""
    app = runtime.app
    keys = runtime.services.keys

    async def respond(send: Any, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/bench/raw-noop":
            await app(scope, receive, send)
            return
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode()
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or await keys.workspace_for(key.strip()) is None:
            await respond(send, 401, _UNAUTHORIZED)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        orjson.loads(b"".join(chunks))
        await respond(send, 200, _RAW_OK)

    return asgi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--concurrency", type=int, default=None, help="engine workers")
    parser.add_argument("--experiment", action="append", default=[], choices=EXPERIMENTS)
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
    apply_experiments(args.experiment)
    runtime = build_app(settings)
    apply_experiments(args.experiment, runtime)
    # The same options as relaybox.cli.main._serve; the wrapper only adds /bench/raw-noop.
    config = uvicorn.Config(
        with_raw_noop(runtime),
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
