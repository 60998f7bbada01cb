"""Store contract for the purge of expired throttle windows and old closed batches.

Time is injected (``now`` arguments), and the purge's due time is a row: a round runs only
when due, is bounded by ``limit``, and of several workers racing for it exactly one runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaybox.storage.base import Store

from .conftest import StoreHarness

NOW = 1_700_000_000.0
WS = "ws_purge"
DAY = 86_400.0
HOUR = 3_600.0
RETENTION = 7 * DAY


async def purge(store: Store, now: float, limit: int = 100) -> Any:
    return await store.purge_expired(now, retention=RETENTION, every=HOUR, limit=limit)


async def join(store: Store, key: str, run_id: str, now: float) -> Any:
    return await store.add_to_batch(
        WS,
        key,
        run_id,
        0,
        data={"run": run_id},
        category=None,
        now=now,
        wait_seconds=60.0,
        max_wait_seconds=600.0,
        max_items=None,
    )


async def test_expired_throttle_windows_go_after_the_retention_period(store: Store) -> None:
    """A window is kept until retention after its end; then its counter and hits are gone."""
    old, current, month = NOW - 60, NOW, 30 * DAY
    assert await store.throttle_hit(WS, "k", old, "r1", 0, window_end=old + 60) == 1
    assert await store.throttle_hit(WS, "k", old, "r2", 0, window_end=old + 60) == 2
    assert await store.throttle_hit(WS, "k", current, "r3", 0, window_end=current + month) == 1

    first = await purge(store, NOW + RETENTION - 1)
    assert (first.ran, first.throttle_windows, first.next_due) == (
        True,
        0,
        NOW + RETENTION - 1 + HOUR,
    )
    # Still counted: the same run's step keeps its position.
    assert await store.throttle_hit(WS, "k", old, "r2", 0, window_end=old + 60) == 2

    later = NOW + RETENTION + 2 * HOUR
    done = await purge(store, later)
    assert (done.ran, done.throttle_windows) == (True, 1)
    # Gone: the old window counts from scratch; the month-long one has not ended and stays.
    assert await store.throttle_hit(WS, "k", old, "r9", 0, window_end=old + 60) == 1
    assert await store.throttle_hit(WS, "k", current, "r3", 0, window_end=current + month) == 1
    assert await store.throttle_hit(WS, "k", current, "r4", 0, window_end=current + month) == 2


async def test_a_round_runs_only_when_due(store: Store) -> None:
    """Right after a round nothing is purged until the next due time, whatever has expired."""
    assert (await purge(store, NOW)).ran
    await store.throttle_hit(WS, "k", NOW - DAY * 30, "r1", 0, window_end=NOW - DAY * 29)
    early = await purge(store, NOW + 10)
    assert (early.ran, early.throttle_windows, early.next_due) == (False, 0, NOW + HOUR)
    assert await store.throttle_hit(WS, "k", NOW - DAY * 30, "r1", 0) == 1
    due = await purge(store, NOW + HOUR)
    assert (due.ran, due.throttle_windows) == (True, 1)


async def test_rounds_are_bounded_and_come_due_again_while_rows_are_left(store: Store) -> None:
    """limit=2 over 5 expired windows: 2, 2, 1 in three rounds, each due at once until done."""
    for i in range(5):
        start = NOW - DAY * 30 + i * 60
        await store.throttle_hit(WS, f"k{i}", start, "r", i, window_end=start + 60)
    counts = []
    for _ in range(3):
        round_ = await purge(store, NOW, limit=2)
        assert round_.ran
        counts.append(round_.throttle_windows)
    assert counts == [2, 2, 1]
    assert round_.next_due == NOW + HOUR


async def test_released_and_abandoned_batches_go_open_ones_stay(store: Store) -> None:
    """Closed batches older than retention are deleted with their items; open ones are kept."""
    released = await join(store, "done", "a", NOW)
    await join(store, "done", "b", NOW + 1)
    assert (await store.release_batch(WS, released.batch_id, NOW + 100)).released
    still_open = await join(store, "open", "c", NOW)

    kept = await purge(store, NOW + RETENTION)  # released at NOW + 100: not old enough
    assert (kept.ran, kept.batches) == (True, 0)
    assert (await store.release_batch(WS, released.batch_id, NOW + RETENTION)).count == 2

    gone = await purge(store, NOW + RETENTION + HOUR + 200)
    assert (gone.ran, gone.batches) == (True, 1)
    with pytest.raises(LookupError):
        await store.release_batch(WS, released.batch_id, NOW + RETENTION + HOUR + 300)
    reopened = await store.release_batch(WS, still_open.batch_id, NOW + RETENTION + HOUR + 300)
    assert [i.data for i in reopened.items] == [{"run": "c"}]


async def test_of_several_workers_exactly_one_runs_a_round(harness: StoreHarness) -> None:
    """Four stores over one database race for the same due round: one runs it."""
    stores = [await harness.open() for _ in range(4)]
    for i in range(3):
        start = NOW - DAY * 30 + i * 60
        await stores[0].throttle_hit(WS, "k", start, "r", i, window_end=start + 60)
    rounds = await asyncio.gather(*(purge(s, NOW) for s in stores))
    assert sorted(r.ran for r in rounds) == [False, False, False, True]
    assert sum(r.throttle_windows for r in rounds) == 3
    assert {r.next_due for r in rounds} == {NOW + HOUR}


async def test_a_big_closed_batch_is_deleted_over_bounded_rounds(store: Store) -> None:
    """limit=2, one released batch of 5 items: items go 2, 2, 1; the batch row goes last."""
    first = await join(store, "big", "r0", NOW)
    for i in range(1, 5):
        await join(store, "big", f"r{i}", NOW + i)
    assert (await store.release_batch(WS, first.batch_id, NOW + 100)).count == 5
    later = NOW + RETENTION + 200
    rounds = []
    while True:
        done = await purge(store, later, limit=2)
        assert done.ran
        rounds.append(done.batches)
        if done.next_due > later:
            break
    assert rounds == [0, 0, 1]
    with pytest.raises(LookupError):
        await store.release_batch(WS, first.batch_id, later)
