"""The expression sandbox: conditions, interpolation, accessors, and its CPU/memory caps."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybox.domain.refs import Expr, TemplateSyntaxError, lookup, split_template
from relaybox.domain.run import RunContext
from relaybox.engine.expressions import ExpressionError, Sandbox

NOW = 1_700_000_000.0
CONTEXT = RunContext(
    recipient="user 1",
    data={
        "amount": 150,
        "orders": [{"total": 50}, {"total": 150}],
        "lastLogin": "2023-01-01T00:00:00Z",
        "preferences": None,
        "userId": "a b/c",
    },
    profile={"email": "a@example.com"},
    refs={"welcome": {"status": "DELIVERED", "message_id": "m1"}},
)


@pytest.fixture(scope="module")
def sandbox() -> Any:
    box = Sandbox()
    yield box
    box.close()


def condition(sandbox: Sandbox, expression: str, ctx: RunContext = CONTEXT) -> dict[str, Any]:
    prepared = sandbox.prepare_sync({"action": "send", "if": expression}, ctx.scope(), NOW)
    assert prepared.condition is not None
    return prepared.condition


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("data.amount > 100", True),
        ("data.amount > 1000", False),
        ("'preferences' in data && data.preferences !== null", False),
        ("data.orders.filter(o => o.total > 100).length > 0", True),
        ("Date.parse(data.lastLogin) < Date.now() - 30 * 24 * 60 * 60 * 1000", True),
        ("refs.welcome.status === 'DELIVERED'", True),
        ("welcome.status !== 'CLICKED'", True),
        ("refs.data.amount === data.amount", True),
        ("profile.email != null && recipient === 'user 1'", True),
    ],
)
def test_courier_condition_examples(sandbox: Sandbox, expression: str, expected: bool) -> None:
    """Courier's documented JS conditions evaluate over the run context and refs."""
    assert condition(sandbox, expression)["result"] is expected


def test_condition_records_the_values_it_read(sandbox: Sandbox) -> None:
    """The step records the expression, its result and each context value it read."""
    found = condition(sandbox, "data.orders.filter(o => o.total > 100).length > 0")
    assert found["expression"].startswith("data.orders")
    assert {r["path"]: r["value"] for r in found["reads"]} == {
        "data.orders.length": 2,
        "data.orders.0.total": 50,
        "data.orders.1.total": 150,
    }


def test_condition_records_missing_values_as_undefined(sandbox: Sandbox) -> None:
    """A property the context lacks is recorded as undefined, not as null."""
    found = condition(sandbox, "data.missing === undefined")
    assert found["result"] is True
    assert found["reads"] == [{"path": "data.missing", "undefined": True}]


def test_date_is_pinned_to_the_engine_clock(sandbox: Sandbox) -> None:
    """Date.now() and new Date() return the engine's now, so conditions are reproducible."""
    assert sandbox.evaluate("Date.now()", {}, NOW) == NOW * 1000
    assert sandbox.evaluate("new Date().getTime()", {}, NOW) == NOW * 1000
    assert sandbox.evaluate("new Date(0).getTime()", {}, NOW) == 0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("data.(", "SyntaxError"),
        ("data.nothing.deeper", "TypeError"),
        ("(() => { throw new Error('boom') })()", "Error: boom"),
        ("(() => { while (true) {} })()", "exceeded its time limit"),
        ("(() => { const a = []; for (;;) a.push('x'.repeat(1e6)) })()", "memory limit"),
        ("(function f() { return f() })()", "stack overflow"),
        ("fetch('http://10.0.0.1/')", "'fetch' is not defined"),
        ("require('fs')", "'require' is not defined"),
        ("import('os')", "asynchronous expressions"),
        ("XMLHttpRequest", "is not defined"),
        ("std.open('/etc/passwd', 'r')", "'std' is not defined"),
    ],
)
def test_bad_or_hostile_expressions_fail_cleanly(
    sandbox: Sandbox, expression: str, message: str
) -> None:
    """Errors, runaway loops, unbounded allocation and I/O attempts raise ExpressionError."""
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        sandbox.evaluate(expression, CONTEXT.scope(), NOW)
    assert message in caught.value.message
    assert time.perf_counter() - started < 2.0
    # The next evaluation gets a fresh context and is unaffected.
    assert sandbox.evaluate("data.amount + 1", CONTEXT.scope(), NOW) == 151


def test_state_does_not_leak_between_evaluations(sandbox: Sandbox) -> None:
    """Globals set by one evaluation are gone in the next (fresh context each time)."""
    assert sandbox.evaluate("(globalThis.leak = 1, leak)", {}, NOW) == 1
    assert sandbox.evaluate("typeof leak", {}, NOW) == "undefined"


def test_mutating_the_context_does_not_change_the_run(sandbox: Sandbox) -> None:
    """An expression that writes to data cannot change the run's context."""
    scope = CONTEXT.scope()
    sandbox.evaluate("(data.amount = 0, data.amount)", scope, NOW)
    assert scope["data"]["amount"] == 150


