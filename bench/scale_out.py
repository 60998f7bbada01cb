"""Completed steps per second with 1, 2 and 4 worker processes on one PostgreSQL database.

    python bench/scale_out.py [--workers 1 2 4] [--runs 1500] [--steps 4]

For each worker count: a fresh database, N ``relaybox worker`` processes, a fast webhook sink
(raw ASGI under uvicorn) as the provider, then ``runs`` automations of ``steps`` sends each are
written in one transaction, all due at once. The clock runs from that commit until every run
is PROCESSED. CPU time of the workers, of PostgreSQL and of the sink is read from /proc, so the
report says where the machine's cores went. Prints a markdown table (and writes it to
bench/results/scale_out.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.storage.base import Resource
from relaybox.storage.postgres import PostgresStore

ADMIN = os.environ.get("RELAYBOX_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "relaybox_bench_scale"
HERE = Path(__file__).resolve().parent
SINK = """
import sys
count = 0
async def app(scope, receive, send):
    global count
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    count += 1
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})
"""


@dataclass
class Result:
    workers: int
    steps: int
    seconds: float
    cpu_workers: float
    cpu_postgres: float
    cpu_sink: float
    commits: int

    @property
    def rate(self) -> float:
        return self.steps / self.seconds


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _ticks()


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in {"postgres", "postmaster"}:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _postgres_cpu() -> float:
    return sum(_cpu_seconds(pid) for pid in _postgres_pids())


def _url(name: str) -> str:
    return ADMIN.rpartition("/")[0] + "/" + name


def _fresh_database() -> str:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    return _url(DATABASE)


def _commits(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


async def _seed(url: str, sink_port: int, runs: int, steps: int) -> None:
    """Provider, template and ``runs`` due runs, written straight through the store."""
    store = PostgresStore(url, writer_threads=1, readers=1)
    await store.open()
    now = time.time()
    try:
        settings = {"url": f"http://127.0.0.1:{sink_port}/hook", "method": "POST"}
        await store.put_resource(Resource(
            workspace_id="default", kind="provider", id="prv_sink", created_at=now,
            updated_at=now, name="sink", published_version=1, published_at=now,
            published={"provider": "webhook", "title": "sink", "settings": settings},
        ))  # fmt: skip
        content = {"version": "2022-01-01", "elements": [{"type": "text", "content": "{{n}}"}]}
        await store.put_resource(Resource(
            workspace_id="default", kind="notification", id="nt_bench", alias="BENCH",
            created_at=now, updated_at=now, name="bench", draft={"name": "b", "content": content},
        ))  # fmt: skip
        await store.publish_resource("default", "notification", "nt_bench", now)
        definition = tuple({"action": "send", "template": "BENCH"} for _ in range(steps))
        await asyncio.gather(*(
            store.create_run(Run(
                id=f"run-{i:06d}", workspace_id="default", steps_def=definition,
                steps=new_steps(definition), context=RunContext(data={"n": i}),
                status=RunStatus.PROCESSING, created_at=now, updated_at=now,
                due_at=now + 3600,  # parked: released all at once below
            ), lease_owner=None, merge_profile=False)
            for i in range(runs)
        ))  # fmt: skip
    finally:
        await store.close()


def _release_all(url: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE runs SET due_at = 0; NOTIFY relaybox_due")
    return time.monotonic()


def _processed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'PROCESSED'").fetchone()
    return int(row[0]) if row else 0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def measure(workers: int, runs: int, steps: int, port: int) -> Result:
    url = _fresh_database()
    subprocess.run([sys.executable, "-m", "relaybox", "migrate", "--database-url", url],
                   check=True, capture_output=True)  # fmt: skip
    sink_file = HERE / "results" / "scale_sink.py"
    sink_file.parent.mkdir(exist_ok=True)
    sink_file.write_text(SINK)
    env = {**os.environ, "RELAYBOX_DATABASE_URL": url, "RELAYBOX_OUTBOUND_ALLOW": "127.0.0.1",
           "RELAYBOX_LOG_LEVEL": "warning", "PYTHONPATH": str(sink_file.parent)}  # fmt: skip
    sink = _spawn([sys.executable, "-m", "uvicorn", "scale_sink:app", "--port", str(port),
                   "--log-level", "warning", "--no-access-log", "--loop", "uvloop",
                   "--http", "httptools"], env)  # fmt: skip
    procs = [_spawn([sys.executable, "-m", "relaybox", "worker", "--no-migrate"], env)
             for _ in range(workers)]  # fmt: skip
    try:
        asyncio.run(_seed(url, port, runs, steps))
        time.sleep(2.0)  # workers connected and idle
        cpu_w0 = sum(_cpu_seconds(p.pid) for p in procs)
        cpu_pg0, cpu_sink0, commits0 = _postgres_cpu(), _cpu_seconds(sink.pid), _commits(url)
        start = _release_all(url)
        deadline = start + 600
        while _processed(url) < runs:
            if time.monotonic() > deadline:
                raise RuntimeError("benchmark did not finish in 10 minutes")
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        return Result(
            workers=workers,
            steps=runs * steps,
            seconds=elapsed,
            cpu_workers=sum(_cpu_seconds(p.pid) for p in procs) - cpu_w0,
            cpu_postgres=_postgres_cpu() - cpu_pg0,
            cpu_sink=_cpu_seconds(sink.pid) - cpu_sink0,
            commits=_commits(url) - commits0,
        )
    finally:
        for proc in [*procs, sink]:
            proc.terminate()
        for proc in [*procs, sink]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(ADMIN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    version = row[0] if row else "?"
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"PostgreSQL {version} on the same host")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sink-port", type=int, default=18999)
    args = parser.parse_args()
    results = [measure(n, args.runs, args.steps, args.sink_port) for n in args.workers]
    base = results[0].rate
    lines = [
        f"Machine: {_machine()}. {args.runs} runs x {args.steps} send steps per row.",
        "",
        "| workers | steps | seconds | steps/s | vs 1 worker | CPU s: workers | postgres | sink "
        "| commits | steps/commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.workers} | {r.steps} | {r.seconds:.2f} | {r.rate:,.0f} | {r.rate / base:.2f} "
            f"| {r.cpu_workers:.1f} | {r.cpu_postgres:.1f} | {r.cpu_sink:.1f} | {r.commits} "
            f"| {r.steps / max(1, r.commits):.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    out = HERE / "results" / "scale_out.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
