"""Merge strategies: table cases and properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybox.domain.merge import merge
from relaybox.errors import ValidationError

maps = st.dictionaries(st.text(max_size=3), st.integers(), max_size=5)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("replace", {"a": 2, "b": 3}),
        ("overwrite", {"a": 2, "b": 3, "c": 1}),
        ("soft-merge", {"a": 1, "b": 3, "c": 1}),
        ("none", {"a": 1, "c": 1}),
    ],
)
def test_each_strategy(strategy: str, expected: dict[str, Any]) -> None:
    """Each strategy combines a stored {a, c} with an incoming {a, b} as Courier documents."""
    assert merge({"a": 1, "c": 1}, {"a": 2, "b": 3}, strategy) == expected


def test_none_initialises_an_empty_target() -> None:
    """`none` fills an empty cache with the source."""
    assert merge({}, {"a": 1}, "none") == {"a": 1}


def test_unknown_strategy_is_a_validation_error() -> None:
    """An unknown strategy names the valid ones."""
    with pytest.raises(ValidationError, match="soft-merge"):
        merge({}, {}, "deep")


@given(maps, maps)
def test_properties(target: dict[str, int], source: dict[str, int]) -> None:
    """overwrite keeps every source value, soft-merge every target value, both keep all keys."""
    over = merge(target, source, "overwrite")
    soft = merge(target, source, "soft-merge")
    assert all(over[k] == v for k, v in source.items())
    assert all(soft[k] == v for k, v in target.items())
    assert set(over) == set(soft) == set(target) | set(source)
    assert merge(target, source, "replace") == source
