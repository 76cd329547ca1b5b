"""``absent``: emit an :class:`Absence` when an expected event did not arrive in time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import reactivex
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_duration
from portico_rx.operators._keys import KeyFunction, key_of
from portico_rx.operators._scheduling import pick_scheduler
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.provenance import absence_key

__all__ = ["Absence", "absent"]

T = TypeVar("T")


class Absence(BaseModel):
    """An expected event that did not arrive in time.

    Attributes:
        key: whose event is missing (``None`` when ``absent`` is not keyed).
        last_seen: when the last event of that key arrived (UTC); ``None`` when none
            arrived since the watch started.
        deadline: when the missing event was due (UTC): ``last_seen + within``, or the
            start of the watch ``+ within``.
        within: the allowed silence, in seconds.
        missed: how many deadlines in a row were missed (``repeat=True`` counts up).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Any = None
    last_seen: datetime | None = None
    deadline: datetime
    within: float
    missed: int = 1


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(slots=True)
class _Watch:
    last_seen: datetime | None
    deadline: datetime
    missed: int = 0
    timer: abc.DisposableBase | None = None


def absent(
    within: float | timedelta,
    key: KeyFunction | None = None,
    *,
    expect: Iterable[Hashable] = (),
    repeat: bool = False,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Absence | EventFailed]]:
    """Emit an :class:`Absence` when no event (of a key) arrived for ``within`` seconds:
    "no heartbeat for 5 minutes" as a trigger.

    Unkeyed, the watch starts at subscription: an absence fires ``within`` after the
    start or after the last event, whichever is later. Keyed, a key is watched from its
    first event (and the keys in ``expect`` from the subscription), so a device that
    goes silent is reported even while others keep talking. After an absence the key
    is watched again from its next event; with ``repeat=True`` it fires again every
    ``within`` of continued silence (``missed`` counts them).

    The input events are consumed, not forwarded: their deliveries are acked as
    dropped at once. Each absence is emitted with a delivery of its own
    (``source="absent"``, idempotency key ``"<key>:<deadline>"``), so ``to_job`` gives
    the job a deterministic key and a replay makes no duplicate.

    Marble (``within`` = 4 ticks; x = Absence)::

        heartbeats: -h-h-h---------h--|
        absent:     ---------x--------|

    Args:
        within: the allowed silence in seconds (or a ``timedelta``), positive.
        key: watch each ``key(event)`` separately (hashable); default: one watch.
        expect: keys watched from the subscription, before their first event.
        repeat: fire again every ``within`` while the silence goes on (default no).
        scheduler: where time comes from (default: the subscriber's).

    Returns:
        An operator for ``Observable.pipe`` emitting :class:`Absence` items (and the
        ``EventFailed`` of events whose key function raised).

    Raises:
        ConfigurationError: ``within`` is not positive.

    Examples:
        >>> from portico_rx.operators import absent
        >>> from portico_rx.testing import run_pipeline
        >>> beats = [(0, "beat"), (30, "beat"), (200, "beat")]
        >>> [(t, a.missed) for t, a in run_pipeline(absent(60), events=beats, until=250)]
        [(90.0, 1)]
    """
    window = positive_duration("within", within)
    expected = list(expect)

    def operator(source: Observable[Any]) -> Observable[Absence | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[Absence | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            watcher = _Watcher(observer, clock, window, key, repeat)
            return watcher.attach(source, subscribe_scheduler, expected)

        return reactivex.create(subscribe)

    return operator


class _Watcher:
    """One subscription's state: a deadline (and its timer) per watched key."""

    def __init__(
        self,
        observer: abc.ObserverBase[Absence | EventFailed],
        clock: abc.SchedulerBase,
        window: timedelta,
        key: KeyFunction | None,
        repeat: bool,
    ) -> None:
        self.observer = observer
        self.clock = clock
        self.window = window
        self.seconds = window.total_seconds()
        self.key = key
        self.repeat = repeat
        self.lock = threading.RLock()
        self.watches: dict[Any, _Watch] = {}
        self.closed = False

    def attach(
        self,
        source: Observable[Any],
        scheduler: abc.SchedulerBase | None,
        expected: list[Hashable],
    ) -> abc.DisposableBase:
        start = self.clock.now
        subscription = source.subscribe(
            self.on_next, self.on_error, self.on_completed, scheduler=scheduler
        )
        with self.lock:  # after subscribing, so an event due at a deadline counts as on time
            for name in [None] if self.key is None else expected:
                if not self.closed and name not in self.watches:
                    self.watch_from(name, None, start)

        def dispose() -> None:
            subscription.dispose()
            self.stop_watching()

        return reactivex.disposable.Disposable(dispose)

    def arm(self, name: Any, watch: _Watch, delay: timedelta) -> None:
        def fire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
            self.fire(name, watch)

        watch.timer = self.clock.schedule_relative(delay, fire)

    def fire(self, name: Any, watch: _Watch) -> None:
        with self.lock:
            if self.watches.get(name) is not watch:
                return
            now = self.clock.now
            if now < watch.deadline:  # an event moved the deadline
                self.arm(name, watch, watch.deadline - now)
                return
            watch.missed += 1
            absence = Absence(
                key=name,
                last_seen=None if watch.last_seen is None else _utc(watch.last_seen),
                deadline=_utc(watch.deadline),
                within=self.seconds,
                missed=watch.missed,
            )
            if self.repeat:
                watch.deadline += self.window
                self.arm(name, watch, watch.deadline - now)
            else:
                del self.watches[name]
        deadline = absence.deadline.isoformat()
        deliver(
            self.observer,
            absence,
            Delivery(
                source="absent",
                seen_at=_utc(self.clock.now),
                event_id=f"{name}@{deadline}",
                idempotency_key=absence_key(name, deadline),
                attributes={"absent_key": str(name), "deadline": deadline},
            ),
        )

    def watch_from(self, name: Any, last_seen: datetime | None, start: datetime) -> None:
        watch = self.watches.get(name)
        if watch is None:
            watch = self.watches[name] = _Watch(last_seen, start + self.window)
            self.arm(name, watch, self.window)
        else:
            watch.last_seen = last_seen
            watch.deadline = start + self.window
            watch.missed = 0

    def on_next(self, event: Any) -> None:
        if isinstance(event, EventFailed):
            self.observer.on_next(event)
            return
        name: Any = None
        if self.key is not None:
            name = key_of("absent.key", self.key, event)
            if isinstance(name, EventFailed):
                self.observer.on_next(name)
                return
        with self.lock:
            now = self.clock.now
            self.watch_from(name, now, now)

    def stop_watching(self) -> None:
        with self.lock:
            self.closed = True
            for watch in self.watches.values():
                if watch.timer is not None:
                    watch.timer.dispose()
            self.watches.clear()

    def on_error(self, error: Exception) -> None:
        self.stop_watching()
        self.observer.on_error(error)

    def on_completed(self) -> None:
        self.stop_watching()
        self.observer.on_completed()
