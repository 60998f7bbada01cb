"""Step conditions (``if``), ``{"$ref": path}`` accessors and ``${...}`` interpolation.

Courier documents conditions and interpolation as JavaScript (``data.orders.filter(o =>
o.total > 100).length > 0``, `` ${`flow-${data.userId}`} ``), so they are evaluated by a
real JavaScript engine rather than a look-alike grammar. We embed QuickJS (PyPI ``quickjs``)
instead of V8 (``mini-racer``): it is a small interpreter with no I/O bindings at all (no
``fetch``, ``require``, ``std``/``os`` modules or module loader in the Python binding), its
contexts cost ~0.1 ms to create, so every evaluation gets a fresh one and runs cannot leak
state into each other, and it enforces per-context CPU-time and heap limits natively.

This lives in the engine, not the domain: the domain is pure Python, and the state machine
only ever sees the outcome (``StepPrepared``), never the interpreter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import _quickjs
import orjson

from relaybox.domain.refs import NOT_RESOLVED as _NOT_RESOLVED
from relaybox.domain.refs import Expr, TemplateSyntaxError, lookup, split_template

#: Keys whose string values are URLs: interpolated values in them are URL-encoded.
_URL_KEYS = frozenset({"url"})

# The JS side of an evaluation. ``Date`` is pinned to the engine's clock so conditions such
# as ``Date.now() - 30 days`` agree with the engine's notion of now (and are testable with a
# frozen clock). Reads through the scope are recorded via Proxies so the debugger can show
# which context values decided a condition.
_HARNESS = r"""
(function () {
  const RealDate = Date;
  const now = __relaybox_now;
  function PinnedDate(...args) {
    if (!new.target) return new RealDate(now).toString();
    return args.length ? new RealDate(...args) : new RealDate(now);
  }
  PinnedDate.prototype = RealDate.prototype;
  PinnedDate.now = () => now;
  PinnedDate.parse = RealDate.parse;
  PinnedDate.UTC = RealDate.UTC;
  globalThis.Date = PinnedDate;
})();
function __relaybox_urlencode(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => { out += encodeURIComponent(String(v)) + strings[i + 1]; });
  return out;
}
function __relaybox_eval(source) {
  const MAX_READS = 50;
  const reads = new Map();
  const note = (path, value) => {
    if (reads.size < MAX_READS || reads.has(path)) reads.set(path, value);
  };
  const wrap = (value, path) => {
    if (value === null || typeof value !== 'object') return value;
    return new Proxy(value, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver);
        if (typeof key === 'symbol' || typeof v === 'function') return v;
        note(path + '.' + key, v);
        return wrap(v, path + '.' + key);
      },
      has(target, key) {
        if (typeof key !== 'symbol') note(path + '.' + key, target[key]);
        return Reflect.has(target, key);
      },
    });
  };
  const roots = JSON.parse(__relaybox_scope);
  const scope = new Proxy({}, {
    has: (_, key) => typeof key === 'string' && Object.prototype.hasOwnProperty.call(roots, key),
    get: (_, key) => {
      if (typeof key !== 'string') return undefined;
      note(key, roots[key]);
      return wrap(roots[key], key);
    },
  });
  const fn = new Function('__scope', 'with (__scope) { return (' + source + '\n); }');
  const value = fn(scope);
  if (value instanceof Promise) {
    // Nothing asynchronous can complete in the sandbox (dynamic import, async functions).
    throw new TypeError('asynchronous expressions (Promise) are not supported');
  }
  const paths = [...reads.keys()];
  const leaves = paths.filter(p => !paths.some(q => q.startsWith(p + '.')));
  const summary = v => {
    if (v === undefined) return {undefined: true};
    try {
      const text = JSON.stringify(v);
      if (text !== undefined && text.length <= 1000) return {value: JSON.parse(text)};
    } catch (e) { /* fall through to a summary */ }
    return {value: Array.isArray(v) ? '[array of ' + v.length + ']' : '[' + typeof v + ']'};
  };
  const plain = v => {
    if (v === undefined) return null;
    try { return JSON.parse(JSON.stringify(v)); } catch (e) { return String(v); }
  };
  return JSON.stringify({
    value: plain(value),
    truthy: !!value,
    text: String(value),
    reads: leaves.map(p => Object.assign({path: p}, summary(reads.get(p)))),
  });
}
"""


class ExpressionError(Exception):
    """An expression failed: syntax error, exception, CPU or memory cap exceeded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Preparation:
    """A step made ready to run: its definition with accessors resolved, and its condition."""

    spec: dict[str, Any]
    #: {"expression", "result", "reads"} when the step has an ``if`` evaluated now.
    condition: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.condition is None or bool(self.condition["result"])


