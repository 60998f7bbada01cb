"""The web console end to end: real ``relaybox serve``, real SMTP, real headless Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from console_harness import shot, sign_in
from playwright.sync_api import expect
from relaybox_harness import RelayboxServer, Workspace, unique, unique_email

FINAL_WAIT_MS = 20_000


def invoke(ws: Workspace, automation_id: str, **body: Any) -> str:
    with ws.http() as http:
        response = http.post(f"/automations/{automation_id}/invoke", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["runId"])


def test_sign_in_rejects_a_bad_key_and_accepts_a_good_one(page: Any, server: RelayboxServer):
    """A wrong key shows an error; the right key (typed, Enter) opens the runs page."""
    sign_in(page, server, "rbx_not_a_real_key")
    assert page.get_by_role("alert").inner_text() == "That API key is not valid."
    shot(page, "01-sign-in-error")
    cookie = next(c for c in page.context.cookies() if c["name"] == "relaybox_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    page.get_by_label("API key").fill(server.api_key)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/runs$"))
    assert page.get_by_role("heading", name="Runs").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/console/login$"))
    shot(page, "00-sign-in")
    page.goto(f"{server.url}/console")
    assert page.url.endswith("/console/login"), "signed out: pages redirect to sign-in"


def test_a_session_sees_only_its_own_workspace(page: Any, server: RelayboxServer, ws: Workspace):
    """Signed in with another workspace's key, a run of the default workspace is not found."""
    automation_id = unique("console-private")
    ws.save_automation(automation_id, [{"action": "delay", "duration": "0s"}])
    run_id = invoke(ws, automation_id)
    sign_in(page, server, server.create_key(unique("other")))
    page.wait_for_url(re.compile(r".*/console/runs$"))
    response = page.goto(f"{server.url}/console/runs/{run_id}")
    assert response is not None
    assert response.status == 404
    assert "not found" in page.get_by_role("alert").inner_text()
    page.goto(f"{server.url}/console/automations")
    assert automation_id not in page.locator("main").inner_text()


def test_skipped_step_shows_its_condition_and_the_values_it_read(
    console: Any, server: RelayboxServer, ws: Workspace
):
    """A step whose ``if`` was false reads SKIPPED with its expression, result and inputs."""
    automation_id = unique("console-cond")
    ws.save_automation(
        automation_id,
        [
            {"action": "delay", "duration": "0s", "if": "data.amount > 100"},
            {"action": "delay", "duration": "0s"},
        ],
    )
    run_id = invoke(ws, automation_id, data={"amount": 42})
    page = console
    page.goto(f"{server.url}/console/runs/{run_id}")
    page.locator("#run-status", has_text="PROCESSED").wait_for(timeout=FINAL_WAIT_MS)
    step = page.locator("#step-0")
    assert step.get_attribute("data-status") == "SKIPPED"
    assert step.locator(".condition code").first.inner_text() == "data.amount > 100"
    assert step.locator(".cond-result").inner_text() == "false"
    assert step.locator("table.reads tbody tr").inner_text().split() == ["data.amount", "42"]
    shot(page, "07-debugger-skipped-step")


def test_cancel_a_waiting_run(console: Any, server: RelayboxServer, ws: Workspace):
    """Cancel on a run sleeping in a delay ends it CANCELED, and the API agrees."""
    automation_id = unique("console-wait")
    ws.save_automation(automation_id, [{"action": "delay", "duration": "10 minutes"}])
    run_id = invoke(ws, automation_id)
    page = console
    page.goto(f"{server.url}/console/runs/{run_id}")
    page.locator("#run-status", has_text="WAITING").wait_for(timeout=FINAL_WAIT_MS)
    page.get_by_role("button", name="Cancel run").click()
    page.locator("#run-status", has_text="CANCELED").wait_for()
    assert page.locator("#step-0").get_attribute("data-status") == "CANCELED"
    assert ws.run(run_id)["status"] == "CANCELED"


