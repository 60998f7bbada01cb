"""Routing decisions for sends: candidate groups and which provider to try next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relaybox.domain.routing import (
    ALL,
    FAILED,
    RETRYABLE,
    SENT,
    SINGLE,
    TRIES_PER_PROVIDER,
    Attempt,
    Candidate,
    Group,
    Leg,
    Limits,
    build_route,
    candidates,
    delivered,
    next_step,
)

SMTP_A = Candidate("email", "prv_a", "smtp")
SMTP_B = Candidate("email", "prv_b", "smtp")
HOOK = Candidate("webhook", "prv_h", "webhook")
CONFIGURED = [SMTP_A, SMTP_B, HOOK]
PROFILE = {"email": "a@b.c"}


def build_groups(
    *,
    method: str,
    entries: Sequence[str],
    configured: Sequence[Candidate],
    profile: Mapping[str, object],
    channel_providers: Mapping[str, Sequence[str]],
) -> list[list[Candidate]]:
    """The route of a flat routing as candidate groups: ``single`` is one group of every
    candidate in order, ``all`` one group per entry; empty when nothing can carry it."""
    route = build_route(
        {"method": method, "channels": list(entries)},
        configured=configured,
        profile=profile,
        channels={k: {"providers": v} for k, v in channel_providers.items()},
    )
    if route is None:
        return []
    if method == SINGLE:
        return [candidates(route)]
    return [candidates(child) for child in route.children]


def next_candidate(
    groups: Sequence[Sequence[Candidate]],
    attempts: Sequence[Attempt],
    tries: int = TRIES_PER_PROVIDER,
) -> Candidate | None:
    """The provider to try next in candidate groups, or None when every group is settled."""
    route = Group(ALL, tuple(Leg(str(i), SINGLE, tuple(g)) for i, g in enumerate(groups) if g))
    return next_step(route, attempts, now=0.0, limits=Limits(tries=tries)).candidate


def groups(method: str, entries: list[str], **kw: object) -> list[list[Candidate]]:
    """build_groups with the standard configured providers and profile."""
    return build_groups(
        method=method,
        entries=entries,
        configured=CONFIGURED,
        profile=kw.get("profile", PROFILE),  # type: ignore[arg-type]
        channel_providers=kw.get("order", {}),  # type: ignore[arg-type]
    )


def test_single_flattens_channels_in_order() -> None:
    """single: one group, channels in routing order, providers in configured order."""
    assert groups("single", ["webhook", "email"]) == [[HOOK, SMTP_A, SMTP_B]]


def test_all_makes_one_group_per_channel() -> None:
    """all: each listed channel is its own group."""
    assert groups("all", ["email", "webhook"]) == [[SMTP_A, SMTP_B], [HOOK]]


def test_channel_without_address_is_skipped() -> None:
    """A channel whose address the profile lacks is not a candidate."""
    assert groups("single", ["email", "webhook"], profile={}) == [[HOOK]]


def test_channel_without_provider_is_skipped_and_nothing_left_is_unroutable() -> None:
    """sms has no provider and push no address: no groups at all (UNROUTABLE)."""
    assert groups("single", ["sms", "push"], profile={"phone_number": "+1"}) == []


def test_channel_providers_restrict_and_order() -> None:
    """channels.email.providers (ids or kinds) picks and orders the channel's providers."""
    assert groups("single", ["email"], order={"email": ["prv_b", "prv_a"]}) == [[SMTP_B, SMTP_A]]
    assert groups("single", ["email"], order={"email": ["prv_b"]}) == [[SMTP_B]]
    assert groups("single", ["email"], order={"email": ["smtp"]}) == [[SMTP_A, SMTP_B]]


def test_provider_kind_as_routing_entry() -> None:
    """A provider kind in routing.channels stands for that kind's providers."""
    assert groups("single", ["webhook", "smtp"]) == [[HOOK, SMTP_A, SMTP_B]]


def test_next_is_first_untried() -> None:
    """With no attempts the first candidate goes first."""
    assert next_candidate([[SMTP_A, SMTP_B]], []) == SMTP_A


def test_retryable_failure_retries_same_provider_until_tries_run_out() -> None:
    """Retryable failures keep the provider until ``tries`` are used, then fail over."""
    attempts = [Attempt("prv_a", RETRYABLE)] * 2
    assert next_candidate([[SMTP_A, SMTP_B]], attempts, tries=3) == SMTP_A
    attempts.append(Attempt("prv_a", RETRYABLE))
    assert next_candidate([[SMTP_A, SMTP_B]], attempts, tries=3) == SMTP_B


def test_permanent_failure_fails_over_at_once() -> None:
    """A permanent failure uses the provider up immediately."""
    assert next_candidate([[SMTP_A, SMTP_B]], [Attempt("prv_a", FAILED)]) == SMTP_B


def test_success_settles_the_group() -> None:
    """Once a group delivered nothing more is tried in it; all moves to the next group."""
    attempts = [Attempt("prv_a", SENT)]
    assert next_candidate([[SMTP_A, SMTP_B]], attempts) is None
    assert next_candidate([[SMTP_A, SMTP_B], [HOOK]], attempts) == HOOK
    assert delivered(attempts)


def test_everything_used_up_is_settled_undelivered() -> None:
    """When every candidate failed for good there is nothing left and nothing delivered."""
    attempts = [Attempt("prv_a", FAILED), Attempt("prv_b", FAILED)]
    assert next_candidate([[SMTP_A, SMTP_B]], attempts) is None
    assert not delivered(attempts)


def test_a_providers_own_verdict_on_the_address_wins() -> None:
    """addressed=True routes without the channel's profile field; False excludes despite it."""
    slack_hook = Candidate("chat", "prv_s", "slack", addressed=True)
    fcm = Candidate("push", "prv_f", "fcm", addressed=False)
    bot = Candidate("chat", "prv_bot", "slack")
    found = build_groups(
        method="single",
        entries=["push", "chat"],
        configured=[slack_hook, fcm, bot],
        profile={"push_token": "t"},
        channel_providers={},
    )
    assert found == [[slack_hook]]
    with_slack = build_groups(
        method="single",
        entries=["chat"],
        configured=[bot],
        profile={"slack": {"channel": "C1"}},
        channel_providers={},
    )
    assert with_slack == [[bot]]


def test_courier_provider_keys_route_to_ours() -> None:
    """Courier's "firebase-fcm" names our fcm provider in routing entries and channel orders."""
    fcm = Candidate("push", "prv_f", "fcm", addressed=True)
    push = {"firebaseToken": "t"}
    found = build_groups(
        method="single",
        entries=["firebase-fcm"],
        configured=[fcm],
        profile=push,
        channel_providers={},
    )
    assert found == [[fcm]]
    ordered = build_groups(
        method="single",
        entries=["push"],
        configured=[fcm],
        profile=push,
        channel_providers={"push": ["firebase-fcm"]},
    )
    assert ordered == [[fcm]]
