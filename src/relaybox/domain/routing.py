"""Routing decisions for a send, as pure functions over plain data.

A send's route is a tree. A ``Group`` has a method — ``single``: its children in order, the
first that delivers ends it (failover); ``all``: every child — and children that are groups
(Courier's nested ``{method, channels}`` routing entries) or ``Leg``s. A leg is one routing
entry (a channel, or a provider kind) with its candidate providers and its own method across
them (``channels.<channel>.routing_method``).

Which provider to try next is derived from the message's recorded attempts (and the time,
for timeouts) alone, so a send resumed by another worker after a crash or a backoff picks up
exactly where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Courier's channel names (``message.channels`` keys, ``routing.channels`` entries).
CHANNELS = frozenset(
    {"email", "sms", "push", "inbox", "direct_message", "chat", "banner", "webhook"}
)

#: The profile field a channel needs before it can be used (None: no address needed).
ADDRESS_FIELDS: Mapping[str, str | None] = {
    "email": "email",
    "sms": "phone_number",
    "push": "push_token",
    "chat": "slack",
    "webhook": None,
    # In-app messages go to the recipient's user id, which every routed message has.
    "inbox": None,
}

#: Courier's provider keys for providers Relaybox implements under another key (Courier's
#: device tokens name FCM "firebase-fcm", courier-api.md §Users); Courier's other keys for
#: what Relaybox implements ("apn", "twilio", "slack", "smtp", "webhook") are the same.
COURIER_PROVIDER_KEYS: Mapping[str, str] = {"firebase-fcm": "fcm"}


def provider_key(name: str) -> str:
    """Relaybox's key for a provider named by Relaybox's or Courier's key."""
    return COURIER_PROVIDER_KEYS.get(name, name)


