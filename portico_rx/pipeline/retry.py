"""Retry policy: exponential backoff with jitter, shared by the sink and the worker."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from portico_rx.errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failing call.

    Attempt ``n`` (1-based) that fails waits ``min(max_delay, initial_delay *
    multiplier ** (n - 1))``, scaled by a random factor in ``[1 - jitter, 1 + jitter]``,
    before attempt ``n + 1``. After ``max_attempts`` attempts the call has failed for good.

    Args:
        max_attempts: attempts in total, including the first (default 5).
        initial_delay: seconds before the second attempt (default 0.1).
        multiplier: growth of the delay per attempt (default 2.0).
        max_delay: cap on one delay in seconds (default 30).
        jitter: relative spread of each delay, 0 to 1 (default 0.2).
        seed: seed the jitter for reproducible tests (default: unseeded).
    """

    max_attempts: int = 5
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts={self.max_attempts!r}: use 1 or more (1 means no retry)"
            )
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ConfigurationError(
                f"initial_delay={self.initial_delay!r}, max_delay={self.max_delay!r}: "
                "delays cannot be negative"
            )
        if self.multiplier < 1:
            raise ConfigurationError(f"multiplier={self.multiplier!r}: use 1 or more")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter={self.jitter!r}: use a fraction from 0 to 1")
        object.__setattr__(self, "_random", random.Random(self.seed))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        if self.jitter:
            base *= 1 + self._random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)
