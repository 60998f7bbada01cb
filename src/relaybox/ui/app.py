"""The console's ASGI app, mounted by bootstrap under ``/console`` beside the API."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from relaybox.errors import RelayboxError
from relaybox.services.container import Services
from relaybox.ui import debugger, designer, messages, templates_pages, web
from relaybox.ui.session import COOKIE, Session, Signer

STATIC = Path(__file__).parent / "static"


def create_console(services: Services, *, secret: str | None = None) -> FastAPI:
    """Build the console app.

    Without ``secret`` (``RELAYBOX_SECRET_KEY``) a random one is made per process: sessions
    then end when the process restarts, and each process of a multi-process deployment
    would reject the others' cookies, so set the key there.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.state.signer = Signer(secret.encode() if secret else secrets.token_bytes(32))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(web.NotSignedIn)
    async def _sign_in_first(request: Request, _: Exception) -> Response:
        return web.redirect(request, "/login")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return web.render(request, "error.html", exc.status_code, message=exc.detail)

    @app.exception_handler(RelayboxError)
    async def _domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RelayboxError)
        return web.render(request, "error.html", exc.status_code, message=exc.message)

    @app.get("/")
    async def index(request: Request) -> Response:
        web.signed_in(request)
        return web.redirect(request, "/runs")

    @app.get("/login")
    async def login_page(request: Request) -> Response:
        return web.render(request, "login.html", error=None)

    @app.post("/login")
    async def login(request: Request) -> Response:
        fields = await web.form(request)
        key = fields.get("api_key", "").strip()
        workspace = await web.services(request).keys.workspace_for(key) if key else None
        if workspace is None:
            return web.render(request, "login.html", 401, error="That API key is not valid.")
        # A fresh CSRF token on sign-in, so a token seen before sign-in is worth nothing after.
        now = web.services(request).clock.now()
        fresh = Session(workspace=workspace, issued_at=now)
        request.state.console_session = fresh
        return web.save(request, web.redirect(request, "/runs"), fresh)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await web.form(request)
        response = web.redirect(request, "/login")
        response.delete_cookie(COOKIE, path=web.root(request) or "/")
        return response

    for module in (debugger, designer, messages, templates_pages):
        app.include_router(module.router)
    return app
