"""How long to wait before retrying a step whose provider failed transiently."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    #: Attempts in total, the first included.
    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Exponential (1 s, 2 s, 4 s, …, capped); a provider's Retry-After wins when longer.
        Deterministic on purpose: the state machine stays a pure function.
        """
        delay = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempt - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds))
        return delay

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
