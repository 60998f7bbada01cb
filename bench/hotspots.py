"""Summarise py-spy's collapsed stacks (``py-spy record --format raw --threads``).

Reports samples per thread (reader pool threads merged) and, for the event loop thread
(``MainThread``), the hottest frames by self time, self time per top-level package, and
inclusive time per frame. Usage: ``python bench/hotspots.py profile.txt``.
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path
from typing import Any

_LINE_NO = re.compile(r":\d+\)$")
_WHERE = re.compile(r"\(([^)]*)\)$")


def summarise(raw: str, top: int = 25) -> dict[str, Any]:
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    loop_samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = re.sub(r"_\d+$", "", frames[0].split(": ", 1)[-1])
        threads[thread] += count
        if thread != "MainThread" or len(frames) < 2:
            continue
        loop_samples += count
        names = [_LINE_NO.sub(")", f) for f in frames[1:]]
        own[names[-1]] += count
        where = _WHERE.search(names[-1])
        packages[where.group(1).split("/")[0] if where else names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    share = 100.0 / max(loop_samples, 1)
    return {
        "threads": dict(threads),
        "loop_samples": loop_samples,
        "self_pct": [(k, v * share) for k, v in own.most_common(top)],
        "package_self_pct": [(k, v * share) for k, v in packages.most_common(12)],
        "inclusive_pct": [(k, v * share) for k, v in inclusive.most_common(top * 4)],
    }


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    found = summarise(Path(args[0]).read_text())
    print("samples per thread:", found["threads"])
    print("event loop self time by package:")
    for name, pct in found["package_self_pct"]:
        print(f"  {pct:5.1f}%  {name}")
    print("event loop self time by frame:")
    for name, pct in found["self_pct"]:
        print(f"  {pct:5.1f}%  {name}")
    print("event loop inclusive time by frame:")
    for name, pct in found["inclusive_pct"]:
        print(f"  {pct:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
