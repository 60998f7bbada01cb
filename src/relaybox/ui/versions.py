"""An automation's published versions: history, a diff between any two, and roll back."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Request
from starlette.responses import Response

from relaybox.errors import ValidationError
from relaybox.ui import diffs, web

router = APIRouter()


@router.get("/automations/{automation_id}/versions")
async def versions(request: Request, automation_id: str) -> Response:
    workspace = web.signed_in(request)
    service = web.services(request).automations
    found = await service.get(workspace, automation_id)
    history = await service.versions(workspace, found.id)
    q = request.query_params
    newest = str(history[0].version) if history else "draft"
    old_key = q.get("from") or (str(history[1].version) if len(history) > 1 else newest)
    new_key = q.get("to") or ("draft" if old_key == newest else newest)
    lines = None
    if history or "from" in q:
        bodies: dict[str, Any] = {str(v.version): v.body for v in history}
        bodies["draft"] = found.draft or {}
        for key in (old_key, new_key):
            if key not in bodies:
                raise ValidationError(f"No version {key} to compare")
        lines = diffs.unified(_comparable(bodies[old_key]), _comparable(bodies[new_key]))
    return web.render(
        request,
        "versions.html",
        found=found,
        history=history,
        old_key=old_key,
        new_key=new_key,
        lines=lines,
        notice=q.get("notice"),
    )


@router.post("/automations/{automation_id}/versions/{version}/rollback")
async def roll_back(request: Request, automation_id: str, version: int) -> Response:
    await web.form(request)
    workspace = web.signed_in(request)
    done = await web.services(request).automations.roll_back(workspace, automation_id, version)
    notice = f"Rolled back: version {version} is now published as version {done.published_version}"
    return web.redirect(request, f"/automations/{done.id}/versions?notice={quote_plus(notice)}")


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    # The alias is not versioned (it moves at once), so showing it would only add noise.
    return {k: v for k, v in body.items() if k != "alias"}
