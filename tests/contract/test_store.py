"""The Store contract: every backend must pass this suite (see conftest.BACKENDS)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Protocol

import pytest

from relaybox.domain.run import Run, RunContext, RunStatus, StepStatus, new_steps
from relaybox.errors import ConflictError, RelayboxError, StaleLease, ValidationError
from relaybox.storage.base import (
    IdempotencyWrite,
    Message,
    MessageEvent,
    Resource,
    RunFilter,
    Store,
    StoredResponse,
)

NOW = 1_700_000_000.0
WS = "ws_alpha"
OTHER_WS = "ws_beta"
LEASE = 30.0


class Harness(Protocol):
    """The ``harness`` fixture (conftest.StoreHarness): opens and closes stores on one location."""

    async def open(self) -> Store: ...

    async def close(self, store: Store) -> None: ...


SEND = {"action": "send", "template": "welcome"}
DELAY = {"action": "delay", "duration": "1h"}


def make_run(
    run_id: str,
    *,
    ws: str = WS,
    created_at: float = NOW,
    status: RunStatus = RunStatus.PROCESSING,
    due_at: float | None = NOW,
    steps_def: tuple[dict[str, Any], ...] = (SEND,),
    token: str | None = None,
    template_id: str | None = None,
    recipient: str | None = None,
    profile: dict[str, Any] | None = None,
    lease_token: int = 0,
) -> Run:
    """A run as the invoke service builds it (finished runs get ``due_at=None``)."""
    return Run(
        id=run_id,
        workspace_id=ws,
        steps_def=steps_def,
        steps=new_steps(steps_def),
        context=RunContext(
            recipient=recipient, data={"order": 42}, profile=profile or {}, template="welcome"
        ),
        status=status,
        created_at=created_at,
        updated_at=created_at,
        template_id=template_id,
        source=f"invoke/{template_id or 'ad-hoc'}",
        cancelation_token=token,
        due_at=due_at,
        lease_token=lease_token,
    )


def waiting_run(run_id: str, *, ws: str = WS, token: str | None = None) -> Run:
    """A run sleeping in a delay step, released until an hour from now."""
    run = make_run(run_id, ws=ws, steps_def=(DELAY, SEND), token=token, due_at=NOW + 3600)
    step = replace(run.steps[0], status=StepStatus.WAITING, started_at=NOW, wake_at=NOW + 3600)
    return replace(run.with_step(step), status=RunStatus.WAITING)


def finished_run(run_id: str, *, ws: str = WS, token: str | None = None) -> Run:
    run = make_run(run_id, ws=ws, token=token, status=RunStatus.PROCESSED, due_at=None)
    step = replace(run.steps[0], status=StepStatus.PROCESSED, started_at=NOW, updated_at=NOW)
    return replace(run.with_step(step), cursor=1)


async def create(store: Store, run: Run, *, lease_owner: str | None = None) -> Run:
    created = await store.create_run(run, lease_owner=lease_owner, merge_profile=False)
    assert created.run is not None
    assert created.replay is None
    return created.run


def make_message(message_id: str, *, ws: str = WS, status: str = "ENQUEUED", **kw: Any) -> Message:
    return Message(
        workspace_id=ws,
        id=message_id,
        status=status,
        enqueued_at=NOW,
        updated_at=NOW,
        recipient="user_1",
        notification="welcome",
        run_id=kw.pop("run_id", None),
        idempotency_key=f"{message_id}/key",
        content={"email": {"subject": "Hi", "text": "Hello", "html": None}},
        providers=[{"provider": "smtp", "ts": NOW}],
        **kw,
    )


def idem(
    key: str, *, expires_at: float = NOW + 3600, body: bytes = b'{"runId":"x"}'
) -> IdempotencyWrite:
    return IdempotencyWrite(
        key=key, fingerprint=f"fp-{key}", status_code=200, body=body, expires_at=expires_at
    )


def resource(
    rid: str,
    *,
    ws: str = WS,
    kind: str = "notification",
    alias: str | None = None,
    draft: dict[str, Any] | None = None,
) -> Resource:
    return Resource(
        workspace_id=ws,
        kind=kind,
        id=rid,
        created_at=NOW,
        updated_at=NOW,
        alias=alias,
        name=f"name of {rid}",
        draft=draft if draft is not None else {"content": {"title": rid, "body": "b"}},
    )


# --------------------------------------------------------------------------------------------
# Workspaces and API keys
# --------------------------------------------------------------------------------------------


async def test_api_key_resolves_to_its_workspace(store: Store) -> None:
    """A stored key hash maps to its workspace; an unknown hash maps to None."""
    await store.ensure_workspace(WS, NOW)
    await store.ensure_workspace(WS, NOW + 1)  # idempotent
    await store.add_api_key(WS, "hash-a", "rb_live_a", NOW)
    await store.add_api_key(OTHER_WS, "hash-b", "rb_live_b", NOW)  # creates the workspace
    assert await store.workspace_for_key("hash-a") == WS
    assert await store.workspace_for_key("hash-b") == OTHER_WS
    assert await store.workspace_for_key("hash-unknown") is None


async def test_count_api_keys_counts_every_workspace(store: Store) -> None:
    """count_api_keys is zero on a fresh store and counts keys across workspaces."""
    assert await store.count_api_keys() == 0
    await store.add_api_key(WS, "h1", "p1", NOW)
    await store.add_api_key(WS, "h2", "p2", NOW)
    await store.add_api_key(OTHER_WS, "h3", "p3", NOW)
    assert await store.count_api_keys() == 3


# --------------------------------------------------------------------------------------------
# Versioned resources
# --------------------------------------------------------------------------------------------


async def test_put_resource_then_get_by_id_and_alias(store: Store) -> None:
    """A resource reads back equal by id and by alias, only in its workspace and kind."""
    saved = await store.put_resource(resource("nt_1", alias="welcome"))
    assert await store.get_resource(WS, "notification", "nt_1") == saved
    assert await store.get_resource(WS, "notification", "welcome") == saved
    assert await store.get_resource(OTHER_WS, "notification", "nt_1") is None
    assert await store.get_resource(WS, "provider", "nt_1") is None
    assert await store.get_resource(WS, "notification", "missing") is None


async def test_put_resource_replaces_by_id(store: Store) -> None:
    """Putting the same (workspace, kind, id) again replaces it, keeping its own alias."""
    await store.put_resource(resource("nt_1", alias="welcome"))
    updated = replace(resource("nt_1", alias="welcome"), name="renamed", updated_at=NOW + 5)
    await store.put_resource(updated)
    assert await store.get_resource(WS, "notification", "welcome") == updated


async def test_id_wins_over_another_objects_alias(store: Store) -> None:
    """When a key is one object's id and another's alias, the id match is returned."""
    await store.put_resource(resource("nt_a", alias="nt_b"))
    await store.put_resource(resource("nt_b"))
    found = await store.get_resource(WS, "notification", "nt_b")
    assert found is not None
    assert found.id == "nt_b"


async def test_alias_conflict_raises_and_keeps_the_owner(store: Store) -> None:
    """An alias already used by another object of the kind raises ConflictError; nothing changes."""
    owner = await store.put_resource(resource("nt_1", alias="welcome"))
    with pytest.raises(ConflictError):
        await store.put_resource(resource("nt_2", alias="welcome"))
    assert await store.get_resource(WS, "notification", "nt_1") == owner
    assert await store.get_resource(WS, "notification", "welcome") == owner
    assert await store.get_resource(WS, "notification", "nt_2") is None


async def test_same_alias_allowed_across_kinds_and_workspaces(store: Store) -> None:
    """Aliases are unique per (workspace, kind) only."""
    await store.put_resource(resource("nt_1", alias="shared"))
    await store.put_resource(resource("prv_1", kind="provider", alias="shared"))
    await store.put_resource(resource("nt_1", ws=OTHER_WS, alias="shared"))
    for ws, kind, rid in [(WS, "notification", "nt_1"), (WS, "provider", "prv_1")]:
        found = await store.get_resource(ws, kind, "shared")
        assert found is not None
        assert found.id == rid
    assert await store.get_resource(OTHER_WS, "notification", "shared") is not None


async def test_list_resources_pages_by_id(store: Store) -> None:
    """list_resources orders by id and continues after the last id of the previous page."""
    for rid in ["nt_c", "nt_a", "nt_e", "nt_b", "nt_d"]:
        await store.put_resource(resource(rid))
    await store.put_resource(resource("prv_x", kind="provider"))
    await store.put_resource(resource("nt_z", ws=OTHER_WS))
    seen: list[list[str]] = []
    after: str | None = None
    while True:
        page = await store.list_resources(WS, "notification", after=after, limit=2)
        seen.append([r.id for r in page])
        if len(page) < 2:
            break
        after = page[-1].id
    assert seen == [["nt_a", "nt_b"], ["nt_c", "nt_d"], ["nt_e"]]
    assert await store.list_resources(WS, "notification", after="nt_e", limit=10) == []


async def test_delete_resource(store: Store) -> None:
    """delete_resource removes the object (True) and is False when there is nothing to delete."""
    await store.put_resource(resource("nt_1", alias="welcome"))
    await store.put_resource(resource("nt_1", ws=OTHER_WS))
    assert await store.delete_resource(WS, "notification", "nt_1") is True
    assert await store.get_resource(WS, "notification", "nt_1") is None
    assert await store.get_resource(WS, "notification", "welcome") is None
    assert await store.delete_resource(WS, "notification", "nt_1") is False
    assert await store.get_resource(OTHER_WS, "notification", "nt_1") is not None
    # The alias is free again.
    await store.put_resource(resource("nt_2", alias="welcome"))


async def test_publish_increments_version_and_keeps_draft(store: Store) -> None:
    """Each publish freezes the current draft as the next version; the draft stays editable."""
    await store.put_resource(resource("nt_1", draft={"v": 1}))
    first = await store.publish_resource(WS, "notification", "nt_1", NOW + 10)
    assert first is not None
    assert (first.published, first.published_version, first.published_at) == ({"v": 1}, 1, NOW + 10)
    assert first.draft == {"v": 1}
    assert await store.get_resource(WS, "notification", "nt_1") == first

    await store.put_resource(replace(first, draft={"v": 2}, updated_at=NOW + 20))
    edited = await store.get_resource(WS, "notification", "nt_1")
    assert edited is not None
    assert (edited.draft, edited.published, edited.published_version) == ({"v": 2}, {"v": 1}, 1)

    second = await store.publish_resource(WS, "notification", "nt_1", NOW + 30)
    assert second is not None
    assert (second.published, second.published_version, second.published_at) == (
        {"v": 2},
        2,
        NOW + 30,
    )
    assert second.draft == {"v": 2}
    assert await store.get_resource(WS, "notification", "nt_1") == second


async def test_publish_unknown_resource_returns_none(store: Store) -> None:
    """Publishing an id that does not exist (in this workspace) returns None."""
    await store.put_resource(resource("nt_1", ws=OTHER_WS))
    assert await store.publish_resource(WS, "notification", "nt_1", NOW) is None
    assert await store.publish_resource(WS, "notification", "nt_missing", NOW) is None


async def test_publish_without_draft_changes_nothing(store: Store) -> None:
    """A resource with no draft (e.g. a provider) publishes as itself, version unchanged."""
    provider = replace(
        resource("prv_1", kind="provider"),
        draft=None,
        published={"provider": "smtp"},
        published_version=1,
        published_at=NOW,
    )
    await store.put_resource(provider)
    assert await store.publish_resource(WS, "provider", "prv_1", NOW + 5) == provider


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


async def test_profiles_put_get_replace_and_scope(store: Store) -> None:
    """put_profile replaces the whole profile; profiles are scoped by workspace."""
    assert await store.get_profile(WS, "user_1") is None
    await store.put_profile(WS, "user_1", {"email": "a@example.com", "name": "Ada"}, NOW)
    assert await store.get_profile(WS, "user_1") == {"email": "a@example.com", "name": "Ada"}
    await store.put_profile(WS, "user_1", {"email": "b@example.com"}, NOW + 1)
    assert await store.get_profile(WS, "user_1") == {"email": "b@example.com"}
    assert await store.get_profile(OTHER_WS, "user_1") is None


# --------------------------------------------------------------------------------------------
# create_run / get_run
# --------------------------------------------------------------------------------------------


async def test_create_run_round_trips(store: Store) -> None:
    """A created run reads back equal to what was stored, only from its own workspace."""
    run = waiting_run("run_1", token="tok")
    run = replace(run, template_id="auto_1", error=None, lease_token=3)
    created = await create(store, run)
    assert created == run
    assert await store.get_run(WS, "run_1") == run
    assert await store.get_run(OTHER_WS, "run_1") is None
    assert await store.get_run(WS, "run_missing") is None


async def test_create_run_with_lease_owner_is_already_claimed(store: Store) -> None:
    """A run created with a lease owner is not claimable by others until released."""
    run = make_run("run_1", due_at=NOW + LEASE, lease_token=1)
    await create(store, run, lease_owner="w1")
    assert await store.claim_due_runs("w2", NOW, limit=10, lease_seconds=LEASE) == []
    assert await store.release_leases(NOW + 1, "w2") == 0
    assert await store.release_leases(NOW + 1, "w1") == 1
    claimed = await store.claim_due_runs("w2", NOW + 1, limit=10, lease_seconds=LEASE)
    assert [r.id for r in claimed] == ["run_1"]
    assert claimed[0].lease_token == 2


async def test_create_run_without_lease_owner_is_claimable(store: Store) -> None:
    """A run created without an owner is claimable once due and owned by nobody before that."""
    await create(store, make_run("run_1", due_at=NOW))
    assert await store.release_leases(NOW) == 0
    claimed = await store.claim_due_runs("w1", NOW, limit=10, lease_seconds=LEASE)
    assert [r.id for r in claimed] == ["run_1"]


async def test_create_run_merges_profile(store: Store) -> None:
    """merge_profile merges invoke-time values over the stored profile, stores and returns it."""
    await store.put_profile(WS, "user_1", {"email": "old@example.com", "name": "Ada"}, NOW - 10)
    run = make_run("run_1", recipient="user_1", profile={"email": "new@example.com", "tier": 2})
    created = await store.create_run(run, lease_owner=None, merge_profile=True)
    merged = {"email": "new@example.com", "name": "Ada", "tier": 2}
    assert created.run is not None
    assert created.run.context.profile == merged
    assert created.run == replace(run, context=replace(run.context, profile=merged))
    assert await store.get_profile(WS, "user_1") == merged
    stored = await store.get_run(WS, "run_1")
    assert stored is not None
    assert stored.context.profile == merged


async def test_create_run_merge_creates_missing_profile(store: Store) -> None:
    """Merging into a recipient with no stored profile stores the invoke-time profile."""
    run = make_run("run_1", recipient="user_new", profile={"email": "n@example.com"})
    created = await store.create_run(run, lease_owner=None, merge_profile=True)
    assert created.run is not None
    assert created.run.context.profile == {"email": "n@example.com"}
    assert await store.get_profile(WS, "user_new") == {"email": "n@example.com"}
    assert await store.get_profile(OTHER_WS, "user_new") is None


async def test_create_run_without_merge_leaves_profile_alone(store: Store) -> None:
    """Without merge_profile the stored profile and the run's context are untouched."""
    await store.put_profile(WS, "user_1", {"name": "Ada"}, NOW - 10)
    run = make_run("run_1", recipient="user_1", profile={"email": "x@example.com"})
    created = await store.create_run(run, lease_owner=None, merge_profile=False)
    assert created.run == run
    assert await store.get_profile(WS, "user_1") == {"name": "Ada"}


