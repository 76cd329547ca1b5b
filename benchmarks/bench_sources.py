"""Benchmarks for the files, HTTP polling and database sources, each against its peer.

    python benchmarks/bench_sources.py               # full run
    python benchmarks/bench_sources.py --quick       # a tiny run (smoke test)
    python benchmarks/bench_sources.py --only db     # one section

Every section runs on ``benchmarks/harness.py``: ours and the peer alternate in rounds,
the headline is the median of the paired ratios (> 1: ours is better), min-max beside
it, PASS/FAIL against its target (INFO where there is none). The library runs at its
defaults, logging included (output to /dev/null during rounds).

* files: write -> job latency p50 of ``FileTrigger(settle=0)`` against a watchdog
  trigger written like the spec's example (``Observer`` + ``on_created`` scheduling
  ``create_job`` on the loop): the same writes, the same creator.
* http: 1,000 polls of an unchanged resource, body bytes transferred: ``http_poll``
  (conditional GETs) against a plain ``httpx`` GET loop (one client, keep-alive).
* db: pending rows -> jobs per second, both on PostgreSQL with the same batch size:
  ``DatabasePollingTrigger`` (defaults) + ``JobService(PostgresJobQueue)`` against a raw
  asyncpg loop: ``SELECT … FOR UPDATE SKIP LOCKED LIMIT batch``, one pipelined
  ``executemany`` INSERT of the same job rows into an identical table (same columns,
  indexes, NOTIFY trigger), one ``UPDATE … = ANY(…)``, one commit per batch. Target >= 0.7x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, Result, compare, exit_code, load_average

from portico_rx.models import Job
from portico_rx.ports.job_creator import JobCreator


class TimingCreator(JobCreator):
    """Records when each job (by file path) was created."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.event = asyncio.Event()

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        self.created.setdefault(payload["file_path"], time.perf_counter())
        self.event.set()
        return Job(job_type=job_type, payload=payload, queue_name=queue_name)

    async def get_job(self, job_id: UUID) -> Job | None:
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- files -----------------------------------------------------------------------------


async def measure_writes(folder: Path, creator: TimingCreator, count: int) -> list[float]:
    latencies: list[float] = []
    for index in range(count):
        path = folder / f"f{index:05d}.dat"
        started = time.perf_counter()
        path.write_bytes(b"x" * 1024)
        key = str(path.resolve())
        deadline = started + 5
        while key not in creator.created and time.perf_counter() < deadline:
            creator.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(creator.event.wait(), 0.5)
        if key in creator.created:
            latencies.append((creator.created[key] - started) * 1000)
        await asyncio.sleep(0.01)
    return latencies


async def files_ours(count: int, settle: float) -> list[float]:
    from portico_rx.adapters.job_trigger.file_trigger import FileTrigger

    folder = Path(tempfile.mkdtemp())
    creator = TimingCreator()
    trigger = FileTrigger(creator, folder, "file.process", settle=settle)
    await trigger.start()
    try:
        return await measure_writes(folder, creator, count)
    finally:
        await trigger.stop()


