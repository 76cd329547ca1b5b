"""``rate_limit``: at most ``count`` events per ``per`` seconds, per key, with a policy
for the excess."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.errors import ConfigurationError, TriggerError
from portico_rx.operators._arguments import positive_count, positive_duration
from portico_rx.operators._held import Held, give_back, hold, release
from portico_rx.operators._keys import KeyFunction, failed
from portico_rx.operators._scheduling import pick_scheduler
from portico_rx.operators._table import KeyedTable
from portico_rx.pipeline.delivery import claim_current
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["Excess", "RateLimitExceededError", "rate_limit"]

T = TypeVar("T")
Excess = Literal["drop", "delay", "dead_letter"]
_EXCESS = ("drop", "delay", "dead_letter")


class RateLimitExceededError(TriggerError):
    """An event arrived over its rate (``excess="dead_letter"``), or over ``max_delayed``
    (``excess="delay"``); it travels to the sink as an ``EventFailed`` and is
    dead-lettered (its delivery nacked)."""


class _Bucket(deque[datetime]):
    """One key's recent send times (the deque itself, ``maxlen=count``), the events
    waiting under ``"delay"`` and their timer (set on the instance only when used).

    A key that sent once in its window has no bucket: its entry is that send's time
    (most keys of a stream of many keys never send twice in a window)."""

    waiting: deque[Held[Any]] | None = None
    timer: abc.DisposableBase | None = None


Entry = datetime | _Bucket
"""A key's state: the time of its one recent send, or its bucket."""


