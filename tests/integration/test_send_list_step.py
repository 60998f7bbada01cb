"""The send-list executor against real SQLite: paging, one request id, rerun safety."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from fake_service import fake_service

from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.steps.send_list import SendListStep
from relaybox.providers.outbound import OutboundGuard
from relaybox.storage.base import Message, MessageEvent, Subscription
from relaybox.storage.sqlite import SqliteStore

NOW = 1_700_000_000.0
WS = "ws_send_list"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "relaybox.db"))
    await store.open()
    await store.ensure_workspace(WS, NOW)
    subs = [Subscription(WS, "team", f"u{i}", NOW) for i in range(3)]
    await store.subscribe(subs, update_existing=False)
    yield store
    await store.close()


def make_run(spec: dict[str, object]) -> Run:
    steps = (spec,)
    return Run(
        id="run_list",
        workspace_id=WS,
        steps_def=steps,
        steps=new_steps(steps),
        context=RunContext(recipient="owner", data={"a": 1}),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
    )


async def test_rerun_after_a_crash_creates_each_child_once(store: SqliteStore) -> None:
    """A repeated send-list (crash, re-claim) reuses its request id and creates no new children."""
    saved: list[Run] = []

    async def checkpoint(run: Run, m: Sequence[Message], e: Sequence[MessageEvent]) -> None:
        saved.append(run)

    step = SendListStep(store=store, page_size=2)
    run = make_run({"action": "send-list", "list": "team", "template": "T", "data": {"b": 2}})
    first = await step.execute(run, 0, NOW, checkpoint)
    assert isinstance(first.event, StepSucceeded)
    request_id = first.event.message_id
    assert request_id
    assert saved[0].steps[0].message_id == request_id
    # The crash came after the children were stored: the rerun starts from the checkpoint.
    again = await step.execute(saved[0], 0, NOW + 5, checkpoint)
    assert isinstance(again.event, StepSucceeded)
    assert again.event.message_id == request_id
    assert again.event.output == {"list_id": "team", "recipients": 3}
    assert again.event.ref == {
        "status": "PROCESSED",
        "message_id": request_id,
        "list_id": "team",
        "recipients": 3,
    }
    children = await store.claim_due_runs("w", NOW + 10, limit=100, lease_seconds=30)
    assert sorted(c.context.recipient or "" for c in children) == ["u0", "u1", "u2"]
    assert {c.source for c in children} == {"send"}
    spec = children[0].steps_def[0]
    assert spec["action"] == "send"
    message = spec["message"]
    assert (message["template"], message["data"]) == ("T", {"a": 1, "b": 2})
    # Each child's message exists from the start, listed under the one request id.
    for child in children:
        stored = await store.get_message(WS, child.steps[0].message_id or "")
        assert stored is not None
        assert (stored.status, stored.request_id) == ("ENQUEUED", request_id)
        assert stored.recipient == child.context.recipient


async def test_unknown_list_or_missing_template_fails_the_step(store: SqliteStore) -> None:
    """A missing list or template, or a bad data_source, is a permanent step error saying so."""
    step = SendListStep(store=store)

    async def checkpoint(run: Run, m: Sequence[Message], e: Sequence[MessageEvent]) -> None:
        raise AssertionError("nothing is created for a failing step")

    cases = {
        "List nope not found": {"action": "send-list", "list": "nope", "template": "T"},
        "template: Expected a notification template id or alias": {
            "action": "send-list",
            "list": "team",
        },
        "data_source: Invalid URL: webhook.url is required": {
            "action": "send-list",
            "list": "team",
            "template": "T",
            "data_source": {"webhook": {}},
        },
    }
    for error, spec in cases.items():
        result = await step.execute(replace(make_run(spec)), 0, NOW, checkpoint)
        assert isinstance(result.event, StepFailed)
        assert result.event.error == error


async def test_list_pattern_sends_once_to_each_subscriber_of_matching_lists(
    store: SqliteStore,
) -> None:
    """list_pattern "org.*" covers org.a and org.b; a user in both gets one child run."""
    members = {"org.a": ["x", "y"], "org.b": ["y", "z"], "other": ["w"]}
    await store.subscribe(
        [Subscription(WS, lst, u, NOW) for lst, users in members.items() for u in users],
        update_existing=False,
    )

    async def checkpoint(run: Run, m: Sequence[Message], e: Sequence[MessageEvent]) -> None:
        pass

    spec = {"action": "send-list", "list_pattern": "org.*", "template": "T"}
    result = await SendListStep(store=store, page_size=1).execute(
        make_run(spec), 0, NOW, checkpoint
    )
    assert isinstance(result.event, StepSucceeded)
    assert result.event.output == {"list_pattern": "org.*", "lists": 2, "subscriptions": 4}
    children = await store.claim_due_runs("w", NOW + 10, limit=100, lease_seconds=30)
    assert sorted(c.context.recipient or "" for c in children) == ["x", "y", "z"]


async def test_a_rerun_does_not_fetch_again_for_children_already_created(
    store: SqliteStore,
) -> None:
    """data_source: one fetch per subscriber; the re-executed step skips created children."""
    saved: list[Run] = []

    async def checkpoint(run: Run, m: Sequence[Message], e: Sequence[MessageEvent]) -> None:
        saved.append(run)

    with fake_service() as service:
        service.respond = lambda r: (200, {}, {"fetched": r.query["recipient_id"][0]})
        spec = {
            "action": "send-list",
            "list": "team",
            "template": "T",
            "data_source": {
                "webhook": {"url": f"{service.url}/who"},
                "merge_strategy": "overwrite",
            },
        }
        async with httpx.AsyncClient() as http:
            step = SendListStep(
                store=store, http=http, guard=OutboundGuard(["127.0.0.1"]), page_size=2
            )
            first = await step.execute(make_run(spec), 0, NOW, checkpoint)
            again = await step.execute(saved[0], 0, NOW + 5, checkpoint)
        asked = [f"{r.path}?{urlencode(r.query, doseq=True)}" for r in service.requests]
    assert isinstance(first.event, StepSucceeded)
    assert isinstance(again.event, StepSucceeded)
    assert sorted(asked) == [f"/who?recipient_id=u{i}" for i in range(3)]
    assert again.event.output["recipients"] == 3
    children = await store.claim_due_runs("w", NOW + 10, limit=100, lease_seconds=30)
    data = {c.context.recipient: c.steps_def[0]["message"]["data"] for c in children}
    assert data == {f"u{i}": {"a": 1, "fetched": f"u{i}"} for i in range(3)}
