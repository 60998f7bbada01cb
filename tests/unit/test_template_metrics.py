"""The metrics window (snapping, caps) and tally of `services.template_metrics`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relaybox.errors import ValidationError
from relaybox.services.template_metrics import parse_duration, tally, window
from relaybox.storage.base import Message

NOW = datetime(2026, 4, 15, 13, 30, tzinfo=UTC)  # a Wednesday


def test_lookback_default_is_30_days_of_day_buckets() -> None:
    start, end, grain, buckets = window(NOW, start=None, end=None, lookback=None, granularity=None)
    assert grain == "DAY"
    assert start == datetime(2026, 3, 16, tzinfo=UTC)
    assert end == datetime(2026, 4, 16, tzinfo=UTC)
    assert len(buckets) == 31
    assert buckets[0] == start


def test_window_snaps_outwards_weeks_start_on_sunday_and_months_on_the_first() -> None:
    start, end, _, buckets = window(
        NOW, start="2026-04-01T10:00:00Z", end="2026-04-15T00:00:00+00:00", lookback=None,
        granularity="week",
    )  # fmt: skip
    assert (start, end) == (datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 4, 19, tzinfo=UTC))
    assert len(buckets) == 3
    _, _, _, months = window(NOW, start=None, end=None, lookback="P12W", granularity="MONTH")
    assert months == [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2026-04-01T00:00:00Z"}, "together"),
        ({"start": "2026-04-02T00:00:00Z", "end": "2026-04-01T00:00:00Z"}, "earlier"),
        ({"lookback": "P8D", "granularity": "HOUR"}, "at most 7 days"),
        ({"lookback": "P91D"}, "at most 90 days"),
        ({"lookback": "P30X"}, "ISO 8601 duration"),
        ({"lookback": "PT0S"}, "positive"),
        ({"granularity": "YEAR"}, "granularity"),
        ({"start": "2026-04-01", "end": "2026-04-02"}, "offset"),
    ],
)
def test_bad_windows_are_400(kwargs: dict[str, str], message: str) -> None:
    args = {"start": None, "end": None, "lookback": None, "granularity": None, **kwargs}
    with pytest.raises(ValidationError, match=message):
        window(NOW, **args)


def test_parse_duration() -> None:
    assert parse_duration("PT12H").total_seconds() == 12 * 3600
    assert parse_duration("P1W2DT3M").total_seconds() == 9 * 86400 + 180


def _message(mid: str, status: str, at: datetime, providers: list[dict[str, str]]) -> Message:
    return Message(
        workspace_id="ws",
        id=mid,
        status=status,
        enqueued_at=at.timestamp(),
        updated_at=at.timestamp(),
        channel="email" if status != "UNMAPPED" else None,
        provider="smtp" if status != "UNMAPPED" else None,
        providers=providers,
    )


def test_tally_counts_per_provider_and_channel_per_bucket() -> None:
    """Failures count against the provider that failed, even when a later one delivered."""
    day = datetime(2026, 4, 15, 9, tzinfo=UTC)
    failed_then_sent = [
        {"provider": "webhook", "channel": "webhook", "status": "FAILED"},
        {"provider": "smtp", "channel": "email", "status": "SENT"},
    ]
    counted = tally(
        [
            _message("a", "SENT", day, failed_then_sent),
            _message("b", "CLICKED", day, []),
            _message("c", "UNDELIVERABLE", day, [{"provider": "smtp", "status": "RETRYABLE"}]),
            _message("d", "UNMAPPED", day, []),
        ],
        "DAY",
    )
    (entries,) = counted.values()
    assert entries == [
        {"provider": "smtp", "channel": "email", "sent": 2, "delivered": 1, "opened": 1,
         "clicked": 1, "errors": 1, "undeliverable": 1},
        {"provider": "webhook", "channel": "webhook", "sent": 0, "delivered": 0, "opened": 0,
         "clicked": 0, "errors": 1, "undeliverable": 0},
    ]  # fmt: skip
