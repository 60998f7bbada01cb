"""Handlebars (pybars3) for Elemental templates, sandboxed by an output and time budget.

`fill()` renders one template source. Compilation is cached per source. Every render runs
inside a budget (`rendering()`, or a default one): the characters produced and the wall time
are checked on every `{{value}}` and every loop iteration, so a pathological template — nested
`{{#each}}` over big lists, a runaway recursive snippet — stops with a `ValidationError`
naming the limit instead of tying up a worker or its memory.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType
from typing import Any

import pybars
from pybars import _compiler as pybars_compiler

from relaybox.errors import ValidationError

__all__ = ["RenderLimits", "check", "fill", "rendering", "tick"]


@dataclass(frozen=True)
class RenderLimits:
    """Caps for rendering one message on one channel."""

    max_output_chars: int = 1_000_000
    max_seconds: float = 2.0


DEFAULT_LIMITS = RenderLimits()


class _Budget:
    __slots__ = ("compiled_partials", "deadline", "limits", "partials", "used")

    def __init__(self, limits: RenderLimits, partials: Mapping[str, str]) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.used = 0
        self.partials = partials
        # Keyed by `escape`: built on the first `{{>` and shared by the fills that follow.
        self.compiled_partials: dict[bool, dict[str, Callable[..., Any]]] = {}

    def partials_for(self, *, escape: bool) -> dict[str, Callable[..., Any]]:
        found = self.compiled_partials.get(escape)
        if found is None:
            found = {
                name: _compile(text).html if escape else _compile(text).text
                for name, text in self.partials.items()
            }
            self.compiled_partials[escape] = found
        return found

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise ValidationError(
                f"rendering took longer than {self.limits.max_seconds:g} s "
                "(a loop over too much data?)"
            )

    def charge(self, chars: int) -> None:
        self.used += chars
        if self.used > self.limits.max_output_chars:
            raise ValidationError(
                f"rendered output is larger than {self.limits.max_output_chars} characters"
            )
        self.tick()


_BUDGET: ContextVar[_Budget | None] = ContextVar("relaybox_render_budget", default=None)


@contextmanager
def rendering(
    limits: RenderLimits = DEFAULT_LIMITS, partials: Mapping[str, str] | None = None
) -> Iterator[None]:
    """One budget (and set of `{{> partials}}`) shared by every `fill` inside the block."""
    token = _BUDGET.set(_Budget(limits, partials or {}))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _budget() -> _Budget:
    found = _BUDGET.get()
    return found if found is not None else _Budget(DEFAULT_LIMITS, {})


def tick() -> None:
    """Check the current budget's deadline (callers looping over many elements)."""
    _budget().tick()


def check(source: str) -> None:
    """Raise `ValidationError` if `source` is not a valid template."""
    _compile(source)


_COMPILER = pybars.Compiler()
# pybars keeps its code builder on the Compiler *class*, so compiling is not thread-safe even
# with one compiler per thread.
_COMPILE_LOCK = threading.Lock()

_TAG = re.compile(r"\{\{\{.*?\}\}\}|\{\{.*?\}\}", re.DOTALL)
_BLOCK_TAG = re.compile(r"^\{\{~?\s*([#^/])\s*([^\s}~]*)")
# pybars rejects `$` in names; Courier's loop variables `$.item`/`$.index` become a bracketed
# segment read from the root so they also work inside `{{#each}}`/`{{#with}}` blocks.
_LOOP_REF = re.compile(r"(?<![\w\]$.@])\$(?=\.)")
_LOOP_REF_REPLACEMENT = "@root.[$]"
# pybars only parses integer literals; Handlebars.js also takes decimals such as `{{round 2.5}}`.
# They are passed as strings, which the math helpers accept.
_DECIMAL_LITERAL = re.compile(r"(?<=[\s(])(-?\d+\.\d+)(?=[\s)}~])")


