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
(c) SQLite: SQLiteJobQueue.dequeue + complete, called as JobWorker calls them, from 64
    concurrent consumers on a file of pending jobs, against raw sqlite3 at its best: the
    store's own claim ``UPDATE ... RETURNING`` for the next 64 due jobs in one statement
    (as the store claims for 64 workers in one group commit), then the 64 completing
    ``UPDATE``s with ``executemany`` in one transaction, same durability.
    Target: >= 0.8x the raw rate, at each durability.

Rounds alternate ours and the peer, the headline is the median of the paired speed
ratios (min-max beside it); the library runs at its defaults, logging included.

    python benchmarks/bench_foundation.py            # full run (20k events, 20k rows)
    python benchmarks/bench_foundation.py --quick    # a tiny run (smoke test)
    python benchmarks/bench_foundation.py --only create --only dequeue --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import reactivex
from reactivex import operators as ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, Result, compare, exit_code, load_average

import portico_rx as prx
from portico_rx.adapters.job_queue.base import check_queue_names
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


_RAW_INSERT = (
    "INSERT INTO jobs (id, job_type, queue_name, payload, priority, metadata, status, "
    "attempts, max_retries, created_at, scheduled_at, started_at, completed_at, "
    "idempotency_key, result, error) "
    "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 3, ?, NULL, NULL, NULL, ?, NULL, NULL) "
    "ON CONFLICT DO NOTHING"
)


def _raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    """The store's file (made by its own migration), opened by raw sqlite3 with the
    store's journal mode and ``synchronous``."""
    asyncio.run(_migrated(path, synchronous))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def _raw_insert(conn: sqlite3.Connection, rows: int, prefix: str) -> None:
    """The rows ``JobService.create_job`` writes (id, JSON payload and metadata, key,
    times), ``executemany`` in transactions of ``CALLERS`` rows."""
    for first in range(0, rows, CALLERS):
        batch = []
        for n in range(first, min(rows, first + CALLERS)):
            key = f"{prefix}-{n}"
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
        conn.executemany(_RAW_INSERT, batch)
        conn.execute("COMMIT")


def raw_sqlite_run(path: Path, rows: int, synchronous: str) -> float:
    """Rows/s of raw sqlite3 at its best: the same rows as ``JobService.create_job`` writes,
    ``executemany`` in transactions of ``CALLERS`` rows, into the table and indexes the
    store's migration makes."""
    conn = _raw_connection(path, synchronous)
    started = time.perf_counter()
    _raw_insert(conn, rows, "raw")
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


# -- (c) SQLite dequeue + complete -----------------------------------------------------

RESULT = {"sent": True}
_RAW_CLAIM = (
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, "
    "lease_expires_at = ? "
    "WHERE seq IN (SELECT seq FROM jobs WHERE queue_name IN (?) "
    "AND status IN ('pending', 'scheduled') AND (scheduled_at IS NULL OR scheduled_at <= ?) "
    "ORDER BY priority DESC, created_at, seq LIMIT ?) "
    "RETURNING id, job_type, queue_name, payload, priority, metadata, status, attempts, "
    "max_retries, created_at, scheduled_at, started_at, completed_at, idempotency_key, "
    "result, error"
)
_RAW_COMPLETE = (
    "UPDATE jobs SET status = 'completed', result = ?, error = NULL, completed_at = ?, "
    "lease_expires_at = NULL WHERE id = ?"
)
_LEASE_MICROS = 300 * 1_000_000  # the store's default visibility_timeout


def _filled(path: Path, rows: int, synchronous: str) -> Path:
    """``path``, a file holding ``rows`` pending jobs (written untimed, by the raw insert)."""
    with contextlib.closing(_raw_connection(path, synchronous)) as conn:
        _raw_insert(conn, rows, "job")
    return path


def raw_dequeue_run(path: Path, rows: int, synchronous: str) -> float:
    """Jobs/s of raw sqlite3 at its best: the store's claim ``UPDATE … RETURNING`` (the
    same statement and lease) for ``CALLERS`` jobs at once, in one transaction, then their
    completing ``UPDATE`` with ``executemany`` in one transaction (two commits per
    ``CALLERS`` jobs, as the store's group commit makes them for ``CALLERS`` workers)."""
    conn = _raw_connection(_filled(path, rows, synchronous), synchronous)
    result = json.dumps(RESULT)
    started = time.perf_counter()
    for first in range(0, rows, CALLERS):
        now = int(time.time() * 1e6)
        wanted = min(rows, first + CALLERS) - first
        conn.execute("BEGIN IMMEDIATE")
        claimed = conn.execute(
            _RAW_CLAIM, (now, now + _LEASE_MICROS, "emails", now, wanted)
        ).fetchall()
        conn.execute("COMMIT")
        ids = [row[0] for row in claimed]
        now = int(time.time() * 1e6)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_RAW_COMPLETE, [(result, now, job_id) for job_id in ids])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    (count,) = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()
    conn.close()
    if count != rows:
        raise RuntimeError(f"raw run completed {count} jobs, not {rows}")
    return rows / elapsed


