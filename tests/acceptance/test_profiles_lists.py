"""Profiles, lists, subscriptions and preferences through the official SDK (courier-api §7, §8)."""

from __future__ import annotations

from collections.abc import Callable

import courier
import pytest
from relaybox_harness import Workspace, unique


def test_profile_create_merge_patch_replace_delete(ws: Workspace) -> None:
    """create merges, update applies a JSON Patch, replace drops keys, delete → NotFoundError."""
    client = ws.client()
    uid = unique("p")
    assert client.profiles.create(uid, profile={"email": "a@b.c"}).status == "SUCCESS"
    assert client.profiles.create(uid, profile={"phone_number": "+1"}).status == "SUCCESS"
    got = client.profiles.retrieve(uid)
    assert got.profile == {"email": "a@b.c", "phone_number": "+1"}
    assert got.preferences is None
    patched = client.profiles.update(
        uid, patch=[{"op": "replace", "path": "/email", "value": "x@y.z"}]
    )
    assert patched is None
    assert client.profiles.retrieve(uid).profile == {"email": "x@y.z", "phone_number": "+1"}
    assert client.profiles.replace(uid, profile={"name": "Ada"}).status == "SUCCESS"
    assert client.profiles.retrieve(uid).profile == {"name": "Ada"}
    assert client.profiles.delete(uid) is None
    with pytest.raises(courier.NotFoundError) as caught:
        client.profiles.retrieve(uid)
    assert caught.value.body["type"] == "invalid_request_error"


def test_bad_json_patch_is_400_and_changes_nothing(ws: Workspace) -> None:
    """A patch whose second op has a bad path fails with 400 and the first op is not applied."""
    client = ws.client()
    uid = unique("p")
    client.profiles.create(uid, profile={"email": "a@b.c", "name": "Ada"})
    with pytest.raises(courier.BadRequestError) as caught:
        client.profiles.update(
            uid,
            patch=[
                {"op": "replace", "path": "/name", "value": "Bob"},
                {"op": "replace", "path": "/missing/deep", "value": "x"},
            ],
        )
    assert caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(courier.BadRequestError):
        client.profiles.update(uid, patch=[{"op": "frobnicate", "path": "/name", "value": "x"}])
    with pytest.raises(courier.BadRequestError):
        client.profiles.update(uid, patch=[{"op": "replace", "path": "name", "value": "x"}])
    assert client.profiles.retrieve(uid).profile == {"email": "a@b.c", "name": "Ada"}
    with pytest.raises(courier.NotFoundError):
        client.profiles.update(unique("nobody"), patch=[{"op": "add", "path": "/a", "value": "1"}])


def test_profile_bodies_are_validated(ws: Workspace) -> None:
    """A missing or non-object profile and malformed JSON get Courier's 400 envelope."""
    with ws.http() as http:
        uid = unique("p")
        for body in (b"{}", b'{"profile": [1]}', b"{not json"):
            response = http.post(f"/profiles/{uid}", content=body)
            assert response.status_code == 400, response.text
            assert response.json()["type"] == "invalid_request_error"
        assert http.get(f"/profiles/{uid}").status_code == 404


def test_profile_merge_is_idempotent_with_a_key(ws: Workspace) -> None:
    """A repeated POST /profiles with one Idempotency-Key replays the first answer."""
    client = ws.client()
    uid = unique("p")
    first = client.profiles.create(uid, profile={"n": 1}, idempotency_key=unique("k"))
    assert first.status == "SUCCESS"
    key = unique("k")
    with ws.http() as http:
        one = http.post(
            f"/profiles/{uid}", json={"profile": {"n": 2}}, headers={"Idempotency-Key": key}
        )
        assert one.status_code == 200
        client.profiles.create(uid, profile={"n": 3})
        again = http.post(
            f"/profiles/{uid}", json={"profile": {"n": 2}}, headers={"Idempotency-Key": key}
        )
        assert again.status_code == 200
        assert again.headers.get("idempotent-replayed") == "true"
    assert client.profiles.retrieve(uid).profile == {"n": 3}


