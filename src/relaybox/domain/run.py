"""Automation runs and their steps as plain data, with Courier's status vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from relaybox.errors import ValidationError


class RunStatus(StrEnum):
    #: Accepted or executing a step.
    PROCESSING = "PROCESSING"
    #: Every step has run.
    PROCESSED = "PROCESSED"
    #: Sleeping in a delay step until its wake time.
    WAITING = "WAITING"
    #: Stopped by a cancel step (or the console) before it finished.
    CANCELED = "CANCELED"
    #: A step failed for good; ``Run.error`` says why.
    ERROR = "ERROR"
    THROTTLED = "THROTTLED"
    NOT_PROCESSED = "NOT PROCESSED"


class StepStatus(StrEnum):
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    WAITING = "WAITING"
    CANCELED = "CANCELED"
    ERROR = "ERROR"
    THROTTLED = "THROTTLED"
    #: Not reached (yet): every step starts here.
    NOT_PROCESSED = "NOT PROCESSED"
    SKIPPED = "SKIPPED"
    COMPUTING = "COMPUTING"


ACTIVE_RUN_STATUSES = frozenset({RunStatus.PROCESSING, RunStatus.WAITING})


@dataclass(frozen=True)
class RunContext:
    """The "automation run cache" Courier steps read: set by the invoke body."""

    recipient: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    brand: str | None = None
    template: str | None = None
    #: Outcomes of earlier steps that carry a ``ref`` name, readable as ``refs.<name>``.
    refs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "brand": self.brand,
            "data": self.data,
            "profile": self.profile,
            "recipient": self.recipient,
            "template": self.template,
        }
        # Omitted when empty so runs without refs serialise exactly as before.
        if self.refs:
            raw["refs"] = self.refs
        return raw

    def scope(self) -> dict[str, Any]:
        """What step expressions see: the context's fields, ``refs`` and each ref by name.

        Courier's designer writes ``refs.data.userId`` as well as ``data.userId``, and names
        step references directly (``welcome_email.status``), so all three resolve. Context
        fields win over a step ref of the same name.
        """
        base = {k: v for k, v in self.to_json().items() if k != "refs"}
        return {**self.refs, **base, "refs": {**self.refs, **base}}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RunContext:
        return cls(
            recipient=raw.get("recipient"),
            data=dict(raw.get("data") or {}),
            profile=dict(raw.get("profile") or {}),
            brand=raw.get("brand"),
            template=raw.get("template"),
            refs=dict(raw.get("refs") or {}),
        )


def parse_context(raw: Mapping[str, Any], *, where: str = "") -> RunContext:
    """A run context from an invoke body (or an invoke step's ``context``), type-checked.

    Raises:
        ValidationError: a field has the wrong type; the message names it (``where`` prefix).
    """
    for name in ("recipient", "brand", "template"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise ValidationError(f"{where}{name}: Expected string")
    for name in ("data", "profile"):
        if raw.get(name) is not None and not isinstance(raw[name], dict):
            raise ValidationError(f"{where}{name}: Expected object")
    return RunContext(
        recipient=raw.get("recipient"),
        data=dict(raw.get("data") or {}),
        profile=dict(raw.get("profile") or {}),
        brand=raw.get("brand"),
        template=raw.get("template"),
    )


@dataclass(frozen=True)
class StepState:
    index: int
    action: str
    status: StepStatus = StepStatus.NOT_PROCESSED
    started_at: float | None = None
    updated_at: float | None = None
    attempts: int = 0
    wake_at: float | None = None
    message_id: str | None = None
    error: str | None = None
    output: dict[str, Any] | None = None
    #: The evaluated ``if``: expression, result and the context values it read.
    condition: dict[str, Any] | None = None
    #: What executing the step changed in the run context (``domain.context_changes``).
    changes: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"i": self.index, "a": self.action, "s": self.status.value}
        for key, value in (
            ("st", self.started_at),
            ("up", self.updated_at),
            ("n", self.attempts or None),
            ("w", self.wake_at),
            ("m", self.message_id),
            ("e", self.error),
            ("o", self.output),
            ("c", self.condition),
            ("x", self.changes),
        ):
            if value is not None:
                raw[key] = value
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StepState:
        return cls(
            index=raw["i"],
            action=raw["a"],
            status=StepStatus(raw["s"]),
            started_at=raw.get("st"),
            updated_at=raw.get("up"),
            attempts=raw.get("n") or 0,
            wake_at=raw.get("w"),
            message_id=raw.get("m"),
            error=raw.get("e"),
            output=raw.get("o"),
            condition=raw.get("c"),
            changes=raw.get("x"),
        )


@dataclass(frozen=True)
class Run:
    """One execution of an automation: its definition, context and progress."""

    id: str
    workspace_id: str
    steps_def: tuple[dict[str, Any], ...]
    context: RunContext
    status: RunStatus
    steps: tuple[StepState, ...]
    created_at: float
    updated_at: float
    #: Index of the next step to execute; ``len(steps)`` once all have run.
    cursor: int = 0
    template_id: str | None = None
    source: str = "invoke/ad-hoc"
    cancelation_token: str | None = None
    error: str | None = None
    #: When a worker should next look at the run (a wake time, a retry time or a lease
    #: expiry); None once the run is finished.
    due_at: float | None = None
    #: Fencing token: bumped by every claim and by cancellation, checked by every commit.
    lease_token: int = 0

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_RUN_STATUSES

    def with_step(self, step: StepState) -> Run:
        steps = list(self.steps)
        steps[step.index] = step
        return replace(self, steps=tuple(steps))

    def visible_steps(self) -> tuple[StepState, ...]:
        """Step states as users see them: a canceled run's in-flight step reads CANCELED.

        Cancellation by token is a single UPDATE on the run row, so the interrupted step's
        own status is derived here instead of being rewritten inside the stored JSON.
        """
        if self.status is not RunStatus.CANCELED:
            return self.steps
        interrupted = {StepStatus.WAITING, StepStatus.PROCESSING}
        return tuple(
            replace(s, status=StepStatus.CANCELED) if s.status in interrupted else s
            for s in self.steps
        )


def new_steps(steps_def: tuple[dict[str, Any], ...]) -> tuple[StepState, ...]:
    return tuple(StepState(index=i, action=str(s["action"])) for i, s in enumerate(steps_def))
