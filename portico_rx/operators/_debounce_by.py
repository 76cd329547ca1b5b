"""``debounce_by``: per key, emit the last event of a burst once the key falls quiet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_duration
from portico_rx.operators._held import Held, discard, give_back, hold, release
from portico_rx.operators._keys import KeyFunction, key_of
from portico_rx.operators._scheduling import pick_scheduler
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["debounce_by"]

T = TypeVar("T")


@dataclass(slots=True)
class _Burst:
    held: Held[Any]
    due: datetime
    timer: abc.DisposableBase | None = None


def debounce_by(
    key: KeyFunction,
    duration: float | timedelta,
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """Per key, emit an event only after ``duration`` passed without another event of
    the same key; the last event of each burst is the one emitted.

    Keys are independent: a burst on one key never delays another key. Memory holds one
    event per key that is inside its quiet window, and nothing for quiet keys. With a
    constant key it emits exactly what ``ops.debounce(duration)`` emits, at the same
    times, ties at a deadline included.

    Settlement: the held event's delivery is claimed until it is emitted; an event
    superseded by a later one of its key is acked as dropped; events still held when the
    subscription is disposed (trigger stopped) or fails are nacked with
    ``requeue=True`` so a broker redelivers them. On completion the held events are
    emitted at once, oldest deadline first.

    Marble (``duration`` = 3 ticks, key = letter case)::

        events:      -a-A-a--------B-b-b-|
        debounce_by: -------A-a---------(Bb)|

    Args:
        key: the event's key (must be hashable). A key function that raises for one
            event turns that event into an ``EventFailed`` (dead-lettered by the sink).
        duration: quiet time in seconds (or a ``timedelta``), positive.
        scheduler: where time comes from (default: the subscriber's, e.g. the trigger's).

    Returns:
        An operator for ``Observable.pipe``.

    Raises:
        ConfigurationError: ``duration`` is not positive.

    Example:
        >>> from portico_rx.operators import debounce_by
        >>> from portico_rx.testing import run_pipeline
        >>> saves = [(0, "a.txt"), (1, "a.txt"), (2, "b.txt"), (3, "a.txt")]
        >>> run_pipeline(debounce_by(lambda path: path, 5), events=saves, until=20)
        [(7.0, 'b.txt'), (8.0, 'a.txt')]
    """
    window = positive_duration("duration", duration)

    def operator(source: Observable[T]) -> Observable[T | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[T | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            debouncer = _Debouncer(observer, clock, key, window)
            return debouncer.attach(source, subscribe_scheduler)

        return reactivex.create(subscribe)

    return operator


class _Debouncer:
    """One subscription's state: the held last event (and its timer) per busy key."""

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        clock: abc.SchedulerBase,
        key: KeyFunction,
        window: timedelta,
    ) -> None:
        self.observer = observer
        self.clock = clock
        self.key = key
        self.window = window
        self.lock = threading.RLock()
        self.bursts: dict[Any, _Burst] = {}

    def attach(
        self, source: Observable[Any], scheduler: abc.SchedulerBase | None
    ) -> abc.DisposableBase:
        subscription = source.subscribe(
            self.on_next, self.on_error, self.on_completed, scheduler=scheduler
        )

        def dispose() -> None:
            subscription.dispose()
            for burst in self.take_all():
                give_back(burst.held)

        return reactivex.disposable.Disposable(dispose)

    def arm(self, name: Any, burst: _Burst, delay: timedelta) -> None:
        def fire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
            self.fire(name, burst)

        burst.timer = self.clock.schedule_relative(delay, fire)

    def fire(self, name: Any, burst: _Burst) -> None:
        with self.lock:
            if self.bursts.get(name) is not burst:
                return
            now = self.clock.now
            if now < burst.due:  # a later event moved the deadline
                self.arm(name, burst, burst.due - now)
                return
            del self.bursts[name]
        release(self.observer, burst.held)

    def on_next(self, event: Any) -> None:
        if isinstance(event, EventFailed):
            self.observer.on_next(event)
            return
        name = key_of("debounce_by.key", self.key, event)
        if isinstance(name, EventFailed):
            self.observer.on_next(name)
            return
        with self.lock:
            held = hold(event)
            due = self.clock.now + self.window
            burst = self.bursts.get(name)
            if burst is None:
                burst = self.bursts[name] = _Burst(held, due)
                self.arm(name, burst, self.window)
            else:
                # a new quiet-time timer per event, as ops.debounce does: on an exact
                # deadline tie the scheduler then orders the timer and a concurrent
                # event the same way for both (by when each was scheduled)
                discard(burst.held)
                burst.held = held
                burst.due = due
                if burst.timer is not None:
                    burst.timer.dispose()
                self.arm(name, burst, self.window)

    def take_all(self) -> list[_Burst]:
        with self.lock:
            pending = sorted(self.bursts.values(), key=lambda b: b.due)
            self.bursts.clear()
        for burst in pending:
            if burst.timer is not None:
                burst.timer.dispose()
        return pending

    def on_error(self, error: Exception) -> None:
        for burst in self.take_all():
            give_back(burst.held)
        self.observer.on_error(error)

    def on_completed(self) -> None:
        for burst in self.take_all():
            release(self.observer, burst.held)
        self.observer.on_completed()
