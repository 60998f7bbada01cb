"""The run state machine ``decide(run, event, now, policy)``: pure, so tested without I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybox.domain.retry import RetryPolicy
from relaybox.domain.run import Run, RunContext, RunStatus, StepStatus, new_steps
from relaybox.domain.transitions import (
    Advance,
    CancelRequested,
    Decision,
    Event,
    StepFailed,
    StepPrepared,
    StepSucceeded,
    decide,
)

NOW = 1_700_000_000.0
SEND: dict[str, Any] = {"action": "send", "template": "welcome"}
CANCEL: dict[str, Any] = {"action": "cancel", "cancelation_token": "order-42"}

# No example database: property tests must not write a .hypothesis/ directory into the tree.
_settings = settings(database=None, max_examples=200, deadline=None)


def make_run(*steps_def: dict[str, Any]) -> Run:
    return Run(
        id="run_1",
        workspace_id="ws",
        steps_def=tuple(steps_def),
        steps=new_steps(tuple(steps_def)),
        context=RunContext(recipient="user_1", template="welcome"),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW,
        lease_token=1,
    )


def delay(**spec: Any) -> dict[str, Any]:
    return {"action": "delay", **spec}


def advance(run: Run, now: float = NOW) -> Decision:
    return decide(run, Advance(), now)


# --------------------------------------------------------------------------------------------
# send
# --------------------------------------------------------------------------------------------


def test_send_step_asks_the_engine_to_execute_it() -> None:
    """Advancing onto a send step marks it PROCESSING, counts the attempt and names the effect."""
    decision = advance(make_run(SEND, SEND))
    assert decision.execute == 0
    assert decision.release_until is None
    assert decision.cancel_token is None
    assert not decision.yields
    step = decision.run.steps[0]
    assert (step.status, step.attempts, step.started_at, step.updated_at) == (
        StepStatus.PROCESSING,
        1,
        NOW,
        NOW,
    )
    assert decision.run.status is RunStatus.PROCESSING
    assert decision.run.cursor == 0
    assert decision.run.steps[1].status is StepStatus.NOT_PROCESSED


def test_step_succeeded_moves_to_the_next_step() -> None:
    """StepSucceeded marks the step PROCESSED with its message and moves the cursor on."""
    started = advance(make_run(SEND, SEND)).run
    done = decide(started, StepSucceeded(0, message_id="m1", output={"ok": True}), NOW + 1).run
    assert done.cursor == 1
    assert done.status is RunStatus.PROCESSING
    step = done.steps[0]
    assert (step.status, step.message_id, step.output, step.updated_at) == (
        StepStatus.PROCESSED,
        "m1",
        {"ok": True},
        NOW + 1,
    )
    assert step.started_at == NOW
    nxt = advance(done, NOW + 2)
    assert nxt.execute == 1
    assert nxt.run.steps[1].attempts == 1


def test_all_steps_done_is_processed() -> None:
    """Advancing past the last step finishes the run as PROCESSED."""
    started = advance(make_run(SEND)).run
    done = decide(started, StepSucceeded(0, message_id="m1"), NOW).run
    final = advance(done, NOW + 1)
    assert final.run.status is RunStatus.PROCESSED
    assert final.run.updated_at == NOW + 1
    assert final.yields
    assert final.execute is None


def test_empty_run_is_processed_at_once() -> None:
    """A run without steps is PROCESSED on its first advance."""
    assert advance(make_run()).run.status is RunStatus.PROCESSED


def test_outcome_for_another_step_is_rejected() -> None:
    """An outcome reported for a step other than the cursor's is a programming error."""
    started = advance(make_run(SEND, SEND)).run
    with pytest.raises(ValueError, match="step 1 reported"):
        decide(started, StepSucceeded(1), NOW)


# --------------------------------------------------------------------------------------------
# retries
# --------------------------------------------------------------------------------------------


def test_retryable_failure_backs_off_exponentially_then_gives_up() -> None:
    """Retryable failures release for 1, 2, 4, 8 s; the 5th failed attempt ends the run in ERROR."""
    run = make_run(SEND)
    now = NOW
    waits: list[float] = []
    for attempt in range(1, 6):
        started = advance(run, now)
        assert started.execute == 0
        assert started.run.steps[0].attempts == attempt
        failed = decide(started.run, StepFailed(0, "timeout", retryable=True, message_id="m1"), now)
        run = failed.run
        if attempt < 5:
            assert failed.release_until is not None
            assert failed.yields
            waits.append(failed.release_until - now)
            assert run.status is RunStatus.PROCESSING
            step = run.steps[0]
            assert (step.status, step.error, step.message_id) == (
                StepStatus.PROCESSING,
                "timeout",
                "m1",
            )
            now = failed.release_until
    assert waits == [1.0, 2.0, 4.0, 8.0]
    assert run.status is RunStatus.ERROR
    assert run.steps[0].status is StepStatus.ERROR
    assert run.steps[0].error == "timeout (gave up after 5 attempts)"
    assert run.error == "Step 1 (send) failed: timeout (gave up after 5 attempts)"