async def test_create_run_idempotent_replay(store: Store) -> None:
    """A second create with the same unexpired key replays the saved response, creating nothing."""
    write = idem("key-1", body=b'{"runId":"run_1"}')
    first = await store.create_run(
        make_run("run_1"), lease_owner=None, merge_profile=False, idempotency=write
    )
    assert first.run is not None
    assert first.replay is None
    second = await store.create_run(
        make_run("run_2", created_at=NOW + 5),
        lease_owner=None,
        merge_profile=False,
        idempotency=replace(write, body=b'{"runId":"run_2"}', fingerprint="other"),
    )
    assert second.run is None
    assert second.replay == StoredResponse(
        status_code=200, body=b'{"runId":"run_1"}', fingerprint="fp-key-1", expires_at=NOW + 3600
    )
    assert await store.get_run(WS, "run_2") is None
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=10)
    assert [r.id for r in page.runs] == ["run_1"]
    assert await store.get_response(WS, "key-1", NOW + 5) == second.replay


async def test_create_run_does_not_replay_expired_key(store: Store) -> None:
    """A key whose response expired before the new run's creation time does not replay."""
    await store.create_run(
        make_run("run_1"),
        lease_owner=None,
        merge_profile=False,
        idempotency=idem("key-1", expires_at=NOW + 10),
    )
    second = await store.create_run(
        make_run("run_2", created_at=NOW + 20),
        lease_owner=None,
        merge_profile=False,
        idempotency=idem("key-1", expires_at=NOW + 100, body=b"second"),
    )
    assert second.replay is None
    assert second.run is not None
    assert await store.get_run(WS, "run_2") is not None
    saved = await store.get_response(WS, "key-1", NOW + 20)
    assert saved is not None
    assert saved.body == b"second"


