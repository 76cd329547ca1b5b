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
from portico_rx.operators._keys import KeyFunction, key_of
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
            lock = threading.RLock()
            buckets: OrderedDict[Any, _Bucket] = OrderedDict()
            state = {"completed": False, "disposed": False}

            def has_room(bucket: _Bucket, now: datetime) -> bool:
                return len(bucket.sent) < limit or now - bucket.sent[0] >= window

            def record(name: Any, bucket: _Bucket, now: datetime) -> None:
                bucket.sent.append(now)
                buckets.move_to_end(name)

            def sweep(now: datetime) -> None:
                while buckets:  # least recently used first: drop buckets with a free window
                    oldest, bucket = next(iter(buckets.items()))
                    if bucket.waiting or now - bucket.sent[-1] < window:
                        break
                    del buckets[oldest]

            def over_rate(event: T, reason: str) -> EventFailed:
                return EventFailed(
                    event=event,
                    error=RateLimitExceededError(reason),
                    stage="rate_limit",
                    claim=claim_current(),
                )

            def maybe_complete() -> None:
                if state["completed"] and not any(b.waiting for b in buckets.values()):
                    state["completed"] = False
                    observer.on_completed()

            def arm(name: Any, bucket: _Bucket) -> None:
                delay = bucket.sent[0] + window - clock.now

                def fire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
                    ready: list[Held[Any]] = []
                    with lock:
                        bucket.timer = None
                        if state["disposed"]:
                            return
                        now = clock.now
                        while bucket.waiting and has_room(bucket, now):
                            ready.append(bucket.waiting.popleft())
                            record(name, bucket, now)
                        if bucket.waiting:
                            arm(name, bucket)
                    for held in ready:
                        release(observer, held)
                    with lock:
                        maybe_complete()

                bucket.timer = clock.schedule_relative(max(delay, timedelta(0)), fire)

            def on_next(event: T) -> None:
                if isinstance(event, EventFailed):
                    observer.on_next(event)
                    return
                name: Any = None
                if key is not None:
                    name = key_of("rate_limit.key", key, event)
                    if isinstance(name, EventFailed):
                        observer.on_next(name)
                        return
                with lock:
                    now = clock.now
                    sweep(now)
                    bucket = buckets.get(name)
                    if bucket is None:
                        bucket = buckets[name] = _Bucket(deque(maxlen=limit))
                    if not bucket.waiting and has_room(bucket, now):
                        record(name, bucket, now)
                        verdict: EventFailed | None = None
                    elif excess == "drop":
                        return
                    elif excess == "dead_letter":
                        verdict = over_rate(
                            event,
                            f"rate_limit(count={limit}, per={window.total_seconds()}): "
                            f"event over the rate for key {name!r}; raise count/per or use "
                            "excess='delay'",
                        )
                    elif len(bucket.waiting) >= backlog:
                        verdict = over_rate(
                            event,
                            f"rate_limit max_delayed={backlog}: {backlog} events already "
                            f"wait for key {name!r}; raise max_delayed or the rate",
                        )
                    else:
                        bucket.waiting.append(hold(event))
                        if bucket.timer is None:
                            arm(name, bucket)
                        return
                observer.on_next(event if verdict is None else verdict)

            def take_waiting() -> list[Held[Any]]:
                with lock:
                    state["disposed"] = True
                    waiting = [held for b in buckets.values() for held in b.waiting]
                    for bucket in buckets.values():
                        bucket.waiting.clear()
                        if bucket.timer is not None:
                            bucket.timer.dispose()
                            bucket.timer = None
                return waiting

            def on_error(error: Exception) -> None:
                for held in take_waiting():
                    give_back(held)
                observer.on_error(error)

            def on_completed() -> None:
                with lock:
                    state["completed"] = True
                    maybe_complete()

            subscription = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )

            def dispose() -> None:
                subscription.dispose()
                for held in take_waiting():
                    give_back(held)

            return reactivex.disposable.Disposable(dispose)

        return reactivex.create(subscribe)

    return operator
