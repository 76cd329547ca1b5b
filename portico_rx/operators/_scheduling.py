"""Which scheduler an operator reads time from."""

from __future__ import annotations

import asyncio

from reactivex.abc import SchedulerBase
from reactivex.scheduler import TimeoutScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

from portico_rx.pipeline.tracking import base_scheduler

__all__ = ["pick_scheduler"]


def pick_scheduler(
    explicit: SchedulerBase | None, subscribed: SchedulerBase | None
) -> SchedulerBase:
    """The operator's ``scheduler=``, else the one given at subscribe time (a trigger's),
    else an ``AsyncIOScheduler`` on the running loop, else reactivex's timeout scheduler."""
    if explicit is not None:
        return explicit
    if subscribed is not None:  # settlement-aware already: not through a trigger's tracker
        return base_scheduler(subscribed)
    try:
        return AsyncIOScheduler(loop=asyncio.get_running_loop())
    except RuntimeError:
        return TimeoutScheduler.singleton()
