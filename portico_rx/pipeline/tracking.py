"""Settlement through stock reactivex operators: the trigger owns the scheduler.

A delivery is settled (a queue message acked) when its job exists or the pipeline
provably dropped it. A stock operator that shifts an event in time (``ops.delay``,
``ops.debounce``, ``ops.timeout``, a ``flat_map`` over ``reactivex.timer`` …) schedules
an action on the scheduler the pipeline was subscribed with. A trigger subscribes with a
:class:`TrackingScheduler`, so every such action is seen:

* an action scheduled while a live delivery is current **holds** it (the delivery
  cannot settle while the action is pending) and runs with that delivery current again,
  so ``to_job`` claims it when the operator re-emits the event;
* an action that is disposed before it runs (a debounced-away event) releases its hold:
  with nothing else holding it, the delivery is settled as dropped;
* a delivery sealed with nothing holding it while tracked actions are pending is
  **parked** until every action pending at that moment (and every action they schedule)
  has finished: ``ops.delay`` and ``ops.observe_on`` queue later events behind the first
  one's action instead of scheduling their own;
* when a held event comes back, ``to_job`` finds its delivery by the event itself
  (the object the source emitted), else by the delivery current in the action.

Operators that keep events in their own state and emit them from timers of their own
(``sample``, ``buffer_with_time``, ``window_with_time``) or in a list (buffers, windows)
cannot be tracked this way; ``to_job`` **detects** what reaches it without a live
delivery (see :class:`Tracker.report`), counts it in health, logs a warning naming the
operator kind and the ``portico_rx`` operator to use instead, and with
``strict_settlement=True`` refuses it to the dead letters. Nothing is silent.

For an operator given a scheduler of its own (``ops.observe_on(s)``,
``ops.delay(1, scheduler=s)``), wrap it: ``ops.observe_on(portico_rx.tracked(s))``.
"""

from __future__ import annotations

import contextvars
import heapq
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from reactivex import abc, typing
from reactivex.disposable import Disposable
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

from portico_rx.logs import get_logger
from portico_rx.pipeline.delivery import (
    Claim,
    Delivery,
    _source_trackers,
    _tracker,
    activate,
    current_delivery,
)

__all__ = ["Tracker", "TrackingScheduler", "UntrackedEventError", "current_tracker", "tracked"]

logger = get_logger("portico_rx.tracking")

_TState = TypeVar("_TState")

ADVICE: dict[str, str] = {
    "buffer": (
        "a buffer or window operator (buffer_with_count, buffer_with_time, window_*) handed "
        "to_job a list: the events held in it were acked when they arrived; use "
        "portico_rx.operators.batch, which keeps every event's delivery until its job exists"
    ),
    "timer": (
        "an operator that emits from a timer or scheduler of its own (sample, "
        "window_with_time, an interval-driven flat_map, observe_on/subscribe_on with an "
        "untracked scheduler) handed to_job an event whose delivery was already settled; "
        "use portico_rx.operators.debounce_by, throttle_by or batch, or wrap the "
        "operator's scheduler in portico_rx.tracked(...)"
    ),
    "scheduler": (
        "an operator running on a scheduler of its own (observe_on, subscribe_on, an "
        "operator given scheduler=) handed to_job an event whose delivery was already "
        "settled; wrap that scheduler: ops.observe_on(portico_rx.tracked(scheduler))"
    ),
    "batched": (
        "a time operator (delay, observe_on) released several events in one action after "
        "they were mapped to new objects, so their deliveries cannot be told apart; put "
        "ops.delay before ops.map (it then keeps each event's own delivery and key)"
    ),
}
"""Operator kind -> what happened and what to use instead (in the warning and dead letter)."""


class UntrackedEventError(Exception):
    """An event reached ``to_job`` without a live delivery (``strict_settlement=True``)."""

    def __init__(self, kind: str) -> None:
        super().__init__(ADVICE[kind])
        self.kind = kind


class _Action:
    """One tracked action: the delivery it holds and the barrier root it counts for."""

    __slots__ = ("claims", "delivery", "done", "hold", "root", "tracker")

    def __init__(self, tracker: Tracker | None, delivery: Delivery | None, root: int) -> None:
        self.tracker = tracker
        self.delivery = delivery  # None: a continuation that holds nothing itself
        self.hold: Claim | None = delivery.claim() if delivery is not None else None
        self.root = root
        self.done = False
        self.claims = 0  # job requests built from this delivery while the action ran

    def finish(self, *, disposed: bool = False) -> None:
        if self.done:
            return
        self.done = True
        hold, self.hold = self.hold, None
        abandon = (  # its job exists already: nothing to give back
            disposed
            and self.tracker is not None
            and self.tracker.abandoning
            and self.delivery is not None
            and not self.delivery.job_ids
        )
        if hold is not None:  # let go: dropped by the operator, or given back at teardown
            hold.resolve(not abandon, requeue=abandon)
        if self.tracker is not None:
            self.tracker._finished(self.root)


