"""Store verbs for delivery-event webhooks (a transactional outbox), shared by every dialect.

A mixin of ``SqlStore``. ``_queue_deliveries`` runs inside the transaction that stores a
message's history events, so a status change and its delivery events commit together or not
at all: a crash after the commit leaves pending rows that a dispatcher delivers after restart.
Deliveries are claimed like runs: a lease (the due time pushed to the lease's end), a fencing
token bumped on every claim, and SKIP LOCKED where the database has it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from relaybox.domain.message_events import STATUS_EVENTS
from relaybox.errors import ConflictError
from relaybox.storage import rows
from relaybox.storage.base import (
    WEBHOOK_TOPIC,
    MessageEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from relaybox.storage.dialect import scalar
from relaybox.storage.sql_verbs import SqlStoreParts
from relaybox.storage.writer import Connection

ENDPOINT_COLUMNS = "workspace_id, id, url, secret, created_at, events, description"
DELIVERY_COLUMNS = (
    "seq, id, workspace_id, endpoint_id, message_id, event_type, event_ts, message, status, "
    "attempts, created_at, lease_token, due_at, last_error, last_status, delivered_at"
)
_MESSAGE_FIELDS = [c.strip() for c in rows.MESSAGE_COLUMNS.split(",")]


def _endpoint(row: Sequence[Any]) -> WebhookEndpoint:
    ws, id_, url, secret, created, events, description = row
    listed = rows.loads(events)
    return WebhookEndpoint(
        workspace_id=ws,
        id=id_,
        url=url,
        secret=secret,
        created_at=float(created),
        events=None if listed is None else tuple(listed),
        description=description,
    )


def _delivery(row: Sequence[Any]) -> WebhookDelivery:
    snapshot = rows.loads(row[7])
    message = rows.message_from_row(tuple(snapshot[f] for f in _MESSAGE_FIELDS))
    return WebhookDelivery(
        seq=int(row[0]),
        id=row[1],
        workspace_id=row[2],
        endpoint_id=row[3],
        message_id=row[4],
        event_type=row[5],
        event_ts=float(row[6]),
        message=message,
        status=row[8],
        attempts=int(row[9]),
        created_at=float(row[10]),
        lease_token=int(row[11]),
        due_at=None if row[12] is None else float(row[12]),
        last_error=row[13],
        last_status=None if row[14] is None else int(row[14]),
        delivered_at=None if row[15] is None else float(row[15]),
    )


@functools.lru_cache(maxsize=64)
def _targets_sql(q: Callable[[str], str], count: int) -> str:
    """Endpoints of the messages' workspaces, with each message as stored now.

    The rendered output (up to 1 MB) is not part of an event, so it is not read at all.
    """
    columns = ", ".join("NULL" if f == "content" else f"m.{f}" for f in _MESSAGE_FIELDS)
    return q(
        f"SELECT w.id, w.events, {columns} FROM messages m JOIN webhook_endpoints w "
        f"ON w.workspace_id = m.workspace_id WHERE m.id IN ({','.join('?' * count)})"
    )


class WebhookVerbs(SqlStoreParts):
    def watch(self, topic: str, callback: Callable[[str], None]) -> None:
        self._hints.watch(topic, callback)

    # --- the outbox write ---------------------------------------------------------------

    def _queue_deliveries(self, c: Connection, events: Sequence[MessageEvent]) -> None:
        """One pending delivery per (status event, matching endpoint), in the caller's txn.

        Called after the events' messages were written in the same transaction, so the
        snapshot is the message as this commit leaves it.
        """
        changes = [e for e in events if e.type in STATUS_EVENTS]
        if not changes:
            return
        # Cheap way out for the common case of a database without any endpoint.
        if c.execute(self.q("SELECT 1 FROM webhook_endpoints LIMIT 1")).fetchone() is None:
            return
        ids = sorted({e.message_id for e in changes})
        found = c.execute(_targets_sql(self.q, len(ids)), ids).fetchall()
        if not found:
            return
        insert = self.q(
            "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, message_id, "
            "event_type, event_ts, message, status, attempts, due_at, lease_token, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, 0, ?)"
        )
        by_message: dict[str, list[tuple[str, Any, str, str]]] = {}
        snapshots: dict[str, str] = {}
        for row in found:
            message = rows.message_from_row(tuple(row[2:]))
            if message.id not in snapshots:  # one row per endpoint: the same message each time
                snapshots[message.id] = rows.dumps(rows.message_params(message))
            target = (row[0], rows.loads(row[1]), snapshots[message.id], message.workspace_id)
            by_message.setdefault(message.id, []).append(target)
        params = []
        for event in changes:
            for endpoint_id, wanted, snapshot, ws in by_message.get(event.message_id, ()):
                if wanted is not None and event.type not in wanted:
                    continue
                params.append(
                    (
                        "evt_" + uuid.uuid4().hex,
                        ws,
                        endpoint_id,
                        event.message_id,
                        event.type,
                        event.ts,
                        snapshot,
                        event.ts,
                        event.ts,
                    )
                )
        if not params:
            return
        c.cursor().executemany(insert, params)
        self._hints.notify(c, WEBHOOK_TOPIC, "")
        # Before the commit, but this process's claim is a later write, so it sees the rows
        # (SQLite has one writer; on PostgreSQL the NOTIFY above arrives after the commit).
        self._hints.fire(WEBHOOK_TOPIC, "")

    # --- endpoints ----------------------------------------------------------------------

    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        sql = self.q(
            f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, id) DO UPDATE SET url = excluded.url, "
            "secret = excluded.secret, events = excluded.events, "
            "description = excluded.description"
        )
        events = None if endpoint.events is None else rows.dumps(list(endpoint.events))
        args = (
            endpoint.workspace_id,
            endpoint.id,
            endpoint.url,
            endpoint.secret,
            endpoint.created_at,
            events,
            endpoint.description,
        )
        await self._writer.submit(lambda c: c.execute(sql, args))

    async def get_webhook_endpoint(
        self, workspace_id: str, endpoint_id: str
    ) -> WebhookEndpoint | None:
        sql = self.q(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = ? AND id = ?"
        )
        row = await self._read(lambda c: c.execute(sql, (workspace_id, endpoint_id)).fetchone())
        return None if row is None else _endpoint(row)

    async def list_webhook_endpoints(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> list[WebhookEndpoint]:
        sql = self.q(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints "
            "WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?"
        )
        args = (workspace_id, after or "", limit)
        return [_endpoint(r) for r in await self._read(lambda c: c.execute(sql, args).fetchall())]

    async def delete_webhook_endpoint(self, workspace_id: str, endpoint_id: str) -> bool:
        delete = self.q("DELETE FROM webhook_endpoints WHERE workspace_id = ? AND id = ?")
        # Bumping the token fences off a dispatcher holding one of them right now.
        cancel = self.q(
            "UPDATE webhook_deliveries SET status = 'canceled', due_at = NULL, "
            "lease_owner = NULL, lease_token = lease_token + 1 "
            "WHERE workspace_id = ? AND endpoint_id = ? AND status = 'pending'"
        )
        key = (workspace_id, endpoint_id)

        def write(c: Connection) -> bool:
            if c.execute(delete, key).rowcount == 0:
                return False
            c.execute(cancel, key)
            return True

        return await self._writer.submit(write)

    # --- dispatch -----------------------------------------------------------------------

    async def claim_webhook_deliveries(
        self, owner: str, now: float, *, limit: int, lease_seconds: float
    ) -> list[WebhookDelivery]:
        until = now + lease_seconds
        # Endpoints with something due that no other dispatcher holds, earliest due first.
        # Locking their rows (SKIP LOCKED) keeps two claims from leasing the same endpoint;
        # one leased since this statement's snapshot is re-checked and skipped.
        endpoints = self.q(
            "SELECT workspace_id, id, lease_owner, url, secret FROM webhook_endpoints e "
            "WHERE (lease_owner IS NULL OR lease_owner = ? OR lease_until <= ?) "
            "AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.workspace_id = "
            "e.workspace_id AND d.endpoint_id = e.id AND d.due_at <= ?) "
            "ORDER BY (SELECT MIN(d.due_at) FROM webhook_deliveries d WHERE d.workspace_id = "
            "e.workspace_id AND d.endpoint_id = e.id AND d.due_at IS NOT NULL) "
            f"LIMIT ?{self.dialect.claim_lock}"
        )
        lease = self.q(
            "UPDATE webhook_endpoints SET lease_owner = ?, lease_until = ? "
            "WHERE workspace_id = ? AND id = ?"
        )
        unlease = self.q(
            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL "
            "WHERE workspace_id = ? AND id = ? AND lease_owner = ?"
        )
        claim = self.q(
            "UPDATE webhook_deliveries SET due_at = ?, lease_owner = ?, "
            "lease_token = lease_token + 1 WHERE seq IN (SELECT seq FROM webhook_deliveries "
            "WHERE due_at <= ? AND (workspace_id, endpoint_id) IN (SELECT workspace_id, id "
            "FROM webhook_endpoints WHERE lease_owner = ? AND lease_until > ?) "
            f"ORDER BY seq LIMIT ?{self.dialect.claim_lock}) "
            f"RETURNING {DELIVERY_COLUMNS}"
        )
        target = self.q(
            "SELECT url, secret FROM webhook_endpoints WHERE workspace_id = ? AND id = ?"
        )

        def write(c: Connection) -> list[WebhookDelivery]:
            held = c.execute(endpoints, (owner, now, now, limit)).fetchall()
            if not held:
                return []
            c.cursor().executemany(lease, [(owner, until, ws, id_) for ws, id_, *_ in held])
            found = c.execute(claim, (until, owner, now, owner, now, limit)).fetchall()
            claimed = sorted((_delivery(r) for r in found), key=lambda d: d.seq)
            targets = {(ws, id_): (url, secret) for ws, id_, _, url, secret in held}
            out = []
            for delivery in claimed:
                key = (delivery.workspace_id, delivery.endpoint_id)
                if key not in targets:  # held since an earlier claim, beyond this one's LIMIT
                    targets[key] = c.execute(target, key).fetchone()
                url, secret = targets[key]
                out.append(replace(delivery, url=url, secret=secret))
            # An endpoint leased just now whose deliveries did not fit in the batch goes back
            # (one this dispatcher already held stays held: its queue may still be draining).
            used = {(d.workspace_id, d.endpoint_id) for d in claimed}
            unused = [(ws, id_, owner) for ws, id_, before, *_ in held if before != owner]
            unused = [args for args in unused if args[:2] not in used]
            if unused:
                c.cursor().executemany(unlease, unused)
            return out

        return await self._writer.submit(write)

    async def finish_webhook_delivery(
        self,
        delivery: WebhookDelivery,
        *,
        now: float,
        status: str,
        retry_at: float | None = None,
        attempted: bool = True,
        error: str | None = None,
        status_code: int | None = None,
    ) -> bool:
        if status not in ("delivered", "failed", "pending"):
            raise ValueError(f"not a delivery outcome: {status}")
        sql = self.q(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + ?, due_at = ?, "
            "lease_owner = NULL, last_error = COALESCE(?, last_error), "
            "last_status = COALESCE(?, last_status), delivered_at = ? "
            "WHERE seq = ? AND lease_token = ?"
        )
        args = (
            status,
            1 if attempted else 0,
            retry_at if status == "pending" else None,
            error,
            status_code,
            now if status == "delivered" else None,
            delivery.seq,
            delivery.lease_token,
        )
        return bool(await self._writer.submit(lambda c: c.execute(sql, args).rowcount == 1))

    async def next_webhook_due_at(self, owner: str | None = None) -> float | None:
        # A delivery of an endpoint another dispatcher holds is not due for ``owner`` before
        # that lease ends (without ``owner``, every lease counts). Per endpoint that is the
        # later of its earliest due time and such a lease: one index probe per endpoint.
        sql = self.q(
            "SELECT MIN(CASE WHEN lease_owner IS NOT NULL AND lease_owner <> ? "
            "AND lease_until > first THEN lease_until ELSE first END) FROM ("
            "SELECT e.lease_owner, e.lease_until, (SELECT MIN(d.due_at) FROM webhook_deliveries d "
            "WHERE d.workspace_id = e.workspace_id AND d.endpoint_id = e.id "
            "AND d.due_at IS NOT NULL) AS first FROM webhook_endpoints e) pending "
            "WHERE first IS NOT NULL"
        )
        args = (owner or "",)
        found = await self._read(lambda c: scalar(c.execute(sql, args).fetchone()))
        return None if found is None else float(found)

    async def release_webhook_leases(self, now: float, owner: str | None = None) -> int:
        mine = "" if owner is None else " AND lease_owner = ?"
        deliveries = self.q(
            "UPDATE webhook_deliveries SET due_at = ?, lease_owner = NULL "
            f"WHERE lease_owner IS NOT NULL AND due_at IS NOT NULL{mine}"
        )
        endpoints = self.q(
            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL "
            f"WHERE lease_owner IS NOT NULL{mine}"
        )
        extra = () if owner is None else (owner,)

        def write(c: Connection) -> int:
            released = int(c.execute(deliveries, (now, *extra)).rowcount)
            c.execute(endpoints, extra)
            if released:
                self._hints.notify(c, WEBHOOK_TOPIC, "")
            return released

        released = await self._writer.submit(write)
        if released:
            self._hints.fire(WEBHOOK_TOPIC, "")
        return released

    async def list_webhook_deliveries(
        self, workspace_id: str, endpoint_id: str, *, before: int | None, limit: int
    ) -> list[WebhookDelivery]:
        where = "workspace_id = ? AND endpoint_id = ?"
        args: list[Any] = [workspace_id, endpoint_id]
        if before is not None:
            where += " AND seq < ?"
            args.append(before)
        sql = self.q(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {where} "
            "ORDER BY seq DESC LIMIT ?"
        )
        found = await self._read(lambda c: c.execute(sql, [*args, limit]).fetchall())
        return [_delivery(r) for r in found]

    async def purge_webhook_deliveries(self, before: float, *, limit: int) -> int:
        sql = self.q(
            "DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM webhook_deliveries "
            "WHERE status <> 'pending' AND created_at < ? ORDER BY seq LIMIT ?)"
        )
        return int(await self._writer.submit(lambda c: c.execute(sql, (before, limit)).rowcount))

    async def redeliver_webhook_delivery(
        self, workspace_id: str, endpoint_id: str, delivery_id: str, now: float
    ) -> WebhookDelivery | None:
        requeue = self.q(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, due_at = ?, "
            "lease_owner = NULL, lease_token = lease_token + 1, delivered_at = NULL "
            "WHERE workspace_id = ? AND endpoint_id = ? AND id = ? "
            "AND status IN ('failed', 'delivered')"
        )
        select = self.q(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE workspace_id = ? AND endpoint_id = ? AND id = ?"
        )
        key = (workspace_id, endpoint_id, delivery_id)

        def write(c: Connection) -> tuple[WebhookDelivery | None, bool]:
            requeued = c.execute(requeue, (now, *key)).rowcount == 1
            if requeued:
                self._hints.notify(c, WEBHOOK_TOPIC, "")
            row = c.execute(select, key).fetchone()
            return (None if row is None else _delivery(row)), requeued

        found, requeued = await self._writer.submit(write)
        if found is not None and not requeued:
            raise ConflictError(
                f"Delivery {delivery_id} is {found.status}: only a failed or delivered event "
                "can be sent again"
            )
        if requeued:
            self._hints.fire(WEBHOOK_TOPIC, "")
        return found