def test_retry_policy_max_attempts_is_honoured() -> None:
    """With max_attempts=2 the second failed attempt is the last."""
    policy = RetryPolicy(max_attempts=2)
    first = decide(make_run(SEND), Advance(), NOW, policy).run
    retry = decide(first, StepFailed(0, "busy", retryable=True), NOW, policy)
    assert retry.release_until == NOW + 1
    second = decide(retry.run, Advance(), NOW + 1, policy).run
    final = decide(second, StepFailed(0, "busy", retryable=True), NOW + 1, policy).run
    assert final.status is RunStatus.ERROR
    assert final.error == "Step 1 (send) failed: busy (gave up after 2 attempts)"


def test_retry_after_longer_than_backoff_wins() -> None:
    """A provider's Retry-After longer than the backoff sets the release time."""
    started = advance(make_run(SEND)).run
    failed = decide(started, StepFailed(0, "429", retryable=True, retry_after=30.0), NOW)
    assert failed.release_until == NOW + 30.0


def test_permanent_failure_is_an_error_at_once() -> None:
    """A non-retryable failure ends the run in ERROR on the first attempt."""
    started = advance(make_run(SEND, SEND)).run
    failed = decide(started, StepFailed(0, "bad address", retryable=False, message_id="m1"), NOW)
    assert failed.yields
    assert failed.release_until is None
    assert failed.run.status is RunStatus.ERROR
    assert failed.run.error == "Step 1 (send) failed: bad address"
    step = failed.run.steps[0]
    assert (step.status, step.error, step.message_id) == (StepStatus.ERROR, "bad address", "m1")
    assert failed.run.steps[1].status is StepStatus.NOT_PROCESSED


# --------------------------------------------------------------------------------------------
# delay
# --------------------------------------------------------------------------------------------


def test_delay_with_duration_waits() -> None:
    """A duration delay puts the run in WAITING and releases it until now + duration."""
    decision = advance(make_run(delay(duration="2 hours"), SEND))
    assert decision.release_until == NOW + 7200
    assert decision.yields
    assert decision.execute is None
    assert decision.run.status is RunStatus.WAITING
    step = decision.run.steps[0]
    assert (step.status, step.wake_at, step.started_at) == (StepStatus.WAITING, NOW + 7200, NOW)
    assert decision.run.cursor == 0


def test_early_wake_releases_again_until_the_wake_time() -> None:
    """Picked up before its wake time, a waiting run is released again, unchanged."""
    waiting = advance(make_run(delay(duration="1h"), SEND)).run
    early = advance(waiting, NOW + 1800)
    assert early.release_until == NOW + 3600
    assert early.run == waiting


def test_wake_at_due_time_finishes_the_delay_and_continues() -> None:
    """At its wake time the delay step is PROCESSED and the next step runs."""
    waiting = advance(make_run(delay(duration="1h"), SEND)).run
    woke = advance(waiting, NOW + 3600)
    assert woke.release_until is None
    assert not woke.yields
    assert woke.run.status is RunStatus.PROCESSING
    assert woke.run.cursor == 1
    step = woke.run.steps[0]
    assert (step.status, step.started_at, step.updated_at) == (
        StepStatus.PROCESSED,
        NOW,
        NOW + 3600,
    )
    assert step.output == {"wake_at": NOW + 3600}
    assert advance(woke.run, NOW + 3600).execute == 1


def test_delay_until_in_the_past_does_not_wait() -> None:
    """A delay until an instant already passed completes at once."""
    decision = advance(make_run(delay(until="2020-01-01T00:00:00Z"), SEND))
    assert decision.release_until is None
    assert decision.run.status is RunStatus.PROCESSING
    assert decision.run.cursor == 1
    assert decision.run.steps[0].status is StepStatus.PROCESSED


def test_delay_until_in_the_future_waits_until_then() -> None:
    """A delay until a future instant releases the run until that instant."""
    decision = advance(make_run(delay(until="2023-11-15T00:00:00Z")))
    assert decision.release_until == 1_700_006_400.0
    assert decision.run.status is RunStatus.WAITING