def test_lists_and_subscriptions_roundtrip(ws: Workspace) -> None:
    """update/retrieve a list, add and subscribe_user, list(pattern), unsubscribe, profile lists."""
    client = ws.client()
    root = unique("team")
    list_id = f"{root}.eng"
    u1, u2 = unique("u1"), unique("u2")
    assert client.lists.update(list_id, name="Eng") is None
    got = client.lists.retrieve(list_id)
    assert (got.id, got.name) == (list_id, "Eng")
    assert got.created
    assert got.updated
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": u1}])
    client.lists.subscriptions.subscribe_user(
        u2,
        list_id=list_id,
        preferences={"notifications": {"t1": {"status": "OPTED_OUT"}}},
    )
    subs = client.lists.subscriptions.list(list_id)
    assert {s.recipient_id for s in subs.items} == {u1, u2}
    assert subs.paging.more is False
    by_user = {s.recipient_id: s for s in subs.items}
    assert by_user[u2].preferences is not None
    assert by_user[u2].preferences.notifications["t1"].status == "OPTED_OUT"

    client.lists.update(f"{root}.ops", name="Ops")
    client.lists.update(f"{root}.eng.backend", name="Backend")
    client.lists.update(f"other-{root}.eng", name="Elsewhere")
    one_part = {x.id for x in client.lists.list(pattern=f"{root}.*").items}
    assert one_part == {list_id, f"{root}.ops"}
    deep = {x.id for x in client.lists.list(pattern=f"{root}.**").items}
    assert deep == {list_id, f"{root}.ops", f"{root}.eng.backend"}
    assert [x.id for x in client.lists.list(pattern=list_id).items] == [list_id]

    mine = client.profiles.lists.retrieve(u2)
    assert [r.id for r in mine.results] == [list_id]
    assert mine.results[0].name == "Eng"
    assert client.lists.subscriptions.unsubscribe_user(u2, list_id=list_id) is None
    assert client.profiles.lists.retrieve(u2).results == []
    with pytest.raises(courier.NotFoundError):
        client.lists.subscriptions.unsubscribe_user(u2, list_id=list_id)
    assert [s.recipient_id for s in client.lists.subscriptions.list(list_id).items] == [u1]


def test_add_keeps_existing_and_put_replaces_all(ws: Workspace) -> None:
    """POST subscriptions auto-creates the list and keeps existing rows; PUT replaces them."""
    client = ws.client()
    list_id = unique("auto")
    a, b, c = unique("a"), unique("b"), unique("c")
    prefs = {"notifications": {"t": {"status": "OPTED_IN"}}}
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": a, "preferences": prefs}])
    assert client.lists.retrieve(list_id).name == list_id
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": a}, {"recipient_id": b}])
    items = {s.recipient_id: s for s in client.lists.subscriptions.list(list_id).items}
    assert set(items) == {a, b}
    assert items[a].preferences is not None
    client.lists.subscriptions.subscribe(list_id, recipients=[{"recipient_id": c}])
    assert [s.recipient_id for s in client.lists.subscriptions.list(list_id).items] == [c]


def test_subscriptions_page_with_cursor(ws: Workspace) -> None:
    """Twenty-five subscribers come back in two stable pages via paging.cursor."""
    client = ws.client()
    list_id = unique("big")
    users = sorted(f"{unique('m')}-{i:02d}" for i in range(25))
    client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": u} for u in users])
    first = client.lists.subscriptions.list(list_id)
    assert first.paging.more is True
    assert first.paging.cursor
    second = client.lists.subscriptions.list(list_id, cursor=first.paging.cursor)
    assert second.paging.more is False
    seen = [s.recipient_id for s in first.items + second.items]
    assert seen == users
    with pytest.raises(courier.BadRequestError):
        client.lists.subscriptions.list(list_id, cursor="!!garbage!!")


