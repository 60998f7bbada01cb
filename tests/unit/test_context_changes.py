"""Per-step context changes: what the debugger shows a step did, recorded small."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaybox.clock import FrozenClock
from relaybox.domain import context_changes as cc
from relaybox.domain.run import Run, RunContext, RunStatus, StepState, new_steps
from relaybox.engine.engine import Engine
from relaybox.engine.steps.people import UpdateProfileStep
from relaybox.storage.sqlite import SqliteStore

NOW = 1_700_000_000.0


def test_changed_added_and_removed_keys_with_old_and_new_values() -> None:
    """Only differing keys appear: old/new for changes, no old when added, no new when removed."""
    before = RunContext(recipient="u", data={"a": 1, "same": True, "gone": "x"}, profile={})
    after = RunContext(
        recipient="u",
        data={"a": 2, "same": True, "added": [1]},
        profile={"email": "e@x"},
        refs={"w": {"status": "SENT"}},
    )
    assert cc.context_changes(before, after) == [
        {"path": "data.a", "old": 1, "new": 2},
        {"path": "data.added", "new": [1]},
        {"path": "data.gone", "old": "x"},
        {"path": "profile.email", "new": "e@x"},
        {"path": "refs.w", "new": {"status": "SENT"}},
    ]
    assert cc.context_changes(before, before) is None


def test_long_values_and_many_changes_are_cut_short() -> None:
    """A huge value becomes a truncated preview; past MAX_CHANGES the rest are only counted."""
    big = "x" * 1000
    changes = cc.context_changes(RunContext(), RunContext(data={"big": big}))
    assert changes is not None
    [only] = changes
    preview = only["new"]["truncated"]
    assert len(preview) == cc.MAX_VALUE_CHARS + 1
    assert preview.endswith("…")

    many = cc.context_changes(RunContext(), RunContext(data={f"k{i:02}": i for i in range(30)}))
    assert many is not None
    assert len(many) == cc.MAX_CHANGES + 1
    assert many[-1] == {"path": "…", "more": 30 - cc.MAX_CHANGES}


def test_step_state_round_trips_its_changes() -> None:
    """Changes survive the step's stored JSON (and are omitted when there are none)."""
    step = StepState(index=0, action="get-profile", changes=[{"path": "data.x", "new": 1}])
    assert StepState.from_json(step.to_json()) == step
    assert "x" not in StepState(index=0, action="delay").to_json()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "changes.db"))
    await s.open()
    yield s
    await s.close()


async def test_engine_records_what_an_update_profile_step_changed(store: SqliteStore) -> None:
    """After the run, the step carries the profile key it changed, with the old and new value."""
    await store.put_profile("ws", "u", {"plan": "free"}, NOW)
    steps = ({"action": "update-profile", "profile": {"plan": "pro"}, "merge": "overwrite"},)
    run = Run(
        id="run_changes",
        workspace_id="ws",
        steps_def=steps,
        steps=new_steps(steps),
        context=RunContext(recipient="u", profile={"plan": "free"}),
        status=RunStatus.PROCESSING,
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW + 60,
        lease_token=1,
    )
    created = await store.create_run(run, lease_owner="w", merge_profile=False)
    assert created.run is not None
    engine = Engine(
        store=store,
        clock=FrozenClock(NOW),
        executors={"update-profile": UpdateProfileStep(store=store)},
        owner="w",
    )
    done = await engine.process(created.run)
    assert done.status is RunStatus.PROCESSED
    stored = await store.get_run("ws", "run_changes")
    assert stored is not None
    assert stored.steps[0].changes == [{"path": "profile.plan", "old": "free", "new": "pro"}]
