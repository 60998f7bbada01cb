"""How a message is delivered: Courier's ``routing``, ``channels``, ``providers``, ``timeout``
and ``expiry`` fields — validation, and the limits and deadline they imply.

Courier's documented defaults (courier-api.md §5): message timeout 72 h, channel timeout
30 min, provider timeout 5 min. All wire values are milliseconds; everything returned here is
in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relaybox.domain import delays, merge, routing
from relaybox.domain.retry import RetryPolicy
from relaybox.domain.transitions import StepFailed
from relaybox.errors import ValidationError

DEFAULT_MESSAGE_MS = 259_200_000
DEFAULT_CHANNEL_MS = 1_800_000
DEFAULT_PROVIDER_MS = 300_000
CRITERIA = ("no-escalation", "delivered", "viewed", "engaged")
#: Nested routings deeper than this are refused (a bound on work, not a Courier rule).
MAX_ROUTING_DEPTH = 8

#: Why a message ran out of time (``Message.reason``).
EXPIRED = "EXPIRED"
TIMED_OUT = "TIMEOUT"


def parse_routing(raw: Any, where: str = "message.routing", depth: int = 0) -> dict[str, Any]:
    """``{method, channels}`` whose entries are names or nested routings."""
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: Expected object")
    if depth >= MAX_ROUTING_DEPTH:
        raise ValidationError(f"{where}: routing nested deeper than {MAX_ROUTING_DEPTH} levels")
    method = raw.get("method")
    if method not in (routing.SINGLE, routing.ALL):
        raise ValidationError(f'{where}.method: Expected "single" or "all"')
    channels = raw.get("channels")
    if not isinstance(channels, list):
        raise ValidationError(f"{where}.channels: Expected array")
    entries: list[Any] = []
    for i, entry in enumerate(channels):
        if isinstance(entry, dict):
            entries.append(parse_routing(entry, f"{where}.channels[{i}]", depth + 1))
        elif isinstance(entry, str) and entry:
            entries.append(entry)
        else:
            raise ValidationError(f"{where}.channels[{i}]: Expected string or routing object")
    return {"method": method, "channels": entries}


def parse_channels(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("message.channels: Expected object")
    found: dict[str, Any] = {}
    for name, spec in raw.items():
        where = f"message.channels.{name}"
        if name not in routing.CHANNELS:
            raise ValidationError(
                f"{where}: unknown channel; use one of {sorted(routing.CHANNELS)}"
            )
        if not isinstance(spec, dict):
            raise ValidationError(f"{where}: Expected object")
        providers = spec.get("providers")
        if providers is not None and (
            not isinstance(providers, list) or not all(isinstance(p, str) for p in providers)
        ):
            raise ValidationError(f"{where}.providers: Expected array of strings")
        method = spec.get("routing_method")
        if method is not None and method not in (routing.SINGLE, routing.ALL):
            raise ValidationError(f'{where}.routing_method: Expected "single" or "all"')
        timeouts = spec.get("timeouts")
        if timeouts is not None:
            if not isinstance(timeouts, dict):
                raise ValidationError(f"{where}.timeouts: Expected object")
            for key in ("provider", "channel"):
                _ms(timeouts.get(key), f"{where}.timeouts.{key}")
        found[name] = {
            **{k: v for k, v in spec.items() if v is not None},
            **_condition_and_override(spec, where),
            "providers": list(providers or []),
            "routing_method": method or routing.SINGLE,
        }
    return found


def parse_providers(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("message.providers: Expected object")
    found: dict[str, Any] = {}
    for name, spec in raw.items():
        where = f"message.providers.{name}"
        if not isinstance(spec, dict):
            raise ValidationError(f"{where}: Expected object")
        _ms(spec.get("timeouts"), f"{where}.timeouts")
        found[name] = {
            **{k: v for k, v in spec.items() if v is not None},
            **_condition_and_override(spec, where),
        }
    return found


def _condition_and_override(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    condition = spec.get("if")
    if condition is not None:
        if not isinstance(condition, str) or not condition.strip():
            raise ValidationError(f"{where}.if: Expected a JavaScript expression string")
        found["if"] = condition
    override = spec.get("override")
    if override is not None:
        if not isinstance(override, dict):
            raise ValidationError(f"{where}.override: Expected object")
        found["override"] = override
    return found


def parse_timeout(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError("message.timeout: Expected object")
    for key in ("provider", "channel"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValidationError(f"message.timeout.{key}: Expected object of milliseconds")
        for name, ms in value.items():
            _ms(ms, f"message.timeout.{key}.{name}")
    for key in ("message", "escalation"):
        _ms(raw.get(key), f"message.timeout.{key}")
    criteria = raw.get("criteria")
    if criteria is not None and criteria not in CRITERIA:
        raise ValidationError(f"message.timeout.criteria: Expected one of {', '.join(CRITERIA)}")
    return {k: v for k, v in raw.items() if v is not None}


def parse_expiry(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError("message.expiry: Expected object")
    if raw.get("expires_in") is None and raw.get("expires_at") is None:
        raise ValidationError("message.expiry: Provide expires_in (or expires_at)")
    if raw.get("expires_in") is not None:
        expires_in_seconds(raw["expires_in"])
    if raw.get("expires_at") is not None:
        expires_at(raw["expires_at"])
    return {k: v for k, v in raw.items() if v is not None}


def check(message: Mapping[str, Any]) -> None:
    """Validate a message's delivery fields (a send step's ``message`` is not checked by
    POST /send's parser); raises ValidationError naming the field."""
    if message.get("routing") is not None:
        parse_routing(message["routing"])
    parse_channels(message.get("channels"))
    parse_providers(message.get("providers"))
    parse_timeout(message.get("timeout"))
    parse_expiry(message.get("expiry"))