async def test_concurrent_creates_with_one_key_create_one_run(store: Store) -> None:
    """Creates racing on one key (PostgreSQL has several writers) make exactly one run."""
    results = await asyncio.gather(
        *(
            store.create_run(
                make_run(f"run_{i}"),
                lease_owner=None,
                merge_profile=False,
                idempotency=idem("race", body=f'{{"runId":"run_{i}"}}'.encode()),
            )
            for i in range(8)
        )
    )
    created = [r.run.id for r in results if r.run is not None]
    assert len(created) == 1
    assert all(r.replay is not None for r in results if r.run is None)
    assert {r.replay.body for r in results if r.replay is not None} <= {
        f'{{"runId":"{created[0]}"}}'.encode()
    }
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=10)
    assert [r.id for r in page.runs] == created


async def test_create_run_idempotency_is_per_workspace(store: Store) -> None:
    """The same idempotency key in another workspace does not replay."""
    await store.create_run(
        make_run("run_1"), lease_owner=None, merge_profile=False, idempotency=idem("k")
    )
    other = await store.create_run(
        make_run("run_2", ws=OTHER_WS), lease_owner=None, merge_profile=False, idempotency=idem("k")
    )
    assert other.replay is None
    assert other.run is not None


async def test_replayed_create_does_not_merge_profile(store: Store) -> None:
    """A replayed create writes nothing at all, not even the profile merge."""
    await store.create_run(
        make_run("run_1"), lease_owner=None, merge_profile=False, idempotency=idem("k")
    )
    replayed = await store.create_run(
        make_run("run_2", recipient="user_1", profile={"email": "x@example.com"}),
        lease_owner=None,
        merge_profile=True,
        idempotency=idem("k"),
    )
    assert replayed.replay is not None
    assert await store.get_profile(WS, "user_1") is None


