"""The operators read the scheduler's time through ``time_reader``: the same value as
``scheduler.now`` on every kind of scheduler, overrides of ``now`` included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler, TimeoutScheduler, VirtualTimeScheduler
from reactivex.testing import TestScheduler

from portico_rx.operators._scheduling import time_reader

START = datetime(2025, 1, 1, tzinfo=UTC)


class ShiftedScheduler(HistoricalScheduler):
    """A subclass whose ``now`` is its own property."""

    @property
    def now(self) -> datetime:
        return super().now + timedelta(hours=1)


class AttributeClock:
    """A scheduler-like object whose ``now`` is a plain attribute, not a property."""

    def __init__(self) -> None:
        self.now = START


@pytest.mark.parametrize(
    "make",
    [
        lambda: HistoricalScheduler(initial_clock=START),
        lambda: VirtualTimeScheduler(initial_clock=START),
        lambda: TestScheduler(),
        lambda: ShiftedScheduler(initial_clock=START),
    ],
    ids=["historical", "virtual", "test", "overridden-now"],
)
def test_the_reader_follows_a_virtual_clock_as_now_does(make: Any) -> None:
    scheduler = make()
    read = time_reader(scheduler)
    seen = [read(scheduler)]
    for seconds in (1, 250):
        scheduler.advance_by(timedelta(seconds=seconds))
        seen.append(read(scheduler))
        assert seen[-1] == scheduler.now
    assert seen[0] < seen[1] < seen[2]


def test_the_reader_of_a_wall_clock_scheduler_reads_the_wall_clock() -> None:
    scheduler = TimeoutScheduler.singleton()
    read = time_reader(scheduler)
    before = datetime.now(UTC)
    assert before <= read(scheduler) <= datetime.now(UTC)


def test_a_now_that_is_no_property_is_read_as_an_attribute() -> None:
    clock = AttributeClock()
    read = time_reader(clock)  # type: ignore[arg-type]
    clock.now = START + timedelta(days=2)
    assert read(clock) == START + timedelta(days=2)  # type: ignore[arg-type]
