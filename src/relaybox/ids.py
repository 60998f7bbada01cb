"""Identifiers in Courier's shape: ``1-<8 hex unix seconds>-<24 hex random>``."""

from __future__ import annotations

import secrets


def courier_id(now: float) -> str:
    return f"1-{int(now):08x}-{secrets.token_hex(12)}"


def short_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
