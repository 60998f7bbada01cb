"""The run state machine: ``decide(run, event, now) -> Decision``, with no I/O and no clock.

The engine feeds events in (a worker picked the run up, a step's I/O finished, someone
canceled), persists the returned run, and performs the effect the decision names. Keeping
this pure means every backend behaves identically and every transition is unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from relaybox.domain import delays, refs
from relaybox.domain.retry import RetryPolicy
from relaybox.domain.run import Run, RunStatus, StepState, StepStatus
from relaybox.errors import ValidationError

#: Steps the state machine handles itself; everything else is I/O an executor performs.
BUILT_IN_ACTIONS = frozenset({"delay", "cancel"})
#: The executors a standard engine has (the engine passes its own set to ``decide``).
DEFAULT_IO_ACTIONS = frozenset({"send"})


@dataclass(frozen=True)
class Advance:
    """A worker holds the run and asks what to do next."""


@dataclass(frozen=True)
class StepPrepared:
    """The engine evaluated the step's ``if`` and resolved its ``$ref``/``${...}`` fields.

    ``spec`` is the step definition to act on (resolved); it is not stored in the run, so a
    retried step is resolved again from the then-current context.
    """

    index: int
    spec: dict[str, Any]
    #: {"expression", "result", "reads"} when the ``if`` was evaluated in this preparation.
    condition: dict[str, Any] | None = None
    #: Why the condition or a field could not be evaluated (syntax error, throw, caps).
    error: str | None = None


@dataclass(frozen=True)
class StepSucceeded:
    index: int
    message_id: str | None = None
    output: dict[str, Any] | None = None
    #: What a later step reads as ``refs.<name>`` when this step has a ``ref``; None means
    #: the default ``{"status": "PROCESSED", **output}``.
    ref: Any = None


@dataclass(frozen=True)
class StepFailed:
    index: int
    error: str
    retryable: bool
    retry_after: float | None = None
    message_id: str | None = None
    #: When to try again, when the executor decided it (else the policy's backoff).
    retry_at: float | None = None
    #: The failure is recorded on the step but the run goes on (fetch-data, per Courier:
    #: "the automation will continue processing subsequent steps").
    continue_run: bool = False
    #: Executions of this step allowed in total, when the step derives its own bound (a send's
    #: route, see ``routing.execution_budget``); None: the retry policy's generic cap.
    max_attempts: int | None = None


@dataclass(frozen=True)
class StepEndedRun:
    """The step finished and the run stops after it (throttled; joined another run's batch)."""

    index: int
    step_status: StepStatus
    run_status: RunStatus
    output: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepWaiting:
    """The step is not done yet: look at it again at ``wake_at`` (an open batch's due time)."""

    index: int
    wake_at: float
    output: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelRequested:
    """Cancel this run (console, API); cancel steps cancel other runs by token in storage."""


Event = (
    Advance
    | StepPrepared
    | StepSucceeded
    | StepFailed
    | StepEndedRun
    | StepWaiting
    | CancelRequested
)


@dataclass(frozen=True)
class Decision:
    run: Run
    #: Index of a step whose I/O the engine must perform, then report back.
    execute: int | None = None
    #: Cancel every other active run of the workspace carrying this token, in the same commit.
    cancel_token: str | None = None
    #: Stop working on the run until this time (a delay's wake time or a retry).
    release_until: float | None = None
    #: Index of a step whose ``if``/references the engine must evaluate, then report back
    #: with ``StepPrepared`` (the JavaScript sandbox is I/O-free but not pure Python).
    prepare: int | None = None

    @property
    def yields(self) -> bool:
        """True when the worker should commit and let go of the run."""
        return self.run.finished or self.release_until is not None


class _Unsupported(Exception):
    pass


def decide(
    run: Run,
    event: Event,
    now: float,
    policy: RetryPolicy | None = None,
    io_actions: frozenset[str] = DEFAULT_IO_ACTIONS,
) -> Decision:
    """The run's next state, given what happened; ``io_actions`` are the steps with executors."""
    policy = policy or RetryPolicy()
    if isinstance(event, CancelRequested):
        return _cancel(run, now)
    if run.finished:
        return Decision(run)
    if isinstance(event, StepSucceeded):
        return _succeeded(run, event, now)
    if isinstance(event, StepFailed):
        return _failed(run, event, now, policy)
    if isinstance(event, StepPrepared):
        return _prepared(run, event, now, io_actions)
    if isinstance(event, StepEndedRun):
        return _ended_run(run, event, now)
    if isinstance(event, StepWaiting):
        return _waiting(run, event, now)
    return _advance(run, now, io_actions)


def _advance(run: Run, now: float, io_actions: frozenset[str]) -> Decision:
    if run.cursor >= len(run.steps):
        return Decision(replace(run, status=RunStatus.PROCESSED, updated_at=now))
    step = run.steps[run.cursor]
    spec = run.steps_def[run.cursor]
    try:
        _check_supported(spec, io_actions)
    except _Unsupported as exc:
        return _fail_step(run, step, str(exc), now)
    waking = step.action == "delay" and step.status is StepStatus.WAITING
    if not waking and refs.needs_preparation(spec, step.condition is not None):
        return Decision(run, prepare=step.index)
    return _start(run, step, spec, now)


def _prepared(run: Run, event: StepPrepared, now: float, io_actions: frozenset[str]) -> Decision:
    step = _current(run, event.index)
    if event.condition is not None:
        step = replace(step, condition=event.condition)
    if event.error is not None:
        return _fail_step(run, step, event.error, now)
    if event.condition is not None and not event.condition.get("result"):
        return Decision(_skip_step(run, step, now))
    try:
        _check_supported(event.spec, io_actions)
    except _Unsupported as exc:
        return _fail_step(run, step, str(exc), now)
    return _start(run.with_step(step), step, event.spec, now)


def _skip_step(run: Run, step: StepState, now: float) -> Run:
    """A false ``if``: the step is SKIPPED and the run moves on to the next one."""
    skipped = replace(step, status=StepStatus.SKIPPED, started_at=now, updated_at=now)
    spec = run.steps_def[step.index]
    context = replace(
        run.context, refs=refs.with_ref(run.context.refs, spec, {"status": "SKIPPED"})
    )
    return replace(
        run.with_step(skipped),
        context=context,
        cursor=step.index + 1,
        status=RunStatus.PROCESSING,
        updated_at=now,
    )


def _start(run: Run, step: StepState, spec: dict[str, Any], now: float) -> Decision:
    """Act on a step whose condition passed and whose fields are resolved."""
    if step.action == "delay":
        return _delay(run, step, spec, now)
    if step.action == "cancel":
        token = spec.get("cancelation_token")
        if token is None or token == "":
            return _fail_step(run, step, "cancelation_token resolved to an empty value", now)
        done = _finish_step(run, step, now, output={"cancelation_token": str(token)})
        return Decision(done, cancel_token=str(token))
    started = replace(
        step,
        status=StepStatus.PROCESSING,
        started_at=step.started_at or now,
        updated_at=now,
        attempts=step.attempts + 1,
    )
    running = replace(run.with_step(started), status=RunStatus.PROCESSING, updated_at=now)
    return Decision(running, execute=step.index)


def _check_supported(spec: dict[str, Any], io_actions: frozenset[str]) -> None:
    action = spec["action"]
    if action not in io_actions | BUILT_IN_ACTIONS:
        raise _Unsupported(
            f'The "{action}" step is accepted but not executed by this version of Relaybox'
        )


def _delay(run: Run, step: StepState, spec: dict[str, Any], now: float) -> Decision:
    if step.status is StepStatus.WAITING and step.wake_at is not None:
        if now >= step.wake_at:
            return Decision(_finish_step(run, step, now, output=step.output))
        return Decision(run, release_until=step.wake_at)
    try:
        wake = delays.wake_time(duration=spec.get("duration"), until=spec.get("until"), now=now)
    except ValidationError as exc:
        return _fail_step(run, step, exc.message, now)
    output = {"wake_at": wake}
    if wake <= now:
        return Decision(_finish_step(run, step, now, output=output))
    waiting = replace(
        step,
        status=StepStatus.WAITING,
        started_at=step.started_at or now,
        updated_at=now,
        wake_at=wake,
        output=output,
    )
    return Decision(
        replace(run.with_step(waiting), status=RunStatus.WAITING, updated_at=now),
        release_until=wake,
    )


def _finish_step(
    run: Run,
    step: StepState,
    now: float,
    *,
    message_id: str | None = None,
    output: dict[str, Any] | None = None,
    ref: Any = None,
    status: StepStatus = StepStatus.PROCESSED,
    error: str | None = None,
) -> Run:
    kept = output if output is not None else step.output
    if ref is None:
        ref = {**(kept or {}), "status": status.value}
        if message_id or step.message_id:
            ref["message_id"] = message_id or step.message_id
    spec = run.steps_def[step.index]
    context = replace(run.context, refs=refs.with_ref(run.context.refs, spec, ref))
    done = replace(
        step,
        status=status,
        started_at=step.started_at or now,
        updated_at=now,
        message_id=message_id or step.message_id,
        output=kept,
        error=error,
    )
    return replace(
        run.with_step(done),
        context=context,
        cursor=step.index + 1,
        status=RunStatus.PROCESSING,
        updated_at=now,
    )


def _fail_step(run: Run, step: StepState, error: str, now: float) -> Decision:
    failed = replace(
        step,
        status=StepStatus.ERROR,
        started_at=step.started_at or now,
        updated_at=now,
        error=error,
    )
    return Decision(
        replace(
            run.with_step(failed),
            status=RunStatus.ERROR,
            error=f"Step {step.index + 1} ({step.action}) failed: {error}",
            updated_at=now,
        )
    )


def _succeeded(run: Run, event: StepSucceeded, now: float) -> Decision:
    step = _current(run, event.index)
    return Decision(
        _finish_step(
            run, step, now, message_id=event.message_id, output=event.output, ref=event.ref
        )
    )


def _failed(run: Run, event: StepFailed, now: float, policy: RetryPolicy) -> Decision:
    current = _current(run, event.index)
    step = replace(current, message_id=event.message_id or current.message_id)
    if event.max_attempts is not None:
        policy = replace(policy, max_attempts=event.max_attempts)
    if not event.retryable or policy.exhausted(step.attempts):
        suffix = "" if not event.retryable else f" (gave up after {step.attempts} attempts)"
        if event.continue_run:
            error = event.error + suffix
            ref = {"status": StepStatus.ERROR.value, "error": error}
            return Decision(
                _finish_step(run, step, now, ref=ref, status=StepStatus.ERROR, error=error)
            )
        return _fail_step(run, step, event.error + suffix, now)
    pending = replace(step, status=StepStatus.PROCESSING, updated_at=now, error=event.error)
    retry_at = event.retry_at
    if retry_at is None:
        retry_at = now + policy.backoff(step.attempts, event.retry_after)
    return Decision(replace(run.with_step(pending), updated_at=now), release_until=retry_at)


def _ended_run(run: Run, event: StepEndedRun, now: float) -> Decision:
    step = _current(run, event.index)
    moved = _finish_step(run, step, now, output=event.output, status=event.step_status)
    return Decision(replace(moved, status=event.run_status, updated_at=now))


def _waiting(run: Run, event: StepWaiting, now: float) -> Decision:
    """Park the run on this step; it is executed again when it wakes (not a delay's finish)."""
    step = _current(run, event.index)
    waiting = replace(
        step,
        status=StepStatus.WAITING,
        updated_at=now,
        wake_at=event.wake_at,
        output=event.output if event.output is not None else step.output,
    )
    return Decision(
        replace(run.with_step(waiting), status=RunStatus.WAITING, updated_at=now),
        release_until=event.wake_at,
    )


def _cancel(run: Run, now: float) -> Decision:
    if run.finished:
        return Decision(run)
    return Decision(replace(run, status=RunStatus.CANCELED, updated_at=now))


def _current(run: Run, index: int) -> StepState:
    if index != run.cursor:
        raise ValueError(f"step {index} reported but the run is at step {run.cursor}")
    return run.steps[index]
