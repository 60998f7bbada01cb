"""Validation of POST /send bodies and their split into per-recipient messages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relaybox.domain.send import (
    DEFAULT_ROUTING,
    direct,
    parse,
    recipient_id,
    seal_direct,
    send_at,
    supplied_profile,
)
from relaybox.errors import ValidationError

NOW = 1_700_000_000.0


def body(**message: Any) -> dict[str, Any]:
    """A /send body with a template and one recipient unless overridden."""
    return {"message": {"to": {"user_id": "u1"}, "template": "T", **message}}


def test_one_message_per_recipient_with_shared_fields() -> None:
    """An array `to` splits into one message each, sharing template, data and routing."""
    plan = parse(body(to=[{"user_id": "a"}, {"email": "b@x.y"}], data={"k": 1}), NOW)
    assert [m["to"] for m in plan.messages] == [{"user_id": "a"}, {"email": "b@x.y"}]
    assert all(m["data"] == {"k": 1} and m["template"] == "T" for m in plan.messages)
    assert plan.messages[0]["routing"] == DEFAULT_ROUTING
    assert plan.not_before is None


def test_delay_duration_is_milliseconds_and_until_is_iso() -> None:
    """delay.duration counts ms from now; delay.until is an instant (never in the past)."""
    assert parse(body(delay={"duration": 1500}), NOW).not_before == NOW + 1.5
    until = parse(body(delay={"until": "2030-01-01T00:00:00Z"}), NOW).not_before
    assert until == 1_893_456_000.0
    assert parse(body(delay={"until": "2000-01-01T00:00:00Z"}), NOW).not_before == NOW


def test_metadata_tags_are_deduplicated_and_trace_id_kept() -> None:
    """Tags keep their first-seen order without repeats."""
    plan = parse(body(metadata={"tags": ["a", "b", "a"], "trace_id": "t"}), NOW)
    assert plan.tags == ("a", "b")
    assert plan.trace_id == "t"


def test_channels_are_normalised() -> None:
    """channels.<ch> keeps providers and defaults routing_method to single."""
    plan = parse(body(channels={"email": {"providers": ["smtp"]}}), NOW)
    assert plan.messages[0]["channels"] == {
        "email": {"providers": ["smtp"], "routing_method": "single"}
    }


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        ({"to": {"audience_id": "a", "filters": []}}, "message.to.filters"),
        ({"to": {"slack": {"access_token": "t"}}}, "message.to.slack: Provide exactly one"),
        ({"to": {"slack": {"channel": "C1"}}}, "message.to.slack.access_token"),
        ({"to": {"webhook": {"url": "ftp://x.y"}}}, "message.to.webhook.url"),
        ({"to": {"webhook": {"url": "https://x.y", "method": "GET"}}}, "webhook.method"),
        ({"to": {"webhook": {"url": "https://x.y", "headers": {"A": 1}}}}, "webhook.headers"),
        (
            {"to": {"webhook": {"url": "https://x.y", "authentication": {"mode": "basic"}}}},
            "message.to.webhook.authentication.username",
        ),
        ({"to": [{"webhook": {"url": "https://x.y"}, "slack": {}}]}, "Provide one of webhook"),
        ({"to": {"ms_teams": {"user_id": "u"}}}, "message.to.ms_teams: Microsoft Teams"),
        ({"to": {"pagerduty": {"severity": "low"}}}, "message.to.pagerduty.routing_key"),
        (
            {"to": {"pagerduty": {"routing_key": "k", "severity": "low"}}},
            "message.to.pagerduty.severity: Expected one of critical",
        ),
        ({"to": {"list_id": "l", "filters": []}}, "message.to.filters"),
        ({"to": [{"list_id": "l", "list_pattern": "l.*"}]}, "message.to[0]: Provide one of"),
        ({"to": {"list_pattern": "a..b"}}, "message.to.list_pattern"),
        ({"to": {"locale": "fr"}}, "message.to: Provide user_id"),
        ({"to": {"user_id": "u", "timezone": "Mars/Base"}}, "time zone"),
        ({"delay": {"until": "Someday 9-5"}}, "message.delay.until"),
        ({"delay": {"until": "Mo-Fr 09:00-17:00", "timezone": "X/Y"}}, "time zone"),
        ({"to": [{"user_id": 3}]}, "message.to[0].user_id"),
        ({"channels": {"fax": {}}}, "message.channels.fax"),
        ({"channels": {"email": {"routing_method": "both"}}}, "message.channels.email.routing"),
        (
            {"routing": {"method": "single", "channels": [{"method": "all"}]}},
            "message.routing.channels[0].channels",
        ),
        ({"channels": {"email": {"if": 3}}}, "message.channels.email.if"),
        ({"providers": {"smtp": {"override": []}}}, "message.providers.smtp.override"),
        ({"timeout": {"message": -1}}, "message.timeout.message"),
        ({"timeout": {"criteria": "read"}}, "message.timeout.criteria"),
        ({"expiry": {"expires_in": "soon"}}, "message.expiry.expires_in"),
        ({"expiry": {"expires_in": 1, "expires_at": "2030-01-01"}}, "message.expiry.expires_at"),
        ({"metadata": {"tags": ["a,b"]}}, "comma"),
        ({"delay": {}}, "message.delay"),
        ({"delay": {"duration": True}}, "message.delay.duration"),
        ({"content": "text"}, "message.content"),
    ],
)
def test_invalid_bodies_name_the_field(message: dict[str, Any], needle: str) -> None:
    """Each invalid field is reported by its path."""
    merged = {"to": {"user_id": "u1"}, "template": "T", **message}
    if "content" in message:
        del merged["template"]
    with pytest.raises(ValidationError, match=re.escape(needle)):
        parse({"message": merged}, NOW)


def test_recipient_id_and_supplied_profile() -> None:
    """The user id wins as recipient; addresses on the recipient form the supplied profile."""
    to = {"user_id": "u", "email": "e@x.y", "data": {"x": 1}}
    assert recipient_id(to) == "u"
    assert recipient_id({"phone_number": "+1"}) == "+1"
    assert supplied_profile(to) == {"email": "e@x.y"}


def test_list_recipients_fan_out_and_user_keys_win() -> None:
    """list_id / list_pattern / audience_id recipients fan out; a user's own list_id does not."""
    plan = parse(
        body(
            to=[
                {"list_id": "team", "data": {"x": 1}},
                {"list_pattern": "team.*"},
                {"user_id": "u", "list_id": "team"},
                {"audience_id": "vips"},
            ]
        ),
        NOW,
    )
    assert plan.fan_outs == [
        {"list_id": "team", "data": {"x": 1}},
        {"list_pattern": "team.*", "data": {}},
        {"audience_id": "vips", "data": {}},
    ]
    assert [m["to"] for m in plan.messages] == [{"user_id": "u", "list_id": "team"}]
    assert plan.shared["template"] == "T"