def _ms(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"{where}: Expected a positive number of milliseconds")
    return float(value) / 1000.0


def expires_in_seconds(value: Any) -> float:
    """``expires_in``: milliseconds, or an ISO 8601 duration such as ``P1DT4H``."""
    where = "message.expiry.expires_in"
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValidationError(f"{where}: Expected a positive duration")
        return float(value) / 1000.0
    if not isinstance(value, str):
        raise ValidationError(f"{where}: Expected milliseconds or an ISO 8601 duration")
    try:
        # The delay grammar: ISO 8601 durations, and also "2 hours" style ones.
        seconds = delays.parse_duration(value)
    except ValidationError:
        raise ValidationError(f"{where}: Expected milliseconds or an ISO 8601 duration") from None
    if seconds <= 0:
        raise ValidationError(f"{where}: Expected a positive duration")
    return seconds


def expires_at(value: Any) -> float:
    """``expires_at``: epoch milliseconds, or an ISO 8601 timestamp with a time zone."""
    where = "message.expiry.expires_at"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Courier says "epoch"; milliseconds, as every other time field of the message.
        return float(value) / 1000.0
    if not isinstance(value, str):
        raise ValidationError(f"{where}: Expected an epoch or an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{where}: Expected an ISO 8601 timestamp with a time zone") from None
    if parsed.tzinfo is None:
        raise ValidationError(f"{where}: Expected an ISO 8601 timestamp with a time zone")
    return parsed.timestamp()


@dataclass(frozen=True)
class Deadline:
    at: float
    #: EXPIRED (the message's expiry) or TIMEOUT (its message timeout).
    reason: str


def deadline(
    message: Mapping[str, Any], enqueued_at: float, started_at: float | None = None
) -> Deadline:
    """When an undelivered message is given up: the earlier of its expiry and its timeout.

    The expiry counts from the request (``enqueued_at``): a message that waited out a delay
    past it is stale. The message timeout bounds the sending itself, so it counts from the
    first attempt (``started_at``, default ``enqueued_at``) — a send delayed for a week is not
    timed out by the 72 h default before it starts (the reference is silent; inferred).
    """
    timeout = message.get("timeout") or {}
    seconds = _ms(timeout.get("message"), "message.timeout.message")
    start = enqueued_at if started_at is None else started_at
    found = Deadline(start + (seconds or DEFAULT_MESSAGE_MS / 1000.0), TIMED_OUT)
    expiry = message.get("expiry") or {}
    ends: list[float] = []
    if expiry.get("expires_in") is not None:
        ends.append(enqueued_at + expires_in_seconds(expiry["expires_in"]))
    if expiry.get("expires_at") is not None:
        ends.append(expires_at(expiry["expires_at"]))
    if ends and min(ends) <= found.at:
        return Deadline(min(ends), EXPIRED)
    return found


