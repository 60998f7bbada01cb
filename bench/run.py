"""Benchmark Relaybox's invoke path on SQLite: throughput, and invoke → provider latency.

One command, everything bounded in time, every process it starts is stopped at the end::

    python bench/run.py --duration 15

What it measures (each server is ``bench/server.py`` on a fresh temporary SQLite file):

1. Closed-loop throughput with ``wrk`` (``-t1``, ``--connections`` keep-alive connections):
   the no-op reference ``POST /bench/noop`` (same app, middleware, routing and auth
   dependency as invoke, minus the database), then ``POST /automations/invoke`` with an
   ad hoc automation of one ``delay`` of "1 hour" (pure durable ingest: the run is committed
   and fsync'd before the 200, then the engine parks it), then with one ``send`` step that is
   delivered to a local webhook sink (the whole durable pipeline; the ingest rate wrk sees is
   reported next to the delivery rate the sink sees). Reported: requests/s, latency p50/p99,
   errors, the writer's batching factor (jobs per COMMIT) and CPU per request by thread.
2. Open-loop latency: a Python load generator (uvloop, raw keep-alive HTTP/1.1) invokes
   one-``send`` automations at fixed rates; each invoke's send time and runId are joined with
   the sink's arrival time of the webhook whose ``Idempotency-Key`` is ``<runId>/0``.

The load generators, the sink and the server share the same machine (see ``nproc`` in the
report): the figures are for everything on one host, not for the server alone.

Results are printed as markdown and written to ``bench/results/`` (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
TEMPLATE_ALIAS = "BENCH"
RECIPIENT = "bench-user"
DELAY_BODY = {
    "automation": {"steps": [{"action": "delay", "duration": "1 hour"}]},
    "recipient": RECIPIENT,
    "data": {"n": 1},
}
SEND_BODY = {
    "automation": {"steps": [{"action": "send", "template": TEMPLATE_ALIAS}]},
    "recipient": RECIPIENT,
    "data": {"n": 1},
}
TEMPLATE = {
    "notification": {
        "name": "b",
        "tags": [],
        "brand": None,
        "routing": None,
        "subscription": None,
        "content": {"version": "2022-01-01", "elements": [{"type": "text", "content": "hi {{n}}"}]},
        "alias": TEMPLATE_ALIAS,
    },
    "state": "PUBLISHED",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGINT (uvicorn's graceful shutdown), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot; iowait counts as idle."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]
    idle = values[3] + values[4]
    total = sum(values)
    return total - idle, total


@dataclass
class Sink:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def count(self) -> int:
        return int(httpx.get(f"{self.url}/_count", timeout=10).json()["count"])

    def records(self) -> list[tuple[str, float]]:
        return [
            (k, t) for k, t in orjson.loads(httpx.get(f"{self.url}/_records", timeout=60).content)
        ]


@contextlib.contextmanager
def sink_process(log_dir: Path) -> Iterator[Sink]:
    port = free_port()
    with open(log_dir / "sink.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "sink.py"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            sink = Sink(port, proc)
            wait_http(f"{sink.url}/_count", 15, proc)
            yield sink
        finally:
            stop_process(proc, grace=5)


@dataclass
class Server:
    port: int
    key: str
    proc: subprocess.Popen[bytes]
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get("/bench/stats").json()
        return found

    def setup(self, sink: Sink) -> None:
        """A webhook provider pointing at the sink and the published BENCH template."""
        provider = {
            "provider": "webhook",
            "settings": {"url": f"{sink.url}/hook", "method": "POST"},
        }
        self.client.post("/providers", json=provider).raise_for_status()
        self.client.post("/notifications", json=TEMPLATE).raise_for_status()


@contextlib.contextmanager
def server_process(work: Path, name: str, concurrency: int | None) -> Iterator[Server]:
    port = free_port()
    key = "rbx_bench_" + secrets.token_hex(8)
    cmd = [
        sys.executable,
        str(BENCH / "server.py"),
        "--db",
        str(work / f"{name}.db"),
        "--port",
        str(port),
        "--api-key",
        key,
    ]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    with open(work / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        server = Server(port, key, proc)
        try:
            wait_http(f"{server.url}/healthz", 30, proc)
            yield server
        finally:
            server.client.close()
            stop_process(proc)


# --- CPU accounting -----------------------------------------------------------------------


@dataclass
class CpuMark:
    wall: float
    server: dict[str, float]
    children: float
    sink: float
    me: float
    machine: tuple[int, int]


def cpu_mark(server: Server, sink: Sink) -> CpuMark:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return CpuMark(
        wall=time.monotonic(),
        server=dict(server.stats()["cpu"]),
        children=children.ru_utime + children.ru_stime,
        sink=proc_cpu(sink.proc.pid),
        me=me.ru_utime + me.ru_stime,
        machine=machine_jiffies(),
    )


def cpu_report(a: CpuMark, b: CpuMark, requests: int) -> dict[str, Any]:
    """Cores used by each party over the window and server CPU microseconds per request."""
    wall = max(b.wall - a.wall, 1e-9)
    server = {k: b.server[k] - a.server.get(k, 0.0) for k in b.server}
    busy = b.machine[0] - a.machine[0]
    total = max(b.machine[1] - a.machine[1], 1)
    return {
        "machine_busy_pct": 100.0 * busy / total,
        "cores": {
            "server": server["process"] / wall,
            "server_loop": server["loop"] / wall,
            "server_writer": server["writer"] / wall,
            "server_readers": server["readers"] / wall,
            # wrk is reaped between the marks, so it is the only child counted here.
            "wrk": (b.children - a.children) / wall,
            "sink": (b.sink - a.sink) / wall,
            "loadgen": (b.me - a.me) / wall,
        },
        "server_us_per_request": {
            k: 1e6 * server[k] / max(requests, 1) for k in ("process", "loop", "writer", "readers")
        },
    }


# --- closed loop with wrk -----------------------------------------------------------------


def run_wrk(
    url: str, body: dict[str, Any], key: str, duration: float, connections: int, work: Path
) -> dict[str, Any]:
    body_file = work / f"body-{secrets.token_hex(4)}.json"
    body_file.write_bytes(orjson.dumps(body))
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_API_KEY": key}
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "post.lua"),
        url,
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=True
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCHJSON "))
    result: dict[str, Any] = json.loads(line[len("BENCHJSON ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["error_count"] = sum(result["errors"].values())
    return result


def wrk_phase(
    name: str,
    server: Server,
    sink: Sink,
    path: str,
    body: dict[str, Any],
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    before_stats = server.stats()
    before_sink = sink.count()
    mark = cpu_mark(server, sink)
    result = run_wrk(server.url + path, body, server.key, args.duration, args.connections, work)
    end = cpu_mark(server, sink)
    after_stats = server.stats()
    delivered = sink.count() - before_sink
    commits = after_stats["commits"] - before_stats["commits"]
    jobs = after_stats["jobs"] - before_stats["jobs"]
    result.update(
        name=name,
        path=path,
        commits=commits,
        jobs=jobs,
        jobs_per_commit=jobs / commits if commits else None,
        jobs_per_request=jobs / result["requests"] if result["requests"] else None,
        delivered=delivered,
        delivered_rps=delivered / (result["duration_us"] / 1e6),
        backlog_at_end=after_stats["backlog"],
        cpu=cpu_report(mark, end, result["requests"]),
    )
    print(f"  {name}: {result['rps']:.0f} req/s, errors {result['error_count']}", flush=True)
    return result


def drain(server: Server, sink: Sink, expected: int, timeout: float) -> dict[str, Any]:
    """Wait until the sink has seen ``expected`` deliveries (bounded); report the drain."""
    start = time.monotonic()
    first = sink.count()
    count = first
    while count < expected and time.monotonic() - start < timeout:
        time.sleep(0.5)
        count = sink.count()
    took = time.monotonic() - start
    return {
        "drained": count >= expected,
        "seconds": took,
        "delivered_during_drain": count - first,
        "rate": (count - first) / took if took > 0 else None,
        "missing": max(0, expected - count),
        "backlog": server.stats()["backlog"],
    }


# --- open loop latency --------------------------------------------------------------------


@dataclass
class Sent:
    scheduled: float
    sent: float = 0.0
    acked: float = 0.0
    status: int = 0
    run_id: str | None = None


class RawClient:
    """HTTP/1.1 keep-alive POSTs over a pool of asyncio streams: cheap enough at 2k/s."""

    def __init__(self, port: int, key: str, path: str) -> None:
        self._port = port
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def open(self, n: int) -> None:
        for _ in range(n):
            self._idle.append(await self._connect())

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(HOST, self._port)

    async def post(self, body: bytes, record: Sent) -> None:
        conn = self._idle.pop() if self._idle else await self._connect()
        reader, writer = conn
        record.sent = time.time()
        writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            payload = await reader.readexactly(int(match.group(1))) if match else b""
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            record.acked = time.time()
            record.status = -1
            return
        record.acked = time.time()
        record.status = int(head[9:12])
        if record.status == 200:
            record.run_id = orjson.loads(payload).get("runId")
        self._idle.append(conn)

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def open_loop(port: int, key: str, rate: float, seconds: float) -> list[Sent]:
    """Invoke at ``rate``/s on a fixed schedule, independent of responses (open loop)."""
    client = RawClient(port, key, "/automations/invoke")
    await client.open(min(256, max(16, int(rate * 0.02))))
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    records = [Sent(0.0) for _ in range(total)]
    tasks: set[asyncio.Task[None]] = set()
    start_loop = loop.time() + 0.05
    start_wall = time.time() + (start_loop - loop.time())
    i = 0
    while i < total:
        due = min(total, int((loop.time() - start_loop) * rate) + 1)
        while i < due:
            records[i].scheduled = start_wall + i / rate
            body = orjson.dumps({**SEND_BODY, "data": {"n": i}})
            task = asyncio.create_task(client.post(body, records[i]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(max(0.0, start_loop + i / rate - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    await client.close()
    return records


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[str, float | None]:
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


def latency_phase(rate: float, args: argparse.Namespace, work: Path, sink: Sink) -> dict[str, Any]:
    print(f"  open loop at {rate:g}/s ...", flush=True)
    with server_process(work, f"latency-{rate:g}", args.concurrency) as server:
        server.setup(sink)
        # Warm the provider pool, the template cache and the server's connection to the sink.
        base = sink.count()
        for _ in range(20):
            server.client.post("/automations/invoke", json=SEND_BODY).raise_for_status()
        drain(server, sink, base + 20, 10)
        base = sink.count()
        mark = cpu_mark(server, sink)
        seconds = args.warmup + args.latency_duration
        records = asyncio.run(open_loop(server.port, server.key, rate, seconds))
        end = cpu_mark(server, sink)
        ok = [r for r in records if r.status == 200 and r.run_id]
        drained = drain(server, sink, base + len(ok), args.drain_timeout)
        arrivals: dict[str, float] = {}
        for key, at in sink.records():
            run_id = key.split("/", 1)[0]
            if run_id not in arrivals or at < arrivals[run_id]:
                arrivals[run_id] = at
    cutoff = records[0].scheduled + args.warmup if records else 0.0
    measured = [r for r in ok if r.scheduled >= cutoff]
    window = [r for r in records if r.scheduled >= cutoff]
    delivered = [r for r in measured if r.run_id in arrivals]
    span = (window[-1].scheduled - window[0].scheduled) if len(window) > 1 else 1.0
    ms = 1000.0
    return {
        "rate": rate,
        "sent": len(window),
        "achieved_rps": len(window) / span if span > 0 else None,
        "errors": len(window) - len(measured),
        "delivered": len(delivered),
        "not_delivered": len(measured) - len(delivered),
        "ack_ms": percentiles([(r.acked - r.sent) * ms for r in measured], (50, 99)),
        "provider_ms": percentiles(
            [(arrivals[r.run_id] - r.sent) * ms for r in delivered if r.run_id], (50, 95, 99)
        ),
        "provider_from_schedule_ms": percentiles(
            [(arrivals[r.run_id] - r.scheduled) * ms for r in delivered if r.run_id], (50, 99)
        ),
        "gen_lag_ms": percentiles([(r.sent - r.scheduled) * ms for r in window], (50, 99)),
        "drain": drained,
        "cpu": cpu_report(mark, end, len(records)),
    }


# --- profiling ----------------------------------------------------------------------------


def profile_phase(
    name: str,
    server: Server,
    sink: Sink,
    body: dict[str, Any],
    args: argparse.Namespace,
    work: Path,
    out_dir: Path,
) -> dict[str, Any] | None:
    """Sample the server with py-spy while wrk drives invoke; summarise the event loop."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("  py-spy not found; skipping the profile", flush=True)
        return None
    raw = out_dir / f"profile-{name}.txt"
    seconds = max(3, int(args.profile_seconds))
    cmd = [spy, "record", "--pid", str(server.proc.pid), "--duration", str(seconds)]
    cmd += ["--rate", "250", "--format", "raw", "--threads", "--nonblocking", "-o", str(raw)]
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_wrk(
            server.url + "/automations/invoke",
            body,
            server.key,
            seconds + 1,
            args.connections,
            work,
        )
        spy_proc.wait(timeout=seconds + 30)
    finally:
        if spy_proc.poll() is None:
            spy_proc.kill()
            spy_proc.wait()
    if not raw.exists():
        return None
    return summarise_profile(raw.read_text())