def test_delete_and_restore_list(ws: Workspace) -> None:
    """A deleted list is 404 and unlisted; restore brings it back with its subscribers."""
    client = ws.client()
    list_id = unique("gone")
    user = unique("u")
    client.lists.subscriptions.subscribe_user(user, list_id=list_id)
    assert client.lists.delete(list_id) is None
    with pytest.raises(courier.NotFoundError):
        client.lists.retrieve(list_id)
    assert client.lists.list(pattern=list_id).items == []
    assert client.profiles.lists.retrieve(user).results == []
    with pytest.raises(courier.NotFoundError):
        client.lists.delete(list_id)
    assert client.lists.restore(list_id) is None
    assert client.lists.retrieve(list_id).id == list_id
    assert [s.recipient_id for s in client.lists.subscriptions.list(list_id).items] == [user]
    with pytest.raises(courier.NotFoundError):
        client.lists.restore(unique("never"))


def test_profile_lists_subscribe_and_delete(ws: Workspace) -> None:
    """profiles.lists.subscribe creates missing lists; profiles.lists.delete removes them all."""
    client = ws.client()
    user = unique("u")
    l1, l2 = unique("pl1"), unique("pl2")
    answer = client.profiles.lists.subscribe(
        user, lists=[{"list_id": l1}, {"list_id": l2, "preferences": {"categories": {}}}]
    )
    assert answer.status == "SUCCESS"
    assert sorted(r.id for r in client.profiles.lists.retrieve(user).results) == sorted([l1, l2])
    assert client.lists.retrieve(l2).name == l2
    assert client.profiles.lists.delete(user).status == "SUCCESS"
    assert client.profiles.lists.retrieve(user).results == []


def test_list_bodies_are_validated(ws: Workspace) -> None:
    """A list without a name or recipients without ids are 400 and create nothing."""
    list_id = unique("bad")
    with ws.http() as http:
        assert http.put(f"/lists/{list_id}", json={}).status_code == 400
        bad = http.post(f"/lists/{list_id}/subscriptions", json={"recipients": [{"x": 1}]})
        assert bad.status_code == 400
        assert bad.json()["type"] == "invalid_request_error"
        assert http.get(f"/lists/{list_id}").status_code == 404


def test_user_topic_preferences(ws: Workspace) -> None:
    """update_or_create_topic stores a choice that retrieve, retrieve_topic and profiles show."""
    client = ws.client()
    user = unique("u")
    default = client.users.preferences.retrieve_topic("news", user_id=user)
    assert default.topic.status == "OPTED_IN"
    answer = client.users.preferences.update_or_create_topic(
        "news",
        user_id=user,
        topic={"status": "OPTED_OUT", "has_custom_routing": True, "custom_routing": ["email"]},
    )
    assert answer.message
    topic = client.users.preferences.retrieve_topic("news", user_id=user).topic
    assert (topic.topic_id, topic.status, topic.custom_routing) == ("news", "OPTED_OUT", ["email"])
    listed = client.users.preferences.retrieve(user)
    assert [(t.topic_id, t.status) for t in listed.items] == [("news", "OPTED_OUT")]
    client.profiles.create(user, profile={"email": "p@example.test"})
    prefs = client.profiles.retrieve(user).preferences
    assert prefs is not None
    assert prefs.notifications is not None
    assert prefs.notifications["news"].status == "OPTED_OUT"
    with pytest.raises(courier.BadRequestError):
        client.users.preferences.update_or_create_topic(
            "news",
            user_id=user,
            topic={"status": "MAYBE"},  # type: ignore[typeddict-item]
        )


