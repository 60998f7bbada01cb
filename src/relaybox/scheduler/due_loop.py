"""The parts shared by loops that sleep until a due time in the database or a poke.

The timer loop (runs) and the event dispatcher (webhook deliveries) both claim a bounded batch
of due rows, then sleep until the earliest next due time, a poke (local write or a hint from
another process), or ``idle_check`` at the latest, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from relaybox.clock import Clock


async def keep_ticking(tick: Callable[[], Awaitable[None]], log: logging.Logger, what: str) -> None:
    """Call ``tick`` until cancelled; a failure is logged and the loop goes on a second later."""
    while True:
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in 1 s", what)
            await asyncio.sleep(1.0)


async def wait_for_poke(poke: asyncio.Event, at_most: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(poke.wait(), timeout=at_most)


async def sleep_until_due(
    poke: asyncio.Event,
    clock: Clock,
    due: Iterable[float | None],
    *,
    idle_check: float,
    leased_pause: float,
) -> None:
    """Sleep until the earliest of ``due`` (capped at ``idle_check``) or a poke.

    Something already due that the claim did not return is leased elsewhere: pause
    ``leased_pause`` instead of spinning hot.
    """
    wait = idle_check
    for at in due:
        if at is not None:
            wait = min(wait, max(0.0, at - clock.now()))
    if wait <= 0:
        await asyncio.sleep(leased_pause)
        return
    await wait_for_poke(poke, wait)