def test_zero_duration_delay_does_not_wait() -> None:
    """A zero-length delay completes at once."""
    decision = advance(make_run(delay(duration="0s"), SEND))
    assert decision.release_until is None
    assert decision.run.cursor == 1


@pytest.mark.parametrize(
    "spec",
    [delay(duration="soon"), delay(), delay(until="yesterday"), delay(duration="-5m")],
)
def test_invalid_delay_is_a_step_error(spec: dict[str, Any]) -> None:
    """A delay that cannot be parsed fails its step and the run with a reason."""
    decision = advance(make_run(spec, SEND))
    assert decision.yields
    assert decision.run.status is RunStatus.ERROR
    step = decision.run.steps[0]
    assert step.status is StepStatus.ERROR
    assert step.error
    assert decision.run.error == f"Step 1 (delay) failed: {step.error}"
    assert decision.run.steps[1].status is StepStatus.NOT_PROCESSED


# --------------------------------------------------------------------------------------------
# cancel
# --------------------------------------------------------------------------------------------


def test_cancel_step_names_the_token_to_cancel() -> None:
    """A cancel step completes and asks for the token's other runs to be canceled."""
    decision = advance(make_run(CANCEL, SEND))
    assert decision.cancel_token == "order-42"
    assert decision.execute is None
    assert not decision.yields
    assert decision.run.status is RunStatus.PROCESSING
    assert decision.run.cursor == 1
    step = decision.run.steps[0]
    assert (step.status, step.output) == (
        StepStatus.PROCESSED,
        {"cancelation_token": "order-42"},
    )


def test_cancel_requested_cancels_a_waiting_run() -> None:
    """CancelRequested ends the run CANCELED; its waiting step reads CANCELED to users."""
    waiting = advance(make_run(delay(duration="1h"), SEND)).run
    canceled = decide(waiting, CancelRequested(), NOW + 10)
    assert canceled.yields
    assert canceled.run.status is RunStatus.CANCELED
    assert canceled.run.updated_at == NOW + 10
    assert canceled.run.steps[0].status is StepStatus.WAITING  # stored as is
    assert [s.status for s in canceled.run.visible_steps()] == [
        StepStatus.CANCELED,
        StepStatus.NOT_PROCESSED,
    ]


def test_cancel_requested_on_a_processing_step() -> None:
    """A step in flight when the run is canceled also reads CANCELED."""
    started = advance(make_run(SEND)).run
    canceled = decide(started, CancelRequested(), NOW).run
    assert canceled.visible_steps()[0].status is StepStatus.CANCELED


def test_visible_steps_of_unfinished_runs_are_the_stored_steps() -> None:
    """Only canceled runs rewrite their steps' visible status."""
    waiting = advance(make_run(delay(duration="1h"))).run
    assert waiting.visible_steps() == waiting.steps


# --------------------------------------------------------------------------------------------
# finished runs and unsupported steps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [RunStatus.PROCESSED, RunStatus.ERROR, RunStatus.CANCELED])
@pytest.mark.parametrize(
    "event",
    [
        Advance(),
        StepSucceeded(0, message_id="m1"),
        StepFailed(0, "x", retryable=True),
        CancelRequested(),
    ],
)
def test_finished_runs_ignore_events(status: RunStatus, event: Event) -> None:
    """Every event leaves a finished run exactly as it is."""
    run = replace(make_run(SEND), status=status, due_at=None)
    decision = decide(run, event, NOW + 100)
    assert decision == Decision(run)
    assert decision.yields


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"action": "fetch-data", "webhook": {"url": "https://x.test"}},
            'The "fetch-data" step is accepted but not executed by this version of Relaybox',
        ),
        (
            {"action": "update-profile", "profile": {"a": 1}},
            'The "update-profile" step is accepted but not executed by this version of Relaybox',
        ),
    ],
)
def test_unsupported_steps_fail_with_accepted_but_not_executed(
    spec: dict[str, Any], message: str
) -> None:
    """Steps this version cannot execute fail the run with an explicit 'accepted but not' reason."""
    decision = advance(make_run(SEND, spec), NOW)
    run = decide(decision.run, StepSucceeded(0, message_id="m1"), NOW).run
    failed = advance(run, NOW + 1)
    assert failed.execute is None
    assert failed.yields
    assert failed.run.status is RunStatus.ERROR
    assert failed.run.steps[0].status is StepStatus.PROCESSED
    assert failed.run.steps[1].status is StepStatus.ERROR
    assert failed.run.steps[1].error == message
    assert failed.run.error == f"Step 2 ({spec['action']}) failed: {message}"
    assert "accepted but not" in failed.run.error


