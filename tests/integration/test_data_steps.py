"""fetch-data and invoke executors against a real HTTP server on 127.0.0.1 and real SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.expressions import Sandbox
from relaybox.engine.steps.fetch_data import FetchDataStep
from relaybox.engine.steps.invoke import InvokeStep
from relaybox.providers.outbound import OutboundGuard
from relaybox.storage.base import Message, MessageEvent, Resource, RunFilter
from relaybox.storage.sqlite import SqliteStore

NOW = 1_700_000_000.0
WS = "ws_steps"


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """/json answers {"plan": "pro"}; /slow sleeps 2 s; /big sends 64 KiB of JSON."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/slow":
                time.sleep(2)
            body = b'{"plan": "pro"}'
            if self.path == "/big":
                body = b'{"pad": "' + b"x" * 65_536 + b'"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make_run(*steps: dict[str, Any], data: dict[str, Any] | None = None) -> Run:
    return Run(
        id="run_parent",
        workspace_id=WS,
        steps_def=tuple(steps),
        steps=new_steps(tuple(steps)),
        context=RunContext(recipient="u1", data=data or {"plan": "basic", "keep": 1}),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
    )


async def no_checkpoint(run: Run, m: Sequence[Message], e: Sequence[MessageEvent]) -> None:
    raise AssertionError("these steps have nothing to checkpoint")


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("replace", {"plan": "pro"}),
        ("overwrite", {"plan": "pro", "keep": 1}),
        ("soft-merge", {"plan": "basic", "keep": 1}),
        ("none", {"plan": "basic", "keep": 1}),
    ],
)
async def test_fetch_merges_the_response_by_strategy(
    http: httpx.AsyncClient, http_server: str, strategy: str, expected: dict[str, Any]
) -> None:
    """Each merge_strategy combines the JSON response with data as Courier documents."""
    step = FetchDataStep(http=http, guard=OutboundGuard(allow=["127.0.0.1"]))
    spec = {"action": "fetch-data", "webhook": {"url": f"{http_server}/json"}}
    run = make_run({**spec, "merge_strategy": strategy})
    result = await step.execute(run, 0, NOW, no_checkpoint)
    assert isinstance(result.event, StepSucceeded)
    assert result.event.ref == {"plan": "pro"}
    assert result.context is not None
    assert result.context.data == expected


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        ("/slow", {"timeout": 0.3}, "no response within 0.3 s"),
        ("/big", {"max_response_bytes": 1024}, "response larger than 1024 bytes"),
    ],
)
async def test_fetch_time_and_size_caps_are_recorded_failures(
    http: httpx.AsyncClient, http_server: str, path: str, options: dict[str, Any], message: str
) -> None:
    """A slow or oversized response is a failure that lets the run continue."""
    step = FetchDataStep(http=http, guard=OutboundGuard(allow=["127.0.0.1"]), **options)
    run = make_run({"action": "fetch-data", "webhook": {"url": f"{http_server}{path}"}})
    started = time.monotonic()
    result = await step.execute(run, 0, NOW, no_checkpoint)
    assert time.monotonic() - started < 1.5
    assert isinstance(result.event, StepFailed)
    assert result.event.continue_run
    assert message in result.event.error


async def test_fetch_refuses_loopback_unless_allow_listed(
    http: httpx.AsyncClient, http_server: str
) -> None:
    """Without an allow list the guard refuses 127.0.0.1 before connecting."""
    step = FetchDataStep(http=http, guard=OutboundGuard())
    run = make_run({"action": "fetch-data", "webhook": {"url": f"{http_server}/json"}})
    result = await step.execute(run, 0, NOW, no_checkpoint)
    assert isinstance(result.event, StepFailed)
    assert "loopback" in result.event.error


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "steps.db"))
    await store.open()
    await store.ensure_workspace(WS, NOW)
    await store.put_resource(
        Resource(
            workspace_id=WS,
            kind="automation",
            id="child",
            alias="child-alias",
            created_at=NOW,
            updated_at=NOW,
            draft={
                "steps": [{"action": "delay", "duration": "1 hour"}],
                "cancelation_token": "${`kid-${data.n}`}",
            },
        )
    )
    await store.publish_resource(WS, "automation", "child", NOW)
    yield store
    await store.close()


async def test_invoke_creates_one_child_even_when_the_step_is_repeated(
    store: SqliteStore,
) -> None:
    """Re-running an invoke step (retry, re-claim) finds its child instead of starting another."""
    sandbox = Sandbox()
    step = InvokeStep(store=store, sandbox=sandbox)
    spec = {"action": "invoke", "template": "child-alias", "context": {"data": {"n": 7}}}
    run = make_run(spec)
    first = await step.execute(run, 0, NOW, no_checkpoint)
    again = await step.execute(run, 0, NOW + 5, no_checkpoint)
    assert isinstance(first.event, StepSucceeded)
    assert isinstance(again.event, StepSucceeded)
    assert first.event.output is not None
    assert again.event.output == first.event.output
    assert first.wake
    assert not again.wake
    page = await store.list_runs(WS, RunFilter(template_ids=("child",)), cursor=None, limit=10)
    (child,) = page.runs
    assert child.id == first.event.output["run_id"]
    assert child.context.data == {"n": 7}
    assert child.cancelation_token == "kid-7"
    assert child.due_at == NOW
    sandbox.close()


async def test_invoke_of_an_unpublished_or_unknown_automation_fails(store: SqliteStore) -> None:
    """Only published automations can be invoked; anything else is a permanent step error."""
    await store.put_resource(
        Resource(
            workspace_id=WS,
            kind="automation",
            id="draft",
            created_at=NOW,
            updated_at=NOW,
            draft={"steps": []},
        )
    )
    step = InvokeStep(store=store)
    for template in ("draft", "nope"):
        result = await step.execute(
            make_run({"action": "invoke", "template": template}), 0, NOW, no_checkpoint
        )
        assert isinstance(result.event, StepFailed)
        assert not result.event.retryable
        assert result.event.error == f"Automation template {template} not found"
