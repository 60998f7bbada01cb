"""Scale-out on PostgreSQL: one API process, three workers, one killed with SIGKILL mid-way."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import pytest

KEY = "rbx_scale_out_test_key"
RUNS = 2000


class Sink:
    """A webhook receiver that deduplicates on Idempotency-Key, as a real downstream would."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with sink.lock:
                    sink.deliveries[self.headers.get("Idempotency-Key", "")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A fresh database for this test only (the session database is shared)."""
    name = f"relaybox_scale_{os.getpid()}"
    admin_url = postgres_url.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rpartition("/")[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _spawn(role: str, url: str, log: Path, port: int | None = None) -> subprocess.Popen[bytes]:
    """Start a relaybox process whose output goes to ``log`` (the handle closes with it)."""
    env = {
        **os.environ,
        "RELAYBOX_DATABASE_URL": url,
        "RELAYBOX_API_KEY": KEY,
        "RELAYBOX_OUTBOUND_ALLOW": "127.0.0.1",
        # Short leases so the killed worker's runs are resumed within seconds.
        "RELAYBOX_LEASE_SECONDS": "3",
        "RELAYBOX_LOG_LEVEL": "warning",
    }
    args = [sys.executable, "-m", "relaybox", role]
    if port is not None:
        args += ["--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_healthy(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("API process did not become healthy")


def _setup(base: str, sink: Sink) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    hook = {"url": f"http://127.0.0.1:{sink.port}/hook", "method": "POST"}
    r = httpx.post(
        f"{base}/providers", headers=headers, json={"provider": "webhook", "settings": hook}
    )
    assert r.status_code == 201, r.text
    content = {"version": "2022-01-01", "elements": [{"type": "text", "content": "{{n}}"}]}
    for alias in ("ORDER_CONFIRMATION", "SHIPPING_UPDATE"):
        note = {
            "name": alias,
            "alias": alias,
            "tags": [],
            "brand": None,
            "routing": None,
            "subscription": None,
            "content": content,
        }
        r = httpx.post(
            f"{base}/notifications",
            headers=headers,
            json={"notification": note, "state": "PUBLISHED"},
        )
        assert r.status_code == 201, r.text


async def _invoke_all(base: str) -> list[str]:
    body = {
        "automation": {
            "steps": [
                {"action": "send", "template": "ORDER_CONFIRMATION"},
                {"action": "delay", "duration": "2 seconds"},
                {"action": "send", "template": "SHIPPING_UPDATE"},
            ]
        },
        "data": {"n": 1},
    }
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            # As a careful client does: a request whose answer was lost (a connection the
            # loaded server dropped) is sent again under the same Idempotency-Key, which
            # returns the run the first attempt created rather than a second one.
            headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": f"chaos-{i}"}
            async with sem:
                for attempt in range(3):
                    try:
                        r = await client.post(
                            "/automations/invoke",
                            json={**body, "recipient": f"u{i}"},
                            headers=headers,
                        )
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                assert r.status_code == 200, r.text
                return str(r.json()["runId"])

        return await asyncio.gather(*(one(i) for i in range(RUNS)))


def _statuses(url: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        return Counter(dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")))


@pytest.mark.timeout(300)
def test_workers_survive_a_sigkill_without_losing_or_repeating_sends(
    database: str, tmp_path: Path
) -> None:
    """2,000 send→delay→send runs over 1 API + 3 workers finish after one worker is killed."""
    sink = Sink()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert (
            subprocess.run(
                [sys.executable, "-m", "relaybox", "migrate", "--database-url", database],
                check=False,
                capture_output=True,
            ).returncode
            == 0
        )
        procs.append(_spawn("api", database, tmp_path / "api.log", port))
        workers = [_spawn("worker", database, tmp_path / f"w{i}.log") for i in range(3)]
        procs += workers
        _wait_healthy(base, time.monotonic() + 20)
        _setup(base, sink)
        run_ids = asyncio.run(_invoke_all(base))
        assert len(set(run_ids)) == RUNS

        # Kill one worker while runs are mid-flight: some sent once, some waiting, some sending.
        deadline = time.monotonic() + 60
        while sum(sink.deliveries.values()) < RUNS // 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            statuses = _statuses(database)
            if statuses.get("PROCESSED", 0) == RUNS:
                break
            time.sleep(0.25)
        statuses = _statuses(database)
        assert statuses == Counter({"PROCESSED": RUNS}), statuses

        expected = {f"{run}/{step}" for run in run_ids for step in (0, 2)}
        assert set(sink.deliveries) == expected
        # A resend happens only for an attempt the killed worker had in flight, always with
        # the same key, so the receiver's deduplication makes every send count once.
        repeated = {k: n for k, n in sink.deliveries.items() if n > 1}
        assert len(repeated) <= 64, repeated
        with psycopg.connect(database) as conn:
            sent_per_message = conn.execute(
                "SELECT m.id, COUNT(e.seq) FROM messages m JOIN message_events e "
                "ON e.message_id = m.id AND e.type = 'SENT' GROUP BY m.id"
            ).fetchall()
            messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
        assert messages is not None
        assert messages[0] == 2 * RUNS
        assert len(sent_per_message) == 2 * RUNS
        assert all(count == 1 for _, count in sent_per_message), "a send was committed twice"
        print(json.dumps({"repeated_deliveries": len(repeated), "statuses": statuses}))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.close()
