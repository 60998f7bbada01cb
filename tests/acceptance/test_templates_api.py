"""Courier's /notifications surface through the official SDK (`client.notifications.*`):
create, retrieve (draft / published / version), list (tags, cursor), replace, archive,
versions, publish (and rollback), content get/put, elements and locales — with bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import courier
import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email, wait_for


def _content(title: str, text: str) -> dict[str, Any]:
    return {
        "version": "2022-01-01",
        "elements": [
            {
                "type": "channel",
                "channel": "email",
                "elements": [{"type": "meta", "title": title}, {"type": "text", "content": text}],
            }
        ],
    }


def _notification(name: str, title: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tags": extra.pop("tags", []),
        "brand": None,
        "routing": None,
        "subscription": None,
        "content": _content(title, text),
        **extra,
    }


def _as_dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def _error(exc: courier.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    return body


@pytest.fixture(scope="module")
def tpl_ws(new_workspace: Callable[[str], Workspace], smtp: SmtpServer) -> Workspace:
    ws = new_workspace("templates")
    ws.add_smtp_provider(smtp)
    return ws


def test_create_retrieve_publish_and_versions(tpl_ws: Workspace) -> None:
    """A draft is only readable as draft; publishing freezes v001; replace + publish makes
    v002; each version reads back as published; the versions list marks the live one."""
    client = tpl_ws.client()
    created = client.notifications.create(notification=_notification("Welcome", "Hi", "One"))
    assert created.id.startswith("nt_")
    assert (created.state, created.name, created.creator) == ("DRAFT", "Welcome", "api")
    with pytest.raises(courier.NotFoundError) as missing:
        client.notifications.retrieve(created.id)
    assert "no published version" in _error(missing.value)["message"]
    draft = client.notifications.retrieve(created.id, version="draft")
    meta = draft.content.elements[0].elements[0]  # type: ignore[union-attr]
    assert meta.title == "Hi"  # type: ignore[union-attr]

    client.notifications.publish(created.id)
    assert client.notifications.retrieve(created.id).state == "PUBLISHED"
    client.notifications.replace(
        created.id, notification=_notification("Welcome 2", "Hi 2", "Two"), state="DRAFT"
    )
    assert client.notifications.retrieve(created.id, version="draft").name == "Welcome 2"
    assert client.notifications.retrieve(created.id).name == "Welcome"
    versions = client.notifications.list_versions(created.id)
    assert [v.version for v in versions.versions] == ["draft", "published:v001"]
    assert versions.versions[0].has_changes is True

    client.notifications.publish(created.id)
    client.notifications.publish(created.id)  # nothing changed: no new version
    assert client.notifications.retrieve(created.id).name == "Welcome 2"
    v1 = client.notifications.retrieve(created.id, version="v001")
    assert (v1.name, v1.state) == ("Welcome", "PUBLISHED")
    listed = [v.version for v in client.notifications.list_versions(created.id).versions]
    assert listed == ["draft", "published:v002", "v001"]

    client.notifications.publish(created.id, version="v001")  # roll back
    assert client.notifications.retrieve(created.id).name == "Welcome"
    assert client.notifications.retrieve(created.id, version="draft").name == "Welcome 2"
    listed = [v.version for v in client.notifications.list_versions(created.id).versions]
    assert listed == ["draft", "v002", "published:v001"]


def test_versions_page_with_a_cursor(tpl_ws: Workspace) -> None:
    """list_versions pages with `limit` and the returned cursor, newest first."""
    client = tpl_ws.client()
    made = client.notifications.create(notification=_notification("Paged", "t", "0"))
    for n in range(1, 4):
        client.notifications.put_content(made.id, content=_content("t", str(n)), state="PUBLISHED")
    first = client.notifications.list_versions(made.id, limit=2)
    assert [v.version for v in first.versions] == ["draft", "published:v003", "v002"]
    assert first.paging.more is True
    assert first.paging.cursor
    rest = client.notifications.list_versions(made.id, limit=2, cursor=first.paging.cursor)
    assert [v.version for v in rest.versions] == ["v001"]
    assert rest.paging.more is False


def test_bad_versions_and_bad_input(tpl_ws: Workspace) -> None:
    """Malformed versions are 400, unknown ones 404; bad bodies get Courier's envelope."""
    client = tpl_ws.client()
    made = client.notifications.create(
        notification=_notification("Bad", "t", "x"), state="PUBLISHED"
    )
    with pytest.raises(courier.BadRequestError) as bad:
        client.notifications.publish(made.id, version="1")
    assert _error(bad.value)["message"] == "version: Expected format: v001, v002, etc."
    with pytest.raises(courier.NotFoundError) as unknown:
        client.notifications.publish(made.id, version="v099")
    assert _error(unknown.value)["message"] == f"Version not found for template {made.id}"
    with pytest.raises(courier.NotFoundError):
        client.notifications.retrieve(made.id, version="v007")
    with pytest.raises(courier.BadRequestError):
        client.notifications.retrieve(made.id, version="latest")
    with pytest.raises(courier.NotFoundError) as nope:
        client.notifications.retrieve("nt_nonexistent")
    assert _error(nope.value)["message"] == "Notification template nt_nonexistent not found"
    broken = _notification("Broken", "t", "x")
    broken["content"]["elements"][0]["elements"].append({"type": "sparkle"})
    with pytest.raises(courier.BadRequestError) as invalid:
        client.notifications.create(notification=broken)
    assert "notification.content" in _error(invalid.value)["message"]
    bad_if = _notification("BadIf", "t", "x")
    bad_if["content"]["elements"][0]["elements"][1]["if"] = "data.total >"
    with pytest.raises(courier.BadRequestError) as unparsable:
        client.notifications.create(notification=bad_if)
    assert "not a valid JavaScript expression" in _error(unparsable.value)["message"]
    sugar = {**_notification("Sugar", "t", "x"), "content": {"title": "t", "body": "b"}}
    with pytest.raises(courier.BadRequestError) as unversioned:
        client.notifications.create(notification=sugar)
    assert _error(unversioned.value)["message"] == "notification.content.version: Required"
    with pytest.raises(courier.BadRequestError):
        client.notifications.replace(made.id, notification={"name": "x"})  # type: ignore[typeddict-item]