class Tracker:
    """A trigger's settlement book: pending tracked actions, parked deliveries, the
    deliveries of held events, and what reached ``to_job`` untracked.

    Args:
        name: the trigger's name (in logs).
        strict: refuse untracked events to the dead letters instead of creating jobs.
    """

    def __init__(self, name: str, *, strict: bool = False) -> None:
        self.name = name
        self.strict = strict
        self.untracked: dict[str, int] = {}
        self.delivering = False  # the source has emitted deliveries: detection applies
        self.running: _Action | None = None
        self.abandoning = False  # the pipeline is being torn down: give held events back
        self._next_root = 0
        self._roots: dict[int, int] = {}  # root -> pending actions
        self._heap: list[int] = []  # roots, lazily pruned
        self._parked: deque[tuple[int, Claim]] = deque()
        self._parked_by: dict[int, Claim] = {}  # id(delivery) -> its parked claim
        self._by_event: dict[int, Delivery] = {}
        self.recorder: Any = None  # the trigger's OutcomeRecorder: sees every emitted event

    # -- actions ---------------------------------------------------------------------

    def _begin(self, delivery: Delivery | None) -> _Action:
        running = self.running
        if running is not None:
            root = running.root  # scheduled by a tracked action: its continuation
        else:
            root = self._next_root
            self._next_root += 1
        count = self._roots.get(root, 0)
        if count == 0:
            heapq.heappush(self._heap, root)
        self._roots[root] = count + 1
        if delivery is not None:
            self._remember(delivery)
            _source_trackers.setdefault(delivery.source, self)
        return _Action(self, delivery, root)

    def _finished(self, root: int) -> None:
        count = self._roots[root] - 1
        if count:
            self._roots[root] = count
            return
        del self._roots[root]
        heap = self._heap
        while heap and heap[0] not in self._roots:
            heapq.heappop(heap)
        low = heap[0] if heap else self._next_root
        parked, abandon = self._parked, self.abandoning
        while parked and parked[0][0] < low:
            parked.popleft()[1].resolve(not abandon, requeue=abandon)

    # -- deliveries ------------------------------------------------------------------

    def close(self) -> None:
        """The trigger stopped: forget the sources it tracked."""
        for source in [s for s, tracker in _source_trackers.items() if tracker is self]:
            del _source_trackers[source]

    def emitted(self, event: Any, delivery: Delivery) -> None:
        """Called by :func:`~portico_rx.pipeline.delivery.deliver` after the synchronous
        emission, before sealing: park the delivery if nothing holds it while actions
        are pending (an operator may have queued the event behind one of them)."""
        self.delivering = True
        _source_trackers.setdefault(delivery.source, self)
        if self.recorder is not None:
            self.recorder.watch(delivery)
        if self._roots and delivery.unclaimed:
            claim = delivery.claim()
            self._parked.append((self._next_root - 1, claim))
            self._parked_by[id(delivery)] = claim
            delivery.add_done_callback(self._unparked)
            self._remember(delivery)

    def _unparked(self, delivery: Delivery) -> None:
        self._parked_by.pop(id(delivery), None)

    def unpark(self, delivery: Delivery) -> None:
        """``to_job`` claimed a parked delivery's event: its own claim keeps it open now."""
        claim = self._parked_by.pop(id(delivery), None)
        if claim is not None:
            claim.resolve(True)

    def _remember(self, delivery: Delivery) -> None:
        event = delivery.event
        if event is None or delivery.settled:
            return
        key = id(event)
        if self._by_event.get(key) is delivery:
            return
        self._by_event[key] = delivery
        delivery.add_done_callback(self._forget)

    def _forget(self, delivery: Delivery) -> None:
        key = id(delivery.event)
        if self._by_event.get(key) is delivery:
            del self._by_event[key]

    def suspects(self, current: Delivery | None) -> list[Delivery]:
        """The deliveries a pipeline error may belong to (Rx tells only the exception).

        Outside a tracked action: the current delivery. Inside one: its delivery unless
        its job exists already, and the deliveries parked behind it (a time operator
        that queued events behind one action emits them from it): they are
        dead-lettered together, so a failing event is not redelivered forever.
        """
        running = self.running
        if running is None or running.delivery is not current:
            return [current] if current is not None and not current.settled else []
        found = [] if current is None or current.settled or current.job_ids else [current]
        found += [
            claim.deliveries[0]
            for barrier, claim in self._parked
            if barrier >= running.root and not claim.resolved
        ]
        return found

    def abandon(self, dispose: Callable[[], None]) -> None:
        """Run ``dispose`` (the pipeline's teardown): events an operator still holds go
        back to their source (``nack(requeue=True)``), not acked as dropped."""
        self.abandoning = True
        try:
            dispose()
            parked, self._parked = self._parked, deque()
            for _barrier, claim in parked:
                claim.resolve(False, requeue=True)
        finally:
            self.abandoning = False

    def delivery_of(self, event: Any) -> Delivery | None:
        """The live delivery of ``event`` (the object its source emitted), if held."""
        if not self._by_event:
            return None
        delivery = self._by_event.get(id(event))
        if delivery is None or delivery.event is not event or delivery.settled:
            return None
        return delivery

    @property
    def has_parked(self) -> bool:
        """Whether deliveries are parked behind pending actions."""
        return bool(self._parked_by)

    def parked_claim(self) -> Claim | None:
        """One claim over every parked delivery (for an event that cannot be attributed
        to one of them: none of them settles before its job exists)."""
        live = [claim.deliveries[0] for _barrier, claim in self._parked if not claim.resolved]
        return Claim.on(live) if live else None

    # -- detection -------------------------------------------------------------------

    def report(self, kind: str, event: Any) -> None:
        """Count and log an event that reached ``to_job`` without a live delivery."""
        seen = self.untracked.get(kind, 0) + 1
        self.untracked[kind] = seen
        if seen == 1 or seen % 1000 == 0:
            logger.warning(
                "untracked_event",
                trigger=self.name,
                operator_kind=kind,
                count=seen,
                strict_settlement=self.strict,
                advice=ADVICE[kind],
                item=f"{event!r:.120}",
            )


