"""Per-event cost of portico_rx's keyed operators vs reactivex's unkeyed peers, and
memory of ``dedupe`` under a million distinct keys.

    python benchmarks/bench_operators.py           # full run (~1-2 min)
    python benchmarks/bench_operators.py --quick   # a tiny run (smoke test)

Every pair runs in the same process on the same driver: a ``HistoricalScheduler``
advanced 1 ms per event and a ``Subject`` fed one event at a time, 10 000 distinct keys
cycling. Printed per pair: microseconds per event for ours and for the peer, and the
ratio ours/peer (the price of keys, settlement and isolation). The peers are not keyed:
``debounce`` keeps one pending value where ``debounce_by`` keeps one per key, so a ratio
above 1 is expected; what matters is that it stays a small constant factor.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import reactivex
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

from portico_rx.operators import (
    absent,
    batch,
    changed,
    debounce_by,
    dedupe,
    rate_limit,
    throttle_by,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
KEYS = 10_000
STEP = timedelta(milliseconds=1)

Operator = Callable[[reactivex.Observable[Any]], reactivex.Observable[Any]]


def key(event: tuple[int, int]) -> int:
    return event[0]


def value(event: tuple[int, int]) -> int:
    return event[1]


def drive(operator: Operator, events: int) -> float:
    """Seconds to push ``events`` events (1 ms apart, KEYS keys) through ``operator``."""
    scheduler = HistoricalScheduler(initial_clock=START)
    subject: reactivex.Subject[tuple[int, int]] = reactivex.Subject()
    out = [0]

    def on_next(_item: Any) -> None:
        out[0] += 1

    subject.pipe(operator).subscribe(on_next, scheduler=scheduler)
    now = START
    gc.collect()
    began = time.perf_counter()
    for i in range(events):
        now += STEP
        scheduler.advance_to(now)
        subject.on_next((i % KEYS, i // KEYS % 3))
    scheduler.advance_to(now + timedelta(seconds=120))
    elapsed = time.perf_counter() - began
    if out[0] == 0:
        raise RuntimeError("the benchmark pipeline emitted nothing: it measures nothing")
    return elapsed


def best(operator_factory: Callable[[], Operator], events: int, repeats: int) -> float:
    return min(drive(operator_factory(), events) for _ in range(repeats))


PAIRS: list[tuple[str, Callable[[], Operator], str, Callable[[], Operator]]] = [
    (
        "debounce_by(key, 1s)",
        lambda: debounce_by(key, 1.0),
        "debounce(1s)",
        lambda: ops.debounce(1.0),
    ),
    (
        "throttle_by(key, 1s)",
        lambda: throttle_by(key, 1.0),
        "throttle_first(1s)",
        lambda: ops.throttle_first(1.0),
    ),
    (
        "dedupe(key, ttl=60s)",
        lambda: dedupe(key, ttl=60),
        "distinct(key)",
        lambda: ops.distinct(key),
    ),
    (
        "changed(value, group=key)",
        lambda: changed(value, group=key),
        "distinct_until_changed(value)",
        lambda: ops.distinct_until_changed(value),
    ),
    (
        "rate_limit(5, 1s, key)",
        lambda: rate_limit(5, 1.0, key=key),
        "throttle_first(1s)",
        lambda: ops.throttle_first(1.0),
    ),
    (
        "batch(100, 1s)",
        lambda: batch(100, 1.0),
        "buffer_with_time_or_count(1s, 100)",
        lambda: ops.buffer_with_time_or_count(1.0, 100),
    ),
    ("absent(1s, key)", lambda: absent(1.0, key=key), "debounce(1s)", lambda: ops.debounce(1.0)),
]


SLOW_PEER_EVENTS = 20_000
"""reactivex's ``distinct`` searches a list of seen keys (O(keys) per event), so its pair
runs on at most this many events, once."""


def bench_overhead(events: int, repeats: int) -> None:
    baseline = best(lambda: ops.map(lambda e: e), events, repeats)
    print(f"driver baseline (map identity): {baseline / events * 1e6:8.2f} us/event")
    print(f"{'operator':30} {'us/event':>9}   {'peer':36} {'us/event':>9}   ratio")
    for ours_name, ours, peer_name, peer in PAIRS:
        n, r = (
            (min(events, SLOW_PEER_EVENTS), 1)
            if peer_name.startswith("distinct(")
            else (events, repeats)
        )
        ours_s = best(ours, n, r)
        peer_s = best(peer, n, r)
        print(
            f"{ours_name:30} {ours_s / n * 1e6:9.2f}   {peer_name:36} "
            f"{peer_s / n * 1e6:9.2f}   ratio {ours_s / peer_s:5.2f}x"
        )


def dedupe_memory(distinct: int, operator: Operator) -> tuple[float, int]:
    """Peak traced memory (MiB) while ``distinct`` distinct keys (1 ms apart) pass, and
    how many events came out."""
    scheduler = HistoricalScheduler(initial_clock=START)
    subject: reactivex.Subject[int] = reactivex.Subject()
    out = [0]

    def on_next(_item: Any) -> None:
        out[0] += 1

    gc.collect()
    tracemalloc.start()
    subscription = subject.pipe(operator).subscribe(on_next, scheduler=scheduler)
    now = START
    for i in range(distinct):
        now += STEP
        scheduler.advance_to(now)
        subject.on_next(i)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    subscription.dispose()
    return peak / 2**20, out[0]


def bench_memory(distinct: int) -> None:
    ttl_mb, ttl_out = dedupe_memory(distinct, dedupe(ttl=10))
    capped_mb, _ = dedupe_memory(distinct, dedupe(max_keys=10_000))
    seen: set[int] = set()
    naive = ops.filter(lambda k: not (k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    naive_mb, naive_out = dedupe_memory(distinct, naive)
    assert ttl_out == naive_out == distinct
    print(f"memory, {distinct:,} distinct keys 1 ms apart (tracemalloc peak):")
    print(f"  dedupe(ttl=10s)          {ttl_mb:8.1f} MiB   (holds <= 10,000 keys)")
    print(f"  dedupe(max_keys=10_000)  {capped_mb:8.1f} MiB")
    print(f"  unbounded seen-set       {naive_mb:8.1f} MiB   (what distinct() keeps)")
    print(f"memory ratio dedupe(ttl)/unbounded: {ttl_mb / naive_mb:5.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for smoke tests")
    args = parser.parse_args()
    events, repeats, distinct = (3_000, 1, 20_000) if args.quick else (100_000, 3, 1_000_000)
    print(f"portico_rx operators: {events:,} events, {KEYS:,} distinct keys, best of {repeats}")
    bench_overhead(events, repeats)
    bench_memory(distinct)


if __name__ == "__main__":
    main()