def test_list_filters_by_tags_and_pages_with_cursor(
    new_workspace: Callable[[str], Workspace],
) -> None:
    """list() returns summaries, filters by all given tags (case-insensitive) and pages by 50."""
    ws = new_workspace("tpl-list")
    client = ws.client()
    ids = [
        client.notifications.create(
            notification=_notification(f"T{n}", "t", "x", tags=["Promo"] if n % 2 else [])
        ).id
        for n in range(53)
    ]
    first = client.notifications.list()
    assert len(first.results) == 50
    assert first.paging.more is True
    rest = client.notifications.list(cursor=first.paging.cursor)
    assert rest.paging.more is False
    seen = [r.id for r in [*first.results, *rest.results]]
    assert sorted(seen) == sorted(ids)
    promo = client.notifications.list(tags="promo")
    assert len(promo.results) == 26
    assert all(r.tags == ["Promo"] for r in promo.results)  # type: ignore[union-attr]
    assert client.notifications.list(tags="promo,other").results == []
    summary = promo.results[0]
    assert summary.state == "DRAFT"  # type: ignore[union-attr]


def test_content_elements_and_locales(tpl_ws: Workspace) -> None:
    """Content reads back with element ids and checksums; put_content, put_element and
    put_locale edit the draft and answer with per-element checksums."""
    client = tpl_ws.client()
    made = client.notifications.create(notification=_notification("Edit", "Hello", "Body"))
    # The SDK types this response as a union it leaves undecoded: a plain dict.
    content = _as_dict(client.notifications.retrieve_content(made.id, version="draft"))
    (block,) = content["elements"]
    meta, text = block["elements"]
    assert (block["type"], meta["type"], text["type"]) == ("channel", "meta", "text")
    assert meta["title"] == "Hello"
    assert len(text["checksum"]) == 32

    changed = client.notifications.put_element(
        text["id"], id=made.id, type="text", data={"content": "Changed {{name}}"}
    )
    assert changed.state == "DRAFT"
    checksums = {e.id: e.checksum for e in changed.elements}
    assert checksums[text["id"]] != text["checksum"]
    assert checksums[meta["id"]] == meta["checksum"]
    with pytest.raises(courier.NotFoundError) as unknown:
        client.notifications.put_element("el_nope", id=made.id, type="text")
    assert _error(unknown.value)["message"] == f"Element el_nope not found in template {made.id}"
    with pytest.raises(courier.BadRequestError):
        client.notifications.put_element(text["id"], id=made.id, type="sparkle")

    localized = client.notifications.put_locale(
        "fr",
        id=made.id,
        elements=[{"id": meta["id"], "title": "Bonjour"}, {"id": text["id"], "content": "Changé"}],
        state="PUBLISHED",
    )
    assert localized.state == "PUBLISHED"
    published = _as_dict(client.notifications.retrieve_content(made.id))
    (block,) = published["elements"]
    assert block["elements"][1]["content"] == "Changed {{name}}"
    assert set(block["elements"][1]["locales"]) == {"fr"}
    assert len(block["elements"][1]["locales"]["fr"]["checksum"]) == 32
    with pytest.raises(courier.NotFoundError):
        client.notifications.put_locale("fr", id=made.id, elements=[{"id": "el_x", "title": "x"}])

    replaced = client.notifications.put_content(
        made.id, content={"elements": [{"type": "text", "content": "Only"}]}
    )
    assert replaced.version == "2022-01-01"
    assert len(replaced.elements) == 1
    draft = _as_dict(client.notifications.retrieve_content(made.id, version="draft"))
    assert [e["type"] for e in draft["elements"]] == ["text"]
    with pytest.raises(courier.BadRequestError) as bad:
        client.notifications.put_content(made.id, content={"elements": [{"type": "text"}]})
    assert "content" in _error(bad.value)["message"]


