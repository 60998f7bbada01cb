"""Shape checks for the people APIs' request bodies, with Courier-style messages."""

from __future__ import annotations

from typing import Any

from relaybox.errors import ValidationError


def required_object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        raise ValidationError(f"{name}: Required")
    if not isinstance(value, dict):
        raise ValidationError(f"{name}: Expected object")
    return value


def optional_object(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{where}: Expected object")
    return value


def required_list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        raise ValidationError(f"{name}: Required")
    if not isinstance(value, list):
        raise ValidationError(f"{name}: Expected array")
    return value


def required_string(value: Any, where: str) -> str:
    if value is None:
        raise ValidationError(f"{where}: Required")
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{where}: Expected a non-empty string")
    return value
