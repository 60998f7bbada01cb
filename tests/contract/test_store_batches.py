"""Store contract for throttle counters and batches: exact under concurrency on every backend."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.errors import StaleLease, StorageError
from relaybox.storage.base import BatchJoin, Store

NOW = 1_700_000_000.0
WS = "ws_alpha"
OTHER_WS = "ws_beta"
T = TypeVar("T")
N_JOINS = int(os.environ.get("N_JOINS", "1000"))


async def retried(call: Callable[[], Awaitable[T]]) -> T:
    """PostgreSQL may pick a write as a deadlock victim; it is rolled back alone, so retry."""
    for _ in range(20):
        try:
            return await call()
        except StorageError:
            await asyncio.sleep(0.01)
    return await call()


def join(store: Store, key: str, run_id: str, **kw: Any) -> Callable[[], Awaitable[BatchJoin]]:
    args: dict[str, Any] = {
        "data": {"run": run_id},
        "category": None,
        "now": NOW,
        "wait_seconds": 60.0,
        "max_wait_seconds": 600.0,
        "max_items": None,
        **kw,
    }
    return lambda: store.add_to_batch(WS, key, run_id, 0, **args)


async def test_concurrent_throttle_hits_get_distinct_positions(store: Store) -> None:
    """Sixty concurrent hits on one window get positions 1..60; a repeated step keeps its own."""
    window = NOW - NOW % 60

    def hit(i: int) -> Callable[[], Awaitable[int]]:
        return lambda: store.throttle_hit(WS, "k", window, f"r{i}", 0)

    positions = await asyncio.gather(*(retried(hit(i)) for i in range(60)))
    assert sorted(positions) == list(range(1, 61))
    assert await store.throttle_hit(WS, "k", window, "r7", 0) == positions[7]
    assert await store.throttle_hit(WS, "k", window + 60, "r7", 1) == 1
    assert await store.throttle_hit(OTHER_WS, "k", window, "r7", 0) == 1


async def test_concurrent_joins_open_one_batch_per_key(store: Store) -> None:
    """1,000 concurrent joins over 10 keys: one batch per key, every item once, one carrier."""
    keys = [f"key{i % 10}" for i in range(N_JOINS)]
    joins = await asyncio.gather(*(retried(join(store, k, f"r{i}")) for i, k in enumerate(keys)))
    by_key: dict[str, set[str]] = {}
    for key, j in zip(keys, joins, strict=True):
        by_key.setdefault(key, set()).add(j.batch_id)
    assert all(len(ids) == 1 for ids in by_key.values())
    per_batch = Counter(j.batch_id for j in joins)
    assert sorted(per_batch.values()) == [N_JOINS // 10] * 10
    for batch_id in per_batch:
        mine = [j for j in joins if j.batch_id == batch_id]
        assert sorted(j.seq for j in mine) == list(range(1, N_JOINS // 10 + 1))
        (opener,) = [i for i, j in enumerate(joins) if j.batch_id == batch_id and j.seq == 1]
        assert {j.carrier_run_id for j in mine} == {f"r{opener}"}
        released = await store.release_batch(WS, batch_id, NOW + 60)
        assert released.released
        assert released.count == N_JOINS // 10
        assert sorted(i.data["run"] for i in released.items) == sorted(
            f"r{i}" for i, j in enumerate(joins) if j.batch_id == batch_id
        )


async def test_release_waits_for_the_due_time_and_is_idempotent(store: Store) -> None:
    """Not due: not released; due: released once; later items open the key's next batch."""
    first = await join(store, "k", "a", now=NOW)()
    assert (first.seq, first.status, first.due_at) == (1, "open", NOW + 60)
    second = await join(store, "k", "b", now=NOW + 30)()
    assert (second.batch_id, second.seq, second.due_at) == (first.batch_id, 2, NOW + 90)
    assert await join(store, "k", "b", now=NOW + 40)() == second
    early = await store.release_batch(WS, first.batch_id, NOW + 60)
    assert (early.released, early.due_at) == (False, NOW + 90)
    done = await store.release_batch(WS, first.batch_id, NOW + 90)
    assert [i.data for i in done.items] == [{"run": "a"}, {"run": "b"}]
    assert (await store.release_batch(WS, first.batch_id, NOW + 99)).items == done.items
    nxt = await join(store, "k", "c", now=NOW + 95)()
    assert (nxt.seq, nxt.carrier_run_id) == (1, "c")
    assert nxt.batch_id != first.batch_id


async def test_max_wait_caps_the_due_time(store: Store) -> None:
    """Items keep extending the inactivity window, but never past opened + max_wait."""
    first = await join(store, "cap", "a", now=NOW, max_wait_seconds=100.0)()
    late = await join(store, "cap", "b", now=NOW + 80, max_wait_seconds=100.0)()
    assert (first.due_at, late.due_at) == (NOW + 60, NOW + 100)


async def test_the_item_reaching_max_items_closes_and_wakes_the_carrier(store: Store) -> None:
    """max_items: the filling join marks the batch full and fences the carrier due now."""
    steps = ({"action": "add-to-batch"},)
    carrier = Run(
        id="a",
        workspace_id=WS,
        steps_def=steps,
        steps=new_steps(steps),
        context=RunContext(),
        status=RunStatus.WAITING,
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW + 60,
    )
    created = await store.create_run(carrier, lease_owner="w1", merge_profile=False)
    assert created.run is not None
    await join(store, "full", "a", max_items=2)()
    filled = await join(store, "full", "b", now=NOW + 1, max_items=2)()
    assert (filled.status, filled.seq, filled.carrier_run_id) == ("full", 2, "a")
    try:
        await store.commit_run(created.run, keep_lease=False)
        raise AssertionError("the carrier's old lease must be fenced off")
    except StaleLease:
        pass
    (claimed,) = await store.claim_due_runs("w2", NOW + 1, limit=10, lease_seconds=30)
    assert claimed.id == "a"
    released = await store.release_batch(WS, filled.batch_id, NOW + 1)
    assert (released.released, released.count) == (True, 2)
    assert (await join(store, "full", "c", now=NOW + 2, max_items=2)()).seq == 1


async def test_a_batch_whose_carrier_finished_is_abandoned_for_a_new_one(store: Store) -> None:
    """A carrier canceled while waiting would never release: the next item opens a new batch."""
    steps = ({"action": "add-to-batch"},)
    carrier = Run(
        id="gone",
        workspace_id=WS,
        steps_def=steps,
        steps=new_steps(steps),
        context=RunContext(),
        status=RunStatus.WAITING,
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW + 60,
    )
    await store.create_run(carrier, lease_owner=None, merge_profile=False)
    first = await join(store, "orphan", "gone")()
    assert (await join(store, "orphan", "b", now=NOW + 1)()).batch_id == first.batch_id
    await store.cancel_run(WS, "gone", NOW + 2)
    fresh = await join(store, "orphan", "c", now=NOW + 3)()
    assert (fresh.carrier_run_id, fresh.seq) == ("c", 1)
    assert fresh.batch_id != first.batch_id
