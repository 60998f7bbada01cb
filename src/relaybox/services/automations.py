"""Automation use cases shared by the API, console and CLI: invoke, saved automations, runs."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from relaybox import ids
from relaybox.clock import Clock
from relaybox.domain import automation
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps, parse_context
from relaybox.domain.transitions import Advance, decide
from relaybox.engine.engine import Engine
from relaybox.engine.expressions import ExpressionError, Sandbox
from relaybox.errors import NotFound, ValidationError
from relaybox.services.idempotency import Idempotency, check_same_request
from relaybox.storage.base import (
    Resource,
    ResourceVersion,
    RunFilter,
    RunPage,
    Store,
    StoredResponse,
)

AUTOMATION_KIND = "automation"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
#: Path segments the API routes already use under /automations/.
_RESERVED = frozenset({"runs", "invoke"})


@dataclass(frozen=True)
class Invocation:
    """The response to an invoke: a new run id, or the replay of an earlier response."""

    run_id: str | None = None
    replay: StoredResponse | None = None

    def body(self) -> bytes:
        if self.replay is not None:
            return self.replay.body
        return orjson.dumps({"runId": self.run_id})


class AutomationService:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        engine: Engine | None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        #: Evaluates a ``${...}`` cancelation_token against the invoke's context.
        self._sandbox = sandbox
        #: The in-process engine, if this process runs one: new runs go to it directly.
        self._engine = engine

    # --- invoking ---------------------------------------------------------------------------

    async def invoke_ad_hoc(
        self, workspace_id: str, body: dict[str, Any], idem: Idempotency | None = None
    ) -> Invocation:
        definition = automation.parse_automation(body.get("automation"))
        return await self._start(workspace_id, definition, parse_context(body), None, idem)

    async def invoke_saved(
        self,
        workspace_id: str,
        template_id: str,
        body: dict[str, Any],
        idem: Idempotency | None = None,
    ) -> Invocation:
        saved = await self._store.get_resource(workspace_id, AUTOMATION_KIND, template_id)
        if saved is None or saved.published is None:
            raise NotFound(f"Automation template {template_id} not found")
        definition = automation.parse_automation(saved.published, where="automation")
        return await self._start(workspace_id, definition, parse_context(body), saved.id, idem)

    async def invoke_draft(
        self, workspace_id: str, template_id: str, body: dict[str, Any]
    ) -> Invocation:
        """Run the saved automation's draft (the console's "Test draft"), unpublished as it is."""
        saved = await self.get(workspace_id, template_id)
        if saved.draft is None:
            raise NotFound(f"Automation template {template_id} has no draft")
        definition = automation.parse_automation(saved.draft, where="draft")
        return await self._start(workspace_id, definition, parse_context(body), saved.id, None)

    async def _start(
        self,
        workspace_id: str,
        definition: automation.AutomationDefinition,
        context: RunContext,
        template_id: str | None,
        idem: Idempotency | None,
    ) -> Invocation:
        now = self._clock.now()
        run_id = ids.courier_id(now)
        local = self._engine is not None
        token = await self._token(definition.cancelation_token, context, now)
        run = Run(
            id=run_id,
            workspace_id=workspace_id,
            steps_def=definition.steps,
            steps=new_steps(definition.steps),
            context=context,
            status=RunStatus.PROCESSING,
            created_at=now,
            updated_at=now,
            template_id=template_id,
            source=f"invoke/{template_id or 'ad-hoc'}",
            cancelation_token=token,
            due_at=now + self._engine.lease_seconds if self._engine else now,
            lease_token=1 if local else 0,
        )
        write = None
        if idem is not None:
            write = idem.write(200, orjson.dumps({"runId": run_id}))
        waiting = _waiting_from_the_start(run, now)
        claim = self._engine is not None and waiting is None
        created = await self._store.create_run(
            waiting or run,
            lease_owner=self._engine.owner if claim and self._engine else None,
            merge_profile=True,
            idempotency=write,
        )
        if created.replay is not None:
            assert idem is not None
            check_same_request(created.replay, idem)
            return Invocation(replay=created.replay)
        assert created.run is not None
        if self._engine is not None:
            if claim:
                self._engine.submit(created.run)
            else:
                self._engine.scheduled()
        return Invocation(run_id=run_id)

    async def _token(self, token: str | None, context: RunContext, now: float) -> str | None:
        """Courier's designer builds tokens like `` ${`onboarding-${data.userId}`} ``.

        Evaluated once, at invoke time, against the invoke's context: a run is cancelable by
        the token it holds, so the token must be concrete before the run exists.
        """
        if token is None or "${" not in token or self._sandbox is None:
            return token
        try:
            value = await self._sandbox.resolve(token, context.scope(), now)
        except ExpressionError as exc:
            raise ValidationError(f"automation.cancelation_token: {exc.message}") from None
        return None if value is None else str(value)

    # --- saved automations ------------------------------------------------------------------

    async def put_draft(self, workspace_id: str, automation_id: str, body: Any) -> Resource:
        if not _ID.match(automation_id) or automation_id in _RESERVED:
            raise ValidationError(
                "automation id: use 1-128 letters, digits, '.', '_', ':' or '-' "
                "(and not 'runs' or 'invoke')"
            )
        if not isinstance(body, dict):
            raise ValidationError("Expected a JSON object")
        definition = automation.parse_automation(body, where="body")
        name = body.get("name")
        alias = body.get("alias")
        if name is not None and not isinstance(name, str):
            raise ValidationError("name: Expected string")
        if alias is not None and (
            not isinstance(alias, str) or not _ID.match(alias) or alias in _RESERVED
        ):
            raise ValidationError(
                "alias: use 1-128 letters, digits, '.', '_', ':' or '-' "
                "(and not 'runs' or 'invoke')"
            )
        display_name = name or "Untitled Automation"
        draft = {
            "name": display_name,
            "alias": alias,
            "steps": list(definition.steps),
            "cancelation_token": definition.cancelation_token,
        }
        now = self._clock.now()
        existing = await self._store.get_resource(workspace_id, AUTOMATION_KIND, automation_id)
        if existing is not None and existing.id != automation_id:
            existing = None  # the id matched another automation's alias; this is a new one
        resource = Resource(
            workspace_id=workspace_id,
            kind=AUTOMATION_KIND,
            id=automation_id,
            alias=alias,
            name=display_name,
            draft=draft,
            published=existing.published if existing else None,
            published_version=existing.published_version if existing else 0,
            published_at=existing.published_at if existing else None,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        return await self._store.put_resource(resource)

    async def publish(self, workspace_id: str, automation_id: str) -> Resource:
        found = await self.get(workspace_id, automation_id)
        published = await self._store.publish_resource(
            workspace_id, AUTOMATION_KIND, found.id, self._clock.now()
        )
        if published is None:
            raise NotFound(f"Automation template {automation_id} not found")
        return published

    async def versions(self, workspace_id: str, automation_id: str) -> list[ResourceVersion]:
        """Every published version, newest first."""
        found = await self.get(workspace_id, automation_id)
        return await self._store.list_resource_versions(workspace_id, AUTOMATION_KIND, found.id)

    async def version(self, workspace_id: str, automation_id: str, version: int) -> ResourceVersion:
        found = await self.get(workspace_id, automation_id)
        one = await self._store.get_resource_version(
            workspace_id, AUTOMATION_KIND, found.id, version
        )
        if one is None:
            raise NotFound(f"Automation template {automation_id} has no version {version}")
        return one

    async def roll_back(self, workspace_id: str, automation_id: str, version: int) -> Resource:
        """Publish an old version again, as a new version: history is never rewritten.

        The old body becomes the draft first (validated like any draft, so a version saved
        by an older release that would no longer pass is refused rather than republished).
        The current alias is kept: rolling back steps must not move an alias in use.
        """
        current = await self.get(workspace_id, automation_id)
        old = await self.version(workspace_id, automation_id, version)
        body = {**old.body, "alias": (current.draft or {}).get("alias", current.alias)}
        await self.put_draft(workspace_id, current.id, body)
        return await self.publish(workspace_id, current.id)

    async def set_alias(self, workspace_id: str, automation_id: str, alias: str | None) -> Resource:
        """Change only the draft's alias (it takes effect at once: aliases are not versioned)."""
        current = await self.get(workspace_id, automation_id)
        if current.draft is None:
            raise NotFound(f"Automation template {automation_id} has no draft")
        return await self.put_draft(workspace_id, current.id, {**current.draft, "alias": alias})

    async def get(self, workspace_id: str, automation_id: str) -> Resource:
        found = await self._store.get_resource(workspace_id, AUTOMATION_KIND, automation_id)
        if found is None:
            raise NotFound(f"Automation template {automation_id} not found")
        return found

    async def delete(self, workspace_id: str, automation_id: str) -> None:
        found = await self.get(workspace_id, automation_id)
        await self._store.delete_resource(workspace_id, AUTOMATION_KIND, found.id)

    async def list(
        self, workspace_id: str, *, version: str, cursor: str | None, limit: int = 50
    ) -> tuple[list[Resource], str | None]:
        if version not in {"published", "draft"}:
            raise ValidationError(
                f'Invalid version parameter "{version}". Accepted values are: published '
                "(for published templates) or draft (for draft templates)"
            )
        after = _decode_list_cursor(cursor)
        found: list[Resource] = []
        while len(found) <= limit:
            page = await self._store.list_resources(
                workspace_id, AUTOMATION_KIND, after=after, limit=limit + 1
            )
            found.extend(r for r in page if (r.published if version == "published" else r.draft))
            if len(page) < limit + 1:
                break
            after = page[-1].id
        more = len(found) > limit
        found = found[:limit]
        return found, (_encode_list_cursor(found[-1].id) if more and found else None)

    # --- runs --------------------------------------------------------------------------------

    async def get_run(self, workspace_id: str, run_id: str) -> Run:
        found = await self._store.get_run(workspace_id, run_id)
        if found is None:
            raise NotFound(f"Automation run {run_id} not found")
        return found

    async def list_runs(
        self,
        workspace_id: str,
        *,
        cursor: str | None,
        limit: str | None,
        status: str | None,
        template_id: str | None,
        start_date: str | None,
        end_date: str | None,
        recipient: str | None = None,
    ) -> RunPage:
        flt = RunFilter(
            recipient=recipient or None,
            statuses=_csv(status),
            template_ids=_csv(template_id),
            start=_date_bound(start_date, "start_date", end=False),
            end=_date_bound(end_date, "end_date", end=True),
        )
        return await self._store.list_runs(
            workspace_id, flt, cursor=cursor or None, limit=_limit(limit)
        )

    async def cancel_run(self, workspace_id: str, run_id: str) -> Run:
        found = await self._store.cancel_run(workspace_id, run_id, self._clock.now())
        if found is None:
            raise NotFound(f"Automation run {run_id} not found")
        return found