# --------------------------------------------------------------------------------------------
# property: every run terminates and never moves backwards
# --------------------------------------------------------------------------------------------

_STEP = st.one_of(
    st.just(SEND),
    st.sampled_from(["0s", "5s", "1m", "2h", "3 days"]).map(lambda d: delay(duration=d)),
    st.just(delay(until="2020-01-01T00:00:00Z")),
    st.just(delay(duration="bogus")),
    st.just(CANCEL),
)
_OUTCOME = st.sampled_from(["ok", "retry", "fail"])


@_settings
@given(
    steps=st.lists(_STEP, max_size=8),
    outcomes=st.lists(_OUTCOME, min_size=1),
    early=st.lists(st.booleans(), min_size=1),
    cancel_at=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
)
def test_runs_always_terminate_and_never_move_backwards(
    steps: list[dict[str, Any]],
    outcomes: list[str],
    early: list[bool],
    cancel_at: int | None,
) -> None:
    """Driving any run with any outcomes and an increasing clock ends finished, cursor monotone."""
    run = make_run(*steps)
    now = NOW
    woke_early_for: float | None = None
    for i in range(1_000):
        if run.finished:
            break
        before = run
        if cancel_at == i:
            decision = decide(run, CancelRequested(), now)
        else:
            decision = decide(run, Advance(), now)
            if decision.execute is not None:
                assert decision.execute == decision.run.cursor
                outcome = outcomes[i % len(outcomes)]
                event: Event
                if outcome == "ok":
                    event = StepSucceeded(decision.execute, message_id=f"m{i}")
                else:
                    event = StepFailed(decision.execute, "boom", retryable=outcome == "retry")
                decision = decide(decision.run, event, now)
        run = decision.run
        assert run.cursor >= before.cursor
        assert run.cursor <= len(run.steps)
        assert run.updated_at >= before.updated_at
        if decision.release_until is not None:
            assert decision.release_until >= now
            assert not run.finished
            # Sometimes wake up early once (the timer fired too soon), then at the due time.
            if early[i % len(early)] and woke_early_for != decision.release_until:
                woke_early_for = decision.release_until
                now = (now + decision.release_until) / 2
            else:
                now = decision.release_until
        else:
            now += 0.25
    assert run.finished, f"run did not finish: {run}"
    if run.status is RunStatus.PROCESSED:
        assert run.cursor == len(run.steps)
        assert all(s.status is StepStatus.PROCESSED for s in run.steps)
    assert decide(run, Advance(), now + 1) == Decision(run)


# --------------------------------------------------------------------------------------------
# conditions (if), references (ref, $ref, ${...}) and continue-on-error steps
# --------------------------------------------------------------------------------------------

IO = frozenset({"send", "fetch-data"})


def passed(expression: str) -> dict[str, Any]:
    return {"expression": expression, "result": True, "reads": []}


def failed_condition(expression: str) -> dict[str, Any]:
    return {"expression": expression, "result": False, "reads": [{"path": "data.vip"}]}


def test_step_with_condition_asks_the_engine_to_prepare_it() -> None:
    """A step with an if is not started until the engine reports the evaluated condition."""
    run = make_run({**SEND, "if": "data.vip"})
    decision = advance(run)
    assert decision.prepare == 0
    assert decision.execute is None
    assert decision.run == run
    assert not decision.yields


@pytest.mark.parametrize(
    "spec",
    [
        {**SEND, "recipient": {"$ref": "data.user"}},
        {**SEND, "template": "${data.template}"},
        delay(duration="${data.wait}"),
        {**CANCEL, "cancelation_token": "${`order-${data.id}`}"},
    ],
)
def test_steps_with_references_are_prepared(spec: dict[str, Any]) -> None:
    """$ref accessors and ${...} anywhere in a step need preparing first."""
    assert advance(make_run(spec)).prepare == 0


def test_false_condition_skips_the_step_and_the_run_continues() -> None:
    """A false if marks the step SKIPPED with its condition; the next step runs."""
    spec = {**SEND, "if": "data.vip", "ref": "vip_send"}
    run = make_run(spec, SEND)
    condition = failed_condition("data.vip")
    skipped = decide(run, StepPrepared(0, spec, condition=condition), NOW + 1, io_actions=IO)
    step = skipped.run.steps[0]
    assert step.status is StepStatus.SKIPPED
    assert step.condition == condition
    assert skipped.run.cursor == 1
    assert skipped.run.status is RunStatus.PROCESSING
    assert skipped.run.context.refs == {"vip_send": {"status": "SKIPPED"}}
    assert advance(skipped.run, NOW + 2).execute == 1


