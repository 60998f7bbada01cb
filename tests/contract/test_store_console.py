"""Store contract for what the console lists: published versions and a workspace's API keys."""

from __future__ import annotations

from dataclasses import replace

from relaybox.storage.base import Resource, Store

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
    assert one is not None and one.body == {"steps": [1]}
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
    assert again is not None and again.published_version == 1
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
