"""``record``: subscribe to a source for a while and keep its raw events as a DataFrame."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from reactivex import Observable, abc

from portico_rx.errors import ConfigurationError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import claim_current, current_delivery
from portico_rx.sources._replay import RECORDED_COLUMNS_ATTR

__all__ = ["RECORD_COLUMNS", "record"]

RECORD_COLUMNS = ["time", "source", "event_id", "key", "event"]
"""The fixed leading columns of a recorded frame; event fields follow."""


def _fields(event: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        return {str(k): v for k, v in event.items()}
    if isinstance(event, BaseModel):
        return dict(event)
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return {}


async def record(
    source: Observable[Any],
    *,
    count: int | None = None,
    duration: float | timedelta | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Any:
    """Subscribe to ``source`` and record its events until ``count`` events or ``duration``.

    Each event's delivery is settled as seen (a queue message is acked: recording
    consumes it, like any subscriber). On a virtual-time scheduler ``record`` advances
    the clock itself, so ``duration`` of virtual time takes no wall time.

    Returns:
        A DataFrame, one row per event, oldest first: ``time`` (when the source saw it,
        UTC), ``source``, ``event_id``, ``key`` (its idempotency key), ``event`` (the
        object itself), then one column per field of dict / pydantic / dataclass events.
        ``sources.replay(frame)`` (and ``simulate(..., events=frame)``) re-emit the original
        events with their ids and keys: the frame notes its columns in ``frame.attrs``.

    Example:
        >>> import asyncio, reactivex
        >>> frame = asyncio.run(record(reactivex.of({"n": 1}, {"n": 2}), count=2))
        >>> frame["n"].tolist()
        [1, 2]

    Args:
        source: any observable (a portico source, a Subject, a pipeline stage).
        count: stop after this many events (default: no limit; give ``duration`` then).
        duration: stop after this many seconds of scheduler time (default: no limit).
        scheduler: the scheduler to subscribe on (default: the running loop's; a
            ``HistoricalScheduler`` records in virtual time).

    Raises:
        ConfigurationError: neither ``count`` nor ``duration``, or a non-positive one.
        Exception: the error the source ended with, if it failed.
    """
    pd: Any = require("pandas", "notebook")
    seconds = _seconds(count, duration)
    chosen = clock.resolve_scheduler(scheduler)
    recorder = _Recorder(chosen, count, asyncio.get_running_loop().create_future())
    done = recorder.done
    subscription = source.subscribe(
        recorder.on_next, recorder.finish, lambda: recorder.finish(), scheduler=chosen
    )
    try:
        if clock.is_virtual(chosen):
            await _run_virtual(chosen, seconds, done)
        elif seconds is not None:
            await asyncio.wait_for(asyncio.shield(done), seconds) if not done.done() else None
        else:
            await done
    except TimeoutError:
        pass
    finally:
        subscription.dispose()
    if done.done() and done.exception() is not None:
        raise done.exception()  # type: ignore[misc]
    return _frame(pd, recorder.rows)


def _seconds(count: int | None, duration: float | timedelta | None) -> float | None:
    """Check ``record``'s limits; the duration in seconds (``None``: no time limit)."""
    if count is None and duration is None:
        raise ConfigurationError(
            "record(source) needs count= (events) or duration= (seconds); "
            "e.g. record(source, count=100)"
        )
    if count is not None and count < 1:
        raise ConfigurationError(f"count={count!r}: use 1 or more")
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    if seconds is not None and not seconds > 0:
        raise ConfigurationError(f"duration={duration!r}: use a positive number of seconds")
    return seconds


class _Recorder:
    """The rows seen so far and the future that resolves when recording should stop."""

    def __init__(
        self, scheduler: abc.SchedulerBase, count: int | None, done: asyncio.Future[None]
    ) -> None:
        self.scheduler = scheduler
        self.count = count
        self.done = done
        self.rows: list[dict[str, Any]] = []

    def finish(self, error: Exception | None = None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

    def on_next(self, event: Any) -> None:
        if self.done.done():
            return
        delivery = current_delivery()
        claim = claim_current()
        self.rows.append(
            {
                "time": delivery.seen_at if delivery else clock.now(self.scheduler),
                "source": delivery.source if delivery else "observable",
                "event_id": delivery.event_id if delivery else None,
                "key": delivery.idempotency_key if delivery else None,
                "event": event,
            }
        )
        if claim is not None:
            claim.resolve(True)
        if self.count is not None and len(self.rows) >= self.count:
            self.finish()


def _frame(pd: Any, rows: list[dict[str, Any]]) -> Any:
    """The recorded rows as a DataFrame: fixed columns, then the events' fields."""
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    extra: dict[str, list[Any]] = {}
    for position, row in enumerate(rows):
        for name, value in _fields(row["event"]).items():
            if name in RECORD_COLUMNS:
                continue
            extra.setdefault(name, [None] * len(rows))[position] = value
    for name, values in extra.items():
        frame[name] = values
    frame.attrs[RECORDED_COLUMNS_ATTR] = {
        "event_column": "event",
        "key_column": "key",
        "id_column": "event_id",
    }
    return frame


async def _run_virtual(
    scheduler: abc.SchedulerBase, seconds: float | None, done: asyncio.Future[None]
) -> None:
    """Advance a virtual clock until ``done`` or ``seconds``, one due item at a time."""
    virtual: Any = scheduler
    start: datetime = virtual.now
    until = start + timedelta(seconds=seconds) if seconds is not None else None
    queue = virtual._queue  # reactivex's PriorityQueue of ScheduledItem; peek only
    while not done.done():
        if not queue:
            break
        item = queue.peek()
        if until is not None and item.duetime > until:
            virtual.advance_to(until)
            break
        virtual.advance_to(item.duetime)
        await asyncio.sleep(0)
    if until is not None and not done.done() and virtual.now < until:
        virtual.advance_to(until)
