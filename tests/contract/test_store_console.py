"""Store contract for what the console lists: published versions and a workspace's API keys."""

from __future__ import annotations

from dataclasses import replace

from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.storage.base import Resource, RunFilter, Store

NOW = 1_700_000_000.0
WS = "ws_alpha"
OTHER_WS = "ws_beta"


def automation(rid: str, draft: dict[str, object], ws: str = WS) -> Resource:
    return Resource(
        workspace_id=ws, kind="automation", id=rid, created_at=NOW, updated_at=NOW, draft=draft
    )


async def test_versions_list_newest_first_and_read_back_one_by_one(store: Store) -> None:
    """Every publish leaves an immutable version; later draft edits do not change it."""
    await store.put_resource(automation("a1", {"steps": [1]}))
    first = await store.publish_resource(WS, "automation", "a1", NOW + 1)
    assert first is not None
    await store.put_resource(replace(first, draft={"steps": [2]}))
    second = await store.publish_resource(WS, "automation", "a1", NOW + 2)
    assert second is not None
    await store.put_resource(replace(second, draft={"steps": [3]}))  # not published

    versions = await store.list_resource_versions(WS, "automation", "a1")
    assert [(v.version, v.body, v.published_at) for v in versions] == [
        (2, {"steps": [2]}, NOW + 2),
        (1, {"steps": [1]}, NOW + 1),
    ]
    one = await store.get_resource_version(WS, "automation", "a1", 1)
    assert one is not None
    assert one.body == {"steps": [1]}
    assert await store.get_resource_version(WS, "automation", "a1", 3) is None
    assert await store.get_resource_version(OTHER_WS, "automation", "a1", 1) is None
    assert await store.list_resource_versions(OTHER_WS, "automation", "a1") == []
    assert await store.list_resource_versions(WS, "notification", "a1") == []


async def test_deleting_a_resource_drops_its_versions_so_the_id_can_start_over(
    store: Store,
) -> None:
    """A deleted object's history goes with it; a new object with its id publishes version 1."""
    await store.put_resource(automation("a1", {"steps": ["old"]}))
    await store.publish_resource(WS, "automation", "a1", NOW + 1)
    await store.put_resource(automation("a1", {"steps": ["kept"]}, ws=OTHER_WS))
    await store.publish_resource(OTHER_WS, "automation", "a1", NOW + 1)

    assert await store.delete_resource(WS, "automation", "a1") is True
    assert await store.list_resource_versions(WS, "automation", "a1") == []
    assert len(await store.list_resource_versions(OTHER_WS, "automation", "a1")) == 1

    await store.put_resource(automation("a1", {"steps": ["new"]}))
    again = await store.publish_resource(WS, "automation", "a1", NOW + 5)
    assert again is not None
    assert again.published_version == 1
    [only] = await store.list_resource_versions(WS, "automation", "a1")
    assert only.body == {"steps": ["new"]}


async def test_api_keys_list_per_workspace_and_revoke_stops_them(store: Store) -> None:
    """Keys list without the key itself; a revoked key no longer resolves and stays listed."""
    await store.add_api_key(WS, "hash-1", "rbx_aaaa", NOW)
    await store.add_api_key(WS, "hash-2", "rbx_bbbb", NOW + 1, mode="test")
    await store.add_api_key(OTHER_WS, "hash-3", "rbx_cccc", NOW)

    listed = await store.list_api_keys(WS)
    assert [(k.key_hash, k.prefix, k.mode, k.revoked_at) for k in listed] == [
        ("hash-1", "rbx_aaaa", "live", None),
        ("hash-2", "rbx_bbbb", "test", None),
    ]
    assert await store.revoke_api_key(OTHER_WS, "hash-1", NOW + 5) is False, "other workspace"
    assert await store.workspace_for_key("hash-1") == WS
    assert await store.revoke_api_key(WS, "hash-1", NOW + 5) is True
    assert await store.revoke_api_key(WS, "hash-1", NOW + 6) is False, "already revoked"
    assert await store.workspace_for_key("hash-1") is None
    assert await store.key_mode("hash-1") is None
    assert await store.workspace_for_key("hash-3") == OTHER_WS
    revoked = {k.key_hash: k.revoked_at for k in await store.list_api_keys(WS)}
    assert revoked == {"hash-1": NOW + 5, "hash-2": None}


def _run(run_id: str, recipient: str | None, created_at: float, ws: str = WS) -> Run:
    steps = ({"action": "send", "template": "t"},)
    return Run(
        id=run_id,
        workspace_id=ws,
        steps_def=steps,
        steps=new_steps(steps),
        context=RunContext(recipient=recipient, data={"recipient": "not this one"}),
        status=RunStatus.PROCESSING,
        created_at=created_at,
        updated_at=created_at,
        due_at=created_at,
    )


async def test_list_runs_filters_by_recipient_with_dates_and_paging(store: Store) -> None:
    """Only runs whose context recipient matches exactly, within the dates, page by page."""
    for run in (
        _run("r0", "user-1", NOW),
        _run("r1", "user-2", NOW + 1),
        _run("r2", "user-1", NOW + 2),
        _run("r3", None, NOW + 3),
        _run("r4", "user-1", NOW + 4),
        _run("r5", "user-1", NOW + 4, ws=OTHER_WS),
    ):
        created = await store.create_run(run, lease_owner=None, merge_profile=False)
        assert created.run is not None

    first = await store.list_runs(WS, RunFilter(recipient="user-1"), cursor=None, limit=2)
    assert [r.id for r in first.runs] == ["r4", "r2"]
    assert first.next_cursor is not None
    second = await store.list_runs(
        WS, RunFilter(recipient="user-1"), cursor=first.next_cursor, limit=2
    )
    assert [r.id for r in second.runs] == ["r0"]
    dated = RunFilter(recipient="user-1", start=NOW + 1, end=NOW + 3)
    assert [r.id for r in (await store.list_runs(WS, dated, cursor=None, limit=9)).runs] == ["r2"]
    nobody = RunFilter(recipient="not this one")
    assert (await store.list_runs(WS, nobody, cursor=None, limit=9)).runs == []