def by_provider_key(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``message.providers``-style settings keyed by Relaybox's provider keys (configuration
    ids pass through); Relaybox's own key wins over Courier's alias when both are given."""
    found: dict[str, Any] = {}
    for name, value in settings.items():
        if name in COURIER_PROVIDER_KEYS and provider_key(name) in settings:
            continue
        found[provider_key(name)] = value
    return found


#: Tries per provider (the first included) for retryable failures before moving on.
TRIES_PER_PROVIDER = 3

SENT = "SENT"
RETRYABLE = "RETRYABLE"
FAILED = "FAILED"
#: The call outlived the provider timeout: retryable in kind, but the provider is not
#: waited for again (the send fails over at once).
TIMEOUT = "TIMEOUT"

SINGLE = "single"
ALL = "all"

#: The state of a route (or part of one) given the attempts so far.
PENDING = "PENDING"


@dataclass(frozen=True)
class Candidate:
    channel: str
    #: The provider configuration's id: two SMTP servers are two candidates.
    integration: str
    #: The provider kind ("smtp", "webhook").
    provider: str
    #: The provider's own verdict on whether the profile addresses it (a Slack webhook needs
    #: no address, FCM reads ``firebaseToken``); None: the channel's ADDRESS_FIELDS decide.
    addressed: bool | None = None


@dataclass(frozen=True)
class Attempt:
    integration: str
    #: SENT, RETRYABLE, FAILED or TIMEOUT.
    outcome: str
    #: When the call started (epoch seconds); None when unknown.
    at: float | None = None


@dataclass(frozen=True)
class Leg:
    #: The routing entry: a channel name or a provider kind.
    name: str
    method: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Group:
    method: str
    children: tuple[Leg | Group, ...]


@dataclass(frozen=True)
class Limits:
    """How long and how often a send may keep trying (seconds, not Courier's milliseconds)."""

    tries: int = TRIES_PER_PROVIDER
    #: Per provider configuration id: no retry on it starts later than this after its first
    #: try (Courier's provider timeout).
    provider_seconds: Mapping[str, float] = field(default_factory=dict)
    #: Per leg name: the leg is given up this long after its first try (channel timeout).
    channel_seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Next:
    """What to do next: ``state`` PENDING with a ``candidate`` to call, PENDING without one
    (everything left is waiting out a backoff), or SENT / FAILED when the route is settled."""

    state: str
    candidate: Candidate | None = None


def reachable(channel: str, profile: Mapping[str, object]) -> bool:
    """True when the profile has the address ``channel`` needs."""
    if channel not in ADDRESS_FIELDS:
        return False
    field_name = ADDRESS_FIELDS[channel]
    return field_name is None or bool(profile.get(field_name))


def _addressed(candidate: Candidate, profile: Mapping[str, object]) -> bool:
    if candidate.addressed is not None:
        return candidate.addressed
    return reachable(candidate.channel, profile)


def build_route(
    routing: Mapping[str, Any],
    *,
    configured: Sequence[Candidate],
    profile: Mapping[str, object],
    channels: Mapping[str, Mapping[str, Any]] | None = None,
    excluded_channels: Collection[str] = (),
    excluded_providers: Collection[str] = (),
) -> Group | None:
    """The route of a send; None when nothing can carry it (UNROUTABLE).

    ``routing`` is Courier's ``{method, channels}`` whose entries are channel names, provider
    kinds or nested routings; ``configured`` is the workspace's providers in configured order;
    ``channels`` is ``message.channels`` (``providers`` restricts and orders a channel's
    providers, ``routing_method`` is the method across them). Channels in
    ``excluded_channels`` and providers (kinds or configuration ids) in ``excluded_providers``
    (a false ``if``) are left out. A provider appears in the route once, where first named.
    """
    seen: set[str] = set()
    excluded_providers = {provider_key(p) for p in excluded_providers}

    def leg(entry: str) -> Leg | None:
        rule = (channels or {}).get(entry) or {}
        if entry in CHANNELS:
            if entry in excluded_channels:
                return None
            members = _channel_candidates(entry, configured, rule.get("providers"))
        else:
            members = [c for c in configured if c.provider == provider_key(entry)]
        members = [
            c
            for c in members
            if _addressed(c, profile)
            and c.integration not in seen
            and c.channel not in excluded_channels
            and c.provider not in excluded_providers
            and c.integration not in excluded_providers
        ]
        seen.update(c.integration for c in members)
        method = ALL if rule.get("routing_method") == ALL else SINGLE
        return Leg(entry, method, tuple(members)) if members else None

    def group(raw: Mapping[str, Any]) -> Group | None:
        children: list[Leg | Group] = []
        for entry in raw.get("channels") or []:
            child = group(entry) if isinstance(entry, Mapping) else leg(str(entry))
            if child is not None:
                children.append(child)
        method = ALL if raw.get("method") == ALL else SINGLE
        return Group(method, tuple(children)) if children else None

    return group(routing)


def _channel_candidates(
    channel: str, configured: Sequence[Candidate], order: Sequence[str] | None
) -> list[Candidate]:
    members = [c for c in configured if c.channel == channel]
    if not order:
        return members
    ordered: list[Candidate] = []
    for name in order:
        ordered.extend(
            c
            for c in members
            if provider_key(name) in (c.provider, c.integration) and c not in ordered
        )
    return ordered


def next_step(
    route: Group | Leg,
    attempts: Sequence[Attempt],
    *,
    now: float,
    limits: Limits | None = None,
    waiting: Collection[str] = (),
) -> Next:
    """The provider to call next, or the route's settled state.

    ``waiting`` holds providers that just failed retryably and must wait out a backoff before
    their next try: in a ``single`` part nothing after them is tried meanwhile (that would be
    failing over early), while the other parts of an ``all`` go ahead.
    """
    return _Walk(attempts, now, limits or Limits(), frozenset(waiting)).node(route)


def exhausted(
    candidate: Candidate,
    attempts: Sequence[Attempt],
    *,
    now: float,
    limits: Limits | None = None,
) -> bool:
    """True when ``candidate`` gets no further try (failed for good, out of tries or time)."""
    return _Walk(attempts, now, limits or Limits(), frozenset()).used_up(candidate)


def execution_budget(route: Group | Leg, limits: Limits | None = None) -> int:
    """How many executions a send step over ``route`` may take before it is given up.

    A send is released for a retry only after a retryable call in that execution, and each
    provider takes at most ``limits.tries`` of those, so ``tries * providers`` executions let
    every provider in a failover chain use all its tries; one spare per provider absorbs an
    execution lost to a crash mid-call. Finite, so the run always ends even if no deadline
    did (the message deadline usually ends it sooner).
    """
    return ((limits or Limits()).tries + 1) * max(1, len(candidates(route)))


def candidates(route: Group | Leg) -> list[Candidate]:
    """Every provider in the route, in routing order."""
    if isinstance(route, Leg):
        return list(route.candidates)
    return [c for child in route.children for c in candidates(child)]


def first_candidate(route: Group | Leg) -> Candidate:
    """``candidates(route)[0]`` without listing the rest (a built route has no empty part)."""
    while isinstance(route, Group):
        route = route.children[0]
    return route.candidates[0]


class _Walk:
    def __init__(
        self, attempts: Sequence[Attempt], now: float, limits: Limits, waiting: frozenset[str]
    ) -> None:
        self._attempts = attempts
        self._now = now
        self._limits = limits
        self._waiting = waiting

    def node(self, node: Group | Leg) -> Next:
        if isinstance(node, Leg):
            return self._leg(node)
        states = []
        for child in node.children:
            found = self.node(child)
            if node.method == SINGLE and found.state != FAILED:
                return found
            if found.state == PENDING and found.candidate is not None:
                return found
            states.append(found.state)
        return _combine(states)

    def _leg(self, leg: Leg) -> Next:
        sent = [c for c in leg.candidates if self._sent(c)]
        if sent and leg.method == SINGLE:
            return Next(SENT)
        if self._leg_expired(leg):
            return Next(SENT if sent else FAILED)
        blocked = False
        for candidate in leg.candidates:
            if self._sent(candidate) or self.used_up(candidate):
                continue
            if candidate.integration in self._waiting:
                if leg.method == SINGLE:
                    return Next(PENDING)
                blocked = True
                continue
            return Next(PENDING, candidate)
        if blocked:
            return Next(PENDING)
        return Next(SENT if sent else FAILED)

    def _mine(self, candidate: Candidate) -> list[Attempt]:
        return [a for a in self._attempts if a.integration == candidate.integration]

    def _sent(self, candidate: Candidate) -> bool:
        return any(a.outcome == SENT for a in self._mine(candidate))

    def used_up(self, candidate: Candidate) -> bool:
        mine = self._mine(candidate)
        # FAILED, TIMEOUT, or anything unknown: never called again.
        if any(a.outcome not in (SENT, RETRYABLE) for a in mine):
            return True
        if sum(a.outcome == RETRYABLE for a in mine) >= self._limits.tries:
            return True
        window = self._limits.provider_seconds.get(candidate.integration)
        return window is not None and _elapsed(mine, self._now, window)

    def _leg_expired(self, leg: Leg) -> bool:
        window = self._limits.channel_seconds.get(leg.name)
        if window is None:
            return False
        mine = [a for c in leg.candidates for a in self._mine(c)]
        return _elapsed(mine, self._now, window)


def _elapsed(attempts: Sequence[Attempt], now: float, window: float) -> bool:
    started = [a.at for a in attempts if a.at is not None]
    return bool(started) and now >= min(started) + window


def _combine(states: Sequence[str]) -> Next:
    """An ``all`` group with no candidate to call now (or a ``single`` one that failed)."""
    if PENDING in states:
        return Next(PENDING)
    return Next(SENT if SENT in states else FAILED)


def delivered(attempts: Sequence[Attempt]) -> bool:
    return any(a.outcome == SENT for a in attempts)
