"""A failover chain longer than the engine's generic retry cap: every provider gets its tries.

Three webhook providers, each a real HTTP server on 127.0.0.1; the first two answer 503 to
every call and the third answers 503 twice, then 200. The send is SENT by the third, and the
history holds every one of the nine attempts (backoff timings are unit tested with an
injected clock in tests/unit/test_send_budget.py and tests/unit/test_routed_send.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest
from fake_service import Answer, Received, fake_service
from relaybox_harness import WEBHOOK_SECRET, Workspace, unique


@dataclass
class Failing:
    """A webhook receiver's answers: 503 to its first ``failures`` calls, then 200."""

    failures: int
    statuses: list[int] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, _request: Received) -> Answer:
        with self.lock:
            status = 503 if len(self.statuses) < self.failures else 200
            self.statuses.append(status)
        return status, {}, b""


@pytest.fixture
def chain() -> Iterator[list[Failing]]:
    # The first two never recover; the third does after two 503s.
    servers = [Failing(1_000), Failing(1_000), Failing(2)]
    with ExitStack() as stack:
        for server in servers:
            service = stack.enter_context(fake_service())
            service.respond = server.respond
            server.url = f"{service.url}/hook"
        yield servers


def test_three_failing_webhooks_fail_over_to_the_last_which_delivers(
    new_workspace: Callable[[str], Workspace], chain: list[Failing]
) -> None:
    ws = new_workspace("budget")
    client = ws.client()
    ids = [
        str(
            client.providers.create(
                provider="webhook", settings={"url": s.url, "secret": WEBHOOK_SECRET}
            ).id
        )
        for s in chain
    ]
    response = client.send.message(
        message={
            "to": {"user_id": unique("u")},
            "content": {"title": "Chain", "body": "b"},
            "routing": {"method": "single", "channels": ["webhook"]},
        }
    )
    message_id = response.request_id
    message = ws.wait_message(message_id, "SENT", "UNDELIVERABLE", timeout=40)
    assert message.status == "SENT"
    assert [s.statuses for s in chain] == [[503] * 3, [503] * 3, [503, 503, 200]]
    events = [dict(e) for e in client.messages.history(message_id).results]
    routed = [e["integration"] for e in events if e["type"] == "ROUTED"]
    assert routed == [ids[0]] * 3 + [ids[1]] * 3 + [ids[2]] * 3
    # Every 503 is in the history, the ones after which the chain failed over included.
    retried = [e for e in events if e["type"] == "RETRYING"]
    assert [e["integration"] for e in retried] == [ids[0]] * 3 + [ids[1]] * 3 + [ids[2]] * 2
    assert all("503" in e["error_message"] for e in retried)
    assert not [e for e in events if e["type"] == "UNDELIVERABLE"]
    (sent,) = [e for e in events if e["type"] == "SENT"]
    assert sent["integration"] == ids[2]
    assert events[-1]["type"] == "SENT"