def _waiting_from_the_start(run: Run, now: float) -> Run | None:
    """The run already WAITING in its first step, when that step is a plain delay.

    Deciding the delay at invoke time stores the run with its wake time in the same write
    that acknowledges it, so the engine first meets it when it wakes: one commit per such
    invoke instead of two. Anything else (a condition to evaluate, an instant delay) is
    left to the engine.
    """
    if not run.steps_def or run.steps_def[0].get("action") != "delay":
        return None
    decision = decide(run, Advance(), now)
    if decision.release_until is None or decision.run.finished:
        return None
    if decision.execute is not None or decision.prepare is not None or decision.cancel_token:
        return None
    return replace(decision.run, due_at=decision.release_until, lease_token=0)


def _csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _limit(raw: str | None) -> int:
    # Courier clamps to 1-50 and treats a non-number as the default.
    try:
        value = int(raw) if raw is not None else 20
    except ValueError:
        return 20
    return min(50, max(1, value))


def _date_bound(raw: str | None, name: str, *, end: bool) -> float | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name}: expected an ISO 8601 date or timestamp such as 2026-08-18 or "
            "2026-08-18T20:06:36.259Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    when = parsed.timestamp()
    date_only = len(raw) <= 10
    return when + 86_400 - 0.001 if end and date_only else when


def _encode_list_cursor(last_id: str) -> str:
    return "a:" + last_id


def _decode_list_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    if not cursor.startswith("a:"):
        raise ValidationError("Invalid cursor format")
    return cursor[2:]
