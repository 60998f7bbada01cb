"""Store contract for delivery-event webhooks: the outbox written with the status change,
claims with leases and fencing, outcomes, endpoint deletion."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest
from tests.contract.conftest import StoreHarness
from tests.contract.test_store import NOW, OTHER_WS, WS, make_message, make_run

from relaybox.errors import ConflictError
from relaybox.storage.base import (
    WEBHOOK_TOPIC,
    MessageEvent,
    Store,
    WebhookDelivery,
    WebhookEndpoint,
)


def endpoint(
    endpoint_id: str, *, ws: str = WS, events: tuple[str, ...] | None = None
) -> WebhookEndpoint:
    return WebhookEndpoint(
        workspace_id=ws,
        id=endpoint_id,
        url=f"http://127.0.0.1:9/{endpoint_id}",
        secret=f"whsec_{endpoint_id}",
        created_at=NOW,
        events=events,
        description="test",
    )


async def claim_all(store: Store, *, owner: str = "d1", at: float = NOW) -> list[WebhookDelivery]:
    return await store.claim_webhook_deliveries(owner, at, limit=100, lease_seconds=30)


async def test_endpoints_put_get_list_delete_are_per_workspace(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_b"))
    await store.put_webhook_endpoint(endpoint("we_a", events=("SENT",)))
    await store.put_webhook_endpoint(endpoint("we_c", ws=OTHER_WS))
    assert await store.get_webhook_endpoint(WS, "we_a") == endpoint("we_a", events=("SENT",))
    assert await store.get_webhook_endpoint(OTHER_WS, "we_a") is None
    listed = await store.list_webhook_endpoints(WS, after=None, limit=10)
    assert [e.id for e in listed] == ["we_a", "we_b"]
    assert [e.id for e in await store.list_webhook_endpoints(WS, after="we_a", limit=10)] == [
        "we_b"
    ]
    assert await store.delete_webhook_endpoint(WS, "we_a") is True
    assert await store.delete_webhook_endpoint(WS, "we_a") is False
    assert await store.get_webhook_endpoint(WS, "we_a") is None


async def test_status_events_queue_one_delivery_per_matching_endpoint(store: Store) -> None:
    """Status events (not RENDERED/RETRYING) of the workspace's messages are queued with the
    message as that commit left it; an endpoint's event filter is honoured."""
    await store.put_webhook_endpoint(endpoint("we_all"))
    await store.put_webhook_endpoint(endpoint("we_sent", events=("SENT",)))
    await store.put_webhook_endpoint(endpoint("we_other", ws=OTHER_WS))
    message = make_message("m_1", status="ROUTED", channel="email")
    await store.save_message(
        message,
        [
            MessageEvent("m_1", NOW, "ENQUEUED"),
            MessageEvent("m_1", NOW, "RENDERED"),
            MessageEvent("m_1", NOW, "ROUTED"),
        ],
    )
    sent = replace(message, status="SENT", sent_at=NOW + 1, updated_at=NOW + 1)
    await store.save_message(sent, [MessageEvent("m_1", NOW + 1, "SENT")])

    claimed = await claim_all(store, at=NOW + 1)
    got = [(d.endpoint_id, d.event_type, d.message.status) for d in claimed]
    # Oldest first: ENQUEUED and ROUTED (one commit) before SENT; endpoints in any order.
    assert got[:2] == [("we_all", "ENQUEUED", "ROUTED"), ("we_all", "ROUTED", "ROUTED")]
    assert sorted(got[2:]) == [("we_all", "SENT", "SENT"), ("we_sent", "SENT", "SENT")]
    first = claimed[0]
    assert first.url == "http://127.0.0.1:9/we_all"
    assert first.secret == "whsec_we_all"
    assert first.message.content == {}  # rendered output is not part of the event
    assert first.message.providers == message.providers
    assert first.message.recipient == "user_1"
    assert [d.seq for d in claimed] == sorted(d.seq for d in claimed)
    assert len({d.id for d in claimed}) == 4


