"""List id patterns (``*`` one part, ``**`` one or more parts) against a regex reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybox.domain.lists import ListPattern

# Small alphabets so generated patterns and ids often line up.
PART = st.sampled_from(["a", "b", "us", "eu", "x_y", ""])
LIST_ID = st.lists(PART, min_size=1, max_size=6).map(".".join)
PATTERN_PART = st.one_of(PART, st.just("*"), st.just("**"))
PATTERN = st.lists(PATTERN_PART, min_size=1, max_size=5).map(".".join)


def reference(pattern: str, list_id: str) -> bool:
    """The documented semantics written as one regular expression over the whole id."""
    pieces = []
    for part in pattern.split("."):
        if part == "*":
            pieces.append(r"[^.]*")
        elif part == "**":
            pieces.append(r"[^.]*(?:\.[^.]*)*")
        else:
            pieces.append(re.escape(part))
    return re.fullmatch(r"\.".join(pieces), list_id) is not None


@given(PATTERN, LIST_ID)
def test_matches_agrees_with_the_regex_reference(pattern: str, list_id: str) -> None:
    """For any pattern and id, matches() equals the regex reference."""
    assert ListPattern.parse(pattern).matches(list_id) == reference(pattern, list_id)


@given(PATTERN, LIST_ID)
def test_every_match_starts_with_the_literal_prefix(pattern: str, list_id: str) -> None:
    """The prefix used to narrow the database scan never excludes a matching id."""
    parsed = ListPattern.parse(pattern)
    if parsed.matches(list_id):
        assert list_id.startswith(parsed.prefix)


@given(LIST_ID)
def test_a_pattern_without_wildcards_is_an_exact_match(list_id: str) -> None:
    """An id used as a pattern matches itself and nothing longer."""
    parsed = ListPattern.parse(list_id)
    assert parsed.exact
    assert parsed.matches(list_id)
    assert not parsed.matches(list_id + ".more")


@pytest.mark.parametrize(
    ("pattern", "list_id", "expected"),
    [
        ("team.*", "team.eng", True),
        ("team.*", "team.eng.backend", False),
        ("team.**", "team.eng.backend", True),
        ("team.**", "team", False),
        ("**.eng", "org.team.eng", True),
        ("*.eng", "org.team.eng", False),
        ("team.eng", "team.eng", True),
        ("team.e*", "team.eng", False),
    ],
)
def test_documented_examples(pattern: str, list_id: str, expected: bool) -> None:
    """Worked examples of the pattern grammar (courier-api.md §8)."""
    assert ListPattern.parse(pattern).matches(list_id) is expected