def limits(message: Mapping[str, Any], route: routing.Group) -> routing.Limits:
    """Each provider's and each leg's timeout, most specific setting first.

    Provider: ``providers.<kind or id>.timeouts``, ``timeout.provider.<kind or id>``,
    ``channels.<channel>.timeouts.provider``, then the default. Channel (per routing entry):
    ``timeout.channel.<name>``, ``channels.<name>.timeouts.channel``, then the default.
    """
    timeout = message.get("timeout") or {}
    per_provider = routing.by_provider_key(timeout.get("provider") or {})
    per_channel = timeout.get("channel") or {}
    providers = routing.by_provider_key(message.get("providers") or {})
    channels = message.get("channels") or {}
    provider_seconds: dict[str, float] = {}
    for c in routing.candidates(route):
        ms = _first(
            *(providers.get(k, {}).get("timeouts") for k in (c.integration, c.provider)),
            *(per_provider.get(k) for k in (c.integration, c.provider)),
            (channels.get(c.channel, {}).get("timeouts") or {}).get("provider"),
            DEFAULT_PROVIDER_MS,
        )
        provider_seconds[c.integration] = ms / 1000.0
    channel_seconds: dict[str, float] = {}
    for leg in _legs(route):
        ms = _first(
            per_channel.get(leg.name),
            (channels.get(leg.name, {}).get("timeouts") or {}).get("channel"),
            DEFAULT_CHANNEL_MS,
        )
        channel_seconds[leg.name] = ms / 1000.0
    return routing.Limits(provider_seconds=provider_seconds, channel_seconds=channel_seconds)


@dataclass
class Execution:
    """One execution of a send step over its route: which provider to call next, when one
    that failed retryably may be called again, and the step's result when everything left
    is waiting out a backoff.

    The send step and its budget tests both drive this, so what they check is what runs.
    """

    route: routing.Group
    limits: routing.Limits
    #: Every attempt on the message, earlier executions' included; ``record`` appends.
    attempts: list[routing.Attempt]
    policy: RetryPolicy
    #: No retry is scheduled past this (the message's deadline).
    deadline: float
    #: Providers waiting out a backoff in this execution, and when their next try is due.
    waiting: dict[str, float] = field(default_factory=dict)

    def next(self, now: float) -> routing.Next:
        return routing.next_step(
            self.route, self.attempts, now=now, limits=self.limits, waiting=self.waiting
        )

    def record(
        self,
        pick: routing.Candidate,
        outcome: str,
        now: float,
        *,
        ended: float,
        retry_after: float | None = None,
    ) -> float | None:
        """Record a call on ``pick`` started at ``now`` and ended at ``ended``: when it may be
        tried again, or None when it is not to wait for another try."""
        self.attempts.append(routing.Attempt(pick.integration, outcome, now))
        if outcome != routing.RETRYABLE or routing.exhausted(
            pick, self.attempts, now=now, limits=self.limits
        ):
            return None
        tries = sum(
            a.integration == pick.integration and a.outcome == routing.RETRYABLE
            for a in self.attempts
        )
        # From the end of the call: the backoff is the quiet time the provider gets.
        at = min(ended + self.policy.backoff(tries, retry_after), self.deadline)
        self.waiting[pick.integration] = at
        return at

    def release(self, index: int, error: str, message_id: str | None = None) -> StepFailed:
        """Everything left is waiting out a backoff: come back at the earliest retry, within
        the route's own execution budget rather than the engine's generic cap."""
        return StepFailed(
            index,
            error,
            retryable=True,
            message_id=message_id,
            retry_at=min(self.waiting.values()),
            max_attempts=routing.execution_budget(self.route, self.limits),
        )


def _legs(route: routing.Group | routing.Leg) -> list[routing.Leg]:
    if isinstance(route, routing.Leg):
        return [route]
    return [leg for child in route.children for leg in _legs(child)]


def _first(*values: Any) -> float:
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    raise AssertionError("a default is always given")


def overrides(message: Mapping[str, Any], candidate: routing.Candidate) -> dict[str, Any]:
    """What ``candidate`` is sent with on top of the rendered content: the channel's
    ``override``, then the provider's (by kind, then by configuration id), merged deeply."""
    merged: dict[str, Any] = {}
    channels = message.get("channels") or {}
    providers = routing.by_provider_key(message.get("providers") or {})
    layers: Sequence[Any] = (
        (channels.get(candidate.channel) or {}).get("override"),
        (providers.get(candidate.provider) or {}).get("override"),
        (providers.get(candidate.integration) or {}).get("override"),
    )
    for layer in layers:
        if isinstance(layer, Mapping):
            merged = merge.deep_merge(merged, layer)
    return merged
