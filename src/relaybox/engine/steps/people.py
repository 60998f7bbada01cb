"""The ``update-profile``, ``get-profile`` and ``subscribe`` steps (courier-api.md §4.4).

Each is one store write or read with no external effect, so none needs a checkpoint: a
retry after a crash repeats the same merge or upsert and lands on the same state.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relaybox.domain.merge import STRATEGIES, merge
from relaybox.domain.run import Run, RunContext
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import StorageError
from relaybox.storage.base import Store, Subscription


def _failed(index: int, error: str) -> StepResult:
    return StepResult(StepFailed(index, error, retryable=False))


def _storage_failed(index: int, exc: StorageError) -> StepResult:
    # The database may recover; let the retry policy try the step again.
    return StepResult(StepFailed(index, exc.message, retryable=True))


def _run_recipient(run: Run) -> str | None:
    """The run's recipient; like send steps, fall back to ``data.user_id`` / ``data.userId``
    for invokes that carry the user in data only."""
    ctx = run.context
    value = ctx.recipient or ctx.data.get("user_id") or ctx.data.get("userId")
    return value if isinstance(value, str) and value else None


def _user(spec: dict[str, Any], field: str, run: Run) -> str | None:
    value = spec.get(field) or _run_recipient(run)
    return value if isinstance(value, str) and value else None


class UpdateProfileStep:
    """Merge ``profile`` into the stored profile of ``recipient_id`` (default: the run's)."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        user_id = _user(spec, "recipient_id", run)
        if user_id is None:
            return _failed(index, "update-profile needs recipient_id (or a run recipient)")
        values = spec.get("profile")
        if not isinstance(values, dict):
            return _failed(index, "update-profile: profile must be an object")
        strategy = spec.get("merge") or "replace"
        if strategy not in STRATEGIES:
            return _failed(index, f'update-profile: unknown merge "{strategy}"')
        try:
            stored = await self._store.update_profile(
                run.workspace_id, user_id, lambda cur: merge(cur or {}, values, strategy), now
            )
        except StorageError as exc:
            return _storage_failed(index, exc)
        output = {"recipient_id": user_id, "merge": strategy}
        context = None
        if user_id == _run_recipient(run):
            # Later steps (a send) address this recipient with the profile as now stored.
            context = replace(run.context, profile=dict(stored or {}))
        return StepResult(StepSucceeded(index, output=output), context=context)


class GetProfileStep:
    """Bring a stored profile into the run: ``path`` "profile" (default) or ``data.<field>``."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        user_id = _user(spec, "user_id", run)
        if user_id is None:
            return _failed(index, "get-profile needs user_id (or a run recipient)")
        path = spec.get("path") or "profile"
        strategy = spec.get("merge_strategy") or "soft-merge"
        if strategy not in STRATEGIES:
            return _failed(index, f'get-profile: unknown merge_strategy "{strategy}"')
        if not isinstance(path, str) or not (path == "profile" or _data_field(path)):
            return _failed(index, 'get-profile: path must be "profile" or "data.<field>"')
        try:
            stored = await self._store.get_profile(run.workspace_id, user_id)
        except StorageError as exc:
            return _storage_failed(index, exc)
        output: dict[str, Any] = {"user_id": user_id, "path": path, "found": stored is not None}
        if stored is None:
            # Nothing to bring in; the run continues with its context as it was.
            return StepResult(StepSucceeded(index, output=output))
        try:
            context = _merged_into(run.context, path, stored, strategy)
        except ValueError as exc:
            return _failed(index, f"get-profile: {exc}")
        return StepResult(StepSucceeded(index, output=output), context=context)


def _data_field(path: str) -> bool:
    return path.startswith("data.") and all(path.split(".")[1:])


def _merged_into(ctx: RunContext, path: str, stored: dict[str, Any], strategy: str) -> RunContext:
    if path == "profile":
        return replace(ctx, profile=merge(ctx.profile, stored, strategy))
    *parents, leaf = path.split(".")[1:]
    data = dict(ctx.data)
    node = data
    for part in parents:
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ValueError(f"data.{part} is not an object")
        node[part] = dict(child)
        node = node[part]
    target = node.get(leaf)
    if target is not None and not isinstance(target, dict):
        raise ValueError(f"{path} is not an object")
    node[leaf] = merge(target or {}, stored, strategy)
    return replace(ctx, data=data)


class SubscribeStep:
    """Subscribe ``recipient_id`` (default: the run's) to ``list_id``, creating the list."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        list_id = spec.get("list_id")
        if not isinstance(list_id, str) or not list_id:
            return _failed(index, "subscribe needs list_id")
        user_id = _user(spec, "recipient_id", run)
        if user_id is None:
            return _failed(index, "subscribe needs recipient_id (or a run recipient)")
        subscription = spec.get("subscription") or {}
        prefs = subscription.get("preferences") if isinstance(subscription, dict) else None
        if prefs is not None and not isinstance(prefs, dict):
            return _failed(index, "subscribe: subscription.preferences must be an object")
        sub = Subscription(run.workspace_id, list_id, user_id, now, prefs)
        try:
            await self._store.subscribe([sub], update_existing=True)
        except StorageError as exc:
            return _storage_failed(index, exc)
        output = {"list_id": list_id, "recipient_id": user_id}
        return StepResult(StepSucceeded(index, output=output))
