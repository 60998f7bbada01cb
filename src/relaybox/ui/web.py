"""Helpers every console page shares: templates, the session cookie, forms, CSRF, sign-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import HTTPException, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from relaybox.errors import ValidationError
from relaybox.services.container import Services
from relaybox.ui.session import COOKIE, MAX_AGE_SECONDS, Session, Signer

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("relaybox.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


_env.filters["when"] = _when
_env.filters["pretty"] = _pretty


class NotSignedIn(Exception):
    """Raised by ``signed_in``; the app turns it into a redirect to the sign-in page."""


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def root(request: Request) -> str:
    """The console's URL prefix ("/console", or under a base path), for links and cookies."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def session(request: Request) -> Session:
    """This request's session, created (and marked for sending) if the cookie is absent."""
    cached = getattr(request.state, "console_session", None)
    if cached is not None:
        found: Session = cached
        return found
    signer: Signer = request.app.state.signer
    now = services(request).clock.now()
    loaded = signer.load(request.cookies.get(COOKIE), now)
    if loaded is None:
        loaded = Session(issued_at=now, dirty=True)
    request.state.console_session = loaded
    return loaded


def signed_in(request: Request) -> str:
    """The signed-in workspace; every page but sign-in depends on it."""
    workspace = session(request).workspace
    if workspace is None:
        raise NotSignedIn
    return workspace


async def form(request: Request) -> dict[str, str]:
    """The posted urlencoded form (last value wins), checked against the session's CSRF token.

    Parsed by hand: the console's forms are all urlencoded, so python-multipart is not needed.
    """
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    if not session(request).check_csrf(fields.get("csrf")):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the page and try again.")
    return fields


def save(request: Request, response: Response, new: Session | None = None) -> Response:
    current = new or session(request)
    if new is not None or current.dirty:
        signer: Signer = request.app.state.signer
        response.set_cookie(
            COOKIE,
            signer.dump(current),
            max_age=MAX_AGE_SECONDS,
            path=root(request) or "/",
            httponly=True,
            samesite="strict",
            # Secure only over HTTPS: many self-hosted installs run plain HTTP on a LAN or
            # behind a TLS proxy that forwards http.
            secure=request.url.scheme == "https",
        )
    return response


def render(request: Request, template: str, code: int = 200, /, **context: Any) -> Response:
    sess = session(request)
    html = _env.get_template(template).render(
        root=root(request),
        csrf=sess.csrf,
        workspace=sess.workspace,
        path=request.url.path,
        **context,
    )
    return save(request, HTMLResponse(html, status_code=code))


def redirect(request: Request, to: str) -> Response:
    return save(request, RedirectResponse(root(request) + to, status_code=303))


def parse_json(text: str, subject: str) -> Any:
    """``text`` as JSON, or a ValidationError naming where it breaks.

    ``subject`` carries its own verb ("Steps are", "Payload is") so the message reads as English.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ValidationError(f"{subject} not valid JSON: {exc.msg} ({where})") from None
