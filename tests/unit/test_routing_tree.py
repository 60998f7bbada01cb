"""The routing tree: nested groups, per-channel methods, conditions, timeouts (pure domain)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relaybox.domain.routing import (
    ALL,
    FAILED,
    PENDING,
    RETRYABLE,
    SENT,
    SINGLE,
    TIMEOUT,
    Attempt,
    Candidate,
    Group,
    Leg,
    Limits,
    build_route,
    candidates,
    exhausted,
    next_step,
)

SMTP_A = Candidate("email", "prv_a", "smtp")
SMTP_B = Candidate("email", "prv_b", "smtp")
HOOK = Candidate("webhook", "prv_h", "webhook")
SMS = Candidate("sms", "prv_s", "twilio")
CONFIGURED = [SMTP_A, SMTP_B, HOOK, SMS]
PROFILE = {"email": "a@b.c", "phone_number": "+15550100"}
NOW = 1_000.0


def route(routing: dict[str, object], **kw: object) -> Group:
    built = build_route(
        routing,
        configured=CONFIGURED,
        profile=kw.pop("profile", PROFILE),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    assert built is not None
    return built


def drive(tree: Group, outcomes: dict[str, str]) -> list[str]:
    """Call providers until the route settles; each answers ``outcomes`` (default SENT)."""
    attempts: list[Attempt] = []
    while (pick := next_step(tree, attempts, now=NOW).candidate) is not None:
        attempts.append(Attempt(pick.integration, outcomes.get(pick.integration, SENT), NOW))
    return [a.integration for a in attempts]


def test_nested_group_is_one_child_of_its_parent() -> None:
    """single [sms, all [email, webhook]]: sms down → both email and webhook get it."""
    tree = route(
        {
            "method": SINGLE,
            "channels": ["sms", {"method": ALL, "channels": ["email", "webhook"]}],
        }
    )
    assert drive(tree, {"prv_s": FAILED}) == ["prv_s", "prv_a", "prv_h"]
    assert drive(tree, {}) == ["prv_s"]


def test_all_of_single_groups_fails_over_inside_each() -> None:
    """all [single [email], single [sms, webhook]]: each part fails over on its own."""
    tree = route(
        {
            "method": ALL,
            "channels": [
                {"method": SINGLE, "channels": ["email"]},
                {"method": SINGLE, "channels": ["sms", "webhook"]},
            ],
        }
    )
    assert drive(tree, {"prv_a": FAILED, "prv_s": FAILED}) == ["prv_a", "prv_b", "prv_s", "prv_h"]


def test_channel_routing_method_all_calls_every_provider_of_the_channel() -> None:
    """channels.email.routing_method all: both SMTP servers, even when the first delivers."""
    tree = route(
        {"method": SINGLE, "channels": ["email", "webhook"]},
        channels={"email": {"routing_method": ALL}},
    )
    assert drive(tree, {}) == ["prv_a", "prv_b"]
    # Both email providers failing fails the channel over to the webhook.
    assert drive(tree, {"prv_a": FAILED, "prv_b": FAILED}) == ["prv_a", "prv_b", "prv_h"]


def test_excluded_channels_and_providers_are_left_out() -> None:
    """A false channel ``if`` drops the channel, a false provider ``if`` the provider."""
    plain = {"method": SINGLE, "channels": ["email", "webhook"]}
    assert candidates(route(plain, excluded_channels={"email"})) == [HOOK]
    assert candidates(route(plain, excluded_providers={"prv_a"})) == [SMTP_B, HOOK]
    assert candidates(route(plain, excluded_providers={"smtp"})) == [HOOK]
    only = {"method": SINGLE, "channels": ["email"]}
    assert build_route(only, configured=CONFIGURED, profile={}, excluded_channels=()) is None


def test_provider_kind_entry_and_duplicates() -> None:
    """A provider kind names its configurations; a provider named twice is used once."""
    tree = route({"method": ALL, "channels": ["smtp", "email", "webhook"]})
    assert [type(c) for c in tree.children] == [Leg, Leg]
    assert candidates(tree) == [SMTP_A, SMTP_B, HOOK]


def test_retryable_failure_waits_in_single_but_not_across_all() -> None:
    """A provider waiting out a backoff blocks failover after it, not the other parts of all."""
    single = route({"method": SINGLE, "channels": ["email"]})
    tried = [Attempt("prv_a", RETRYABLE, NOW)]
    assert next_step(single, tried, now=NOW, waiting={"prv_a"}) == next_step(
        single, [], now=NOW, waiting={"prv_a"}
    )
    assert next_step(single, tried, now=NOW, waiting={"prv_a"}).candidate is None
    assert next_step(single, tried, now=NOW, waiting={"prv_a"}).state == PENDING
    # After the backoff (no longer waiting) the same provider is tried again.
    assert next_step(single, tried, now=NOW).candidate == SMTP_A
    both = route({"method": ALL, "channels": ["email", "webhook"]})
    assert next_step(both, tried, now=NOW, waiting={"prv_a"}).candidate == HOOK


def test_provider_timeout_fails_over_at_once() -> None:
    """A TIMEOUT uses the provider up although it is retryable in kind."""
    tree = route({"method": SINGLE, "channels": ["email"]})
    assert next_step(tree, [Attempt("prv_a", TIMEOUT, NOW)], now=NOW).candidate == SMTP_B


def test_provider_window_and_channel_window() -> None:
    """Retries on a provider stop at its timeout; a channel is given up at its timeout."""
    tree = route({"method": SINGLE, "channels": ["email", "webhook"]})
    tried = [Attempt("prv_a", RETRYABLE, NOW)]
    limits = Limits(provider_seconds={"prv_a": 60})
    assert next_step(tree, tried, now=NOW + 59, limits=limits).candidate == SMTP_A
    assert next_step(tree, tried, now=NOW + 60, limits=limits).candidate == SMTP_B
    assert exhausted(SMTP_A, tried, now=NOW + 60, limits=limits)
    channel = Limits(channel_seconds={"email": 120})
    assert next_step(tree, tried, now=NOW + 120, limits=channel).candidate == HOOK


def test_settled_states() -> None:
    """SENT when a part delivered, FAILED when nothing did."""
    tree = route({"method": ALL, "channels": ["email", "webhook"]})
    mixed = [Attempt("prv_a", SENT), Attempt("prv_h", FAILED)]
    assert next_step(tree, mixed, now=NOW).state == SENT
    dead = [Attempt(i, FAILED) for i in ("prv_a", "prv_b", "prv_h")]
    assert next_step(tree, dead, now=NOW).state == FAILED


# --- properties --------------------------------------------------------------------------

CHANNEL_NAMES = ["email", "webhook", "sms"]


@st.composite
def routings(draw: st.DrawFn, depth: int = 0) -> dict[str, object]:
    entries = draw(
        st.lists(
            st.sampled_from(CHANNEL_NAMES)
            if depth >= 2
            else st.one_of(st.sampled_from(CHANNEL_NAMES), routings(depth=depth + 1)),
            min_size=1,
            max_size=4,
        )
    )
    return {"method": draw(st.sampled_from([SINGLE, ALL])), "channels": entries}


channel_methods = st.fixed_dictionaries(
    {}, optional={c: st.sampled_from([SINGLE, ALL]) for c in CHANNEL_NAMES}
)


def _built(raw: dict[str, object], methods: dict[str, str]) -> Group | None:
    return build_route(
        raw,
        configured=CONFIGURED,
        profile=PROFILE,
        channels={c: {"routing_method": m} for c, m in methods.items()},
    )


@given(routings(), channel_methods, st.sets(st.sampled_from([c.integration for c in CONFIGURED])))
def test_no_provider_is_picked_twice_when_failures_are_permanent(
    raw: dict[str, object], methods: dict[str, str], failing: set[str]
) -> None:
    """Failover never calls a provider again after it failed (or delivered)."""
    tree = _built(raw, methods)
    if tree is None:
        return
    called = drive(tree, dict.fromkeys(failing, FAILED))
    assert len(called) == len(set(called))
    assert set(called) <= {c.integration for c in candidates(tree)}


@given(st.lists(st.sampled_from(CHANNEL_NAMES), min_size=1, max_size=5), channel_methods)
def test_method_all_reaches_every_reachable_channel_exactly_once(
    flat: list[str], methods: dict[str, str]
) -> None:
    """With every provider working, a top-level ``all`` of plain channels delivers on each
    listed channel exactly once (one provider each unless the channel's method is all)."""
    tree = _built({"method": ALL, "channels": flat}, methods)
    assert tree is not None
    called = drive(tree, {})
    by_channel = {c.integration: c.channel for c in CONFIGURED}
    reached = [by_channel[i] for i in called]
    assert set(reached) == set(flat)
    for channel in set(flat):
        expected = 2 if channel == "email" and methods.get("email") == ALL else 1
        assert reached.count(channel) == expected


@given(routings(), channel_methods, st.sets(st.sampled_from([c.integration for c in CONFIGURED])))
def test_retryable_failures_are_bounded_by_tries(
    raw: dict[str, object], methods: dict[str, str], flaky: set[str]
) -> None:
    """Retryable failures retry a provider at most ``tries`` times, and the route settles."""
    tree = _built(raw, methods)
    if tree is None:
        return
    called = drive(tree, dict.fromkeys(flaky, RETRYABLE))
    for integration in set(called):
        assert called.count(integration) <= (Limits().tries if integration in flaky else 1)
