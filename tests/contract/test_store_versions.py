"""The Store contract for template versions and archiving (every backend, see conftest)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from relaybox.errors import ConflictError
from relaybox.storage.base import Resource, Store

NOW = 1_700_000_000.0
WS = "ws_alpha"
KIND = "notification"


def resource(rid: str, *, alias: str | None = None, draft: dict[str, object]) -> Resource:
    return Resource(
        workspace_id=WS,
        kind=KIND,
        id=rid,
        created_at=NOW,
        updated_at=NOW,
        alias=alias,
        name=rid,
        draft=dict(draft),
    )


async def _publish_drafts(store: Store, rid: str, *drafts: dict[str, object]) -> None:
    current = await store.put_resource(resource(rid, draft=drafts[0]))
    for n, draft in enumerate(drafts):
        current = await store.put_resource(replace(current, draft=draft))
        published = await store.publish_resource(WS, KIND, rid, NOW + n)
        assert published is not None
        current = published


async def test_versions_list_newest_first_and_page_by_version(store: Store) -> None:
    """Every publish adds an immutable version; listing pages newest first by version number."""
    await _publish_drafts(store, "nt_1", {"v": 1}, {"v": 2}, {"v": 3})
    first = await store.list_resource_versions(WS, KIND, "nt_1", before=None, limit=2)
    assert [(v.version, v.body) for v in first] == [(3, {"v": 3}), (2, {"v": 2})]
    rest = await store.list_resource_versions(WS, KIND, "nt_1", before=2, limit=2)
    assert [(v.version, v.body, v.published_at) for v in rest] == [(1, {"v": 1}, NOW)]
    assert await store.list_resource_versions(WS, KIND, "nt_other", before=None, limit=5) == []
    found = await store.get_resource_version(WS, KIND, "nt_1", 2)
    assert found is not None
    assert found.body == {"v": 2}
    assert await store.get_resource_version(WS, KIND, "nt_1", 9) is None


async def test_rollback_publishes_an_old_version_and_later_publishes_number_on(
    store: Store,
) -> None:
    """Publishing version 1 again leaves the draft alone; the next publish is version 4."""
    await _publish_drafts(store, "nt_1", {"v": 1}, {"v": 2}, {"v": 3})
    rolled = await store.publish_resource(WS, KIND, "nt_1", NOW + 10, version=1)
    assert rolled is not None
    assert (rolled.published, rolled.published_version, rolled.draft) == ({"v": 1}, 1, {"v": 3})
    stored = await store.get_resource(WS, KIND, "nt_1")
    assert stored is not None
    assert (stored.published, stored.published_version) == ({"v": 1}, 1)
    again = await store.publish_resource(WS, KIND, "nt_1", NOW + 20)
    assert again is not None
    assert again.published_version == 4
    assert await store.publish_resource(WS, KIND, "nt_1", NOW, version=42) is None


async def test_archived_resource_is_hidden_but_readable_by_id(store: Store) -> None:
    """Archiving keeps the object and versions; sends, listings and alias lookups skip it."""
    await store.put_resource(resource("nt_1", alias="welcome", draft={"v": 1}))
    await store.publish_resource(WS, KIND, "nt_1", NOW)
    archived = await store.archive_resource(WS, KIND, "nt_1", NOW + 5)
    assert archived is not None
    assert archived.archived_at == NOW + 5
    assert await store.get_resource(WS, KIND, "nt_1") is None
    assert await store.get_resource(WS, KIND, "welcome") is None
    kept = await store.get_resource(WS, KIND, "nt_1", include_archived=True)
    assert kept is not None
    assert kept.published == {"v": 1}
    assert kept.alias == "welcome"
    assert await store.list_resources(WS, KIND, after=None, limit=10) == []
    assert len(await store.list_resource_versions(WS, KIND, "nt_1", before=None, limit=5)) == 1
    # The alias is free for a new template; a live clash is still refused.
    await store.put_resource(resource("nt_2", alias="welcome", draft={"v": 2}))
    with pytest.raises(ConflictError):
        await store.put_resource(resource("nt_3", alias="welcome", draft={"v": 3}))
    assert await store.archive_resource(WS, KIND, "nt_missing", NOW) is None
