"""Element `if` conditions: plain paths in Python, anything else as sandboxed JavaScript."""

from __future__ import annotations

from typing import Any

import pytest

from relaybox.errors import ValidationError
from relaybox.templates.render import render, validate_content


def _text(condition: str, variables: dict[str, Any], loop: str | None = None) -> str:
    element: dict[str, Any] = {"type": "text", "content": "{{$.item}}shown", "if": condition}
    if loop:
        element["loop"] = loop
    content = {"version": "2022-01-01", "elements": [element]}
    return render(content, channel="sms", variables=variables).text


@pytest.mark.parametrize(
    ("condition", "data", "shown"),
    [
        ("data.total > 100 && !data.muted", {"total": 150}, True),
        ("data.total > 100 && !data.muted", {"total": 150, "muted": True}, False),
        ("data.plan === 'pro' || data.seats >= 10", {"plan": "free", "seats": 12}, True),
        (
            "data.items.filter(i => i.paid).length === 2",
            {"items": [{"paid": 1}, {}, {"paid": 1}]},
            True,
        ),
        ("data.some_field === 3", {"some_field": "3"}, False),
        ("profile.locale.startsWith('fr')", {}, True),
        ("total > 100", {"total": 101}, True),
    ],
)
def test_javascript_conditions(condition: str, data: dict[str, Any], shown: bool) -> None:
    """Comparisons, logic and method calls follow JavaScript; data keys are also top-level."""
    variables = {**data, "data": data, "profile": {"locale": "fr-CA"}}
    assert (_text(condition, variables) == "shown") is shown


def test_loop_scope_is_dollar_in_conditions() -> None:
    """Inside a loop the condition sees `$.item` and `$.index`."""
    variables = {"data": {"xs": ["a", "b", "c", "d"]}}
    assert _text("$.index % 2 === 0", variables, loop="data.xs") == "ashown\n\ncshown"


def test_a_throwing_or_runaway_condition_is_a_clear_error() -> None:
    """A JS exception or a CPU-bound loop fails the render with the reason."""
    with pytest.raises(ValidationError, match="TypeError"):
        _text("data.missing.deep === 1", {"data": {}})
    with pytest.raises(ValidationError, match="took longer than"):
        _text("(() => { while (true) {} })()", {"data": {}})


def test_plain_paths_need_no_interpreter() -> None:
    """`path` and `!path` read the variables with JavaScript truthiness; missing is falsy."""
    assert _text("data.vip", {"data": {"vip": []}}) == "shown"
    assert _text("!data.vip", {"data": {"vip": 0}}) == "shown"
    assert _text("data.a.b.c", {"data": {}}) == ""


def test_invalid_javascript_is_refused_when_content_is_saved() -> None:
    """validate_content (template create/replace) rejects a condition that does not parse."""
    content = {
        "version": "2022-01-01",
        "elements": [{"type": "text", "content": "x", "if": "a ==="}],
    }
    with pytest.raises(ValidationError, match="not a valid JavaScript expression"):
        validate_content(content)
