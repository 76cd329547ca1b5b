"""Fire plans: what a schedule fires on — a cron expression, a fixed interval or one time.

Each plan yields its nominal fire times as integer epoch microseconds (UTC), ascending,
from any start; the timer, the missed-run logic and previews all read plans the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from portico_rx.schedule.cron_expression import CronExpression
from portico_rx.schedule.dst import DstPolicy
from portico_rx.schedule.fire_times import FireTimes

__all__ = ["CronPlan", "FirePlan", "IntervalPlan", "OncePlan", "count_fires"]

_MICROS = 1_000_000


class FirePlan(Protocol):
    """Anything that lists fire times."""

    kind: str
    """``"cron"``, ``"interval"`` or ``"at"``: the prefix of the tick's source label."""
    expression: str
    """Shown in ticks, logs and previews (``"0 9 * * *"``, ``"every 30s"``, ``"at …"``)."""

    def iter_from(self, start_us: int, end_us: int | None = None) -> Iterator[int]:
        """Fire times ``>= start_us`` (and ``< end_us``), ascending."""


class CronPlan:
    """A cron expression in a time zone under a DST policy."""

    __slots__ = ("expression", "times")
    kind = "cron"

    def __init__(self, cron: CronExpression, tz: ZoneInfo, dst: DstPolicy | None = None) -> None:
        self.expression = cron.expression
        self.times = FireTimes(cron, tz, dst)

    def iter_from(self, start_us: int, end_us: int | None = None) -> Iterator[int]:
        start = -(-start_us // _MICROS)  # ceil: a fire time at start_us itself counts
        end = None if end_us is None else -(-end_us // _MICROS)
        return self.times.iter_from(start, end, scale=_MICROS)

    def array_between(self, start_us: int, end_us: int) -> Any:
        """Fire times in ``[start_us, end_us)`` as a numpy ``int64`` array (previews)."""
        start = -(-start_us // _MICROS)
        end = -(-end_us // _MICROS)
        return self.times.between_array(start, end) * _MICROS

    def count_between(self, start_us: int, end_us: int) -> int:
        """How many fire times lie in ``[start_us, end_us)`` (a day at a time)."""
        return self.times.count_between(-(-start_us // _MICROS), -(-end_us // _MICROS))


class IntervalPlan:
    """Every ``every_us`` microseconds, on the grid ``anchor_us + k * every_us``.

    The default anchor (the Unix epoch) puts every replica on the same grid, so their
    ticks share idempotency keys.
    """

    __slots__ = ("anchor_us", "every_us", "expression")
    kind = "interval"

    def __init__(self, every_us: int, anchor_us: int = 0) -> None:
        self.every_us = every_us
        self.anchor_us = anchor_us
        self.expression = f"every {every_us / _MICROS:g}s"

    def iter_from(self, start_us: int, end_us: int | None = None) -> Iterator[int]:
        steps = -(-(start_us - self.anchor_us) // self.every_us)
        fire = self.anchor_us + steps * self.every_us
        while end_us is None or fire < end_us:
            yield fire
            fire += self.every_us

    def count_between(self, start_us: int, end_us: int) -> int:
        """How many fire times lie in ``[start_us, end_us)``."""
        first = -(-(start_us - self.anchor_us) // self.every_us)
        last = -(-(end_us - self.anchor_us) // self.every_us)
        return max(0, last - first)

    def array_between(self, start_us: int, end_us: int) -> Any:
        """Fire times in ``[start_us, end_us)`` as a numpy ``int64`` array (previews)."""
        import numpy as np

        steps = -(-(start_us - self.anchor_us) // self.every_us)
        first = self.anchor_us + steps * self.every_us
        return np.arange(first, end_us, self.every_us, dtype=np.int64)


class OncePlan:
    """A single fire time."""

    __slots__ = ("expression", "when_us")
    kind = "at"

    def __init__(self, when_us: int, expression: str) -> None:
        self.when_us = when_us
        self.expression = expression

    def iter_from(self, start_us: int, end_us: int | None = None) -> Iterator[int]:
        if self.when_us >= start_us and (end_us is None or self.when_us < end_us):
            yield self.when_us


def count_fires(plan: FirePlan, start_us: int, end_us: int) -> int:
    """How many fire times ``plan`` has in ``[start_us, end_us)``, without listing them
    where the plan can count (a year of every-second runs is 365 steps, not 31 million)."""
    if end_us <= start_us:
        return 0
    count_between = getattr(plan, "count_between", None)
    if count_between is not None:
        return int(count_between(start_us, end_us))
    return sum(1 for _ in plan.iter_from(start_us, end_us))
