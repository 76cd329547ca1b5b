"""``throttle_by``: per key, let the first event through, then ignore the key for a while."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_duration
from portico_rx.operators._keys import KeyFunction, failed
from portico_rx.operators._scheduling import pick_scheduler
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["throttle_by"]

T = TypeVar("T")


def throttle_by(
    key: KeyFunction,
    duration: float | timedelta,
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """Per key, emit the first event, then drop events of that key until ``duration``
    has passed since the emitted one (reactivex's ``throttle_first``, per key).

    Memory holds one deadline per key whose window is open; closed windows are swept as
    time moves on, so a stream of ever-new keys stays bounded by the keys seen within
    ``duration``.

    Settlement: an event is emitted or dropped synchronously; a dropped event's delivery
    is acked as deliberately dropped (nothing is held).

    Marble (``duration`` = 4 ticks, key = the letter)::

        events:      -a-a-b-a---a-b-|
        throttle_by: -a---b-----a-b-|

    Args:
        key: the event's key (hashable). A key function that raises for one event turns
            that event into an ``EventFailed``; the operator goes on.
        duration: seconds (or a ``timedelta``) a key stays closed after it emitted.
        scheduler: where time comes from (default: the subscriber's).

    Returns:
        An operator for ``Observable.pipe``.

    Raises:
        ConfigurationError: ``duration`` is not positive.

    Example:
        >>> from portico_rx.operators import throttle_by
        >>> from portico_rx.testing import run_pipeline
        >>> alarms = [(0, "disk"), (1, "disk"), (2, "cpu"), (11, "disk")]
        >>> run_pipeline(throttle_by(lambda name: name, 10), events=alarms, until=20)
        [(0.0, 'disk'), (2.0, 'cpu'), (11.0, 'disk')]
    """
    window = positive_duration("duration", duration)

    def operator(source: Observable[T]) -> Observable[T | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[T | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            open_until: OrderedDict[Any, datetime] = OrderedDict()
            front: list[datetime | None] = [None]  # when the oldest window closes

            def sweep(now: datetime) -> None:
                while open_until:  # windows close in insertion order: sweep the front
                    oldest, until = next(iter(open_until.items()))
                    if until > now:
                        front[0] = until
                        return
                    del open_until[oldest]
                front[0] = None

            def on_next(event: T) -> None:
                if isinstance(event, EventFailed):
                    observer.on_next(event)
                    return
                now = clock.now
                due = front[0]
                if due is not None and due <= now:
                    sweep(now)
                try:
                    name = key(event)
                    if name in open_until:  # an unhashable key raises here
                        return
                except Exception as exc:
                    observer.on_next(failed("throttle_by.key", event, exc))
                    return
                until = open_until[name] = now + window
                if front[0] is None:
                    front[0] = until
                observer.on_next(event)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=subscribe_scheduler
            )

        return reactivex.create(subscribe)

    return operator
