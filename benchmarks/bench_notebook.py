"""``simulate`` over a recorded frame against a plain loop over the same virtual-time events.

    python benchmarks/bench_notebook.py             # 200,000 rows, 5 paired rounds
    python benchmarks/bench_notebook.py --quick     # a tiny run (smoke test)
    python benchmarks/bench_notebook.py --profile   # cProfile one simulate round

Both feed the same rows (one order per row, one row per second) through the same
pipeline (a filter and ``to_job``) in virtual time and end with a DataFrame of the job
requests and the time each was emitted:

* ``simulate(pipeline, events=frame)``: rows replayed at their recorded times on a
  ``HistoricalScheduler``, each with a delivery (id, idempotency key), requests
  collected into a frame (scheduled time, lateness, key, ...);
* the plain loop, what one would write by hand: a ``HistoricalScheduler``, then per row
  ``scheduler.advance_to(row time); subject.on_next(row)`` over ``to_dict("records")``,
  each request appended with ``scheduler.now`` to two lists, one DataFrame at the end.

A and B alternate in rounds (``benchmarks/harness.py``); the headline is the median of
the paired speed ratios simulate/loop (min-max beside it). Target: >= 0.8x. The library
runs at its defaults, logging included.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import reactivex
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, compare, exit_code, library_defaults, load_average

from portico_rx import JobRequest, to_job
from portico_rx.notebook.simulate import simulate

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TARGET = 0.8


def orders(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": pd.date_range(T0, periods=rows, freq="s"),
            "order": range(rows),
            "amount": [(i * 7919) % 100 for i in range(rows)],
        }
    )


def pipeline(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
    return events.pipe(
        ops.filter(lambda e: e["amount"] >= 20),
        to_job("order.ship", payload=lambda e: {"order": e["order"]}, queue_name="shipping"),
    )


def expected_jobs(frame: pd.DataFrame) -> int:
    return int((frame["amount"] >= 20).sum())


def run_simulate(frame: pd.DataFrame) -> pd.DataFrame:
    return simulate(pipeline, events=frame, name="bench")


def run_loop(frame: pd.DataFrame) -> pd.DataFrame:
    scheduler = HistoricalScheduler(initial_clock=T0)
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    requests: list[JobRequest] = []
    created: list[datetime] = []

    def collect(request: JobRequest) -> None:
        requests.append(request)
        created.append(scheduler.now)

    pipeline(subject).subscribe(collect, scheduler=scheduler)
    times = frame["time"].dt.to_pydatetime()
    advance, push = scheduler.advance_to, subject.on_next
    for at, row in zip(times, frame.to_dict("records"), strict=True):
        advance(at)
        push(row)
    return pd.DataFrame(
        {
            "created_at": pd.to_datetime(created, utc=True),
            "job_type": [r.job_type for r in requests],
            "queue_name": [r.queue_name for r in requests],
            "payload": [r.payload for r in requests],
        }
    )


def side(function: Any, frame: pd.DataFrame, jobs: int) -> Any:
    def one_round() -> float:
        started = time.perf_counter()
        result = function(frame)
        elapsed = time.perf_counter() - started
        if len(result) != jobs:
            raise RuntimeError(f"{function.__name__} made {len(result)} jobs, not {jobs}")
        return len(frame) / elapsed

    return one_round


def profile(frame: pd.DataFrame) -> None:
    profiler = cProfile.Profile()
    with library_defaults():
        profiler.enable()
        run_simulate(frame)
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--rows", type=int, default=None, help="rows per round")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds")
    parser.add_argument("--profile", action="store_true", help="cProfile one simulate round")
    args = parser.parse_args(argv)
    rows = args.rows or (5_000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 5)
    frame = orders(rows)
    if args.profile:
        profile(frame)
        return 0
    jobs = expected_jobs(frame)
    load_average("before")
    print(f"notebook: {rows:,} rows -> {jobs:,} jobs per round, {rounds} paired rounds")
    result = compare(
        Pair(
            "simulate(pipeline, events=frame)",
            side(run_simulate, frame, jobs),
            "plain loop: advance_to + on_next",
            side(run_loop, frame, jobs),
        ),
        rounds=rounds,
        measure="rate",
        target=TARGET,
        unit="rows/s",
        name="simulate/loop rows per second",
    )
    load_average("after")
    return 0 if args.quick else exit_code([result])


if __name__ == "__main__":
    sys.exit(main())