def test_resolves_accessors_and_interpolation_in_every_string_field(sandbox: Sandbox) -> None:
    """$ref objects and ${...} are resolved anywhere in a step, URL values encoded."""
    spec = {
        "action": "fetch-data",
        "ref": "${not.resolved}",
        "webhook": {
            "url": "${`https://api.example.com/users/${data.userId}/orders`}",
            "headers": {"X-Total": {"$ref": "data.orders[1].total"}},
            "params": {"user": "${data.userId}"},
        },
        "cancelation_token": "${`flow-${data.userId}`}",
        "duration": "${data.amount}",
        "note": "hello ${profile.email}!",
        "list": ["${recipient}", {"$ref": "refs.welcome.status"}],
    }
    resolved = sandbox.prepare_sync(spec, CONTEXT.scope(), NOW).spec
    assert resolved == {
        "action": "fetch-data",
        "ref": "${not.resolved}",
        "webhook": {
            "url": "https://api.example.com/users/a%20b%2Fc/orders",
            "headers": {"X-Total": 150},
            "params": {"user": "a b/c"},
        },
        "cancelation_token": "flow-a b/c",
        "duration": 150,
        "note": "hello a@example.com!",
        "list": ["user 1", "DELIVERED"],
    }


def test_plain_interpolation_in_a_url_is_encoded(sandbox: Sandbox) -> None:
    """In a url field each ${...} value is percent-encoded around the literal text."""
    spec = {"action": "fetch-data", "webhook": {"url": "https://x.test/u/${data.userId}?q=1"}}
    resolved = sandbox.prepare_sync(spec, CONTEXT.scope(), NOW).spec
    assert resolved["webhook"]["url"] == "https://x.test/u/a%20b%2Fc?q=1"


def test_false_condition_stops_before_resolving_fields(sandbox: Sandbox) -> None:
    """A skipped step's fields are not evaluated (a broken field cannot fail a skipped step)."""
    spec = {"action": "send", "if": "false", "template": "${data.(}"}
    prepared = sandbox.prepare_sync(spec, CONTEXT.scope(), NOW)
    assert prepared.passed is False


def test_interpolation_error_names_the_expression(sandbox: Sandbox) -> None:
    """A failing or unclosed ${...} raises with the expression in the message."""
    with pytest.raises(ExpressionError, match=r"data\.nope\.x"):
        sandbox.prepare_sync({"action": "send", "template": "${data.nope.x}"}, {"data": {}}, NOW)
    with pytest.raises(ExpressionError, match="missing closing brace"):
        sandbox.prepare_sync({"action": "send", "template": "a ${data"}, {"data": {}}, NOW)


def test_split_template_handles_nesting_and_strings() -> None:
    """The ${...} scanner skips braces, quotes and nested template literals."""
    assert split_template("a-${x}-b") == ["a-", Expr("x"), "-b"]
    assert split_template("${`f-${d.id}`}") == [Expr("`f-${d.id}`")]
    assert split_template("${ {a: '}'}.a }") == [Expr(" {a: '}'}.a ")]
    assert split_template("no expressions") == ["no expressions"]
    with pytest.raises(TemplateSyntaxError, match="missing closing brace"):
        split_template("${oops")


def test_lookup_follows_dotted_and_indexed_paths() -> None:
    """$ref paths accept dots and [n]; a missing segment is None."""
    scope = CONTEXT.scope()
    assert lookup(scope, "data.orders[0].total") == 50
    assert lookup(scope, "data.orders.1.total") == 150
    assert lookup(scope, "refs.data.userId") == "a b/c"
    assert lookup(scope, "data.orders[9].total") is None
    assert lookup(scope, "data.amount.nope") is None


def test_run_context_refs_are_backward_compatible() -> None:
    """Contexts stored before refs existed load with empty refs and serialise unchanged."""
    old = {"brand": None, "data": {"a": 1}, "profile": {}, "recipient": "u", "template": None}
    ctx = RunContext.from_json(old)
    assert ctx.refs == {}
    assert ctx.to_json() == old
    with_refs = RunContext.from_json({**old, "refs": {"s": {"status": "SENT"}}})
    assert RunContext.from_json(with_refs.to_json()) == with_refs


_LITERAL = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=8)
_IDENT = st.from_regex(r"[a-z][a-z0-9_.]{0,6}", fullmatch=True)


@settings(database=None, max_examples=200, deadline=None)
@given(st.lists(st.tuples(_LITERAL, _IDENT), max_size=4), _LITERAL)
def test_split_template_round_trips(pairs: list[tuple[str, str]], tail: str) -> None:
    """Literal text and ${expr} pieces come back exactly as they were joined."""
    text = "".join(f"{lit}${{{expr}}}" for lit, expr in pairs) + tail
    expected: list[str | Expr] = []
    for lit, expr in pairs:
        if lit:
            expected.append(lit)
        expected.append(Expr(expr))
    if tail:
        expected.append(tail)
    assert split_template(text) == expected
