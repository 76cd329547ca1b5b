"""Which scheduler an operator reads time from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter

from reactivex.abc import SchedulerBase
from reactivex.scheduler import TimeoutScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

from portico_rx.pipeline.tracking import base_scheduler

__all__ = ["pick_scheduler", "time_reader"]


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


TimeReader = Callable[[SchedulerBase], datetime]


def time_reader(scheduler: SchedulerBase) -> TimeReader:
    """The function reading ``scheduler.now``, called as ``read(scheduler)``: for the
    per-event hot paths, which read the scheduler's time on every event.

    ``now`` is a ``property`` on every reactivex scheduler; its getter, taken once from
    the scheduler's class, reads the same value as ``scheduler.now`` without the
    attribute lookup and descriptor call ``scheduler.now`` repeats on each event (on a
    ``HistoricalScheduler`` that is about a third of the read). A ``now`` that is not a
    property (a plain attribute, another descriptor) is read with ``getattr``.
    """
    now = getattr(type(scheduler), "now", None)
    if isinstance(now, property) and now.fget is not None:
        getter: TimeReader = now.fget
        return getter
    return attrgetter("now")
