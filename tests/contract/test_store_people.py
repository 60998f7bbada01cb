"""Store contract for people verbs: profile edits, lists, subscriptions, topic preferences."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaybox.errors import NotFound
from relaybox.storage.base import Preference, Store, Subscription

NOW = 1_700_000_000.0
WS = "ws_alpha"
OTHER_WS = "ws_beta"


def sub(list_id: str, user_id: str, *, ws: str = WS, at: float = NOW, **prefs: Any) -> Subscription:
    return Subscription(ws, list_id, user_id, at, prefs or None)


async def test_update_profile_creates_merges_and_can_refuse(store: Store) -> None:
    """update_profile creates, merges under the lock, and writes nothing when change raises."""
    merged = await store.update_profile(WS, "u1", lambda cur: {**(cur or {}), "a": 1}, NOW)
    assert merged == {"a": 1}
    merged = await store.update_profile(WS, "u1", lambda cur: {**(cur or {}), "b": 2}, NOW)
    assert merged == {"a": 1, "b": 2}

    def refuse(current: dict[str, Any] | None) -> dict[str, Any] | None:
        raise NotFound("nope")

    with pytest.raises(NotFound):
        await store.update_profile(WS, "u1", refuse, NOW)
    assert await store.get_profile(WS, "u1") == {"a": 1, "b": 2}
    assert await store.update_profile(WS, "u1", lambda cur: None, NOW) == {"a": 1, "b": 2}
    assert await store.get_profile(OTHER_WS, "u1") is None


async def test_concurrent_profile_merges_lose_nothing(store: Store) -> None:
    """Forty concurrent merges of distinct keys all survive (no lost read-modify-write)."""

    def add(key: str) -> Any:
        return lambda cur: {**(cur or {}), key: True}

    await asyncio.gather(*(store.update_profile(WS, "busy", add(f"k{i}"), NOW) for i in range(40)))
    assert await store.get_profile(WS, "busy") == {f"k{i}": True for i in range(40)}


async def test_delete_profile(store: Store) -> None:
    """delete_profile removes only that workspace's profile and reports whether it existed."""
    await store.put_profile(WS, "u1", {"a": 1}, NOW)
    await store.put_profile(OTHER_WS, "u1", {"a": 2}, NOW)
    assert await store.delete_profile(WS, "u1") is True
    assert await store.delete_profile(WS, "u1") is False
    assert await store.get_profile(WS, "u1") is None
    assert await store.get_profile(OTHER_WS, "u1") == {"a": 2}


async def test_put_get_and_page_lists(store: Store) -> None:
    """put_list creates or replaces; list_lists pages by id and filters by literal prefix."""
    prefs = {"notifications": {"t1": {"status": "OPTED_OUT"}}}
    await store.put_list(WS, "team.eng", "Eng", prefs, NOW)
    await store.put_list(WS, "team.eng", "Engineering", None, NOW + 5)
    found = await store.get_list(WS, "team.eng")
    assert found is not None
    assert (found.name, found.preferences, found.created_at, found.updated_at) == (
        "Engineering",
        None,
        NOW,
        NOW + 5,
    )
    for list_id in ("team.ops", "team_x", "teamster", "a.b"):
        await store.put_list(WS, list_id, list_id, None, NOW)
    await store.put_list(OTHER_WS, "team.secret", "S", None, NOW)
    ids = [x.id for x in await store.list_lists(WS, prefix="team.", after=None, limit=10)]
    assert ids == ["team.eng", "team.ops"]
    everything = [x.id for x in await store.list_lists(WS, prefix="", after=None, limit=10)]
    assert everything == sorted(everything)
    assert set(everything) == {"a.b", "team.eng", "team.ops", "team_x", "teamster"}
    page = await store.list_lists(WS, prefix="", after="team.eng", limit=2)
    assert [x.id for x in page] == ["team.ops", "team_x"]
    # "_" in a prefix is literal, not a LIKE wildcard.
    assert [x.id for x in await store.list_lists(WS, prefix="team_", after=None, limit=9)] == [
        "team_x"
    ]


async def test_soft_delete_restore_and_recreate_lists(store: Store) -> None:
    """A deleted list is hidden with its subscribers; restore brings both back; recreating
    a deleted list starts it empty."""
    await store.subscribe([sub("l1", "u1"), sub("l1", "u2")], update_existing=False)
    assert await store.delete_list(WS, "l1", NOW + 1) is True
    assert await store.delete_list(WS, "l1", NOW + 1) is False
    assert await store.get_list(WS, "l1") is None
    assert await store.list_lists(WS, prefix="", after=None, limit=10) == []
    assert await store.user_subscriptions(WS, "u1", after=None, limit=10) == []
    assert await store.restore_list(WS, "l1", NOW + 2) is True
    assert await store.get_list(WS, "l1") is not None
    users = [s.user_id for s in await store.list_subscribers(WS, "l1", after=None, limit=10)]
    assert users == ["u1", "u2"]
    assert await store.restore_list(WS, "missing", NOW) is False

    await store.delete_list(WS, "l1", NOW + 3)
    await store.put_list(WS, "l1", "Fresh", None, NOW + 4)
    assert await store.list_subscribers(WS, "l1", after=None, limit=10) == []


async def test_subscribe_adds_keeps_or_updates_and_creates_lists(store: Store) -> None:
    """subscribe auto-creates the list (named after its id); existing rows keep or update."""
    await store.subscribe([sub("news", "u1", channel="email")], update_existing=False)
    created = await store.get_list(WS, "news")
    assert created is not None
    assert created.name == "news"
    await store.subscribe([sub("news", "u1", channel="sms", at=NOW + 9)], update_existing=False)
    (kept,) = await store.list_subscribers(WS, "news", after=None, limit=10)
    assert kept.preferences == {"channel": "email"}
    assert kept.created_at == NOW
    await store.subscribe([sub("news", "u1", channel="sms", at=NOW + 9)], update_existing=True)
    (updated,) = await store.list_subscribers(WS, "news", after=None, limit=10)
    assert updated.preferences == {"channel": "sms"}
    assert await store.list_subscribers(OTHER_WS, "news", after=None, limit=10) == []