# --------------------------------------------------------------------------------------------
# list_runs
# --------------------------------------------------------------------------------------------


async def _seed_listing(store: Store) -> list[Run]:
    runs = [
        make_run("run_0", created_at=NOW + 0, template_id="auto_a"),
        replace(finished_run("run_1"), created_at=NOW + 1, template_id="auto_b"),
        make_run("run_2", created_at=NOW + 2, template_id="auto_a"),
        replace(waiting_run("run_3"), created_at=NOW + 3, template_id=None),
        replace(finished_run("run_4"), created_at=NOW + 4, template_id="auto_a"),
    ]
    for run in runs:
        await create(store, run)
    await create(store, make_run("run_other", ws=OTHER_WS, created_at=NOW + 2))
    return runs


async def _all_pages(store: Store, flt: RunFilter, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_runs(WS, flt, cursor=cursor, limit=limit)
        pages.append([r.id for r in page.runs])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 20, "cursor paging does not terminate"


async def test_list_runs_newest_first(store: Store) -> None:
    """list_runs returns the workspace's runs newest first, as stored."""
    runs = await _seed_listing(store)
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=10)
    assert page.runs == list(reversed(runs))
    assert page.next_cursor is None


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RunFilter(statuses=("PROCESSED",)), ["run_4", "run_1"]),
        (RunFilter(statuses=("PROCESSING", "WAITING")), ["run_3", "run_2", "run_0"]),
        (RunFilter(template_ids=("auto_a",)), ["run_4", "run_2", "run_0"]),
        (RunFilter(template_ids=("auto_b", "missing")), ["run_1"]),
        (RunFilter(start=NOW + 2), ["run_4", "run_3", "run_2"]),
        (RunFilter(end=NOW + 1), ["run_1", "run_0"]),
        (RunFilter(start=NOW + 1, end=NOW + 3), ["run_3", "run_2", "run_1"]),
        (
            RunFilter(statuses=("PROCESSING",), template_ids=("auto_a",), start=NOW + 1),
            ["run_2"],
        ),
        (RunFilter(statuses=("CANCELED",)), []),
    ],
)
async def test_list_runs_filters(store: Store, flt: RunFilter, expected: list[str]) -> None:
    """Status, template, start and end (inclusive) filters combine with AND."""
    await _seed_listing(store)
    page = await store.list_runs(WS, flt, cursor=None, limit=10)
    assert [r.id for r in page.runs] == expected


async def test_list_runs_cursor_pages_to_the_end(store: Store) -> None:
    """Following next_cursor visits every run once, newest first, and ends with no cursor."""
    await _seed_listing(store)
    assert await _all_pages(store, RunFilter(), 2) == [
        ["run_4", "run_3"],
        ["run_2", "run_1"],
        ["run_0"],
    ]
    assert await _all_pages(store, RunFilter(template_ids=("auto_a",)), 1) == [
        ["run_4"],
        ["run_2"],
        ["run_0"],
    ]


async def test_list_runs_exact_last_page_has_no_cursor(store: Store) -> None:
    """When the runs fill the last page exactly there is no further cursor."""
    await _seed_listing(store)
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=5)
    assert len(page.runs) == 5
    assert page.next_cursor is None


