"""Time from the Rx scheduler: the one clock sources, operators and the sink read.

Live pipelines run on an ``AsyncIOScheduler`` bound to the running loop; tests,
previews and notebooks pass a ``HistoricalScheduler`` or ``TestScheduler`` and the same
code runs in virtual time with no wall-clock waits.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from reactivex.abc import SchedulerBase
from reactivex.scheduler import VirtualTimeScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

from portico_rx.pipeline.tracking import TrackingScheduler, base_scheduler

__all__ = ["base_scheduler", "is_virtual", "now", "reader", "resolve_scheduler", "sleep"]


def resolve_scheduler(scheduler: SchedulerBase | None) -> SchedulerBase:
    """``scheduler`` itself, or an ``AsyncIOScheduler`` on the running loop.

    Raises:
        RuntimeError: ``scheduler`` is ``None`` and no asyncio loop is running.
    """
    if scheduler is not None:
        return scheduler
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "no scheduler given and no asyncio loop is running: call this from async code, "
            "or pass scheduler=HistoricalScheduler() to run in virtual time"
        ) from None
    return AsyncIOScheduler(loop=loop)


def is_virtual(scheduler: SchedulerBase) -> bool:
    """``True`` for schedulers whose clock only moves when advanced (virtual time)."""
    return isinstance(base_scheduler(scheduler), VirtualTimeScheduler)


def now(scheduler: SchedulerBase) -> datetime:
    """The scheduler's current time as a tz-aware UTC datetime."""
    if type(scheduler) is TrackingScheduler:
        scheduler = base_scheduler(scheduler)
    if type(scheduler) is AsyncIOScheduler:  # hot path: its ``now`` is the UTC wall clock
        return datetime.now(UTC)
    value = scheduler.now
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo is not UTC else value


def reader(scheduler: SchedulerBase) -> Callable[[], datetime]:
    """A function returning :func:`now` of ``scheduler``, for a caller that reads it per
    event: on the live ``AsyncIOScheduler`` it is the UTC wall clock, read directly."""
    if type(base_scheduler(scheduler)) is AsyncIOScheduler:
        return functools.partial(datetime.now, UTC)
    return functools.partial(now, scheduler)


def sleep(scheduler: SchedulerBase, seconds: float) -> asyncio.Future[None]:
    """An awaitable that completes after ``seconds`` of *scheduler* time.

    On a virtual-time scheduler it completes when the scheduler is advanced past the
    due time; on anything else it is ``asyncio.sleep``.
    """
    loop = asyncio.get_running_loop()
    if not is_virtual(scheduler):
        return asyncio.ensure_future(asyncio.sleep(max(0.0, seconds)))
    future: asyncio.Future[None] = loop.create_future()

    def _wake(_scheduler: object, _state: object = None) -> None:
        if not future.done():
            future.set_result(None)

    disposable = scheduler.schedule_relative(timedelta(seconds=max(0.0, seconds)), _wake)
    future.add_done_callback(lambda f: disposable.dispose() if f.cancelled() else None)
    return future