def test_post_without_csrf_token_is_rejected(console: Any, server: RelayboxServer, ws: Workspace):
    """A signed-in POST with no (or a wrong) CSRF token gets 403 and changes nothing."""
    automation_id = unique("console-csrf")
    ws.save_automation(automation_id, [{"action": "delay", "duration": "10 minutes"}])
    run_id = invoke(ws, automation_id)
    ws.wait_run(run_id, "WAITING")
    url = f"{server.url}/console/runs/{run_id}/cancel"
    assert console.request.post(url, form={}).status == 403
    assert console.request.post(url, form={"csrf": "forged"}).status == 403
    assert ws.run(run_id)["status"] == "WAITING"
    paths = (
        "/console/login",
        "/console/login/admin",
        "/console/logout",
        "/console/automations",
        "/console/settings/keys",
        "/console/settings/providers",
    )
    for path in paths:
        assert console.request.post(server.url + path, form={}).status == 403, path


def test_runs_list_filters_search_and_messages_log(
    console: Any, server: RelayboxServer, ws: Workspace
):
    """Runs filter by automation, status and id; messages by recipient; a phone-width page."""
    automation_id = unique("console-list")
    ws.save_automation(automation_id, [{"action": "delay", "duration": "0s"}])
    run_id = invoke(ws, automation_id)
    ws.wait_run(run_id, "PROCESSED")
    page = console
    page.goto(f"{server.url}/console/runs")
    page.get_by_label("Automation id").fill(automation_id)
    page.get_by_label("Status").select_option("PROCESSED")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*status=PROCESSED.*"))
    assert page.locator("#runs tbody tr").count() == 1
    assert run_id in page.locator("#runs tbody").inner_text()
    page.get_by_label("Status").select_option("WAITING")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*status=WAITING.*"))
    assert page.locator("#runs tbody tr").count() == 0
    page.goto(f"{server.url}/console/runs?run_id={run_id}")
    assert page.locator("#runs tbody tr").count() == 1

    # Recipient and date range filters.
    recipient = unique("rcpt")
    recipient_run = invoke(ws, automation_id, recipient=recipient)
    ws.wait_run(recipient_run, "PROCESSED")
    page.goto(f"{server.url}/console/runs")
    page.get_by_label("Recipient").fill(recipient)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(f".*recipient={recipient}.*"))
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    assert recipient_run in page.locator("#runs tbody").inner_text()
    today = datetime.now(UTC).date()
    page.get_by_label("From date").fill(today.isoformat())
    page.get_by_label("To date").fill(today.isoformat())
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(".*start=.*"))
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    shot(page, "02-runs-list")
    yesterday = (today - timedelta(days=1)).isoformat()
    page.get_by_label("From date").fill(yesterday)
    page.get_by_label("To date").fill(yesterday)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#runs")).to_contain_text("No runs match")
    page.goto(f"{server.url}/console/runs?run_id=no-such-run")
    assert "No runs match" in page.locator("#runs").inner_text()

    template = unique("console-tpl")
    ws.add_template(template, "Listed subject", "Listed body")
    recipient = unique("listed")
    with ws.http() as http:
        sent = http.post(
            "/send",
            json={
                "message": {
                    "to": {"user_id": recipient, "email": unique_email()},
                    "template": template,
                }
            },
        )
        assert sent.status_code == 202, sent.text
    page.goto(f"{server.url}/console/messages")
    page.get_by_label("Recipient").fill(recipient)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(f".*recipient={recipient}.*"))
    expect(page.locator("tbody tr")).to_have_count(1)
    assert sent.json()["requestId"] in page.locator("tbody").inner_text()
    shot(page, "09-messages-log")
    page.get_by_role("link", name="Templates").click()
    shot(page, "12-templates-list")
    page.locator("tr", has_text=template).get_by_role("link").click()
    expect(page.locator("main")).to_contain_text("Listed subject")
    shot(page, "13-template")
    page.goto(f"{server.url}/console/automations")
    assert automation_id in page.locator("table").inner_text()
    shot(page, "10-automations-list")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/console/runs/{run_id}")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the run page scrolls sideways at phone width ({width}px)"
    shot(page, "11-run-phone")
