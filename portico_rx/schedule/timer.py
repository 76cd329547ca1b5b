"""One timer for many schedules: a heap of next fire times on an Rx scheduler.

However many schedules a trigger holds, exactly one action is scheduled on the Rx
scheduler at a time — for the earliest due fire time. When it runs it pops every entry
that is due, hands each its due fire times, pushes each entry's next fire time and arms
itself for the new earliest. Idle schedules cost a heap slot, not a task or a poll.

Times are integer microseconds since the Unix epoch (UTC), so virtual-time schedulers land
exactly on fire times.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from reactivex.abc import DisposableBase, SchedulerBase

from portico_rx import clock

__all__ = ["ScheduleTimer", "TimerEntry", "to_micros"]

logger = structlog.get_logger("portico_rx.schedule.timer")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

DueCallback = Callable[["TimerEntry", list[tuple[int, int]], int], None]
"""``callback(entry, [(nominal_us, due_us), ...], now_us)``."""


def to_micros(moment: datetime) -> int:
    """A tz-aware datetime as integer microseconds since the epoch."""
    return (moment - _EPOCH) // _MICRO


class TimerEntry:
    """One schedule in the timer: its fire times (nominal, due) and its callback."""

    __slots__ = ("active", "callback", "fires", "key", "next_fire")

    def __init__(self, key: Any, fires: Iterator[tuple[int, int]], callback: DueCallback) -> None:
        self.key = key
        self.fires = fires
        self.callback = callback
        self.active = True
        self.next_fire: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"TimerEntry(key={self.key!r}, next_fire={self.next_fire!r}, active={self.active})"


class ScheduleTimer:
    """A heap of ``(due_us, seq, entry)`` and one armed scheduler action.

    Args:
        scheduler: the Rx scheduler whose clock and timers are used.
    """

    def __init__(self, scheduler: SchedulerBase) -> None:
        self.scheduler = scheduler
        self._heap: list[tuple[int, int, TimerEntry]] = []
        self._seq = itertools.count()
        self._armed: DisposableBase | None = None
        self._armed_at: int | None = None
        self._firing = False
        self._disposed = False
        self.wakeups = 0

    def __len__(self) -> int:
        return sum(1 for _, _, entry in self._heap if entry.active)

    def now_us(self) -> int:
        """The scheduler's clock, in epoch microseconds."""
        return to_micros(clock.now(self.scheduler))

    def add(
        self, key: Any, fires: Iterator[tuple[int, int]], callback: DueCallback, *, arm: bool = True
    ) -> TimerEntry:
        """Add a schedule; ``fires`` yields ``(nominal_us, due_us)`` ascending.

        ``arm=False`` defers arming (adding many entries); call :meth:`arm` after.
        """
        entry = TimerEntry(key, fires, callback)
        if self._push_next(entry) and arm:
            self._arm()
        return entry

    def arm(self) -> None:
        """Arm the timer for the earliest entry (after adding with ``arm=False``)."""
        self._arm()

    def remove(self, entry: TimerEntry) -> None:
        """Stop an entry; its heap slot is dropped when it reaches the top."""
        entry.active = False

    def dispose(self) -> None:
        """Cancel the armed action and drop every entry."""
        self._disposed = True
        if self._armed is not None:
            self._armed.dispose()
        self._armed = None
        self._armed_at = None
        for _, _, entry in self._heap:
            entry.active = False
        self._heap.clear()

    def _push_next(self, entry: TimerEntry) -> bool:
        fire = next(entry.fires, None)
        entry.next_fire = fire
        if fire is None or not entry.active:
            return False
        heapq.heappush(self._heap, (fire[1], next(self._seq), entry))
        return True

    def _arm(self) -> None:
        if self._disposed or self._firing:
            return
        while self._heap and not self._heap[0][2].active:
            heapq.heappop(self._heap)
        if not self._heap:
            if self._armed is not None:
                self._armed.dispose()
            self._armed, self._armed_at = None, None
            return
        due = self._heap[0][0]
        if self._armed is not None and self._armed_at is not None and self._armed_at <= due:
            return
        if self._armed is not None:
            self._armed.dispose()
        self._armed_at = due
        delay = max(0, due - self.now_us())
        self._armed = self.scheduler.schedule_relative(
            timedelta(microseconds=delay), self._on_timer
        )

    def _on_timer(self, _scheduler: Any = None, _state: Any = None) -> None:
        self._armed, self._armed_at = None, None
        if self._disposed:
            return
        self.wakeups += 1
        now = self.now_us()
        self._firing = True
        try:
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, _, entry = heapq.heappop(heap)
                if not entry.active or entry.next_fire is None:
                    continue
                due = [entry.next_fire]
                following = next(entry.fires, None)
                while following is not None and following[1] <= now:
                    due.append(following)
                    following = next(entry.fires, None)
                entry.next_fire = following
                if following is not None:
                    heapq.heappush(heap, (following[1], next(self._seq), entry))
                try:
                    entry.callback(entry, due, now)
                except Exception:  # one schedule's failure must not stop the others
                    logger.exception("schedule_callback_failed", schedule=str(entry.key))
        finally:
            self._firing = False
        self._arm()
