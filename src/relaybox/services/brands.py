"""Brands through Courier's /brands surface, stored as resources of kind "brand".

A brand has no draft: create and replace publish at once, and each write bumps its version.
The brand whose id is `default` is the workspace's default brand (used by sends and templates
that name no brand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from relaybox import ids
from relaybox.clock import Clock, to_ms
from relaybox.engine.brands import BRAND_KIND
from relaybox.errors import ConflictError, NotFound, ValidationError
from relaybox.services import paging
from relaybox.storage.base import Resource, Store

PAGE_SIZE = 50


class BrandService:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        validate_template: Callable[[str], None],
        on_change: Callable[[str], None] = lambda workspace_id: None,
    ) -> None:
        self._store = store
        self._clock = clock
        #: Checks that a brand's Handlebars text (footer, snippets) compiles.
        self._validate_template = validate_template
        self._on_change = on_change

    async def create(self, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        brand_id = body.get("id")
        if brand_id is not None and (not isinstance(brand_id, str) or not brand_id.strip()):
            raise ValidationError("id: Expected a non-empty string")
        if body.get("settings") is None:
            raise ValidationError("settings: Required")
        fields = self._parse(body)
        brand_id = brand_id or ids.short_id("brand")
        if await self._store.get_resource(workspace_id, BRAND_KIND, brand_id) is not None:
            raise ConflictError(f"Brand {brand_id} already exists")
        now = self._clock.now()
        resource = Resource(
            workspace_id=workspace_id,
            kind=BRAND_KIND,
            id=brand_id,
            name=fields["name"],
            published=fields,
            published_version=1,
            published_at=now,
            created_at=now,
            updated_at=now,
        )
        saved = await self._store.put_resource(resource)
        self._on_change(workspace_id)
        return present(saved)

    async def retrieve(self, workspace_id: str, brand_id: str) -> dict[str, Any]:
        return present(await self._get(workspace_id, brand_id))

    async def list(self, workspace_id: str, cursor: str | None) -> dict[str, Any]:
        page = await self._store.list_resources(
            workspace_id, BRAND_KIND, after=paging.decode(cursor), limit=PAGE_SIZE + 1
        )
        more = len(page) > PAGE_SIZE
        page = page[:PAGE_SIZE]
        last = page[-1].id if page else None
        return {"paging": paging.paging(more, last), "results": [present(r) for r in page]}

    async def replace(
        self, workspace_id: str, brand_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = await self._get(workspace_id, brand_id)
        fields = self._parse(body)
        now = self._clock.now()
        updated = replace(
            current,
            name=fields["name"],
            published=fields,
            published_version=current.published_version + 1,
            published_at=now,
            updated_at=now,
        )
        saved = await self._store.put_resource(updated)
        self._on_change(workspace_id)
        return present(saved)

    async def delete(self, workspace_id: str, brand_id: str) -> None:
        found = await self._get(workspace_id, brand_id)
        await self._store.delete_resource(workspace_id, BRAND_KIND, found.id)
        self._on_change(workspace_id)

    async def _get(self, workspace_id: str, brand_id: str) -> Resource:
        found = await self._store.get_resource(workspace_id, BRAND_KIND, brand_id)
        if found is None:
            raise NotFound(f"Brand {brand_id} not found")
        return found

    def _parse(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name: Required")
        settings = body.get("settings")
        snippets = body.get("snippets")
        if settings is not None:
            _check_settings(settings)
            footer = ((settings.get("email") or {}).get("footer") or {}).get("markdown")
            if isinstance(footer, str):
                self._check_template(footer, "settings.email.footer.markdown")
        if snippets is not None:
            _check_snippets(snippets)
            for index, item in enumerate(snippets.get("items") or []):
                self._check_template(item["value"], f"snippets.items[{index}].value")
        return {"name": name, "settings": settings or {}, "snippets": snippets}

    def _check_template(self, source: str, where: str) -> None:
        try:
            self._validate_template(source)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where}: Expected an object")
    return value


def _string(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{where}: Expected a string")


def _check_settings(settings: Any) -> None:
    settings = _object(settings, "settings")
    colors = _object(settings.get("colors"), "settings.colors")
    for key, value in colors.items():
        _string(value, f"settings.colors.{key}")
    email = _object(settings.get("email"), "settings.email")
    header = _object(email.get("header"), "settings.email.header")
    _string(header.get("barColor"), "settings.email.header.barColor")
    logo = _object(header.get("logo"), "settings.email.header.logo")
    for key in ("href", "image"):
        _string(logo.get(key), f"settings.email.header.logo.{key}")
    footer = _object(email.get("footer"), "settings.email.footer")
    _string(footer.get("markdown"), "settings.email.footer.markdown")
    social = _object(footer.get("social"), "settings.email.footer.social")
    for network, link in social.items():
        _string(_object(link, f"settings.email.footer.social.{network}").get("url"), "url")
    head = _object(email.get("head"), "settings.email.head")
    _string(head.get("content"), "settings.email.head.content")
    override = _object(email.get("templateOverride"), "settings.email.templateOverride")
    for key in ("head", "header", "footer", "backgroundColor", "blocksBackgroundColor", "width"):
        _string(override.get(key), f"settings.email.templateOverride.{key}")
    _object(settings.get("inapp"), "settings.inapp")


def _check_snippets(snippets: Any) -> None:
    items = _object(snippets, "snippets").get("items") or []
    if not isinstance(items, list):
        raise ValidationError("snippets.items: Expected an array")
    for index, item in enumerate(items):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("value"), str)
        ):
            raise ValidationError(f"snippets.items[{index}]: Expected {{name, value}} strings")


def present(resource: Resource) -> dict[str, Any]:
    """Courier's Brand."""
    body = resource.published or {}
    return {
        "id": resource.id,
        "name": body.get("name", resource.name),
        "created": to_ms(resource.created_at),
        "updated": to_ms(resource.updated_at),
        "published": None if resource.published_at is None else to_ms(resource.published_at),
        "version": f"v{resource.published_version:03d}",
        "settings": body.get("settings") or {},
        "snippets": body.get("snippets"),
    }
