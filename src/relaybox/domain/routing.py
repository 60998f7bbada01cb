"""Routing decisions for a send, as pure functions over plain data.

A send's route is a list of *groups*; each group is an ordered list of candidate providers.
``routing.method: "single"`` makes one group (channels in order, each channel's providers in
order), so the first candidate that delivers ends the send; ``"all"`` makes one group per
channel and every group must be tried. Which candidate to try next is derived from the
message's recorded attempts alone, so a send resumed by another worker after a crash or a
backoff picks up exactly where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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

#: Tries per provider (the first included) for retryable failures before moving on.
TRIES_PER_PROVIDER = 3

SENT = "SENT"
RETRYABLE = "RETRYABLE"
FAILED = "FAILED"


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
    #: SENT, RETRYABLE or FAILED.
    outcome: str


def reachable(channel: str, profile: Mapping[str, object]) -> bool:
    """True when the profile has the address ``channel`` needs."""
    if channel not in ADDRESS_FIELDS:
        return False
    field = ADDRESS_FIELDS[channel]
    return field is None or bool(profile.get(field))


def _addressed(candidate: Candidate, profile: Mapping[str, object]) -> bool:
    if candidate.addressed is not None:
        return candidate.addressed
    return reachable(candidate.channel, profile)


def build_groups(
    *,
    method: str,
    entries: Sequence[str],
    configured: Sequence[Candidate],
    profile: Mapping[str, object],
    channel_providers: Mapping[str, Sequence[str]],
) -> list[list[Candidate]]:
    """The candidate groups for a send; empty when nothing can carry it (UNROUTABLE).

    ``entries`` are channel names or provider kinds, in routing order; ``configured`` is the
    workspace's providers in configured order; ``channel_providers`` is
    ``message.channels.<channel>.providers`` (kinds or configuration ids), which restricts and
    orders a channel's providers.
    """
    groups: list[list[Candidate]] = []
    seen: set[str] = set()
    for entry in entries:
        if entry in CHANNELS:
            members = _channel_candidates(entry, configured, channel_providers.get(entry))
        else:
            members = [c for c in configured if c.provider == entry]
        members = [c for c in members if _addressed(c, profile)]
        members = [c for c in members if c.integration not in seen]
        seen.update(c.integration for c in members)
        if members:
            groups.append(members)
    if method == "single":
        flat = [c for group in groups for c in group]
        return [flat] if flat else []
    return groups


def _channel_candidates(
    channel: str, configured: Sequence[Candidate], order: Sequence[str] | None
) -> list[Candidate]:
    members = [c for c in configured if c.channel == channel]
    if not order:
        return members
    ordered: list[Candidate] = []
    for name in order:
        ordered.extend(
            c for c in members if name in (c.provider, c.integration) and c not in ordered
        )
    return ordered


def next_candidate(
    groups: Sequence[Sequence[Candidate]],
    attempts: Sequence[Attempt],
    tries: int = TRIES_PER_PROVIDER,
) -> Candidate | None:
    """The provider to try next, or None when every group is settled.

    A group is settled once one of its candidates delivered or all of them are used up: a
    permanent failure uses a candidate up at once, retryable failures after ``tries``.
    """
    for group in groups:
        if any(_sent(c, attempts) for c in group):
            continue
        for candidate in group:
            mine = [a for a in attempts if a.integration == candidate.integration]
            if any(a.outcome == FAILED for a in mine):
                continue
            if sum(a.outcome == RETRYABLE for a in mine) >= tries:
                continue
            return candidate
    return None


def delivered(attempts: Sequence[Attempt]) -> bool:
    return any(a.outcome == SENT for a in attempts)


def _sent(candidate: Candidate, attempts: Sequence[Attempt]) -> bool:
    return any(a.integration == candidate.integration and a.outcome == SENT for a in attempts)
