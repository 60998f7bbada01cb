"""Element `if` conditions as JavaScript, in a fresh QuickJS context per evaluation.

Courier writes element conditions as JavaScript (`data.total > 100 && !data.muted`), as it
does step conditions, which the engine evaluates in QuickJS too. A plain path (`data.vip`,
`!$.item.shipped`) is decided in Python without starting an interpreter. A context has no I/O
bindings, a CPU-time and a heap cap, and sees the template variables (`data`, `profile`,
`recipient`, `brand`, the data keys at the top level) and, inside a `loop`, `$`
(`{item, index}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import _quickjs
import orjson

from relaybox.errors import ValidationError

__all__ = ["JsConditions", "check_syntax"]

TIME_LIMIT = 0.1
MEMORY_LIMIT = 16 << 20

# `with` exposes the variables as bare names; direct `eval` sees them and `$`.
_EVAL = r"""
(function () {
  const scope = JSON.parse(__relaybox_scope);
  const $ = __relaybox_loop === "" ? undefined : JSON.parse(__relaybox_loop);
  with (scope) { return !!eval(__relaybox_source); }
})()
"""


class JsConditions:
    """Evaluates the conditions of one render; the variables are serialised once."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._variables = variables
        self._scope_json: str | None = None

    def holds(self, expression: str, loop_scope: Mapping[str, Any] | None) -> bool:
        if self._scope_json is None:
            self._scope_json = orjson.dumps(self._variables, default=str).decode()
        loop = "" if loop_scope is None else orjson.dumps(loop_scope, default=str).decode()
        context = _quickjs.Context()
        context.set_memory_limit(MEMORY_LIMIT)
        context.set_time_limit(TIME_LIMIT)
        context.set("__relaybox_scope", self._scope_json)
        context.set("__relaybox_loop", loop)
        context.set("__relaybox_source", expression)
        try:
            result = context.eval(_EVAL)
        except _quickjs.StackOverflow:
            raise ValidationError(f"if {expression!r}: stack overflow") from None
        except _quickjs.JSException as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
            if "interrupted" in message:
                message = f"took longer than {TIME_LIMIT:g} s"
            raise ValidationError(f"if {expression!r}: {message}") from None
        return result is True


# Every render validates its content again, and a QuickJS context per condition is not free. The
# result depends on the string alone; a failure raises, which `lru_cache` does not remember.
@lru_cache(maxsize=1024)
def check_syntax(expression: str) -> None:
    """Raise `ValidationError` if `expression` is not a JavaScript expression (not run)."""
    context = _quickjs.Context()
    context.set_memory_limit(MEMORY_LIMIT)
    context.set_time_limit(TIME_LIMIT)
    context.set("__relaybox_source", expression)
    try:
        context.eval('new Function("return (" + __relaybox_source + "\\n);")')
    except _quickjs.JSException as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ValidationError(f"'if' is not a valid JavaScript expression: {message}") from None