@dataclass(frozen=True)
class _Compiled:
    text: Callable[..., Any]
    html: Callable[..., Any]


@lru_cache(maxsize=2048)
def _compile(source: str) -> _Compiled:
    """Compile once per distinct source: parsing takes about a millisecond, a cache hit ~nothing."""
    _check_tags(source)
    translated = _TAG.sub(_translate_tag, source)
    try:
        with _COMPILE_LOCK:
            python_source = _COMPILER.precompile(translated)
    except pybars.PybarsError as exc:
        raise ValidationError(f"invalid Handlebars template: {exc}") from exc
    # Executing the generated module ourselves (rather than `Compiler.compile`) keeps pybars from
    # registering every template in `sys.modules`, and gives us two independent namespaces.
    code = compile(python_source, "<relaybox-template>", "exec")
    return _Compiled(text=_load(code, escape=False), html=_load(code, escape=True))


def _load(code: CodeType, *, escape: bool) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    # The generated code resolves `prepare` from its globals on every `{{value}}`; swapping it
    # lets us charge the budget, and (for text) skip escaping without rewriting `{{x}}`.
    namespace["prepare"] = _prepare_escaped if escape else _prepare_unescaped
    render_fn: Callable[..., Any] = namespace["render"]
    return render_fn


def _translate_tag(tag: re.Match[str]) -> str:
    text = _LOOP_REF.sub(_LOOP_REF_REPLACEMENT, tag.group(0))
    if '"' in text or "'" in text:
        return text  # leave string literals (which may contain digits) alone
    return _DECIMAL_LITERAL.sub(r'"\1"', text)


def _prepare_unescaped(value: Any, should_escape: bool) -> Any:
    return _charged(pybars_compiler.prepare(value, False))


def _prepare_escaped(value: Any, should_escape: bool) -> Any:
    return _charged(pybars_compiler.prepare(value, should_escape))


def _charged(prepared: Any) -> Any:
    if isinstance(prepared, str):
        _budget().charge(len(prepared))
    return prepared


def _size(piece: Any) -> int:
    if isinstance(piece, str):
        return len(piece)
    return sum(len(part) for part in piece) if isinstance(piece, list) else 0


def _each(this: Any, options: Mapping[str, Any], context: Any) -> Any:
    """pybars' `each`, charging each iteration's output to the budget as it is produced."""
    budget = _budget()
    try:
        last = len(context) - 1
    except TypeError:
        last = -1
    if last < 0:
        return options["inverse"](this)
    has_keys = hasattr(context, "keys")
    result = pybars_compiler.strlist()
    for index, value in enumerate(context):
        budget.tick()
        extra: dict[str, Any] = {"index": index, "first": index == 0, "last": index == last}
        if has_keys:
            extra["key"] = value
            value = context[value]
        scope = pybars_compiler.Scope(value, this, options["root"], **extra)
        mark = budget.used
        try:
            piece = options["fn"](scope)
        except TypeError:  # as pybars: `{{^each things}}` has no `fn` to call
            continue
        # Values inside the iteration were charged already; charge the rest (literal text).
        budget.charge(max(0, _size(piece) - (budget.used - mark)))
        result.grow(piece)
    return result


def _block_helper_missing(this: Any, options: Mapping[str, Any], context: Any) -> Any:
    """`{{#list}}...{{/list}}` sections iterate through the budgeted `each`."""
    if callable(context):
        context = context(this)
    if isinstance(context, list | tuple):
        return _each(this, options, context)
    return pybars_compiler._blockHelperMissing(this, options, context)