def rate_limit(
    count: int,
    per: float | timedelta,
    key: KeyFunction | None = None,
    *,
    excess: Excess = "drop",
    max_delayed: int = 10_000,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """Let at most ``count`` events through in any window of ``per`` seconds (per key
    when ``key`` is given; a sliding window, not fixed buckets).

    The excess policy says what happens to an event over the rate:

    * ``"drop"`` (default): it is dropped and its delivery acked as deliberately
      dropped (the right choice for "at most 10 alerts a minute").
    * ``"delay"``: it waits, in arrival order per key, until the window has room; its
      delivery is claimed meanwhile, so a queue message is acked only after its job
      exists. At most ``max_delayed`` events wait per key; one more is dead-lettered.
      On completion the stream completes after the waiting events were emitted; on
      dispose (trigger stopped) waiting events are nacked with ``requeue=True``.
    * ``"dead_letter"``: it becomes an ``EventFailed`` carrying
      :class:`RateLimitExceededError`, which the sink counts as an error,
      dead-letters and nacks (the broker's dead-letter queue receives it).

    Memory holds a key while a send of it is inside its window (or events of it wait),
    freed by a sweep within an eighth of ``per`` after, so a stream of ever-new keys
    stays bounded by the keys sent within ``per`` and an eighth.

    Marble (``count`` = 2, ``per`` = 5 ticks, one key)::

        events:           -abc-d------e-|
        excess="drop":    -ab---------e-|
        excess="delay":   -ab----c-d--e-|

    Args:
        count: events allowed per window (1 or more).
        per: the window in seconds (or a ``timedelta``), positive.
        key: limits apply per ``key(event)`` (hashable); default: one limit for all.
        excess: ``"drop"``, ``"delay"`` or ``"dead_letter"`` (see above).
        max_delayed: most events waiting per key under ``"delay"`` (default 10 000).
        scheduler: where time comes from (default: the subscriber's).

    Returns:
        An operator for ``Observable.pipe``.

    Raises:
        ConfigurationError: a non-positive ``count``, ``per`` or ``max_delayed``, or an
            unknown ``excess``.

    Example:
        >>> from portico_rx.operators import rate_limit
        >>> from portico_rx.testing import run_pipeline
        >>> clicks = [(0, 1), (0, 2), (0, 3), (1, 4)]
        >>> run_pipeline(rate_limit(2, per=10, excess="delay"), events=clicks, until=30)
        [(0.0, 1), (0.0, 2), (10.0, 3), (10.0, 4)]
    """
    limit = positive_count("count", count)
    window = positive_duration("per", per)
    backlog = positive_count("max_delayed", max_delayed)
    if excess not in _EXCESS:
        raise ConfigurationError(f"excess={excess!r}: use 'drop', 'delay' or 'dead_letter'")

    def operator(source: Observable[T]) -> Observable[T | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[T | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            limiter = _Limiter(observer, clock, limit, window, backlog, key, excess)
            return limiter.attach(source, subscribe_scheduler)

        return reactivex.create(subscribe)

    return operator


class _Limiter:
    """One subscription's state: a bucket of recent sends (and waiting events) per key,
    in a :class:`KeyedTable` ordered by last send (a bucket whose window is free and
    where nothing waits is dropped by the table's sweep)."""

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        clock: abc.SchedulerBase,
        limit: int,
        window: timedelta,
        backlog: int,
        key: KeyFunction | None,
        excess: Excess,
    ) -> None:
        self.observer = observer
        self.clock = clock
        self.limit = limit
        self.window = window
        self.backlog = backlog
        self.key = key
        self.excess = excess
        self.lock = threading.RLock()
        self.table: KeyedTable[Entry] = KeyedTable(
            clock.now, limit=None, ttl=window, expiry=self.expiry
        )
        self.buckets = self.table.entries
        self.completed = False
        self.disposed = False

    def expiry(self, entry: Entry) -> datetime | None:
        """When ``entry`` may go: its window frees (never while events wait in it)."""
        if not isinstance(entry, _Bucket):
            return entry + self.window
        return None if entry.waiting else entry[-1] + self.window

    def bucket(self, name: Any, entry: Entry) -> _Bucket:
        """``name``'s entry as a bucket (one is made from a single send's time)."""
        if isinstance(entry, _Bucket):
            return entry
        bucket = self.buckets[name] = _Bucket((entry,), self.limit)
        return bucket

    def attach(
        self, source: Observable[Any], scheduler: abc.SchedulerBase | None
    ) -> abc.DisposableBase:
        subscription = source.subscribe(
            self.on_next, self.on_error, self.on_completed, scheduler=scheduler
        )

        def dispose() -> None:
            subscription.dispose()
            for held in self.take_waiting():
                give_back(held)

        return reactivex.disposable.Disposable(dispose)

    def has_room(self, bucket: _Bucket, now: datetime) -> bool:
        return len(bucket) < self.limit or now - bucket[0] >= self.window

    def maybe_complete(self) -> None:
        if self.completed and not any(
            isinstance(b, _Bucket) and b.waiting for b in self.buckets.values()
        ):
            self.completed = False
            self.observer.on_completed()

    def arm(self, name: Any, bucket: _Bucket) -> None:
        delay = bucket[0] + self.window - self.clock.now

        def fire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
            self.fire(name, bucket)

        bucket.timer = self.clock.schedule_relative(max(delay, timedelta(0)), fire)

    def fire(self, name: Any, bucket: _Bucket) -> None:
        ready: list[Held[Any]] = []
        with self.lock:
            bucket.timer = None
            if self.disposed:
                return
            now = self.clock.now
            waiting = bucket.waiting
            while waiting and self.has_room(bucket, now):
                ready.append(waiting.popleft())
                bucket.append(now)
            if ready:
                self.table.put(name, bucket, now)
            if waiting:
                self.arm(name, bucket)
        for held in ready:
            release(self.observer, held)
        with self.lock:
            self.maybe_complete()

    def on_next(self, event: Any) -> None:
        if isinstance(event, EventFailed):
            self.observer.on_next(event)
            return
        name: Any = None
        buckets, table = self.buckets, self.table
        with self.lock:
            now = self.clock.now
            try:
                if self.key is not None:
                    name = self.key(event)
                entry = buckets.get(name)  # an unhashable key raises here
            except Exception as exc:
                failure: EventFailed | None = failed("rate_limit.key", event, exc)
            else:
                failure = None
                if entry is None:  # a new key (or one whose window freed): room
                    buckets[name] = now
                    if now >= table.due:
                        table.sweep(now)
                elif not isinstance(entry, _Bucket):  # one send in the window so far
                    if now - entry >= self.window:
                        buckets[name] = now
                    elif self.limit > 1:
                        buckets[name] = _Bucket((entry, now), self.limit)
                    elif self.excess == "drop":
                        return
                    else:
                        failure = self.over_rate(name, self.bucket(name, entry), event)
                        if failure is None:
                            return
                    if failure is None:
                        buckets.move_to_end(name)  # expires last now
                        if now >= table.due:
                            table.sweep(now)
                elif not entry.waiting and (  # has_room, inlined: per event
                    len(entry) < self.limit or now - entry[0] >= self.window
                ):
                    entry.append(now)
                    buckets.move_to_end(name)  # expires last now
                    if now >= table.due:
                        table.sweep(now)
                elif self.excess == "drop":
                    return
                else:
                    failure = self.over_rate(name, entry, event)
                    if failure is None:
                        return
        self.observer.on_next(event if failure is None else failure)

    def over_rate(self, name: Any, bucket: _Bucket, event: Any) -> EventFailed | None:
        """An event over the rate under ``"dead_letter"`` or ``"delay"``: its
        ``EventFailed``, or ``None`` once it waits in its bucket."""
        if self.excess == "dead_letter":
            return _over_rate(
                event,
                f"rate_limit(count={self.limit}, per={self.window.total_seconds()}): "
                f"event over the rate for key {name!r}; raise count/per or use "
                "excess='delay'",
            )
        if bucket.waiting is None:
            bucket.waiting = deque()
        if len(bucket.waiting) >= self.backlog:
            return _over_rate(
                event,
                f"rate_limit max_delayed={self.backlog}: {self.backlog} events already "
                f"wait for key {name!r}; raise max_delayed or the rate",
            )
        bucket.waiting.append(hold(event))
        if bucket.timer is None:
            self.arm(name, bucket)
        return None

    def take_waiting(self) -> list[Held[Any]]:
        with self.lock:
            self.disposed = True
            buckets = [b for b in self.buckets.values() if isinstance(b, _Bucket)]
            waiting = [held for b in buckets for held in b.waiting or ()]
            for bucket in buckets:
                bucket.waiting = None
                if bucket.timer is not None:
                    bucket.timer.dispose()
                    bucket.timer = None
        return waiting

    def on_error(self, error: Exception) -> None:
        for held in self.take_waiting():
            give_back(held)
        self.observer.on_error(error)

    def on_completed(self) -> None:
        with self.lock:
            self.completed = True
            self.maybe_complete()


def _over_rate(event: Any, reason: str) -> EventFailed:
    return EventFailed(
        event=event,
        error=RateLimitExceededError(reason),
        stage="rate_limit",
        claim=claim_current(),
    )