async def test_list_runs_paging_with_equal_creation_times(store: Store) -> None:
    """Runs created in the same instant are neither skipped nor repeated across pages."""
    for i in range(7):
        await create(store, make_run(f"run_{i}", created_at=NOW))
    pages = await _all_pages(store, RunFilter(), 3)
    flat = [rid for page in pages for rid in page]
    assert sorted(flat) == [f"run_{i}" for i in range(7)]
    assert len(flat) == len(set(flat))


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", "WzEsMiwzXQ", "WyJ4IiwxXQ", "%%%"])
async def test_list_runs_rejects_foreign_cursor(store: Store, cursor: str) -> None:
    """A cursor the store did not issue raises ValidationError."""
    with pytest.raises(ValidationError):
        await store.list_runs(WS, RunFilter(), cursor=cursor, limit=10)


# --------------------------------------------------------------------------------------------
# claim_due_runs / next_due_at
# --------------------------------------------------------------------------------------------


async def test_claim_due_runs_claims_only_due_runs(store: Store) -> None:
    """Only active runs whose due time has passed are claimed; each claim bumps lease_token."""
    await create(store, make_run("past", due_at=NOW - 5, lease_token=4))
    await create(store, make_run("now", due_at=NOW))
    await create(store, make_run("future", due_at=NOW + 1))
    await create(store, finished_run("done"))
    await create(store, make_run("elsewhere", ws=OTHER_WS, due_at=NOW - 1))
    claimed = await store.claim_due_runs("w1", NOW, limit=10, lease_seconds=LEASE)
    by_id = {r.id: r for r in claimed}
    assert set(by_id) == {"past", "now", "elsewhere"}
    assert by_id["past"].lease_token == 5
    assert by_id["now"].lease_token == 1
    assert all(r.due_at == NOW + LEASE for r in claimed)
    stored = await store.get_run(WS, "past")
    assert stored is not None
    assert (stored.lease_token, stored.due_at) == (5, NOW + LEASE)


async def test_claim_is_exclusive_until_the_lease_expires(store: Store) -> None:
    """An immediate second claim gets nothing; after lease expiry another owner can claim."""
    await create(store, make_run("run_1", due_at=NOW))
    first = await store.claim_due_runs("w1", NOW, limit=10, lease_seconds=LEASE)
    assert [r.lease_token for r in first] == [1]
    assert await store.claim_due_runs("w2", NOW, limit=10, lease_seconds=LEASE) == []
    assert await store.claim_due_runs("w2", NOW + LEASE - 1, limit=10, lease_seconds=LEASE) == []
    second = await store.claim_due_runs("w2", NOW + LEASE, limit=10, lease_seconds=LEASE)
    assert [(r.id, r.lease_token) for r in second] == [("run_1", 2)]
    # The first holder lost its claim.
    with pytest.raises(StaleLease):
        await store.commit_run(replace(first[0], status=RunStatus.PROCESSED, due_at=None))


async def test_claim_respects_limit_and_takes_earliest_first(store: Store) -> None:
    """claim_due_runs takes at most ``limit`` runs, the most overdue first."""
    for i in range(5):
        await create(store, make_run(f"run_{i}", due_at=NOW - i))
    claimed = await store.claim_due_runs("w1", NOW, limit=2, lease_seconds=LEASE)
    assert {r.id for r in claimed} == {"run_4", "run_3"}
    rest = await store.claim_due_runs("w2", NOW, limit=10, lease_seconds=LEASE)
    assert {r.id for r in rest} == {"run_0", "run_1", "run_2"}


async def test_next_due_at(store: Store) -> None:
    """next_due_at is the earliest due time of any active run, or None."""
    assert await store.next_due_at() is None
    await create(store, finished_run("done"))
    assert await store.next_due_at() is None
    await create(store, make_run("a", due_at=NOW + 50))
    await create(store, make_run("b", ws=OTHER_WS, due_at=NOW + 20))
    await create(store, waiting_run("c"))
    assert await store.next_due_at() == NOW + 20
    await store.claim_due_runs("w1", NOW + 20, limit=10, lease_seconds=LEASE)
    assert await store.next_due_at() == NOW + 50


# --------------------------------------------------------------------------------------------
# commit_run
# --------------------------------------------------------------------------------------------


async def _claim_one(store: Store, run: Run, owner: str = "w1", now: float = NOW) -> Run:
    await create(store, run)
    claimed = await store.claim_due_runs(owner, now, limit=10, lease_seconds=LEASE)
    assert [r.id for r in claimed] == [run.id]
    return claimed[0]


async def test_commit_run_persists_state(store: Store) -> None:
    """A commit under the current lease stores the run's new state."""
    held = await _claim_one(store, make_run("run_1"))
    step = replace(held.steps[0], status=StepStatus.PROCESSED, attempts=1, message_id="m1")
    done = replace(
        held.with_step(step), cursor=1, status=RunStatus.PROCESSED, updated_at=NOW + 1, due_at=None
    )
    assert await store.commit_run(done) == []
    assert await store.get_run(WS, "run_1") == done
    assert await store.claim_due_runs("w2", NOW + 10_000, limit=10, lease_seconds=LEASE) == []


