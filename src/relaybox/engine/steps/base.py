"""The seam for steps whose work is I/O: the engine calls an executor, then the state machine.

An executor does the step's side effects and reports an outcome event; it never decides the
run's next state itself. Executors that must persist something *before* an irreversible
effect (a provider call) use ``checkpoint``, which commits under the run's lease.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from relaybox.domain.run import Run, RunContext
from relaybox.domain.transitions import StepEndedRun, StepFailed, StepSucceeded, StepWaiting
from relaybox.storage.base import Message, MessageEvent

#: Persists the run with the given messages while keeping the lease (fenced by its token).
Checkpoint = Callable[[Run, Sequence[Message], Sequence[MessageEvent]], Awaitable[None]]


@dataclass(frozen=True)
class StepResult:
    event: StepSucceeded | StepFailed | StepEndedRun | StepWaiting
    messages: list[Message] = field(default_factory=list)
    events: list[MessageEvent] = field(default_factory=list)
    #: The run context after the step, when the step changed it (e.g. fetched data).
    context: RunContext | None = None
    #: The step created runs that are due now (invoke): wake the timer loop to claim them.
    wake: bool = False


class StepExecutor(Protocol):
    async def execute(
        self, run: Run, index: int, now: float, checkpoint: Checkpoint
    ) -> StepResult: ...
