"""List id patterns for ``GET /lists?pattern=`` (courier-api.md §8).

List ids are dot-separated parts (``courier.us.east``). A pattern is either an exact id or
parts where ``*`` matches exactly one part and ``**`` matches one or more parts, which
gives Courier's "endsWith" wildcard (``courier.**`` → every list under ``courier``) and,
in front, its mirror (``**.east``).
"""

from __future__ import annotations

from dataclasses import dataclass

ONE = "*"
MANY = "**"


@dataclass(frozen=True)
class ListPattern:
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, pattern: str) -> ListPattern:
        return cls(tuple(pattern.split(".")))

    @property
    def exact(self) -> bool:
        return not any(p in (ONE, MANY) for p in self.parts)

    @property
    def prefix(self) -> str:
        """The literal text every matching id starts with (for narrowing a database scan)."""
        literal: list[str] = []
        for part in self.parts:
            if part in (ONE, MANY):
                return ".".join(literal) + "." if literal else ""
            literal.append(part)
        return ".".join(literal)

    def matches(self, list_id: str) -> bool:
        ids = list_id.split(".")
        # The set of id positions the pattern can have consumed so far (an NFA walk, so
        # several "**" parts cannot blow up exponentially).
        reachable = {0}
        for part in self.parts:
            following: set[int] = set()
            for at in reachable:
                if part == MANY:
                    following.update(range(at + 1, len(ids) + 1))
                elif at < len(ids) and (part == ONE or ids[at] == part):
                    following.add(at + 1)
            if not following:
                return False
            reachable = following
        return len(ids) in reachable
