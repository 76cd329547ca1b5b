"""Per-event cost of portico_rx's keyed operators against reactivex's unkeyed peers, on a
single key and on 10,000 keys; and ``dedupe``'s memory under a million distinct keys.

    python benchmarks/bench_operators.py           # full run (~2 min)
    python benchmarks/bench_operators.py --quick   # a tiny run (smoke test)
    python benchmarks/bench_operators.py --only dedupe --profile   # cProfile one round

Both sides of a pair run on the same driver in the same process, alternating rounds
(``benchmarks/harness.py``): a ``HistoricalScheduler`` advanced 1 ms per event and a
``Subject`` fed one event at a time, keys cycling over 1 or 10,000 values. Each side's
figure is the CPU time its operator adds to that driver: the same events straight from
the ``Subject`` to the subscriber run alongside, the two alternating 500 events at a
time, and are subtracted (the clock advance costs more than most operators and would
flatter every ratio; alternating chunks keeps a shared machine's drifting load out of
the difference); a difference
below 2% of the driver's time is below the resolution and counts as 2%. The headline
of each pair is the median of the paired speed ratios ours/peer (> 1: ours is faster),
min-max beside it. Targets: >= 0.5x on a single key, >= 0.3x on 10,000 keys.

The peers are reactivex's own unkeyed operators, which keep one state where ours keep
one per key (``debounce`` one pending value, ``throttle_first`` one window). On 10,000
keys reactivex's ``distinct`` searches a list of every key seen (O(keys) per event), so
there ``dedupe``'s peer is ``distinct`` done with a set (``filter`` + ``set``), the
fastest way to write it; and ``distinct_until_changed`` compares each event with the
previous event of *any* group (it emits 1 of the 30,000 events where ``changed`` emits
the first of each of the 10,000 groups), so there ``changed``'s peer is the same
``filter`` with a dict of each group's last value. Both call the same ``key`` (and
``value``) functions per event as ours and as the one-key peers do, and emit the same
events as ours. The library runs at its defaults, logging included.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import reactivex
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, Result, compare, exit_code, library_defaults, load_average

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
STEP = timedelta(milliseconds=1)
TARGETS = {1: 0.5, 10_000: 0.3}

Operator = Callable[[reactivex.Observable[Any]], reactivex.Observable[Any]]


def key(event: tuple[int, int]) -> int:
    return event[0]


def value(event: tuple[int, int]) -> int:
    return event[1]


CHUNK = 500
"""Events per timed chunk: the operator's pipeline and the bare driver alternate chunk by
chunk, so both see the same machine (a shared box's load shifts within a round)."""


class Driver:
    """A ``HistoricalScheduler`` and a ``Subject`` feeding ``operator`` (``None``: straight
    to the subscriber, the bare driver), pushed ``CHUNK`` events at a time."""

    def __init__(self, operator: Operator | None) -> None:
        self.scheduler = HistoricalScheduler(initial_clock=START)
        self.subject: reactivex.Subject[tuple[int, int]] = reactivex.Subject()
        self.out = [0]
        out = self.out

        def on_next(_item: Any) -> None:
            out[0] += 1

        source = self.subject if operator is None else self.subject.pipe(operator)
        source.subscribe(on_next, scheduler=self.scheduler)
        self.now = START

    def push(self, events: list[tuple[int, int]]) -> float:
        """CPU seconds to push ``events``, 1 ms apart in virtual time."""
        now, step = self.now, STEP
        advance, push = self.scheduler.advance_to, self.subject.on_next
        began = time.process_time()
        for event in events:
            now += step
            advance(now)
            push(event)
        elapsed = time.process_time() - began
        self.now = now
        return elapsed

    def finish(self) -> float:
        """CPU seconds to run what is still scheduled (held events, timers) to the end."""
        began = time.process_time()
        self.scheduler.advance_to(self.now + timedelta(seconds=120))
        return time.process_time() - began


def stream_of(events: int, keys: int) -> list[tuple[int, int]]:
    return [(i % keys, (i // keys // 7) % 3) for i in range(events)]


def drive(operator: Operator | None, events: int, keys: int) -> float:
    """CPU seconds to push ``events`` events (1 ms apart, ``keys`` keys) through
    ``operator`` (``None``: straight to the subscriber, the bare driver)."""
    driver = Driver(operator)
    gc.collect()
    elapsed = driver.push(stream_of(events, keys)) + driver.finish()
    if operator is not None and driver.out[0] == 0:
        raise RuntimeError("the benchmark pipeline emitted nothing: it measures nothing")
    return elapsed


RESOLUTION = 0.02
"""A net cost below this share of the bare driver's time is below what the subtraction
resolves (two runs' noise): it counts as this share, so no ratio is 0 or unbounded."""


def operator_cost(operator: Operator, events: int, keys: int) -> float:
    """CPU seconds the operator adds: the operator's pipeline minus the bare driver over
    the same events, the two alternating ``CHUNK`` events at a time (the driver's clock
    advance would otherwise dominate both sides, and a shared machine's load drifts
    between two back-to-back runs), at least ``RESOLUTION`` of the bare driver's time."""
    ours, bare = Driver(operator), Driver(None)
    stream = stream_of(events, keys)
    ours_seconds = bare_seconds = 0.0
    gc.collect()
    for number, start in enumerate(range(0, events, CHUNK)):
        chunk = stream[start : start + CHUNK]
        if number % 2 == 0:
            ours_seconds += ours.push(chunk)
            bare_seconds += bare.push(chunk)
        else:
            bare_seconds += bare.push(chunk)
            ours_seconds += ours.push(chunk)
    ours_seconds += ours.finish()
    bare_seconds += bare.finish()
    if ours.out[0] == 0:
        raise RuntimeError("the benchmark pipeline emitted nothing: it measures nothing")
    return max(ours_seconds - bare_seconds, RESOLUTION * bare_seconds)


def _seen_set_distinct() -> Operator:
    """``distinct(key)`` written with a set: the same ``key`` function called per event,
    as ``distinct(key)`` and ``dedupe(key)`` call it."""
    seen: set[Any] = set()

    def new(event: Any) -> bool:
        name = key(event)
        if name in seen:
            return False
        seen.add(name)
        return True

    return ops.filter(new)


_UNSEEN = object()


def _last_value_per_group() -> Operator:
    """``distinct_until_changed(value)`` per group, written with a dict of each group's
    last value (``key`` and ``value`` called per event, as ``changed`` calls them): on
    many groups the unkeyed operator compares each event with another group's value and
    emits almost nothing, which is not the same work."""
    last: dict[Any, Any] = {}
    get = last.get

    def new(event: Any) -> bool:
        name, current = key(event), value(event)
        if get(name, _UNSEEN) == current:
            return False
        last[name] = current
        return True

    return ops.filter(new)


PairSpec = tuple[str, Callable[[], Operator], str, Callable[[int], Callable[[], Operator]]]

PAIRS: list[PairSpec] = [
    ("debounce_by(key, 1s)", lambda: debounce_by(key, 1.0),
     "debounce(1s)", lambda keys: lambda: ops.debounce(1.0)),
    ("throttle_by(key, 1s)", lambda: throttle_by(key, 1.0),
     "throttle_first(1s)", lambda keys: lambda: ops.throttle_first(1.0)),
    ("dedupe(key, ttl=60s)", lambda: dedupe(key, ttl=60),
     "distinct(key)", lambda keys: (lambda: ops.distinct(key)) if keys == 1
     else _seen_set_distinct),
    ("changed(value, group=key)", lambda: changed(value, group=key),
     "distinct_until_changed(value)", lambda keys:
     (lambda: ops.distinct_until_changed(value)) if keys == 1 else _last_value_per_group),
    ("rate_limit(5, 1s, key)", lambda: rate_limit(5, 1.0, key=key),
     "throttle_first(1s)", lambda keys: lambda: ops.throttle_first(1.0)),
    ("batch(100, 1s)", lambda: batch(100, 1.0),
     "buffer_with_time_or_count(1s, 100)",
     lambda keys: lambda: ops.buffer_with_time_or_count(1.0, 100)),
    ("absent(1s, key)", lambda: absent(1.0, key=key),
     "debounce(1s)", lambda keys: lambda: ops.debounce(1.0)),
]  # fmt: skip


KEYED_PEERS = {
    "distinct(key)": "filter(key not seen in a set)",
    "distinct_until_changed(value)": "filter(value != group's last in a dict)",
}
"""The peers that do the keyed work on 10,000 keys (see the module docstring)."""


def peer_label(name: str, keys: int) -> str:
    return KEYED_PEERS.get(name, name) if keys > 1 else name


def bench_overhead(events: int, rounds: int, only: str | None) -> list[Result]:
    results = []
    for keys, target in TARGETS.items():
        print(f"{keys:,} key(s), {events:,} events per round, 1 ms apart:")
        for ours_name, ours, peer_name, peer in PAIRS:
            if only and not ours_name.startswith(only):
                continue
            make_peer = peer(keys)
            pair = Pair(
                ours_name,
                lambda ours=ours, keys=keys: operator_cost(ours(), events, keys),
                peer_label(peer_name, keys),
                lambda make_peer=make_peer, keys=keys: operator_cost(make_peer(), events, keys),
            )
            results.append(
                compare(
                    pair,
                    rounds=rounds,
                    measure="seconds",
                    target=target,
                    unit="us/event added",
                    scale=1e6 / events,
                    name=f"{ours_name.split('(')[0]} {keys} key(s) ours/peer",
                )
            )
    return results


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
    with library_defaults():
        ttl_mb, ttl_out = dedupe_memory(distinct, dedupe(ttl=10))
        capped_mb, _ = dedupe_memory(distinct, dedupe(max_keys=10_000))
        seen: set[int] = set()
        naive = ops.filter(lambda k: not (k in seen or seen.add(k)))  # type: ignore[func-returns-value]
        naive_mb, naive_out = dedupe_memory(distinct, naive)
    assert ttl_out == naive_out == distinct
    print(f"memory, {distinct:,} distinct keys 1 ms apart (tracemalloc peak, one run):")
    print(f"    dedupe(ttl=10s)          {ttl_mb:8.1f} MiB   (holds <= 10,000 keys)")
    print(f"    dedupe(max_keys=10_000)  {capped_mb:8.1f} MiB")
    print(f"    unbounded seen-set       {naive_mb:8.1f} MiB   (what distinct() keeps)")
    print(f"  memory dedupe(ttl)/unbounded: {ttl_mb / naive_mb:5.3f}x")


def profile(only: str, events: int, keys: int) -> None:
    ours = next(spec[1] for spec in PAIRS if spec[0].startswith(only))
    profiler = cProfile.Profile()
    operator = ours()
    with library_defaults():
        profiler.enable()
        drive(operator, events, keys)
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for smoke tests")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds per pair")
    parser.add_argument("--events", type=int, default=None, help="events per round")
    parser.add_argument("--only", default=None, help="only the operators starting so")
    parser.add_argument("--profile", action="store_true", help="cProfile --only, 10k keys")
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 30_000)
    rounds = args.rounds or (1 if args.quick else 7)
    distinct = 20_000 if args.quick else 1_000_000
    if args.profile:
        profile(args.only or "dedupe", events, 10_000)
        return 0
    load_average("before")
    results = bench_overhead(events, rounds, args.only)
    if not args.only:
        bench_memory(distinct)
    load_average("after")
    return 0 if args.quick else exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