class Sandbox:
    """Evaluates step expressions in fresh QuickJS contexts with CPU-time and memory caps.

    Evaluations run on a small dedicated thread pool: a runaway expression then occupies a
    pool thread for at most ``time_limit`` instead of the event loop, and at most ``workers``
    heaps of ``memory_limit`` bytes exist at once.
    """

    def __init__(
        self, *, time_limit: float = 0.1, memory_limit: int = 32 << 20, workers: int = 4
    ) -> None:
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="relaybox-sandbox"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def prepare(
        self,
        spec: Mapping[str, Any],
        scope: Mapping[str, Any],
        now: float,
        *,
        evaluate_condition: bool = True,
    ) -> Preparation:
        """Evaluate the step's ``if`` (unless already done) and resolve its fields.

        Raises:
            ExpressionError: the condition or an interpolation failed.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self.prepare_sync, dict(spec), dict(scope), now, evaluate_condition
        )

    async def resolve(self, value: Any, scope: Mapping[str, Any], now: float) -> Any:
        """Resolve ``$ref``/``${...}`` in one value (e.g. an automation's cancelation_token).

        Raises:
            ExpressionError: an interpolation failed.
        """
        loop = asyncio.get_running_loop()
        session = _Session(self, dict(scope), now)
        return await loop.run_in_executor(self._pool, session.resolve, value, "")

    async def holds(self, expression: str, scope: Mapping[str, Any], now: float) -> bool:
        """Whether a condition (a send channel's or provider's ``if``) is truthy.

        Raises:
            ExpressionError: the expression failed.
        """
        loop = asyncio.get_running_loop()
        session = _Session(self, dict(scope), now)
        result = await loop.run_in_executor(self._pool, session.condition, expression)
        return bool(result["truthy"])

    def prepare_sync(
        self,
        spec: dict[str, Any],
        scope: dict[str, Any],
        now: float,
        evaluate_condition: bool = True,
    ) -> Preparation:
        session = _Session(self, scope, now)
        condition = None
        expression = spec.get("if")
        if evaluate_condition and isinstance(expression, str):
            result = session.evaluate(expression, what="if")
            condition = {
                "expression": expression,
                "result": bool(result["truthy"]),
                "reads": result["reads"],
            }
            if not condition["result"]:
                return Preparation(spec=spec, condition=condition)
        resolved = {
            key: value if key in _NOT_RESOLVED else session.resolve(value, key)
            for key, value in spec.items()
        }
        return Preparation(spec=resolved, condition=condition)

    def evaluate(self, expression: str, scope: Mapping[str, Any], now: float) -> Any:
        """Evaluate one expression and return its (JSON) value; for tests and tools."""
        return _Session(self, dict(scope), now).evaluate(expression, what="expression")["value"]


class _Session:
    """One preparation: a fresh context per expression, the scope serialised once."""

    def __init__(self, sandbox: Sandbox, scope: dict[str, Any], now: float) -> None:
        self._sandbox = sandbox
        self._scope = scope
        self._scope_json = orjson.dumps(scope, default=str).decode()
        self._now_ms = now * 1000.0

    def evaluate(self, source: str, *, what: str) -> dict[str, Any]:
        context = _quickjs.Context()
        context.set_memory_limit(self._sandbox.memory_limit)
        context.set_time_limit(self._sandbox.time_limit)
        context.set("__relaybox_scope", self._scope_json)
        context.set("__relaybox_now", self._now_ms)
        context.set("__relaybox_source", source)
        try:
            context.eval(_HARNESS)
            raw = context.eval("__relaybox_eval(__relaybox_source)")
        except _quickjs.StackOverflow:
            raise ExpressionError(f"{what} {source!r}: stack overflow") from None
        except _quickjs.JSException as exc:
            raise ExpressionError(f"{what} {source!r}: {_js_message(exc)}") from None
        # The expression ran in the same context as the harness and could have tampered with
        # JSON.stringify; anything but the harness's own shape is an expression failure.
        try:
            result = orjson.loads(raw) if isinstance(raw, str) else None
        except orjson.JSONDecodeError:
            result = None
        if not isinstance(result, dict) or not {"value", "truthy", "text", "reads"} <= set(result):
            raise ExpressionError(f"{what} {source!r}: did not produce a value")
        return result

    def condition(self, source: str) -> dict[str, Any]:
        return self.evaluate(source, what="if")

    def resolve(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            return self._interpolate(value, url=key in _URL_KEYS) if "${" in value else value
        if isinstance(value, dict):
            if "$ref" in value and isinstance(value["$ref"], str):
                return lookup(self._scope, value["$ref"])
            return {k: self.resolve(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, key) for v in value]
        return value

    def _interpolate(self, text: str, *, url: bool) -> Any:
        try:
            parts = split_template(text)
        except TemplateSyntaxError as exc:
            raise ExpressionError(str(exc)) from None
        if len(parts) == 1 and isinstance(parts[0], Expr) and not url:
            # A field that is exactly one expression takes the expression's value (a number
            # stays a number), like Courier's accessor objects.
            return self.evaluate(parts[0].source, what="${...}")["value"]
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            source = part.source.strip()
            literal = url and source.startswith("`")
            if literal:
                # Encode the values a URL-building template literal interpolates, not the
                # URL it builds: `https://x/${data.id}` keeps its slashes.
                source = "__relaybox_urlencode" + source
            text_value = str(self.evaluate(source, what="${...}")["text"])
            out.append(_url_quote(text_value) if url and not literal else text_value)
        return "".join(out)


def _url_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _js_message(exc: Exception) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "failed"
    if "interrupted" in first:
        return "exceeded its time limit"
    if "out of memory" in first:
        return "exceeded its memory limit"
    return first
