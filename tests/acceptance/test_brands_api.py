"""Courier's /brands through the official SDK (`client.brands.*`), and brands in sent email:
a send's `brand_id`, a template's `brand`, an automation's `brand` and the workspace default
brand all style the email a real SMTP server receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import courier
import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def _settings(primary: str, footer: str) -> dict[str, Any]:
    return {
        "colors": {"primary": primary, "secondary": "#333333"},
        "email": {
            "header": {
                "logo": {
                    "image": f"https://cdn.test/{primary[1:]}.png",
                    "href": "https://acme.test",
                }
            },
            "footer": {"markdown": footer},
        },
    }


@pytest.fixture(scope="module")
def brand_ws(new_workspace: Callable[[str], Workspace], smtp: SmtpServer) -> Workspace:
    ws = new_workspace("brands")
    ws.add_smtp_provider(smtp)
    return ws


def test_brand_crud(brand_ws: Workspace) -> None:
    """create (own id or generated), retrieve, list, update (a full replace), delete."""
    client = brand_ws.client()
    brand_id = unique("acme")
    created = client.brands.create(
        id=brand_id,
        name="Acme",
        settings=_settings("#ff5500", "Acme Ltd"),
        snippets={"items": [{"name": "sig", "value": "— Acme"}]},
    )
    assert (created.id, created.name, created.version) == (brand_id, "Acme", "v001")
    assert created.settings is not None
    assert created.settings.colors is not None
    assert created.settings.colors.primary == "#ff5500"
    assert created.published == created.created
    generated = client.brands.create(name="Other", settings={})
    assert generated.id.startswith("brand_")

    fetched = client.brands.retrieve(brand_id)
    assert fetched.snippets is not None
    assert fetched.snippets.items is not None
    assert fetched.snippets.items[0].value == "— Acme"
    listed = {b.id for b in client.brands.list().results}
    assert {brand_id, generated.id} <= listed

    updated = client.brands.update(brand_id, name="Acme 2", settings=_settings("#00aa00", "x"))
    assert (updated.name, updated.version, updated.snippets) == ("Acme 2", "v002", None)
    assert client.brands.retrieve(brand_id).settings.colors.primary == "#00aa00"  # type: ignore[union-attr]

    client.brands.delete(brand_id)
    with pytest.raises(courier.NotFoundError):
        client.brands.retrieve(brand_id)
    with pytest.raises(courier.NotFoundError):
        client.brands.delete(brand_id)


def test_brand_bad_input(brand_ws: Workspace) -> None:
    """Duplicate ids are 409; malformed settings and snippets are 400 in Courier's envelope."""
    client = brand_ws.client()
    brand_id = unique("dup")
    client.brands.create(id=brand_id, name="A", settings={})
    with pytest.raises(courier.ConflictError) as dup:
        client.brands.create(id=brand_id, name="B", settings={})
    assert dup.value.body == {
        "type": "invalid_request_error",
        "message": f"Brand {brand_id} already exists",
    }
    with pytest.raises(courier.BadRequestError) as bad:
        client.brands.create(name="C", settings={"colors": "red"})  # type: ignore[typeddict-item]
    assert bad.value.body == {
        "type": "invalid_request_error",
        "message": "settings.colors: Expected an object",
    }
    with pytest.raises(courier.BadRequestError):
        client.brands.create(name="", settings={})
    with pytest.raises(courier.BadRequestError) as snippet:
        client.brands.update(
            brand_id, name="A", snippets={"items": [{"name": "s", "value": "{{#if}}"}]}
        )
    assert "snippets.items[0].value" in str(snippet.value.body)


def _template(client: courier.Courier, alias: str, brand_id: str | None) -> None:
    client.notifications.create(
        notification={
            "name": alias,
            "alias": alias,
            "tags": [],
            "brand": None if brand_id is None else {"id": brand_id},
            "routing": None,
            "subscription": None,
            "content": {
                "version": "2022-01-01",
                "elements": [
                    {"type": "meta", "title": "Order {{order}}"},
                    {"type": "text", "content": "Thanks {{name}}"},
                    {"type": "action", "content": "Track", "href": "https://t.test/{{order}}"},
                ],
            },
        },
        state="PUBLISHED",
    )


