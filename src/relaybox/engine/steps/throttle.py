"""The ``throttle`` step: at most ``max_allowed`` runs per ``period`` per scope pass.

Scopes (Courier's journeys throttle node): ``user`` (the run's recipient, else
``data.user_id``), ``global``, or a dynamic ``throttle_key`` (already ``${...}``-resolved).
Courier counts ``user`` and ``global`` per throttle node, so for a saved automation they are
counted per (automation, step); ad hoc runs have no node identity and share one ad hoc
scope per workspace. A dynamic key is workspace-wide, so several automations can share it.
Windows are fixed: ``floor(now / period) * period``. Each run's hit is
counted in the store by one atomic upsert, idempotent per (run, step), so concurrent runs
get distinct positions and a re-run step is not counted twice. Over the limit the step and
the run end ``THROTTLED``.
"""

from __future__ import annotations

import math
from typing import Any

from relaybox.domain import delays
from relaybox.domain.run import Run, RunStatus, StepStatus
from relaybox.domain.transitions import StepEndedRun, StepFailed, StepSucceeded
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import StorageError, ValidationError
from relaybox.storage.base import Store


class ThrottleStep:
    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        try:
            limit, period, key = _parse(spec, run, index)
        except ValidationError as exc:
            return StepResult(StepFailed(index, exc.message, retryable=False))
        window = math.floor(now / period) * period
        try:
            position = await self._store.throttle_hit(
                run.workspace_id, key, window, run.id, index, window_end=window + period
            )
        except StorageError as exc:
            # A deadlock victim or a lost connection: nothing was counted, try again.
            return StepResult(StepFailed(index, exc.message, retryable=True))
        output = {
            "throttle_key": key,
            "max_allowed": limit,
            "window_start": window,
            "position": position,
        }
        if position <= limit:
            return StepResult(StepSucceeded(index, output=output))
        ended = StepEndedRun(index, StepStatus.THROTTLED, RunStatus.THROTTLED, output=output)
        return StepResult(ended)


def _parse(spec: dict[str, Any], run: Run, index: int) -> tuple[int, float, str]:
    limit = spec.get("max_allowed")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValidationError("max_allowed: Expected a whole number of 0 or more")
    try:
        period = delays.parse_duration(spec.get("period"))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ValidationError(f"period: {exc.message}") from None
    if period <= 0:
        raise ValidationError("period: Expected a duration longer than zero")
    dynamic = spec.get("throttle_key")
    if dynamic is not None:
        if not isinstance(dynamic, str | int | float) or str(dynamic) == "":
            raise ValidationError("throttle_key: Expected a non-empty string")
        return limit, period, f"key:{dynamic}"
    scope = spec.get("scope", "user")
    node = f"{run.template_id}/{index}" if run.template_id else "ad-hoc"
    if scope == "global":
        return limit, period, f"global:{node}"
    if scope != "user":
        raise ValidationError('scope: Expected "user" or "global" (or give a throttle_key)')
    user = (
        run.context.recipient or run.context.data.get("user_id") or run.context.data.get("userId")
    )
    if not isinstance(user, str) or not user:
        raise ValidationError("a user-scoped throttle needs the run's recipient or data.user_id")
    return limit, period, f"user:{node}:{user}"
