"""Courier wire shapes for runs and saved automations."""

from __future__ import annotations

from typing import Any

from relaybox.clock import to_iso
from relaybox.domain.run import Run
from relaybox.storage.base import Resource


def run_item(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "source": [run.source],
        "created_at": to_iso(run.created_at),
        "status": run.status.value,
        "template_id": run.template_id,
    }


def run_detail(run: Run) -> dict[str, Any]:
    ctx = run.context
    return {
        **run_item(run),
        "updated_at": to_iso(run.updated_at),
        "error": run.error,
        "automation": {"steps": list(run.steps_def), "cancelation_token": run.cancelation_token},
        "brand": ctx.brand,
        "template": ctx.template,
        "recipient": ctx.recipient,
        "data": ctx.data,
        "profile": ctx.profile,
    }


def run_steps(run: Run) -> dict[str, Any]:
    steps = []
    for step in run.visible_steps():
        item: dict[str, Any] = {
            "step_id": f"{run.id}:{step.index}",
            "action": step.action,
            "status": step.status.value,
            "created_at": to_iso(step.started_at),
            "updated_at": to_iso(step.updated_at),
        }
        if step.message_id:
            item["message_id"] = step.message_id
        if step.error:
            item["error"] = step.error
        if step.wake_at is not None:
            item["wake_at"] = to_iso(step.wake_at)
        if step.attempts:
            item["attempts"] = step.attempts
        # Relaybox extensions for the debugger: why a step ran or was skipped (its evaluated
        # ``if`` with the values it read) and what it produced (fetch, invoke, delay).
        if step.condition is not None:
            item["condition"] = step.condition
        if step.output is not None:
            item["output"] = step.output
        steps.append(item)
    return {"steps": steps}


def automation(resource: Resource, version: str) -> dict[str, Any]:
    body = (resource.published if version == "published" else resource.draft) or {}
    return {
        "id": resource.id,
        "name": body.get("name") or resource.name,
        "alias": body.get("alias"),
        "version": version,
        "published_version": resource.published_version,
        "steps": body.get("steps", []),
        "cancelation_token": body.get("cancelation_token"),
        "createdAt": to_iso(resource.created_at),
        "updatedAt": to_iso(resource.updated_at if version == "draft" else resource.published_at),
    }


def automation_summary(resource: Resource, version: str) -> dict[str, Any]:
    full = automation(resource, version)
    return {k: full[k] for k in ("id", "name", "version", "createdAt", "updatedAt")}