def test_locale_selection_in_a_sent_email(tpl_ws: Workspace, smtp: SmtpServer) -> None:
    """A recipient whose stored profile locale is fr-CA gets the fr variant; en-US the base."""
    client = tpl_ws.client()
    alias = unique("LOCALIZED")
    made = client.notifications.create(
        notification=_notification(alias, "Hello {{name}}", "Your order", alias=alias)
    )
    content = _as_dict(client.notifications.retrieve_content(made.id, version="draft"))
    meta, text = content["elements"][0]["elements"]
    client.notifications.put_locale(
        "fr",
        id=made.id,
        elements=[
            {"id": meta["id"], "title": "Bonjour {{name}}"},
            {"id": text["id"], "content": "Votre commande"},
        ],
        state="PUBLISHED",
    )
    french, english = unique_email("fr"), unique_email("en")
    for address, locale in ((french, "fr-CA"), (english, "en-US")):
        user = unique("user")
        client.profiles.create(user, profile={"email": address, "locale": locale})
        client.send.message(
            message={"to": {"user_id": user}, "template": alias, "data": {"name": "Zoé"}}
        )
    (fr_mail,) = smtp.recorder.wait_for(french)
    assert fr_mail.subject == "Bonjour Zoé"
    assert fr_mail.text is not None
    assert "Votre commande" in fr_mail.text
    (en_mail,) = smtp.recorder.wait_for(english)
    assert en_mail.subject == "Hello Zoé"
    # The locale may also come with the recipient of the send itself.
    inline = unique_email("inline-fr")
    client.send.message(
        message={
            "to": {"email": inline, "locale": "fr"},
            "template": alias,
            "data": {"name": "Zoé"},
        }
    )
    (inline_mail,) = smtp.recorder.wait_for(inline)
    assert inline_mail.subject == "Bonjour Zoé"


def test_archive_keeps_the_template_readable_but_unusable(
    tpl_ws: Workspace, smtp: SmtpServer
) -> None:
    """An archived template reads by id, leaves listings, refuses changes and publishing
    (409), and sends naming it end UNMAPPED."""
    client = tpl_ws.client()
    alias = unique("ARCHIVED")
    made = client.notifications.create(
        notification=_notification(alias, "t", "x", alias=alias), state="PUBLISHED"
    )
    client.notifications.archive(made.id)
    assert client.notifications.retrieve(made.id).name == alias
    assert made.id not in [r.id for r in client.notifications.list().results]
    with pytest.raises(courier.ConflictError) as conflict:
        client.notifications.publish(made.id)
    assert "archived" in _error(conflict.value)["message"]
    with pytest.raises(courier.ConflictError):
        client.notifications.put_content(made.id, content=_content("a", "b"))
    sent = client.send.message(message={"to": {"email": unique_email("arch")}, "template": alias})
    message = tpl_ws.wait_message(sent.request_id, "UNMAPPED", timeout=10)
    assert message.status == "UNMAPPED"
    # The alias is free again for a new template.
    client.notifications.create(notification=_notification(alias, "t", "x", alias=alias))
    with pytest.raises(courier.NotFoundError):
        client.notifications.archive("nt_missing")


