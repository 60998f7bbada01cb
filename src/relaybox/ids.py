"""Identifiers in Courier's shape: ``1-<8 hex unix seconds>-<24 hex random>``.

Ids are not secrets (every read also needs the workspace's API key), so they come from a
Mersenne Twister seeded once from the OS: ``secrets`` would cost an ``os.urandom`` system
call per id, which showed up as 12 % of the event loop's time under invoke load.
"""

from __future__ import annotations

import os
import random

_rng = random.Random(os.urandom(32))


def courier_id(now: float) -> str:
    return f"1-{int(now):08x}-{_rng.getrandbits(96):024x}"


def short_id(prefix: str) -> str:
    return f"{prefix}_{_rng.getrandbits(80):020x}"
