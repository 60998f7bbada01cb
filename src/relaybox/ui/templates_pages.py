"""Notification templates: the list, and one template's editor with live preview and test send.

Saving goes through ``NotificationService.replace`` (the API's validation), previews through
``NotificationService.preview`` (the renderer sends use), and a test send through
``SendService`` with the draft's content, so what the page shows is what a send would do.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.errors import RelayboxError, ValidationError
from relaybox.templates.editing import DEFAULT_VERSION
from relaybox.ui import element_forms, step_forms, web

router = APIRouter()

PREVIEW_CHANNELS = ["email", "sms", "push"]
SAMPLE = {"data": {"name": "Ada"}, "profile": {"email": "ada@example.com"}}


@router.get("/templates")
async def templates(request: Request) -> Response:
    workspace = web.signed_in(request)
    cursor = request.query_params.get("cursor") or None
    page = await web.services(request).notifications.list(workspace, cursor)
    return web.render(
        request, "templates.html", templates=page["results"], next_cursor=page["paging"]["cursor"]
    )


@router.get("/templates/{template_id}")
async def template(request: Request, template_id: str) -> Response:
    workspace = web.signed_in(request)
    draft = await web.services(request).notifications.retrieve(workspace, template_id, "draft")
    return _editor(request, draft, notice=request.query_params.get("notice"))


@router.post("/templates/{template_id}")
async def save(request: Request, template_id: str) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    service = web.services(request).notifications
    draft = await service.retrieve(workspace, template_id, "draft")
    publish = fields.get("op") == "publish"
    try:
        content = _content(draft, fields.get("elements", ""))
        body = {
            "state": "PUBLISHED" if publish else "DRAFT",
            "notification": {
                **{k: draft.get(k) for k in ("tags", "brand", "routing", "subscription")},
                "name": fields.get("name", "").strip() or draft["name"],
                "content": content,
            },
        }
        saved = await service.replace(workspace, draft["id"], body)
    except RelayboxError as exc:
        return _editor(request, draft, status=400, error=exc.message, fields=fields)
    notice = "Published" if publish else "Draft saved"
    return web.redirect(request, f"/templates/{saved['id']}?notice={quote_plus(notice)}")


@router.post("/templates/{template_id}/preview")
async def preview(request: Request, template_id: str) -> Response:
    """The preview fragment for the posted (unsaved) elements and sample data."""
    fields = await web.form(request)
    workspace = web.signed_in(request)
    draft = await web.services(request).notifications.retrieve(workspace, template_id, "draft")
    return web.render(request, "_template_preview.html", **_preview(request, draft, fields))


@router.post("/templates/{template_id}/send-test")
async def send_test(request: Request, template_id: str) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    services = web.services(request)
    draft = await services.notifications.retrieve(workspace, template_id, "draft")
    try:
        to = fields.get("to", "").strip()
        if not to:
            raise ValidationError("Recipient: give an email address or a user id")
        sample = _sample(fields.get("sample", ""))
        recipient = {"email": to} if "@" in to else {"user_id": to}
        elements = fields.get("elements") or json.dumps(_elements(draft.get("content")))
        message = {
            "to": recipient,
            "content": _content(draft, elements),
            "data": sample["data"],
            "metadata": {"tags": ["console-test"]},
        }
        accepted = await services.sending.send(workspace, {"message": message})
    except RelayboxError as exc:
        return _editor(request, draft, status=400, send_error=exc.message, fields=fields)
    return web.redirect(request, f"/messages/{accepted.request_id}")


def _content(draft: dict[str, Any], elements_text: str) -> dict[str, Any]:
    """The template's content with the edited elements (other content fields kept)."""
    elements = web.parse_json(elements_text, "Elements are")
    current = draft.get("content") if isinstance(draft.get("content"), dict) else {}
    kept = {k: v for k, v in (current or {}).items() if k not in {"elements", "title", "body"}}
    return {"version": DEFAULT_VERSION, **kept, "elements": elements}


def _elements(content: Any) -> list[Any]:
    """Elemental elements of stored content; ``{title, body}`` sugar as its two elements."""
    if not isinstance(content, dict):
        return []
    if isinstance(content.get("elements"), list):
        return list(content["elements"])
    found: list[Any] = []
    if content.get("title"):
        found.append({"type": "meta", "title": content["title"]})
    if content.get("body"):
        found.append({"type": "text", "content": content["body"]})
    return found


def _sample(text: str) -> dict[str, Any]:
    if not text.strip():
        return {"data": {}, "profile": {}}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Sample data is not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValidationError("Sample data: expected a JSON object with data and profile")
    data, profile = raw.get("data") or {}, raw.get("profile") or {}
    if not isinstance(data, dict) or not isinstance(profile, dict):
        raise ValidationError("Sample data: data and profile must be objects")
    return {"data": data, "profile": profile}


def _preview(request: Request, draft: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    try:
        content = _content(draft, fields["elements"]) if "elements" in fields else draft["content"]
        sample = _sample(fields.get("sample", json.dumps(SAMPLE)))
    except ValidationError as exc:
        return {"previews": [], "preview_error": exc.message}
    rendered = web.services(request).notifications.preview(
        content, channels=PREVIEW_CHANNELS, data=sample["data"], profile=sample["profile"]
    )
    previews: list[dict[str, Any]] = []
    for channel, out in rendered.items():
        if isinstance(out, str):
            previews.append({"channel": channel, "error": out})
            continue
        parts = dict(out.parts)
        previews.append(
            {
                "channel": channel,
                "error": None,
                "subject": out.subject,
                "text": out.text,
                "html": out.html,
                "title": parts.get("title") or out.subject,
                "body": parts.get("body") or out.text,
            }
        )
    return {"previews": previews, "preview_error": None}


def _editor(
    request: Request,
    draft: dict[str, Any],
    *,
    status: int = 200,
    fields: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    fields = fields or {}
    elements = fields.get("elements") or json.dumps(_elements(draft.get("content")), indent=2)
    sample = fields.get("sample") or json.dumps(SAMPLE, indent=2)
    context.setdefault("error", None)
    context.setdefault("notice", None)
    context.setdefault("send_error", None)
    index, field, message = step_forms.locate(context["error"], "elements")
    return web.render(
        request,
        "template.html",
        status,
        draft=draft,
        name=fields.get("name") or draft["name"],
        elements=elements,
        sample=sample,
        to=fields.get("to", ""),
        forms=element_forms.FORMS,
        common=element_forms.COMMON,
        types=element_forms.TYPES,
        error_index=index,
        error_field=field,
        error_message=message,
        **_preview(request, draft, {"elements": elements, "sample": sample}),
        **context,
    )
