"""The people step executors against a real SQLite store: outcomes, context, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from relaybox.domain.run import Run, RunContext, RunStatus, new_steps
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.steps.people import GetProfileStep, SubscribeStep, UpdateProfileStep
from relaybox.storage.base import Message, MessageEvent
from relaybox.storage.sqlite import SqliteStore

NOW = 1_700_000_000.0
WS = "ws"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "people.db"))
    await s.open()
    yield s
    await s.close()


def run_of(step: dict[str, Any], **context: Any) -> Run:
    steps_def = (step,)
    return Run(
        id="run_1",
        workspace_id=WS,
        steps_def=steps_def,
        steps=new_steps(steps_def),
        context=RunContext(**context),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
    )


async def no_checkpoint(
    run: Run, messages: Sequence[Message], events: Sequence[MessageEvent]
) -> None:
    raise AssertionError("people steps never checkpoint")


async def test_update_profile_twice_lands_on_the_same_state(store: SqliteStore) -> None:
    """A retried update-profile (soft-merge) is idempotent and refreshes the run's profile."""
    await store.put_profile(WS, "u", {"a": 1}, NOW)
    step = UpdateProfileStep(store=store)
    run = run_of(
        {"action": "update-profile", "profile": {"a": 2, "b": 3}, "merge": "soft-merge"},
        recipient="u",
    )
    for _ in range(2):
        result = await step.execute(run, 0, NOW, no_checkpoint)
        assert isinstance(result.event, StepSucceeded)
        assert result.context is not None
        assert result.context.profile == {"a": 1, "b": 3}
    assert await store.get_profile(WS, "u") == {"a": 1, "b": 3}


async def test_update_profile_of_another_user_leaves_the_run_context(store: SqliteStore) -> None:
    """Updating recipient_id's profile does not touch the run recipient's profile in context."""
    run = run_of(
        {"action": "update-profile", "recipient_id": "v", "profile": {"x": 1}}, recipient="u"
    )
    result = await UpdateProfileStep(store=store).execute(run, 0, NOW, no_checkpoint)
    assert isinstance(result.event, StepSucceeded)
    assert result.context is None
    assert await store.get_profile(WS, "v") == {"x": 1}


@pytest.mark.parametrize(
    ("step", "context", "needle"),
    [
        ({"action": "update-profile", "profile": {"a": 1}}, {}, "recipient_id"),
        (
            {"action": "update-profile", "profile": {"a": 1}, "merge": "deep"},
            {"recipient": "u"},
            "merge",
        ),
        ({"action": "update-profile", "profile": [1]}, {"recipient": "u"}, "object"),
        ({"action": "get-profile", "user_id": "u", "path": "refs.x"}, {}, "path"),
        (
            {"action": "get-profile", "user_id": "u", "path": "data.list"},
            {"data": {"list": [1]}},
            "not an object",
        ),
        ({"action": "subscribe", "recipient_id": "u"}, {}, "list_id"),
        ({"action": "subscribe", "list_id": "l"}, {}, "recipient_id"),
    ],
)
async def test_bad_step_fields_fail_without_retry(
    store: SqliteStore, step: dict[str, Any], context: dict[str, Any], needle: str
) -> None:
    """Bad or missing fields end the step with a clear, non-retryable error."""
    await store.put_profile(WS, "u", {"email": "u@example.test"}, NOW)
    executors = {
        "update-profile": UpdateProfileStep(store=store),
        "get-profile": GetProfileStep(store=store),
        "subscribe": SubscribeStep(store=store),
    }
    result = await executors[step["action"]].execute(run_of(step, **context), 0, NOW, no_checkpoint)
    assert isinstance(result.event, StepFailed)
    assert not result.event.retryable
    assert needle in result.event.error


async def test_get_profile_into_a_nested_data_field(store: SqliteStore) -> None:
    """path data.a.b creates the intermediate objects and merges by merge_strategy."""
    await store.put_profile(WS, "m", {"name": "Grace", "email": "g@example.test"}, NOW)
    step = {
        "action": "get-profile",
        "user_id": "m",
        "path": "data.a.b",
        "merge_strategy": "soft-merge",
    }
    run = run_of(step, data={"a": {"b": {"name": "kept"}, "c": 1}})
    result = await GetProfileStep(store=store).execute(run, 0, NOW, no_checkpoint)
    assert result.context is not None
    assert result.context.data == {"a": {"b": {"name": "kept", "email": "g@example.test"}, "c": 1}}
    assert run.context.data == {"a": {"b": {"name": "kept"}, "c": 1}}


async def test_update_profile_finds_the_recipient_in_data(store: SqliteStore) -> None:
    """Without a run recipient, data.user_id is the recipient (as for send steps)."""
    run = run_of({"action": "update-profile", "profile": {"a": 1}}, data={"user_id": "d"})
    result = await UpdateProfileStep(store=store).execute(run, 0, NOW, no_checkpoint)
    assert isinstance(result.event, StepSucceeded)
    assert result.context is not None
    assert result.context.profile == {"a": 1}
    assert await store.get_profile(WS, "d") == {"a": 1}
