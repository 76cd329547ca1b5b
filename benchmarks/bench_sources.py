"""Benchmarks for the files, HTTP polling and database sources, each against a peer.

    python benchmarks/bench_sources.py            # full run
    python benchmarks/bench_sources.py --quick    # a tiny run (smoke test)

* files: write -> job latency (p50/p99) of FileTrigger vs a watchdog trigger written
  like the spec's example (Observer + FileSystemEventHandler.on_created).
* http: 1,000 polls of an unchanged resource: requests, bodies and bytes transferred
  with conditional GETs (http_poll) vs plain GETs (an httpx loop).
* db: pending rows -> jobs per second, DatabasePollingTrigger + JobService(SQLiteJobQueue)
  vs a raw SELECT + INSERT + UPDATE loop with the same driver (aiosqlite), same file
  settings.

Each section prints its figures and a ``ratio`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog

# Production-like logging: warnings and errors only (per-job info lines are not rendered).
structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    logger_factory=structlog.ReturnLoggerFactory(),
)

from portico_rx.models import Job  # noqa: E402
from portico_rx.ports.job_creator import JobCreator  # noqa: E402


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


async def bench_files(quick: bool) -> None:
    count = 20 if quick else 200
    settle = 0.05
    ours0 = await files_ours(count, 0.0)
    ours = await files_ours(count, settle)
    peer = await files_watchdog(count)
    print(f"files: {count} writes, 1 KiB each, 10 ms apart")
    for label, values in (
        ("FileTrigger settle=0     ", ours0),
        (f"FileTrigger settle={settle:<5g} ", ours),
        ("watchdog (spec example)  ", peer),
    ):
        print(
            f"  {label} p50 {percentile(values, 50):7.2f} ms   p99 {percentile(values, 99):7.2f} ms"
            f"   ({len(values)}/{count} seen)"
        )
    overhead = [v - settle * 1000 for v in ours]
    print(
        f"  FileTrigger overhead beyond settle: p50 {percentile(overhead, 50):.2f} ms, "
        f"p99 {percentile(overhead, 99):.2f} ms (target <= 30 ms)"
    )
    print(
        f"ratio files latency p50 FileTrigger(settle=0)/watchdog = "
        f"{percentile(ours0, 50) / percentile(peer, 50):.2f}x; "
        f"p99 = {percentile(ours0, 99) / percentile(peer, 99):.2f}x"
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


async def bench_http(quick: bool) -> None:
    import httpx
    from reactivex.scheduler import HistoricalScheduler

    from portico_rx.sources._http_poll import HttpPollStats, http_poll
    from portico_rx.testing import advance

    polls = 100 if quick else 1000
    body = b"x" * 20_000
    ours_server, url = _serve(body)
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    stats = HttpPollStats()
    changes: list[Any] = []
    started = time.perf_counter()
    subscription = http_poll(url, 60, stats=stats, scheduler=vt).subscribe(changes.append)
    while stats.completed < 1:
        await asyncio.sleep(0.001)
    for _ in range(polls - 1):
        done = stats.completed
        await advance(vt, 60, step=60)
        while stats.completed == done:
            await asyncio.sleep(0.0005)
    subscription.dispose()
    ours_wall = time.perf_counter() - started
    ours_server.shutdown()

    peer_server, peer_url = _serve(body)
    started = time.perf_counter()
    async with httpx.AsyncClient() as client:
        for _ in range(polls):
            response = await client.get(peer_url)
            response.raise_for_status()
    peer_wall = time.perf_counter() - started
    peer_server.shutdown()

    print(f"http: {polls} polls of an unchanged {len(body) // 1000} kB resource")
    print(
        f"  http_poll (conditional) requests {ours_server.requests}, bodies "
        f"{ours_server.bodies}, body bytes {ours_server.body_bytes}, 304s {stats.not_modified}, "
        f"changes emitted {len(changes)}, {ours_wall / polls * 1000:.2f} ms/poll"
    )
    print(
        f"  plain GET loop          requests {peer_server.requests}, bodies "
        f"{peer_server.bodies}, body bytes {peer_server.body_bytes}, "
        f"{peer_wall / polls * 1000:.2f} ms/poll"
    )
    saved = 1 - ours_server.body_bytes / peer_server.body_bytes
    print(
        f"ratio http body bytes http_poll/plain = "
        f"{ours_server.body_bytes / peer_server.body_bytes:.4f} ({saved:.1%} saved; bodies after "
        f"the first: {ours_server.bodies - 1})"
    )


# -- db --------------------------------------------------------------------------------


async def _rows_db(path: Path, rows: int) -> str:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    url = f"sqlite+aiosqlite:///{path}"
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(sa.text("pragma journal_mode=wal"))
        await connection.execute(
            sa.text("create table items (id integer primary key, status text, data text)")
        )
        await connection.execute(
            sa.text("insert into items (status, data) values ('pending', :d)"),
            [{"d": f"row {n}"} for n in range(rows)],
        )
    await engine.dispose()
    return url


async def db_ours(rows: int) -> float:
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger
    from portico_rx.kits.job.job_service import JobService

    folder = Path(tempfile.mkdtemp())
    url = await _rows_db(folder / "rows.db", rows)
    service = JobService(SQLiteJobQueue(folder / "jobs.db", synchronous="NORMAL"))
    trigger = DatabasePollingTrigger(service, url, 3600, batch_size=500, max_concurrency=64)
    started = time.perf_counter()
    await trigger.start()
    while trigger.stats.rows_marked < rows:
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - started
    await trigger.stop()
    await service.close()
    return rows / elapsed


async def db_peer(rows: int) -> float:
    """SELECT a batch, INSERT a job per row (unique key), UPDATE the rows; one transaction."""
    import json
    import uuid

    import aiosqlite

    folder = Path(tempfile.mkdtemp())
    await _rows_db(folder / "rows.db", rows)
    started = time.perf_counter()
    async with (
        aiosqlite.connect(folder / "rows.db") as rows_db,
        aiosqlite.connect(folder / "jobs.db") as jobs_db,
    ):
        await jobs_db.execute("pragma journal_mode=wal")
        await jobs_db.execute("pragma synchronous=normal")
        await jobs_db.execute(
            "create table jobs (id text primary key, job_type text, queue_name text, "
            "payload text, status text, idempotency_key text unique)"
        )
        done = 0
        while done < rows:
            cursor = await rows_db.execute(
                "select id, data from items where status = 'pending' order by id limit 500"
            )
            batch = list(await cursor.fetchall())
            await jobs_db.executemany(
                "insert or ignore into jobs values (?, 'item.process', 'processing', ?, "
                "'pending', ?)",
                [
                    (str(uuid.uuid4()), json.dumps({"item_id": str(i), "data": d}), f"items:{i}")
                    for i, d in batch
                ],
            )
            await jobs_db.commit()
            await rows_db.executemany(
                "update items set status = 'queued' where id = ?", [(i,) for i, _ in batch]
            )
            await rows_db.commit()
            done += len(batch)
    return rows / (time.perf_counter() - started)


async def bench_db(quick: bool) -> None:
    rows = 500 if quick else 5000
    ours = await db_ours(rows)
    peer = await db_peer(rows)
    print(f"db: {rows} pending rows in SQLite (aiosqlite), jobs into a second SQLite file")
    print(f"  DatabasePollingTrigger + JobService(SQLiteJobQueue)  {ours:9.0f} rows/s")
    print(f"  raw SELECT+INSERT+UPDATE loop (batched)             {peer:9.0f} rows/s")
    print(f"ratio db rows/s DatabasePollingTrigger/raw loop = {ours / peer:.2f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--only", choices=["files", "http", "db"], help="run one section")
    args = parser.parse_args()
    sections = {"files": bench_files, "http": bench_http, "db": bench_db}
    for name, bench in sections.items():
        if args.only in (None, name):
            await bench(args.quick)
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
