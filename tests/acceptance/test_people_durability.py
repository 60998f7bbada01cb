"""Acknowledged profile, list and preference writes survive kill -9 of the server."""

from __future__ import annotations

from collections.abc import Callable

from relaybox_harness import RelayboxServer, Workspace, unique


def test_people_writes_survive_sigkill(start_server: Callable[[str], RelayboxServer]) -> None:
    """Everything answered 2xx before SIGKILL is there after a restart on the same database."""
    server = start_server("people-durable")
    ws = Workspace(server, server.api_key)
    try:
        client = ws.client()
        user, list_id = unique("dur"), unique("dur.list")
        client.profiles.create(user, profile={"email": "d@example.test"})
        client.profiles.update(user, patch=[{"op": "add", "path": "/tier", "value": "gold"}])
        client.lists.update(list_id, name="Durable")
        client.lists.subscriptions.subscribe_user(user, list_id=list_id)
        client.users.preferences.update_or_create_topic(
            "news", user_id=user, topic={"status": "OPTED_OUT"}
        )
        deleted = unique("dur.gone")
        client.lists.subscriptions.subscribe_user(user, list_id=deleted)
        client.lists.delete(deleted)

        assert server.kill() == -9
        server.start()

        client = ws.client()
        assert client.profiles.retrieve(user).profile == {"email": "d@example.test", "tier": "gold"}
        assert client.lists.retrieve(list_id).name == "Durable"
        assert [s.recipient_id for s in client.lists.subscriptions.list(list_id).items] == [user]
        topic = client.users.preferences.retrieve_topic("news", user_id=user).topic
        assert topic.status == "OPTED_OUT"
        assert [r.id for r in client.profiles.lists.retrieve(user).results] == [list_id]
        client.lists.restore(deleted)
        assert [s.recipient_id for s in client.lists.subscriptions.list(deleted).items] == [user]
    finally:
        ws.close()
        server.stop()
