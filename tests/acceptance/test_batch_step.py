"""The add-to-batch automation step end to end via the official SDK (courier-api §4.7)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
from courier import AsyncCourier
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def _invoke(ws: Workspace, steps: list[dict[str, Any]], **invoke: Any) -> str:
    return (
        ws.client().automations.invoke.invoke_ad_hoc(automation={"steps": steps}, **invoke).run_id
    )


def _done(ws: Workspace, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    return ws.wait_run(run_id, "PROCESSED", "ERROR", timeout=timeout)


def test_batch_releases_once_to_the_first_run_with_the_retained_items(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """Three runs batch; the first carries data.batch (highest 2 by score) on to one send."""
    client = ws.client()
    template = unique("BATCHED")
    ws.add_template(template, "You have {{batch.count}} updates", "Body")
    user, email = unique("batcher"), unique_email("batcher")
    client.profiles.create(user, profile={"email": email})
    batch = {
        "action": "add-to-batch",
        "batch_key": unique("bk"),
        "wait_period": "PT2S",
        "max_wait_period": "PT1H",
        "retain": {"type": "highest", "count": 2, "sort_key": "score"},
    }
    steps = [batch, {"action": "send", "template": template}]
    runs = [_invoke(ws, steps, recipient=user, data={"score": s}) for s in (5, 9, 7)]
    carrier = _done(ws, runs[0])
    assert carrier["status"] == "PROCESSED", carrier
    assert carrier["data"]["batch"] == {"count": 3, "items": [{"score": 9}, {"score": 7}]}
    (mail,) = smtp.recorder.wait_for(email)
    assert mail.subject == "You have 3 updates"
    for joiner in runs[1:]:
        assert _done(ws, joiner)["status"] == "PROCESSED"
        first, second = ws.steps(joiner)
        assert (first.status, second.status) == ("PROCESSED", "NOT PROCESSED")
        assert first.to_dict()["output"]["batched_into"] == runs[0]


def test_max_items_releases_at_once_and_categories_split_the_batch(ws: Workspace) -> None:
    """Reaching max_items releases without waiting; category_key groups items by category."""
    batch = {
        "action": "add-to-batch",
        "batch_key": unique("cat"),
        "wait_period": "PT1H",
        "max_items": 3,
        "category_key": "${data.kind}",
        "retain": {"type": "last", "count": 1},
    }
    kinds = ["likes", "comments", "likes"]
    runs = [
        _invoke(ws, [batch], recipient="cat", data={"kind": k, "i": i}) for i, k in enumerate(kinds)
    ]
    carrier = _done(ws, runs[0], timeout=10.0)
    assert carrier["data"]["batch"] == {
        "likes": {"count": 2, "items": [{"kind": "likes", "i": 2}]},
        "comments": {"count": 1, "items": [{"kind": "comments", "i": 1}]},
    }
    # The key's next item opens a new batch with a new carrier.
    later = _invoke(ws, [batch], recipient="cat", data={"kind": "likes", "i": 3})
    assert ws.run(later)["status"] in ("PROCESSING", "WAITING")


def test_bad_batch_fields_error(ws: Workspace) -> None:
    """Missing wait_period or a highest retain without sort_key ends the run ERROR."""
    base = {"action": "add-to-batch", "batch_key": unique("bad")}
    missing = _done(ws, _invoke(ws, [base], recipient="x"))
    assert "wait_period: Required" in missing["error"]
    retain = {**base, "wait_period": "PT1M", "retain": {"type": "highest"}}
    assert "retain.sort_key" in _done(ws, _invoke(ws, [retain], recipient="x"))["error"]


async def _invoke_all(ws: Workspace, bodies: list[dict[str, Any]]) -> list[str]:
    limit = asyncio.Semaphore(50)
    async with AsyncCourier(api_key=ws.key, base_url=ws.server.url, max_retries=0) as client:

        async def one(body: dict[str, Any]) -> str:
            async with limit:
                return (await client.automations.invoke.invoke_ad_hoc(**body)).run_id

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def _collect(
    ws: Workspace, run_ids: list[str], within: float
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every run's final detail, and each run's first step, fetched a few at a time."""
    limit = asyncio.Semaphore(20)
    headers = {"Authorization": f"Bearer {ws.key}"}
    deadline = asyncio.get_running_loop().time() + within
    async with (
        httpx.AsyncClient(base_url=ws.server.url, headers=headers, timeout=10.0) as http,
        AsyncCourier(api_key=ws.key, base_url=ws.server.url, max_retries=0) as client,
    ):

        async def finished(run_id: str) -> dict[str, Any]:
            while True:
                async with limit:
                    detail = (await http.get(f"/automations/runs/{run_id}")).json()
                if detail["status"] in ("PROCESSED", "ERROR"):
                    return dict(detail)
                assert asyncio.get_running_loop().time() < deadline, detail
                await asyncio.sleep(0.25)

        async def first_step(run_id: str) -> dict[str, Any]:
            async with limit:
                listed = await client.automations.runs.list_steps(run_id)
            return (listed.steps or [])[0].to_dict()

        details = await asyncio.gather(*(finished(r) for r in run_ids))
        steps = await asyncio.gather(*(first_step(r) for r in run_ids))
    return list(details), dict(zip(run_ids, steps, strict=True))


@pytest.mark.timeout(600)
def test_concurrent_invokes_release_each_key_once_counting_every_item(ws: Workspace) -> None:
    """1,000 concurrent invokes over 10 keys: one release per key, every item counted once."""
    total, prefix = 1000, unique("many")
    keys = [f"{prefix}-{i % 10}" for i in range(total)]
    bodies = [
        {
            "automation": {
                "steps": [
                    {
                        "action": "add-to-batch",
                        "batch_key": key,
                        # Each key gets an item every ~10 invokes, so its batch stays open
                        # until the burst is over: one window per key.
                        "wait_period": "PT8S",
                        "max_wait_period": "PT1H",
                        "retain": {"type": "first", "count": total},
                    }
                ]
            },
            "recipient": "many",
            "data": {"n": n, "key": key},
        }
        for n, key in enumerate(keys)
    ]
    run_ids = asyncio.run(_invoke_all(ws, bodies))
    details, steps = asyncio.run(_collect(ws, run_ids, within=300.0))
    assert Counter(d["status"] for d in details) == {"PROCESSED": total}
    carriers = {d["run_id"]: d for d in details if "batch" in d["data"]}
    assert sorted(d["data"]["key"] for d in carriers.values()) == sorted(set(keys))
    assert sum(d["data"]["batch"]["count"] for d in carriers.values()) == total
    seen: Counter[int] = Counter()
    joined: dict[str, set[int]] = defaultdict(set)
    for run_id, detail in zip(run_ids, details, strict=True):
        if run_id in carriers:
            continue
        into = steps[run_id]["output"]["batched_into"]
        assert carriers[into]["data"]["key"] == detail["data"]["key"]
        joined[into].add(detail["data"]["n"])
    for run_id, carrier in carriers.items():
        items = {item["n"] for item in carrier["data"]["batch"]["items"]}
        assert items == joined[run_id] | {carrier["data"]["n"]}
        seen.update(items)
    assert sorted(seen) == list(range(total))
    assert set(seen.values()) == {1}