def test_profiles_and_lists_are_isolated_by_workspace(
    ws: Workspace, new_workspace: Callable[[str], Workspace]
) -> None:
    """Workspace B cannot see, patch or list A's profiles, lists or subscriptions."""
    a = ws.client()
    user, list_id = unique("iso"), unique("iso-list")
    a.profiles.create(user, profile={"email": "a@example.test"})
    a.lists.subscriptions.subscribe_user(user, list_id=list_id)
    b = new_workspace("people").client()
    with pytest.raises(courier.NotFoundError):
        b.profiles.retrieve(user)
    with pytest.raises(courier.NotFoundError):
        b.profiles.update(user, patch=[{"op": "add", "path": "/x", "value": "1"}])
    with pytest.raises(courier.NotFoundError):
        b.lists.retrieve(list_id)
    with pytest.raises(courier.NotFoundError):
        b.lists.subscriptions.list(list_id)
    assert b.lists.list(pattern=list_id).items == []
    assert b.profiles.lists.retrieve(user).results == []
    b.profiles.create(user, profile={"email": "b@example.test"})
    assert a.profiles.retrieve(user).profile == {"email": "a@example.test"}


def test_bulk_preference_update_replace_and_delete(ws: Workspace) -> None:
    """bulk_update applies good topics and reports bad ones; bulk_replace resets the rest."""
    client = ws.client()
    user = unique("bulk")
    updated = client.users.preferences.bulk_update(
        user,
        topics=[
            {"topic_id": "a", "status": "OPTED_OUT"},
            {"topic_id": "b", "status": "OPTED_IN", "has_custom_routing": True,
             "custom_routing": ["sms"]},
            {"topic_id": "c", "status": "REQUIRED"},  # type: ignore[typeddict-item]
        ],
    )  # fmt: skip
    assert [(t.topic_id, t.status) for t in updated.items] == [
        ("a", "OPTED_OUT"),
        ("b", "OPTED_IN"),
    ]
    assert updated.items[1].custom_routing == ["sms"]
    assert [e.topic_id for e in updated.errors] == ["c"]
    listed = client.users.preferences.retrieve(user).items
    assert [t.topic_id for t in listed] == ["a", "b"]

    replaced = client.users.preferences.bulk_replace(
        user,
        topics=[{"topic_id": "b", "status": "OPTED_OUT"}, {"topic_id": "z", "status": "OPTED_IN"}],
    )
    assert replaced.deleted == ["a"]
    assert [(t.topic_id, t.status) for t in replaced.items] == [
        ("b", "OPTED_OUT"),
        ("z", "OPTED_IN"),
    ]
    with pytest.raises(courier.BadRequestError):
        client.users.preferences.bulk_replace(user, topics=[{"status": "OPTED_IN"}])  # type: ignore[typeddict-item]
    assert [t.topic_id for t in client.users.preferences.retrieve(user).items] == ["b", "z"]

    assert client.users.preferences.delete_topic("b", user_id=user) is None
    assert client.users.preferences.retrieve_topic("b", user_id=user).topic.status == "OPTED_IN"
    assert [t.topic_id for t in client.users.preferences.retrieve(user).items] == ["z"]


def test_lists_page_through_a_pattern(ws: Workspace) -> None:
    """lists.list(pattern) pages 20 at a time, skipping non-matching ids, in id order."""
    client = ws.client()
    root = unique("paged")
    wanted = sorted(f"{root}.{i:02d}" for i in range(23))
    for list_id in wanted:
        client.lists.update(list_id, name=list_id)
        client.lists.update(f"{list_id}.deeper", name="not one part")
    first = client.lists.list(pattern=f"{root}.*")
    assert first.paging.more is True
    second = client.lists.list(pattern=f"{root}.*", cursor=first.paging.cursor)
    assert second.paging.more is False
    assert [x.id for x in first.items + second.items] == wanted


def test_subscription_posts_replay_under_one_idempotency_key(ws: Workspace) -> None:
    """A replayed POST with the same key does not subscribe again after an unsubscribe."""
    client = ws.client()
    list_id, user = unique("idem-list"), unique("u")
    key = unique("key")
    client.lists.subscriptions.add(
        list_id, recipients=[{"recipient_id": user}], idempotency_key=key
    )
    client.lists.subscriptions.unsubscribe_user(user, list_id=list_id)
    client.lists.subscriptions.add(
        list_id, recipients=[{"recipient_id": user}], idempotency_key=key
    )
    assert client.lists.subscriptions.list(list_id).items == []
    other = unique("key")
    client.profiles.lists.subscribe(user, lists=[{"list_id": list_id}], idempotency_key=other)
    client.profiles.lists.delete(user)
    again = client.profiles.lists.subscribe(
        user, lists=[{"list_id": list_id}], idempotency_key=other
    )
    assert again.status == "SUCCESS"
    assert client.profiles.lists.retrieve(user).results == []


