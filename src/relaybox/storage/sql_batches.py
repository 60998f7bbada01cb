"""Store verbs for the throttle and add-to-batch steps, shared by every SQL dialect.

A mixin of ``SqlStore``. Races are settled by the database, never by the caller: a
throttle window is one counter row bumped by an atomic upsert, and a key's open batch is one
``open_batches`` row whose primary key lets exactly one of several racing runs open it.
Batch rows are locked (no-op UPDATE, portable to SQLite) before they are read and changed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from relaybox.storage import rows
from relaybox.storage.base import BatchItem, BatchJoin, BatchRelease, Purge
from relaybox.storage.sql_verbs import SqlStoreParts
from relaybox.storage.writer import Connection, Writer


class BatchVerbs(SqlStoreParts):
    """With several writer threads (PostgreSQL) these verbs get one writer thread of their own:
    each batch transaction locks many keys' rows in arrival order, so two threads would
    deadlock on hot keys again and again (a 1 s detection stall each). One thread still
    group-commits, and the other writers' transactions never wait on these tables.
    """

    _serial: Writer | None = None

    def _batch_writer(self) -> Writer:
        if self.dialect.writer_threads <= 1:
            return self._writer
        if self._serial is None:
            self._serial = Writer(
                lambda: self.dialect.connect(),
                threads=1,
                begin=self.dialect.begin,
                errors=self.dialect.errors,
                name=f"relaybox-{self.dialect.name}-batch-writer",
            )
            self._serial.start()
        return self._serial

    async def _close_batch_writer(self) -> None:
        if self._serial is not None:
            await asyncio.to_thread(self._serial.stop)
            self._serial = None

    # --- throttles -------------------------------------------------------------------------

    async def throttle_hit(
        self,
        workspace_id: str,
        key: str,
        window_start: float,
        run_id: str,
        step_index: int,
        window_end: float | None = None,
    ) -> int:
        seen = self.q(
            "SELECT position FROM throttle_hits "
            "WHERE workspace_id = ? AND run_id = ? AND step_index = ?"
        )
        bump = self.q(
            "INSERT INTO throttle_counters (workspace_id, throttle_key, window_start, count, "
            "window_end) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (workspace_id, throttle_key, window_start) "
            "DO UPDATE SET count = throttle_counters.count + 1 RETURNING count"
        )
        record = self.q(
            "INSERT INTO throttle_hits (workspace_id, run_id, step_index, position, window_end) "
            "VALUES (?, ?, ?, ?, ?)"
        )

        def write(c: Connection) -> int:
            found = c.execute(seen, (workspace_id, run_id, step_index)).fetchone()
            if found is not None:
                return int(found[0])
            bumped = c.execute(bump, (workspace_id, key, window_start, window_end)).fetchone()
            position = int(bumped[0])
            c.execute(record, (workspace_id, run_id, step_index, position, window_end))
            return position

        return await self._batch_writer().submit(write)

    # --- batches ---------------------------------------------------------------------------

    async def add_to_batch(
        self,
        workspace_id: str,
        batch_key: str,
        run_id: str,
        step_index: int,
        *,
        data: dict[str, Any],
        category: str | None,
        now: float,
        wait_seconds: float,
        max_wait_seconds: float,
        max_items: int | None,
    ) -> BatchJoin:
        seen = self.q(
            "SELECT i.batch_id, i.seq, b.carrier_run_id, b.status, b.due_at FROM batch_items i "
            "JOIN batches b ON b.workspace_id = i.workspace_id AND b.id = i.batch_id "
            "WHERE i.workspace_id = ? AND i.run_id = ? AND i.step_index = ?"
        )
        claim = self.q(
            "INSERT INTO open_batches (workspace_id, batch_key, batch_id) VALUES (?, ?, ?) "
            "ON CONFLICT (workspace_id, batch_key) DO NOTHING"
        )
        open_id = self.q(
            "SELECT batch_id FROM open_batches WHERE workspace_id = ? AND batch_key = ?"
        )
        create = self.q(
            "INSERT INTO batches (workspace_id, id, batch_key, carrier_run_id, status, count, "
            "opened_at, last_item_at, due_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)"
        )
        # WHERE status = 'open' is re-checked after the row lock: a batch closed meanwhile
        # matches nothing and the item goes to the key's next batch.
        bump = self.q(
            "UPDATE batches SET count = count + 1, last_item_at = ? "
            "WHERE workspace_id = ? AND id = ? AND status = 'open' "
            "RETURNING count, carrier_run_id, opened_at"
        )
        set_due = self.q(
            "UPDATE batches SET due_at = ?, status = ? WHERE workspace_id = ? AND id = ?"
        )
        add = self.q(
            "INSERT INTO batch_items (workspace_id, run_id, step_index, batch_id, seq, category, "
            "data, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        unlist = self.q("DELETE FROM open_batches WHERE workspace_id = ? AND batch_id = ?")
        carrier_due = self.q(
            "SELECT r.due_at FROM batches b JOIN runs r "
            "ON r.workspace_id = b.workspace_id AND r.id = b.carrier_run_id "
            "WHERE b.workspace_id = ? AND b.id = ?"
        )
        abandon = self.q(
            "UPDATE batches SET status = 'abandoned', released_at = ? "
            "WHERE workspace_id = ? AND id = ? AND status = 'open'"
        )
        # The carrier may be held by a worker that is about to park it until the old due
        # time: bumping the lease token fences that commit off, so the release is not lost.
        wake = self.q(
            "UPDATE runs SET due_at = ?, lease_owner = NULL, lease_token = lease_token + 1 "
            "WHERE workspace_id = ? AND id = ? AND due_at IS NOT NULL"
        )
        full_at = max_items if max_items is not None and max_items > 0 else None

        def write(c: Connection) -> BatchJoin:
            found = c.execute(seen, (workspace_id, run_id, step_index)).fetchone()
            if found is not None:
                batch_id, seq, carrier, status, due = found
                return BatchJoin(batch_id, carrier, int(seq), status, float(due))
            while True:
                batch_id = "batch_" + uuid.uuid4().hex
                if c.execute(claim, (workspace_id, batch_key, batch_id)).rowcount == 1:
                    seq, carrier, opened_at = 1, run_id, now
                    c.execute(
                        create,
                        (workspace_id, batch_id, batch_key, run_id, "open", now, now, now),
                    )
                    break
                row = c.execute(open_id, (workspace_id, batch_key)).fetchone()
                if row is None:
                    continue  # closed since the insert looked: try to open the next one
                batch_id = row[0]
                carrier_row = c.execute(carrier_due, (workspace_id, batch_id)).fetchone()
                if carrier_row is not None and carrier_row[0] is None:
                    # The carrier finished without releasing (canceled, failed): nothing would
                    # ever release this batch, so close it and open the key's next one.
                    c.execute(abandon, (now, workspace_id, batch_id))
                    c.execute(unlist, (workspace_id, batch_id))
                    continue
                bumped = c.execute(bump, (now, workspace_id, batch_id)).fetchone()
                if bumped is not None:
                    seq, carrier, opened_at = int(bumped[0]), bumped[1], float(bumped[2])
                    break
            due = min(now + wait_seconds, opened_at + max_wait_seconds)
            status = "full" if full_at is not None and seq >= full_at else "open"
            c.execute(set_due, (now if status == "full" else due, status, workspace_id, batch_id))
            c.execute(
                add,
                (workspace_id, run_id, step_index, batch_id, seq, category, rows.dumps(data), now),
            )
            if status == "full":
                due = now
                c.execute(unlist, (workspace_id, batch_id))
                if carrier != run_id:
                    c.execute(wake, (now, workspace_id, carrier))
                    self.dialect.notify_due(c)
            return BatchJoin(batch_id, carrier, seq, status, due)

        return await self._batch_writer().submit(write)

    async def release_batch(self, workspace_id: str, batch_id: str, now: float) -> BatchRelease:
        lock = self.q("UPDATE batches SET status = status WHERE workspace_id = ? AND id = ?")
        state = self.q(
            "SELECT status, due_at, count FROM batches WHERE workspace_id = ? AND id = ?"
        )
        close = self.q(
            "UPDATE batches SET status = 'released', released_at = ? "
            "WHERE workspace_id = ? AND id = ?"
        )
        unlist = self.q("DELETE FROM open_batches WHERE workspace_id = ? AND batch_id = ?")
        items = self.q(
            "SELECT seq, category, data FROM batch_items WHERE workspace_id = ? AND batch_id = ? "
            "ORDER BY seq"
        )

        def write(c: Connection) -> BatchRelease:
            key = (workspace_id, batch_id)
            c.execute(lock, key)
            row = c.execute(state, key).fetchone()
            if row is None:
                raise LookupError(f"batch {batch_id} not found")
            status, due, count = row[0], float(row[1]), int(row[2])
            if status == "open" and due > now:
                return BatchRelease(released=False, due_at=due)
            if status != "released":
                c.execute(close, (now, *key))
                c.execute(unlist, key)
            found = [
                BatchItem(int(seq), category, dict(rows.loads(data)))
                for seq, category, data in c.execute(items, key).fetchall()
            ]
            return BatchRelease(released=True, due_at=due, count=count, items=found)

        return await self._batch_writer().submit(write)

    # --- housekeeping ----------------------------------------------------------------------

    async def purge_expired(
        self, now: float, *, retention: float, every: float, limit: int
    ) -> Purge:
        # WHERE due_at <= ? is re-checked after the row lock (PostgreSQL, READ COMMITTED): of
        # several workers racing for a round, the first commit moves the due time and the
        # others match nothing.
        claim = self.q("UPDATE housekeeping SET due_at = ? WHERE task = ? AND due_at <= ?")
        due = self.q("SELECT due_at FROM housekeeping WHERE task = ?")
        windows = [
            self.q(
                f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} "
                "WHERE window_end < ? LIMIT ?)"
            )
            for table, key in (
                ("throttle_counters", "workspace_id, throttle_key, window_start"),
                ("throttle_hits", "workspace_id, run_id, step_index"),
            )
        ]
        closed = "b.status IN ('released', 'abandoned') AND b.released_at < ?"
        # Items first, a bounded number per round, so a huge batch spreads over rounds; a
        # batch row goes once it has no items left.
        drop_items = self.q(
            "DELETE FROM batch_items WHERE (workspace_id, run_id, step_index) IN ("
            "SELECT i.workspace_id, i.run_id, i.step_index FROM batch_items i JOIN batches b "
            f"ON b.workspace_id = i.workspace_id AND b.id = i.batch_id WHERE {closed} LIMIT ?)"
        )
        drop_batches = self.q(
            "DELETE FROM batches WHERE (workspace_id, id) IN (SELECT b.workspace_id, b.id "
            f"FROM batches b WHERE {closed} AND NOT EXISTS (SELECT 1 FROM batch_items i "
            "WHERE i.workspace_id = b.workspace_id AND i.batch_id = b.id) LIMIT ?)"
        )
        before = now - retention

        def write(c: Connection) -> Purge:
            if c.execute(claim, (now + every, _PURGE_TASK, now)).rowcount != 1:
                row = c.execute(due, (_PURGE_TASK,)).fetchone()
                return Purge(ran=False, next_due=float(row[0]) if row else now + every)
            counts = [c.execute(sql, (before, limit)).rowcount for sql in windows]
            items = c.execute(drop_items, (before, limit)).rowcount
            batches = c.execute(drop_batches, (before, limit)).rowcount
            next_due = now + every
            if max(*counts, items, batches) >= limit:
                # Rows are left over: the next timer tick takes the next bounded round.
                c.execute(
                    self.q("UPDATE housekeeping SET due_at = ? WHERE task = ?"), (now, _PURGE_TASK)
                )
                next_due = now
            return Purge(True, next_due, throttle_windows=counts[0], batches=batches)

        return await self._batch_writer().submit(write)


#: The housekeeping row (migration 0007) of the throttle and batch purge.
_PURGE_TASK = "purge-throttles-batches"