async def test_replace_subscribers_and_unsubscribe(store: Store) -> None:
    """replace_subscribers leaves exactly the given users; unsubscribe reports existence."""
    await store.subscribe([sub("l", "a"), sub("l", "b")], update_existing=False)
    await store.replace_subscribers(WS, "l", [sub("l", "b", at=NOW + 5), sub("l", "c")], NOW + 5)
    found = await store.list_subscribers(WS, "l", after=None, limit=10)
    assert [(s.user_id, s.created_at) for s in found] == [("b", NOW), ("c", NOW)]
    assert await store.unsubscribe(WS, "l", "b") is True
    assert await store.unsubscribe(WS, "l", "b") is False
    assert await store.unsubscribe(OTHER_WS, "l", "c") is False
    page = await store.list_subscribers(WS, "l", after="b", limit=10)
    assert [s.user_id for s in page] == ["c"]


async def test_user_subscriptions_and_unsubscribe_all(store: Store) -> None:
    """A user's lists page by list id with each subscription's preferences."""
    await store.put_list(WS, "b", "B", None, NOW)
    await store.subscribe([sub("b", "u"), sub("a", "u", x=1), sub("c", "u")], update_existing=True)
    await store.subscribe([sub("a", "u", ws=OTHER_WS)], update_existing=True)
    pairs = await store.user_subscriptions(WS, "u", after=None, limit=2)
    assert [(lst.id, lst.name, s.preferences) for lst, s in pairs] == [
        ("a", "a", {"x": 1}),
        ("b", "B", None),
    ]
    rest = await store.user_subscriptions(WS, "u", after="b", limit=2)
    assert [lst.id for lst, _ in rest] == ["c"]
    assert await store.unsubscribe_all(WS, "u") == 3
    assert await store.user_subscriptions(WS, "u", after=None, limit=9) == []
    assert len(await store.user_subscriptions(OTHER_WS, "u", after=None, limit=9)) == 1


async def test_preferences_put_get_list_delete(store: Store) -> None:
    """Topic preferences upsert per (workspace, user, topic) and list by topic id."""
    await store.put_preference(Preference(WS, "u", "t2", "OPTED_OUT", NOW))
    await store.put_preference(Preference(WS, "u", "t1", "OPTED_IN", NOW, True, ("email", "sms")))
    await store.put_preference(Preference(WS, "u", "t2", "REQUIRED", NOW + 1))
    got = await store.get_preference(WS, "u", "t1")
    assert got == Preference(WS, "u", "t1", "OPTED_IN", NOW, True, ("email", "sms"))
    listed = await store.list_preferences(WS, "u")
    assert [(p.topic_id, p.status) for p in listed] == [("t1", "OPTED_IN"), ("t2", "REQUIRED")]
    assert await store.get_preference(OTHER_WS, "u", "t1") is None
    assert await store.delete_preference(WS, "u", "t1") is True
    assert await store.delete_preference(WS, "u", "t1") is False
    assert await store.get_preference(WS, "u", "t1") is None


async def test_replace_preferences_reports_removed_topics(store: Store) -> None:
    """replace_preferences leaves exactly the given topics and names the ones it removed."""
    for topic in ("a", "b", "c"):
        await store.put_preference(Preference(WS, "u", topic, "OPTED_IN", NOW))
    await store.put_preference(Preference(OTHER_WS, "u", "a", "OPTED_IN", NOW))
    removed = await store.replace_preferences(
        WS,
        "u",
        [
            Preference(WS, "u", "b", "OPTED_OUT", NOW + 1),
            Preference(WS, "u", "d", "OPTED_IN", NOW + 1),
        ],
    )
    assert removed == ["a", "c"]
    listed = await store.list_preferences(WS, "u")
    assert [(p.topic_id, p.status) for p in listed] == [("b", "OPTED_OUT"), ("d", "OPTED_IN")]
    assert len(await store.list_preferences(OTHER_WS, "u")) == 1


async def test_concurrent_multi_list_subscribes_all_land(store: Store) -> None:
    """Concurrent subscribes naming the same new lists in opposite orders all succeed."""
    lists = [f"l{i}" for i in range(6)]

    async def join(user: str, order: list[str]) -> None:
        await store.subscribe([sub(x, user) for x in order], update_existing=True)

    await asyncio.gather(*(join(f"u{i}", lists if i % 2 else lists[::-1]) for i in range(12)))
    for list_id in lists:
        found = await store.list_subscribers(WS, list_id, after=None, limit=50)
        assert len(found) == 12


async def test_list_profiles_pages_by_user_id_within_a_workspace(store: Store) -> None:
    """Profiles in user-id order after a key, one workspace only, a page at a time."""
    for user in ("c", "a", "b", "d"):
        await store.put_profile(WS, user, {"n": user}, NOW)
    await store.put_profile(OTHER_WS, "a0", {"n": "other"}, NOW)
    first = await store.list_profiles(WS, after=None, limit=3)
    assert first == [("a", {"n": "a"}), ("b", {"n": "b"}), ("c", {"n": "c"})]
    assert await store.list_profiles(WS, after="c", limit=3) == [("d", {"n": "d"})]
    assert await store.list_profiles(OTHER_WS, after=None, limit=3) == [("a0", {"n": "other"})]
