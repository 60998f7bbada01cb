"""Courier wire models, used to document request bodies in the OpenAPI document.

Handlers parse bodies themselves (orjson + the domain validators) so that error messages
follow Courier's ``path: problem`` style and unknown fields pass through untouched, as the
SDK expects; these models describe the accepted shapes for /openapi.json.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AutomationStep(_Open):
    action: str = Field(
        description="send, delay, cancel, send-list, update-profile, fetch-data, invoke, "
        "add-to-batch, get-profile, subscribe or throttle"
    )
    template: str | None = None
    recipient: str | None = None
    brand: str | None = None
    data: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    duration: str | None = Field(None, description='e.g. "5 minutes", "2 hours", "PT1H"')
    until: str | None = Field(None, description='ISO 8601, e.g. "20240408T080910.123"')
    cancelation_token: str | None = None


class Automation(_Open):
    steps: list[AutomationStep]
    cancelation_token: str | None = None


class InvokeParams(_Open):
    recipient: str | None = None
    brand: str | None = None
    data: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    template: str | None = None


class AdHocInvokeParams(InvokeParams):
    automation: Automation


class AutomationDraft(_Open):
    name: str | None = None
    alias: str | None = None
    steps: list[AutomationStep]
    cancelation_token: str | None = None


class Routing(_Open):
    method: str = Field(description='"single" (first channel that delivers) or "all"')
    channels: list[str] = Field(description="channel names or provider kinds, in order")


class Delay(_Open):
    duration: int | None = Field(None, description="milliseconds")
    until: str | None = Field(None, description="ISO 8601 instant")


class Metadata(_Open):
    tags: list[str] | None = None
    trace_id: str | None = None


class Message(_Open):
    to: dict[str, Any] | list[dict[str, Any]] = Field(
        description="a user recipient ({user_id, email, phone_number}) or a list of them"
    )
    template: str | None = Field(None, description="published notification id or alias")
    content: dict[str, Any] | None = Field(
        None, description="Elemental content or {title, body}; instead of template"
    )
    data: dict[str, Any] | None = None
    brand_id: str | None = None
    routing: Routing | None = None
    channels: dict[str, Any] | None = Field(
        None, description="per channel: {providers: [kind or id, ...], routing_method}"
    )
    delay: Delay | None = None
    metadata: Metadata | None = None


class SendParams(_Open):
    message: Message


SEND = SendParams
INVOKE = InvokeParams
AD_HOC_INVOKE = AdHocInvokeParams
AUTOMATION_DRAFT = AutomationDraft


#: Component schemas referenced by ``doc()``; merged into the OpenAPI document by the app.
COMPONENTS: dict[str, Any] = {}
_REF = "#/components/schemas/{model}"


def doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing ``model`` as the JSON request body."""
    schema = model.model_json_schema(ref_template=_REF)
    COMPONENTS.update(schema.pop("$defs", {}))
    COMPONENTS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
            },
        }
    }


def add_components(document: dict[str, Any]) -> dict[str, Any]:
    document.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    return document
