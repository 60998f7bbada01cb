"""Store contract for the in-app inbox: idempotent storing, paging, unread counts, marks and
change hints."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tests.contract.test_store import NOW, OTHER_WS, WS, make_message

from relaybox.errors import ValidationError
from relaybox.storage.base import INBOX_TOPIC, InboxMessage, Store, inbox_key


def item(message_id: str, at: float = 0.0, *, user: str = "u1", ws: str = WS) -> InboxMessage:
    return InboxMessage(
        workspace_id=ws,
        id=message_id,
        user_id=user,
        created_at=NOW + at,
        updated_at=NOW + at,
        title=f"Title {message_id}",
        body="Body",
        actions=[{"content": "Open", "href": "https://example.test/x"}],
        data={"order": 1},
    )


async def test_put_is_idempotent_per_message_id(store: Store) -> None:
    assert await store.put_inbox_message(item("m_1")) is True
    assert await store.put_inbox_message(item("m_1", 5)) is False
    page = await store.list_inbox(WS, "u1", archived=None, cursor=None, limit=10)
    assert page.messages == [item("m_1")]
    assert page.next_cursor is None


async def test_list_is_newest_first_paged_and_scoped(store: Store) -> None:
    for i in range(5):
        await store.put_inbox_message(item(f"m_{i}", i))
    await store.put_inbox_message(item("m_other_user", 9, user="u2"))
    await store.put_inbox_message(item("m_other_ws", 9, ws=OTHER_WS))
    first = await store.list_inbox(WS, "u1", archived=None, cursor=None, limit=2)
    assert [m.id for m in first.messages] == ["m_4", "m_3"]
    assert first.next_cursor
    second = await store.list_inbox(WS, "u1", archived=None, cursor=first.next_cursor, limit=2)
    assert [m.id for m in second.messages] == ["m_2", "m_1"]
    third = await store.list_inbox(WS, "u1", archived=None, cursor=second.next_cursor, limit=2)
    assert [m.id for m in third.messages] == ["m_0"]
    assert third.next_cursor is None
    with pytest.raises(ValidationError):
        await store.list_inbox(WS, "u1", archived=None, cursor="not-a-cursor", limit=2)


async def test_marks_and_unread_count(store: Store) -> None:
    for i in range(3):
        await store.put_inbox_message(item(f"m_{i}", i))
    assert await store.inbox_unread_count(WS, "u1") == 3
    read = await store.update_inbox_message(WS, "u1", "m_0", read=True, archived=None, now=NOW + 10)
    assert read is not None
    assert read.read_at == NOW + 10
    again = await store.update_inbox_message(
        WS, "u1", "m_0", read=True, archived=None, now=NOW + 20
    )
    assert again is not None
    assert again.read_at == NOW + 10  # the first read time is kept
    assert await store.inbox_unread_count(WS, "u1") == 2
    archived = await store.update_inbox_message(
        WS, "u1", "m_1", read=None, archived=True, now=NOW + 30
    )
    assert archived is not None
    assert archived.archived_at == NOW + 30
    assert await store.inbox_unread_count(WS, "u1") == 1
    unarchived = await store.list_inbox(WS, "u1", archived=False, cursor=None, limit=10)
    assert [m.id for m in unarchived.messages] == ["m_2", "m_0"]
    only = await store.list_inbox(WS, "u1", archived=True, cursor=None, limit=10)
    assert [m.id for m in only.messages] == ["m_1"]
    unread = await store.update_inbox_message(
        WS, "u1", "m_0", read=False, archived=None, now=NOW + 40
    )
    assert unread is not None
    assert unread.read_at is None
    assert await store.inbox_unread_count(WS, "u1") == 2
    assert (
        await store.update_inbox_message(WS, "u2", "m_0", read=True, archived=None, now=NOW) is None
    )


async def test_watch_hints_name_the_changed_inbox(store: Store) -> None:
    seen: list[str] = []
    got = threading.Event()

    def on_change(payload: str) -> None:
        seen.append(payload)
        got.set()

    store.watch(INBOX_TOPIC, on_change)
    await store.put_inbox_message(item("m_1"))
    assert await asyncio.to_thread(got.wait, 5)
    assert inbox_key(WS, "u1") in seen
    got.clear()
    seen.clear()
    await store.update_inbox_message(WS, "u1", "m_1", read=True, archived=None, now=NOW)
    assert await asyncio.to_thread(got.wait, 5)
    assert inbox_key(WS, "u1") in seen


async def test_message_workspace_names_the_owner(store: Store) -> None:
    await store.save_message(make_message("m_ws", ws=OTHER_WS))
    assert await store.message_workspace("m_ws") == OTHER_WS
    assert await store.message_workspace("m_missing") is None


async def test_first_read_marks_the_message_opened(store: Store) -> None:
    """Reading the in-app message of a SENT message opens it, once, with a history event."""
    await store.save_message(make_message("m_1", status="SENT"))
    await store.put_inbox_message(item("m_1"))
    await store.update_inbox_message(WS, "u1", "m_1", read=True, archived=None, now=NOW + 5)
    await store.update_inbox_message(WS, "u1", "m_1", read=False, archived=None, now=NOW + 6)
    await store.update_inbox_message(WS, "u1", "m_1", read=True, archived=None, now=NOW + 7)
    message = await store.get_message(WS, "m_1")
    assert message is not None
    assert message.status == "OPENED"
    events = await store.message_events(WS, "m_1")
    assert [(e.type, e.ts) for e in events] == [("OPENED", NOW + 5)]
    # A message that was not delivered is left alone.
    await store.save_message(make_message("m_2", status="UNDELIVERABLE"))
    await store.put_inbox_message(item("m_2"))
    await store.update_inbox_message(WS, "u1", "m_2", read=True, archived=None, now=NOW)
    undelivered = await store.get_message(WS, "m_2")
    assert undelivered is not None
    assert undelivered.status == "UNDELIVERABLE"
