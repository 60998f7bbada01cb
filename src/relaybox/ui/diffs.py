"""Line diffs of two JSON documents for the console (server-side, difflib)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DiffLine:
    #: "add", "del", "same" or "hunk" (a ``@@ … @@`` header).
    kind: str
    text: str


def json_text(value: Any) -> list[str]:
    """Stable, line-per-field JSON: key order and indentation never show up as changes."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def unified(old: Any, new: Any) -> list[DiffLine]:
    """A unified diff of two JSON values; empty when they are equal."""
    found: list[DiffLine] = []
    for line in difflib.unified_diff(json_text(old), json_text(new), lineterm=""):
        # The ---/+++ file header: the page labels the two sides itself.
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            found.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            found.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            found.append(DiffLine("del", line[1:]))
        else:
            found.append(DiffLine("same", line[1:]))
    return found
