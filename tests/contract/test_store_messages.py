"""Store contract for POST /send: creating several runs with their messages, listing messages."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from tests.contract.test_store import NOW, OTHER_WS, WS, idem, make_message, make_run

from relaybox.errors import ValidationError
from relaybox.storage.base import Message, MessageEvent, MessageFilter, RunFilter, Store


async def seed(store: Store, *messages: Message) -> None:
    """Store messages (each with an ENQUEUED event) without runs."""
    for message in messages:
        await store.save_message(message, [MessageEvent(message.id, NOW, "ENQUEUED")])


def msg(message_id: str, at: float, **kw: Any) -> Message:
    """A message enqueued ``at`` seconds after NOW."""
    recipient = kw.pop("recipient", "user_1")
    return replace(make_message(message_id, **kw), enqueued_at=NOW + at, recipient=recipient)


async def test_create_runs_stores_runs_messages_and_events_together(store: Store) -> None:
    """Every run and message of one send is stored by one call; runs are claimable."""
    runs = [make_run("run_a"), make_run("run_b")]
    messages = [msg("m_a", 0, run_id="run_a"), msg("m_b", 0, run_id="run_b")]
    events = [MessageEvent("m_a", NOW, "ENQUEUED"), MessageEvent("m_b", NOW, "ENQUEUED")]
    replay = await store.create_runs(runs, messages=messages, events=events, lease_owner=None)
    assert replay is None
    assert {r.id for r in await store.claim_due_runs("w", NOW, limit=10, lease_seconds=30)} == {
        "run_a",
        "run_b",
    }
    assert await store.get_message(WS, "m_b") == messages[1]
    assert [e.type for e in await store.message_events(WS, "m_a")] == ["ENQUEUED"]


async def test_create_runs_replays_an_idempotency_key(store: Store) -> None:
    """A second call with the same key creates nothing and returns the first response."""
    write = idem("send-1", body=b'{"requestId":"m_1"}')
    first = await store.create_runs(
        [make_run("run_1")],
        messages=[msg("m_1", 0)],
        events=[],
        lease_owner=None,
        idempotency=write,
    )
    assert first is None
    second = await store.create_runs(
        [make_run("run_2")],
        messages=[msg("m_2", 0)],
        events=[],
        lease_owner=None,
        idempotency=replace(write, body=b'{"requestId":"m_2"}'),
    )
    assert second is not None
    assert second.body == b'{"requestId":"m_1"}'
    assert await store.get_message(WS, "m_2") is None
    assert await store.get_run(WS, "run_2") is None


async def test_list_messages_newest_first_with_cursor(store: Store) -> None:
    """Pages run newest first; the cursor continues where the last page ended."""
    await seed(store, *(msg(f"m_{i}", i) for i in range(5)), msg("m_x", 9, ws=OTHER_WS))
    first = await store.list_messages(WS, MessageFilter(), cursor=None, limit=2)
    assert [m.id for m in first.messages] == ["m_4", "m_3"]
    assert first.next_cursor is not None
    second = await store.list_messages(WS, MessageFilter(), cursor=first.next_cursor, limit=2)
    third = await store.list_messages(WS, MessageFilter(), cursor=second.next_cursor, limit=2)
    assert [m.id for m in second.messages] == ["m_2", "m_1"]
    assert [m.id for m in third.messages] == ["m_0"]
    assert third.next_cursor is None


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (MessageFilter(statuses=("SENT", "DELAYED")), ["m_3", "m_1"]),
        (MessageFilter(tags=("b%",)), ["m_2"]),
        (MessageFilter(tags=("a", "zz")), ["m_2", "m_1"]),
        (MessageFilter(trace_id="t1"), ["m_1"]),
        (MessageFilter(recipient="bob"), ["m_3"]),
        (MessageFilter(message_id="m_2"), ["m_2"]),
        (MessageFilter(providers=("webhook",)), ["m_3"]),
        (MessageFilter(enqueued_after=NOW + 1.5), ["m_3", "m_2"]),
    ],
)
async def test_list_messages_filters(store: Store, flt: MessageFilter, expected: list[str]) -> None:
    """Each GET /messages filter narrows the listing (tags match any; % is literal)."""
    await seed(
        store,
        msg("m_1", 1, status="SENT", tags=("a",), trace_id="t1"),
        msg("m_2", 2, tags=("a", "b%")),
        msg("m_3", 3, status="DELAYED", recipient="bob", provider="webhook"),
    )
    page = await store.list_messages(WS, flt, cursor=None, limit=10)
    assert [m.id for m in page.messages] == expected


async def test_list_messages_rejects_foreign_cursor(store: Store) -> None:
    """A cursor this store did not issue is a ValidationError."""
    with pytest.raises(ValidationError):
        await store.list_messages(WS, MessageFilter(), cursor="garbage!", limit=2)


async def test_send_runs_are_not_listed_as_automation_runs(store: Store) -> None:
    """Runs with source 'send' stay out of the automation runs listing."""
    await store.create_runs(
        [replace(make_run("run_send"), source="send"), make_run("run_auto")],
        messages=[],
        events=[],
        lease_owner=None,
    )
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=10)
    assert [r.id for r in page.runs] == ["run_auto"]


async def test_key_mode_live_by_default_and_test_when_asked(store: Store) -> None:
    """Keys are live unless created as test keys; unknown keys have no mode."""
    await store.add_api_key(WS, "hash_live", "rbx_live", NOW)
    await store.add_api_key(WS, "hash_test", "rbx_test", NOW, mode="test")
    assert await store.key_mode("hash_live") == "live"
    assert await store.key_mode("hash_test") == "test"
    assert await store.key_mode("hash_unknown") is None
    assert await store.workspace_for_key("hash_test") == WS


async def test_concurrent_creates_with_one_key_create_once(store: Store) -> None:
    """Simultaneous writes sharing an idempotency key create exactly one set of runs."""
    write = idem("race", body=b'{"requestId":"first"}')
    results = await asyncio.gather(
        *(
            store.create_runs(
                [make_run(f"run_{i}")],
                messages=[msg(f"m_{i}", 0)],
                events=[],
                lease_owner=None,
                idempotency=write,
            )
            for i in range(8)
        )
    )
    assert sum(r is None for r in results) == 1
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=10)
    assert len(page.runs) == 1
