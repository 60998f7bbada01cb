"""What a step changed in its run's context, kept small enough to store on the step.

The debugger shows each step's effect (``data.plan: "free" → "pro"``) without storing a
full copy of the context per step: only top-level keys of ``data``, ``profile`` and
``refs`` (and the scalar fields) that differ, with long values cut short.
"""

from __future__ import annotations

import json
from typing import Any

from relaybox.domain.run import RunContext

#: A value whose JSON is longer than this is stored as a truncated preview.
MAX_VALUE_CHARS = 200
#: At most this many changes per step; the rest are counted, not listed.
MAX_CHANGES = 20
_MISSING = object()


def context_changes(before: RunContext, after: RunContext) -> list[dict[str, Any]] | None:
    """``[{path, old?, new?}]`` for every changed key (None when nothing changed).

    ``old`` is absent for an added key and ``new`` for a removed one.
    """
    found: list[dict[str, Any]] = []
    for name in ("recipient", "brand", "template"):
        _compare(found, name, getattr(before, name), getattr(after, name))
    for name in ("data", "profile", "refs"):
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        for key in sorted(set(old) | set(new)):
            _compare(found, f"{name}.{key}", old.get(key, _MISSING), new.get(key, _MISSING))
    if not found:
        return None
    if len(found) > MAX_CHANGES:
        more = len(found) - MAX_CHANGES
        found = [*found[:MAX_CHANGES], {"path": "…", "more": more}]
    return found


def _compare(found: list[dict[str, Any]], path: str, old: Any, new: Any) -> None:
    if old == new:
        return
    change: dict[str, Any] = {"path": path}
    if old is not _MISSING:
        change["old"] = _compact(old)
    if new is not _MISSING:
        change["new"] = _compact(new)
    found.append(change)


def _compact(value: Any) -> Any:
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return {"truncated": text[:MAX_VALUE_CHARS] + "…"}
