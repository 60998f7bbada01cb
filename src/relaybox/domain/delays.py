"""The grammar of a Courier automation ``delay`` step: durations, instants and wake-up times.

A delay step waits either for a ``duration`` or ``until`` an instant::

    {"action": "delay", "duration": "2 hours"}
    {"action": "delay", "until": "2024-04-08T08:09:10Z"}

Durations accept exactly the grammar of the npm ``ms`` library (v2), which Courier's runtime uses,
plus ISO 8601 durations (``PT2H``), which Courier uses for batching. Instants are ISO 8601 dates
or date-times in basic or extended form. Everything here is pure: no I/O and no clock reads; the
current time is always passed in. Every bad input raises :class:`~relaybox.errors.ValidationError`
with a message that quotes the value and shows a valid example.

Decisions, in one place:

* ``ms`` strings are matched exactly as ``ms`` does: case-insensitive units, no surrounding
  whitespace, at most 100 characters, no unit meaning milliseconds, a year of 365.25 days.
* Negative durations are invalid in Relaybox (``ms`` itself would return a negative number);
  ``"-0"`` is zero, not negative, and yields ``0.0``.
* ISO 8601 durations are calendar-free approximations: a year is 365.25 days and a month is
  30.44 days (the mean Gregorian month, rounded as Courier's docs do), because a relative delay has
  no anchor date. Designators are case-insensitive, the decimal mark may be ``.`` or ``,``, only
  the last component may carry a fraction, weeks may be combined with other components (ISO
  8601-1:2019), and signed durations and the alternative ``PYYYY-MM-DDThh:mm:ss`` form are refused.
* ``isodate`` is not installed in this project, and the duration grammar is a dozen tokens, so it
  is parsed with a small regex instead of adding a dependency.
* Instants are parsed with our own regexes rather than :meth:`datetime.fromisoformat`, whose 3.11
  grammar is both too loose (any separator character, week and ordinal dates) and too strict (no
  ``+7:00``) for us, and changes between Python versions. A zone-less instant is UTC; a date alone
  is midnight UTC; ``24:00`` is the end of the day (as in ISO 8601 and JavaScript's ``Date``);
  leap seconds (``:60``) are refused.
* ``/send`` also takes a delivery window as ``until`` (``Mo-Fr 09:00-17:00``): the OpenStreetMap
  ``opening_hours`` grammar Courier's examples use, parsed by the maintained ``opening-hours-py``
  library (a Rust parser) rather than a hand-written subset, so ``Mo-Fr 09:00-12:00,14:00-18:00``,
  ``Sa-Su``, ``; PH off`` and the rest behave as documented there. Start inclusive, end
  exclusive. The window is read in the recipient's zone: an IANA name (``zoneinfo``, so DST is
  the zone's own) or a fixed ``UTC±H[:MM]`` offset.
* When a step names both ``until`` and ``duration`` (Courier says either is required, and does
  not say which wins), ``until`` wins: it is the more specific instruction. The duration must
  still be valid, so that a typo does not lie dormant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opening_hours import OpeningHours

from relaybox.errors import ValidationError

__all__ = [
    "next_in_window",
    "parse_duration",
    "parse_until",
    "parse_window",
    "parse_zone",
    "validate_delay_step",
    "wake_time",
]

_MS_MAX_LENGTH: Final = 100

# The regex of npm `ms` v2.1, verbatim. re.ASCII keeps `\d` to 0-9 and case-folding to ASCII, as
# in JavaScript; fullmatch() stands in for JavaScript's `$`, which (unlike Python's) does not
# match before a trailing newline.
_MS_RE: Final = re.compile(
    r"(-?(?:\d+)?\.?\d+) *(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h"
    r"|days?|d|weeks?|w|years?|yrs?|y)?",
    re.IGNORECASE | re.ASCII,
)

_MINUTE: Final = 60
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_WEEK: Final = 7 * _DAY
_YEAR: Final = 31_557_600  # 365.25 days
_MONTH: Final = 2_630_016  # 30.44 days

# Seconds per `ms` unit, keyed by the unit's first letter after the milliseconds check below.
_MS_UNIT_SECONDS: Final[Mapping[str, int]] = {
    "s": 1,
    "m": _MINUTE,
    "h": _HOUR,
    "d": _DAY,
    "w": _WEEK,
    "y": _YEAR,
}
_MS_MILLISECOND_UNITS: Final = frozenset({"ms", "msec", "msecs", "millisecond", "milliseconds"})

_ISO_NUMBER: Final = r"\d+(?:[.,]\d+)?"
_ISO_DURATION_RE: Final = re.compile(
    rf"P(?:(?P<years>{_ISO_NUMBER})Y)?(?:(?P<months>{_ISO_NUMBER})M)?"
    rf"(?:(?P<weeks>{_ISO_NUMBER})W)?(?:(?P<days>{_ISO_NUMBER})D)?"
    rf"(?P<time>T(?:(?P<hours>{_ISO_NUMBER})H)?(?:(?P<minutes>{_ISO_NUMBER})M)?"
    rf"(?:(?P<seconds>{_ISO_NUMBER})S)?)?",
    re.IGNORECASE | re.ASCII,
)
# In order, so that "only the last component may have a fraction" can be checked.
_ISO_COMPONENT_SECONDS: Final[tuple[tuple[str, int], ...]] = (
    ("years", _YEAR),
    ("months", _MONTH),
    ("weeks", _WEEK),
    ("days", _DAY),
    ("hours", _HOUR),
    ("minutes", _MINUTE),
    ("seconds", 1),
)

_OFFSET: Final = r"(?P<offset>Z|[+-]\d{1,2}:\d{2}|[+-]\d{2}(?:\d{2})?)?"
_FRACTION: Final = r"(?:[.,](?P<fraction>\d+))?"
_EXTENDED_RE: Final = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    rf"(?:[T ](?P<hour>\d{{2}})(?::(?P<minute>\d{{2}})(?::(?P<second>\d{{2}}){_FRACTION})?)?"
    rf"{_OFFSET})?",
    re.IGNORECASE | re.ASCII,
)
_BASIC_RE: Final = re.compile(
    r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})"
    rf"(?:T(?P<hour>\d{{2}})(?:(?P<minute>\d{{2}})(?:(?P<second>\d{{2}}){_FRACTION})?)?"
    rf"{_OFFSET})?",
    re.IGNORECASE | re.ASCII,
)
_OFFSET_RE: Final = re.compile(r"(?P<sign>[+-])(?P<hours>\d{1,2}):?(?P<minutes>\d{2})?", re.ASCII)

_FIXED_ZONE_RE: Final = re.compile(
    r"(?:UTC|GMT)(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?)?", re.ASCII
)
#: State changes followed while looking for the window's next opening (a closed stretch and
#: DST gaps can add a few); bounded so a pathological expression cannot loop for long.
_MAX_WINDOW_CHANGES: Final = 64
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

_MISSING_MESSAGE: Final = (
    'A delay step needs a "duration" (such as "5 minutes" or "PT2H") '
    'or an "until" (such as "2024-04-08T08:09:10Z")'
)
_DURATION_EXAMPLES: Final = (
    'use a value and unit such as "5 minutes", "2 hours", "1.5d" '
    'or an ISO 8601 duration such as "PT2H"'
)
_UNTIL_EXAMPLES: Final = (
    'use an ISO 8601 timestamp such as "2024-04-08T08:09:10Z", "2024-04-08T08:09:10+07:00" '
    'or "20240408T080910Z", or a date such as "2024-04-08"'
)


def parse_duration(value: str) -> float:
    """Seconds. Accepts the npm `ms` library grammar exactly and ISO 8601 durations."""
    if not isinstance(value, str):
        raise ValidationError(
            f"Invalid delay duration {_describe(value)}: expected a string; {_DURATION_EXAMPLES}"
        )
    seconds = _parse_ms(value)
    if seconds is None:
        seconds = _parse_iso_duration(value)
    if seconds is None:
        raise ValidationError(f"Invalid delay duration {_quote(value)}: {_DURATION_EXAMPLES}")
    if seconds < 0:
        raise ValidationError(
            f"Invalid delay duration {_quote(value)}: a delay cannot be negative; "
            f"{_DURATION_EXAMPLES}"
        )
    return seconds + 0.0  # turns "-0" into 0.0


def parse_until(value: str) -> float:
    """Epoch seconds (UTC) of an ISO 8601 date or date-time; zone-less means UTC."""
    if not isinstance(value, str):
        raise ValidationError(
            f"Invalid delay until {_describe(value)}: expected a string; {_UNTIL_EXAMPLES}"
        )
    match = _EXTENDED_RE.fullmatch(value) or _BASIC_RE.fullmatch(value)
    seconds = None if match is None else _instant_seconds(match)
    if seconds is None:
        raise ValidationError(f"Invalid delay until {_quote(value)}: {_UNTIL_EXAMPLES}")
    return seconds


def wake_time(*, duration: str | None, until: str | None, now: float) -> float:
    """When a delay step started at `now` wakes: the `until` instant (never before `now`) if given,
    else `now` plus `duration`.

    Courier requires "either until or duration"; when both are given, `until` wins (the duration
    must still be valid). Neither raises :class:`ValidationError`.
    """
    if until is not None:
        if duration is not None:
            parse_duration(duration)
        return max(now, parse_until(until))
    if duration is None:
        raise ValidationError(_MISSING_MESSAGE)
    return now + parse_duration(duration)


def validate_delay_step(step: Mapping[str, Any]) -> None:
    """Check a delay step has a valid string `duration` or `until` (either may be absent, not both).

    A ``{"$ref": ...}`` accessor (any mapping) or a string with ``${`` interpolation is resolved
    when the step runs, so it is accepted here unparsed.
    """
    duration = step.get("duration")
    until = step.get("until")
    if duration is None and until is None:
        raise ValidationError(_MISSING_MESSAGE)
    if duration is not None and not _resolved_at_run_time(duration):
        parse_duration(duration)
    if until is not None and not _resolved_at_run_time(until):
        parse_until(until)


def parse_window(value: str) -> str:
    """Validate a delivery window (``Mo-Fr 09:00-17:00``); returns it unchanged."""
    try:
        OpeningHours(value)
    # The library's ParserError (missing from its type stubs) derives from Exception only.
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "not understood"
        raise ValidationError(
            f'Invalid delivery window {_quote(value)}: {first}; e.g. "Mo-Fr 09:00-17:00" or '
            '"Mo-Fr 09:00-12:00,14:00-18:00"'
        ) from None
    return value


def parse_zone(value: str) -> tzinfo:
    """An IANA zone (``America/New_York``) or a fixed offset (``UTC``, ``UTC-5``, ``UTC+05:30``)."""
    match = _FIXED_ZONE_RE.fullmatch(value)
    if match is not None:
        if match["sign"] is None:
            return UTC
        minutes = int(match["hours"]) * 60 + int(match["minutes"] or 0)
        if minutes > 18 * 60:
            raise ValidationError(f"Invalid time zone {_quote(value)}: offset beyond 18 hours")
        return timezone(timedelta(minutes=-minutes if match["sign"] == "-" else minutes))
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f'Invalid time zone {_quote(value)}: use an IANA name such as "Europe/Paris" or "UTC-5"'
        ) from None


def next_in_window(window: str, now: float, zone: tzinfo) -> float:
    """The first instant at or after ``now`` inside ``window`` read in ``zone`` (epoch seconds).

    A window that never opens (``off``) or not within a few years raises ValidationError.
    """
    if isinstance(zone, ZoneInfo):
        hours = OpeningHours(window, timezone=zone)
        at = datetime.fromtimestamp(now, zone)
    else:
        # The library only takes IANA zones; a fixed offset has no DST, so wall-clock time
        # read naively in that offset is exact.
        hours = OpeningHours(window)
        at = datetime.fromtimestamp(now, zone).replace(tzinfo=None)
    if hours.is_open(at):
        return now  # exactly: a round trip through datetime could land a microsecond later
    for _ in range(_MAX_WINDOW_CHANGES):
        if hours.is_open(at):
            instant = at if at.tzinfo is not None else at.replace(tzinfo=zone)
            return max(now, instant.timestamp())
        following = hours.next_change(at)
        if following is None or following <= at:
            break
        at = following
    raise ValidationError(f"Delivery window {_quote(window)} never opens")


def _resolved_at_run_time(value: object) -> bool:
    """True for values only known when the step runs: accessors and `${...}` interpolations."""
    return isinstance(value, Mapping) or (isinstance(value, str) and "${" in value)


def _parse_ms(value: str) -> float | None:
    """Seconds for an npm `ms` string, or None if `ms` would not parse it."""
    if len(value) > _MS_MAX_LENGTH:
        return None
    match = _MS_RE.fullmatch(value)
    if match is None:
        return None
    number = float(match.group(1))
    unit = (match.group(2) or "ms").lower()
    if unit in _MS_MILLISECOND_UNITS:
        return number / 1000
    return number * _MS_UNIT_SECONDS[unit[0]]


def _parse_iso_duration(value: str) -> float | None:
    """Seconds for an ISO 8601 duration such as ``P1DT2H30M``, or None if it is not one."""
    match = _ISO_DURATION_RE.fullmatch(value)
    if match is None or match.group("time") in ("T", "t"):
        return None
    present = [
        (text, unit)
        for text, unit in ((match.group(name), unit) for name, unit in _ISO_COMPONENT_SECONDS)
        if text is not None
    ]
    if not present:
        return None
    if any(("." in text or "," in text) for text, _ in present[:-1]):
        return None
    return sum(float(text.replace(",", ".")) * unit for text, unit in present)


def _instant_seconds(match: re.Match[str]) -> float | None:
    """Epoch seconds for a matched date or date-time, or None if its fields are out of range."""
    hour, minute, second = (int(match.group(name) or 0) for name in ("hour", "minute", "second"))
    fraction = match.group("fraction") or ""
    offset = _offset_seconds(match.group("offset"))
    if offset is None or minute > 59 or second > 59:
        return None
    if hour == 24 and not (minute or second or fraction.strip("0")):
        hour, extra_days = 0, 1  # 24:00 is midnight at the end of the day
    else:
        extra_days = 0
    try:
        day = date(int(match.group("year")), int(match.group("month")), int(match.group("day")))
    except ValueError:
        return None
    if hour > 23:
        return None
    days = day.toordinal() - _EPOCH_ORDINAL + extra_days
    whole = days * _DAY + hour * _HOUR + minute * _MINUTE + second - offset
    return whole + (float("0." + fraction) if fraction else 0.0)


def _offset_seconds(offset: str | None) -> int | None:
    """Seconds east of UTC for ``Z``, ``+07:00``, ``+7:00``, ``+0700`` or ``+07``; None if bad."""
    if offset is None or offset in ("Z", "z"):
        return 0
    match = _OFFSET_RE.fullmatch(offset)
    if match is None:
        return None
    hours, minutes = int(match.group("hours")), int(match.group("minutes") or 0)
    if hours > 23 or minutes > 59:
        return None
    seconds = hours * _HOUR + minutes * _MINUTE
    return -seconds if match.group("sign") == "-" else seconds


def _quote(value: str) -> str:
    """The value in double quotes for an error message, escaped and cut short if very long."""
    shown = value if len(value) <= 120 else value[:117] + "..."
    return json.dumps(shown, ensure_ascii=False)


def _describe(value: object) -> str:
    """A non-string value and its type, for an error message."""
    text = repr(value)
    shown = text if len(text) <= 120 else text[:117] + "..."
    return f"{shown} ({type(value).__name__})"
