"""``rate_limit``: at most ``count`` events per ``per`` seconds, per key, with a policy
for the excess."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.errors import ConfigurationError, TriggerError
from portico_rx.operators._arguments import positive_count, positive_duration
from portico_rx.operators._held import Held, give_back, hold, release
from portico_rx.operators._keys import KeyFunction, failed
from portico_rx.operators._scheduling import pick_scheduler
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


@dataclass(slots=True)
class _Bucket:
    sent: deque[datetime]
    waiting: deque[Held[Any]] = field(default_factory=deque)
    timer: abc.DisposableBase | None = None


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
    """One subscription's state: a bucket of recent sends (and waiting events) per key."""

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
        self.buckets: OrderedDict[Any, _Bucket] = OrderedDict()
        self.completed = False
        self.disposed = False
        # The earliest time the least recently used bucket may be dropped: no sweep
        # runs before it (buckets are kept in send order, so none is due earlier).
        self.front: datetime | None = None
        self.spare: _Bucket | None = None  # the last bucket swept, reused for a new key

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
        return len(bucket.sent) < self.limit or now - bucket.sent[0] >= self.window

    def record(self, name: Any, bucket: _Bucket, now: datetime) -> None:
        bucket.sent.append(now)
        self.buckets.move_to_end(name)

    def sweep(self, now: datetime) -> None:
        buckets, window = self.buckets, self.window
        while buckets:  # least recently used first: drop buckets with a free window
            oldest, bucket = next(iter(buckets.items()))
            if bucket.waiting or bucket.sent[-1] + window > now:
                # No bucket can be dropped before the front's window frees (or, while
                # it holds waiting events, before one more window has passed).
                self.front = (bucket.sent[-1] if bucket.sent else now) + self.window
                return
            del buckets[oldest]
            bucket.sent.clear()  # idle (nothing waits, no timer): the next new key's
            self.spare = bucket
        self.front = None

    def maybe_complete(self) -> None:
        if self.completed and not any(b.waiting for b in self.buckets.values()):
            self.completed = False
            self.observer.on_completed()

    def arm(self, name: Any, bucket: _Bucket) -> None:
        delay = bucket.sent[0] + self.window - self.clock.now

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
            while bucket.waiting and self.has_room(bucket, now):
                ready.append(bucket.waiting.popleft())
                self.record(name, bucket, now)
            if bucket.waiting:
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
        buckets = self.buckets
        with self.lock:
            now = self.clock.now
            if self.front is not None and self.front <= now:
                self.sweep(now)
            try:
                if self.key is not None:
                    name = self.key(event)
                bucket = buckets.get(name)  # an unhashable key raises here
            except Exception as exc:
                failure: EventFailed | None = failed("rate_limit.key", event, exc)
            else:
                failure = None
                if bucket is None:
                    bucket = self.spare
                    if bucket is None:
                        bucket = _Bucket(deque(maxlen=self.limit))
                    else:
                        self.spare = None
                    buckets[name] = bucket
                    if self.front is None:
                        self.front = now + self.window
                sent = bucket.sent
                if not bucket.waiting and (  # has_room and record, inlined: per event
                    len(sent) < self.limit or now - sent[0] >= self.window
                ):
                    sent.append(now)
                    buckets.move_to_end(name)
                elif self.excess == "drop":
                    return
                else:
                    failure = self.over_rate(name, bucket, event)
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
            waiting = [held for b in self.buckets.values() for held in b.waiting]
            for bucket in self.buckets.values():
                bucket.waiting.clear()
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