async def test_commit_run_with_stale_token_writes_nothing(store: Store) -> None:
    """A commit with an old lease_token raises StaleLease and writes neither run nor messages."""
    await create(store, make_run("victim", token="tok"))
    held = await _claim_one(store, make_run("run_1", due_at=NOW - 1), now=NOW - 1)
    before = await store.get_run(WS, "run_1")
    stale = replace(held, lease_token=held.lease_token - 1, status=RunStatus.ERROR, due_at=None)
    message = make_message("m1", run_id="run_1")
    with pytest.raises(StaleLease):
        await store.commit_run(
            stale,
            messages=[message],
            events=[MessageEvent("m1", NOW, "ENQUEUED")],
            cancel_token="tok",
        )
    assert await store.get_run(WS, "run_1") == before
    assert await store.get_message(WS, "m1") is None
    assert await store.message_events(WS, "m1") == []
    victim = await store.get_run(WS, "victim")
    assert victim is not None
    assert victim.status is RunStatus.PROCESSING


async def test_commit_run_keep_lease_keeps_the_claim(store: Store) -> None:
    """keep_lease keeps the caller's claim: the run stays owned and not claimable."""
    held = await _claim_one(store, make_run("run_1"))
    progress = replace(held, updated_at=NOW + 1, due_at=NOW + 1 + LEASE)
    await store.commit_run(progress, keep_lease=True)
    assert await store.claim_due_runs("w2", NOW + 2, limit=10, lease_seconds=LEASE) == []
    # Still owned by w1: releasing w1's leases frees it.
    assert await store.release_leases(NOW + 2, "w1") == 1
    # The holder can keep committing with the same token until someone else claims.
    await store.commit_run(replace(progress, updated_at=NOW + 3), keep_lease=True)


async def test_commit_run_release_makes_due_at_the_new_time(store: Store) -> None:
    """Without keep_lease the run is released and claimable again at its new due_at."""
    held = await _claim_one(store, make_run("run_1"))
    await store.commit_run(replace(held, due_at=NOW + 5, updated_at=NOW))
    assert await store.release_leases(NOW, "w1") == 0
    assert await store.claim_due_runs("w2", NOW + 4, limit=10, lease_seconds=LEASE) == []
    again = await store.claim_due_runs("w2", NOW + 5, limit=10, lease_seconds=LEASE)
    assert [(r.id, r.lease_token) for r in again] == [("run_1", held.lease_token + 1)]


async def test_commit_run_saves_messages_and_events_with_the_run(store: Store) -> None:
    """Messages and their events committed with the run are readable afterwards, in order."""
    held = await _claim_one(store, make_run("run_1"))
    message = make_message("m1", run_id="run_1", status="ROUTED", attempt_state="in_flight")
    events = [
        MessageEvent("m1", NOW, "ENQUEUED", {"recipient": "user_1"}),
        MessageEvent("m1", NOW, "ROUTED", {"channel": "email"}),
        MessageEvent("m1", NOW, "RENDERED"),
    ]
    step = replace(held.steps[0], status=StepStatus.PROCESSING, message_id="m1", attempts=1)
    await store.commit_run(held.with_step(step), messages=[message], events=events, keep_lease=True)
    assert await store.get_message(WS, "m1") == message
    assert await store.message_events(WS, "m1") == events
    stored = await store.get_run(WS, "run_1")
    assert stored is not None
    assert stored.steps[0].message_id == "m1"


async def test_commit_run_is_atomic(store: Store) -> None:
    """If any part of a commit fails, neither the run nor its messages are written."""
    held = await _claim_one(store, make_run("run_1"))
    before = await store.get_run(WS, "run_1")
    bad_event = MessageEvent("m1", NOW, "SENT", {"not_json": object()})
    with pytest.raises((TypeError, ValueError, RelayboxError)):
        await store.commit_run(
            replace(held, status=RunStatus.PROCESSED, due_at=None),
            messages=[make_message("m1")],
            events=[MessageEvent("m1", NOW, "ENQUEUED"), bad_event],
        )
    assert await store.get_run(WS, "run_1") == before
    assert await store.get_message(WS, "m1") is None
    assert await store.message_events(WS, "m1") == []


async def test_commit_run_cancel_token_cancels_other_active_runs(store: Store) -> None:
    """cancel_token cancels the workspace's other active runs with that token and returns them."""
    # The holder of "leased" claimed it before the cancel.
    leased = await create(store, make_run("leased", token="tok", lease_token=1), lease_owner="w2")
    await create(store, waiting_run("sleeping", token="tok"))
    await create(store, finished_run("finished", token="tok"))
    await create(store, make_run("other_ws", ws=OTHER_WS, token="tok", due_at=NOW + 100))
    await create(store, make_run("other_token", token="tok2", due_at=NOW + 100))
    await create(store, make_run("no_token", due_at=NOW + 100))
    held = await _claim_one(store, make_run("canceler", token="tok", due_at=NOW - 1), now=NOW - 1)

    step = replace(held.steps[0], status=StepStatus.PROCESSED)
    committed = replace(held.with_step(step), cursor=1, updated_at=NOW, due_at=NOW + LEASE)
    canceled = await store.commit_run(committed, cancel_token="tok", keep_lease=True)

    assert sorted(canceled) == ["leased", "sleeping"]
    assert await store.get_run(WS, "canceler") == committed
    for rid in ["leased", "sleeping"]:
        run = await store.get_run(WS, rid)
        assert run is not None
        assert run.status is RunStatus.CANCELED
        assert run.due_at is None
    sleeping = await store.get_run(WS, "sleeping")
    assert sleeping is not None
    assert [s.status for s in sleeping.visible_steps()] == [
        StepStatus.CANCELED,
        StepStatus.NOT_PROCESSED,
    ]
    finished = await store.get_run(WS, "finished")
    assert finished is not None
    assert finished.status is RunStatus.PROCESSED
    for ws, rid in [(OTHER_WS, "other_ws"), (WS, "other_token"), (WS, "no_token")]:
        untouched = await store.get_run(ws, rid)
        assert untouched is not None
        assert untouched.status is RunStatus.PROCESSING
        assert untouched.due_at == NOW + 100
    # Canceled runs are no longer due, and their holders are fenced off.
    claimable = await store.claim_due_runs("w3", NOW + 10_000, limit=10, lease_seconds=LEASE)
    assert "leased" not in {r.id for r in claimable}
    assert "sleeping" not in {r.id for r in claimable}
    with pytest.raises(StaleLease):
        await store.commit_run(replace(leased, status=RunStatus.PROCESSED, due_at=None))
    still = await store.get_run(WS, "leased")
    assert still is not None
    assert still.status is RunStatus.CANCELED


