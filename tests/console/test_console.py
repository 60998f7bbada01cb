"""The web console end to end: real ``relaybox serve``, real SMTP, real headless Chromium."""

from __future__ import annotations

import json
import re
from typing import Any

from console_harness import shot, sign_in
from playwright.sync_api import expect
from relaybox_harness import RelayboxServer, SmtpServer, Workspace, unique, unique_email

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


def test_designer_build_publish_test_and_watch_the_run(
    console: Any, server: RelayboxServer, ws: Workspace, smtp: SmtpServer
):
    """Send → delay 2 s → send built in the designer, published, tested, watched to PROCESSED."""
    template = unique("console-hello")
    ws.add_template(template, "Hello from the console", "Welcome aboard")
    automation_id = unique("console-onboarding")
    email = unique_email("console")
    steps = [
        {"action": "send", "template": template},
        {"action": "delay", "duration": "2 seconds"},
        {"action": "send", "template": template},
    ]
    page = console
    page.get_by_role("link", name="Automations").click()
    page.get_by_role("link", name="New automation").click()
    page.get_by_label("Id").fill(automation_id)
    page.get_by_label("Name").fill("Console onboarding")
    page.get_by_label("Steps (JSON array)").fill(json.dumps(steps, indent=2))
    page.get_by_role("button", name="Save draft").click()
    assert page.get_by_role("status").inner_text() == "Draft saved"
    page.get_by_role("button", name="Publish draft").click()
    # expect() waits: the previous page's notice is still there until the redirect lands.
    expect(page.get_by_role("status")).to_have_text("Published version 1")
    payload = {"recipient": unique("user"), "profile": {"email": email}, "data": {}}
    page.get_by_label("Sample payload").fill(json.dumps(payload))
    shot(page, "03-designer-automation")
    page.get_by_role("button", name="Test published version").click()
    page.wait_for_url(re.compile(r".*/console/runs/[^/]+$"))
    # Live updates: the status changes without a navigation (the marker would be lost).
    page.evaluate("window.__notReloaded = true")
    page.locator("#step-1[data-status=WAITING]").wait_for(timeout=FINAL_WAIT_MS)
    assert re.fullmatch(r"in \d+\.\d s|due now", page.locator(".countdown").inner_text())
    shot(page, "04-debugger-run-waiting")
    page.locator("#run-status", has_text="PROCESSED").wait_for(timeout=FINAL_WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True
    statuses = page.locator(".step").evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses == ["PROCESSED", "PROCESSED", "PROCESSED"]
    assert page.locator(".message-link").count() == 2
    shot(page, "05-debugger-run-processed")
    smtp.recorder.wait_for(email, count=2)

    page.locator(".message-link").first.click()
    page.wait_for_url(re.compile(r".*/console/messages/[^/]+$"))
    assert page.locator(".subject").first.inner_text() == "Hello from the console"
    preview = page.locator("iframe.preview").first
    assert preview.get_attribute("sandbox") == ""
    frame = page.frame_locator("iframe.preview").first
    assert "Welcome aboard" in frame.locator("body").inner_text()
    assert page.locator(".history li").count() >= 1
    shot(page, "06-message-preview")


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


def test_bad_designer_input_shows_a_clear_message_and_saves_nothing(
    console: Any, server: RelayboxServer, ws: Workspace
):
    """Broken JSON and an invalid step are both refused with a message; nothing is stored."""
    automation_id = unique("console-bad")
    page = console
    page.goto(f"{server.url}/console/automations/new")
    page.get_by_label("Id").fill(automation_id)
    page.get_by_label("Steps (JSON array)").fill('[{"action": "delay",')
    page.get_by_role("button", name="Save draft").click()
    assert page.get_by_role("alert").inner_text().startswith("Not saved: Steps are not valid JSON")
    # The typed text survives, so the user can fix it.
    assert page.get_by_label("Steps (JSON array)").input_value() == '[{"action": "delay",'
    page.get_by_label("Steps (JSON array)").fill('[{"action": "delay", "duration": "soon"}]')
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("alert")).to_contain_text(
        'Not saved: body.steps[0]: Invalid delay duration "soon"'
    )
    shot(page, "08-designer-error")
    with ws.http() as http:
        assert http.get(f"/automations/{automation_id}").status_code == 404

    published = unique("console-badpayload")
    ws.save_automation(published, [{"action": "delay", "duration": "0s"}])
    page.goto(f"{server.url}/console/automations/new")
    page.get_by_label("Id").fill(published)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("alert")).to_have_text(
        f"Not saved: An automation with id {published} already exists."
    )
    with ws.http() as http:
        kept = http.get(f"/automations/{published}", params={"version": "draft"}).json()
    assert kept["steps"] == [{"action": "delay", "duration": "0s"}]
    page.goto(f"{server.url}/console/automations/{published}")
    page.get_by_label("Sample payload").fill("{not json")
    page.get_by_role("button", name="Test published version").click()
    expect(page.get_by_role("alert")).to_contain_text("Payload is not valid JSON")
    page.get_by_label("Sample payload").fill('{"data": "not an object"}')
    page.get_by_role("button", name="Test published version").click()
    expect(page.get_by_role("alert")).to_have_text("data: Expected object")


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
    for path in ("/console/login", "/console/logout", "/console/automations"):
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
    shot(page, "02-runs-list")
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