def _assert_branded(mail: Any, primary: str, footer: str) -> None:
    assert mail.html is not None
    assert f"background-color:{primary}" in mail.html
    assert f'<img src="https://cdn.test/{primary[1:]}.png"' in mail.html
    assert footer in mail.html
    assert mail.text is not None
    assert mail.text.startswith("Thanks Ada")
    assert mail.text.rstrip().endswith(footer)


def test_send_with_brand_id_and_template_brand(brand_ws: Workspace, smtp: SmtpServer) -> None:
    """The template's brand styles its email; a send's brand_id wins over it (unless it names
    no brand)."""
    client = brand_ws.client()
    orange, green = unique("orange"), unique("green")
    client.brands.create(id=orange, name="Orange", settings=_settings("#ff5500", "Orange Ltd"))
    client.brands.create(id=green, name="Green", settings=_settings("#00aa00", "Green Ltd"))
    alias = unique("BRANDED")
    _template(client, alias, orange)
    by_template, by_send = unique_email("tpl"), unique_email("send")
    data = {"order": "A1", "name": "Ada"}
    client.send.message(message={"to": {"email": by_template}, "template": alias, "data": data})
    client.send.message(
        message={"to": {"email": by_send}, "template": alias, "data": data, "brand_id": green}
    )
    (mail,) = smtp.recorder.wait_for(by_template)
    _assert_branded(mail, "#ff5500", "Orange Ltd")
    assert mail.subject == "Order A1"
    (mail,) = smtp.recorder.wait_for(by_send)
    _assert_branded(mail, "#00aa00", "Green Ltd")
    assert "#ff5500" not in (mail.html or "")
    # A brand_id that names no brand is skipped: the template's brand applies.
    unknown = unique_email("unknown")
    client.send.message(
        message={"to": {"email": unknown}, "template": alias, "data": data, "brand_id": "nope"}
    )
    (mail,) = smtp.recorder.wait_for(unknown)
    _assert_branded(mail, "#ff5500", "Orange Ltd")


def test_automation_send_step_with_brand(brand_ws: Workspace, smtp: SmtpServer) -> None:
    """An automation's `brand` reaches the send step's rendering."""
    client = brand_ws.client()
    blue = unique("blue")
    client.brands.create(id=blue, name="Blue", settings=_settings("#0000ee", "Blue Ltd"))
    alias = unique("AUTO_BRANDED")
    _template(client, alias, None)
    email = unique_email("auto")
    client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": alias}]},
        brand=blue,
        recipient=unique("user"),
        profile={"email": email},
        data={"order": "B2", "name": "Ada"},
    )
    (mail,) = smtp.recorder.wait_for(email)
    _assert_branded(mail, "#0000ee", "Blue Ltd")


def test_workspace_default_brand_applies_without_one(
    new_workspace: Callable[[str], Workspace], smtp: SmtpServer
) -> None:
    """The brand with id `default` styles sends and templates that name no brand."""
    ws = new_workspace("default-brand")
    ws.add_smtp_provider(smtp)
    client = ws.client()
    alias = unique("PLAIN")
    _template(client, alias, None)
    before = unique_email("before")
    client.send.message(
        message={"to": {"email": before}, "template": alias, "data": {"order": "1", "name": "Ada"}}
    )
    (plain,) = smtp.recorder.wait_for(before)
    assert plain.text is not None
    assert plain.text.replace("\r\n", "\n").strip() == "Thanks Ada\n\nTrack: https://t.test/1"
    assert "height:6px" not in (plain.html or "")
    client.brands.create(id="default", name="House", settings=_settings("#aa00aa", "House Ltd"))
    after = unique_email("after")
    client.send.message(
        message={"to": {"email": after}, "template": alias, "data": {"order": "2", "name": "Ada"}}
    )
    (mail,) = smtp.recorder.wait_for(after)
    _assert_branded(mail, "#aa00aa", "House Ltd")