def _check_tags(source: str) -> None:
    """Catch unclosed tags and blocks, which pybars silently renders as an empty string."""
    open_blocks: list[str] = []
    for tag in _TAG.finditer(source):
        block = _BLOCK_TAG.match(tag.group(0))
        if block is None:
            continue
        sigil, name = block.groups()
        if sigil == "^" and not name:  # `{{^}}` is an alias of `{{else}}`
            continue
        if sigil in "#^":
            open_blocks.append(name)
        elif not open_blocks or open_blocks.pop() != name:
            raise ValidationError(f"invalid Handlebars template: unexpected {{{{/{name}}}}}")
    if open_blocks:
        raise ValidationError(
            f"invalid Handlebars template: {{{{#{open_blocks[-1]}}}}} is never closed"
        )
    if "{{" in _TAG.sub("", source):
        raise ValidationError("invalid Handlebars template: '{{' without a closing '}}'")


def fill(source: str, context: Mapping[str, Any], *, escape: bool = False) -> str:
    """Render one template; `escape` applies Handlebars' HTML escaping to `{{values}}`."""
    budget = _budget()
    if "{{" not in source:
        budget.charge(len(source))
        return source
    compiled = _compile(source)
    # Snippets are compiled only for templates that include one.
    partials = budget.partials_for(escape=escape) if "{{>" in source else {}
    template = compiled.html if escape else compiled.text
    mark = budget.used
    try:
        out = str(template(context, helpers=_HELPERS, partials=partials))
    except ValidationError:
        raise
    except RecursionError:
        raise ValidationError("template could not be rendered: a snippet includes itself") from None
    except (pybars.PybarsError, TypeError, ValueError, LookupError, ArithmeticError) as exc:
        # e.g. an unknown helper called with arguments, or `{{#each}}` without a list.
        raise ValidationError(f"template could not be rendered: {exc}") from exc
    budget.charge(max(0, len(out) - (budget.used - mark)))
    return out


# --- Math helpers (Courier documents these for Handlebars) -------------------------------------

Number = int | float


def _to_number(value: Any) -> Number | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value.strip())
            except ValueError:
                continue
    return None


def _tidy(value: Number) -> Number:
    # JavaScript prints 6 / 3 as "2", not "2.0".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _js_mod(a: Number, b: Number) -> Number:
    # JavaScript's % keeps the dividend's sign, unlike Python's.
    if isinstance(a, int) and isinstance(b, int):
        remainder = abs(a) % abs(b)
        return remainder if a >= 0 else -remainder
    return math.fmod(a, b)


def _js_round(value: Number, places: Number = 0) -> Number:
    # Math.round rounds halves up (2.5 -> 3, -2.5 -> -2); Python's round() goes to even.
    factor = 10.0 ** int(places)
    return math.floor(value * factor + 0.5) / factor


_MATH: dict[str, tuple[tuple[int, ...], Callable[..., Number]]] = {
    "add": ((2,), lambda a, b: a + b),
    "subtract": ((2,), lambda a, b: a - b),
    "multiply": ((2,), lambda a, b: a * b),
    "divide": ((2,), lambda a, b: a / b),
    "mod": ((2,), _js_mod),
    "abs": ((1,), abs),
    "ceil": ((1,), math.ceil),
    "floor": ((1,), math.floor),
    "round": ((1, 2), _js_round),
}


def _math_helper(name: str) -> Callable[..., Number | None]:
    arities, operation = _MATH[name]

    def helper(this: Any, *args: Any) -> Number | None:
        if len(args) not in arities:
            expected = " or ".join(str(n) for n in arities)
            raise ValidationError(f"helper '{name}' takes {expected} argument(s), got {len(args)}")
        operands = [_to_number(arg) for arg in args]
        numbers = [n for n in operands if n is not None]
        # Like a missing variable, a non-numeric operand or x/0 renders as an empty string.
        if len(numbers) != len(operands) or not all(math.isfinite(n) for n in numbers):
            return None
        try:
            return _tidy(operation(*numbers))
        except (ZeroDivisionError, ValueError, OverflowError):
            return None

    return helper


_HELPERS: dict[str, Callable[..., Any]] = {
    **{name: _math_helper(name) for name in _MATH},
    "each": _each,
    "blockHelperMissing": _block_helper_missing,
}
