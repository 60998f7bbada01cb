"""Settings: provider configurations and API keys, through the same services as the API.

Provider secrets arrive masked from ``ProviderService`` and are never put in a page; the
service keeps the stored secret when the mask comes back unchanged. A new API key is shown
once, on the page that created it, and only its first characters afterwards.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.errors import RelayboxError, ValidationError
from relaybox.ui import web

router = APIRouter()

#: Suggestions for the provider field; the service decides what is valid.
PROVIDER_KINDS = {
    "smtp": '{"host": "smtp.example.com", "port": 587, "from_address": "me@example.com", '
    '"username": "me", "password": "…"}',
    "webhook": '{"url": "https://example.com/hook", "secret": "…"}',
}


@router.get("/settings")
async def settings_index(request: Request) -> Response:
    web.signed_in(request)
    return web.redirect(request, "/settings/providers")


@router.get("/settings/providers")
async def providers(request: Request) -> Response:
    workspace = web.signed_in(request)
    page = await web.services(request).providers.list(workspace, request.query_params.get("cursor"))
    return web.render(
        request,
        "providers.html",
        providers=page["results"],
        next_cursor=page["paging"]["cursor"],
        notice=request.query_params.get("notice"),
    )


@router.get("/settings/providers/new")
async def new_provider(request: Request) -> Response:
    web.signed_in(request)
    return _provider_form(request, None, kind="smtp", title="", alias="", settings="{}")


@router.get("/settings/providers/{provider_id}")
async def edit_provider(request: Request, provider_id: str) -> Response:
    workspace = web.signed_in(request)
    found = await web.services(request).providers.retrieve(workspace, provider_id)
    return _provider_form(
        request,
        found,
        kind=found["provider"],
        title=found["title"],
        alias=found["alias"] or "",
        settings=json.dumps(found["settings"], indent=2),
    )


@router.post("/settings/providers")
async def save_provider(request: Request) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    service = web.services(request).providers
    provider_id = fields.get("id", "").strip()
    found = await service.retrieve(workspace, provider_id) if provider_id else None
    kind = fields.get("provider", "").strip()
    title = fields.get("title", "").strip()
    alias = fields.get("alias", "").strip()
    settings_text = fields.get("settings", "")
    try:
        settings = _object(settings_text)
        body: dict[str, Any] = {"provider": kind, "title": title or None, "alias": alias or None}
        if found is None:
            saved = await service.create(workspace, {**body, "settings": settings})
        else:
            # The service keeps a stored secret that comes back as the mask it showed.
            saved = await service.replace(workspace, found["id"], {**body, "settings": settings})
    except RelayboxError as exc:
        return _provider_form(
            request,
            found,
            status=400,
            kind=kind,
            title=title,
            alias=alias,
            settings=settings_text,
            error=exc.message,
        )
    notice = f"Saved provider {saved['title']}"
    return web.redirect(request, f"/settings/providers?notice={quote_plus(notice)}")


@router.post("/settings/providers/{provider_id}/delete")
async def delete_provider(request: Request, provider_id: str) -> Response:
    await web.form(request)
    workspace = web.signed_in(request)
    await web.services(request).providers.delete(workspace, provider_id)
    return web.redirect(request, "/settings/providers?notice=Provider+deleted")


@router.get("/settings/keys")
async def keys(request: Request) -> Response:
    workspace = web.signed_in(request)
    return await _keys_page(request, workspace, notice=request.query_params.get("notice"))


@router.post("/settings/keys")
async def create_key(request: Request) -> Response:
    fields = await web.form(request)
    workspace = web.signed_in(request)
    test = fields.get("mode") == "test"
    key = await web.services(request).keys.create(workspace, test=test)
    # Rendered, not redirected: the key must not travel in a URL or be shown again.
    return await _keys_page(request, workspace, created=key)


@router.post("/settings/keys/{key_hash}/revoke")
async def revoke_key(request: Request, key_hash: str) -> Response:
    await web.form(request)
    workspace = web.signed_in(request)
    await web.services(request).keys.revoke(workspace, key_hash)
    return web.redirect(request, "/settings/keys?notice=Key+revoked")


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValidationError(f"settings: not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValidationError("settings: Expected object")
    return value


def _provider_form(
    request: Request, found: dict[str, Any] | None, *, status: int = 200, **context: Any
) -> Response:
    context.setdefault("error", None)
    return web.render(
        request, "provider.html", status, found=found, kinds=PROVIDER_KINDS, **context
    )


async def _keys_page(
    request: Request, workspace: str, *, created: str | None = None, notice: str | None = None
) -> Response:
    listed = await web.services(request).keys.list(workspace)
    return web.render(request, "keys.html", keys=listed, created=created, notice=notice)
