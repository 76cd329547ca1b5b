"""Benchmark: ``simulate`` over a recorded frame vs the same pipeline fed by a plain loop.

Both feed the same rows (one order per row, one row per second) through the same
pipeline (a filter and ``to_job``) and collect the job requests:

* ``simulate``: rows replayed at their recorded times on a ``HistoricalScheduler``, each
  with a delivery, requests collected into a DataFrame (scheduled time, lateness, key);
* ``plain loop``: ``for row in frame.to_dict("records"): subject.on_next(row)``, requests
  collected into a list — no clock, no deliveries, no frame.

Run: ``python benchmarks/bench_notebook.py`` (1,000,000 rows) or ``--quick`` (20,000).
Prints rows per second for each and the ratio simulate / loop.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import reactivex
from reactivex import operators as ops

from portico_rx import JobRequest, to_job
from portico_rx.notebook.simulate import simulate

T0 = datetime(2025, 1, 1, tzinfo=UTC)


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


def run_simulate(frame: pd.DataFrame) -> int:
    return len(simulate(pipeline, events=frame, name="bench"))


def run_loop(frame: pd.DataFrame) -> int:
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    requests: list[JobRequest] = []
    pipeline(subject).subscribe(requests.append)
    for row in frame.to_dict("records"):
        subject.on_next(row)
    return len(requests)


def timed(function: Any, frame: pd.DataFrame, repeat: int) -> tuple[float, int]:
    best = float("inf")
    jobs = 0
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        jobs = function(frame)
        best = min(best, time.perf_counter() - started)
    return best, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, one repeat")
    parser.add_argument("--rows", type=int, default=None, help="rows (default 1,000,000)")
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    repeat = 1 if args.quick else 2
    frame = orders(rows)
    loop_s, loop_jobs = timed(run_loop, frame, repeat)
    sim_s, sim_jobs = timed(run_simulate, frame, repeat)
    assert sim_jobs == loop_jobs, (sim_jobs, loop_jobs)
    print(f"rows: {rows:,}  jobs: {sim_jobs:,}  (best of {repeat})")
    print(f"plain loop: {loop_s:8.2f} s  {rows / loop_s:12,.0f} rows/s")
    print(f"simulate:   {sim_s:8.2f} s  {rows / sim_s:12,.0f} rows/s")
    print(f"ratio simulate/loop rows per second: {loop_s / sim_s:.2f}")


if __name__ == "__main__":
    main()