async def test_commit_run_cancel_token_with_no_matches(store: Store) -> None:
    """A cancel_token that matches no other run cancels nothing, not even the committing run."""
    held = await _claim_one(store, make_run("canceler", token="tok"))
    assert await store.commit_run(replace(held, due_at=NOW + 1), cancel_token="tok") == []
    stored = await store.get_run(WS, "canceler")
    assert stored is not None
    assert stored.status is RunStatus.PROCESSING


# --------------------------------------------------------------------------------------------
# cancel_run / release_leases
# --------------------------------------------------------------------------------------------


async def test_cancel_run_cancels_and_fences_the_holder(store: Store) -> None:
    """cancel_run cancels an active run, returns it as stored and fences off its holder."""
    held = await _claim_one(store, make_run("run_1"))
    canceled = await store.cancel_run(WS, "run_1", NOW + 1)
    assert canceled is not None
    assert canceled.status is RunStatus.CANCELED
    assert canceled.due_at is None
    assert canceled.updated_at == NOW + 1
    assert await store.get_run(WS, "run_1") == canceled
    with pytest.raises(StaleLease):
        await store.commit_run(replace(held, status=RunStatus.PROCESSED, due_at=None))
    assert await store.claim_due_runs("w2", NOW + 10_000, limit=10, lease_seconds=LEASE) == []


async def test_cancel_run_leaves_finished_runs_alone(store: Store) -> None:
    """Canceling a finished run returns it unchanged."""
    done = await create(store, finished_run("run_1"))
    assert await store.cancel_run(WS, "run_1", NOW + 1) == done


async def test_cancel_run_unknown_or_other_workspace(store: Store) -> None:
    """cancel_run returns None for an unknown run or another workspace's run, changing nothing."""
    theirs = await create(store, make_run("run_1", ws=OTHER_WS))
    assert await store.cancel_run(WS, "run_1", NOW) is None
    assert await store.cancel_run(WS, "run_missing", NOW) is None
    assert await store.get_run(OTHER_WS, "run_1") == theirs


async def test_release_leases_by_owner_and_all(store: Store) -> None:
    """release_leases makes claimed runs due now: one owner's, or every owner's."""
    await create(store, make_run("a1", due_at=NOW + LEASE, lease_token=1), lease_owner="w1")
    await create(store, make_run("a2", due_at=NOW + LEASE, lease_token=1), lease_owner="w1")
    await create(store, make_run("b1", due_at=NOW + LEASE, lease_token=1), lease_owner="w2")
    await create(store, waiting_run("sleeping"))
    await create(store, finished_run("done"))

    assert await store.release_leases(NOW + 1, "w1") == 2
    for rid in ["a1", "a2"]:
        run = await store.get_run(WS, rid)
        assert run is not None
        assert run.due_at == NOW + 1
    b1 = await store.get_run(WS, "b1")
    assert b1 is not None
    assert b1.due_at == NOW + LEASE
    assert await store.release_leases(NOW + 1, "w1") == 0

    assert await store.release_leases(NOW + 2) == 1
    b1 = await store.get_run(WS, "b1")
    assert b1 is not None
    assert b1.due_at == NOW + 2
    sleeping = await store.get_run(WS, "sleeping")
    assert sleeping is not None
    assert sleeping.due_at == NOW + 3600
    done = await store.get_run(WS, "done")
    assert done is not None
    assert done.due_at is None
    claimed = await store.claim_due_runs("w3", NOW + 2, limit=10, lease_seconds=LEASE)
    assert {r.id for r in claimed} == {"a1", "a2", "b1"}


async def test_released_run_reclaimed_fences_the_old_holder(store: Store) -> None:
    """After release and a new claim, the previous holder's commit raises StaleLease."""
    held = await _claim_one(store, make_run("run_1"))
    await store.release_leases(NOW + 1, "w1")
    await store.claim_due_runs("w2", NOW + 1, limit=10, lease_seconds=LEASE)
    with pytest.raises(StaleLease):
        await store.commit_run(replace(held, status=RunStatus.PROCESSED, due_at=None))


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


async def test_save_and_get_message_with_events_in_order(store: Store) -> None:
    """save_message stores the message and appends its events after earlier ones."""
    first = make_message("m1", status="ENQUEUED")
    await store.save_message(
        first, [MessageEvent("m1", NOW + 2, "ENQUEUED"), MessageEvent("m1", NOW + 1, "ROUTED")]
    )
    assert await store.get_message(WS, "m1") == first
    sent = replace(
        first,
        status="SENT",
        sent_at=NOW + 3,
        updated_at=NOW + 3,
        attempts=1,
        providers=[*first.providers, {"provider": "smtp", "ts": NOW + 3, "id": "x"}],
    )
    await store.save_message(sent, [MessageEvent("m1", NOW + 3, "SENT", {"provider": "smtp"})])
    assert await store.get_message(WS, "m1") == sent
    assert [e.type for e in await store.message_events(WS, "m1")] == ["ENQUEUED", "ROUTED", "SENT"]
    assert (await store.message_events(WS, "m1"))[2] == MessageEvent(
        "m1", NOW + 3, "SENT", {"provider": "smtp"}
    )


