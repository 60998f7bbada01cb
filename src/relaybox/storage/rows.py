"""Translation between records and flat rows, shared by the SQL backends."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from relaybox.domain.run import Run, RunContext, RunStatus, StepState
from relaybox.errors import ValidationError
from relaybox.storage.base import Message, MessageEvent, Resource

RUN_COLUMNS = (
    "id, workspace_id, template_id, source, status, cancelation_token, definition, context, "
    "steps, cursor, error, due_at, lease_token, created_at, updated_at"
)
RESOURCE_COLUMNS = (
    "workspace_id, kind, id, alias, name, draft, published, published_version, published_at, "
    "created_at, updated_at, archived_at"
)
MESSAGE_COLUMNS = (
    "id, workspace_id, status, recipient, notification, event, run_id, channel, provider, "
    "idempotency_key, attempts, attempt_state, enqueued_at, sent_at, delivered_at, error, "
    "reason, content, providers, updated_at, tags, trace_id, request_id"
)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


def run_params(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "workspace_id": run.workspace_id,
        "template_id": run.template_id,
        "source": run.source,
        "status": run.status.value,
        "cancelation_token": run.cancelation_token,
        "definition": dumps({"steps": list(run.steps_def)}),
        "context": dumps(run.context.to_json()),
        "steps": dumps([s.to_json() for s in run.steps]),
        "cursor": run.cursor,
        "error": run.error,
        "due_at": run.due_at,
        "lease_token": run.lease_token,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def run_from_row(row: tuple[Any, ...]) -> Run:
    (
        id_,
        ws,
        template_id,
        source,
        status,
        token,
        definition,
        context,
        steps,
        cursor,
        error,
        due_at,
        lease_token,
        created_at,
        updated_at,
    ) = row
    return Run(
        id=id_,
        workspace_id=ws,
        template_id=template_id,
        source=source,
        status=RunStatus(status),
        cancelation_token=token,
        steps_def=tuple(loads(definition)["steps"]),
        context=RunContext.from_json(loads(context)),
        steps=tuple(StepState.from_json(s) for s in loads(steps)),
        cursor=cursor,
        error=error,
        due_at=due_at,
        lease_token=lease_token,
        created_at=created_at,
        updated_at=updated_at,
    )


def resource_params(r: Resource) -> dict[str, Any]:
    return {
        "workspace_id": r.workspace_id,
        "kind": r.kind,
        "id": r.id,
        "alias": r.alias,
        "name": r.name,
        "draft": None if r.draft is None else dumps(r.draft),
        "published": None if r.published is None else dumps(r.published),
        "published_version": r.published_version,
        "published_at": r.published_at,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "archived_at": r.archived_at,
    }


def resource_from_row(row: tuple[Any, ...]) -> Resource:
    (ws, kind, id_, alias, name, draft, published, version, published_at, created, updated) = row[
        :11
    ]
    return Resource(
        workspace_id=ws,
        kind=kind,
        id=id_,
        alias=alias,
        name=name,
        draft=loads(draft),
        published=loads(published),
        published_version=version,
        published_at=published_at,
        created_at=created,
        updated_at=updated,
        archived_at=row[11],
    )


def message_params(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "workspace_id": m.workspace_id,
        "status": m.status,
        "recipient": m.recipient,
        "notification": m.notification,
        "event": m.event,
        "run_id": m.run_id,
        "channel": m.channel,
        "provider": m.provider,
        "idempotency_key": m.idempotency_key,
        "attempts": m.attempts,
        "attempt_state": m.attempt_state,
        "enqueued_at": m.enqueued_at,
        "sent_at": m.sent_at,
        "delivered_at": m.delivered_at,
        "error": m.error,
        "reason": m.reason,
        "content": dumps(m.content),
        "providers": dumps(m.providers),
        "updated_at": m.updated_at,
        "tags": encode_tags(m.tags),
        "trace_id": m.trace_id,
        "request_id": m.request_id,
    }


def encode_tags(tags: tuple[str, ...]) -> str:
    """ ",a,b," so that one tag is matched by LIKE '%,a,%' on both dialects."""
    return f",{','.join(tags)}," if tags else ""


def decode_tags(raw: str | None) -> tuple[str, ...]:
    return tuple(t for t in (raw or "").split(",") if t)


def message_from_row(row: tuple[Any, ...]) -> Message:
    (
        id_,
        ws,
        status,
        recipient,
        notification,
        event,
        run_id,
        channel,
        provider,
        key,
        attempts,
        attempt_state,
        enqueued,
        sent,
        delivered,
        error,
        reason,
        content,
        providers,
        updated,
        tags,
        trace_id,
        request_id,
    ) = row
    return Message(
        id=id_,
        workspace_id=ws,
        status=status,
        recipient=recipient,
        notification=notification,
        event=event,
        run_id=run_id,
        channel=channel,
        provider=provider,
        idempotency_key=key,
        attempts=attempts,
        attempt_state=attempt_state,
        enqueued_at=enqueued,
        sent_at=sent,
        delivered_at=delivered,
        error=error,
        reason=reason,
        content=loads(content) or {},
        providers=loads(providers) or [],
        updated_at=updated,
        tags=decode_tags(tags),
        trace_id=trace_id,
        request_id=request_id,
    )


def event_from_row(message_id: str, row: tuple[Any, ...]) -> MessageEvent:
    ts, type_, detail = row
    return MessageEvent(message_id=message_id, ts=ts, type=type_, detail=loads(detail) or {})


def encode_cursor(created_at: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(dumps([created_at, run_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, run_id = loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(created_at, int | float) or not isinstance(run_id, str):
            raise TypeError(cursor)
        return float(created_at), run_id
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise ValidationError("Invalid cursor format") from None
