"""A template's delivery funnel as a time series (`GET /notifications/{id}/metrics`).

The window is `start`..`end` (both or neither) or `lookback` (ISO 8601 duration, default
P30D) back from now, snapped outwards onto the `granularity` grid (UTC; weeks start on
Sunday). Every bucket is returned, quiet ones with an empty `data`; each entry counts one
provider on one channel: messages handed to it (`sent`), confirmed `delivered`, `opened`,
`clicked`, failed on it (`errors`, also when a later provider delivered) and `undeliverable`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from relaybox.errors import ValidationError
from relaybox.storage.base import Message, MessageFilter, Store

GRANULARITIES = ("HOUR", "DAY", "WEEK", "MONTH")
#: The widest window a fine granularity may cover.
_MAX_SPAN = {"HOUR": timedelta(days=7), "DAY": timedelta(days=90)}
MAX_BUCKETS = 1000
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
_SENT = frozenset({"SENT", "DELIVERED", "OPENED", "CLICKED"})
_DELIVERED = frozenset({"DELIVERED", "OPENED", "CLICKED"})
_OPENED = frozenset({"OPENED", "CLICKED"})
_COUNTERS = ("sent", "delivered", "opened", "clicked", "errors", "undeliverable")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        raise ValidationError(
            f'lookback: "{text}" is not an ISO 8601 duration such as P30D, P12W or PT12H'
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    span = timedelta(
        weeks=parts.get("w", 0),
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )
    if span <= timedelta(0):
        raise ValidationError("lookback: the duration must be positive")
    return span


def _parse_time(text: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name}: Expected an ISO 8601 timestamp with an offset") from None
    if parsed.tzinfo is None:
        raise ValidationError(f"{name}: Expected an ISO 8601 timestamp with an offset")
    return parsed.astimezone(UTC)


def floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC)
    if granularity == "HOUR":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "DAY":
        return day
    if granularity == "WEEK":
        return day - timedelta(days=(day.weekday() + 1) % 7)  # back to Sunday
    return day.replace(day=1)


def step(moment: datetime, granularity: str) -> datetime:
    if granularity == "HOUR":
        return moment + timedelta(hours=1)
    if granularity == "DAY":
        return moment + timedelta(days=1)
    if granularity == "WEEK":
        return moment + timedelta(weeks=1)
    year, month = divmod(moment.month, 12)
    return moment.replace(year=moment.year + year, month=month + 1)


def window(
    now: datetime,
    *,
    start: str | None,
    end: str | None,
    lookback: str | None,
    granularity: str | None,
) -> tuple[datetime, datetime, str, list[datetime]]:
    """(snapped start, snapped end, granularity, bucket starts); 400 on a bad request."""
    grain = (granularity or "DAY").upper()
    if grain not in GRANULARITIES:
        raise ValidationError(f"granularity: Expected one of {', '.join(GRANULARITIES)}")
    if (start is None) != (end is None):
        raise ValidationError("start and end must be supplied together")
    if start is not None and end is not None:
        begin, finish = _parse_time(start, "start"), _parse_time(end, "end")
        if begin >= finish:
            raise ValidationError("start must be earlier than end")
    else:
        finish = now
        begin = now - parse_duration(lookback or "P30D")
    if grain in _MAX_SPAN and finish - begin > _MAX_SPAN[grain]:
        raise ValidationError(
            f"granularity {grain} covers at most {_MAX_SPAN[grain].days} days; "
            "request a coarser granularity"
        )
    first = floor(begin, grain)
    last = floor(finish, grain)
    if last < finish:
        last = step(last, grain)
    buckets = []
    cursor = first
    while cursor < last:
        buckets.append(cursor)
        if len(buckets) > MAX_BUCKETS:
            raise ValidationError(f"the window holds more than {MAX_BUCKETS} buckets")
        cursor = step(cursor, grain)
    return first, last, grain, buckets


def tally(messages: Iterable[Message], grain: str) -> dict[datetime, list[dict[str, Any]]]:
    """Counters per bucket start, one entry per (provider, channel)."""
    counts: dict[datetime, dict[tuple[str, str], dict[str, int]]] = defaultdict(dict)
    for message in messages:
        entries = counts[floor(datetime.fromtimestamp(message.enqueued_at, UTC), grain)]
        failed = {
            (str(p.get("provider")), str(p.get("channel") or message.channel or ""))
            for p in message.providers
            if p.get("provider") and p.get("status") in ("FAILED", "RETRYABLE")
        }
        for key in failed:
            entries.setdefault(key, dict.fromkeys(_COUNTERS, 0))["errors"] += 1
        if not message.provider or not message.channel:
            continue
        key = (message.provider, message.channel)
        final = entries.setdefault(key, dict.fromkeys(_COUNTERS, 0))
        status = message.status
        final["sent"] += status in _SENT
        final["delivered"] += status in _DELIVERED
        final["opened"] += status in _OPENED
        final["clicked"] += status == "CLICKED"
        final["undeliverable"] += status == "UNDELIVERABLE"
    return {
        bucket: [
            {"provider": provider, "channel": channel, **numbers}
            for (provider, channel), numbers in sorted(entries.items())
        ]
        for bucket, entries in counts.items()
    }


async def template_messages(
    store: Store,
    workspace_id: str,
    names: Iterable[str],
    begin: datetime,
    finish: datetime,
) -> list[Message]:
    """Messages sent with the template (by id or alias) enqueued inside the window."""
    found: dict[str, Message] = {}
    for name in names:
        flt = MessageFilter(notification=name, enqueued_after=begin.timestamp())
        cursor = None
        while True:
            page = await store.list_messages(workspace_id, flt, cursor=cursor, limit=500)
            for message in page.messages:
                if begin.timestamp() <= message.enqueued_at < finish.timestamp():
                    found[message.id] = message
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return list(found.values())


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def present(
    template_id: str,
    begin: datetime,
    finish: datetime,
    grain: str,
    buckets: list[datetime],
    tallied: dict[datetime, list[dict[str, Any]]],
) -> dict[str, Any]:
    return {
        "notificationId": template_id,
        "granularity": grain,
        "start": _iso(begin),
        "end": _iso(finish),
        "series": [{"period": _iso(b), "data": tallied.get(b, [])} for b in buckets],
    }