async def files_watchdog(count: int) -> list[float]:
    """The spec's FileTrigger, made to run: on_created schedules create_job on the loop."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    folder = Path(tempfile.mkdtemp())
    creator = TimingCreator()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(path: str) -> None:
        task = loop.create_task(
            creator.create_job("file.process", {"file_path": path}, "file_processing")
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    class FileCreatedHandler(FileSystemEventHandler):
        def on_created(self, event: FileSystemEvent) -> None:
            if not event.is_directory:
                loop.call_soon_threadsafe(spawn, str(Path(str(event.src_path)).resolve()))

    observer = Observer()
    observer.schedule(FileCreatedHandler(), str(folder), recursive=True)
    observer.start()
    try:
        return await measure_writes(folder, creator, count)
    finally:
        observer.stop()
        observer.join()


def bench_files(quick: bool) -> Result:
    count, rounds = (20, 1) if quick else (100, 5)
    print(f"files: {count} writes per round, 1 KiB each, 10 ms apart; p50 write -> job")

    async def ours() -> float:
        return percentile(await files_ours(count, 0.0), 50)

    async def peer() -> float:
        return percentile(await files_watchdog(count), 50)

    return compare(
        Pair("FileTrigger(settle=0)", ours, "watchdog (spec example)", peer),
        rounds=rounds,
        measure="lower",
        unit="ms p50",
        name="files latency p50 watchdog/FileTrigger",
    )


# -- http ------------------------------------------------------------------------------


class _Counting(ThreadingHTTPServer):
    daemon_threads = True
    requests = 0
    bodies = 0
    body_bytes = 0


def _serve(body: bytes) -> tuple[_Counting, str]:
    class Handler(BaseHTTPRequestHandler):
        server: _Counting

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.server.requests += 1
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.server.bodies += 1
            self.server.body_bytes += len(body)

    server = _Counting(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/feed"


BODY = b"x" * 20_000


async def http_ours(polls: int) -> int:
    """Body bytes ``polls`` polls of ``http_poll`` (conditional GETs) transfer."""
    from reactivex.scheduler import HistoricalScheduler

    from portico_rx.sources._http_poll import HttpPollStats, http_poll
    from portico_rx.testing import advance

    server, url = _serve(BODY)
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    stats = HttpPollStats()
    changes: list[Any] = []
    subscription = http_poll(url, 60, stats=stats, scheduler=vt).subscribe(changes.append)
    while stats.completed < 1:
        await asyncio.sleep(0.001)
    for _ in range(polls - 1):
        done = stats.completed
        await advance(vt, 60, step=60)
        while stats.completed == done:
            await asyncio.sleep(0.0005)
    subscription.dispose()
    server.shutdown()
    if server.bodies != 1 or stats.not_modified != polls - 1 or len(changes) != 1:
        raise RuntimeError(f"http_poll fetched {server.bodies} bodies in {polls} polls")
    return server.body_bytes


async def http_peer(polls: int) -> int:
    """Body bytes ``polls`` plain GETs transfer (one httpx client, keep-alive)."""
    import httpx

    server, url = _serve(BODY)
    async with httpx.AsyncClient() as client:
        for _ in range(polls):
            response = await client.get(url)
            response.raise_for_status()
    server.shutdown()
    return server.body_bytes


def bench_http(quick: bool) -> Result:
    polls = 100 if quick else 1000
    print(f"http: {polls} polls of an unchanged 20 kB resource, body bytes transferred")
    result = compare(
        Pair(
            "http_poll (conditional GET)",
            lambda: http_ours(polls),
            "plain GET loop",
            lambda: http_peer(polls),
        ),
        rounds=1,
        warmup=0,
        measure="lower",
        unit="body bytes",
        name="http body bytes plain/http_poll",
    )
    print("    (bodies after the first: 0; every later poll a 304)")
    return result


# -- db ----------------------------------------------------------------------------------

DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB_BATCH = 500


async def _db_schema(rows: int) -> str:
    """A fresh schema with ``rows`` pending items and two identical, empty job tables
    (``jobs`` for the trigger's ``PostgresJobQueue``, ``raw_jobs`` for the raw loop: the
    same columns, indexes and NOTIFY trigger, made by the queue's own migration)."""
    import uuid

    import asyncpg

    from portico_rx.adapters.job_queue.postgres import PostgresJobQueue

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        await connection.execute(
            f'CREATE TABLE "{schema}".items (id bigserial PRIMARY KEY, status text NOT NULL, '
            "data text)"
        )
        await connection.execute(
            f'INSERT INTO "{schema}".items (status, data) '
            "SELECT 'pending', 'row ' || n FROM generate_series(1, $1) AS n",
            rows,
        )
    finally:
        await connection.close()
    for table in ("jobs", "raw_jobs"):
        queue = PostgresJobQueue(DSN, schema=schema, table=table)
        await queue.open()
        await queue.close()
    return schema


async def _drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await connection.close()


async def db_ours(rows: int) -> float:
    """Rows/s: DatabasePollingTrigger (defaults, batch_size as the raw loop's) ->
    JobService(PostgresJobQueue), until every row is marked queued."""
    from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
    from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger
    from portico_rx.kits.job.job_service import JobService

    schema = await _db_schema(rows)
    try:
        service = JobService(PostgresJobQueue(DSN, schema=schema))
        trigger = DatabasePollingTrigger(
            service,
            DSN.replace("postgresql://", "postgresql+asyncpg://"),
            3600,
            schema=schema,
            batch_size=DB_BATCH,
        )
        started = time.perf_counter()
        await trigger.start()
        while trigger.stats.rows_marked < rows:
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
        await trigger.stop()
        await service.close()
        if trigger.counters.jobs_created != rows:
            raise RuntimeError(f"{trigger.counters.jobs_created} jobs for {rows} rows")
    finally:
        await _drop_schema(schema)
    return rows / elapsed


async def _lane(pool: Any, insert: str, values: Any) -> None:
    for value in values:
        await pool.execute(insert, *value)


async def db_peer(rows: int, commit_per_job: bool = False) -> float:
    """Rows/s: the raw loop at its best, one asyncpg connection, per batch one transaction:
    ``SELECT … FOR UPDATE SKIP LOCKED LIMIT batch``, the jobs (same row, same table layout,
    keyed) in one pipelined ``executemany`` INSERT … ON CONFLICT DO NOTHING, one
    ``UPDATE … WHERE id = ANY(…)``; committed like the trigger's (synchronous_commit on).

    ``commit_per_job`` (``--db-diagnose``): the same loop, but each job INSERT its own
    transaction from a pool of 10, 16 at a time — the way ``create_job`` writes a job —
    to show how much of the gap is the per-job commit."""
    import json
    import uuid
    from datetime import datetime

    import asyncpg

    schema = await _db_schema(rows)
    items, jobs = f'"{schema}".items', f'"{schema}".raw_jobs'
    insert = (
        f"INSERT INTO {jobs} (id, job_type, queue_name, payload, priority, metadata, status, "
        "attempts, max_retries, created_at, idempotency_key) VALUES "
        "($1, 'item.process', 'processing', $2::jsonb, 0, $3::jsonb, 'pending', 0, 3, $4, $5) "
        "ON CONFLICT DO NOTHING"
    )
    try:
        started = time.perf_counter()
        connection = await asyncpg.connect(DSN)
        pool = await asyncpg.create_pool(DSN, max_size=10) if commit_per_job else None
        done = 0
        while done < rows:
            async with connection.transaction():
                batch = await connection.fetch(
                    f"SELECT id, data FROM {items} WHERE status = 'pending' ORDER BY id "
                    "LIMIT $1 FOR UPDATE SKIP LOCKED",
                    DB_BATCH,
                )
                now = datetime.now(UTC)
                values = [
                    (
                        uuid.uuid4(),
                        json.dumps({"item_id": str(r["id"]), "data": r["data"]}),
                        json.dumps({"idempotency_key": f"items:{r['id']}"}),
                        now,
                        f"db:items:item.process:items:{r['id']}",
                    )
                    for r in batch
                ]
                if pool is None:
                    await connection.executemany(insert, values)
                else:
                    shared = iter(values)  # 16 lanes take the next job from one iterator
                    await asyncio.gather(*(_lane(pool, insert, shared) for _ in range(16)))
                await connection.execute(
                    f"UPDATE {items} SET status = 'queued' WHERE id = ANY($1::bigint[])",
                    [r["id"] for r in batch],
                )
            done += len(batch)
        elapsed = time.perf_counter() - started
        await connection.close()
        if pool is not None:
            await pool.close()
    finally:
        await _drop_schema(schema)
    return rows / elapsed


def bench_db(quick: bool, diagnose: bool = False) -> Result:
    rows = 1000 if quick else 5000
    rounds = 1 if quick else 5
    if diagnose:
        print(f"db diagnosis: {rows} rows, the raw loop with one commit per job")
        compare(
            Pair(
                "raw loop, one INSERT transaction per job",
                lambda: db_peer(rows, commit_per_job=True),
                "raw loop, one transaction per batch",
                lambda: db_peer(rows),
            ),
            rounds=rounds,
            measure="rate",
            unit="rows/s",
            name="db rows/s commit per job/per batch (raw)",
        )
    print(
        f"db: {rows} pending rows in PostgreSQL, jobs into PostgreSQL, batch {DB_BATCH}, "
        f"{rounds} paired rounds"
    )
    return compare(
        Pair(
            "DatabasePollingTrigger + JobService(PostgresJobQueue)",
            lambda: db_ours(rows),
            "raw SELECT FOR UPDATE SKIP LOCKED + INSERT + UPDATE",
            lambda: db_peer(rows),
        ),
        rounds=rounds,
        measure="rate",
        target=0.7,
        unit="rows/s",
        name="db rows/s DatabasePollingTrigger/raw loop",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--only", choices=["files", "http", "db"], help="run one section")
    parser.add_argument(
        "--db-diagnose", action="store_true", help="db: also time the raw loop committing per job"
    )
    args = parser.parse_args(argv)
    sections = {
        "files": bench_files,
        "http": bench_http,
        "db": lambda quick: bench_db(quick, args.db_diagnose),
    }
    load_average("before")
    results = [bench(args.quick) for name, bench in sections.items() if args.only in (None, name)]
    load_average("after")
    return 0 if args.quick else exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