async def test_no_endpoint_means_no_delivery(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_x", ws=OTHER_WS))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    assert await claim_all(store) == []
    assert await store.next_webhook_due_at() is None


async def test_deliveries_commit_with_the_run_and_cancel(store: Store) -> None:
    """commit_run and cancel_run queue deliveries in their own transactions."""
    await store.put_webhook_endpoint(endpoint("we_1"))
    run = make_run("run_1")
    await store.create_runs(
        [run],
        messages=[make_message("m_1", run_id="run_1")],
        events=[MessageEvent("m_1", NOW, "ENQUEUED")],
        lease_owner=None,
    )
    await store.cancel_run(WS, "run_1", NOW + 1)
    claimed = await claim_all(store, at=NOW + 2)
    assert [(d.event_type, d.message.status) for d in claimed] == [
        ("ENQUEUED", "ENQUEUED"),
        ("CANCELED", "CANCELED"),
    ]


async def test_claim_leases_and_fences(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    [first] = await claim_all(store, owner="d1")
    assert await claim_all(store, owner="d2", at=NOW + 10) == []  # leased for 30 s
    assert await store.next_webhook_due_at() == NOW + 30
    [again] = await claim_all(store, owner="d2", at=NOW + 31)  # lease expired
    assert again.lease_token == first.lease_token + 1
    assert await store.finish_webhook_delivery(first, now=NOW + 32, status="delivered") is False
    assert await store.finish_webhook_delivery(again, now=NOW + 32, status="delivered") is True
    [done] = await store.list_webhook_deliveries(WS, "we_1", before=None, limit=10)
    assert (done.status, done.attempts, done.delivered_at, done.due_at) == (
        "delivered",
        1,
        NOW + 32,
        None,
    )
    assert await claim_all(store, at=NOW + 1000) == []


async def test_retry_postpone_and_fail(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    [d] = await claim_all(store)
    assert await store.finish_webhook_delivery(
        d, now=NOW, status="pending", retry_at=NOW + 5, error="answered 500", status_code=500
    )
    assert await claim_all(store, at=NOW + 4) == []
    [d] = await claim_all(store, at=NOW + 5)
    assert (d.attempts, d.last_status, d.last_error) == (1, 500, "answered 500")
    # Put back without an attempt (it waited behind another delivery of its endpoint).
    assert await store.finish_webhook_delivery(
        d, now=NOW + 5, status="pending", retry_at=NOW + 6, attempted=False
    )
    [d] = await claim_all(store, at=NOW + 6)
    assert d.attempts == 1
    assert await store.finish_webhook_delivery(
        d, now=NOW + 6, status="failed", error="gave up", status_code=None
    )
    [failed] = await store.list_webhook_deliveries(WS, "we_1", before=None, limit=10)
    assert (failed.status, failed.attempts, failed.due_at, failed.last_status) == (
        "failed",
        2,
        None,
        500,
    )
    assert await store.next_webhook_due_at() is None


async def test_deleting_an_endpoint_cancels_its_pending_deliveries(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.put_webhook_endpoint(endpoint("we_2"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    [held, _] = await claim_all(store)
    assert await store.delete_webhook_endpoint(WS, held.endpoint_id)
    # A dispatcher still holding it is fenced off.
    assert await store.finish_webhook_delivery(held, now=NOW, status="delivered") is False
    [left] = await claim_all(store, at=NOW + 100)
    assert left.endpoint_id != held.endpoint_id
    [canceled] = await store.list_webhook_deliveries(WS, held.endpoint_id, before=None, limit=5)
    assert canceled.status == "canceled"


async def test_concurrent_claims_never_share_a_delivery_or_an_endpoint(store: Store) -> None:
    """Racing dispatchers split the endpoints between them; each endpoint's events all go to
    the one that leased it, in queue order, however many rounds it takes."""
    for e in range(8):
        await store.put_webhook_endpoint(endpoint(f"we_{e}"))
    for i in range(5):
        await store.save_message(make_message(f"m_{i}"), [MessageEvent(f"m_{i}", NOW, "ENQUEUED")])
    owner_of: dict[str, set[str]] = {}
    seqs: dict[str, list[int]] = {}
    ids: list[str] = []
    for _ in range(10):
        batches = await asyncio.gather(
            *(
                store.claim_webhook_deliveries(f"d{i}", NOW, limit=7, lease_seconds=30)
                for i in range(8)
            )
        )
        for i, batch in enumerate(batches):
            for d in batch:
                owner_of.setdefault(d.endpoint_id, set()).add(f"d{i}")
                seqs.setdefault(d.endpoint_id, []).append(d.seq)
                ids.append(d.id)
        if len(ids) == 40:
            break
    assert len(ids) == 40
    assert len(set(ids)) == 40
    assert all(len(owners) == 1 for owners in owner_of.values()), owner_of
    assert len(owner_of) == 8
    assert all(s == sorted(s) for s in seqs.values())


async def test_an_endpoint_is_delivered_by_one_dispatcher_until_its_lease_ends(
    store: Store,
) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    [first] = await claim_all(store, owner="d1")
    await store.save_message(make_message("m_2"), [MessageEvent("m_2", NOW + 1, "ENQUEUED")])
    # we_1 is d1's: d2 gets nothing and need not look before d1's lease ends.
    assert await claim_all(store, owner="d2", at=NOW + 1) == []
    assert await store.next_webhook_due_at("d2") == NOW + 30
    assert await store.next_webhook_due_at("d1") == NOW + 1
    # Another endpoint is free meanwhile.
    await store.put_webhook_endpoint(endpoint("we_2"))
    await store.save_message(make_message("m_3"), [MessageEvent("m_3", NOW + 2, "ENQUEUED")])
    [other] = await claim_all(store, owner="d2", at=NOW + 2)
    assert other.endpoint_id == "we_2"
    assert await store.finish_webhook_delivery(other, now=NOW + 3, status="delivered")
    # d1 finishes and claims the next one, which renews its lease on we_1.
    assert await store.finish_webhook_delivery(first, now=NOW + 2, status="delivered")
    claimed = await claim_all(store, owner="d1", at=NOW + 10)
    assert [(d.endpoint_id, d.message_id) for d in claimed] == [("we_1", "m_2"), ("we_1", "m_3")]
    second = claimed[0]
    assert await store.finish_webhook_delivery(
        second, now=NOW + 11, status="pending", retry_at=NOW + 12
    )
    assert await claim_all(store, owner="d2", at=NOW + 31) == []  # held until NOW + 40
    assert [d.id for d in await claim_all(store, owner="d2", at=NOW + 40)] == [
        d.id for d in claimed
    ]


async def test_a_stopping_dispatcher_hands_back_its_deliveries_and_endpoints(
    store: Store,
) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.put_webhook_endpoint(endpoint("we_2"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    for d in await claim_all(store, owner="d1"):
        assert await store.finish_webhook_delivery(d, now=NOW, status="delivered")
    await store.save_message(make_message("m_2"), [MessageEvent("m_2", NOW + 1, "ENQUEUED")])
    assert await claim_all(store, owner="d2", at=NOW + 1) == []  # d1 holds both endpoints
    held = await claim_all(store, owner="d1", at=NOW + 1)
    assert len(held) == 2
    assert await store.release_webhook_leases(NOW + 2, owner="d9") == 0  # not d9's to free
    assert await claim_all(store, owner="d2", at=NOW + 2) == []
    assert await store.release_webhook_leases(NOW + 2, owner="d1") == 2
    assert await store.next_webhook_due_at("d2") == NOW + 2
    taken = await claim_all(store, owner="d2", at=NOW + 2)
    assert sorted(d.id for d in taken) == sorted(d.id for d in held)
    for d in held:  # the stopped dispatcher's claims are fenced off
        assert await store.finish_webhook_delivery(d, now=NOW + 3, status="delivered") is False


async def test_release_leases_makes_held_deliveries_due(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    [held] = await claim_all(store)
    assert await store.release_webhook_leases(NOW + 1) == 1
    [again] = await claim_all(store, at=NOW + 1)
    assert again.id == held.id


async def test_pending_deliveries_survive_reopening(harness: StoreHarness) -> None:
    store = await harness.open()
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "SENT")])
    await harness.close(store)
    reopened = await harness.open()
    [d] = await claim_all(reopened)
    assert (d.event_type, d.message_id) == ("SENT", "m_1")


async def test_watch_hints_when_deliveries_are_queued(store: Store) -> None:
    seen = threading.Event()
    store.watch(WEBHOOK_TOPIC, lambda payload: seen.set())
    await store.save_message(make_message("m_0"), [MessageEvent("m_0", NOW, "ENQUEUED")])
    assert not seen.is_set()  # no endpoint, nothing queued
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    assert await asyncio.to_thread(seen.wait, 5)


async def test_purge_deletes_only_old_finished_deliveries(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    for i in range(3):
        await store.save_message(
            make_message(f"m_{i}"), [MessageEvent(f"m_{i}", NOW + i, "ENQUEUED")]
        )
    claimed = await claim_all(store, at=NOW + 10)
    assert len(claimed) == 3
    await store.finish_webhook_delivery(claimed[0], now=NOW + 10, status="delivered")
    await store.finish_webhook_delivery(claimed[1], now=NOW + 10, status="failed")
    # claimed[2] stays pending (leased): never purged, however old.
    assert await store.purge_webhook_deliveries(NOW + 1000, limit=1) == 1
    assert await store.purge_webhook_deliveries(NOW + 1000, limit=10) == 1
    assert await store.purge_webhook_deliveries(NOW + 1000, limit=10) == 0
    left = await store.list_webhook_deliveries(WS, "we_1", before=None, limit=10)
    assert [d.id for d in left] == [claimed[2].id]
    await store.finish_webhook_delivery(claimed[2], now=NOW + 11, status="delivered")
    assert await store.purge_webhook_deliveries(NOW + 2, limit=10) == 0  # created later


async def test_redeliver_requeues_finished_deliveries_only(store: Store) -> None:
    await store.put_webhook_endpoint(endpoint("we_1"))
    await store.save_message(make_message("m_1"), [MessageEvent("m_1", NOW, "ENQUEUED")])
    [held] = await claim_all(store)
    with pytest.raises(ConflictError, match="pending"):
        await store.redeliver_webhook_delivery(WS, "we_1", held.id, NOW + 1)
    await store.finish_webhook_delivery(held, now=NOW + 1, status="failed", error="gave up")
    again = await store.redeliver_webhook_delivery(WS, "we_1", held.id, NOW + 2)
    assert again is not None
    assert (again.status, again.attempts, again.due_at) == ("pending", 0, NOW + 2)
    # The old claim is fenced off; a new claim gets it.
    assert await store.finish_webhook_delivery(held, now=NOW + 3, status="delivered") is False
    [claimed] = await claim_all(store, at=NOW + 2)
    assert claimed.id == held.id
    assert await store.finish_webhook_delivery(claimed, now=NOW + 3, status="delivered")
    assert await store.redeliver_webhook_delivery(WS, "we_1", held.id, NOW + 4) is not None
    assert await store.redeliver_webhook_delivery(WS, "we_1", "evt_missing", NOW) is None
    assert await store.redeliver_webhook_delivery(OTHER_WS, "we_1", held.id, NOW) is None
    assert await store.delete_webhook_endpoint(WS, "we_1")
    with pytest.raises(ConflictError, match="canceled"):
        await store.redeliver_webhook_delivery(WS, "we_1", held.id, NOW + 5)
