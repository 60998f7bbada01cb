"""Benchmark Relaybox's invoke path on SQLite: durable throughput and invoke → provider latency.

One command; every phase is bounded in time and every process it starts is stopped::

    python bench/run.py --duration 15 [--profile] [--experiments no-telemetry,buffered-ids]

Each server is ``bench/server.py`` (the stock app, served as ``relaybox serve`` serves it) on
a fresh SQLite file in a temporary directory, with a webhook provider pointing at
``bench/sink.py`` and a published template ``BENCH``. The servers import a copy of
``src/relaybox`` taken when the run starts, so edits made meanwhile do not leak into it.

1. Closed loop, ``wrk -t1 -c<connections>``, alternated ``--repeat`` times on one server:
   ``POST /bench/raw-noop`` (the floor: uvicorn, auth and JSON parsing without FastAPI),
   ``POST /bench/noop`` (the reference: same app, middleware, router and auth dependency as
   invoke, minus the database) and ``POST /automations/invoke`` with an ad hoc automation of
   one ``delay`` of "1 hour" (pure durable ingest: the run is committed and fsync'd before the
   200, then the engine parks it). Then, on a fresh server, invoke with one ``send`` step
   delivered to the sink (the full durable pipeline; wrk sees the ingest rate, the sink the
   delivery rate, and the backlog is drained afterwards, bounded). Reported: requests/s,
   latency p50/p99, errors, the writer's batching factor (jobs per COMMIT), server CPU per
   request by thread, and the cores used by every party, including other processes.
2. Open loop (``bench/loadgen.py``): one-``send`` invokes at fixed rates on a fresh server
   each; every invoke's write time and runId are joined with the sink's arrival time of the
   webhook whose ``Idempotency-Key`` is ``<runId>/0``.
3. Optionally (``--profile``) py-spy samples a stock server under ingest and while it drains
   a backlog of sends, and (``--experiments``) the closed and open loops are repeated on a
   server patched by ``bench/server.py --experiment`` (and/or with another engine worker
   count) to measure what a suggested server change would buy.

Load generators, sink and server share this machine's CPUs; the report says how many and how
the cores were split. When other processes use more than ``--max-others`` cores during a
measurement it is repeated (``--retries``) and the least disturbed attempt is kept; the
``others`` column shows what remained. Results are printed as markdown and written, with the
raw data as JSON, to ``bench/results/`` (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hotspots
import loadgen

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
NPROC = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
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
TARGET_RPS = 3000.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
TARGET_RATE = 500.0


@dataclass(frozen=True)
class Variant:
    name: str
    experiments: tuple[str, ...] = ()
    #: Engine workers (Settings.concurrency); None keeps the server's default.
    concurrency: int | None = None


# --- processes ----------------------------------------------------------------------------


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


def wait_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until the machine uses < ``threshold`` cores; the wait."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait:
        a = machine_jiffies()
        time.sleep(0.5)
        b = machine_jiffies()
        busy = NPROC * (b[0] - a[0]) / max(b[1] - a[1], 1)
        if busy < threshold:
            break
    return time.monotonic() - start


@dataclass
class Sink:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def count(self) -> int:
        return int(httpx.get(f"{self.url}/_count", timeout=10).json()["count"])

    def connections(self) -> int:
        """Connections the sink has accepted (from the servers' webhook HTTP clients)."""
        return int(httpx.get(f"{self.url}/_count", timeout=10).json()["connections"])

    def arrivals(self) -> dict[str, float]:
        """First arrival time per runId (the key is ``<runId>/<step>``)."""
        found: dict[str, float] = {}
        raw = httpx.get(f"{self.url}/_records", timeout=60).content
        for key, at in orjson.loads(raw):
            run_id = key.split("/", 1)[0]
            if run_id not in found or at < found[run_id]:
                found[run_id] = at
        return found


@contextlib.contextmanager
def sink_process(work: Path) -> Iterator[Sink]:
    port = free_port()
    with open(work / "sink.log", "wb") as log:
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
        """A webhook provider pointing at the sink, the published BENCH template, a warm-up."""
        provider = {
            "provider": "webhook",
            "settings": {"url": f"{sink.url}/hook", "method": "POST"},
        }
        self.client.post("/providers", json=provider).raise_for_status()
        self.client.post("/notifications", json=TEMPLATE).raise_for_status()
        # Warm the provider pool, template lookups and the server's connection to the sink.
        base = sink.count()
        for _ in range(20):
            self.client.post("/automations/invoke", json=SEND_BODY).raise_for_status()
        deadline = time.monotonic() + 15
        while sink.count() < base + 20 and time.monotonic() < deadline:
            time.sleep(0.05)


@contextlib.contextmanager
def server_process(
    work: Path, name: str, variant: Variant, args: argparse.Namespace
) -> Iterator[Server]:
    port = free_port()
    key = "rbx_bench_" + secrets.token_hex(8)
    db = work / f"{name}.db"
    cmd = [sys.executable, str(BENCH / "server.py"), "--db", str(db), "--port", str(port)]
    cmd += ["--api-key", key]
    concurrency = variant.concurrency if variant.concurrency is not None else args.concurrency
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    for experiment in variant.experiments:
        cmd += ["--experiment", experiment]
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    with open(work / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        server = Server(port, key, proc)
        try:
            wait_http(f"{server.url}/healthz", 30, proc)
            yield server
        finally:
            server.client.close()
            stop_process(proc)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{db}{suffix}")


# --- CPU accounting -------------------------------------------------------------------------


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
    """Cores used by each party over the window and server CPU microseconds per request.

    ``others`` is what the machine was busy with beyond the benchmark's own processes (other
    users' jobs, kernel threads); a large value means the figures in that row are disturbed.
    """
    wall = max(b.wall - a.wall, 1e-9)
    server = {k: b.server[k] - a.server.get(k, 0.0) for k in b.server}
    busy = NPROC * (b.machine[0] - a.machine[0]) / max(b.machine[1] - a.machine[1], 1)
    cores = {
        "server": server["process"] / wall,
        "server_loop": server["loop"] / wall,
        "server_writer": server["writer"] / wall,
        "server_readers": server["readers"] / wall,
        # wrk is reaped between the marks, so it is the only child counted here.
        "wrk": (b.children - a.children) / wall,
        "sink": (b.sink - a.sink) / wall,
        "loadgen": (b.me - a.me) / wall,
    }
    ours = cores["server"] + cores["wrk"] + cores["sink"] + cores["loadgen"]
    cores["others"] = max(0.0, busy - ours)
    return {
        "machine_busy_cores": busy,
        "cores": cores,
        "server_us_per_request": {
            k: 1e6 * server[k] / max(requests, 1) for k in ("process", "loop", "writer", "readers")
        },
    }


# --- closed loop with wrk -------------------------------------------------------------------


def run_wrk(
    url: str, body: dict[str, Any], key: str, seconds: float, connections: int, work: Path
) -> dict[str, Any]:
    body_file = work / f"body-{secrets.token_hex(4)}.json"
    body_file.write_bytes(orjson.dumps(body))
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_API_KEY": key}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    cmd += ["-s", str(BENCH / "post.lua"), url]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCHJSON "))
    result: dict[str, Any] = json.loads(line[len("BENCHJSON ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["error_count"] = sum(result["errors"].values())
    return result


def wrk_phase(
    server: Server,
    sink: Sink,
    path: str,
    body: dict[str, Any],
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    waited = wait_quiet(args.quiet_wait)
    before = server.stats()
    before_sink = sink.count()
    before_conns = sink.connections()
    mark = cpu_mark(server, sink)
    result = run_wrk(server.url + path, body, server.key, args.duration, args.connections, work)
    end = cpu_mark(server, sink)
    after = server.stats()
    seconds = result["duration_us"] / 1e6
    commits = after["commits"] - before["commits"]
    jobs = after["jobs"] - before["jobs"]
    kinds = {
        k: v - before.get("job_kinds", {}).get(k, 0) for k, v in after.get("job_kinds", {}).items()
    }
    result.update(
        job_kinds={k: v for k, v in kinds.items() if v},
        path=path,
        quiet_wait_s=waited,
        commits=commits,
        jobs=jobs,
        jobs_per_commit=jobs / commits if commits else None,
        jobs_per_request=jobs / result["requests"] if result["requests"] else None,
        delivered_rps=(sink.count() - before_sink) / seconds,
        sink_connections=sink.connections() - before_conns,
        backlog_at_end=after["backlog"],
        cpu=cpu_report(mark, end, result["requests"]),
    )
    return result


def drain(server: Server, sink: Sink, expected: int, timeout: float) -> dict[str, Any]:
    """Wait until the sink has seen ``expected`` deliveries in all (bounded); the drain."""
    start = time.monotonic()
    first = count = sink.count()
    while count < expected and time.monotonic() - start < timeout:
        time.sleep(0.25)
        count = sink.count()
    took = time.monotonic() - start
    return {
        "drained": count >= expected,
        "seconds": took,
        "rate": (count - first) / took if took > 0 and count > first else None,
        "missing": max(0, expected - count),
        "backlog": server.stats()["backlog"],
    }


def _say(variant: Variant, what: str, row: dict[str, Any]) -> None:
    cores = row["cpu"]["cores"]
    print(
        f"  [{variant.name}] {what}: {row['rps']:,.0f} req/s, p99 "
        f"{row['latency_us']['p99'] / 1000:.1f} ms, errors {row['error_count']}, "
        f"other load {cores['others']:.2f} cores",
        flush=True,
    )


#: Rows of the closed loop on one server, alternated --repeat times.
CLOSED_LOOP = (
    ("raw no-op", "/bench/raw-noop"),
    ("no-op", "/bench/noop"),
    ("delay", "/automations/invoke"),
)


def least_disturbed(
    measure: Callable[[], dict[str, Any]], args: argparse.Namespace, what: str
) -> dict[str, Any]:
    """Measure; while other processes used more than ``--max-others`` cores during the
    measurement, measure again (at most ``--retries`` times) and keep the least disturbed."""
    best: dict[str, Any] | None = None
    for attempt in range(1, args.retries + 2):
        row = measure()
        row["attempt"] = attempt
        others = row["cpu"]["cores"]["others"]
        if best is None or others < best["cpu"]["cores"]["others"]:
            best = row
        if others <= args.max_others:
            break
        if attempt <= args.retries:
            print(f"    {what}: other processes used {others:.2f} cores; again", flush=True)
    assert best is not None
    return best


def closed_loop(
    variant: Variant, args: argparse.Namespace, work: Path, sink: Sink
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    tag = variant.name.replace(" ", "-")
    with server_process(work, f"closed-{tag}", variant, args) as server:
        server.setup(sink)
        for _, path in CLOSED_LOOP:
            run_wrk(server.url + path, DELAY_BODY, server.key, args.warmup, args.connections, work)
        for rep in range(1, args.repeat + 1):
            for name, path in CLOSED_LOOP:
                row = least_disturbed(
                    lambda path=path: wrk_phase(server, sink, path, DELAY_BODY, args, work),
                    args,
                    name,
                )
                row.update(variant=variant.name, name=name, rep=rep)
                _say(variant, f"{name} #{rep}", row)
                rows.append(row)

    def send() -> dict[str, Any]:
        with server_process(work, f"closed-send-{tag}", variant, args) as server:
            server.setup(sink)
            base = sink.count()
            row = wrk_phase(server, sink, "/automations/invoke", SEND_BODY, args, work)
            acked = row["requests"] - row["errors"]["status"]
            row["drain"] = drain(server, sink, base + acked, args.drain_timeout)
        return row

    row = least_disturbed(send, args, "send")
    row.update(variant=variant.name, name="send", rep=1)
    _say(variant, "send", row)
    rows.append(row)
    return rows


# --- open loop ------------------------------------------------------------------------------


def latency_phase(
    variant: Variant, rate: float, args: argparse.Namespace, work: Path, sink: Sink
) -> dict[str, Any]:
    tag = variant.name.replace(" ", "-")
    with server_process(work, f"open-{tag}-{rate:g}", variant, args) as server:
        server.setup(sink)
        waited = wait_quiet(args.quiet_wait)
        base = sink.count()
        base_conns = sink.connections()
        mark = cpu_mark(server, sink)
        client = loadgen.RawClient(HOST, server.port, server.key, "/automations/invoke")

        def body_for(i: int) -> bytes:
            return orjson.dumps({**SEND_BODY, "data": {"n": i}})

        records = asyncio.run(
            loadgen.open_loop(
                client,
                rate,
                args.warmup + args.latency_duration,
                body_for,
                prewarm=min(256, max(16, int(rate * 0.02))),
            )
        )
        end = cpu_mark(server, sink)
        ok = [r for r in records if r.status == 200 and r.run_id]
        drained = drain(server, sink, base + len(ok), args.drain_timeout)
        sink_connections = sink.connections() - base_conns
        arrivals = sink.arrivals()
    cutoff = records[0].scheduled + args.warmup if records else 0.0
    window = [r for r in records if r.scheduled >= cutoff]
    measured = [r for r in window if r.status == 200 and r.run_id]
    delivered = [(r, arrivals[r.run_id]) for r in measured if r.run_id in arrivals]
    span = window[-1].scheduled - window[0].scheduled if len(window) > 1 else 0.0
    missing = len(measured) - len(delivered)
    row = {
        "variant": variant.name,
        "rate": rate,
        "quiet_wait_s": waited,
        "sent": len(window),
        "achieved_rps": (len(window) - 1) / span if span > 0 else None,
        "errors": len(window) - len(measured),
        "delivered": len(delivered),
        "not_delivered": len(measured) - len(delivered),
        "ack_ms": loadgen.percentiles([1e3 * (r.acked - r.sent) for r in measured], (50, 99)),
        # A run not delivered by the end of the drain counts as infinitely late.
        "provider_ms": loadgen.percentiles(
            [1e3 * (t - r.sent) for r, t in delivered] + [math.inf] * missing, (50, 95, 99)
        ),
        "provider_from_schedule_ms": loadgen.percentiles(
            [1e3 * (t - r.scheduled) for r, t in delivered] + [math.inf] * missing, (50, 99)
        ),
        "gen_lag_ms": loadgen.percentiles([1e3 * (r.sent - r.scheduled) for r in window], (50, 99)),
        "connections": client.opened,
        "resent_on_closed_connection": client.retried,
        "error_statuses": dict(collections.Counter(r.status for r in window if r.status != 200)),
        "sink_connections": sink_connections,
        "drain": drained,
        "cpu": cpu_report(mark, end, len(records)),
    }
    p = row["provider_ms"]
    print(
        f"  [{variant.name}] {rate:g}/s: invoke→provider p50 {_f(p['p50'])} p99 {_f(p['p99'])} "
        f"ms, delivered {row['delivered']}/{len(measured)}, other load "
        f"{row['cpu']['cores']['others']:.2f} cores",
        flush=True,
    )
    return row


# --- profiling ------------------------------------------------------------------------------


def _spy(pid: int, seconds: int, raw: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("  py-spy not found (pip install py-spy); skipping the profile", flush=True)
        return None
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    cmd += ["--format", "raw", "--threads", "--nonblocking", "-o", str(raw)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _finish(spy: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        spy.wait(timeout=timeout)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()


def profile_phases(args: argparse.Namespace, work: Path, sink: Sink) -> dict[str, Any]:
    """py-spy on a stock server: (1) ingest, wrk invoking one-delay automations; (2) delivery,
    the engine draining a backlog of one-send runs with no invokes coming in."""
    seconds = max(3, int(args.profile_seconds))
    found: dict[str, Any] = {}
    invoke = "/automations/invoke"
    with server_process(work, "profile", Variant("stock"), args) as server:
        server.setup(sink)
        run_wrk(server.url + invoke, DELAY_BODY, server.key, 2, args.connections, work)
        raw = args.out / f"{args.stamp}-profile-ingest.txt"
        spy = _spy(server.proc.pid, seconds, raw)
        if spy is None:
            return found
        run_wrk(server.url + invoke, DELAY_BODY, server.key, seconds + 1, args.connections, work)
        _finish(spy, 30)
        if raw.exists():
            found["ingest: wrk invoking one-delay automations"] = hotspots.summarise(
                raw.read_text()
            )
        # Build a backlog of send runs, then sample only the engine delivering it.
        run_wrk(server.url + invoke, SEND_BODY, server.key, seconds + 4, args.connections, work)
        raw = args.out / f"{args.stamp}-profile-delivery.txt"
        before = sink.count()
        mark = cpu_mark(server, sink)
        spy = _spy(server.proc.pid, seconds, raw)
        if spy is None:
            return found
        _finish(spy, seconds + 30)
        end = cpu_mark(server, sink)
        delivered = sink.count() - before
        if raw.exists():
            summary = hotspots.summarise(raw.read_text())
            summary["deliveries_per_s"] = delivered / (end.wall - mark.wall)
            summary["cpu"] = cpu_report(mark, end, delivered)
            summary["backlog_left"] = server.stats()["backlog"]
            found["delivery: engine draining a backlog of one-send runs"] = summary
    print(f"  profiles written to {args.out}/{args.stamp}-profile-*.txt", flush=True)
    return found


# --- report ---------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    versions = []
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "orjson"):
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{package} {version(package)}")
    return {
        "nproc": str(NPROC),
        "cpu": model,
        "memory_gb": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": " ".join((wrk.stdout or wrk.stderr).split()[:2]),
        "packages": ", ".join(versions),
        "tmpdir": tempfile.gettempdir(),
        "source": source_revision(),
    }


def snapshot_source(work: Path) -> str:
    """Copy src/relaybox into ``work/src`` (servers import it from there through PYTHONPATH),
    so that edits made to the tree while the benchmark runs do not mix into one run; return
    a digest of the copy."""
    source = BENCH.parent / "src" / "relaybox"
    target = work / "src" / "relaybox"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted(target.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(target)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def source_revision() -> str:
    """The commit measured, and whether src/ had uncommitted changes (read-only git calls)."""
    root = BENCH.parent

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line]
    return f"{head}" + (f" + uncommitted changes in {len(dirty)} src/ files" if dirty else "")


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    if value is None:
        return "-"
    return "undelivered" if math.isinf(value) else fmt.format(value)


def closed_summary(rows: list[dict[str, Any]], variant: str) -> dict[str, Any]:
    noop = [r for r in rows if r["variant"] == variant and r["name"] == "no-op"]
    delay = [r for r in rows if r["variant"] == variant and r["name"] == "delay"]
    send = next((r for r in rows if r["variant"] == variant and r["name"] == "send"), None)
    pairs = [d["rps"] / n["rps"] for n, d in zip(noop, delay, strict=False) if n["rps"]]
    best_noop = max((r["rps"] for r in noop), default=None)
    best_delay = max((r["rps"] for r in delay), default=None)
    return {
        "best_noop": best_noop,
        "best_delay": best_delay,
        "ratio_of_best": best_delay / best_noop if best_noop and best_delay else None,
        "median_pair_ratio": statistics.median(pairs) if pairs else None,
        "send": send,
    }


def _closed_table(results: dict[str, Any]) -> list[str]:
    args = results["args"]
    lines = [
        f"**Closed loop** — wrk -t1 -c{args['connections']}, {args['duration']:g} s per row, "
        "SQLite WAL + synchronous=FULL, fresh database per server.\n",
        "| Server | Endpoint | # | req/s | vs no-op | p50 ms | p99 ms | errors | jobs/commit "
        "| server CPU µs/req: all (loop / writer) | cores: server / wrk / sink / others |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "raw no-op": "`POST /bench/raw-noop` (floor: uvicorn only)",
        "no-op": "`POST /bench/noop` (reference)",
        "delay": "invoke, 1 delay step",
        "send": "invoke, 1 send step",
    }
    noop_by_rep: dict[tuple[str, int], float] = {}
    for r in results["wrk"]:
        if r["name"] == "no-op":
            noop_by_rep[(r["variant"], r["rep"])] = r["rps"]
    for r in results["wrk"]:
        ref = noop_by_rep.get((r["variant"], r["rep"])) or noop_by_rep.get((r["variant"], 1))
        per = r["cpu"]["server_us_per_request"]
        c = r["cpu"]["cores"]
        lines.append(
            f"| {r['variant']} | {labels[r['name']]} | {r['rep']} | {r['rps']:,.0f} "
            f"| {_f(r['rps'] / ref if ref else None, '{:.2f}')} "
            f"| {r['latency_us']['p50'] / 1e3:.1f} | {r['latency_us']['p99'] / 1e3:.1f} "
            f"| {r['error_count']} | {_f(r['jobs_per_commit'])} "
            f"| {per['process']:.0f} ({per['loop']:.0f} / {per['writer']:.0f}) "
            f"| {c['server']:.2f} / {c['wrk']:.2f} / {c['sink']:.2f} / {c['others']:.2f} |"
        )
    for r in results["wrk"]:
        if r["job_kinds"] and r["rep"] == 1:
            per = ", ".join(
                f"{k} {v / max(r['requests'], 1):.2f}" for k, v in sorted(r["job_kinds"].items())
            )
            lines.append(f"\n[{r['variant']}] {labels[r['name']]}: writer jobs per request: {per}.")
    for r in results["wrk"]:
        if r["name"] != "send":
            continue
        d = r["drain"]
        tail = "" if d["drained"] else f"; {d['missing']:,} still undelivered"
        lines.append(
            f"\n[{r['variant']}] invoke with 1 send: while wrk ran, the sink received "
            f"{r['delivered_rps']:,.0f} webhooks/s (on {r['sink_connections']:,} new "
            f"connections) against {r['rps']:,.0f} invokes/s acked; {r['backlog_at_end']:,} "
            "runs were queued in the engine at the end; the drain "
            f"afterwards (no invokes) delivered {_f(d['rate'], '{:,.0f}')}/s for "
            f"{d['seconds']:.0f} s{tail}."
        )
    return lines


def _open_table(results: dict[str, Any]) -> list[str]:
    args = results["args"]
    lines = [
        f"\n**Open loop: invoke → provider** — one `send` step, Python open-loop generator, "
        f"{args['latency_duration']:g} s measured after {args['warmup']:g} s warm-up, fresh "
        "server per row. Latency runs from the write of the invoke request to the sink's "
        "arrival time (both `time.time()` on this host); runs still undelivered when the "
        f"drain ({args['drain_timeout']:g} s) ends count as infinitely late.\n",
        "| Server | rate /s | achieved /s | ack p50 / p99 ms | → provider p50 ms | p95 | p99 "
        "| max | delivered / acked | errors | gen lag p99 ms | cores: server / gen+sink / others |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["latency"]:
        p = r["provider_ms"]
        a = r["ack_ms"]
        c = r["cpu"]["cores"]
        acked = r["delivered"] + r["not_delivered"]
        lines.append(
            f"| {r['variant']} | {r['rate']:g} | {_f(r['achieved_rps'], '{:,.0f}')} "
            f"| {_f(a['p50'])} / {_f(a['p99'])} | {_f(p['p50'])} | {_f(p['p95'])} "
            f"| {_f(p['p99'])} | {_f(p['max'])} | {r['delivered']:,} / {acked:,} "
            f"| {r['errors']} | {_f(r['gen_lag_ms']['p99'], '{:.2f}')} "
            f"| {c['server']:.2f} / {c['loadgen'] + c['sink']:.2f} / {c['others']:.2f} |"
        )
    return lines


def _targets(results: dict[str, Any]) -> list[str]:
    lines = [
        "\n**Targets**\n",
        "| Server | durable invokes/s ≥ 3,000 | invoke ≥ 0.5 x no-op | "
        "invoke → provider p99 ≤ 25 ms at 500/s |",
        "|---|---|---|---|",
    ]
    variants = dict.fromkeys([r["variant"] for r in results["wrk"] + results["latency"]])
    for variant in variants:
        s = closed_summary(results["wrk"], variant)
        at = next(
            (r for r in results["latency"] if r["variant"] == variant and r["rate"] == TARGET_RATE),
            None,
        )
        p99 = at["provider_ms"]["p99"] if at else None

        def verdict(ok: bool | None) -> str:
            return "-" if ok is None else ("**met**" if ok else "**not met**")

        rps_ok = None if s["best_delay"] is None else s["best_delay"] >= TARGET_RPS
        ratio_ok = None if s["ratio_of_best"] is None else s["ratio_of_best"] >= TARGET_RATIO
        p99_ok = None if at is None else (p99 is not None and p99 <= TARGET_P99_MS)
        send = s["send"]
        send_note = f"; with a send step {send['rps']:,.0f}" if send else ""
        lines.append(
            f"| {variant} | {verdict(rps_ok)}: {_f(s['best_delay'], '{:,.0f}')} "
            f"(best of runs, delay step{send_note}) "
            f"| {verdict(ratio_ok)}: {_f(s['ratio_of_best'], '{:.2f}')} (best/best; median "
            f"pair {_f(s['median_pair_ratio'], '{:.2f}')}) "
            f"| {verdict(p99_ok)}: {_f(p99)} ms |"
        )
    return lines


def _profiles(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, prof in results["profiles"].items():
        if not prof:
            continue
        packages = ", ".join(f"{k} {v:.0f}%" for k, v in prof["package_self_pct"][:10])
        extra = ""
        if "deliveries_per_s" in prof:
            per = prof["cpu"]["server_us_per_request"]
            extra = (
                f" While sampled: {prof['deliveries_per_s']:,.0f} deliveries/s, server CPU "
                f"{per['process']:,.0f} µs per delivery (loop {per['loop']:,.0f}, writer "
                f"{per['writer']:,.0f}, readers {per['readers']:,.0f})."
            )
        lines += [
            f"\n**py-spy, stock server, {name}** — samples per thread: "
            f"{prof['threads']}. Event loop self time by package: {packages}.{extra}\n",
            "| loop self % | frame |",
            "|---:|---|",
        ]
        lines += [f"| {pct:.1f} | `{frame}` |" for frame, pct in prof["self_pct"][:15]]
        focus = [
            (frame, pct)
            for frame, pct in prof["inclusive_pct"]
            if pct < 60 and any(k in frame for k in FOCUS)
        ]
        lines += ["", "| loop inclusive % | frame |", "|---:|---|"]
        lines += [f"| {pct:.1f} | `{frame}` |" for frame, pct in focus[:20]]
    return lines


#: Frames worth showing with their callees included: Relaybox's own, the outbound HTTP
#: client, and the per-request framework costs found while profiling.
FOCUS = ("relaybox/", "httpx/_client", "connection_pool", "telemetry", "secrets.py", "solve_dep")


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"### Relaybox benchmark, {results['started']}\n",
        f"Command: `{results['command']}`\n",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}, SQLite {m['sqlite']}, {m['wrk']}; {m['packages']}. "
        f"Source: {m['source']}. Database files in {m['tmpdir']}. The server, the load "
        "generator (wrk or Python) and the webhook sink all run on this machine and share "
        f"its {m['nproc']} CPUs.\n",
    ]
    if results["wrk"]:
        lines += _closed_table(results)
    if results["latency"]:
        lines += _open_table(results)
    lines += _targets(results)
    lines += _profiles(results)
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk row")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--repeat", type=int, default=2, help="no-op/invoke alternations")
    parser.add_argument("--rates", default="250,400,500,1000,2000", help="open-loop invokes/s")
    parser.add_argument("--latency-duration", type=float, default=None, help="default: duration")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, not measured")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--quiet-wait", type=float, default=20.0, help="max s to wait for idle")
    parser.add_argument("--concurrency", type=int, default=None, help="engine workers")
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.3,
        help="cores other processes may use during a measurement before it is retried",
    )
    parser.add_argument("--retries", type=int, default=2, help="for disturbed measurements")
    parser.add_argument(
        "--experiments",
        default="",
        help="also run a server with these bench/server.py experiments and/or an engine "
        "worker count, e.g. no-telemetry,buffered-ids,concurrency=8",
    )
    parser.add_argument("--skip-wrk", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy the stock server")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    if args.latency_duration is None:
        args.latency_duration = args.duration
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_wrk and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk); or pass --skip-wrk")
    args.stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [Variant("stock")]
    tokens = [e.strip() for e in args.experiments.split(",") if e.strip()]
    if tokens:
        workers = [int(t.split("=", 1)[1]) for t in tokens if t.startswith("concurrency=")]
        patches = tuple(t for t in tokens if not t.startswith("concurrency="))
        name = "+" + "+".join(tokens)
        variants.append(Variant(name, patches, workers[-1] if workers else None))
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": " ".join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_facts(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "wrk": [],
        "latency": [],
        "profiles": {},
    }
    print(json.dumps(results["machine"], indent=1), flush=True)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    with (
        tempfile.TemporaryDirectory(prefix="relaybox-bench-") as tmp,
        sink_process(Path(tmp)) as sink,
    ):
        work = Path(tmp)
        digest = snapshot_source(work)
        results["machine"]["source"] += f"; servers ran a copy of src/relaybox (sha256 {digest})"
        for variant in variants:
            if not args.skip_wrk:
                print(f"closed loop (wrk), {variant.name} ...", flush=True)
                results["wrk"] += closed_loop(variant, args, work, sink)
            if not args.skip_latency:
                print(f"open loop (invoke → provider), {variant.name} ...", flush=True)
                for rate in rates:
                    row = least_disturbed(
                        lambda rate=rate, variant=variant: latency_phase(
                            variant, rate, args, work, sink
                        ),
                        args,
                        f"{rate:g}/s",
                    )
                    results["latency"].append(row)
        if args.profile and not args.skip_wrk:
            print("profiles (py-spy) ...", flush=True)
            results["profiles"] = profile_phases(args, work, sink)
    text = render(results)
    base = args.out / args.stamp
    base.with_suffix(".md").write_text(text)
    base.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    print("\n" + text)
    print(f"written to {base}.md and {base}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
