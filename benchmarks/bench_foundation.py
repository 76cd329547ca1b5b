"""Foundation benchmarks, each against its peer in the same run (``benchmarks/harness.py``).

(a) pipeline: N events through Subject -> map -> filter -> to_job -> PipelineTrigger's
    JobSink -> a creator, against the bare bridge: reactivex Subject -> map -> filter ->
    asyncio.Queue -> one consumer awaiting the same creator. Two creators: a no-op one
    (pure pipeline overhead) and JobService(MemoryJobQueue()). Measured in CPU time of
    the process. Target: >= 0.5x the bare bridge's speed (<= 2x its cost per event).
(b) SQLite: JobService.create_job with an idempotency key on SQLiteJobQueue from 64
    concurrent callers (the store group-commits the calls of one loop turn), against raw
    sqlite3 at its best: the same rows (same JSON, same columns) inserted with
    ``executemany`` in transactions of 64 rows, into the same table with the same indexes
    (made by the store's own migration), same journal mode and ``synchronous``.
    Target: >= 0.8x the raw rate, at each durability.

Rounds alternate ours and the peer, the headline is the median of the paired speed
ratios (min-max beside it); the library runs at its defaults, logging included.

    python benchmarks/bench_foundation.py            # full run (20k events, 20k rows)
    python benchmarks/bench_foundation.py --quick    # a tiny run (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import reactivex
from reactivex import operators as ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, Result, compare, exit_code, load_average

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.models import Job
from portico_rx.ports.job_creator import JobCreator

PIPELINE_TARGET = 0.5
SQLITE_TARGET = 0.8
CALLERS = 64

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
    started = time.process_time()
    for n in range(events):
        subject.on_next(n)
    await creator.done.wait()
    elapsed = time.process_time() - started
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
    started = time.process_time()
    for n in range(events):
        subject.on_next(n)
    await creator.done.wait()
    elapsed = time.process_time() - started
    task.cancel()
    return elapsed, creator.count


# -- (b) SQLite ------------------------------------------------------------------------


def raw_sqlite_run(path: Path, rows: int, synchronous: str) -> float:
    """Rows/s of raw sqlite3 at its best: the same rows as ``JobService.create_job`` writes
    (id, JSON payload and metadata, key, times), ``executemany`` in transactions of
    ``CALLERS`` rows, into the table and indexes the store's migration makes."""
    asyncio.run(_migrated(path, synchronous))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    sql = (
        "INSERT INTO jobs (id, job_type, queue_name, payload, priority, metadata, status, "
        "attempts, max_retries, created_at, scheduled_at, started_at, completed_at, "
        "idempotency_key, result, error) "
        "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 3, ?, NULL, NULL, NULL, ?, NULL, NULL) "
        "ON CONFLICT DO NOTHING"
    )
    started = time.perf_counter()
    for first in range(0, rows, CALLERS):
        batch = []
        for n in range(first, min(rows, first + CALLERS)):
            key = f"raw-{n}"
            batch.append(
                (
                    str(uuid.uuid4()),
                    "email.welcome",
                    "emails",
                    json.dumps({"user": n}, separators=(",", ":")),
                    5,
                    json.dumps({"idempotency_key": key}, separators=(",", ":")),
                    int(time.time() * 1e6),
                    key,
                )
            )
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    (count,) = conn.execute("SELECT count(*) FROM jobs").fetchone()
    conn.close()
    if count != rows:
        raise RuntimeError(f"raw run wrote {count} rows, not {rows}")
    return rows / elapsed


async def _migrated(path: Path, synchronous: str) -> None:
    async with SQLiteJobQueue(path, synchronous=synchronous):  # type: ignore[arg-type]
        pass


async def adapter_sqlite_run(path: Path, rows: int, synchronous: str) -> float:
    """Rows/s of JobService.create_job with a key, from ``CALLERS`` concurrent tasks."""
    queue = SQLiteJobQueue(path, synchronous=synchronous)  # type: ignore[arg-type]
    async with prx.JobService(queue) as service:
        per_caller = rows // CALLERS

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

        await queue.open()
        started = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(CALLERS)))
        elapsed = time.perf_counter() - started
        if await queue.count() != per_caller * CALLERS:
            raise RuntimeError("the adapter run lost rows")
    return per_caller * CALLERS / elapsed


def bench_pipeline(events: int, rounds: int) -> list[Result]:
    print(f"(a) pipeline: {events} events per round (90% pass the filter), CPU time")
    results = []
    for kind in CREATORS:
        results.append(
            compare(
                Pair(
                    f"PipelineTrigger (to_job + JobSink), {kind}",
                    lambda kind=kind: _cpu(pipeline_run(events, kind)),
                    f"bare Rx -> asyncio.Queue -> consumer, {kind}",
                    lambda kind=kind: _cpu(bare_run(events, kind)),
                ),
                rounds=rounds,
                measure="seconds",
                target=PIPELINE_TARGET,
                unit="us/event",
                scale=1e6 / events,
                name=f"pipeline/bare speed ({kind})",
            )
        )
    return results


async def _cpu(run: Any) -> float:
    elapsed, _count = await run
    return float(elapsed)


def bench_sqlite(rows: int, rounds: int) -> list[Result]:
    rows -= rows % CALLERS
    print(f"(b) SQLite: {rows} rows with an idempotency key per round, batches of {CALLERS}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        fresh = iter(range(10**9))

        def path(side: str) -> Path:
            return Path(folder) / f"{side}-{next(fresh)}.db"

        for synchronous in ("FULL", "NORMAL"):
            results.append(
                compare(
                    Pair(
                        f"SQLiteJobQueue create_job ({CALLERS} callers)",
                        lambda s=synchronous: adapter_sqlite_run(path("svc"), rows, s),
                        f"raw sqlite3 executemany, {CALLERS} rows per commit",
                        lambda s=synchronous: raw_sqlite_run(path("raw"), rows, s),
                    ),
                    rounds=rounds,
                    measure="rate",
                    target=SQLITE_TARGET,
                    unit="rows/s",
                    name=f"create_job/raw rate ({synchronous})",
                )
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 20_000)
    rows = args.rows or (640 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 7)
    load_average("before")
    results = bench_pipeline(events, rounds) + bench_sqlite(rows, rounds)
    load_average("after")
    return 0 if args.quick else exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
