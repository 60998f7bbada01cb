"""decide() for the StepWaiting and StepEndedRun events (add-to-batch, throttle)."""

from __future__ import annotations

from typing import Any

from relaybox.domain.run import Run, RunContext, RunStatus, StepStatus, new_steps
from relaybox.domain.transitions import (
    Advance,
    StepEndedRun,
    StepSucceeded,
    StepWaiting,
    decide,
)

NOW = 1_700_000_000.0
ACTIONS = frozenset({"add-to-batch", "throttle", "send"})
BATCH: dict[str, Any] = {"action": "add-to-batch", "batch_key": "k"}
SEND: dict[str, Any] = {"action": "send", "template": "t"}


def make_run(*steps_def: dict[str, Any]) -> Run:
    return Run(
        id="run_1",
        workspace_id="ws",
        steps_def=tuple(steps_def),
        steps=new_steps(tuple(steps_def)),
        context=RunContext(recipient="u"),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_waiting_step_parks_the_run_and_runs_again_when_woken() -> None:
    """StepWaiting: step and run WAITING until wake_at; on waking the same step executes again."""
    started = decide(make_run(BATCH, SEND), Advance(), NOW, io_actions=ACTIONS)
    assert started.execute == 0
    parked = decide(started.run, StepWaiting(0, NOW + 60, {"batch_id": "b"}), NOW)
    assert parked.release_until == NOW + 60
    assert parked.run.status is RunStatus.WAITING
    assert parked.run.steps[0].status is StepStatus.WAITING
    woken = decide(parked.run, Advance(), NOW + 60, io_actions=ACTIONS)
    assert woken.execute == 0
    assert woken.run.steps[0].output == {"batch_id": "b"}
    done = decide(woken.run, StepSucceeded(0, output={"count": 2}), NOW + 61)
    assert done.run.cursor == 1
    assert done.run.steps[0].status is StepStatus.PROCESSED


def test_a_step_can_end_the_run_with_its_own_status() -> None:
    """StepEndedRun: the step and the run end with the given statuses; later steps never run."""
    started = decide(make_run(BATCH, SEND), Advance(), NOW, io_actions=ACTIONS)
    event = StepEndedRun(0, StepStatus.THROTTLED, RunStatus.THROTTLED, {"position": 3})
    ended = decide(started.run, event, NOW)
    assert ended.run.status is RunStatus.THROTTLED
    assert ended.run.finished
    assert [s.status for s in ended.run.steps] == [StepStatus.THROTTLED, StepStatus.NOT_PROCESSED]
    assert ended.run.context.refs == {}
    assert decide(ended.run, Advance(), NOW, io_actions=ACTIONS).execute is None
