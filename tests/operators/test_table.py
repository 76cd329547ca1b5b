"""The keyed operators' one per-key state: memory follows the documented ttl and limit."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import reactivex
import reactivex.operators
from reactivex.scheduler import HistoricalScheduler

from portico_rx.operators import dedupe, rate_limit, throttle_by
from portico_rx.operators._table import SWEEPS_PER_TTL, KeyedTable

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=8)


def test_an_entry_is_swept_within_an_eighth_of_its_ttl_after_it_expired() -> None:
    table: KeyedTable[datetime] = KeyedTable(T0, limit=None, ttl=TTL)
    for second in range(40):  # one new key a second, each written with its expiry
        now = T0 + timedelta(seconds=second)
        table.entries[second] = now + TTL
        table.settle(now)
        oldest = int(next(iter(table.entries)))  # type: ignore[call-overload]
        # every key older than ttl + ttl/8 is gone; every key younger than ttl is kept
        assert second - oldest <= (TTL + TTL / SWEEPS_PER_TTL).total_seconds()
        assert len(table.entries) >= min(second + 1, TTL.total_seconds())


def test_limit_drops_the_oldest_and_an_entry_without_expiry_is_kept() -> None:
    table: KeyedTable[datetime | None] = KeyedTable(
        T0, limit=3, ttl=TTL, expiry=lambda value: value
    )
    table.put("held", None, T0)  # e.g. events wait in it: never swept
    for second in range(1, 4):
        table.put(second, T0 + timedelta(seconds=second), T0)
    assert list(table.entries) == [1, 2, 3]  # over the limit: the oldest went first
    table.put("held", None, T0)
    table.sweep(T0 + timedelta(hours=1))
    assert list(table.entries) == ["held"]


def peak_mib(operator: reactivex.typing.Mapper, distinct: int) -> float:  # type: ignore[type-arg]
    scheduler = HistoricalScheduler(initial_clock=T0)
    subject: reactivex.Subject[int] = reactivex.Subject()
    tracemalloc.start()
    subscription = subject.pipe(operator).subscribe(lambda _: None, scheduler=scheduler)
    now = T0
    for i in range(distinct):
        now += timedelta(milliseconds=1)
        scheduler.advance_to(now)
        subject.on_next(i)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    subscription.dispose()
    return peak / 2**20


def test_memory_follows_the_window_not_every_key_ever_seen() -> None:
    # 20,000 distinct keys 1 ms apart; a 0.2 s window holds about 200 of them
    seen: set[int] = set()

    def first_time(key: int) -> bool:
        if key in seen:
            return False
        seen.add(key)
        return True

    unbounded = peak_mib(reactivex.operators.filter(first_time), 20_000)
    bounded = [dedupe(ttl=0.2), throttle_by(lambda k: k, 0.2), rate_limit(1, 0.2, key=lambda k: k)]
    for operator in [*bounded, dedupe(max_keys=200)]:
        assert peak_mib(operator, 20_000) < unbounded / 4
