"""The timer loop runs the throttle/batch purge when its due time comes (injected clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relaybox.bootstrap import build
from relaybox.clock import FrozenClock
from relaybox.settings import Settings

NOW = 1_800_000_000.0
DAY = 86_400.0
WS = "ws_timer_purge"


async def _counted_from_scratch(runtime: object, start: float, run_id: str) -> bool:
    """True once the expired window's counter is gone (a new hit is position 1 again)."""
    store = runtime.store  # type: ignore[attr-defined]
    return await store.throttle_hit(WS, "k", start, run_id, 0, window_end=start + 60) == 1


async def test_timer_loop_purges_when_due_and_not_before(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    runtime = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'relaybox.db'}", api_key="k"), clock=clock
    )
    old = NOW - 30 * DAY
    await runtime.store.open()
    await runtime.store.throttle_hit(WS, "k", old, "seed", 0, window_end=old + 60)
    await runtime.store.close()
    await runtime.start()
    try:
        timers = runtime.timers
        assert timers is not None
        # The first tick finds the purge due (never run) and deletes the expired window.
        for _ in range(100):
            if await _counted_from_scratch(runtime, old, f"probe{_}"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the expired window was not purged at start")
        # That probe hit is itself expired, but the next round is an hour away.
        clock.advance(60)
        timers.poke()
        await asyncio.sleep(0.3)
        assert not await _counted_from_scratch(runtime, old, "again")
        clock.advance(3600)
        timers.poke()
        for _ in range(100):
            if await _counted_from_scratch(runtime, old, f"late{_}"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the due purge round did not run")
    finally:
        await runtime.stop()
