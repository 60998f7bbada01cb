"""The inbox provider against a real server process: a message sent with the SDK to a user on
the inbox channel is stored for that user, listed over the API, pushed live over Server-Sent
Events to a real streaming HTTP client, and marking it read lowers the unread count."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from events_harness import EventStream
from relaybox_harness import RelayboxServer, Workspace, start_webhook_receiver, unique, wait_for


@pytest.fixture(scope="module")
def inbox_ws(new_workspace: Callable[[str], Workspace]) -> Workspace:
    ws = new_workspace("inbox")
    ws.client().providers.create(provider="inbox", settings={})
    return ws


@pytest.fixture
def open_stream() -> Iterator[Callable[[Workspace, str], EventStream]]:
    opened: list[EventStream] = []

    def open_(ws: Workspace, user: str) -> EventStream:
        stream = EventStream(ws, user)
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.close()


def send_inbox(ws: Workspace, user: str, title: str, **extra: Any) -> str:
    response = ws.client().send.message(
        message={
            "to": {"user_id": user},
            "content": {"title": title, "body": "Your order {{order}} shipped"},
            "data": {"order": "ORD-1"},
            "routing": {"method": "single", "channels": ["inbox"]},
            **extra,
        }
    )
    return str(response.request_id)


def test_inbox_message_is_listed_streamed_live_and_marked_read(
    inbox_ws: Workspace, open_stream: Callable[[Workspace, str], EventStream]
) -> None:
    ws = inbox_ws
    user = unique("reader")
    receiver = start_webhook_receiver()
    with ws.http() as http:
        endpoint = http.post("/webhooks", json={"url": receiver.url, "events": ["OPENED"]}).json()
    stream = open_stream(ws, user)
    assert stream.next("unread") == {"unreadCount": 0}
    assert stream.status == 200
    assert stream.content_type is not None
    assert stream.content_type.startswith("text/event-stream")

    message_id = send_inbox(ws, user, "Shipped {{order}}")
    live = stream.next("message")
    assert live["messageId"] == message_id
    assert live["title"] == "Shipped ORD-1"
    assert live["body"] == "Your order ORD-1 shipped"
    assert live["data"] == {"order": "ORD-1"}
    assert live["read"] is None
    assert stream.next("unread") == {"unreadCount": 1}

    message = ws.wait_message(message_id, "SENT")
    assert message.to_dict()["channel"] == "inbox"
    with ws.http() as http:
        listed = http.get(f"/inbox/{user}/messages").json()
        assert listed["unreadCount"] == 1
        assert [m["messageId"] for m in listed["results"]] == [message_id]
        assert listed["results"][0]["created"]
        # Another user of the workspace sees nothing of it.
        other = http.get(f"/inbox/{unique('other')}/messages").json()
        assert other == {"results": [], "paging": {"cursor": None, "more": False}, "unreadCount": 0}

        marked = http.post(f"/inbox/{user}/messages/{message_id}/read")
        assert marked.status_code == 200, marked.text
        assert marked.json()["read"] is not None
        assert marked.json()["unreadCount"] == 0
        assert http.get(f"/inbox/{user}/messages").json()["unreadCount"] == 0
    updated = stream.next("message-updated")
    assert updated["messageId"] == message_id
    assert updated["read"] is not None
    assert stream.next("unread") == {"unreadCount": 0}

    # Reading it opened the message: its status, history and a delivery event say so.
    try:
        assert ws.client().messages.retrieve(message_id).status == "OPENED"
        types = [e["type"] for e in ws.history(message_id)]
        assert types[-1] == "OPENED"
        wait_for(lambda: receiver.acknowledged(message_id), what="the OPENED event")
        assert receiver.acknowledged(message_id) == ["OPENED"]
    finally:
        with ws.http() as http:
            http.delete(f"/webhooks/{endpoint['id']}")
        receiver.stop()


def test_archive_unread_and_errors(inbox_ws: Workspace, ws: Workspace) -> None:
    other_ws, ws = ws, inbox_ws
    user = unique("archiver")
    first = send_inbox(ws, user, "One")
    second = send_inbox(ws, user, "Two")
    with ws.http() as http:
        listed = wait_for(
            lambda: (
                (found := http.get(f"/inbox/{user}/messages").json())["unreadCount"] == 2 and found
            ),
            what="two inbox messages",
        )
        assert {m["messageId"] for m in listed["results"]} == {first, second}
        with other_ws.http() as other:  # the same user id in another workspace: nothing
            assert other.get(f"/inbox/{user}/messages").json()["results"] == []
            assert other.post(f"/inbox/{user}/messages/{first}/read").status_code == 404

        assert http.post(f"/inbox/{user}/messages/{first}/archive").json()["unreadCount"] == 1
        active = http.get(f"/inbox/{user}/messages").json()
        assert [m["messageId"] for m in active["results"]] == [second]
        archived = http.get(f"/inbox/{user}/messages", params={"archived": "true"}).json()
        assert [m["messageId"] for m in archived["results"]] == [first]
        everything = http.get(f"/inbox/{user}/messages", params={"archived": "all"}).json()
        assert len(everything["results"]) == 2

        http.post(f"/inbox/{user}/messages/{second}/read")
        assert http.post(f"/inbox/{user}/messages/{second}/unread").json()["unreadCount"] == 1

        for path, status in (
            (f"/inbox/{user}/messages/{first}/explode", 404),
            (f"/inbox/{unique('nobody')}/messages/{first}/read", 404),
        ):
            answer = http.post(path)
            assert answer.status_code == status
            assert answer.json()["type"] == "invalid_request_error"
        bad = http.get(f"/inbox/{user}/messages", params={"archived": "maybe"})
        assert bad.status_code == 400
        assert http.get(f"/inbox/{user}/messages", params={"cursor": "junk"}).status_code == 400
    unauthorized = httpx.get(f"{ws.server.url}/inbox/{user}/messages", timeout=10)
    assert unauthorized.status_code == 401


def test_inbox_provider_takes_no_settings(inbox_ws: Workspace) -> None:
    with inbox_ws.http() as http:
        answer = http.post("/providers", json={"provider": "inbox", "settings": {"x": 1}})
    assert answer.status_code == 400
    assert "no settings" in answer.json()["message"]


def test_open_streams_end_on_shutdown(
    start_server: Callable[[str], RelayboxServer],
    open_stream: Callable[[Workspace, str], EventStream],
) -> None:
    """SIGTERM with a client still streaming: the stream is ended so the drain completes
    (uvicorn would otherwise wait for the connection until its 30 s drain limit, past the
    20 s allowed here)."""
    server = start_server("inbox-shutdown")
    ws = Workspace(server, server.api_key)
    try:
        stream = open_stream(ws, unique("listener"))
        assert stream.next("unread") == {"unreadCount": 0}
        assert server.terminate(timeout=20) == 0
    finally:
        ws.close()
        server.stop()


def test_user_tokens_from_issue_token_reach_only_their_user(inbox_ws: Workspace) -> None:
    """A JWT from the SDK's ``auth.issue_token`` lists and streams its user's inbox, marks only
    with the write scope, and opens nothing of another user."""
    ws = inbox_ws
    user = unique("token-user")
    reader = (
        ws.client()
        .auth.issue_token(scope=f"user_id:{user} inbox:read:messages", expires_in="2 hours")
        .token
    )
    writer = (
        ws.client()
        .auth.issue_token(
            scope=f"user_id:{user} inbox:read:messages inbox:write:events", expires_in="1h"
        )
        .token
    )
    stream = EventStream(ws, user, token=reader)
    try:
        assert stream.next("unread") == {"unreadCount": 0}
        message_id = send_inbox(ws, user, "For the token")
        assert stream.next("message")["messageId"] == message_id
    finally:
        stream.close()

    def as_user(token: str) -> httpx.Client:
        return httpx.Client(
            base_url=ws.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    with as_user(reader) as http:
        listed = http.get(f"/inbox/{user}/messages").json()
        assert [m["messageId"] for m in listed["results"]] == [message_id]
        refused = http.post(f"/inbox/{user}/messages/{message_id}/read")
        assert refused.status_code == 403
        assert refused.json()["type"] == "invalid_request_error"
        assert http.get(f"/inbox/{unique('someone-else')}/messages").status_code == 403
        # A user token is not an API key.
        assert http.get("/messages").status_code == 401
    with as_user(writer) as http:
        marked = http.post(f"/inbox/{user}/messages/{message_id}/read")
        assert marked.status_code == 200
        assert marked.json()["unreadCount"] == 0
    header, claims, signature = reader.split(".")
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    with as_user(f"{header}.{claims}.{tampered}") as http:
        assert http.get(f"/inbox/{user}/messages").status_code == 401
    with ws.http() as http:
        bad = http.post("/auth/issue-token", json={"scope": "user_id:x", "expires_in": "soon"})
        assert bad.status_code == 400
        assert "expires_in" in bad.json()["message"]