async def adapter_dequeue_run(path: Path, rows: int, synchronous: str) -> float:
    """Jobs/s of ``SQLiteJobQueue.dequeue`` + ``complete`` called as ``JobWorker`` calls
    them (``dequeue(queue_names)``, then ``complete(job.id, result)``), from ``CALLERS``
    concurrent consumers, on a file ``_filled`` made before the loop started."""
    queue = SQLiteJobQueue(path, synchronous=synchronous)  # type: ignore[arg-type]
    names = check_queue_names(["emails"])
    per_caller = rows // CALLERS
    async with queue:

        async def consumer() -> None:
            for _ in range(per_caller):
                job = await queue.dequeue(names)
                if job is None:
                    raise RuntimeError("the adapter run found no job to claim")
                await queue.complete(job.id, RESULT)

        started = time.perf_counter()
        await asyncio.gather(*(consumer() for _ in range(CALLERS)))
        elapsed = time.perf_counter() - started
        if await queue.count(status=prx.JobStatus.COMPLETED) != per_caller * CALLERS:
            raise RuntimeError("the adapter run lost jobs")
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


def _per_durability(
    rows: int,
    rounds: int,
    pair: Callable[[Callable[[str], Path], str], Pair],
    unit: str,
    name: str,
) -> list[Result]:
    """``pair(path, synchronous)`` compared at ``synchronous`` FULL, then NORMAL, each side
    on a fresh file (``path(side)``) per round."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        fresh = iter(range(10**9))

        def path(side: str) -> Path:
            return Path(folder) / f"{side}-{next(fresh)}.db"

        for synchronous in ("FULL", "NORMAL"):
            results.append(
                compare(
                    pair(path, synchronous),
                    rounds=rounds,
                    measure="rate",
                    target=SQLITE_TARGET,
                    unit=unit,
                    name=f"{name} ({synchronous})",
                )
            )
    return results


def bench_sqlite(rows: int, rounds: int) -> list[Result]:
    rows -= rows % CALLERS
    print(f"(b) SQLite: {rows} rows with an idempotency key per round, batches of {CALLERS}")

    def pair(path: Callable[[str], Path], synchronous: str) -> Pair:
        return Pair(
            f"SQLiteJobQueue create_job ({CALLERS} callers)",
            lambda: adapter_sqlite_run(path("svc"), rows, synchronous),
            f"raw sqlite3 executemany, {CALLERS} rows per commit",
            lambda: raw_sqlite_run(path("raw"), rows, synchronous),
        )

    return _per_durability(rows, rounds, pair, "rows/s", "create_job/raw rate")


def bench_dequeue(rows: int, rounds: int) -> list[Result]:
    rows -= rows % CALLERS
    print(f"(c) SQLite: {rows} jobs dequeued and completed per round, {CALLERS} consumers")

    def pair(path: Callable[[str], Path], synchronous: str) -> Pair:
        return Pair(
            f"SQLiteJobQueue dequeue + complete ({CALLERS} consumers)",
            lambda: adapter_dequeue_run(_filled(path("svc"), rows, synchronous), rows, synchronous),
            f"raw sqlite3 claim + complete, {CALLERS} jobs per commit",
            lambda: raw_dequeue_run(path("raw"), rows, synchronous),
        )

    return _per_durability(rows, rounds, pair, "jobs/s", "dequeue+complete/raw rate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--only",
        choices=("pipeline", "create", "dequeue"),
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 20_000)
    rows = args.rows or (640 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 7)
    load_average("before")
    parts = args.only or ["pipeline", "create", "dequeue"]
    results = []
    if "pipeline" in parts:
        results += bench_pipeline(events, rounds)
    if "create" in parts:
        results += bench_sqlite(rows, rounds)
    if "dequeue" in parts:
        results += bench_dequeue(rows, rounds)
    load_average("after")
    return 0 if args.quick else exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
