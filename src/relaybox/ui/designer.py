"""Designer (minimal): saved automations as a JSON steps editor, publish, and Test.

Saving goes through ``AutomationService.put_draft``, the API's own validation, so the console
accepts exactly what ``PUT /automations/{id}`` accepts and saves nothing it would refuse.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.errors import RelayboxError
from relaybox.storage.base import Resource
from relaybox.ui import web

router = APIRouter()

SAMPLE_STEPS: list[dict[str, Any]] = [
    {"action": "send", "template": "welcome"},
    {"action": "delay", "duration": "2 seconds"},
    {"action": "send", "template": "welcome"},
]
SAMPLE_PAYLOAD: dict[str, Any] = {
    "recipient": "user-1",
    "profile": {"email": "user@example.com"},
    "data": {},
}


@router.get("/automations")
async def automations(request: Request) -> Response:
    workspace = web.signed_in(request)
    found, _ = await web.services(request).automations.list(
        workspace, version="draft", cursor=None, limit=50
    )
    return web.render(request, "automations.html", automations=found)


@router.get("/automations/new")
async def new(request: Request) -> Response:
    web.signed_in(request)
    return _editor(request, None, automation_id="", name="", steps=_dump(SAMPLE_STEPS))


@router.get("/automations/{automation_id}")
async def edit(request: Request, automation_id: str) -> Response:
    workspace = web.signed_in(request)
    found = await web.services(request).automations.get(workspace, automation_id)
    draft = found.draft or {}
    return _editor(
        request,
        found,
        automation_id=found.id,
        name=str(draft.get("name") or ""),
        steps=_dump(draft.get("steps", [])),
        notice=request.query_params.get("notice"),
    )


@router.post("/automations")
async def save(request: Request) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    automation_id = fields.get("id", "").strip()
    name = fields.get("name", "").strip()
    steps_text = fields.get("steps", "")
    service = web.services(request).automations
    existing = await _find(request, workspace, automation_id)
    creating = fields.get("new") == "1"
    try:
        if creating and existing is not None:
            # The new-automation form must not silently overwrite a saved one.
            raise RelayboxError(f"An automation with id {automation_id} already exists.")
        steps = _parse(steps_text, "Steps")
        body = {"name": name or None, "steps": steps}
        if existing is not None and existing.draft:
            # Keep what this editor does not show (alias, cancelation token) as it was.
            body["alias"] = existing.draft.get("alias")
            body["cancelation_token"] = existing.draft.get("cancelation_token")
        saved = await service.put_draft(workspace, automation_id, body)
    except RelayboxError as exc:
        return _editor(
            request,
            None if creating else existing,
            status=400,
            automation_id=automation_id,
            name=name,
            steps=steps_text,
            error=exc.message,
        )
    return web.redirect(request, f"/automations/{saved.id}?notice=Draft+saved")


@router.post("/automations/{automation_id}/publish")
async def publish(request: Request, automation_id: str) -> Response:
    await web.form(request)
    workspace = web.signed_in(request)
    done = await web.services(request).automations.publish(workspace, automation_id)
    notice = f"Published version {done.published_version}"
    return web.redirect(request, f"/automations/{done.id}?notice={notice.replace(' ', '+')}")


@router.post("/automations/{automation_id}/test")
async def test(request: Request, automation_id: str) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    service = web.services(request).automations
    found = await service.get(workspace, automation_id)
    payload_text = fields.get("payload", "")
    try:
        payload = _parse(payload_text, "Payload")
        if not isinstance(payload, dict):
            raise RelayboxError("Payload: expected a JSON object")
        if found.published is None:
            raise RelayboxError("Publish the automation before testing it.")
        started = await service.invoke_saved(workspace, found.id, payload)
    except RelayboxError as exc:
        draft = found.draft or {}
        return _editor(
            request,
            found,
            status=400,
            automation_id=found.id,
            name=str(draft.get("name") or ""),
            steps=_dump(draft.get("steps", [])),
            payload=payload_text,
            test_error=exc.message,
        )
    return web.redirect(request, f"/runs/{started.run_id}")


async def _find(request: Request, workspace: str, automation_id: str) -> Resource | None:
    try:
        return await web.services(request).automations.get(workspace, automation_id)
    except RelayboxError:
        return None


def _parse(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RelayboxError(
            f"{what} are not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            if what == "Steps"
            else f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2)


def _editor(
    request: Request, found: Resource | None, *, status: int = 200, **context: Any
) -> Response:
    context.setdefault("error", None)
    context.setdefault("notice", None)
    context.setdefault("test_error", None)
    context.setdefault("payload", _dump(SAMPLE_PAYLOAD))
    return web.render(
        request,
        "automation.html",
        status,
        found=found,
        published=_dump((found.published or {}).get("steps", [])) if found else None,
        **context,
    )
