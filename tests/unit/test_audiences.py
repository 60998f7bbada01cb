"""Audience filters: validation and membership over profiles."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybox.domain.audiences import matches, validate
from relaybox.errors import ValidationError

PROFILE = {
    "email": "ann@example.com",
    "age": 42,
    "plan": "pro",
    "verified": True,
    "tags": ["beta", "eu"],
    "address": {"country": "DE"},
    "joined": "2024-03-01T00:00:00Z",
}


def audience(*rules: dict[str, Any], operator: str | None = None) -> dict[str, Any]:
    return validate({"name": "a", "filter": {"filters": list(rules)}, "operator": operator})


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"operator": "EQ", "path": "plan", "value": "pro"}, True),
        ({"operator": "EQ", "path": "verified", "value": "true"}, True),
        ({"operator": "NEQ", "path": "plan", "value": "pro"}, False),
        ({"operator": "NEQ", "path": "missing", "value": "x"}, True),
        ({"operator": "GT", "path": "age", "value": "40"}, True),
        ({"operator": "GT", "path": "age", "value": "100"}, False),
        ({"operator": "GTE", "path": "age", "value": "42"}, True),
        ({"operator": "LT", "path": "age", "value": "9"}, False),
        ({"operator": "LTE", "path": "age", "value": "42"}, True),
        ({"operator": "EXISTS", "path": "address.country"}, True),
        ({"operator": "EXISTS", "path": "address.city"}, False),
        ({"operator": "OMIT", "path": "address.city"}, True),
        ({"operator": "INCLUDES", "path": "tags", "value": "eu"}, True),
        ({"operator": "INCLUDES", "path": "email", "value": "@example."}, True),
        ({"operator": "STARTS_WITH", "path": "email", "value": "ann@"}, True),
        ({"operator": "ENDS_WITH", "path": "email", "value": ".org"}, False),
        ({"operator": "IS_BEFORE", "path": "joined", "value": "2025-01-01"}, True),
        ({"operator": "IS_AFTER", "path": "joined", "value": "2025-01-01"}, False),
        ({"operator": "EQ", "path": "address.country", "value": "DE"}, True),
    ],
)
def test_single_conditions(rule: dict[str, Any], expected: bool) -> None:
    assert matches(audience(rule), PROFILE) is expected


def test_groups_and_the_top_level_operator() -> None:
    """Top-level rules AND by default; OR from the audience's operator; nested groups work."""
    yes = {"operator": "EQ", "path": "plan", "value": "pro"}
    no = {"operator": "EQ", "path": "plan", "value": "free"}
    assert not matches(audience(yes, no), PROFILE)
    assert matches(audience(yes, no, operator="OR"), PROFILE)
    nested = {"operator": "OR", "filters": [no, {"operator": "GT", "path": "age", "value": "18"}]}
    assert matches(audience(yes, nested), PROFILE)
    assert not matches(validate({"name": "empty"}), PROFILE)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"filter": {"filters": [{"operator": "LIKE", "path": "a", "value": "b"}]}}, "operator"),
        ({"filter": {"filters": [{"operator": "EQ", "value": "b"}]}}, "path"),
        ({"filter": {"filters": [{"operator": "EQ", "path": "a"}]}}, "value"),
        ({"filter": {"filters": [{"operator": "AND", "filters": []}]}}, "needs rules"),
        ({"filter": {"filters": "x"}}, "filter.filters"),
        ({"operator": "XOR"}, "operator"),
        (
            {"filter": {"filters": [{"operator": "IS_AFTER", "path": "a", "value": "soon"}]}},
            "until",
        ),
    ],
)
def test_bad_filters_are_validation_errors(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        validate(body)


VALUES = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "3", ""]), st.booleans())
PROFILES = st.dictionaries(st.sampled_from(["x", "y"]), VALUES, max_size=2)
RULES = st.builds(
    lambda op, path, value: {"operator": op, "path": path, "value": value},
    st.sampled_from(["EQ", "NEQ", "GT", "LT", "STARTS_WITH"]),
    st.sampled_from(["x", "y"]),
    st.sampled_from(["a", "3", "0", "true"]),
)


@settings(database=None, max_examples=200, deadline=None)
@given(st.lists(RULES, min_size=1, max_size=4), PROFILES)
def test_and_is_all_or_is_any_and_neq_negates_eq(
    rules: list[dict[str, Any]], profile: dict[str, Any]
) -> None:
    each = [matches(audience(r), profile) for r in rules]
    assert matches(audience(*rules), profile) == all(each)
    assert matches(audience(*rules, operator="OR"), profile) == any(each)
    for rule in rules:
        if rule["operator"] == "EQ":
            negated = {**rule, "operator": "NEQ"}
            assert matches(audience(negated), profile) != matches(audience(rule), profile)
