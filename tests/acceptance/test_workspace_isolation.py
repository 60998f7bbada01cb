"""API keys map to workspaces, and nothing crosses between workspaces."""

from __future__ import annotations

import threading
from collections.abc import Callable

import courier
import httpx
import pytest
from relaybox_harness import RelayboxServer, SmtpServer, Workspace, unique, unique_email


def test_runs_and_messages_are_invisible_to_other_workspaces(
    ws: Workspace, new_workspace: Callable[[str], Workspace], smtp: SmtpServer
) -> None:
    """A run (and its message) made with workspace A's key is 404 and unlisted for B's key."""
    template = unique("PRIVATE")
    ws.add_template(template, "Private", "Only for A")
    automation_id = unique("private-automation")
    ws.save_automation(automation_id, [{"action": "send", "template": template}])
    email = unique_email("ws-a")
    client_a = ws.client()
    run_a = client_a.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": template}]},
        recipient=unique("u"),
        profile={"email": email},
    ).run_id
    assert run_a
    ws.wait_run(run_a, "PROCESSED")
    smtp.recorder.wait_for(email)
    (step,) = ws.steps(run_a)
    assert step.message_id

    other = new_workspace("other")
    client_b = other.client()
    with pytest.raises(courier.NotFoundError):
        client_b.automations.runs.list_steps(run_a)
    with pytest.raises(courier.NotFoundError):
        client_b.messages.retrieve(step.message_id)
    with pytest.raises(courier.NotFoundError):
        client_b.automations.invoke.invoke_by_template(automation_id, recipient="u1")
    assert run_a not in {r.run_id for r in other.all_runs()}
    assert automation_id not in {t.id for t in client_b.automations.list(version="draft").templates}
    response = httpx.get(
        f"{other.server.url}/automations/runs/{run_a}",
        headers={"Authorization": f"Bearer {other.key}"},
    )
    assert response.status_code == 404
    with other.http() as http:
        assert http.post(f"/automations/runs/{run_a}/cancel").status_code == 404

    # B's own template names do not resolve to A's templates either.
    run_b = client_b.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": template}]},
        recipient=unique("u"),
        profile={"email": unique_email("ws-b")},
    ).run_id
    assert run_b
    assert "not found" in other.wait_run(run_b, "ERROR")["error"]
    # And A still sees its run.
    assert ws.run(run_a)["status"] == "PROCESSED"


def test_cancel_step_only_cancels_runs_of_its_own_workspace(
    ws: Workspace, new_workspace: Callable[[str], Workspace]
) -> None:
    """A cancel step in workspace B leaves A's runs with the same token waiting."""
    token = unique("shared-token")
    waiting = ws.client().automations.invoke.invoke_ad_hoc(
        automation={"cancelation_token": token, "steps": [{"action": "delay", "duration": "1h"}]}
    )
    assert waiting.run_id
    ws.wait_run(waiting.run_id, "WAITING")

    other = new_workspace("canceler")
    cancel = other.client().automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "cancel", "cancelation_token": token}]}
    )
    assert cancel.run_id
    other.wait_run(cancel.run_id, "PROCESSED")
    assert ws.run(waiting.run_id)["status"] == "WAITING"


def test_keys_create_works_while_the_server_is_writing(
    server: RelayboxServer, ws: Workspace
) -> None:
    """`relaybox keys create` on the live database succeeds during a stream of invokes."""
    client = ws.client()
    stop = threading.Event()
    outcomes: list[str | Exception] = []

    def invoke_until_stopped() -> None:
        while not stop.is_set():
            try:
                run_id = client.automations.invoke.invoke_ad_hoc(
                    automation={"steps": [{"action": "delay", "duration": "1ms"}]}
                ).run_id
                outcomes.append(run_id or "")
            except Exception as exc:
                outcomes.append(exc)

    writers = [threading.Thread(target=invoke_until_stopped) for _ in range(4)]
    for thread in writers:
        thread.start()
    try:
        name = unique("busy")
        key = server.create_key(name)
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=30)
    assert outcomes
    assert [o for o in outcomes if not isinstance(o, str) or not o] == []
    new = Workspace(server, key, name)
    try:
        assert new.client().automations.runs.list().runs == []
    finally:
        new.close()
