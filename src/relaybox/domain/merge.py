"""Courier's merge strategies, shared by update-profile, fetch-data and send-list data sources.

replace     target := source (keys missing from source are removed)
overwrite   shallow update: every source key wins
soft-merge  only keys the target does not have yet are added
none        leave a non-empty target alone; initialise an empty one with source
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from relaybox.errors import ValidationError

Strategy = Literal["replace", "overwrite", "soft-merge", "none"]
STRATEGIES: tuple[Strategy, ...] = ("replace", "overwrite", "soft-merge", "none")


def merge(target: Mapping[str, Any], source: Mapping[str, Any], strategy: str) -> dict[str, Any]:
    """Apply ``strategy`` and return the new mapping (inputs are not modified)."""
    if strategy == "replace":
        return dict(source)
    if strategy == "overwrite":
        return {**target, **source}
    if strategy == "soft-merge":
        return {**source, **target}
    if strategy == "none":
        return dict(target) if target else dict(source)
    raise ValidationError(
        f'Unknown merge strategy "{strategy}": use one of {", ".join(STRATEGIES)}'
    )


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, objects merged key by key at every depth (send overrides)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