_LINE_NO = re.compile(r":\d+\)$")


def summarise_profile(raw: str, top: int = 25) -> dict[str, Any]:
    """From py-spy's collapsed stacks: samples per thread; the event loop's hot frames."""
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    loop_samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        thread = re.sub(r"_\d+$", "", thread)
        threads[thread] += count
        if thread != "MainThread" or len(frames) < 2:
            continue
        loop_samples += count
        names = [_LINE_NO.sub(")", f) for f in frames[1:]]
        own[names[-1]] += count
        where = re.search(r"\(([^)]*)\)$", names[-1])
        packages[where.group(1).split("/")[0] if where else names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    share = 100.0 / max(loop_samples, 1)
    return {
        "threads": dict(threads),
        "loop_samples": loop_samples,
        "self_pct": [(k, v * share) for k, v in own.most_common(top)],
        "package_self_pct": [(k, v * share) for k, v in packages.most_common(12)],
        "inclusive_pct": [(k, v * share) for k, v in inclusive.most_common(top * 3)],
    }


# --- report -------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    versions = {}
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "orjson"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory_gb": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": (wrk.stdout or wrk.stderr).split("\n", 1)[0].strip(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.1f}"


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    facts = results["machine"]
    args = results["args"]
    lines.append(f"### Relaybox benchmark — {results['started']}\n")
    lines.append(f"Command: `{results['command']}`\n")
    lines.append(
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory_gb']} GB, Linux "
        f"{facts['kernel']}; Python {facts['python']}, SQLite {facts['sqlite']}; "
        f"{facts['wrk']}; {facts['packages']}. Server, load generator and webhook sink all "
        f"run on this machine and share its {facts['nproc']} CPUs.\n"
    )
    if results["wrk"]:
        lines.append(
            f"**Closed loop** (wrk -t1 -c{args['connections']}, {args['duration']:g} s per row; "
            "SQLite WAL, synchronous=FULL)\n"
        )
        lines.append(
            "| Endpoint | req/s | x no-op | p50 ms | p99 ms | errors | jobs/commit "
            "| server CPU µs/req (loop / writer) | cores: server / wrk / sink | machine busy |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        noop = next((r["rps"] for r in results["wrk"] if r["name"] == "no-op"), None)
        for r in results["wrk"]:
            cpu = r["cpu"]
            per = cpu["server_us_per_request"]
            cores = cpu["cores"]
            ratio = f"{r['rps'] / noop:.2f}" if noop else "-"
            lines.append(
                f"| {r['label']} | {r['rps']:,.0f} | {ratio} | {_ms(r['latency_us']['p50'])} "
                f"| {_ms(r['latency_us']['p99'])} | {r['error_count']} "
                f"| {_f(r['jobs_per_commit'])} "
                f"| {per['process']:.0f} ({per['loop']:.0f} / {per['writer']:.0f}) "
                f"| {cores['server']:.2f} / {cores['wrk']:.2f} / {cores['sink']:.2f} "
                f"| {cpu['machine_busy_pct']:.0f}% |"
            )
        send = next((r for r in results["wrk"] if r["name"] == "send"), None)
        if send is not None:
            d = send["drain"]
            lines.append(
                f"\nSend variant: the sink received {send['delivered_rps']:,.0f} webhooks/s while "
                f"wrk ran; {send['backlog_at_end']:,} runs were queued in the engine when it "
                f"stopped; draining them afterwards (no more invokes) ran at "
                f"{_f(d['rate'], '{:,.0f}')} deliveries/s"
                + ("" if d["drained"] else f" and {d['missing']:,} were still undelivered")
                + f" after {d['seconds']:.0f} s.\n"
            )
    if results["latency"]:
        lines.append(
            f"\n**Open loop: invoke → provider** (one `send` step; {args['latency_duration']:g} s "
            f"measured after {args['warmup']:g} s warm-up; fresh server per rate)\n"
        )
        lines.append(
            "| Rate /s | achieved /s | invoke ack p50 / p99 ms | → provider p50 | p95 | p99 "
            "| max ms | delivered / ok | errors | server cores | machine busy |"
        )
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results["latency"]:
            p = r["provider_ms"]
            a = r["ack_ms"]
            ok = r["delivered"] + r["not_delivered"]
            lines.append(
                f"| {r['rate']:g} | {_f(r['achieved_rps'], '{:,.0f}')} "
                f"| {_f(a['p50'])} / {_f(a['p99'])} | {_f(p['p50'])} | {_f(p['p95'])} "
                f"| {_f(p['p99'])} | {_f(p['max'])} | {r['delivered']:,} / {ok:,} "
                f"| {r['errors']} | {r['cpu']['cores']['server']:.2f} "
                f"| {r['cpu']['machine_busy_pct']:.0f}% |"
            )
        lags = ", ".join(
            f"{r['rate']:g}/s: {_f(r['gen_lag_ms']['p99'], '{:.2f}')}" for r in results["latency"]
        )
        lines.append(
            "\nLatency is from the moment the invoke request was written to the socket to the "
            "sink's arrival time (both `time.time()` on this host). Load-generator lag "
            f"(scheduled → written) p99 ms: {lags}.\n"
        )
    for name, prof in results.get("profiles", {}).items():
        if not prof:
            continue
        lines.append(
            f"\n**py-spy, {name}**: samples per thread {prof['threads']}; event loop "
            "self time by package: "
            + ", ".join(f"{k} {v:.0f}%" for k, v in prof["package_self_pct"])
            + "\n"
        )
        lines.append("| event loop self % | frame |\n|---:|---|")
        for frame, pct in prof["self_pct"][:15]:
            lines.append(f"| {pct:.1f} | `{frame}` |")
    return "\n".join(lines) + "\n"


# --- main ---------------------------------------------------------------------------------


def wrk_phases(args: argparse.Namespace, work: Path, sink: Sink, out: Path) -> dict[str, Any]:
    phases: list[dict[str, Any]] = []
    profiles: dict[str, Any] = {}
    print("closed loop (wrk) ...", flush=True)
    with server_process(work, "closed-loop", args.concurrency) as server:
        server.setup(sink)
        warm = max(2.0, args.warmup)
        run_wrk(server.url + "/bench/noop", DELAY_BODY, server.key, warm, args.connections, work)
        run_wrk(
            server.url + "/automations/invoke", DELAY_BODY, server.key, warm, args.connections, work
        )
        noop = wrk_phase("no-op", server, sink, "/bench/noop", DELAY_BODY, args, work)
        noop["label"] = "`POST /bench/noop` (reference)"
        delay = wrk_phase("delay", server, sink, "/automations/invoke", DELAY_BODY, args, work)
        delay["label"] = "`POST /automations/invoke`, 1 delay step"
        phases += [noop, delay]
        if args.profile:
            profiles["invoke with one delay step"] = profile_phase(
                "delay", server, sink, DELAY_BODY, args, work, out
            )
    with server_process(work, "closed-loop-send", args.concurrency) as server:
        server.setup(sink)
        base = sink.count()
        send = wrk_phase("send", server, sink, "/automations/invoke", SEND_BODY, args, work)
        send["label"] = "`POST /automations/invoke`, 1 send step (ingest)"
        acked = send["requests"] - send["errors"]["status"]
        send["drain"] = drain(server, sink, base + acked, args.drain_timeout)
        phases.append(send)
    if args.profile:
        with server_process(work, "profile-send", args.concurrency) as server:
            server.setup(sink)
            profiles["invoke with one send step"] = profile_phase(
                "send", server, sink, SEND_BODY, args, work, out
            )
    return {"wrk": phases, "profiles": profiles}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rates", default="500,1000,2000", help="open-loop invokes/s")
    parser.add_argument("--latency-duration", type=float, default=None, help="default=duration")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, excluded")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=None, help="engine workers")
    parser.add_argument("--skip-wrk", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy the server under wrk")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    if args.latency_duration is None:
        args.latency_duration = args.duration
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_wrk and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk), or pass --skip-wrk")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python", "bench/run.py", *(argv or sys.argv[1:])]),
        "machine": machine_facts(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wrk": [],
        "latency": [],
        "profiles": {},
    }
    print(json.dumps(results["machine"], indent=1), flush=True)
    with tempfile.TemporaryDirectory(prefix="relaybox-bench-") as tmp:
        work = Path(tmp)
        with sink_process(work) as sink:
            if not args.skip_wrk:
                results.update(wrk_phases(args, work, sink, args.out))
            if not args.skip_latency:
                print("open loop (invoke → provider) ...", flush=True)
                for rate in (float(r) for r in args.rates.split(",") if r.strip()):
                    results["latency"].append(latency_phase(rate, args, work, sink))
    text = render(results)
    (args.out / f"{stamp}.md").write_text(text)
    (args.out / f"{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(text)
    print(f"written to {args.out / stamp}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
