"""Opaque keyset cursors for Courier's ``{"paging": {"cursor", "more"}}`` list responses."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from relaybox.errors import ValidationError

#: Items per page for lists, subscriptions and a user's lists.
PAGE_SIZE = 20


def encode(last_key: str) -> str:
    """The cursor that resumes after ``last_key`` (ids may hold any character)."""
    return base64.urlsafe_b64encode(b"k:" + last_key.encode()).decode().rstrip("=")


def decode(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("Invalid cursor format") from None
    if not raw.startswith("k:"):
        raise ValidationError("Invalid cursor format")
    return raw[2:]


def paging(more: bool, last_key: str | None) -> dict[str, Any]:
    return {"cursor": encode(last_key) if more and last_key is not None else None, "more": more}
