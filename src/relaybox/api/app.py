"""The ASGI application: Courier-compatible routes over the shared services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from relaybox import __version__
from relaybox.api import errors, schemas
from relaybox.api.limits import BodyLimit
from relaybox.api.prefix import StripPrefix
from relaybox.api.routes import (
    audiences,
    auth,
    automations,
    brands,
    inbox,
    lists,
    messages,
    notifications,
    preferences,
    profiles,
    providers,
    send,
    webhooks,
)
from relaybox.services.container import Services


def create_app(
    services: Services,
    *,
    max_body_bytes: int = 1_048_576,
    base_path: str = "",
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    ready = {"ok": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup()
        ready["ok"] = True
        try:
            yield
        finally:
            ready["ok"] = False
            if on_shutdown is not None:
                await on_shutdown()

    app = FastAPI(
        title="Relaybox",
        version=__version__,
        description="Self-hosted notification automations that speak Courier's API.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    errors.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        if not ready["ok"]:
            return Response(b'{"status":"starting"}', 503, media_type="application/json")
        return Response(b'{"status":"ok"}', media_type="application/json")

    for module in (automations, notifications, providers, messages, send):
        app.include_router(module.router)
    for module in (profiles, lists, audiences, preferences, brands, webhooks, inbox, auth):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if base_path.strip("/"):
        app.add_middleware(StripPrefix, prefix=base_path)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = schemas.add_components(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
