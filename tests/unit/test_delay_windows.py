"""Delivery windows of POST /send delays (`Mo-Fr 09:00-17:00` in the recipient's zone)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybox.domain.delays import next_in_window, parse_window, parse_zone
from relaybox.errors import ValidationError

_settings = settings(database=None, max_examples=150, deadline=None)
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def at(zone: ZoneInfo, *parts: int) -> float:
    return datetime(*parts, tzinfo=zone).timestamp()  # type: ignore[misc]


def local(seconds: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(seconds, zone)


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        # Saturday 08:00 in New York → Monday 09:00 New York time.
        ("Mo-Fr 09:00-17:00", (2026, 11, 28, 8, 0), (2026, 11, 30, 9, 0)),
        # Inside the window: now itself.
        ("Mo-Fr 09:00-17:00", (2026, 11, 30, 10, 15), (2026, 11, 30, 10, 15)),
        # Start inclusive, end exclusive.
        ("Mo-Fr 09:00-17:00", (2026, 11, 30, 9, 0), (2026, 11, 30, 9, 0)),
        ("Mo-Fr 09:00-17:00", (2026, 11, 30, 17, 0), (2026, 12, 1, 9, 0)),
        # The lunch break of a split window.
        ("Mo-Fr 09:00-12:00,14:00-18:00", (2026, 11, 30, 12, 30), (2026, 11, 30, 14, 0)),
        ("Sa-Su 00:00-23:59", (2026, 11, 30, 12, 0), (2026, 12, 5, 0, 0)),
    ],
)
def test_next_opening_in_new_york(
    window: str, now: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    """The result is the next wall-clock opening in the recipient's zone."""
    assert next_in_window(window, at(NEW_YORK, *now), NEW_YORK) == at(NEW_YORK, *expected)


def test_the_same_instant_differs_by_zone() -> None:
    """Monday 06:00 UTC is inside Berlin's 09-17 window later that day, New York's even later."""
    now = at(UTC, 2026, 11, 30, 6, 0)
    assert local(next_in_window("Mo-Fr 09:00-17:00", now, BERLIN), UTC).hour == 8
    assert local(next_in_window("Mo-Fr 09:00-17:00", now, NEW_YORK), UTC).hour == 14
    assert local(next_in_window("Mo-Fr 09:00-17:00", now, UTC), UTC).hour == 9


def test_dst_changes_follow_the_zone() -> None:
    """09:00 Berlin is 08:00 UTC in winter and 07:00 UTC after the spring change."""
    before = next_in_window("Mo-Fr 09:00-17:00", at(UTC, 2026, 3, 27, 18, 0), BERLIN)
    after = next_in_window("Mo-Fr 09:00-17:00", at(UTC, 2026, 3, 28, 0, 0), BERLIN)
    assert local(before, UTC) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert after == before
    winter = next_in_window("Mo-Fr 09:00-17:00", at(UTC, 2026, 3, 20, 18, 0), BERLIN)
    assert local(winter, UTC) == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)


def test_a_window_inside_the_spring_gap_opens_the_next_day() -> None:
    """02:30-02:45 does not exist in Berlin on 29 March 2026: the next real one is the 30th."""
    found = next_in_window("Mo-Su 02:30-02:45", at(UTC, 2026, 3, 28, 23, 0), BERLIN)
    assert local(found, BERLIN) == datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN)


def test_fixed_offsets() -> None:
    """`UTC-5` is five hours behind UTC all year; `UTC` alone is UTC."""
    now = at(UTC, 2026, 7, 6, 12, 0)  # a Monday, 07:00 at UTC-5
    assert local(next_in_window("Mo-Fr 09:00-17:00", now, parse_zone("UTC-5")), UTC).hour == 14
    assert local(next_in_window("Mo-Fr 09:00-17:00", now, parse_zone("UTC")), UTC).hour == 12
    half = parse_zone("UTC+05:30")
    assert local(next_in_window("Mo-Fr 09:00-17:00", now, half), UTC) == datetime(
        2026, 7, 7, 3, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("bad", ["garbage", "Mo-Fr 25:00-26:00", ""])
def test_bad_windows_are_validation_errors(bad: str) -> None:
    with pytest.raises(ValidationError, match="delivery window"):
        parse_window(bad)


def test_a_window_that_never_opens_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="never opens"):
        next_in_window("off", 0.0, UTC)


@pytest.mark.parametrize("bad", ["Mars/Olympus", "UTC+99", "../etc/passwd"])
def test_bad_zones_are_validation_errors(bad: str) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        parse_zone(bad)


WINDOWS = st.sampled_from(
    [
        ("Mo-Fr 09:00-17:00", {0, 1, 2, 3, 4}, [(9 * 60, 17 * 60)]),
        ("Mo-Fr 09:00-12:00,14:00-18:00", {0, 1, 2, 3, 4}, [(540, 720), (840, 1080)]),
        ("Sa-Su 00:00-23:59", {5, 6}, [(0, 23 * 60 + 59)]),
        ("We 02:30-03:30", {2}, [(150, 210)]),
    ]
)
ZONES = st.sampled_from(
    [NEW_YORK, BERLIN, UTC, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")]
)
# 2020-2030, to the second.
NOWS = st.integers(min_value=1_577_836_800, max_value=1_893_456_000).map(float)


@_settings
@given(WINDOWS, ZONES, NOWS)
def test_result_is_inside_the_window_never_before_now_and_the_first_such_minute(
    window: tuple[str, set[int], list[tuple[int, int]]], zone: ZoneInfo, now: float
) -> None:
    """Always inside the window (local wall clock), never before now, and no earlier minute is."""
    text, days, ranges = window

    def inside(seconds: float) -> bool:
        wall = local(seconds, zone)
        minute = wall.hour * 60 + wall.minute
        return wall.weekday() in days and any(lo <= minute < hi for lo, hi in ranges)

    found = next_in_window(text, now, zone)
    assert found >= now
    assert inside(found)
    assert found - now < 8 * 86_400
    # No whole minute between now and the result is inside the window.
    probe = now + 60 - now % 60
    step = timedelta(minutes=1).total_seconds()
    while probe < found:
        assert not inside(probe), (text, zone, now, found, probe)
        probe += step * 15 if (found - probe) > 3600 else step


@_settings
@given(ZONES, st.floats(min_value=1_577_836_800, max_value=1_893_456_000))
def test_an_always_open_window_returns_now_exactly(zone: ZoneInfo, now: float) -> None:
    """Inside the window the answer is now itself, not a microsecond later (not 'delayed')."""
    assert next_in_window("Mo-Su 00:00-24:00", now, zone) == now
    assert next_in_window("Mo-Su 00:00-24:00", now, parse_zone("UTC+2")) == now
