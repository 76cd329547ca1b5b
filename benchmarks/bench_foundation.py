"""Foundation benchmarks, each measured against its peer in the same run.

(a) pipeline: N events through Subject -> map -> filter -> to_job -> JobSink -> an
    in-memory creator, against a bare reactivex Subject -> map -> filter ->
    asyncio.Queue -> one consumer awaiting the same creator. Target: <= 2x the bare
    time per event.
(b) SQLite: JobService.create_job with an idempotency key on SQLiteJobQueue (concurrent
    callers, group commit), against a raw sqlite3 INSERT of the same row committed per
    row, with the same pragmas. Target: >= 0.5x the raw rate.

    python benchmarks/bench_foundation.py            # full run (100k events, 20k rows)
    python benchmarks/bench_foundation.py --quick    # a tiny run (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import reactivex
import structlog
from reactivex import operators as ops

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.models import Job
from portico_rx.ports.job_creator import JobCreator

JOB = Job(job_type="bench.job")


class CountingCreator(JobCreator):
    """Counts calls and signals the last one; creates through ``inner`` when given, else
    returns a prebuilt job (the cheapest honest creator: pure pipeline overhead)."""

    def __init__(self, target: int, inner: JobCreator | None = None) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.target = target
        self.inner = inner

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        job = (
            JOB
            if self.inner is None
            else await self.inner.create_job(job_type, payload, queue_name, priority, metadata)
        )
        self.count += 1
        if self.count == self.target:
            self.done.set()
        return job

    async def get_job(self, job_id: Any) -> Job | None:
        return None


CREATORS: dict[str, Any] = {
    "no-op creator": lambda: None,
    "JobService(MemoryJobQueue)": lambda: prx.JobService(MemoryJobQueue()),
}


def _event(n: int) -> dict[str, Any]:
    return {"id": n, "plan": "free" if n % 10 == 0 else "pro"}


def _keep(event: dict[str, Any]) -> bool:
    return event["plan"] != "free"


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    return {"user": event["id"]}


def _creator(events: int, kind: str) -> CountingCreator:
    return CountingCreator(sum(1 for n in range(events) if _keep(_event(n))), CREATORS[kind]())


async def pipeline_run(events: int, kind: str) -> tuple[float, int]:
    creator = _creator(events, kind)
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(
            ops.map(_event),
            ops.filter(_keep),
            prx.to_job("email.welcome", payload=_payload, queue_name="emails", priority=5),
        ),
        job_creator=creator,
        name="bench",
    )
    await trigger.start()
    started = time.perf_counter()
    for n in range(events):
        subject.on_next(n)
    await creator.done.wait()
    elapsed = time.perf_counter() - started
    await trigger.stop()
    return elapsed, creator.count


async def bare_run(events: int, kind: str) -> tuple[float, int]:
    creator = _creator(events, kind)
    subject: reactivex.Subject[int] = reactivex.Subject()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    subject.pipe(ops.map(_event), ops.filter(_keep)).subscribe(queue.put_nowait)

    async def consumer() -> None:
        while True:
            event = await queue.get()
            await creator.create_job(
                "email.welcome", _payload(event), queue_name="emails", priority=5
            )

    task = asyncio.ensure_future(consumer())
    started = time.perf_counter()
    for n in range(events):
        subject.on_next(n)
    await creator.done.wait()
    elapsed = time.perf_counter() - started
    task.cancel()
    return elapsed, creator.count


# -- (b) SQLite ------------------------------------------------------------------------


def raw_sqlite_run(path: Path, rows: int, synchronous: str) -> float:
    """Raw sqlite3: the same row (same table, same JSON) inserted and committed per row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(
        "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, job_type TEXT, "
        "queue_name TEXT, payload TEXT, priority INTEGER, metadata TEXT, status TEXT, "
        "attempts INTEGER, max_retries INTEGER, created_at INTEGER, scheduled_at INTEGER, "
        "started_at INTEGER, completed_at INTEGER, idempotency_key TEXT UNIQUE, result TEXT, "
        "error TEXT)"
    )
    sql = (
        "INSERT INTO jobs (id, job_type, queue_name, payload, priority, metadata, status, "
        "attempts, max_retries, created_at, idempotency_key) "
        "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 3, ?, ?) ON CONFLICT DO NOTHING"
    )
    started = time.perf_counter()
    for n in range(rows):
        key = f"raw-{n}"
        conn.execute(
            sql,
            (
                str(uuid.uuid4()),
                "email.welcome",
                "emails",
                json.dumps({"user": n}),
                5,
                json.dumps({"idempotency_key": key}),
                int(time.time() * 1e6),
                key,
            ),
        )
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def adapter_sqlite_run(path: Path, rows: int, synchronous: str, callers: int) -> float:
    """JobService.create_job with a key, from ``callers`` concurrent tasks."""
    queue = SQLiteJobQueue(path, synchronous=synchronous)  # type: ignore[arg-type]
    async with prx.JobService(queue) as service:
        per_caller = rows // callers

        async def caller(c: int) -> None:
            for i in range(per_caller):
                n = c * per_caller + i
                await service.create_job(
                    "email.welcome",
                    {"user": n},
                    queue_name="emails",
                    priority=5,
                    metadata={"idempotency_key": f"svc-{n}"},
                )

        started = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        elapsed = time.perf_counter() - started
        assert await queue.count() == per_caller * callers
    return elapsed


