"""POST /send to list, list_pattern and user recipients under one requestId, and delivery
windows, through the official SDK against a real server."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import courier
import pytest
from relaybox_harness import SmtpServer, Workspace, unique, unique_email, wait_for


def _members(ws: Workspace, list_ids: list[str], count: int, **profile: Any) -> dict[str, str]:
    """``count`` users with an email each, subscribed to every list in ``list_ids``."""
    client = ws.client()
    emails = {}
    for n in range(count):
        user = unique(f"member{n}")
        emails[user] = unique_email(f"member{n}")
        client.profiles.create(user, profile={"email": emails[user], **profile})
    for list_id in list_ids:
        client.lists.subscriptions.add(list_id, recipients=[{"recipient_id": u} for u in emails])
    return emails


def _request_messages(ws: Workspace, request_id: str, count: int) -> list[Any]:
    """Every message of one request, via messages.list(message_id=<requestId>)."""
    client = ws.client()

    def probe() -> list[Any] | None:
        found = client.messages.list(message_id=request_id).results or []
        return found if len(found) >= count else None

    return wait_for(probe, timeout=15.0, what=f"{count} messages of request {request_id}")


def test_list_recipient_sends_to_every_subscriber_under_one_request_id(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """to: {list_id} → one message per subscriber, all listed under the one requestId."""
    list_id = unique("news.eng")
    emails = _members(ws, [list_id], 3)
    sent = ws.client().send.message(
        message={
            "to": {"list_id": list_id, "data": {"who": "list"}},
            "content": {"title": "Hello {{who}}", "body": "Body {{topic}}"},
            "data": {"topic": "t1"},
        }
    )
    for email in emails.values():
        (mail,) = smtp.recorder.wait_for(email)
        assert mail.subject == "Hello list"
    messages = _request_messages(ws, sent.request_id, 3)
    assert sorted(m.recipient for m in messages) == sorted(emails)
    assert len({m.id for m in messages}) == 3
    assert sent.request_id not in {m.id for m in messages}


def test_list_pattern_sends_once_to_a_subscriber_of_two_matching_lists(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """A subscriber of two lists matching the pattern gets the message once."""
    root = unique("org")
    both = _members(ws, [f"{root}.a", f"{root}.b"], 1)
    only_b = _members(ws, [f"{root}.b"], 1)
    _members(ws, [f"{root}x.c"], 1)  # does not match root.*
    sent = ws.client().send.message(
        message={"to": {"list_pattern": f"{root}.*"}, "content": {"title": "P", "body": "b"}}
    )
    messages = _request_messages(ws, sent.request_id, 2)
    assert sorted(m.recipient for m in messages) == sorted([*both, *only_b])
    for email in [*both.values(), *only_b.values()]:
        smtp.recorder.wait_for(email)
    ((_, twice),) = both.items()
    assert len(smtp.recorder.to(twice)) == 1


def test_users_and_lists_together_share_the_request_id(ws: Workspace, smtp: SmtpServer) -> None:
    """A mix of a user recipient and a list recipient: every message under one requestId."""
    list_id = unique("mixed")
    members = _members(ws, [list_id], 2)
    direct = unique_email("direct")
    sent = ws.client().send.message(
        message={
            "to": [{"email": direct}, {"list_id": list_id}],
            "content": {"title": "Mixed", "body": "b"},
        }
    )
    messages = _request_messages(ws, sent.request_id, 3)
    assert sorted(m.recipient for m in messages) == sorted([direct, *members])
    smtp.recorder.wait_for(direct)


@pytest.mark.parametrize(
    ("to", "needle"),
    [
        ({"ms_teams": {"user_id": "u", "tenant_id": "t"}}, "ms_teams: Microsoft Teams"),
        ({"audience_id": "vips", "filters": [{"operator": "MEMBER_OF"}]}, "filters"),
        ({"list_id": "l", "filters": [{"operator": "MEMBER_OF"}]}, "filters"),
    ],
)
def test_unsupported_recipients_are_a_400_saying_so(
    ws: Workspace, to: dict[str, Any], needle: str
) -> None:
    with pytest.raises(courier.BadRequestError) as caught:
        ws.client().send.message(message={"to": to, "content": {"title": "x", "body": "y"}})
    assert needle in str(caught.value.body)


def test_an_unknown_list_is_a_404(ws: Workspace) -> None:
    missing = unique("nolist")
    with pytest.raises(courier.NotFoundError) as caught:
        ws.client().send.message(
            message={"to": {"list_id": missing}, "content": {"title": "x", "body": "y"}}
        )
    assert f"List {missing} not found" in str(caught.value.body)


def _closed_window(zone: ZoneInfo) -> tuple[str, datetime]:
    """A daily one-hour window opening 2-3 hours from now in ``zone``, and its next opening."""
    opens = (datetime.now(zone) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    end = "24:00" if opens.hour == 23 else f"{opens.hour + 1:02d}:00"
    return f"Mo-Su {opens.hour:02d}:00-{end}", opens


def _held_until(ws: Workspace, message_id: str) -> dict[str, Any]:
    history = ws.client().messages.history(message_id).results
    (held,) = [h for h in history if h["type"] == "DELAYED"]
    return dict(held)


def test_a_window_delay_holds_the_message_until_the_window_opens_in_the_profile_zone(
    ws: Workspace,
) -> None:
    """until = a daily window: DELAYED, due at the window's next opening in the profile's zone."""
    zone = ZoneInfo("Asia/Tokyo")
    window, opens = _closed_window(zone)
    user = unique("tokyo")
    client = ws.client()
    client.profiles.create(user, profile={"email": unique_email("tokyo"), "timezone": str(zone)})
    sent = client.send.message(
        message={"to": {"user_id": user}, "template": "x", "delay": {"until": window}}
    )
    message = client.messages.retrieve(sent.request_id)
    assert message.status == "DELAYED"
    held = _held_until(ws, sent.request_id)
    assert held["until"] == int(opens.timestamp() * 1000)
    assert held["window"] == window
    # Held by a due-time row: it can still be canceled.
    assert client.messages.cancel(sent.request_id).status == "CANCELED"


def test_delay_timezone_wins_over_the_profile_and_a_list_uses_each_subscribers_zone(
    ws: Workspace,
) -> None:
    """delay.timezone beats the profile's; without it each list subscriber's own zone counts."""
    client = ws.client()
    new_york, berlin = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
    window, opens_ny = _closed_window(new_york)
    user = unique("zoned")
    client.profiles.create(user, profile={"email": unique_email("z"), "timezone": "Europe/Berlin"})
    sent = client.send.message(
        message={
            "to": {"user_id": user},
            "content": {"title": "t", "body": "b"},
            "delay": {"until": window, "timezone": "America/New_York"},
        }
    )
    assert _held_until(ws, sent.request_id)["until"] == int(opens_ny.timestamp() * 1000)

    list_id = unique("zones")
    in_berlin = _members(ws, [list_id], 1, timezone="Europe/Berlin")
    in_tokyo = _members(ws, [list_id], 1, timezone="Asia/Tokyo")
    window, opens_berlin = _closed_window(berlin)
    sent = client.send.message(
        message={
            "to": {"list_id": list_id},
            "content": {"title": "t", "body": "b"},
            "delay": {"until": window},
        }
    )
    by_user = {m.recipient: m for m in _request_messages(ws, sent.request_id, 2)}
    assert {m.status for m in by_user.values()} == {"DELAYED"}
    (berliner,), (tokyoite,) = in_berlin, in_tokyo
    assert _held_until(ws, by_user[berliner].id)["until"] == int(opens_berlin.timestamp() * 1000)
    # The same wall-clock hour in Tokyo is a different instant, never before now.
    tokyo_hour = opens_berlin.hour
    tokyo_until = _held_until(ws, by_user[tokyoite].id)["until"] / 1000
    assert datetime.fromtimestamp(tokyo_until, ZoneInfo("Asia/Tokyo")).hour == tokyo_hour
    assert tokyo_until != opens_berlin.timestamp()


def test_an_open_window_sends_at_once(ws: Workspace, smtp: SmtpServer) -> None:
    """A window open now (in the recipient's zone) does not hold the message."""
    email = unique_email("open")
    sent = ws.client().send.message(
        message={
            "to": {"email": email, "timezone": "UTC+2"},
            "content": {"title": "Now", "body": "b"},
            "delay": {"until": "Mo-Su 00:00-24:00"},
        }
    )
    smtp.recorder.wait_for(email)
    assert ws.client().messages.history(sent.request_id, type="DELAYED").results == []


def test_a_bad_window_or_zone_is_a_400(ws: Workspace) -> None:
    client = ws.client()
    for delay, needle in (
        ({"until": "weekdays 9 to 5"}, "message.delay.until"),
        ({"until": "Mo-Fr 09:00-17:00", "timezone": "Mars/Olympus"}, "time zone"),
        ({"until": "off"}, "never opens"),
    ):
        with pytest.raises(courier.BadRequestError) as caught:
            client.send.message(
                message={
                    "to": {"email": "x@example.com"},
                    "content": {"title": "t", "body": "b"},
                    "delay": delay,
                }
            )
        assert needle in str(caught.value.body)
