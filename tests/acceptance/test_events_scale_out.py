"""PostgreSQL with separate processes: one API process and two workers on one database.

In-app messages stored by a worker reach the live stream the API process holds (LISTEN/NOTIFY
hint plus re-read), and the workers share the delivery-event outbox (SKIP LOCKED claims)
without delivering any event twice or out of order.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from events_harness import EventStream
from relaybox_harness import (
    LOCAL,
    RelayboxServer,
    Workspace,
    free_port,
    start_webhook_receiver,
    unique,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("RELAYBOX_TEST_BACKEND", "sqlite") != "postgres",
    reason="separate api and worker processes need PostgreSQL",
)


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    base, _, session = postgres_url.rpartition("/")
    name = f"{session}_events_{secrets.token_hex(3)}"[:63]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_worker_writes_reach_the_api_stream_and_events_go_out_once(
    database: str, tmp_path: Path
) -> None:
    api = RelayboxServer(
        db_path=tmp_path / "unused.db",
        api_key="rbx_test_" + secrets.token_urlsafe(16),
        log_path=tmp_path / "api.log",
        database_url=database,
    )
    workers: list[subprocess.Popen[bytes]] = []
    receiver = start_webhook_receiver()
    stream: EventStream | None = None
    ws = Workspace(api, api.api_key)
    try:
        # The API process migrates; then the workers start on the migrated database.
        api.port = free_port()
        env = api.env()
        api.process = _spawn(
            ["api", "--host", LOCAL, "--port", str(api.port)], database, env, api.log_path
        )
        wait_for(_healthy(api), what="the API process", timeout=30)
        workers = [_spawn(["worker"], database, env, tmp_path / f"worker{i}.log") for i in range(2)]
        ws.client().providers.create(provider="inbox", settings={})
        with ws.http() as http:
            created = http.post("/webhooks", json={"url": receiver.url})
            assert created.status_code == 201, created.text
        user = unique("remote")
        stream = EventStream(ws, user)
        assert stream.next("unread", timeout=20) == {"unreadCount": 0}

        sent = []
        for n in range(5):
            response = ws.client().send.message(
                message={
                    "to": {"user_id": user},
                    "content": {"title": f"Note {n}", "body": "Body"},
                    "routing": {"method": "single", "channels": ["inbox"]},
                }
            )
            sent.append(str(response.request_id))
        live = {stream.next("message", timeout=30)["messageId"] for _ in sent}
        assert live == set(sent)

        def all_acknowledged() -> bool:
            return sum(len(receiver.acknowledged(m)) for m in sent) >= 15

        wait_for(all_acknowledged, what="the 15 events", timeout=30)
        # Whichever process delivered them, the endpoint received each message's events in
        # the order they happened (one dispatcher at a time holds an endpoint).
        for message_id in sent:
            assert receiver.acknowledged(message_id) == ["ENQUEUED", "ROUTED", "SENT"]
        with receiver.lock:
            per_event = Counter(r.headers["Idempotency-Key"] for r in receiver.requests)
        assert len(per_event) == 15
        assert set(per_event.values()) == {1}
    finally:
        if stream is not None:
            stream.close()
        ws.close()
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=20)
        api.stop()
        receiver.stop()


def _spawn(
    role: list[str], database: str, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """A relaybox process whose output goes to ``log`` (the child keeps its own handle)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relaybox", *role, "--database-url", database],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _healthy(server: RelayboxServer) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe
