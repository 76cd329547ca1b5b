"""ScheduleTimer: coincident fire times share one heap slot (a bucket), in filing order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reactivex.scheduler import HistoricalScheduler

from portico_rx.schedule.timer import ScheduleTimer, TimerEntry, to_micros

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_coincident_entries_fire_in_filing_order_on_one_wakeup() -> None:
    scheduler = HistoricalScheduler(START)
    timer = ScheduleTimer(scheduler, spin=0)
    base = to_micros(START)
    fired: list[tuple[str, int]] = []

    def record(entry: TimerEntry, due: list[tuple[int, int]], now: int) -> None:
        fired.extend((entry.key, nominal - base) for nominal, _ in due)

    for name in ("c", "a", "b"):
        timer.add(name, iter(range(base + 1_000_000, base + 10_000_000, 1_000_000)), record)
    removed = timer.add("gone", iter([base + 1_000_000]), record)
    timer.remove(removed)
    scheduler.advance_by(timedelta(seconds=2.5))
    assert fired == [(k, s * 1_000_000) for s in (1, 2) for k in ("c", "a", "b")]
    assert timer.wakeups == 2
    assert len(timer) == 3


def test_a_bucket_of_removed_entries_is_skipped_and_an_entry_filed_while_firing_fires() -> None:
    scheduler = HistoricalScheduler(START)
    timer = ScheduleTimer(scheduler, spin=0)
    base = to_micros(START)
    fired: list[str] = []

    def late(entry: TimerEntry, due: list[tuple[int, int]], now: int) -> None:
        fired.append(entry.key)

    def adds_one(entry: TimerEntry, due: list[tuple[int, int]], now: int) -> None:
        fired.append(entry.key)
        timer.add("added-while-firing", iter([now]), late)

    early = timer.add("early", iter([base + 1_000_000]), late)
    timer.add("second", iter([base + 2_000_000]), adds_one)
    timer.remove(early)
    scheduler.advance_by(timedelta(seconds=1.5))
    assert fired == []  # the removed entry does not fire
    scheduler.advance_by(timedelta(seconds=1))
    assert fired == ["second", "added-while-firing"]  # one instant, both buckets