def test_email_headers_are_kept_until_cleared(tpl_ws: Workspace) -> None:
    """`email` headers read back; a replace that omits them keeps them, null clears them."""
    client = tpl_ws.client()
    headers = {"from": "shop@example.test", "cc": ["a@example.test"]}
    made = client.notifications.create(notification=_notification("Hdr", "t", "x", email=headers))
    assert made.email is not None
    assert (made.email.from_, made.email.cc, made.email.bcc) == (
        headers["from"],
        headers["cc"],
        None,
    )
    kept = client.notifications.replace(made.id, notification=_notification("Hdr2", "t", "x"))
    assert kept.email is not None
    assert kept.email.from_ == "shop@example.test"
    cleared = client.notifications.replace(
        made.id, notification=_notification("Hdr3", "t", "x", email=None)
    )
    assert cleared.email is None
    with pytest.raises(courier.BadRequestError):
        client.notifications.replace(
            made.id, notification=_notification("Hdr4", "t", "x", email={"cc": "a@b.c"})
        )


def test_submission_checks(tpl_ws: Workspace) -> None:
    """checks.update replaces a submission's checks, list reads them, delete cancels."""
    client = tpl_ws.client()
    made = client.notifications.create(notification=_notification("Checked", "t", "x"))
    assert client.notifications.checks.list("sub_1", id=made.id).checks == []
    updated = client.notifications.checks.update(
        "sub_1",
        id=made.id,
        checks=[
            {"id": "legal", "status": "PENDING", "type": "custom"},
            {"id": "brand", "status": "RESOLVED", "type": "custom"},
        ],
    )
    assert [(c.id, c.status) for c in updated.checks] == [
        ("legal", "PENDING"),
        ("brand", "RESOLVED"),
    ]
    assert all(c.updated > 0 for c in updated.checks)
    listed = client.notifications.checks.list("sub_1", id=made.id)
    assert [c.id for c in listed.checks] == ["legal", "brand"]
    with pytest.raises(courier.BadRequestError):
        client.notifications.checks.update(
            "sub_1",
            id=made.id,
            checks=[{"id": "x", "status": "DONE", "type": "custom"}],  # type: ignore[typeddict-item]
        )
    client.notifications.checks.delete("sub_1", id=made.id)
    assert client.notifications.checks.list("sub_1", id=made.id).checks == []
    with pytest.raises(courier.NotFoundError):
        client.notifications.checks.list("sub_1", id="nt_missing")


def test_metrics_count_sends_of_the_template(tpl_ws: Workspace, smtp: SmtpServer) -> None:
    """get_metrics buckets the template's messages (by id or alias) per provider and channel;
    an unknown template has an all-empty series; a bad window is 400."""
    client = tpl_ws.client()
    alias = unique("METRICS")
    made = client.notifications.create(
        notification=_notification(alias, "t", "x", alias=alias), state="PUBLISHED"
    )
    emails = [unique_email("m1"), unique_email("m2")]
    client.send.message(message={"to": {"email": emails[0]}, "template": alias})
    client.send.message(message={"to": {"email": emails[1]}, "template": made.id})
    for email in emails:
        smtp.recorder.wait_for(email)

    def counted() -> Any:
        found = client.notifications.get_metrics(made.id, granularity="HOUR", lookback="PT3H")
        entries = [d for bucket in found.series for d in bucket.data]
        return found if sum(d.sent for d in entries) == 2 else None

    metrics = wait_for(counted, what="two sends counted")
    assert metrics.granularity == "HOUR"
    assert len(metrics.series) in (3, 4)
    entries = [d for bucket in metrics.series for d in bucket.data]
    assert {(d.provider, d.channel) for d in entries} == {("smtp", "email")}
    assert (sum(d.sent for d in entries), sum(d.errors for d in entries)) == (2, 0)
    empty = client.notifications.get_metrics("nt_unknown", lookback="P7D")
    assert len(empty.series) >= 7
    assert all(bucket.data == [] for bucket in empty.series)
    with pytest.raises(courier.BadRequestError):
        client.notifications.get_metrics(made.id, granularity="HOUR", lookback="P30D")
