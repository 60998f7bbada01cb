"""Which step fields hold references (``{"$ref": path}``, ``${...}``) and where refs go.

Pure helpers shared by the state machine (does this step need preparing?) and the engine's
expression sandbox (which fields to resolve, where ``${...}`` starts and ends, following a
``$ref`` path). Evaluating the JavaScript itself is the engine's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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


class TemplateSyntaxError(ValueError):
    """A ``${...}`` that does not close."""


_INDEX = re.compile(r"\[(\d+)\]")


def lookup(scope: Mapping[str, Any], path: str) -> Any:
    """Follow ``data.orders[0].total`` (or ``data.orders.0.total``) through the scope.

    A missing segment yields None (JSON null), as a missing property would in JavaScript.
    """
    current: Any = scope
    for segment in _INDEX.sub(r".\1", path).split("."):
        if not segment:
            continue
        if isinstance(current, Mapping):
            current = current.get(segment)
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return None
    return current


@dataclass(frozen=True)
class Expr:
    source: str


def split_template(text: str) -> list[str | Expr]:
    """Split ``"a-${x}-b"`` into literal text and ``${...}`` expressions.

    Nested braces, quoted strings and template literals inside an expression (Courier's
    `` ${`flow-${data.id}`} ``) are skipped over, so the expression ends at its own brace.

    Raises:
        TemplateSyntaxError: a ``${`` is never closed.
    """
    parts: list[str | Expr] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i):
            end = _expression_end(text, i + 2)
            if end is None:
                raise TemplateSyntaxError(f"${{...}} in {text!r}: missing closing brace")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Expr(text[i + 2 : end]))
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _expression_end(text: str, start: int) -> int | None:
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char in "'\"":
            i = _skip_quoted(text, i)
            continue
        if char == "`":
            i = _skip_template(text, i)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


def _skip_quoted(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)


def _skip_template(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "`":
            return i + 1
        if text.startswith("${", i):
            end = _expression_end(text, i + 2)
            if end is None:
                return len(text)
            i = end + 1
            continue
        i += 1
    return len(text)
