"""Courier's wire shapes for notification templates: request parsing helpers and responses."""

from __future__ import annotations

import re
from typing import Any

from relaybox.clock import to_ms
from relaybox.errors import ValidationError
from relaybox.storage.base import Resource

_STATES = {"DRAFT", "PUBLISHED"}
VERSION = re.compile(r"^v(\d+)$")
_CHECK_STATUSES = ("RESOLVED", "FAILED", "PENDING")


def check_item(item: Any, index: int) -> dict[str, Any]:
    where = f"checks[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise ValidationError(f"{where}.id: Required")
    if item.get("status") not in _CHECK_STATUSES:
        raise ValidationError(f"{where}.status: Expected one of {', '.join(_CHECK_STATUSES)}")
    if item.get("type") != "custom":
        raise ValidationError(f'{where}.type: Expected "custom"')
    return {"id": item["id"], "status": item["status"], "type": "custom"}


def email_headers(value: Any) -> dict[str, Any] | None:
    """Courier's template `email` headers (from, reply_to, cc, bcc); unset fields dropped."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("notification.email: Expected an object or null")
    headers: dict[str, Any] = {}
    for key in ("from", "reply_to"):
        if value.get(key) is not None:
            if not isinstance(value[key], str):
                raise ValidationError(f"notification.email.{key}: Expected a string")
            headers[key] = value[key]
    for key in ("cc", "bcc"):
        if value.get(key) is not None:
            items = value[key]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ValidationError(f"notification.email.{key}: Expected an array of strings")
            headers[key] = items
    return headers


def state_of(body: dict[str, Any]) -> str:
    state = body.get("state") or "DRAFT"
    if not isinstance(state, str) or state.upper() not in _STATES:
        raise ValidationError('state: Expected "DRAFT" or "PUBLISHED"')
    return state.upper()


def version_number(name: str) -> int:
    match = VERSION.match(name)
    if match is None:
        raise ValidationError("Invalid cursor format")
    return int(match.group(1))


def matches(resource: Resource, tags: set[str], event_id: str | None) -> bool:
    draft = resource.draft or {}
    if event_id and event_id not in (resource.id, resource.alias):
        return False
    have = {str(t).lower() for t in draft.get("tags") or []}
    return tags <= have


def state(resource: Resource) -> str:
    published = resource.published is not None and resource.published == resource.draft
    return "PUBLISHED" if published else "DRAFT"


def present(resource: Resource, body: dict[str, Any] | None, *, draft: bool) -> dict[str, Any]:
    """Courier's NotificationTemplateResponse for the draft or a published body of `resource`."""
    body = body or {}
    out: dict[str, Any] = {
        "id": resource.id,
        "name": body.get("name", resource.name),
        "tags": body.get("tags") or [],
        "brand": body.get("brand"),
        "routing": body.get("routing"),
        "subscription": body.get("subscription"),
        "content": body.get("content"),
        "state": state(resource) if draft else "PUBLISHED",
        "created": to_ms(resource.created_at),
        "creator": "api",
        "updated": to_ms(resource.updated_at),
        "updater": "api",
    }
    if body.get("email"):
        out["email"] = body["email"]
    if resource.alias:
        out["alias"] = resource.alias
    return out


def summary(resource: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": resource.id,
        "name": resource.name,
        "tags": (resource.draft or {}).get("tags") or [],
        "state": state(resource),
        "created": to_ms(resource.created_at),
        "creator": "api",
        "updated": to_ms(resource.updated_at),
        "updater": "api",
    }
    topic = ((resource.published or {}).get("subscription") or {}).get("topic_id")
    if topic:
        out["subscription_topic_id"] = out["topic_id"] = topic
    return out
