"""Misfire policy: what to do with fire times that passed while nothing could fire them.

Two situations produce missed runs: a trigger that starts after downtime (its last run
is read from the job store), and a live timer that woke late (a blocked loop, a laptop
that slept). Both go through :func:`select_runs`:

* runs older than ``grace_time`` seconds are dropped (``None``: no limit);
* of the rest, ``coalesce`` keeps the ``latest`` one (default), the ``earliest`` one,
  ``all`` of them (at most ``max_catchup``, the most recent), or none (``skip``).

A timer that fires on time has exactly one due run; it runs if within ``grace_time``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_GRACE_TIME", "MisfirePolicy", "select_runs"]

DEFAULT_GRACE_TIME = 86_400.0
"""One day: a daily job missed during a night-long outage still runs once on restart."""


class MisfirePolicy(BaseModel):
    """How missed runs are caught up.

    Args:
        grace_time: seconds a run may be late and still run (default 86400 = one day;
            ``None`` = no limit). APScheduler's default is 1 s, which silently drops runs
            after any restart; ours is deliberately generous.
        coalesce: ``"latest"`` (default), ``"earliest"``, ``"all"`` or ``"skip"``.
        max_catchup: at most this many missed runs are caught up with ``"all"``
            (default 100, the most recent ones).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    grace_time: float | None = Field(default=DEFAULT_GRACE_TIME, ge=0)
    coalesce: Literal["latest", "earliest", "all", "skip"] = "latest"
    max_catchup: int = Field(default=100, ge=0)

    def __str__(self) -> str:
        return (
            f"grace_time={self.grace_time}, coalesce={self.coalesce}, "
            f"max_catchup={self.max_catchup}"
        )


def select_runs(
    due: list[int], now_us: int, policy: MisfirePolicy, *, catch_up: bool = False
) -> list[int]:
    """Which of the ``due`` fire times (epoch µs, ascending, all ``<= now_us``) to run.

    ``catch_up``: the times were missed while the trigger was down (the coalesce rule
    applies even to a single one); otherwise a single due time is an on-time run.
    """
    if policy.grace_time is None:
        fresh = due
    else:
        limit = now_us - int(policy.grace_time * 1_000_000)
        fresh = [t for t in due if t >= limit]
    if not fresh:
        return []
    if len(due) == 1 and not catch_up:
        return fresh
    if policy.coalesce == "latest":
        return [fresh[-1]] if policy.max_catchup else []
    if policy.coalesce == "earliest":
        return [fresh[0]] if policy.max_catchup else []
    if policy.coalesce == "all":
        return fresh[-policy.max_catchup :] if policy.max_catchup else []
    return []
