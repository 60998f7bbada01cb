"""A send step's execution budget comes from its route, not the engine's generic retry cap.

Each execution is driven through ``delivery.Execution``, the same walk the send step makes
(which provider next, when a retry is due, the budget it is released with), with scripted
outcomes for the provider calls; ``decide`` applies the step's outcome under the engine's
default policy, so the property covers what the engine does with a failover chain's retries.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relaybox.domain import delivery, routing
from relaybox.domain.retry import RetryPolicy
from relaybox.domain.run import Run, RunContext, RunStatus, StepStatus, new_steps
from relaybox.domain.transitions import Advance, Event, StepFailed, StepSucceeded, decide

NOW = 1_700_000_000.0
SEND: dict[str, Any] = {"action": "send", "template": "welcome"}
POLICY = RetryPolicy()

_settings = settings(database=None, max_examples=200, deadline=None)


def make_run() -> Run:
    return Run(
        id="run_1",
        workspace_id="ws",
        steps_def=(SEND,),
        steps=new_steps((SEND,)),
        context=RunContext(recipient="user_1", template="welcome"),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW,
        lease_token=1,
    )


def chain(n: int) -> routing.Group:
    members = tuple(routing.Candidate("webhook", f"hook{i}", "webhook") for i in range(n))
    return routing.Group(routing.SINGLE, (routing.Leg("webhook", routing.SINGLE, members),))


def drive(
    route: routing.Group,
    limits: routing.Limits,
    outcomes: list[str],
    deadline: float | None = None,
    budget: bool = True,
) -> tuple[Run, list[routing.Attempt], float, int]:
    """Run one send step to its end: each execution calls providers until one must wait out
    a backoff (a retryable ``StepFailed`` with its due time) or the route is settled."""
    run = make_run()
    attempts: list[routing.Attempt] = []
    ends = float("inf") if deadline is None else deadline
    calls = iter(outcomes)
    now = NOW
    executions = 0
    while not run.finished:
        assert executions < 1_000, "the run never ended"
        decision = decide(run, Advance(), now, POLICY)
        if decision.execute is None:
            # Past the step: the run ends.
            run = decision.run
            continue
        executions += 1
        event: Event
        if deadline is not None and now >= deadline:
            event = StepFailed(0, "expired", retryable=False)
        else:
            execution = delivery.Execution(route, limits, attempts, POLICY, ends)
            while True:
                found = execution.next(now)
                pick = found.candidate
                if pick is None:
                    break
                execution.record(pick, next(calls, routing.RETRYABLE), now, ended=now)
            if found.state == routing.PENDING:
                event = execution.release(0, "retry")
                if not budget:
                    event = replace(event, max_attempts=None)
            elif found.state == routing.SENT:
                event = StepSucceeded(0, message_id="m1")
            else:
                event = StepFailed(0, "all providers failed", retryable=False)
        decision = decide(decision.run, event, now, POLICY)
        run = decision.run
        if decision.release_until is not None:
            assert decision.release_until >= now
            now = decision.release_until
    return run, attempts, now, executions


def test_three_failing_providers_each_get_every_try_past_the_generic_cap() -> None:
    route = chain(3)
    run, attempts, _, executions = drive(route, routing.Limits(), [])
    assert executions > POLICY.max_attempts
    assert [a.integration for a in attempts] == ["hook0"] * 3 + ["hook1"] * 3 + ["hook2"] * 3
    assert run.status is RunStatus.ERROR
    assert run.steps[0].error == "all providers failed"


def test_the_generic_cap_alone_would_cut_the_chain_short() -> None:
    """Why the budget exists: under the engine's 5 executions the third provider is starved."""
    _, attempts, _, _ = drive(chain(3), routing.Limits(), [], budget=False)
    assert sum(a.integration == "hook2" for a in attempts) < routing.TRIES_PER_PROVIDER


def test_the_last_provider_delivers_after_the_others_used_their_tries() -> None:
    outcomes = [routing.RETRYABLE] * 8 + [routing.SENT]
    run, attempts, _, _ = drive(chain(3), routing.Limits(), outcomes)
    assert run.status is RunStatus.PROCESSED
    assert attempts[-1] == routing.Attempt("hook2", routing.SENT, attempts[-1].at)
    assert sum(a.integration == "hook2" for a in attempts) == 3


def test_a_deadline_ends_the_send_before_the_budget() -> None:
    deadline = NOW + 5
    run, attempts, now, _ = drive(chain(3), routing.Limits(), [], deadline=deadline)
    assert run.status is RunStatus.ERROR
    assert now == deadline
    assert all(a.at is not None and a.at < deadline for a in attempts)
    assert len(attempts) < 9


def test_budget_grows_with_the_route_and_the_tries() -> None:
    assert routing.execution_budget(chain(1)) == routing.TRIES_PER_PROVIDER + 1
    assert routing.execution_budget(chain(4), routing.Limits(tries=5)) == 24


@_settings
@given(
    providers=st.integers(min_value=1, max_value=6),
    tries=st.integers(min_value=1, max_value=6),
    outcomes=st.lists(
        st.sampled_from([routing.RETRYABLE, routing.RETRYABLE, routing.FAILED, routing.SENT])
    ),
    window=st.one_of(st.none(), st.floats(min_value=0.5, max_value=30.0)),
    deadline=st.one_of(st.none(), st.floats(min_value=0.5, max_value=120.0)),
)
def test_every_provider_gets_its_tries_unless_a_deadline_passes_and_the_run_ends(
    providers: int,
    tries: int,
    outcomes: list[str],
    window: float | None,
    deadline: float | None,
) -> None:
    route = chain(providers)
    windows = {} if window is None else {c.integration: window for c in routing.candidates(route)}
    limits = routing.Limits(tries=tries, provider_seconds=windows)
    ends = None if deadline is None else NOW + deadline
    run, attempts, now, executions = drive(route, limits, outcomes, deadline=ends)
    assert run.finished
    assert executions <= routing.execution_budget(route, limits)
    if run.status is RunStatus.PROCESSED:
        assert routing.delivered(attempts)
        return
    assert run.steps[0].status is StepStatus.ERROR
    if ends is not None and now >= ends:
        return
    # Given up only once the route itself was settled: no provider had a try left.
    assert routing.next_step(route, attempts, now=now, limits=limits).state == routing.FAILED
    for c in routing.candidates(route):
        mine = [a for a in attempts if a.integration == c.integration]
        assert mine, f"{c.integration} was never tried"
        out_of_tries = sum(a.outcome == routing.RETRYABLE for a in mine) == tries
        failed = mine[-1].outcome == routing.FAILED
        timed_out = window is not None and now >= min(a.at or now for a in mine) + window
        assert out_of_tries or failed or timed_out
