"""Serve the API under a path prefix, as when the SDK's base URL is ``http://host/courier``."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class StripPrefix:
    """Route ``/prefix/automations/…`` as ``/automations/…``; unprefixed paths still work."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = "/" + prefix.strip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.prefix != "/":
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                scope = dict(scope)
                scope["path"] = path[len(self.prefix) :] or "/"
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and raw.startswith(self.prefix.encode()):
                    scope["raw_path"] = raw[len(self.prefix) :] or b"/"
        await self.app(scope, receive, send)
