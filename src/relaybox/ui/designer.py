"""Designer: saved automations edited as forms per step (or JSON), published, aliased, tested.

Saving goes through ``AutomationService.put_draft``, the API's own validation, so the console
accepts exactly what ``PUT /automations/{id}`` accepts and saves nothing it would refuse.
The page's forms are rendered by ``static/designer.js`` from ``step_forms``; what is posted
is the JSON view they keep in sync.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.domain.automation import KNOWN_ACTIONS
from relaybox.errors import RelayboxError, ValidationError
from relaybox.storage.base import Resource
from relaybox.ui import step_forms, web

router = APIRouter()

#: The order of the "new step" menu: the common steps first.
ACTIONS = ["send", "delay", "cancel", "fetch-data", "update-profile", "get-profile", "subscribe"]
ACTIONS += sorted(KNOWN_ACTIONS - set(ACTIONS))

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
    return _editor(request, found, notice=request.query_params.get("notice"))


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
        body: dict[str, Any] = {
            "name": name or None,
            "steps": web.parse_json(steps_text, "Steps are"),
        }
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
    return _back(request, done.id, f"Published version {done.published_version}")


@router.post("/automations/{automation_id}/alias")
async def alias(request: Request, automation_id: str) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    service = web.services(request).automations
    wanted = fields.get("alias", "").strip() or None
    try:
        saved = await service.set_alias(workspace, automation_id, wanted)
    except RelayboxError as exc:
        # An unknown automation raises NotFound again here: a 404, not the editor.
        found = await service.get(workspace, automation_id)
        return _editor(request, found, status=400, alias=wanted or "", alias_error=exc.message)
    return _back(request, saved.id, f"Alias set to {wanted}" if wanted else "Alias removed")


@router.post("/automations/{automation_id}/test")
async def test(request: Request, automation_id: str) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    service = web.services(request).automations
    found = await service.get(workspace, automation_id)
    payload_text = fields.get("payload", "")
    try:
        payload = web.parse_json(payload_text, "Payload is")
        if not isinstance(payload, dict):
            raise ValidationError("Payload: expected a JSON object")
        if fields.get("version") == "draft":
            started = await service.invoke_draft(workspace, found.id, payload)
        elif found.published is None:
            raise ValidationError("Publish the automation before testing the published version.")
        else:
            started = await service.invoke_saved(workspace, found.id, payload)
    except RelayboxError as exc:
        return _editor(request, found, status=400, payload=payload_text, test_error=exc.message)
    return web.redirect(request, f"/runs/{started.run_id}")


async def _find(request: Request, workspace: str, automation_id: str) -> Resource | None:
    try:
        return await web.services(request).automations.get(workspace, automation_id)
    except RelayboxError:
        return None


def _back(request: Request, automation_id: str, notice: str) -> Response:
    return web.redirect(request, f"/automations/{automation_id}?notice={quote_plus(notice)}")


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2)


def _editor(
    request: Request, found: Resource | None, *, status: int = 200, **context: Any
) -> Response:
    draft = (found.draft if found else None) or {}
    context.setdefault("automation_id", found.id if found else "")
    context.setdefault("name", str(draft.get("name") or ""))
    context.setdefault("steps", _dump(draft.get("steps", [])))
    context.setdefault("alias", draft.get("alias") or "")
    context.setdefault("error", None)
    context.setdefault("notice", None)
    context.setdefault("test_error", None)
    context.setdefault("alias_error", None)
    context.setdefault("payload", _dump(SAMPLE_PAYLOAD))
    step, field, message = step_forms.locate(context["error"])
    published = (found.published if found else None) or {}
    return web.render(
        request,
        "automation.html",
        status,
        found=found,
        unpublished=bool(found and published and draft.get("steps") != published.get("steps")),
        forms=step_forms.FORMS,
        common=step_forms.COMMON,
        actions=ACTIONS,
        error_step=step,
        error_field=field,
        error_message=message,
        **context,
    )
