"""Courier audiences: a filter over user profiles that decides who is a member.

A filter is a tree of rules (SDK ``FilterConfig``): a single condition ``{operator, path,
value}`` or a group ``{operator: AND|OR, filters: [...]}``; the audience's top-level
``filter.filters`` are combined by ``filter.operator``, else the audience's ``operator``, else
AND. Courier names the operators but not their exact semantics; Relaybox reads them as:

* ``path`` is a dotted path into the profile (``address.country``); values are strings on the
  wire, so ``EQ`` / ``NEQ`` compare the profile value's string form (``true`` for JSON true).
* ``GT`` / ``GTE`` / ``LT`` / ``LTE`` compare numbers when both sides are numbers, else strings.
* ``EXISTS``: the path is present and not null; ``OMIT``: it is absent or null.
* ``INCLUDES``: a list profile value contains the value, or a string contains it as a substring.
* ``STARTS_WITH`` / ``ENDS_WITH``: string prefix / suffix.
* ``IS_BEFORE`` / ``IS_AFTER``: both sides read as ISO 8601 instants (delays.parse_until).

Pure: no I/O; the service pages through profiles and asks :func:`matches` about each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from relaybox.domain import delays
from relaybox.errors import ValidationError

GROUPS = ("AND", "OR")
COMPARISONS = (
    "EQ",
    "NEQ",
    "GT",
    "GTE",
    "LT",
    "LTE",
    "EXISTS",
    "OMIT",
    "INCLUDES",
    "STARTS_WITH",
    "ENDS_WITH",
    "IS_BEFORE",
    "IS_AFTER",
)
#: Operators that need no value.
_UNARY = ("EXISTS", "OMIT")
_MISSING = object()


def validate(body: Mapping[str, Any]) -> dict[str, Any]:
    """The audience fields of a ``PUT /audiences/{id}`` body, checked and normalised."""
    name = body.get("name")
    description = body.get("description")
    for field_name, value in (("name", name), ("description", description)):
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{field_name}: Expected string")
    operator = body.get("operator")
    if operator is not None and operator not in GROUPS:
        raise ValidationError('operator: Expected "AND" or "OR"')
    raw = body.get("filter")
    found: dict[str, Any] = {
        "name": name or "",
        "description": description or "",
        "operator": operator,
        "filter": None,
    }
    if raw is not None:
        if not isinstance(raw, dict):
            raise ValidationError("filter: Expected object")
        rules = raw.get("filters")
        if not isinstance(rules, list):
            raise ValidationError("filter.filters: Expected array")
        top = raw.get("operator")
        if top is not None and top not in GROUPS:
            raise ValidationError('filter.operator: Expected "AND" or "OR"')
        found["filter"] = {
            "filters": [_rule(r, f"filter.filters[{i}]") for i, r in enumerate(rules)],
            **({"operator": top} if top is not None else {}),
        }
    return found


def matches(audience: Mapping[str, Any], profile: Mapping[str, Any]) -> bool:
    """Whether a profile is a member; an audience without rules has no members."""
    config = audience.get("filter") or {}
    rules = config.get("filters") or []
    if not rules:
        return False
    combine = all if (config.get("operator") or audience.get("operator") or "AND") == "AND" else any
    return combine(_holds(rule, profile) for rule in rules)


def _rule(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: Expected object")
    operator = raw.get("operator")
    if operator in GROUPS:
        nested = raw.get("filters")
        if not isinstance(nested, list) or not nested:
            raise ValidationError(f"{where}.filters: a {operator} group needs rules")
        return {
            "operator": operator,
            "filters": [_rule(r, f"{where}.filters[{i}]") for i, r in enumerate(nested)],
        }
    if operator not in COMPARISONS:
        raise ValidationError(
            f"{where}.operator: Expected one of {', '.join(COMPARISONS + GROUPS)}"
        )
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise ValidationError(f"{where}.path: Required string")
    value = raw.get("value")
    if operator not in _UNARY and not isinstance(value, str):
        raise ValidationError(f"{where}.value: Required string")
    if operator in ("IS_BEFORE", "IS_AFTER"):
        delays.parse_until(value)  # type: ignore[arg-type]
    return {"operator": operator, "path": path, **({"value": value} if value is not None else {})}


def _holds(rule: Mapping[str, Any], profile: Mapping[str, Any]) -> bool:
    operator = str(rule["operator"])
    if operator in GROUPS:
        combine = all if operator == "AND" else any
        return combine(_holds(r, profile) for r in rule["filters"])
    actual = _lookup(profile, rule["path"])
    if operator == "EXISTS":
        return actual is not _MISSING and actual is not None
    if operator == "OMIT":
        return actual is _MISSING or actual is None
    if actual is _MISSING or actual is None:
        return operator == "NEQ"
    return bool(_COMPARE[operator](actual, str(rule.get("value"))))


def _lookup(profile: Mapping[str, Any], path: str) -> Any:
    current: Any = profile
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, str], bool]:
    def compare(actual: Any, expected: str) -> bool:
        a, b = _number(actual), _number(expected)
        if a is not None and b is not None:
            return test(a, b)
        return test(_text(actual), expected)

    return compare


def _instant(actual: Any, expected: str, test: Callable[[float, float], bool]) -> bool:
    try:
        return test(delays.parse_until(_text(actual)), delays.parse_until(expected))
    except ValidationError:
        return False


def _includes(actual: Any, expected: str) -> bool:
    if isinstance(actual, list):
        return expected in [_text(item) for item in actual]
    return isinstance(actual, str) and expected in actual


_COMPARE: dict[str, Callable[[Any, str], bool]] = {
    "EQ": lambda actual, expected: _text(actual) == expected,
    "NEQ": lambda actual, expected: _text(actual) != expected,
    "GT": _ordered(lambda a, b: a > b),
    "GTE": _ordered(lambda a, b: a >= b),
    "LT": _ordered(lambda a, b: a < b),
    "LTE": _ordered(lambda a, b: a <= b),
    "INCLUDES": _includes,
    "STARTS_WITH": lambda actual, expected: _text(actual).startswith(expected),
    "ENDS_WITH": lambda actual, expected: _text(actual).endswith(expected),
    "IS_BEFORE": lambda actual, expected: _instant(actual, expected, lambda a, b: a < b),
    "IS_AFTER": lambda actual, expected: _instant(actual, expected, lambda a, b: a > b),
}
