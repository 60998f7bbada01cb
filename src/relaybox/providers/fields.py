"""Validation of provider settings shared by the HTTP providers: one message per bad field.

Every error names the provider and the field (``twilio setting 'account_sid' is required``),
so the /providers API can answer 400 with something a user can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from relaybox.errors import ValidationError

DEFAULT_TIMEOUT = 10.0


class Fields:
    """Typed access to one provider's raw settings; unknown fields are refused up front."""

    def __init__(self, provider: str, raw: Mapping[str, Any], allowed: frozenset[str]) -> None:
        self.provider = provider
        self.raw = raw
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise self.error(
                f"unknown {provider} setting(s): {', '.join(unknown)}; "
                f"expected {', '.join(sorted(allowed))}"
            )

    def error(self, text: str) -> ValidationError:
        return ValidationError(text)

    def invalid(self, name: str, why: str) -> ValidationError:
        return ValidationError(f"{self.provider} setting {name!r} {why}")

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.invalid(name, "is required")
            return None
        if not isinstance(value, str):
            raise self.invalid(name, "must be a string")
        if "\r" in value or "\n" in value:
            raise self.invalid(name, "may not contain line breaks")
        return value.strip()

    def required(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def url(self, name: str, default: str | None = None) -> str:
        """An http(s) URL without a trailing slash; reachability is the guard's job at send."""
        value = self.text(name) or default
        if value is None:
            raise self.invalid(name, "is required")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            raise self.invalid(name, f"is not a valid URL: {exc}") from exc
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise self.invalid(name, "must be an http:// or https:// URL")
        return value.rstrip("/")

    def timeout(self, name: str = "timeout", default: float = DEFAULT_TIMEOUT) -> float:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.invalid(name, "must be a positive number of seconds")
        return float(value)

    def json_object(self, name: str) -> dict[str, Any]:
        """An object given as JSON or as a JSON string (how consoles paste key files)."""
        value = self.raw.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise self.invalid(name, f"is not valid JSON: {exc}") from exc
        if value is None:
            raise self.invalid(name, "is required")
        if not isinstance(value, dict):
            raise self.invalid(name, "must be a JSON object")
        return value