def current_tracker() -> Tracker | None:
    """The tracker of the trigger whose pipeline is running right now, if any."""
    return _tracker.get()


def bind_tracker(tracker: Tracker | None) -> contextvars.Token[Tracker | None]:
    """Make ``tracker`` current (a trigger does this around subscribing its pipeline)."""
    return _tracker.set(tracker)


def unbind_tracker(token: contextvars.Token[Tracker | None]) -> None:
    _tracker.reset(token)


class TrackingScheduler(PeriodicScheduler):
    """Wraps a scheduler so actions scheduled while a delivery is current hold it.

    Args:
        inner: the scheduler that runs the actions and tells the time.
        tracker: the book to keep (a trigger's); ``None``: the tracker current when an
            action is scheduled (what :func:`tracked` gives users).
    """

    def __init__(self, inner: abc.SchedulerBase, tracker: Tracker | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.tracker = tracker

    @property
    def now(self) -> datetime:
        return self.inner.now

    def schedule(
        self, action: abc.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        return self._track(lambda run: self.inner.schedule(run, state), action)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: abc.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        return self._track(lambda run: self.inner.schedule_relative(duetime, run, state), action)

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: abc.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        return self._track(lambda run: self.inner.schedule_absolute(duetime, run, state), action)

    def _track(
        self,
        schedule: Callable[[abc.ScheduledAction[Any]], abc.DisposableBase],
        action: abc.ScheduledAction[Any],
    ) -> abc.DisposableBase:
        delivery = current_delivery()
        tracker = self.tracker or _tracker.get()
        if tracker is None and delivery is not None:  # scheduled outside any pipeline
            tracker = _source_trackers.get(delivery.source)
        running = tracker.running if tracker is not None else None
        if (
            running is not None
            and delivery is running.delivery
            and (delivery is None or running.claims or delivery.job_ids)
        ):  # a running action that handed its event on schedules more (delay's drain)
            assert tracker is not None
            return self._schedule_tracked(schedule, action, tracker, tracker._begin(None))
        if delivery is None or delivery.settled:

            def run_untracked(_scheduler: abc.SchedulerBase, state: Any = None) -> Any:
                token = _tracker.set(tracker)
                try:
                    return action(self, state)
                finally:
                    _tracker.reset(token)

            return schedule(run_untracked)

        entry = tracker._begin(delivery) if tracker is not None else _Action(None, delivery, 0)
        return self._schedule_tracked(schedule, action, tracker, entry)

    def _schedule_tracked(
        self,
        schedule: Callable[[abc.ScheduledAction[Any]], abc.DisposableBase],
        action: abc.ScheduledAction[Any],
        tracker: Tracker | None,
        entry: _Action,
    ) -> abc.DisposableBase:
        delivery = entry.delivery

        def run(_scheduler: abc.SchedulerBase, state: Any = None) -> Any:
            token = _tracker.set(tracker)
            previous = tracker.running if tracker is not None else None
            if tracker is not None:
                tracker.running = entry
            try:
                with activate(delivery):
                    return action(self, state)
            finally:
                if tracker is not None:
                    tracker.running = previous
                _tracker.reset(token)
                entry.finish()

        inner = schedule(run)

        def dispose() -> None:
            inner.dispose()
            entry.finish(disposed=True)

        return Disposable(dispose)


def tracked(scheduler: abc.SchedulerBase) -> TrackingScheduler:
    """``scheduler``, with the deliveries of the events it carries kept open.

    For operators given a scheduler of their own, which a trigger cannot see otherwise::

        source.pipe(ops.observe_on(portico_rx.tracked(pool)), portico_rx.to_job("t"))

    Example:
        >>> from reactivex.scheduler import HistoricalScheduler
        >>> tracked(HistoricalScheduler()).inner.__class__.__name__
        'HistoricalScheduler'
    """
    if isinstance(scheduler, TrackingScheduler):
        return scheduler
    return TrackingScheduler(scheduler)


def base_scheduler(scheduler: abc.SchedulerBase) -> abc.SchedulerBase:
    """The scheduler under any tracking wrappers (whose clock and kind count)."""
    while isinstance(scheduler, TrackingScheduler):
        scheduler = scheduler.inner
    return scheduler
