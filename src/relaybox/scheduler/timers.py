"""The timer loop: claims runs as they come due and hands them to the engine.

Pending delays are rows with a due time. The loop sleeps until the earliest due time in
the database (or until poked because an earlier one was just written), claims a bounded
batch, and goes back to sleep: it never holds more than one batch of upcoming timers in
memory, and never a coroutine per waiting run.

The same loop drives periodic housekeeping (deleting expired throttle windows and old
released batches) from a due-time row in the database: when that time comes, one bounded
round runs in the store, which also settles which of several workers runs it.
"""

from __future__ import annotations

import asyncio
import logging

from relaybox.clock import Clock
from relaybox.engine.engine import Engine
from relaybox.scheduler.due_loop import keep_ticking, sleep_until_due

log = logging.getLogger("relaybox.timers")


class TimerLoop:
    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        batch: int = 256,
        max_backlog: int = 2048,
        idle_check: float = 30.0,
        purge_every: float = 3600.0,
        purge_retention: float = 7 * 86_400.0,
        purge_limit: int = 1000,
    ) -> None:
        self._engine = engine
        self._store = engine.store
        self._clock = clock
        self._batch = batch
        self._max_backlog = max_backlog
        # Only a safety net for writes made by other processes; local writes poke the loop.
        self._idle_check = idle_check
        self._poke = asyncio.Event()
        engine.on_release(self._poke)
        self._task: asyncio.Task[None] | None = None
        self._purge_every = purge_every
        self._purge_retention = purge_retention
        self._purge_limit = purge_limit
        #: The purge's due time as last read from the database (0: read it on the first tick).
        self._purge_due = 0.0

    def poke(self) -> None:
        self._poke.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._poke.set)

        self._store.listen(wake)
        self._task = asyncio.create_task(self._run(), name="relaybox-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        await keep_ticking(self.tick, log, "timer loop")

    async def purge(self) -> None:
        """Run the expired-rows purge if it is due (the store decides who runs a round)."""
        now = self._clock.now()
        if now < self._purge_due:
            return
        try:
            done = await self._store.purge_expired(
                now,
                retention=self._purge_retention,
                every=self._purge_every,
                limit=self._purge_limit,
            )
        except Exception:
            log.exception("purge of expired throttle and batch rows failed; retrying in 60 s")
            self._purge_due = now + 60.0
            return
        self._purge_due = done.next_due
        if done.ran and (done.throttle_windows or done.batches):
            log.info(
                "purged %d throttle windows and %d batches", done.throttle_windows, done.batches
            )

    async def tick(self) -> None:
        """Claim what is due, then sleep until the next due time or a poke."""
        self._poke.clear()
        await self.purge()
        if self._engine.backlog < self._max_backlog:
            claimed = await self._store.claim_due_runs(
                self._engine.owner,
                self._clock.now(),
                limit=self._batch,
                lease_seconds=self._engine.lease_seconds,
            )
            for run in claimed:
                self._engine.submit(run)
            if len(claimed) == self._batch:
                await asyncio.sleep(0)
                return
        else:
            await asyncio.sleep(0.01)
            return
        next_due = await self._store.next_due_at()
        await sleep_until_due(
            self._poke,
            self._clock,
            (next_due, self._purge_due),
            idle_check=self._idle_check,
            leased_pause=0.005,
        )
