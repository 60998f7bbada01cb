"""Tests for the delay-step grammar: `ms` and ISO 8601 durations, ISO 8601 instants, wake times."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybox.domain.delays import parse_duration, parse_until, validate_delay_step, wake_time
from relaybox.errors import ValidationError

# No example database: property tests must not write a .hypothesis/ directory into the tree.
_settings = settings(database=None, max_examples=200, deadline=None)

_MINUTE = 60
_HOUR = 3600
_DAY = 86_400
_WEEK = 7 * _DAY
_YEAR = 31_557_600  # 365.25 days
_MONTH = 2_630_016  # 30.44 days

# Every unit alias of npm `ms` v2 and its length in milliseconds.
_MS_UNITS: dict[str, int] = {
    **dict.fromkeys(["milliseconds", "millisecond", "msecs", "msec", "ms"], 1),
    **dict.fromkeys(["seconds", "second", "secs", "sec", "s"], 1000),
    **dict.fromkeys(["minutes", "minute", "mins", "min", "m"], 60_000),
    **dict.fromkeys(["hours", "hour", "hrs", "hr", "h"], 3_600_000),
    **dict.fromkeys(["days", "day", "d"], 86_400_000),
    **dict.fromkeys(["weeks", "week", "w"], 604_800_000),
    **dict.fromkeys(["years", "year", "yrs", "yr", "y"], 31_557_600_000),
}

_T = datetime(2024, 4, 8, 8, 9, 10, tzinfo=UTC).timestamp()  # 1712563750.0
_MIDNIGHT = datetime(2024, 4, 8, tzinfo=UTC).timestamp()


# ---------------------------------------------------------------------------------------------
# parse_duration: table tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2 hours", 2 * _HOUR),
        ("5 minutes", 5 * _MINUTE),
        ("1m", _MINUTE),
        ("2.5 hrs", 2.5 * _HOUR),
        ("3 days", 3 * _DAY),
        ("10h", 10 * _HOUR),
        ("5s", 5),
        ("1y", _YEAR),
        ("100", 0.1),
        ("1 week", _WEEK),
        ("0", 0),
        ("-0", 0),
        (".5s", 0.5),
        ("1.5d", 1.5 * _DAY),
        ("250ms", 0.25),
        ("250 msecs", 0.25),
        ("1 millisecond", 0.001),
        ("1 sec", 1),
        ("2 mins", 2 * _MINUTE),
        ("1 hr", _HOUR),
        ("2 yrs", 2 * _YEAR),
        ("5 MINUTES", 5 * _MINUTE),
        ("5M", 5 * _MINUTE),
        ("5 Ms", 0.005),
        ("5   m", 5 * _MINUTE),
        ("0" * 99 + "1", 0.001),
    ],
)
def test_parse_duration_ms_grammar(text: str, seconds: float) -> None:
    """Strings in the npm `ms` grammar parse to the documented number of seconds."""
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H", _HOUR),
        ("P1D", _DAY),
        ("PT1.5S", 1.5),
        ("PT1,5S", 1.5),
        ("P1W", _WEEK),
        ("P1DT2H30M", _DAY + 2 * _HOUR + 30 * _MINUTE),
        ("P1Y2M", _YEAR + 2 * _MONTH),
        ("P1M", _MONTH),
        ("PT1M", _MINUTE),
        ("PT0S", 0),
        ("P0D", 0),
        ("P1Y2M3W4DT5H6M7.5S", _YEAR + 2 * _MONTH + 3 * _WEEK + 4 * _DAY + 5 * _HOUR + 367.5),
        ("PT36H", 36 * _HOUR),
        ("pt2h", 2 * _HOUR),
        ("P1DT0.5H", _DAY + 1800),
    ],
)
def test_parse_duration_iso_8601(text: str, seconds: float) -> None:
    """ISO 8601 durations parse with a 365.25-day year and a 30.44-day month."""
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "2 fortnights",
        "five minutes",
        "5 minutes ",
        " 5 minutes",
        "5\tminutes",
        "5m\n",
        "5 minutes ago",
        "1.",
        "1.2.3s",
        "1e3",
        "0x10",
        "1_000",
        "Infinity",
        "NaN",
        "--5m",
        "+5m",
        "m",
        "\u0661\u0660s",  # Arabic-Indic digits: JavaScript's \d is ASCII only
        "1 \u017f",  # LATIN SMALL LETTER LONG S folds to "s" in Python's Unicode mode, not in JS
        "0" * 100 + "1",  # ms rejects strings longer than 100 characters
        "P",
        "PT",
        "P1DT",
        "P1H",
        "PT1D",
        "P1.5DT2H",
        "P.5D",
        "P1D2Y",
        "-P1D",
        "P-1D",
        "P0001-00-00T00:00:00",
        "1 hour 30 minutes",
    ],
)
def test_parse_duration_rejects_invalid(text: str) -> None:
    """Strings outside both grammars raise ValidationError."""
    with pytest.raises(ValidationError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5m", "-1", "-.5 hours", "-2 days"])
def test_parse_duration_rejects_negative(text: str) -> None:
    """Negative `ms` durations are refused, saying why."""
    with pytest.raises(ValidationError, match="negative"):
        parse_duration(text)


@pytest.mark.parametrize("value", [5, 5.0, None, True, ["5m"], {"$ref": "data.delay"}, b"5m"])
def test_parse_duration_rejects_non_strings(value: Any) -> None:
    """Non-string values raise ValidationError rather than TypeError."""
    with pytest.raises(ValidationError, match="expected a string"):
        parse_duration(value)


def test_parse_duration_error_quotes_value_and_shows_example() -> None:
    """The error message quotes the bad value and shows valid examples."""
    with pytest.raises(ValidationError) as caught:
        parse_duration("2 fortnights")
    assert caught.value.message == (
        'Invalid delay duration "2 fortnights": use a value and unit such as "5 minutes", '
        '"2 hours", "1.5d" or an ISO 8601 duration such as "PT2H"'
    )
    assert caught.value.status_code == 400


def test_parse_duration_error_shortens_huge_values() -> None:
    """A huge bad value is cut short in the error message."""
    with pytest.raises(ValidationError) as caught:
        parse_duration("x" * 10_000)
    assert len(caught.value.message) < 400
    assert '"xxx' in caught.value.message


# ---------------------------------------------------------------------------------------------
# parse_duration: properties
# ---------------------------------------------------------------------------------------------

_number_texts = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.tuples(
        st.integers(min_value=0, max_value=10**9).map(str) | st.just(""),
        st.from_regex(r"[0-9]{1,9}", fullmatch=True),
    ).map(lambda parts: f"{parts[0]}.{parts[1]}"),
)
_case_changes: list[Callable[[str], str]] = [str.lower, str.upper, str.title, str.swapcase]


@_settings
@given(
    number=_number_texts,
    unit=st.sampled_from(sorted(_MS_UNITS)),
    spaces=st.integers(min_value=0, max_value=3),
    case=st.sampled_from(_case_changes),
)
def test_ms_number_times_unit(
    number: str, unit: str, spaces: int, case: Callable[[str], str]
) -> None:
    """For any non-negative n and every unit alias, "n unit" parses to n times the unit."""
    result = parse_duration(f"{number}{' ' * spaces}{case(unit)}")
    expected = Fraction(number) * Fraction(_MS_UNITS[unit], 1000)
    assert math.isclose(result, float(expected), rel_tol=1e-12)


@_settings
@given(number=_number_texts)
def test_ms_without_unit_is_milliseconds(number: str) -> None:
    """A bare number is a count of milliseconds."""
    assert math.isclose(parse_duration(number), float(Fraction(number) / 1000), rel_tol=1e-12)


@_settings
@given(
    number=_number_texts.filter(lambda text: Fraction(text) != 0),
    unit=st.sampled_from(["", "s", " hours"]),
)
def test_ms_negative_is_invalid(number: str, unit: str) -> None:
    """Any negative `ms` duration is refused."""
    with pytest.raises(ValidationError):
        parse_duration(f"-{number}{unit}")


@_settings
@given(
    parts=st.fixed_dictionaries(
        {},
        optional={
            name: st.integers(min_value=0, max_value=10_000)
            for name in ("Y", "Mo", "W", "D", "H", "Mi", "S")
        },
    ).filter(bool)
)
def test_iso_duration_components_add_up(parts: Mapping[str, int]) -> None:
    """Any ISO 8601 duration is the sum of its components."""
    sizes = {"Y": _YEAR, "Mo": _MONTH, "W": _WEEK, "D": _DAY, "H": _HOUR, "Mi": _MINUTE, "S": 1}
    date_part = "".join(f"{parts[k]}{k[0]}" for k in ("Y", "Mo", "W", "D") if k in parts)
    time_part = "".join(f"{parts[k]}{k[0]}" for k in ("H", "Mi", "S") if k in parts)
    text = "P" + date_part + ("T" + time_part if time_part else "")
    assert parse_duration(text) == sum(parts[k] * sizes[k] for k in parts)


@_settings
@given(text=st.text(max_size=120))
def test_parse_duration_total(text: str) -> None:
    """Any string either parses to a finite non-negative number or raises ValidationError."""
    try:
        seconds = parse_duration(text)
    except ValidationError:
        return
    assert math.isfinite(seconds)
    assert seconds >= 0


# ---------------------------------------------------------------------------------------------
# parse_until: table tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("20240408T080910.123", _T + 0.123),
        ("20240408T080910Z", _T),
        ("20240408T080910", _T),
        ("20240408T080910+0700", _T - 7 * _HOUR),
        ("20240408T080910-07", _T + 7 * _HOUR),
        ("20240408T0809Z", _T - 10),
        ("2024-04-08T08:09:10.123Z", _T + 0.123),
        ("2024-04-08T08:09:10,123Z", _T + 0.123),
        ("2024-04-08T08:09:10Z", _T),
        ("2024-04-08T08:09:10z", _T),
        ("2024-04-08t08:09:10Z", _T),
        ("2024-04-08 08:09:10Z", _T),
        ("2024-04-08T08:09:10", _T),
        ("2024-04-08T08:09:10+00:00", _T),
        ("2024-04-08T08:09:10-00:00", _T),
        ("2024-04-08T08:09:10+07:00", _T - 7 * _HOUR),
        ("2024-04-08T08:09:10+7:00", _T - 7 * _HOUR),
        ("2024-04-08T08:09:10-5:30", _T + 5.5 * _HOUR),
        ("2024-04-08T08:09:10-05:30", _T + 5.5 * _HOUR),
        ("2024-04-08T08:09:10.123456789Z", _T + 0.123456789),
        ("2024-04-08T08:09", _T - 10),
        ("2024-04-08T08Z", _T - 9 * _MINUTE - 10),
        ("2024-04-08", _MIDNIGHT),
        ("20240408", _MIDNIGHT),
        ("2024-04-07T24:00", _MIDNIGHT),
        ("2024-04-07T24:00:00.000Z", _MIDNIGHT),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC).timestamp()),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59Z", -1),
    ],
)
def test_parse_until_forms(text: str, epoch: float) -> None:
    """Basic, extended and date-only ISO 8601 forms parse to UTC epoch seconds."""
    assert parse_until(text) == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "1712563750",
        "2024-04-08T",
        "2024-04-08T8:09:10Z",
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-04-00",
        "0000-01-01",
        "2024-04-08T25:00",
        "2024-04-08T24:01",
        "2024-04-08T24:00:01",
        "2024-04-08T24:00:00.5",
        "2024-04-08T08:60",
        "2024-04-08T23:59:60Z",
        "2024-04-08T08:09:10+24:00",
        "2024-04-08T08:09:10+07:60",
        "2024-04-08T08:09:10+7",
        "2024-04-08T08:09:10+700",
        "2024-04-08T08:09:10 +07:00",
        "2024-04-08T08:09:10ZZ",
        "2024-04-08T08:09:10.Z",
        "2024-04-08Z",
        "2024-W15-1",
        "2024-099",
        "2024-04",
        "2024-04-08x08:09:10",
        "20240408T08:09:10",
        "2024-04-08T080910",
        "2024-0408",
        " 2024-04-08",
        "2024-04-08\n",
        "+002024-04-08",
        "\u0662\u0660\u0662\u0664-04-08",
        "Mon, 08 Apr 2024 08:09:10 GMT",
    ],
)
def test_parse_until_rejects_invalid(text: str) -> None:
    """Malformed or out-of-range instants raise ValidationError."""
    with pytest.raises(ValidationError):
        parse_until(text)


@pytest.mark.parametrize("value", [1712563750, 1712563750.0, None, False, {"$ref": "data.at"}])
def test_parse_until_rejects_non_strings(value: Any) -> None:
    """Non-string instants raise ValidationError rather than TypeError."""
    with pytest.raises(ValidationError, match="expected a string"):
        parse_until(value)


def test_parse_until_error_quotes_value_and_shows_example() -> None:
    """The error message quotes the bad value and shows a valid timestamp."""
    with pytest.raises(ValidationError) as caught:
        parse_until("next tuesday")
    assert caught.value.message.startswith('Invalid delay until "next tuesday": ')
    assert '"2024-04-08T08:09:10Z"' in caught.value.message


# ---------------------------------------------------------------------------------------------
# parse_until: properties
# ---------------------------------------------------------------------------------------------

_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets
)


def _basic(moment: datetime) -> str:
    """The ISO 8601 basic form of an aware datetime, e.g. 20240408T080910.123456+0700."""
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{moment.year:04d}{moment:%m%dT%H%M%S}{fraction}{moment:%z}"


@_settings
@given(moment=_instants)
def test_basic_and_extended_forms_agree(moment: datetime) -> None:
    """The basic and extended forms of one instant parse equal, and match datetime.timestamp()."""
    extended = parse_until(moment.isoformat())
    assert parse_until(_basic(moment)) == extended
    assert extended == pytest.approx(moment.timestamp(), abs=1e-6)


@_settings
@given(moment=_instants.map(lambda moment: moment.replace(tzinfo=None)))
def test_zoneless_means_utc(moment: datetime) -> None:
    """An instant without a zone is the same instant as with Z or +00:00."""
    text = moment.isoformat()
    assert parse_until(text) == parse_until(text + "Z") == parse_until(text + "+00:00")


@_settings
@given(hours=st.integers(min_value=0, max_value=9), minutes=st.sampled_from([0, 30, 45]))
def test_single_digit_offset_hours(hours: int, minutes: int) -> None:
    """An offset like +7:00 means the same as +07:00."""
    for sign in "+-":
        short = f"2024-04-08T08:09:10{sign}{hours}:{minutes:02d}"
        full = f"2024-04-08T08:09:10{sign}{hours:02d}:{minutes:02d}"
        assert parse_until(short) == parse_until(full)


@_settings
@given(text=st.text(max_size=40))
def test_parse_until_total(text: str) -> None:
    """Any string either parses to a finite number or raises ValidationError."""
    with contextlib.suppress(ValidationError):
        assert math.isfinite(parse_until(text))


# ---------------------------------------------------------------------------------------------
# wake_time
# ---------------------------------------------------------------------------------------------


def test_wake_time_adds_duration() -> None:
    """A duration wakes that long after now."""
    assert wake_time(duration="2 hours", until=None, now=1000.0) == 1000.0 + 2 * _HOUR


def test_wake_time_until_in_future() -> None:
    """A future until wakes at that instant."""
    assert wake_time(duration=None, until="2024-04-08T08:09:10Z", now=_T - 60) == _T


def test_wake_time_past_until_is_now() -> None:
    """An until already passed wakes immediately, at now."""
    assert wake_time(duration=None, until="2024-04-08T08:09:10Z", now=_T + 60) == _T + 60


def test_wake_time_prefers_until_over_duration() -> None:
    """When both are given, until wins."""
    assert wake_time(duration="1 year", until="2024-04-08T08:09:10Z", now=_T - 60) == _T


def test_wake_time_both_still_validates_duration() -> None:
    """When both are given, an invalid duration is still an error."""
    with pytest.raises(ValidationError, match="2 fortnights"):
        wake_time(duration="2 fortnights", until="2024-04-08T08:09:10Z", now=_T)


def test_wake_time_needs_duration_or_until() -> None:
    """Neither duration nor until raises ValidationError."""
    with pytest.raises(ValidationError, match='"duration"'):
        wake_time(duration=None, until=None, now=_T)


@pytest.mark.parametrize(
    ("duration", "until"), [("soon", None), (None, "soon"), ("-5m", None), ("", None)]
)
def test_wake_time_rejects_invalid(duration: str | None, until: str | None) -> None:
    """Invalid durations and instants raise ValidationError."""
    with pytest.raises(ValidationError):
        wake_time(duration=duration, until=until, now=_T)


_nows = st.floats(min_value=-1e11, max_value=1e11, allow_nan=False)
_durations = st.builds(
    lambda number, unit: f"{number}{unit}",
    _number_texts,
    st.sampled_from(["", *sorted(_MS_UNITS)]),
) | st.sampled_from(["PT1H", "P1D", "PT1.5S", "P1W", "P1DT2H30M", "P1Y2M", "PT0S"])


@_settings
@given(now=_nows, duration=_durations | st.none(), until=_instants.map(datetime.isoformat))
def test_wake_time_never_before_now(now: float, duration: str | None, until: str) -> None:
    """Whatever the duration or until, the wake time is never earlier than now."""
    if duration is not None:
        assert wake_time(duration=duration, until=None, now=now) >= now
    assert wake_time(duration=duration, until=until, now=now) >= now


# ---------------------------------------------------------------------------------------------
# validate_delay_step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        {"action": "delay", "duration": "5 minutes"},
        {"action": "delay", "duration": "PT2H", "until": None},
        {"action": "delay", "until": "2024-04-08T08:09:10+07:00"},
        {"action": "delay", "duration": None, "until": "20240408"},
        {"action": "delay", "duration": "1d", "until": "2024-04-08"},
        {"action": "delay", "duration": {"$ref": "data.wait"}},
        {"action": "delay", "until": {"$ref": "profile.wake_at"}},
        {"action": "delay", "duration": "${data.minutes} minutes"},
        {"action": "delay", "until": "${data.when}"},
        {"action": "delay", "duration": "${data.wait}", "until": {"$ref": "data.at"}},
    ],
)
def test_validate_delay_step_accepts(step: Mapping[str, Any]) -> None:
    """Valid steps, and run-time accessors or interpolations, pass validation."""
    validate_delay_step(step)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"action": "delay"}, '"duration"'),
        ({"action": "delay", "duration": None, "until": None}, '"until"'),
        ({"action": "delay", "duration": "2 fortnights"}, '"2 fortnights"'),
        ({"action": "delay", "duration": "-5 minutes"}, "negative"),
        ({"action": "delay", "until": "next week"}, '"next week"'),
        ({"action": "delay", "duration": 300}, "expected a string"),
        ({"action": "delay", "until": 1712563750}, "expected a string"),
        ({"action": "delay", "duration": ["5m"]}, "expected a string"),
        ({"action": "delay", "duration": "5m", "until": "someday"}, '"someday"'),
        ({"action": "delay", "duration": "forever", "until": "2024-04-08"}, '"forever"'),
        ({"action": "delay", "duration": "$data.wait"}, '"\\$data.wait"'),
    ],
)
def test_validate_delay_step_rejects(step: Mapping[str, Any], message: str) -> None:
    """Missing, malformed or non-string values raise ValidationError naming the problem."""
    with pytest.raises(ValidationError, match=message):
        validate_delay_step(step)
