"""Test-environment keys (``relaybox keys create --test``): sends end SIMULATED, nothing leaves."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from relaybox_harness import SmtpServer, Workspace, unique_email, wait_for


def create_test_key(ws: Workspace) -> str:
    """A test-mode key for ``ws``'s workspace, made with the CLI against the server's database."""
    server = ws.server
    done = subprocess.run(
        [
            sys.executable, "-m", "relaybox", "keys", "create", "--test",
            "--workspace", ws.name, "--database-url", server.database_url,
        ],
        env=server.env(),
        capture_output=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout.decode().strip().splitlines()[-1].strip()


def test_test_key_sends_are_simulated(
    new_workspace: Callable[[str], Workspace], smtp: SmtpServer
) -> None:
    """A send with a test key is routed and rendered, ends SIMULATED, and no email goes out."""
    live = new_workspace("testmode")
    live.add_smtp_provider(smtp)
    test = Workspace(live.server, create_test_key(live), live.name)
    email = unique_email("simulated")
    response = test.client().send.message(
        message={
            "to": {"email": email},
            "content": {"title": "Pretend {{n}}", "body": "b"},
            "data": {"n": 1},
        }
    )
    client = test.client()
    message = wait_for(
        lambda: (
            m if (m := client.messages.retrieve(response.request_id)).status != "ENQUEUED" else None
        ),
        what="the simulated message to settle",
    )
    assert message.status == "SIMULATED"
    assert client.messages.content(response.request_id).results[0].content.title == "Pretend 1"
    kinds = [e["type"] for e in client.messages.history(response.request_id).results]
    assert kinds[-1] == "SIMULATED"
    assert smtp.recorder.to(email) == []
    # The same workspace: the live key sees the simulated message too.
    assert live.client().messages.retrieve(response.request_id).status == "SIMULATED"
    test.close()


def test_a_test_key_send_to_a_list_is_simulated_for_every_subscriber(
    new_workspace: Callable[[str], Workspace], smtp: SmtpServer
) -> None:
    """A list fan-out from a test key stays simulated: every subscriber's message, no email."""
    live = new_workspace("testmodelist")
    live.add_smtp_provider(smtp)
    test = Workspace(live.server, create_test_key(live), live.name)
    client = test.client()
    emails = {f"sim{n}": unique_email(f"simlist{n}") for n in range(2)}
    for user, email in emails.items():
        client.profiles.create(user, profile={"email": email})
    client.lists.subscriptions.add("sims", recipients=[{"recipient_id": u} for u in emails])
    sent = client.send.message(
        message={"to": {"list_id": "sims"}, "content": {"title": "Pretend", "body": "b"}}
    )

    def settled() -> list[str] | None:
        found = client.messages.list(message_id=sent.request_id).results or []
        statuses = [m.status for m in found]
        return statuses if len(found) == 2 and "ENQUEUED" not in statuses else None

    assert wait_for(settled, what="both list messages to settle") == ["SIMULATED", "SIMULATED"]
    for email in emails.values():
        assert smtp.recorder.to(email) == []
    test.close()
