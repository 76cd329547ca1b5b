"""Drive virtual-time schedulers from async tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from reactivex.scheduler import VirtualTimeScheduler

__all__ = ["advance", "settle"]


async def settle(rounds: int = 20) -> None:
    """Let ready asyncio tasks run (sink workers, acks) for a few loop iterations."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def advance(
    scheduler: VirtualTimeScheduler,
    by: float | timedelta | None = None,
    *,
    to: datetime | None = None,
    step: float | timedelta = 1.0,
) -> None:
    """Advance ``scheduler`` by ``by`` seconds (or ``to`` a time) in steps of ``step``,
    letting asyncio tasks run after each step so job creations and retries progress.

    Virtual time never waits on the wall clock: a year of hourly ticks takes as long as
    the work done for each tick.
    """
    if (by is None) == (to is None):
        raise ValueError("give exactly one of by= (seconds or timedelta) or to= (a datetime)")
    step_s = step.total_seconds() if isinstance(step, timedelta) else float(step)
    if step_s <= 0:
        raise ValueError(f"step={step!r}: use a positive duration")
    target = (
        scheduler.now + (by if isinstance(by, timedelta) else timedelta(seconds=float(by)))
        if by is not None
        else to
    )
    assert target is not None
    await settle()
    while scheduler.now < target:
        scheduler.advance_to(min(target, scheduler.now + timedelta(seconds=step_s)))
        await settle()
