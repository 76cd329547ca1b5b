"""Backoff: the one formula for every wait after failures, and the retry policy built on it.

:func:`backoff` serves every reconnect, poll and restart loop (queue consumers, pollers,
:class:`~portico_rx.pipeline.PipelineTrigger` restarts); :class:`RetryPolicy` adds an
attempt budget for the sink, the job stores and the worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from portico_rx.errors import ConfigurationError

__all__ = ["RetryPolicy", "backoff"]

_shared_random = random.Random()


def backoff(
    failures: int,
    initial: float,
    maximum: float,
    *,
    multiplier: float = 2.0,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after ``failures`` failures in a row.

    ``min(maximum, initial * multiplier ** (failures - 1))``, scaled by a random factor
    in ``[1 - jitter, 1 + jitter]``: never negative, never above ``maximum * (1 +
    jitter)``, and (without jitter) growing with ``failures`` until it reaches
    ``maximum``. Any number of failures is fine (no overflow).

    Args:
        failures: failures in a row so far, 1 or more.
        initial: seconds after the first failure, >= 0.
        maximum: cap before jitter, seconds, >= 0.
        multiplier: growth per failure, >= 1 (default 2.0: doubling).
        jitter: relative spread, from 0 to 1 (default 0: exact).
        rng: the random source of the jitter; seed one for reproducible waits
            (default: a shared unseeded one).

    Raises:
        ConfigurationError: ``failures`` below 1, a negative delay, ``multiplier``
            below 1 or ``jitter`` outside 0 to 1.

    Example:
        >>> [backoff(n, 0.5, 3.0) for n in range(1, 6)]
        [0.5, 1.0, 2.0, 3.0, 3.0]
    """
    if failures < 1:
        raise ConfigurationError(f"failures={failures!r}: count failures from 1")
    _check_shape(initial, maximum, multiplier, jitter)
    try:
        delay = min(maximum, initial * multiplier ** (failures - 1))
    except OverflowError:
        delay = maximum
    if jitter:
        delay *= 1 + (rng or _shared_random).uniform(-jitter, jitter)
    return max(0.0, delay)


def _check_shape(
    initial: float,
    maximum: float,
    multiplier: float,
    jitter: float,
    names: tuple[str, str] = ("initial", "maximum"),
) -> None:
    if initial < 0 or maximum < 0:
        raise ConfigurationError(
            f"{names[0]}={initial!r}, {names[1]}={maximum!r}: delays cannot be negative"
        )
    if multiplier < 1:
        raise ConfigurationError(f"multiplier={multiplier!r}: use 1 or more")
    if not 0 <= jitter <= 1:
        raise ConfigurationError(f"jitter={jitter!r}: use a fraction from 0 to 1")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failing call.

    Attempt ``n`` (1-based) that fails waits :func:`backoff` ``(n, initial_delay,
    max_delay, multiplier=multiplier, jitter=jitter)`` before attempt ``n + 1``: that is
    ``min(max_delay, initial_delay * multiplier ** (n - 1))``, scaled by a random factor
    in ``[1 - jitter, 1 + jitter]``. After ``max_attempts`` attempts the call has failed
    for good.

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
        _check_shape(
            self.initial_delay,
            self.max_delay,
            self.multiplier,
            self.jitter,
            names=("initial_delay", "max_delay"),
        )
        object.__setattr__(self, "_random", random.Random(self.seed))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return backoff(
            attempt,
            self.initial_delay,
            self.max_delay,
            multiplier=self.multiplier,
            jitter=self.jitter,
            rng=self._random,
        )
