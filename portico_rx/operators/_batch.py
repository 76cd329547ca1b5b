"""``batch``: collect events into lists of up to ``max_count``, at most ``max_time`` old."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_count, positive_duration
from portico_rx.operators._held import Held, give_back, hold
from portico_rx.operators._scheduling import pick_scheduler
from portico_rx.pipeline.delivery import Claim, Delivery, activate
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.provenance import batch_key

__all__ = ["BatchDelivery", "batch"]

T = TypeVar("T")


class BatchDelivery(Delivery):
    """The deliveries of a batch's events, travelling as one.

    While a batch is emitted this is the current delivery, so ``to_job`` claims every
    member at once (one :class:`~portico_rx.pipeline.delivery.Claim` over all of them): each
    member is acked when the batch's job exists, or nacked when it cannot be created.

    Its idempotency key is a digest of the members' keys (when every member has one),
    so the same batch redelivered makes no second job; ``batch_size`` and
    ``batch_event_ids`` go into the job's metadata.
    """

    __slots__ = ("members",)

    def __init__(self, members: Sequence[Delivery]) -> None:
        if not members:
            raise ValueError("a BatchDelivery needs at least one member delivery")
        self.members = tuple(members)
        sources = {m.source for m in self.members}
        digest = batch_key([m.idempotency_key for m in self.members])
        super().__init__(
            source=sources.pop() if len(sources) == 1 else "batch",
            seen_at=max(m.seen_at for m in self.members),
            idempotency_key=digest,
            attributes={
                "batch_size": len(self.members),
                "batch_event_ids": [m.event_id for m in self.members],
            },
        )

    def claim(self) -> Claim:
        """One claim over every member delivery."""
        return Claim.on(list(self.members))


def batch(
    max_count: int,
    max_time: float | timedelta,
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[T]], Observable[list[T] | EventFailed]]:
    """Collect events into lists: a list is emitted when it holds ``max_count`` events,
    or ``max_time`` seconds after its first event, whichever comes first. Nothing is
    emitted while no event arrives (no empty batches).

    Settlement: every event's delivery is claimed while it waits; the list is emitted
    with a :class:`BatchDelivery` current, so the one job ``to_job`` builds from it
    holds all the events' deliveries — all acked when it is created, all nacked when it
    cannot be. On completion the partial batch is emitted; on dispose (trigger stopped)
    or error the waiting events are nacked with ``requeue=True``. ``EventFailed`` items
    pass through at once.

    Marble (``max_count`` = 3, ``max_time`` = 4 ticks)::

        events: -abc--d-----ef-|
        batch:  ---x------y----z|     x=[a,b,c]  y=[d]  z=[e,f]

    Args:
        max_count: most events per list (1 or more).
        max_time: seconds (or a ``timedelta``) the first event of a list may wait.
        scheduler: where time comes from (default: the subscriber's).

    Returns:
        An operator for ``Observable.pipe`` emitting ``list`` s of events.

    Raises:
        ConfigurationError: ``max_count`` or ``max_time`` is not positive.

    Example:
        >>> from portico_rx.operators import batch
        >>> from portico_rx.testing import run_pipeline
        >>> rows = [(0, "r1"), (1, "r2"), (2, "r3"), (3, "r4")]
        >>> run_pipeline(batch(3, max_time=10), events=rows, until=20)
        [(2.0, ['r1', 'r2', 'r3']), (13.0, ['r4'])]
    """
    size = positive_count("max_count", max_count)
    wait = positive_duration("max_time", max_time)

    def operator(source: Observable[T]) -> Observable[list[T] | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[list[T] | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            batcher = _Batcher(observer, clock, size, wait)
            return batcher.attach(source, subscribe_scheduler)

        return reactivex.create(subscribe)

    return operator


class _Batcher(Generic[T]):
    """One subscription's state: the waiting events and the timer of the open list."""

    def __init__(
        self,
        observer: abc.ObserverBase[list[T] | EventFailed],
        clock: abc.SchedulerBase,
        size: int,
        wait: timedelta,
    ) -> None:
        self.observer = observer
        self.clock = clock
        self.size = size
        self.wait = wait
        self.lock = threading.RLock()
        self.waiting: list[Held[T]] = []
        self.timer: abc.DisposableBase | None = None
        self.generation = 0

    def attach(
        self, source: Observable[T], scheduler: abc.SchedulerBase | None
    ) -> abc.DisposableBase:
        subscription = source.subscribe(
            self.on_next, self.on_error, self.on_completed, scheduler=scheduler
        )

        def dispose() -> None:
            subscription.dispose()
            for held in self.take():
                give_back(held)

        return reactivex.disposable.Disposable(dispose)

    def take(self) -> list[Held[T]]:
        with self.lock:
            items = self.waiting[:]
            self.waiting.clear()
            self.generation += 1
            if self.timer is not None:
                self.timer.dispose()
                self.timer = None
        return items

    def emit(self, items: list[Held[T]]) -> None:
        if not items:
            return
        deliveries = [h.delivery for h in items if h.delivery is not None]
        current = BatchDelivery(deliveries) if deliveries else None
        try:
            with activate(current):
                self.observer.on_next([h.value for h in items])
        finally:
            for held in items:
                if held.claim is not None:
                    held.claim.resolve(True)

    def on_next(self, event: T) -> None:
        if isinstance(event, EventFailed):
            self.observer.on_next(event)
            return
        with self.lock:
            self.waiting.append(hold(event))
            full = len(self.waiting) >= self.size
            if len(self.waiting) == 1 and not full:
                started = self.generation

                def expire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
                    self.expire(started)

                self.timer = self.clock.schedule_relative(self.wait, expire)
        if full:
            self.emit(self.take())

    def expire(self, started: int) -> None:
        with self.lock:
            if self.generation != started:
                return
            self.timer = None
        self.emit(self.take())

    def on_error(self, error: Exception) -> None:
        for held in self.take():
            give_back(held)
        self.observer.on_error(error)

    def on_completed(self) -> None:
        self.emit(self.take())
        self.observer.on_completed()