def _quiet_logs() -> None:
    """Drop info logs for both sides alike (warnings still pass the filter)."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 100_000)
    rows = args.rows or (400 if args.quick else 20_000)
    repeat = args.repeat or (1 if args.quick else 3)
    _quiet_logs()

    print(f"(a) pipeline: {events} events (90% pass the filter), best of {repeat}")
    for kind in CREATORS:
        pipe_times, bare_times = [], []
        for _ in range(repeat):
            gc.collect()
            bare_times.append(asyncio.run(bare_run(events, kind))[0])
            gc.collect()
            pipe_times.append(asyncio.run(pipeline_run(events, kind))[0])
        pipe, bare = min(pipe_times), min(bare_times)
        median = statistics.median(pipe_times) / statistics.median(bare_times)
        print(f"    creator: {kind}")
        print(
            f"      bare Rx -> asyncio.Queue -> consumer:       {bare / events * 1e6:8.2f} us/event"
        )
        print(
            f"      PipelineTrigger (to_job + JobSink):         {pipe / events * 1e6:8.2f} us/event"
        )
        print(
            f"      ratio pipeline/bare time per event ({kind}): {pipe / bare:.2f}x "
            f"(target <= 2.0x; median of runs {median:.2f}x)"
        )

    print(f"(b) SQLite: {rows} rows with an idempotency key, best of {repeat}")
    with tempfile.TemporaryDirectory() as folder:
        for synchronous in ("FULL", "NORMAL"):
            raw_rates, svc_rates = [], []
            for attempt in range(repeat):
                raw_path = Path(folder) / f"raw-{synchronous}-{attempt}.db"
                svc_path = Path(folder) / f"svc-{synchronous}-{attempt}.db"
                raw_rates.append(rows / raw_sqlite_run(raw_path, rows, synchronous))
                svc_rates.append(
                    rows / asyncio.run(adapter_sqlite_run(svc_path, rows, synchronous, 64))
                )
            raw, svc = max(raw_rates), max(svc_rates)
            print(f"    synchronous={synchronous}:")
            print(f"      raw sqlite3 INSERT, commit per row:        {raw:10.0f} rows/s")
            print(f"      SQLiteJobQueue create_job (64 callers):    {svc:10.0f} rows/s")
            print(
                f"      ratio create_job/raw rate ({synchronous}): {svc / raw:.2f}x "
                "(target >= 0.5x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
