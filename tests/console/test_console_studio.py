"""The console's editing pages end to end: visual designer, versions, templates, settings and
admin sign-in. Real ``relaybox serve``, real SMTP, real headless Chromium.

The admin lockout test comes last: it locks 127.0.0.1 out of admin sign-in for this server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_harness import ADMIN_PASSWORD, admin_sign_in, shot
from playwright.sync_api import expect
from relaybox_harness import (
    RelayboxServer,
    SmtpServer,
    WebhookReceiver,
    Workspace,
    start_webhook_receiver,
    unique,
    unique_email,
    verify_signature,
    wait_for,
)

FINAL_WAIT_MS = 20_000


def step(page: Any, index: int) -> Any:
    return page.locator(".dstep").nth(index)


def add_step(page: Any, action: str) -> Any:
    page.get_by_label("New step type").select_option(action)
    page.get_by_role("button", name="Add step").click()
    return page.locator(".dstep").last


def json_steps(page: Any) -> list[dict[str, Any]]:
    return list(json.loads(page.locator("#steps").input_value()))


def draft_of(ws: Workspace, automation_id: str) -> Any:
    with ws.http() as http:
        return http.get(f"/automations/{automation_id}", params={"version": "draft"})


def test_admin_password_signs_in_to_the_chosen_workspace(page: Any, server: RelayboxServer):
    """A wrong admin password is refused; the right one opens the default or a named workspace."""
    admin_sign_in(page, server, "not the password")
    expect(page.locator("#admin-error")).to_have_text("Wrong password.")
    shot(page, "20-sign-in-admin-error")
    admin_sign_in(page, server, ADMIN_PASSWORD)
    page.wait_for_url(re.compile(r".*/console/runs$"))
    expect(page.locator(".signout strong")).to_have_text("default")
    page.get_by_role("button", name="Sign out").click()
    other = unique("admin-ws")
    admin_sign_in(page, server, ADMIN_PASSWORD, workspace=other)
    page.wait_for_url(re.compile(r".*/console/runs$"))
    expect(page.locator(".signout strong")).to_have_text(other)


def test_visual_designer_build_publish_test_and_watch_the_run(
    console: Any, server: RelayboxServer, ws: Workspace, smtp: SmtpServer
):
    """send → delay 2 s → send built with the forms (keyboard reorder), published, tested."""
    template = unique("studio-hello")
    ws.add_template(template, "Hello from the designer", "Welcome aboard")
    automation_id = unique("studio-onboarding")
    email = unique_email("studio")
    page = console
    page.get_by_role("link", name="Automations").click()
    page.get_by_role("link", name="New automation").click()
    page.get_by_label("Id").fill(automation_id)
    page.get_by_label("Name").fill("Designer onboarding")
    while page.locator(".dstep").count():
        page.get_by_role("button", name="Remove step 1").click()
    expect(page.locator("#no-steps")).to_be_visible()

    # Added out of order on purpose: delay first, then moved down with the keyboard.
    add_step(page, "delay").get_by_label("Duration").fill("2 seconds")
    add_step(page, "send").get_by_label("Template", exact=True).fill(template)
    last = add_step(page, "send")
    last.get_by_label("Template", exact=True).fill(template)
    last.get_by_label("Ref", exact=True).fill("second")
    last.get_by_label("Value at", exact=True).fill("data.plan")
    last.get_by_label("Test", exact=True).select_option("!==")
    last.get_by_label("Against", exact=True).fill("free")
    last.get_by_role("button", name="Add to condition").click()
    page.get_by_role("button", name="Move step 1 down").focus()
    page.keyboard.press("Enter")
    # Focus stays on the moved step's button, so it can be moved again by keyboard.
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Move step 2 down"
    )
    assert json_steps(page) == [
        {"action": "send", "template": template},
        {"action": "delay", "duration": "2 seconds"},
        {"action": "send", "template": template, "ref": "second", "if": 'data.plan !== "free"'},
    ]
    # The JSON view edits the forms too.
    page.get_by_text("JSON view").click()
    edited = json_steps(page)
    edited[2]["if"] = 'data.plan !== "trial"'
    page.get_by_label("Steps (JSON)").fill(json.dumps(edited))
    expect(step(page, 2).get_by_label("Condition (if)")).to_have_value('data.plan !== "trial"')
    shot(page, "21-designer-forms")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".notice")).to_have_text("Draft saved")
    assert draft_of(ws, automation_id).json()["steps"] == edited

    page.get_by_role("button", name="Publish draft").click()
    expect(page.locator(".notice")).to_have_text("Published version 1")
    payload = {"recipient": unique("user"), "profile": {"email": email}, "data": {"plan": "pro"}}
    page.get_by_label("Sample payload").fill(json.dumps(payload))
    page.get_by_role("button", name="Test published").click()
    page.wait_for_url(re.compile(r".*/console/runs/[^/]+$"))
    page.evaluate("window.__notReloaded = true")
    page.locator("#step-1[data-status=WAITING]").wait_for(timeout=FINAL_WAIT_MS)
    assert re.fullmatch(r"in \d+\.\d s|due now", page.locator(".countdown").inner_text())
    shot(page, "22-debugger-run-waiting")
    page.locator("#run-status", has_text="PROCESSED").wait_for(timeout=FINAL_WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True, "the page updated live"
    statuses = page.locator(".step").evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses == ["PROCESSED", "PROCESSED", "PROCESSED"]
    # The ref'd send recorded what it added to the context.
    changes = page.locator("#step-2 table.changes")
    expect(changes).to_contain_text("refs.second")
    shot(page, "23-debugger-run-processed")
    smtp.recorder.wait_for(email, count=2)

    page.locator(".message-link").first.click()
    page.wait_for_url(re.compile(r".*/console/messages/[^/]+$"))
    assert page.locator(".subject").first.inner_text() == "Hello from the designer"
    frame = page.frame_locator("iframe.preview").first
    assert "Welcome aboard" in frame.locator("body").inner_text()
    shot(page, "24-message-preview")


def test_testing_the_draft_runs_the_unpublished_steps(
    console: Any, server: RelayboxServer, ws: Workspace
):
    """ "Test draft" runs the draft as it is, before any publish; the run shows skipped steps."""
    automation_id = unique("studio-draft")
    with ws.http() as http:
        body = {"steps": [{"action": "delay", "duration": "0s", "if": "data.amount > 100"}]}
        assert http.put(f"/automations/{automation_id}", json=body).status_code == 200
    page = console
    page.goto(f"{server.url}/console/automations/{automation_id}")
    expect(page.get_by_role("button", name="Test published")).to_be_disabled()
    page.get_by_label("Sample payload").fill(json.dumps({"data": {"amount": 7}}))
    page.get_by_role("button", name="Test draft").click()
    page.wait_for_url(re.compile(r".*/console/runs/[^/]+$"))
    page.locator("#run-status", has_text="PROCESSED").wait_for(timeout=FINAL_WAIT_MS)
    skipped = page.locator("#step-0")
    assert skipped.get_attribute("data-status") == "SKIPPED"
    assert skipped.locator(".cond-result").inner_text() == "false"
    assert skipped.locator("table.reads tbody tr").inner_text().split() == ["data.amount", "7"]
    context = page.locator("details.run-context")
    context.locator("summary").click()
    assert json.loads(context.locator("pre").inner_text())["data"] == {"amount": 7}


def test_bad_form_input_shows_the_message_at_the_field_and_saves_nothing(
    console: Any, server: RelayboxServer, ws: Workspace
):
    """A bad delay duration and a missing cancel token are refused next to their fields."""
    automation_id = unique("studio-bad")
    page = console
    page.goto(f"{server.url}/console/automations/new")
    page.get_by_label("Id").fill(automation_id)
    step(page, 1).get_by_label("Duration").fill("soon")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#save-error")).to_contain_text('Invalid delay duration "soon"')
    expect(page.locator("#s1-error")).to_contain_text('Invalid delay duration "soon"')
    assert draft_of(ws, automation_id).status_code == 404
    shot(page, "25-designer-error")

    step(page, 1).get_by_label("Duration").fill("1 second")
    add_step(page, "cancel")
    page.get_by_role("button", name="Save draft").click()
    error = step(page, 3).locator("#s3-cancelation_token-error")
    expect(error).to_have_text("Required for cancel steps")
    assert (
        step(page, 3).get_by_label("Cancelation token (required)").get_attribute("aria-invalid")
        == "true"
    )
    assert draft_of(ws, automation_id).status_code == 404

    # Broken JSON in a JSON field is caught before anything is sent.
    data = step(page, 0).get_by_label("Data")
    data.fill('{"plan": ')
    expect(page.locator("#s0-data-error")).to_contain_text("Not valid JSON")
    page.get_by_role("button", name="Save draft").click()
    expect(data).to_be_focused()
    assert draft_of(ws, automation_id).status_code == 404


def test_versions_diff_and_roll_back(console: Any, server: RelayboxServer, ws: Workspace):
    """Two publishes make two versions; the diff shows the change; roll back republishes v1."""
    automation_id = unique("studio-versions")
    ws.save_automation(automation_id, [{"action": "delay", "duration": "2 seconds"}])
    page = console
    page.goto(f"{server.url}/console/automations/{automation_id}")
    step(page, 0).get_by_label("Duration").fill("5 seconds")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#unpublished")).to_be_visible()
    page.get_by_role("button", name="Publish draft").click()
    expect(page.locator(".notice")).to_have_text("Published version 2")
    page.get_by_role("textbox", name="Alias").fill(f"{automation_id}-alias")
    page.get_by_role("button", name="Save alias").click()
    expect(page.locator(".notice")).to_have_text(f"Alias set to {automation_id}-alias")

    page.get_by_role("link", name="Versions & diff").click()
    page.get_by_label("From", exact=True).select_option("1")
    page.get_by_label("To", exact=True).select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#diff .d-del")).to_have_count(1)
    expect(page.locator("#diff .d-del")).to_contain_text('"duration": "2 seconds"')
    expect(page.locator("#diff .d-add")).to_have_count(1)
    expect(page.locator("#diff .d-add")).to_contain_text('"duration": "5 seconds"')
    shot(page, "26-versions-diff")
    page.get_by_role("button", name="Roll back to version 1").click()
    expect(page.locator(".notice")).to_have_text(
        "Rolled back: version 1 is now published as version 3"
    )
    with ws.http() as http:
        live = http.get(f"/automations/{automation_id}-alias", params={"version": "published"})
    assert live.json()["steps"] == [{"action": "delay", "duration": "2 seconds"}]
    expect(page.locator("#version-3")).to_contain_text("live")


def test_template_edit_preview_and_send_test(
    console: Any, server: RelayboxServer, ws: Workspace, smtp: SmtpServer
):
    """Editing an element updates the per-channel preview; save; a test send arrives by SMTP."""
    alias = unique("studio-tpl")
    ws.add_template(alias, "Order {{order}}", "Thanks for order {{order}}")
    page = console
    page.goto(f"{server.url}/console/templates")
    page.locator("tr", has_text=alias).get_by_role("link").click()
    page.get_by_label("Sample data for the preview").fill(
        json.dumps({"data": {"order": "A-17"}, "profile": {}})
    )
    text = page.locator(".dstep").nth(1).get_by_label("Text")
    text.fill("Your order {{order}} <script>parent.document.title='x'</script>shipped")
    email = page.locator(".preview-channel[data-channel=email]")
    frame = page.frame_locator(".preview-channel[data-channel=email] iframe")
    expect(frame.locator("body")).to_contain_text("Your order A-17")
    assert email.locator("iframe").get_attribute("sandbox") == ""
    expect(email.locator(".subject")).to_have_text("Order A-17")
    expect(page.locator(".preview-channel[data-channel=sms] .sms-text")).to_contain_text(
        "Your order A-17"
    )
    expect(page.locator(".preview-channel[data-channel=push]")).to_contain_text("Order A-17")
    assert page.title() != "x", "the previewed HTML cannot reach the console"
    shot(page, "27-template-editor")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".notice")).to_have_text("Draft saved")
    with ws.http() as http:
        saved = http.get(f"/notifications/{alias}", params={"version": "draft"}).json()
    assert "Your order {{order}}" in json.dumps(saved["content"])

    to = unique_email("tpl-test")
    page.get_by_label("Sample data for the preview").fill(json.dumps({"data": {"order": "B-2"}}))
    page.get_by_label("Recipient (email or user id)").fill(to)
    page.get_by_role("button", name="Send test").click()
    page.wait_for_url(re.compile(r".*/console/messages/[^/]+$"))
    [mail] = smtp.recorder.wait_for(to)
    assert mail.subject == "Order B-2"
    page.reload()  # the message page opened before the send finished
    expect(page.locator(".subject").first).to_have_text("Order B-2")


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = start_webhook_receiver()
    yield receiver
    receiver.stop()


def test_provider_settings_add_edit_delete_with_secrets_masked(
    console: Any, server: RelayboxServer, ws: Workspace, hook: WebhookReceiver
):
    """A webhook provider is added, its secret never shown, kept on edit, then deleted."""
    page = console
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Add provider").click()
    title = unique("hook")
    page.get_by_label("Provider").fill("webhook")
    page.get_by_label("Title").fill(title)
    settings = {"url": hook.url, "secret": "s3cr3t-value"}
    page.get_by_label("Settings (JSON)").fill(json.dumps(settings))
    page.get_by_role("button", name="Add provider").click()
    expect(page.locator(".notice")).to_have_text(f"Saved provider {title}")
    row = page.locator("tr", has_text=title)
    expect(row).to_contain_text("********")
    assert "s3cr3t-value" not in page.content()
    shot(page, "28-settings-providers")

    row.get_by_role("link", name=title).click()
    assert "s3cr3t-value" not in page.content()
    page.get_by_label("Title").fill(title + " renamed")
    page.get_by_role("button", name="Save provider").click()
    expect(page.locator(".notice")).to_have_text(f"Saved provider {title} renamed")
    provider_id = page.locator("tr", has_text=title).locator("code.muted").inner_text()
    # The edit kept the secret: a send through this provider is signed with it.
    message = {
        "to": {"user_id": unique("hooked")},
        "content": {"title": "Hi", "body": "Signed"},
        "routing": {"method": "single", "channels": ["webhook"]},
        "channels": {"webhook": {"providers": [provider_id]}},
    }
    with ws.http() as http:
        sent = http.post("/send", json={"message": message})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["requestId"]
    try:
        calls = wait_for(lambda: hook.for_message(message_id), timeout=15, what="the webhook call")
    except AssertionError:
        with ws.http() as http:
            pytest.fail(str(http.get(f"/messages/{message_id}").json()))
    [request] = calls
    signature = request.headers["X-Relaybox-Signature"]
    assert verify_signature("s3cr3t-value", signature, request.raw)

    page.locator("tr", has_text=title).get_by_role("button", name=re.compile("Delete")).click()
    expect(page.locator(".notice")).to_have_text("Provider deleted")
    expect(page.locator("main")).not_to_contain_text(title)

    page.get_by_role("link", name="Add provider").click()
    page.get_by_label("Provider").fill("pigeon")
    page.get_by_role("button", name="Add provider").click()
    expect(page.locator("#provider-error")).to_contain_text("unknown provider 'pigeon'")


def test_api_keys_create_shown_once_and_revoke(console: Any, server: RelayboxServer, ws: Workspace):
    """A new key is shown once and works; after revoking, the API refuses it."""
    page = console
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/console/settings/keys")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#created-key").inner_text()
    assert key.startswith("rbx_")
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/automations", headers=headers).status_code == 200
    shot(page, "29-settings-keys")
    page.goto(f"{server.url}/console/settings/keys")
    assert key not in page.content(), "shown once only"
    row = page.locator("tr.key-row", has_text=key[:8]).filter(has_text="active").last
    row.get_by_role("button", name=f"Revoke key {key[:8]}").click()
    expect(page.locator(".notice")).to_have_text("Key revoked")
    assert httpx.get(f"{server.url}/automations", headers=headers).status_code == 401


def test_zz_admin_sign_in_locks_out_after_repeated_failures(page: Any, server: RelayboxServer):
    """After five wrong passwords even the right one is refused for a while (429)."""
    for _ in range(5):
        admin_sign_in(page, server, "guess")
        expect(page.locator("#admin-error")).to_have_text("Wrong password.")
    admin_sign_in(page, server, ADMIN_PASSWORD)
    expect(page.locator("#admin-error")).to_contain_text("Too many failed attempts")
    assert page.url.endswith("/console/login/admin")
