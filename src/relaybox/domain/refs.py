"""Which step fields hold references (``{"$ref": path}``, ``${...}``) and where refs go.

Pure helpers shared by the state machine (does this step need preparing?) and the engine's
expression sandbox (which fields to resolve).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Fields of a step that are never resolved: the step's identity and its condition.
NOT_RESOLVED = frozenset({"action", "if", "ref"})


def needs_resolution(spec: Mapping[str, Any]) -> bool:
    """True when a step has ``$ref`` accessors or ``${...}`` anywhere in its fields."""
    return any(_has_refs(v) for k, v in spec.items() if k not in NOT_RESOLVED)


def needs_preparation(spec: Mapping[str, Any], condition_done: bool) -> bool:
    """True when the engine must evaluate the step's ``if`` or resolve its fields first."""
    has_if = isinstance(spec.get("if"), str) and not condition_done
    return has_if or needs_resolution(spec)


def _has_refs(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return "$ref" in value or any(_has_refs(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_refs(v) for v in value)
    return False


def with_ref(refs: Mapping[str, Any], spec: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """``refs`` plus this step's outcome under its ``ref`` name (unchanged without one)."""
    name = spec.get("ref")
    if not isinstance(name, str) or not name:
        return dict(refs)
    return {**refs, name: value}
