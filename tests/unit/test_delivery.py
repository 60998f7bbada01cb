"""Courier's timeout / expiry / override fields: validation, defaults and what they imply."""

from __future__ import annotations

import pytest

from relaybox.domain import delivery, routing
from relaybox.domain.routing import Candidate, build_route
from relaybox.errors import ValidationError

ENQUEUED = 1_700_000_000.0
SMTP = Candidate("email", "prv_a", "smtp")
HOOK = Candidate("webhook", "prv_h", "webhook")


def test_default_deadline_is_the_72_hour_message_timeout() -> None:
    """Without timeout or expiry a message is given up 72 h after it was enqueued."""
    assert delivery.deadline({}, ENQUEUED) == delivery.Deadline(
        ENQUEUED + 72 * 3600, delivery.TIMED_OUT
    )
    short = delivery.deadline({"timeout": {"message": 60_000}}, ENQUEUED)
    assert short == delivery.Deadline(ENQUEUED + 60, delivery.TIMED_OUT)


@pytest.mark.parametrize(
    ("expiry", "seconds"),
    [
        ({"expires_in": 1500}, 1.5),
        ({"expires_in": "P1DT4H"}, 28 * 3600),
        ({"expires_in": "2 hours"}, 2 * 3600),
        ({"expires_in": "1500"}, 1.5),
    ],
)
def test_expires_in_is_milliseconds_or_a_duration(
    expiry: dict[str, object], seconds: float
) -> None:
    """expires_in counts from the enqueue time; an earlier expiry than the timeout wins."""
    found = delivery.deadline({"expiry": expiry}, ENQUEUED)
    assert found == delivery.Deadline(ENQUEUED + seconds, delivery.EXPIRED)


def test_expires_at_is_an_instant_and_the_earlier_end_wins() -> None:
    """expires_at (ISO with zone, or epoch ms) is absolute; the timeout (from the first
    attempt) wins when earlier; the expiry counts from the request even after a delay."""
    at = delivery.deadline({"expiry": {"expires_at": "2023-11-14T22:14:00Z"}}, ENQUEUED)
    assert at == delivery.Deadline(1_700_000_040.0, delivery.EXPIRED)
    epoch = delivery.deadline({"expiry": {"expires_at": (ENQUEUED + 5) * 1000}}, ENQUEUED)
    assert epoch.at == ENQUEUED + 5
    started = delivery.deadline({"timeout": {"message": 1000}}, ENQUEUED, ENQUEUED + 3600)
    assert started == delivery.Deadline(ENQUEUED + 3601, delivery.TIMED_OUT)
    delayed = {"expiry": {"expires_in": 5000}, "timeout": {"message": 1000}}
    assert delivery.deadline(delayed, ENQUEUED, ENQUEUED + 3600) == delivery.Deadline(
        ENQUEUED + 5, delivery.EXPIRED
    )
    later = {"expiry": {"expires_in": "P10D"}, "timeout": {"message": 1000}}
    assert delivery.deadline(later, ENQUEUED) == delivery.Deadline(ENQUEUED + 1, delivery.TIMED_OUT)


def test_limits_take_the_most_specific_setting() -> None:
    """Provider: providers.<p>.timeouts > timeout.provider > channels.<c>.timeouts; defaults
    are Courier's (5 min per provider, 30 min per channel)."""
    route = build_route(
        {"method": "single", "channels": ["email", "webhook"]},
        configured=[SMTP, HOOK],
        profile={"email": "a@b.c"},
    )
    assert route is not None
    plain = delivery.limits({}, route)
    assert plain.provider_seconds == {"prv_a": 300.0, "prv_h": 300.0}
    assert plain.channel_seconds == {"email": 1800.0, "webhook": 1800.0}
    message = {
        "providers": {"smtp": {"timeouts": 2000}},
        "timeout": {"provider": {"smtp": 9000, "webhook": 4000}, "channel": {"email": 7000}},
        "channels": {"webhook": {"timeouts": {"provider": 8000, "channel": 6000}}},
    }
    limits = delivery.limits(message, route)
    assert limits.provider_seconds == {"prv_a": 2.0, "prv_h": 4.0}
    assert limits.channel_seconds == {"email": 7.0, "webhook": 6.0}


def test_overrides_merge_channel_then_provider_kind_then_configuration() -> None:
    """The provider's override wins over the channel's; nested objects merge."""
    message = {
        "channels": {"webhook": {"override": {"body": {"a": 1, "b": {"x": 1}}}}},
        "providers": {
            "webhook": {"override": {"body": {"b": {"y": 2}}}},
            "prv_h": {"override": {"headers": {"X-Env": "test"}}},
        },
    }
    assert delivery.overrides(message, HOOK) == {
        "body": {"a": 1, "b": {"x": 1, "y": 2}},
        "headers": {"X-Env": "test"},
    }
    assert delivery.overrides(message, SMTP) == {}


def test_nested_routing_is_validated_to_its_depth() -> None:
    """Nested routings are kept; a malformed entry is named by its path."""
    nested = {"method": "all", "channels": ["email", {"method": "single", "channels": ["sms"]}]}
    assert delivery.parse_routing(nested) == nested
    with pytest.raises(ValidationError, match=r"message\.routing\.channels\[1\]\.method"):
        delivery.parse_routing({"method": "all", "channels": ["email", {"channels": []}]})
    deep: dict[str, object] = {"method": "all", "channels": ["email"]}
    for _ in range(delivery.MAX_ROUTING_DEPTH):
        deep = {"method": "all", "channels": [deep]}
    with pytest.raises(ValidationError, match="nested deeper"):
        delivery.parse_routing(deep)


def test_courier_provider_keys_set_overrides_and_timeouts_of_ours() -> None:
    """``providers.firebase-fcm`` is ``providers.fcm``; our own key wins when both are given."""
    fcm = routing.Candidate("push", "prv_f", "fcm")
    message = {
        "providers": {
            "firebase-fcm": {"override": {"body": {"a": 1}}, "timeouts": 3000},
        },
    }
    assert delivery.overrides(message, fcm) == {"body": {"a": 1}}
    route = routing.Group(routing.SINGLE, (routing.Leg("push", routing.SINGLE, (fcm,)),))
    assert delivery.limits(message, route).provider_seconds == {"prv_f": 3.0}
    both = {"providers": {"fcm": {"override": {"b": 2}}, "firebase-fcm": {"override": {"c": 3}}}}
    assert delivery.overrides(both, fcm) == {"b": 2}
