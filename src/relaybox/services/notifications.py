"""Notification templates through Courier's /notifications surface (create, read, publish)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from relaybox import ids
from relaybox.clock import Clock, to_ms
from relaybox.engine.messaging import NOTIFICATION_KIND
from relaybox.errors import NotFound, ValidationError
from relaybox.storage.base import Resource, Store
from relaybox.templates import render


class ContentValidator(Protocol):
    def __call__(self, content: Any) -> None: ...


_FIELDS = ("name", "tags", "brand", "routing", "subscription", "content")


class NotificationService:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        validate_content: ContentValidator,
        on_change: Callable[[str], None] = lambda workspace_id: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._validate_content = validate_content
        #: Told the workspace whenever a template is published or archived (cache invalidation).
        self._on_change = on_change

    async def create(self, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        payload, state = self._parse(body)
        now = self._clock.now()
        resource = Resource(
            workspace_id=workspace_id,
            kind=NOTIFICATION_KIND,
            id=ids.short_id("nt"),
            alias=payload.get("alias"),
            name=payload["name"],
            draft=payload,
            created_at=now,
            updated_at=now,
        )
        saved = await self._store.put_resource(resource)
        if state == "PUBLISHED":
            saved = await self._publish(saved)
        return present(saved, "draft")

    async def replace(
        self, workspace_id: str, template_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = await self._get(workspace_id, template_id)
        payload, state = self._parse(body)
        if "alias" not in payload and current.alias is not None:
            payload["alias"] = current.alias
        updated = replace(
            current,
            alias=payload.get("alias"),
            name=payload["name"],
            draft=payload,
            updated_at=self._clock.now(),
        )
        saved = await self._store.put_resource(updated)
        if state == "PUBLISHED":
            saved = await self._publish(saved)
        return present(saved, "draft")

    async def retrieve(
        self, workspace_id: str, template_id: str, version: str | None
    ) -> dict[str, Any]:
        found = await self._get(workspace_id, template_id)
        chosen = version or "draft"
        if chosen not in {"draft", "published"} and not chosen.startswith("v"):
            raise ValidationError(
                f'Invalid version parameter "{chosen}". Accepted values are: published '
                "(for published templates) or draft (for draft templates)"
            )
        if chosen != "draft" and found.published is None:
            raise NotFound(f"Notification template {template_id} has no published version")
        return present(found, "published" if chosen != "draft" else "draft")

    async def list(self, workspace_id: str, cursor: str | None) -> dict[str, Any]:
        page = await self._store.list_resources(
            workspace_id, NOTIFICATION_KIND, after=cursor or None, limit=51
        )
        more = len(page) > 50
        page = page[:50]
        return {
            "paging": {"more": more, "cursor": page[-1].id if more else None},
            "results": [_summary(r) for r in page],
        }

    async def publish(self, workspace_id: str, template_id: str) -> None:
        await self._publish(await self._get(workspace_id, template_id))

    async def archive(self, workspace_id: str, template_id: str) -> None:
        found = await self._get(workspace_id, template_id)
        await self._store.delete_resource(workspace_id, NOTIFICATION_KIND, found.id)
        self._on_change(workspace_id)

    def preview(
        self,
        content: Any,
        *,
        channels: Sequence[str],
        data: dict[str, Any],
        profile: dict[str, Any],
        recipient: str | None = None,
    ) -> dict[str, render.RenderedContent | str]:
        """Render ``content`` per channel as a send would (the message when it cannot be)."""
        variables = {
            **data,
            "data": data,
            "profile": profile,
            "recipient": recipient,
            "brand": None,
        }
        out: dict[str, render.RenderedContent | str] = {}
        for channel in channels:
            try:
                out[channel] = render.render(content, channel=channel, variables=variables)
            except ValidationError as exc:
                out[channel] = exc.message
        return out

    async def _publish(self, resource: Resource) -> Resource:
        published = await self._store.publish_resource(
            resource.workspace_id, NOTIFICATION_KIND, resource.id, self._clock.now()
        )
        if published is None:
            raise NotFound(f"Notification template {resource.id} not found")
        self._on_change(resource.workspace_id)
        return published

    async def _get(self, workspace_id: str, template_id: str) -> Resource:
        found = await self._store.get_resource(workspace_id, NOTIFICATION_KIND, template_id)
        if found is None:
            raise NotFound(f"Notification template {template_id} not found")
        return found

    def _parse(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        raw = body.get("notification")
        if not isinstance(raw, dict):
            raise ValidationError("notification: Required")
        missing = [f"notification.{k}: Required" for k in ("name", "content") if k not in raw]
        if missing:
            raise ValidationError("; ".join(missing))
        if not isinstance(raw["name"], str) or not raw["name"].strip():
            raise ValidationError("notification.name: Expected a non-empty string")
        try:
            self._validate_content(raw["content"])
        except ValidationError as exc:
            raise ValidationError(f"notification.content: {exc.message}") from None
        tags = raw.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValidationError("notification.tags: Expected an array of strings")
        payload = {k: raw.get(k) for k in _FIELDS}
        payload["tags"] = tags
        if raw.get("alias") is not None:
            if not isinstance(raw["alias"], str) or not raw["alias"]:
                raise ValidationError("notification.alias: Expected a non-empty string")
            payload["alias"] = raw["alias"]
        state = body.get("state") or "DRAFT"
        if state not in {"DRAFT", "PUBLISHED"}:
            raise ValidationError('state: Expected "DRAFT" or "PUBLISHED"')
        return payload, state


def _state(resource: Resource) -> str:
    published = resource.published is not None and resource.published == resource.draft
    return "PUBLISHED" if published else "DRAFT"


def present(resource: Resource, version: str) -> dict[str, Any]:
    body = (resource.published if version == "published" else resource.draft) or {}
    out: dict[str, Any] = {
        "id": resource.id,
        "name": body.get("name", resource.name),
        "tags": body.get("tags") or [],
        "brand": body.get("brand"),
        "routing": body.get("routing"),
        "subscription": body.get("subscription"),
        "content": body.get("content"),
        "state": "PUBLISHED" if version == "published" else _state(resource),
        "created": to_ms(resource.created_at),
        "creator": "api",
        "updated": to_ms(resource.updated_at),
        "updater": "api",
    }
    if resource.alias:
        out["alias"] = resource.alias
    return out


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "id": resource.id,
        "name": resource.name,
        "tags": (resource.draft or {}).get("tags") or [],
        "state": _state(resource),
        "created": to_ms(resource.created_at),
        "creator": "api",
        "updated": to_ms(resource.updated_at),
        "updater": "api",
    }
