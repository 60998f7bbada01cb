"""Signing in and out: with an API key (its workspace), or the admin password (any workspace)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.errors import ValidationError
from relaybox.services.admin import AdminSignIn, TooManyAttempts
from relaybox.services.keys import DEFAULT_WORKSPACE
from relaybox.ui import web
from relaybox.ui.session import COOKIE, Session

router = APIRouter()


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login(request)


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await web.form(request)
    key = fields.get("api_key", "").strip()
    workspace = await web.services(request).keys.workspace_for(key) if key else None
    if workspace is None:
        return _login(request, 401, error="That API key is not valid.")
    return _signed_in(request, workspace)


@router.post("/login/admin")
async def login_admin(request: Request) -> Response:
    fields = await web.form(request)
    admin = _admin(request)
    if not admin.enabled:
        return _login(request, 404, admin_error="Admin sign-in is not enabled.")
    workspace = fields.get("workspace", "").strip() or DEFAULT_WORKSPACE
    # Behind a proxy every client shares the proxy's address: a lockout then applies to all,
    # which errs on the safe side.
    client = request.client.host if request.client else "unknown"
    try:
        # PBKDF2 takes a good fraction of a second: keep it off the event loop.
        ok = await asyncio.to_thread(admin.sign_in, client, fields.get("password", ""), workspace)
    except TooManyAttempts as exc:
        message = f"Too many failed attempts: try again in {exc.retry_after:.0f} s."
        return _login(request, 429, admin_error=message, workspace=workspace)
    except ValidationError as exc:
        return _login(request, 400, admin_error=exc.message, workspace=workspace)
    if not ok:
        return _login(request, 401, admin_error="Wrong password.", workspace=workspace)
    await web.services(request).keys.ensure_workspace(workspace)
    return _signed_in(request, workspace)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await web.form(request)
    response = web.redirect(request, "/login")
    response.delete_cookie(COOKIE, path=web.root(request) or "/")
    return response


def _admin(request: Request) -> AdminSignIn:
    found: AdminSignIn = request.app.state.admin
    return found


def _login(request: Request, status: int = 200, **context: Any) -> Response:
    context.setdefault("error", None)
    context.setdefault("admin_error", None)
    context["workspace_name"] = context.pop("workspace", DEFAULT_WORKSPACE)
    admin_enabled = _admin(request).enabled
    return web.render(request, "login.html", status, admin_enabled=admin_enabled, **context)


def _signed_in(request: Request, workspace: str) -> Response:
    # A fresh CSRF token on sign-in, so a token seen before sign-in is worth nothing after.
    fresh = Session(workspace=workspace, issued_at=web.services(request).clock.now())
    request.state.console_session = fresh
    return web.save(request, web.redirect(request, "/runs"), fresh)
