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
