"""Automation definitions: validation of the step list Courier clients send.

Validation is deliberately shallow for steps this version does not execute yet: Courier's
SDK passes unknown fields and doc-only step types through verbatim, so they must be
accepted and stored untouched (see courier-api.md §2.6, §4.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relaybox.domain import delays, delivery
from relaybox.errors import ValidationError

#: The storage kind of saved automations (Resource.kind).
RESOURCE_KIND = "automation"

#: Every action Courier documents for automation steps (SDK union plus doc-only steps).
KNOWN_ACTIONS = frozenset(
    {
        "send",
        "delay",
        "cancel",
        "send-list",
        "update-profile",
        "fetch-data",
        "invoke",
        "add-to-batch",
        "get-profile",
        "subscribe",
        "throttle",
    }
)

#: Actions whose required fields are known and checked at invoke time.
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "cancel": ("cancelation_token",),
    "send-list": ("list",),
    "update-profile": ("profile",),
    "fetch-data": ("webhook",),
    "invoke": ("template",),
}


@dataclass(frozen=True)
class AutomationDefinition:
    steps: tuple[dict[str, Any], ...]
    cancelation_token: str | None = None


def parse_automation(raw: Any, *, where: str = "automation") -> AutomationDefinition:
    """Validate an ``automation`` object ({steps, cancelation_token}) from a request body.

    Raises:
        ValidationError: with a Courier-style ``path: problem`` message.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{where}: Expected object")
    steps = parse_steps(raw.get("steps"), where=f"{where}.steps")
    token = raw.get("cancelation_token")
    if token is not None and not isinstance(token, str):
        raise ValidationError(f"{where}.cancelation_token: Expected string")
    return AutomationDefinition(steps=steps, cancelation_token=token)


def parse_steps(raw: Any, *, where: str = "automation.steps") -> tuple[dict[str, Any], ...]:
    if raw is None:
        raise ValidationError(f"{where}: Required")
    if not isinstance(raw, list):
        raise ValidationError(f"{where}: Expected array")
    return tuple(_parse_step(step, f"{where}[{i}]") for i, step in enumerate(raw))


def _parse_step(step: Any, where: str) -> dict[str, Any]:
    if not isinstance(step, Mapping):
        raise ValidationError(f"{where}: Expected object")
    action = step.get("action")
    if not isinstance(action, str):
        raise ValidationError(f"{where}.action: Required")
    if action not in KNOWN_ACTIONS:
        known = ", ".join(sorted(KNOWN_ACTIONS))
        raise ValidationError(f'{where}.action: Unknown action "{action}"; expected one of {known}')
    for name in _REQUIRED_FIELDS.get(action, ()):
        if step.get(name) is None:
            raise ValidationError(f"{where}.{name}: Required for {action} steps")
    if action == "delay":
        try:
            delays.validate_delay_step(step)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from None
    if action == "send":
        _check_send(step, where)
    for name in ("if", "ref"):
        if step.get(name) is not None and not isinstance(step.get(name), str):
            raise ValidationError(f"{where}.{name}: Expected string")
    return dict(step)


def _check_send(step: Mapping[str, Any], where: str) -> None:
    """A send step's delivery fields, so a mistake is a 400 rather than a failed message."""
    message = step.get("message")
    if message is not None:
        if not isinstance(message, Mapping):
            raise ValidationError(f"{where}.message: Expected object")
        try:
            delivery.check(message)
        except ValidationError as exc:
            raise ValidationError(f"{where}.{exc.message}") from None
    key = step.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ValidationError(f"{where}.idempotency_key: Expected a non-empty string")
    override = step.get("override")
    if override is not None and not isinstance(override, Mapping):
        raise ValidationError(f"{where}.override: Expected object")
