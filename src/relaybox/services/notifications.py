"""Notification templates through Courier's /notifications surface.

A template is a resource whose draft is edited (whole, per content, per element, per locale)
and published into immutable numbered versions ("v001", ...). Archiving keeps the template and
its versions readable by id but hides it from sends, listings and alias lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from relaybox import ids
from relaybox.clock import Clock, to_ms
from relaybox.engine.messaging import NOTIFICATION_KIND
from relaybox.errors import ConflictError, NotFound, ValidationError
from relaybox.services import notification_wire as wire
from relaybox.services import paging, template_metrics
from relaybox.storage.base import Resource, Store
from relaybox.templates import editing, render


class ContentValidator(Protocol):
    def __call__(self, content: Any) -> None: ...


_FIELDS = ("name", "tags", "brand", "routing", "subscription", "content")
PAGE_SIZE = 50
#: Approval checks of a template submission, one resource per (template, submission).
CHECKS_KIND = "notification_checks"
VERSIONS_PAGE_MAX = 10


def version_name(number: int) -> str:
    return f"v{number:03d}"


def _new_element_id() -> str:
    return ids.short_id("el")


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

    # --- whole templates ---------------------------------------------------------------------

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
        return wire.present(saved, saved.draft, draft=True)

    async def replace(
        self, workspace_id: str, template_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = await self._live(workspace_id, template_id)
        payload, state = self._parse(body)
        raw = body["notification"]
        if "alias" not in raw and current.alias is not None:
            # Courier: omit the alias to keep it, send null to remove it.
            payload["alias"] = current.alias
        if "email" not in raw and (current.draft or {}).get("email"):
            # Likewise the email headers: omitted keeps them, null clears them.
            payload["email"] = (current.draft or {})["email"]
        saved = await self._save_draft(current, payload, state)
        return wire.present(saved, saved.draft, draft=True)

    async def retrieve(
        self, workspace_id: str, template_id: str, version: str | None
    ) -> dict[str, Any]:
        found = await self._get(workspace_id, template_id)
        body = await self._version_body(found, version)
        return wire.present(found, body, draft=version == "draft")

    async def list(
        self,
        workspace_id: str,
        cursor: str | None,
        *,
        tags: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        wanted = {t.strip().lower() for t in (tags or "").split(",") if t.strip()}
        after = paging.decode(cursor)
        results: list[Resource] = []
        more = False
        # Filters apply before paging (Courier), so read store pages until one of ours fills.
        while True:
            page = await self._store.list_resources(
                workspace_id, NOTIFICATION_KIND, after=after, limit=PAGE_SIZE + 1
            )
            for resource in page[:PAGE_SIZE]:
                if wire.matches(resource, wanted, event_id):
                    if len(results) == PAGE_SIZE:
                        more = True
                        break
                    results.append(resource)
            if more or len(page) <= PAGE_SIZE:
                break
            after = page[PAGE_SIZE - 1].id
        last = results[-1].id if results else None
        return {"paging": paging.paging(more, last), "results": [wire.summary(r) for r in results]}

    async def archive(self, workspace_id: str, template_id: str) -> None:
        found = await self._get(workspace_id, template_id)
        if found.archived_at is None:
            await self._store.archive_resource(
                workspace_id, NOTIFICATION_KIND, found.id, self._clock.now()
            )
            self._on_change(workspace_id)

    # --- versions ---------------------------------------------------------------------------

    async def list_versions(
        self, workspace_id: str, template_id: str, cursor: str | None, limit: int | None
    ) -> dict[str, Any]:
        found = await self._get(workspace_id, template_id)
        size = VERSIONS_PAGE_MAX if limit is None else limit
        if size < 1:
            raise ValidationError("limit: Expected a positive integer")
        size = min(size, VERSIONS_PAGE_MAX)
        before_key = paging.decode(cursor)
        entries: list[dict[str, Any]] = []
        if before_key is None and found.draft is not None:
            entries.append(
                {
                    "version": "draft",
                    "created": to_ms(found.updated_at),
                    "creator": "api",
                    "has_changes": found.draft != found.published,
                }
            )
        before = None if before_key is None else wire.version_number(before_key)
        versions = await self._store.list_resource_versions(
            workspace_id, NOTIFICATION_KIND, found.id, before=before, limit=size + 1
        )
        more = len(versions) > size
        for v in versions[:size]:
            name = version_name(v.version)
            if v.version == found.published_version:
                name = f"published:{name}"
            entries.append({"version": name, "created": to_ms(v.published_at), "creator": "api"})
        last = version_name(versions[size - 1].version) if more else None
        return {"versions": entries, "paging": paging.paging(more, last)}

    async def publish(
        self, workspace_id: str, template_id: str, body: dict[str, Any] | None = None
    ) -> None:
        wanted = (body or {}).get("version")
        found = await self._live(workspace_id, template_id)
        if wanted is None:
            if found.published is None or found.published != found.draft:
                await self._publish(found)
            return
        if not isinstance(wanted, str) or wire.VERSION.match(wanted) is None:
            raise ValidationError("version: Expected format: v001, v002, etc.")
        published = await self._store.publish_resource(
            workspace_id,
            NOTIFICATION_KIND,
            found.id,
            self._clock.now(),
            version=wire.version_number(wanted),
        )
        if published is None:
            raise NotFound(f"Version not found for template {found.id}")
        self._on_change(workspace_id)

    # --- content, elements, locales ---------------------------------------------------------

    async def get_content(
        self, workspace_id: str, template_id: str, version: str | None
    ) -> dict[str, Any]:
        found = await self._get(workspace_id, template_id)
        body = await self._version_body(found, version)
        return editing.content_with_checksums(body.get("content") or {})

    async def put_content(
        self, workspace_id: str, template_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        content = body.get("content")
        if not isinstance(content, dict):
            raise ValidationError("content: Required")
        if not isinstance(content.get("elements"), list):
            raise ValidationError("content.elements: Expected an array of elements")
        content = {"version": editing.DEFAULT_VERSION, **content}
        return await self._edit_content(workspace_id, template_id, body, lambda _: content)

    async def put_element(
        self, workspace_id: str, template_id: str, element_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(body.get("type"), str) or not body["type"]:
            raise ValidationError("type: Required")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise ValidationError("data: Expected an object")
        element = {k: v for k, v in body.items() if k not in ("state", "data")} | data
        return await self._edit_content(
            workspace_id,
            template_id,
            body,
            lambda content: editing.replace_element(content, element_id, element, template_id),
        )

    async def put_locale(
        self, workspace_id: str, template_id: str, locale: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        overrides = body.get("elements")
        if not isinstance(overrides, list) or not all(isinstance(o, dict) for o in overrides):
            raise ValidationError("elements: Required")
        return await self._edit_content(
            workspace_id,
            template_id,
            body,
            lambda content: editing.set_locale(content, locale, overrides, template_id),
        )

    async def _edit_content(
        self,
        workspace_id: str,
        template_id: str,
        body: dict[str, Any],
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        state = wire.state_of(body)
        current = await self._live(workspace_id, template_id)
        draft = dict(current.draft or {})
        content = editing.with_element_ids(
            change(dict(draft.get("content") or {})), _new_element_id
        )
        self._check_content(content, "content")
        saved = await self._save_draft(current, {**draft, "content": content}, state)
        return {
            "id": saved.id,
            "version": content.get("version") or editing.DEFAULT_VERSION,
            "elements": editing.checksums(content),
            "state": wire.state(saved),
        }

    # --- metrics ------------------------------------------------------------------------------

    async def metrics(
        self,
        workspace_id: str,
        template_id: str,
        *,
        start: str | None = None,
        end: str | None = None,
        lookback: str | None = None,
        granularity: str | None = None,
    ) -> dict[str, Any]:
        """The template's delivery funnel per bucket; an unknown id has an all-empty series."""
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        begin, finish, grain, buckets = template_metrics.window(
            now, start=start, end=end, lookback=lookback, granularity=granularity
        )
        found = await self._store.get_resource(
            workspace_id, NOTIFICATION_KIND, template_id, include_archived=True
        )
        names = (
            {template_id} if found is None else {found.id, *([found.alias] if found.alias else [])}
        )
        messages = await template_metrics.template_messages(
            self._store, workspace_id, sorted(names), begin, finish
        )
        tallied = template_metrics.tally(messages, grain)
        return template_metrics.present(template_id, begin, finish, grain, buckets, tallied)

    # --- submission checks ------------------------------------------------------------------

    async def put_checks(
        self, workspace_id: str, template_id: str, submission_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace the approval checks of a submission with the complete set given."""
        found = await self._get(workspace_id, template_id)
        checks = body.get("checks")
        if not isinstance(checks, list):
            raise ValidationError("checks: Required")
        now = self._clock.now()
        stored = [
            {**wire.check_item(item, index), "updated": to_ms(now)}
            for index, item in enumerate(checks)
        ]
        record = Resource(
            workspace_id=workspace_id,
            kind=CHECKS_KIND,
            id=f"{found.id}/{submission_id}",
            published={"checks": stored},
            created_at=now,
            updated_at=now,
        )
        await self._store.put_resource(record)
        return {"checks": stored}

    async def list_checks(
        self, workspace_id: str, template_id: str, submission_id: str
    ) -> dict[str, Any]:
        found = await self._get(workspace_id, template_id)
        record = await self._store.get_resource(
            workspace_id, CHECKS_KIND, f"{found.id}/{submission_id}"
        )
        return {"checks": [] if record is None else (record.published or {}).get("checks", [])}

    async def cancel_submission(
        self, workspace_id: str, template_id: str, submission_id: str
    ) -> None:
        found = await self._get(workspace_id, template_id)
        await self._store.delete_resource(workspace_id, CHECKS_KIND, f"{found.id}/{submission_id}")

    # --- helpers ------------------------------------------------------------------------------

    async def _save_draft(self, current: Resource, payload: dict[str, Any], state: str) -> Resource:
        updated = replace(
            current,
            alias=payload.get("alias"),
            name=payload.get("name", current.name),
            draft=payload,
            updated_at=self._clock.now(),
        )
        saved = await self._store.put_resource(updated)
        if state == "PUBLISHED":
            saved = await self._publish(saved)
        return saved

    async def _version_body(self, found: Resource, version: str | None) -> dict[str, Any]:
        chosen = version or "published"
        if chosen == "draft":
            return found.draft or {}
        if chosen == "published":
            if found.published is None:
                raise NotFound(f"Notification template {found.id} has no published version")
            return found.published
        match = wire.VERSION.match(chosen)
        if match is None:
            raise ValidationError(
                f'Invalid version parameter "{chosen}". Accepted values are: published '
                "(for published templates), draft (for draft templates) or a version such as v001"
            )
        stored = await self._store.get_resource_version(
            found.workspace_id, NOTIFICATION_KIND, found.id, int(match.group(1))
        )
        if stored is None:
            raise NotFound(f"Version {chosen} not found for template {found.id}")
        return stored.body

    def preview(
        self,
        content: Any,
        *,
        channels: Sequence[str],
        data: dict[str, Any],
        profile: dict[str, Any],
    ) -> dict[str, render.RenderedContent | str]:
        """Render ``content`` per channel as a send would (the message when it cannot be)."""
        variables = render.template_variables(data, profile, recipient=None, brand=None)
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
        """By id (archived included) or by a live template's alias."""
        found = await self._store.get_resource(
            workspace_id, NOTIFICATION_KIND, template_id, include_archived=True
        ) or await self._store.get_resource(workspace_id, NOTIFICATION_KIND, template_id)
        if found is None:
            raise NotFound(f"Notification template {template_id} not found")
        return found

    async def _live(self, workspace_id: str, template_id: str) -> Resource:
        """A template that may still be changed: archived ones are read-only."""
        found = await self._get(workspace_id, template_id)
        if found.archived_at is not None:
            raise ConflictError(
                f"Notification template {found.id} is archived; it can be read but not "
                "changed or published"
            )
        return found

    def _check_content(self, content: Any, where: str) -> None:
        try:
            self._validate_content(content)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from None

    def _parse_content(self, content: Any) -> dict[str, Any]:
        if not isinstance(content, dict):
            raise ValidationError("notification.content: Expected an object")
        if not isinstance(content.get("version"), str):
            # Templates take versioned Elemental only; `{title, body}` sugar is for /send.
            raise ValidationError("notification.content.version: Required")
        if not isinstance(content.get("elements"), list):
            raise ValidationError("notification.content.elements: Required")
        with_ids = editing.with_element_ids(content, _new_element_id)
        self._check_content(with_ids, "notification.content")
        return with_ids

    def _parse(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        raw = body.get("notification")
        if not isinstance(raw, dict):
            raise ValidationError("notification: Required")
        missing = [f"notification.{k}: Required" for k in ("name", "content") if k not in raw]
        if missing:
            raise ValidationError("; ".join(missing))
        if not isinstance(raw["name"], str) or not raw["name"].strip():
            raise ValidationError("notification.name: Expected a non-empty string")
        content = self._parse_content(raw["content"])
        tags = raw.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValidationError("notification.tags: Expected an array of strings")
        for key in ("brand", "routing", "subscription"):
            if raw.get(key) is not None and not isinstance(raw[key], dict):
                raise ValidationError(f"notification.{key}: Expected an object or null")
        brand = raw.get("brand")
        if brand is not None and not isinstance(brand.get("id"), str):
            raise ValidationError("notification.brand.id: Required")
        payload = {k: raw.get(k) for k in _FIELDS}
        payload["tags"] = tags
        payload["content"] = content
        email = wire.email_headers(raw.get("email"))
        if email:
            payload["email"] = email
        if raw.get("alias") is not None:
            if not isinstance(raw["alias"], str) or not raw["alias"]:
                raise ValidationError("notification.alias: Expected a non-empty string")
            if raw["alias"].startswith("tenant/"):
                raise ValidationError('notification.alias: may not begin with "tenant/"')
            payload["alias"] = raw["alias"]
        return payload, wire.state_of(body)
