"""The ``add-to-batch`` step (courier-api §4.7): collect runs' data, release one run per batch.

The first run to reach a key's open batch opens it and becomes its carrier: it parks on the
step (a durable due time, min(last item + ``wait_period``, opened + ``max_wait_period``)).
Later runs add their ``data`` and end there (PROCESSED, ``{"batched_into": <carrier>}``).
When the batch is due, or ``max_items`` is reached (the filling run makes the carrier due at
once), the carrier continues past the step with ``data.batch = {"count", "items"}``, or one
such object per category with ``category_key``.

The join/open decision and the release are single store transactions; both are idempotent
per (run, step), so a step re-run after a crash finds its item and its batch again. Keys are
scoped to the workspace (a dynamic key may gather runs of several automations, as Courier's
dynamic scope does); use ``${...}`` in ``batch_key`` for per-user batches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from relaybox.domain import delays
from relaybox.domain.run import Run, RunStatus, StepStatus
from relaybox.domain.transitions import StepEndedRun, StepFailed, StepSucceeded, StepWaiting
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import StorageError, ValidationError
from relaybox.storage.base import BatchItem, Store

#: Courier's documented upper bound for ``max_wait_period`` (and the default without one).
MAX_WAIT_SECONDS = 60 * 86_400.0
RETAIN_TYPES = ("first", "last", "highest", "lowest")


@dataclass(frozen=True)
class _Spec:
    key: str
    wait: float
    max_wait: float
    max_items: int | None
    retain: str
    count: int
    sort_key: str | None
    category: str | None
    categorized: bool


class AddToBatchStep:
    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        try:
            spec = _parse(run.steps_def[index])
        except ValidationError as exc:
            return StepResult(StepFailed(index, exc.message, retryable=False))
        try:
            joined = await self._store.add_to_batch(
                run.workspace_id,
                spec.key,
                run.id,
                index,
                data=run.context.data,
                category=spec.category,
                now=now,
                wait_seconds=spec.wait,
                max_wait_seconds=spec.max_wait,
                max_items=spec.max_items,
            )
            if joined.carrier_run_id != run.id:
                into = {"batched_into": joined.carrier_run_id, "batch_id": joined.batch_id}
                ended = StepEndedRun(index, StepStatus.PROCESSED, RunStatus.PROCESSED, into)
                # The filling item made the carrier due now: wake this process's timer loop.
                return StepResult(ended, wake=joined.status == "full")
            released = await self._store.release_batch(run.workspace_id, joined.batch_id, now)
        except StorageError as exc:
            # A deadlock victim or a lost connection: the transaction left nothing behind.
            return StepResult(StepFailed(index, exc.message, retryable=True))
        if not released.released:
            waiting = StepWaiting(index, released.due_at, {"batch_id": joined.batch_id})
            return StepResult(waiting)
        batch = _batch(released.items, released.count, spec)
        context = replace(run.context, data={**run.context.data, "batch": batch})
        done = {"batch_id": joined.batch_id, "count": released.count}
        return StepResult(StepSucceeded(index, output=done), context=context)


def _parse(raw: dict[str, Any]) -> _Spec:
    key = raw.get("batch_key", raw.get("batch_id"))
    if not isinstance(key, str | int) or str(key) == "":
        raise ValidationError("batch_key: Expected a non-empty string")
    wait = _duration(raw, "wait_period", required=True)
    max_wait = min(_duration(raw, "max_wait_period", required=False), MAX_WAIT_SECONDS)
    max_items = raw.get("max_items")
    if max_items is not None and (
        isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1
    ):
        raise ValidationError("max_items: Expected a whole number of 1 or more")
    retain = raw.get("retain") or {}
    if not isinstance(retain, dict):
        raise ValidationError("retain: Expected object")
    kind = retain.get("type", "first")
    if kind not in RETAIN_TYPES:
        raise ValidationError(f"retain.type: Expected one of {', '.join(RETAIN_TYPES)}")
    count = retain.get("count", 10)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValidationError("retain.count: Expected a whole number of 1 or more")
    sort_key = retain.get("sort_key")
    if kind in ("highest", "lowest") and (not isinstance(sort_key, str) or not sort_key):
        raise ValidationError(f"retain.sort_key: Required for retain type {kind}")
    category = raw.get("category_key")
    categorized = category is not None
    return _Spec(
        key=str(key),
        wait=wait,
        max_wait=max_wait,
        max_items=max_items,
        retain=str(kind),
        count=count,
        sort_key=sort_key if isinstance(sort_key, str) else None,
        category=None if category is None else str(category),
        categorized=categorized,
    )


def _duration(raw: dict[str, Any], name: str, *, required: bool) -> float:
    value = raw.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name}: Required (an ISO 8601 duration such as PT1H)")
        return MAX_WAIT_SECONDS
    try:
        return delays.parse_duration(value)
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.message}") from None


def _batch(items: list[BatchItem], count: int, spec: _Spec) -> dict[str, Any]:
    if not spec.categorized:
        return {"count": count, "items": _retained(items, spec)}
    groups: dict[str, list[BatchItem]] = {}
    for item in items:
        groups.setdefault(item.category or "", []).append(item)
    return {
        name: {"count": len(group), "items": _retained(group, spec)}
        for name, group in groups.items()
    }


def _retained(items: list[BatchItem], spec: _Spec) -> list[dict[str, Any]]:
    """The ``retain.count`` items kept by ``retain.type`` (items arrive in ``seq`` order)."""
    if spec.retain == "first":
        return [i.data for i in items[: spec.count]]
    if spec.retain == "last":
        return [i.data for i in items[-spec.count :]]
    highest = spec.retain == "highest"

    def rank(item: BatchItem) -> tuple[int, float]:
        # Items without a numeric sort value rank after every item that has one.
        value = item.data.get(spec.sort_key or "")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return (1, 0.0)
        return (0, -float(value) if highest else float(value))

    return [i.data for i in sorted(items, key=rank)[: spec.count]]
