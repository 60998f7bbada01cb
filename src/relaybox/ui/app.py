"""The console's ASGI app, mounted by bootstrap under ``/console`` beside the API."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from relaybox.errors import RelayboxError
from relaybox.services.admin import AdminSignIn
from relaybox.services.container import Services
from relaybox.ui import (
    debugger,
    designer,
    messages,
    settings_pages,
    signin,
    templates_pages,
    versions,
    web,
)
from relaybox.ui.session import Signer

STATIC = Path(__file__).parent / "static"


def create_console(
    services: Services,
    *,
    secret: str | None = None,
    admin_password: str | None = None,
    admin_password_hash: str | None = None,
) -> FastAPI:
    """Build the console app.

    Without ``secret`` (``RELAYBOX_SECRET_KEY``) a random one is made per process: sessions
    then end when the process restarts, and each process of a multi-process deployment
    would reject the others' cookies, so set the key there.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.state.signer = Signer(secret.encode() if secret else secrets.token_bytes(32))
    app.state.admin = AdminSignIn(
        clock=services.clock, password=admin_password, password_hash=admin_password_hash
    )
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

    modules = (signin, debugger, designer, versions, messages, templates_pages, settings_pages)
    for module in modules:
        app.include_router(module.router)
    return app
