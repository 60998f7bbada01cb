"""The ``invoke`` step: start another saved automation (id or alias, published version).

The child run gets the step's ``context`` ({brand, data, profile, template, recipient}) as
its run context. Without ``context`` it inherits the parent's context (minus step refs) —
Courier does not document the default; inheriting is what lets a parent hand its data on.

The child is created unleased and due now; the timer loop claims it. Creation goes through
the store's idempotency record keyed by (parent run, step), so a retried or re-claimed
parent step finds the child it already started instead of starting a second one.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaybox import ids
from relaybox.domain import automation
from relaybox.domain.run import Run, RunContext, RunStatus, new_steps, parse_context
from relaybox.domain.transitions import StepFailed, StepSucceeded
from relaybox.engine.expressions import ExpressionError, Sandbox
from relaybox.engine.steps.base import Checkpoint, StepResult
from relaybox.errors import ValidationError
from relaybox.storage.base import IdempotencyWrite, Store

#: How long the (parent run, step) -> child run record is kept: longer than any lease retry.
_DEDUPE_SECONDS = 30 * 86_400.0


class InvokeStep:
    def __init__(self, *, store: Store, sandbox: Sandbox | None = None) -> None:
        self._store = store
        #: Evaluates the child automation's ``${...}`` cancelation_token in its context.
        self._sandbox = sandbox

    async def execute(self, run: Run, index: int, now: float, checkpoint: Checkpoint) -> StepResult:
        spec = run.steps_def[index]
        template = spec.get("template")
        if not isinstance(template, str) or not template:
            return _failed(index, "template: Expected the id or alias of an automation")
        saved = await self._store.get_resource(run.workspace_id, automation.RESOURCE_KIND, template)
        if saved is None or saved.published is None:
            return _failed(index, f"Automation template {template} not found")
        try:
            definition = automation.parse_automation(saved.published, where="automation")
            context = _child_context(spec.get("context"), run.context)
        except ValidationError as exc:
            return _failed(index, exc.message)
        token = definition.cancelation_token
        if token is not None and "${" in token and self._sandbox is not None:
            try:
                resolved = await self._sandbox.resolve(token, context.scope(), now)
            except ExpressionError as exc:
                return _failed(index, f"cancelation_token: {exc.message}")
            token = None if resolved is None else str(resolved)
        child_id = ids.courier_id(now)
        child = Run(
            id=child_id,
            workspace_id=run.workspace_id,
            steps_def=definition.steps,
            steps=new_steps(definition.steps),
            context=context,
            status=RunStatus.PROCESSING,
            created_at=now,
            updated_at=now,
            template_id=saved.id,
            source=f"invoke/{saved.id}",
            cancelation_token=token,
            due_at=now,
        )
        body = orjson.dumps({"runId": child_id})
        dedupe = IdempotencyWrite(
            key=f"relaybox:invoke-step:{run.id}:{index}",
            fingerprint=f"invoke-step:{saved.id}",
            status_code=200,
            body=body,
            expires_at=now + _DEDUPE_SECONDS,
        )
        created = await self._store.create_run(
            child, lease_owner=None, merge_profile=True, idempotency=dedupe
        )
        if created.replay is not None:
            child_id = str(orjson.loads(created.replay.body)["runId"])
        output = {"run_id": child_id, "template_id": saved.id}
        return StepResult(StepSucceeded(index, output=output), wake=created.replay is None)


def _failed(index: int, error: str) -> StepResult:
    return StepResult(StepFailed(index, error, retryable=False))


def _child_context(raw: Any, parent: RunContext) -> RunContext:
    if raw is None:
        return RunContext(
            recipient=parent.recipient,
            data=dict(parent.data),
            profile=dict(parent.profile),
            brand=parent.brand,
            template=parent.template,
        )
    if not isinstance(raw, dict):
        raise ValidationError("context: Expected object")
    return parse_context(raw, where="context.")
