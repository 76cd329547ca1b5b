"""One timer for many schedules: a heap of next fire times on an Rx scheduler.

However many schedules a trigger holds, exactly one action is scheduled on the Rx
scheduler at a time — for the earliest due fire time. When it runs it takes every entry
that is due, hands each its due fire times, files each entry's next fire time and arms
itself for the new earliest. Idle schedules cost a slot in a list, not a task or a poll.

The heap holds *distinct* due times, each with the list (a bucket) of entries due then,
in the order they were filed. Schedules coincide — ten thousand cron schedules have at
most 60 distinct seconds in a minute — so firing an instant's runs is one heap pop and a
walk over its bucket, and filing a run's next fire time is usually one ``append``: the
cost per run does not grow with the number of schedules (a heap of one slot per schedule
cost ``log n`` tuple comparisons, cache misses among them, per run).

Times are integer microseconds since the Unix epoch (UTC), so virtual-time schedulers land
exactly on fire times.

On an asyncio scheduler the loop's own timer wakes up to 1-2 ms late (``epoll`` waits in
whole milliseconds, rounded up). With ``spin`` the timer wakes that much *before* the fire
time and yields to the loop (``call_soon``, never blocking it) until the exact
microsecond, so runs fire within ~0.1 ms. The spin is capped at 1% of the time since the
previous wake-up, so frequent timers spin little and idle ones cost nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from reactivex.abc import DisposableBase, SchedulerBase
from reactivex.scheduler.eventloop import AsyncIOScheduler

from portico_rx.logs import get_logger
from portico_rx.pipeline import clock

__all__ = ["DEFAULT_SPIN", "ScheduleTimer", "TimerEntry", "to_micros"]

logger = get_logger("portico_rx.schedule.timer")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

DEFAULT_SPIN = 0.002
"""Seconds before a fire time at which an asyncio timer wakes to spin until it."""

DueCallback = Callable[["TimerEntry", list[tuple[int, int]], int], None]
"""``callback(entry, [(nominal_us, due_us), ...], now_us)``."""


def _paired(nominal: int, jitter: Callable[[], int] | None) -> tuple[int, int]:
    return (nominal, nominal) if jitter is None else (nominal, nominal + jitter())


def to_micros(moment: datetime) -> int:
    """A tz-aware datetime as integer microseconds since the epoch."""
    return (moment - _EPOCH) // _MICRO


class TimerEntry:
    """One schedule in the timer: its fire times and its callback.

    ``fires`` yields nominal fire times (epoch µs, ascending); ``jitter()``, if given,
    the delay of each run (µs). ``next_fire`` is the next ``(nominal_us, due_us)``. No
    wrapper per schedule: the timer keeps ten thousand of these and pairs each fire time
    with its due time itself.
    """

    __slots__ = ("active", "callback", "fires", "jitter", "key", "next_fire")

    def __init__(
        self,
        key: Any,
        fires: Iterator[int],
        callback: DueCallback,
        jitter: Callable[[], int] | None = None,
    ) -> None:
        self.key = key
        self.fires = fires
        self.callback = callback
        self.jitter = jitter
        self.active = True
        self.next_fire: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"TimerEntry(key={self.key!r}, next_fire={self.next_fire!r}, active={self.active})"


class ScheduleTimer:
    """A heap of distinct due times, a bucket of entries per due time, and one armed
    scheduler action.

    Args:
        scheduler: the Rx scheduler whose clock and timers are used.
        spin: seconds to wake early and yield to the loop until the fire time (asyncio
            schedulers only; ``0`` relies on the loop's timer alone).
    """

    def __init__(self, scheduler: SchedulerBase, *, spin: float = DEFAULT_SPIN) -> None:
        if not spin >= 0:
            raise ValueError(f"spin={spin!r}: use 0 or more seconds")
        self.scheduler = scheduler
        asyncio_clock = isinstance(clock.base_scheduler(scheduler), AsyncIOScheduler)
        self._spin_us = int(spin * 1_000_000) if asyncio_clock else 0
        self._last_wake_us: int | None = None
        self._heap: list[int] = []  # distinct due times (µs)
        self._buckets: dict[int, list[TimerEntry]] = {}  # due time -> entries, filing order
        self._armed: DisposableBase | None = None
        self._armed_at: int | None = None
        self._firing = False
        self._disposed = False
        self.wakeups = 0

    def __len__(self) -> int:
        return sum(1 for bucket in self._buckets.values() for entry in bucket if entry.active)

    def now_us(self) -> int:
        """The scheduler's clock, in epoch microseconds."""
        return to_micros(clock.now(self.scheduler))

    def add(
        self,
        key: Any,
        fires: Iterator[int],
        callback: DueCallback,
        *,
        jitter: Callable[[], int] | None = None,
        arm: bool = True,
    ) -> TimerEntry:
        """Add a schedule: its fire times and an optional per-run delay (see TimerEntry).

        ``arm=False`` defers arming (adding many entries); call :meth:`arm` after.
        """
        entry = TimerEntry(key, fires, callback, jitter)
        if self._push_next(entry) and arm:
            self._arm()
        return entry

    def arm(self) -> None:
        """Arm the timer for the earliest entry (after adding with ``arm=False``)."""
        self._arm()

    def remove(self, entry: TimerEntry) -> None:
        """Stop an entry; its slot is dropped when its due time comes up."""
        entry.active = False

    def dispose(self) -> None:
        """Cancel the armed action and drop every entry."""
        self._disposed = True
        if self._armed is not None:
            self._armed.dispose()
        self._armed = None
        self._armed_at = None
        for bucket in self._buckets.values():
            for entry in bucket:
                entry.active = False
        self._heap.clear()
        self._buckets.clear()

    def _push_next(self, entry: TimerEntry) -> bool:
        nominal = next(entry.fires, None)
        fire = None if nominal is None else _paired(nominal, entry.jitter)
        entry.next_fire = fire
        if fire is None or not entry.active:
            return False
        self._file(fire[1], entry)
        return True

    def _file(self, due: int, entry: TimerEntry) -> None:
        bucket = self._buckets.get(due)
        if bucket is None:
            self._buckets[due] = [entry]
            heapq.heappush(self._heap, due)
        else:
            bucket.append(entry)

    def _arm(self) -> None:
        if self._disposed or self._firing:
            return
        heap, buckets = self._heap, self._buckets
        while heap and not any(entry.active for entry in buckets[heap[0]]):
            del buckets[heapq.heappop(heap)]  # only removed entries are due then
        if not heap:
            if self._armed is not None:
                self._armed.dispose()
            self._armed, self._armed_at = None, None
            return
        due = heap[0]
        if self._armed is not None and self._armed_at is not None and self._armed_at <= due:
            return
        if self._armed is not None:
            self._armed.dispose()
        self._armed_at = due
        now = self.now_us()
        delay = max(0, due - now - self._lead_us(due, now))
        self._armed = self.scheduler.schedule_relative(
            timedelta(microseconds=delay), self._on_timer
        )

    def _lead_us(self, due: int, now: int) -> int:
        if not self._spin_us:
            return 0
        since = now if self._last_wake_us is None else self._last_wake_us
        return min(self._spin_us, max(0, due - since) // 100)

    def _on_timer(self, _scheduler: Any = None, _state: Any = None) -> None:
        self._armed = None
        if self._disposed:
            return
        now = self.now_us()
        heap, buckets = self._heap, self._buckets
        if heap and heap[0] > now:
            if self._spin_us and heap[0] - now <= 2 * self._spin_us:
                # woke early on purpose: let the loop run, then look again
                self._armed = self.scheduler.schedule(self._on_timer)
                return
            # far too early (the wall clock was set back): sleep again, do not spin
            self._armed_at = None
            self._arm()
            return
        self._armed_at = None
        self._last_wake_us = now
        self.wakeups += 1
        self._firing = True
        try:
            while heap and heap[0] <= now:
                # the instant's bucket, taken out first: an entry filed while it fires
                # (a callback adding a schedule due now) gets a new bucket, fired next
                for entry in buckets.pop(heapq.heappop(heap)):
                    if not entry.active or entry.next_fire is None:
                        continue
                    due = [entry.next_fire]
                    fires, jitter = entry.fires, entry.jitter
                    following: tuple[int, int] | None = None
                    for nominal in fires:
                        following = (
                            (nominal, nominal) if jitter is None else (nominal, nominal + jitter())
                        )
                        if following[1] > now:
                            break
                        due.append(following)
                        following = None
                    entry.next_fire = following
                    if following is not None:
                        self._file(following[1], entry)
                    try:
                        entry.callback(entry, due, now)
                    except Exception:  # one schedule's failure must not stop the others
                        logger.exception("schedule_callback_failed", schedule=str(entry.key))
        finally:
            self._firing = False
        self._arm()