def test_a_window_delay_is_computed_per_recipient_zone() -> None:
    """until may be a delivery window; its zone is delay.timezone > to.timezone > profile > UTC."""
    now = 1_796_428_800.0  # Saturday 2026-12-05 00:00 UTC
    plan = parse(body(delay={"until": "Mo-Fr 09:00-17:00"}), now)
    assert plan.delay == {"not_before": None, "window": "Mo-Fr 09:00-17:00", "timezone": None}
    monday_9_utc = now + 2 * 86_400 + 9 * 3600
    assert send_at(plan.delay, {}, {}, now) == monday_9_utc
    assert send_at(plan.delay, {}, {"timezone": "Europe/Berlin"}, now) == monday_9_utc - 3600
    assert send_at(plan.delay, {}, {"timezone": "nonsense"}, now) == monday_9_utc
    assert send_at(plan.delay, {"timezone": "UTC-5"}, {"timezone": "Europe/Berlin"}, now) == (
        monday_9_utc + 5 * 3600
    )
    zoned = parse(body(delay={"until": "Mo-Fr 09:00-17:00", "timezone": "UTC+1"}), now).delay
    assert send_at(zoned, {"timezone": "UTC-5"}, {}, now) == monday_9_utc - 3600
    assert send_at(None, {}, {}, now) is None
    assert send_at(parse(body(delay={"duration": 1000}), now).delay, {}, {}, now) == now + 1


def test_direct_recipients_become_messages_of_their_own() -> None:
    """Webhook and Slack recipients are accepted beside user recipients, one message each."""
    hook = {"url": "https://user:pw@hooks.example/in?k=1", "authentication": {"mode": "none"}}
    slack = {"access_token": "xoxb-1", "email": "a@b.c"}
    plan = parse(body(to=[{"user_id": "u"}, {"webhook": hook}, {"slack": slack}]), NOW)
    assert [m["to"] for m in plan.messages] == [
        {"user_id": "u"},
        {"webhook": hook},
        {"slack": slack},
    ]
    assert direct({"user_id": "u"}) is None
    assert direct({"webhook": hook}) == ("webhook", hook)
    # Shown as the recipient: the URL without its credentials or query; the Slack target.
    assert recipient_id({"webhook": hook}) == "https://hooks.example/in"
    assert recipient_id({"slack": slack}) == "a@b.c"
    # The Slack target is the recipient's slack profile; its token stays out of it.
    assert supplied_profile({"slack": slack}) == {"slack": {"email": "a@b.c"}}


def test_seal_direct_passes_only_credentials_through_the_sealer() -> None:
    hook = {"url": "https://x.y", "headers": {"X-Key": "k"}, "authentication": {"mode": "none"}}
    sealed = seal_direct({"webhook": hook, "data": {"a": 1}}, lambda v: f"sealed({v})")
    assert sealed == {
        "webhook": {
            "url": "https://x.y",
            "headers": "sealed({'X-Key': 'k'})",
            "authentication": "sealed({'mode': 'none'})",
        },
        "data": {"a": 1},
    }
    slack = seal_direct({"slack": {"access_token": "t", "channel": "C"}}, lambda v: f"<{v}>")
    assert slack == {"slack": {"access_token": "<t>", "channel": "C"}}
    assert seal_direct({"user_id": "u"}, lambda v: "x") == {"user_id": "u"}
    pager = seal_direct({"pagerduty": {"routing_key": "R", "source": "db"}}, lambda v: f"<{v}>")
    assert pager == {"pagerduty": {"routing_key": "<R>", "source": "db"}}
    # The routing key is a credential: not shown as the recipient.
    assert recipient_id({"pagerduty": {"routing_key": "R"}}) == "pagerduty"