async def test_messages_are_scoped_by_workspace(store: Store) -> None:
    """Another workspace cannot read a message or its events."""
    await store.save_message(make_message("m1"), [MessageEvent("m1", NOW, "ENQUEUED")])
    assert await store.get_message(OTHER_WS, "m1") is None
    assert await store.message_events(OTHER_WS, "m1") == []
    assert await store.get_message(WS, "m_missing") is None
    assert await store.message_events(WS, "m_missing") == []


# --------------------------------------------------------------------------------------------
# Idempotency responses
# --------------------------------------------------------------------------------------------


async def test_saved_response_until_expiry(store: Store) -> None:
    """A saved response is returned before it expires, not at or after expiry."""
    await store.save_response(WS, idem("k", expires_at=NOW + 60, body=b"one"), NOW)
    expected = StoredResponse(200, b"one", "fp-k", NOW + 60)
    assert await store.get_response(WS, "k", NOW) == expected
    assert await store.get_response(WS, "k", NOW + 59.9) == expected
    assert await store.get_response(WS, "k", NOW + 60) is None
    assert await store.get_response(OTHER_WS, "k", NOW) is None
    assert await store.get_response(WS, "other", NOW) is None


async def test_save_response_keeps_the_first_unexpired(store: Store) -> None:
    """Saving again under an unexpired key keeps the first response; after expiry it replaces."""
    await store.save_response(WS, idem("k", expires_at=NOW + 60, body=b"one"), NOW)
    await store.save_response(WS, idem("k", expires_at=NOW + 120, body=b"two"), NOW + 1)
    kept = await store.get_response(WS, "k", NOW + 1)
    assert kept is not None
    assert kept.body == b"one"
    await store.save_response(WS, idem("k", expires_at=NOW + 200, body=b"three"), NOW + 60)
    replaced = await store.get_response(WS, "k", NOW + 61)
    assert replaced is not None
    assert (replaced.body, replaced.expires_at) == (b"three", NOW + 200)


# --------------------------------------------------------------------------------------------
# Concurrency and durability
# --------------------------------------------------------------------------------------------


async def test_concurrent_creates_are_group_committed(store: Store, backend_name: str) -> None:
    """500 concurrent create_run calls all succeed, batched into far fewer commits (SQLite)."""
    if backend_name != "sqlite":
        pytest.skip("group commit is a property of the SQLite writer thread")
    from relaybox.storage.sqlite import SqliteStore

    assert isinstance(store, SqliteStore)
    commits_before = store.writer.commits
    runs = [make_run(f"run_{i:03d}", created_at=NOW + i) for i in range(500)]
    results = await asyncio.gather(
        *(store.create_run(r, lease_owner=None, merge_profile=False) for r in runs)
    )
    assert [c.run for c in results] == runs
    commits = store.writer.commits - commits_before
    assert commits <= 50, f"{commits} commits for 500 writes: writes are not batched"
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=1000)
    assert len(page.runs) == 500


async def test_concurrent_failure_rolls_back_alone(store: Store) -> None:
    """In a burst of concurrent writes, one failing commit is undone without spoiling the others."""
    held = await _claim_one(store, make_run("run_held"))
    before = await store.get_run(WS, "run_held")
    bad = store.commit_run(
        replace(held, status=RunStatus.PROCESSED, due_at=None),
        messages=[make_message("m_bad")],
        events=[MessageEvent("m_bad", NOW, "SENT", {"not_json": object()})],
    )
    writes = [create(store, make_run(f"run_{i:02d}", created_at=NOW + i)) for i in range(20)]
    results = await asyncio.gather(*writes[:10], bad, *writes[10:], return_exceptions=True)
    assert isinstance(results[10], TypeError | ValueError | RelayboxError)
    assert not any(isinstance(r, BaseException) for i, r in enumerate(results) if i != 10)
    assert await store.get_run(WS, "run_held") == before
    assert await store.get_message(WS, "m_bad") is None
    page = await store.list_runs(WS, RunFilter(), cursor=None, limit=100)
    assert len(page.runs) == 21


async def test_everything_survives_close_and_reopen(store: Store, harness: Harness) -> None:
    """After close() and opening the same data again, every committed write is there."""
    await store.add_api_key(WS, "hash-a", "rb_a", NOW)
    await store.put_resource(resource("nt_1", alias="welcome"))
    published = await store.publish_resource(WS, "notification", "nt_1", NOW + 1)
    await store.put_profile(WS, "user_1", {"email": "a@example.com"}, NOW)
    run = await create(store, waiting_run("run_1", token="tok"))
    message = make_message("m1", run_id="run_1")
    events = [MessageEvent("m1", NOW, "ENQUEUED"), MessageEvent("m1", NOW, "ROUTED")]
    await store.save_message(message, events)
    await store.save_response(WS, idem("k", body=b"saved"), NOW)
    await harness.close(store)

    again = await harness.open()
    assert await again.workspace_for_key("hash-a") == WS
    assert await again.count_api_keys() == 1
    assert await again.get_resource(WS, "notification", "welcome") == published
    assert await again.get_profile(WS, "user_1") == {"email": "a@example.com"}
    assert await again.get_run(WS, "run_1") == run
    assert await again.next_due_at() == NOW + 3600
    assert await again.get_message(WS, "m1") == message
    assert await again.message_events(WS, "m1") == events
    saved = await again.get_response(WS, "k", NOW)
    assert saved is not None
    assert saved.body == b"saved"
    # Writes keep working on the reopened store.
    await create(again, make_run("run_2"))
    assert await again.get_run(WS, "run_2") is not None