def test_true_condition_records_it_and_executes_the_resolved_step() -> None:
    """A true if is recorded on the step, which then starts and is not re-evaluated on retry."""
    spec = {**SEND, "if": "data.vip"}
    run = make_run(spec)
    started = decide(run, StepPrepared(0, spec, condition=passed("data.vip")), NOW, io_actions=IO)
    assert started.execute == 0
    assert started.run.steps[0].condition == passed("data.vip")
    assert started.run.steps[0].status is StepStatus.PROCESSING
    retrying = decide(started.run, StepFailed(0, "busy", retryable=True), NOW).run
    assert advance(retrying, NOW + 60).prepare is None


def test_condition_error_fails_the_step_with_the_message() -> None:
    """An expression that throws or times out puts the step (and run) in ERROR."""
    spec = {**SEND, "if": "data.("}
    error = "if 'data.(': SyntaxError: expecting field name"
    condition = {"expression": "data.(", "error": error}
    decision = decide(make_run(spec), StepPrepared(0, spec, condition=condition, error=error), NOW)
    assert decision.run.steps[0].status is StepStatus.ERROR
    assert decision.run.steps[0].error == error
    assert decision.run.steps[0].condition == condition
    assert decision.run.status is RunStatus.ERROR
    assert decision.yields


def test_resolved_cancel_token_is_used() -> None:
    """A cancel step cancels by the token its ${...} resolved to, evaluated when it runs."""
    spec = {**CANCEL, "cancelation_token": "${`order-${data.id}`}"}
    resolved = {**spec, "cancelation_token": "order-7"}
    decision = decide(make_run(spec), StepPrepared(0, resolved), NOW)
    assert decision.cancel_token == "order-7"
    assert decision.run.steps[0].output == {"cancelation_token": "order-7"}
    assert decision.run.steps_def[0] == spec


def test_resolved_delay_duration_is_used_and_waking_needs_no_preparation() -> None:
    """A delay waits for its resolved duration; waking it up does not re-evaluate it."""
    spec = delay(duration="${data.wait}")
    waiting = decide(make_run(spec), StepPrepared(0, {**spec, "duration": "5s"}), NOW)
    assert waiting.release_until == NOW + 5
    woken = advance(waiting.run, NOW + 5)
    assert woken.prepare is None
    assert woken.run.steps[0].status is StepStatus.PROCESSED


def test_ref_exposes_the_step_outcome_to_later_steps() -> None:
    """A succeeded step with a ref stores its ref value (or status+output) in context.refs."""
    spec = {"action": "fetch-data", "webhook": {"url": "https://x.test"}, "ref": "account"}
    run = decide(make_run(spec, {**SEND, "ref": "mail"}), Advance(), NOW, io_actions=IO).run
    event = StepSucceeded(0, output={"status_code": 200}, ref={"plan": "pro"})
    first = decide(run, event, NOW, io_actions=IO).run
    assert first.context.refs == {"account": {"plan": "pro"}}
    running = decide(first, Advance(), NOW, io_actions=IO).run
    second = decide(running, StepSucceeded(1, message_id="m1"), NOW, io_actions=IO).run
    assert second.context.refs["mail"] == {"status": "PROCESSED", "message_id": "m1"}


def test_continue_run_failure_records_the_error_and_moves_on() -> None:
    """A fetch-data failure marks the step ERROR but the run continues with the next step."""
    spec = {"action": "fetch-data", "webhook": {"url": "https://x.test"}, "ref": "f"}
    run = decide(make_run(spec, SEND), Advance(), NOW, io_actions=IO).run
    event = StepFailed(0, "refused", retryable=False, continue_run=True)
    after = decide(run, event, NOW + 1, io_actions=IO)
    assert after.run.steps[0].status is StepStatus.ERROR
    assert after.run.steps[0].error == "refused"
    assert after.run.status is RunStatus.PROCESSING
    assert after.run.error is None
    assert after.run.cursor == 1
    assert after.run.context.refs == {"f": {"status": "ERROR", "error": "refused"}}
    assert decide(after.run, Advance(), NOW + 2, io_actions=IO).execute == 1


def test_step_condition_round_trips_through_json() -> None:
    """StepState keeps its evaluated condition across serialisation."""
    run = make_run({**SEND, "if": "true"})
    step = replace(run.steps[0], condition=passed("true"))
    assert type(step).from_json(step.to_json()) == step