def test_preferences_are_isolated_by_workspace(
    ws: Workspace, new_workspace: Callable[[str], Workspace]
) -> None:
    """A topic choice made in workspace A is invisible to workspace B."""
    user = unique("pref-iso")
    ws.client().users.preferences.update_or_create_topic(
        "t", user_id=user, topic={"status": "OPTED_OUT"}
    )
    b = new_workspace("prefs").client()
    assert b.users.preferences.retrieve(user).items == []
    assert b.users.preferences.retrieve_topic("t", user_id=user).topic.status == "OPTED_IN"


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/x"}],
        [{"op": "test", "path": "/name", "value": "Bob"}],
        [{"op": 5, "path": "/name", "value": "x"}],
        [{"path": "/name", "value": "x"}],
        [{"op": "replace", "value": "x"}],
        [{"op": "move", "path": "/x"}],
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "", "value": "not an object"}],
        ["not an op"],
        {"op": "add"},
    ],
)
def test_malformed_patches_are_400_never_500(ws: Workspace, patch: object) -> None:
    """Every malformed or failing JSON Patch gets the 400 envelope and leaves the profile."""
    uid = unique("p")
    with ws.http() as http:
        assert http.put(f"/profiles/{uid}", json={"profile": {"name": "Ada"}}).status_code == 200
        response = http.patch(f"/profiles/{uid}", json={"patch": patch})
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "invalid_request_error"
        assert http.get(f"/profiles/{uid}").json()["profile"] == {"name": "Ada"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/lists/{list}", {"name": 5}),
        ("PUT", "/lists/{list}", {"name": "x", "preferences": [1]}),
        ("PUT", "/lists/{list}", b"[1, 2]"),
        ("POST", "/lists/{list}/subscriptions", {"recipients": "everyone"}),
        ("POST", "/lists/{list}/subscriptions", {"recipients": [{"recipientId": 5}]}),
        ("PUT", "/lists/{list}/subscriptions", {"recipients": [{"recipientId": ""}]}),
        ("PUT", "/lists/{list}/subscriptions/{user}", {"preferences": "all"}),
        ("POST", "/profiles/{user}/lists", {"lists": [{"listId": None}]}),
        ("POST", "/profiles/{user}/lists", {"lists": ["x"]}),
        (
            "PUT",
            "/users/{user}/preferences/t",
            {"topic": {"status": "OPTED_IN", "custom_routing": ["fax"]}},
        ),
        (
            "PUT",
            "/users/{user}/preferences/t",
            {"topic": {"status": "OPTED_IN", "has_custom_routing": "y"}},
        ),
        ("PUT", "/users/{user}/preferences/t", {}),
        ("POST", "/users/{user}/preferences", {"topics": {}}),
        ("GET", "/lists?cursor=%%%", None),
        ("GET", "/profiles/{user}/lists?cursor=bm90LWEtY3Vyc29y", None),
    ],
)
def test_bad_people_requests_are_400_and_write_nothing(
    ws: Workspace, method: str, path: str, body: object
) -> None:
    """Malformed list, subscription and preference requests get the 400 envelope, no writes."""
    list_id, user = unique("badreq"), unique("u")
    url = path.format(list=list_id, user=user)
    content = body if isinstance(body, bytes) else None
    with ws.http() as http:
        response = http.request(
            method, url, json=None if content or body is None else body, content=content
        )
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "invalid_request_error"
        assert http.get(f"/lists/{list_id}").status_code == 404
        assert http.get(f"/profiles/{user}/lists").json()["results"] == []
        assert http.get(f"/users/{user}/preferences").json()["items"] == []
