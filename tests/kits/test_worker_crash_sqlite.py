"""A worker process killed with SIGKILL mid-job on a SQLite file: the job comes back.

Real processes, a real file, a real ``kill -9``: the first worker claims a job whose
handler blocks and is killed while it runs; the job stays ``running`` (nobody settled
it) until its lease expires; a second worker process then claims it and completes it.
Every handler run is appended to an effects log with ``os.write`` (it survives the kill),
so the test sees what ran where, and how often.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import portico_rx as prx
from portico_rx.adapters.job_queue import sqlite as sqlite_module
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.models import JobStatus

CLI = [sys.executable, "-m", "portico_rx.cli"]
LEASE = 1.0  # seconds; the lease a job gets is the visibility_timeout of the worker claiming it

WORKER = """
    import asyncio, json, logging, os, sys
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.kits.job.worker import JobWorker
    from portico_rx.models import JobStatus

    db, effects, mode, lease, total = sys.argv[1:6]
    if mode == "second":
        logging.basicConfig(level=logging.INFO)  # the library's info lines, on stderr

    def record(job, what):
        line = {"pid": os.getpid(), "id": str(job.id), "type": job.job_type,
                "attempt": job.attempts, "what": what}
        fd = os.open(effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (json.dumps(line) + "\\n").encode())
        finally:
            os.close(fd)

    async def item(job):
        record(job, "done")
        return {"n": job.payload["n"]}

    async def block(job):
        if mode == "first":
            record(job, "blocked")
            await asyncio.Event().wait()  # until the SIGKILL
        record(job, "done")
        return {"by": os.getpid()}

    async def main():
        queue = SQLiteJobQueue(db, visibility_timeout=float(lease), poll_interval=0.05)
        # One slot: once the blocking handler runs, this worker never claims again (it
        # cannot take its own job back when the lease expires while it is still alive).
        worker = JobWorker(queue, {"item": item, "block": block}, concurrency=1,
                           poll_interval=0.05)
        await worker.start()
        if mode == "first":
            await asyncio.Event().wait()
        deadline = asyncio.get_running_loop().time() + 60
        while await queue.count(status=JobStatus.COMPLETED) < int(total):
            assert asyncio.get_running_loop().time() < deadline, "jobs left unfinished"
            await asyncio.sleep(0.05)
        await worker.stop()
        await queue.close()

    asyncio.run(main())
"""


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


def wait_until(
    condition: Any, what: str, process: subprocess.Popen[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the worker exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def effects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def jobs_json(db: Path, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*CLI, "jobs", "--db", str(db), "--json", "--limit", "100", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_job_whose_worker_was_killed_is_completed_once_by_another_worker(
    tmp_path: Path,
) -> None:
    db, effects, script = tmp_path / "crash.db", tmp_path / "effects.log", tmp_path / "w.py"
    script.write_text(textwrap.dedent(WORKER))

    async def create(n_from: int, n_to: int, *, with_block: bool) -> None:
        async with prx.JobService(SQLiteJobQueue(db)) as service:
            if with_block:  # lowest priority: the first worker takes it after the items
                await service.create_job("block", {}, priority=-10, idempotency_key="block")
            for n in range(n_from, n_to):
                await service.create_job("item", {"n": n}, idempotency_key=f"item-{n}")

    asyncio.run(create(0, 20, with_block=True))
    total = 31  # the blocking job, 20 items now, 10 more after the kill

    first = subprocess.Popen(
        [sys.executable, str(script), str(db), str(effects), "first", str(LEASE), str(total)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The first worker finishes every item, then claims the blocking job and hangs in it.
        wait_until(lambda: effects.exists() and "blocked" in effects.read_text(), "blocked", first)
        items_done = "SELECT count(*) FROM jobs WHERE job_type = 'item' AND status = 'completed'"
        assert rows(db, items_done) == [(20,)]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert first.stderr is not None
    first_err = first.stderr.read()
    first.stderr.close()
    assert "Traceback" not in first_err, first_err

    # Nobody settled the blocking job: it reads as running, claimed once, by the dead worker.
    [stuck] = jobs_json(db, "--status", "running")
    assert (stuck["job_type"], stuck["attempts"]) == ("block", 1)
    asyncio.run(create(20, 30, with_block=False))  # new work arrives meanwhile

    second = subprocess.run(
        [sys.executable, str(script), str(db), str(effects), "second", str(LEASE), str(total)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert "sqlite_queue_leases_expired" in second.stderr  # the reclaim is logged

    # The store: every job completed; the blocking one on its second attempt, by the
    # second worker; no item claimed twice.
    jobs = jobs_json(db)
    assert len(jobs) == total
    assert all(job["status"] == JobStatus.COMPLETED.value for job in jobs)
    [block] = [job for job in jobs if job["job_type"] == "block"]
    assert block["attempts"] == 2 and block["result"] == {"by": second_pid(effects, first.pid)}
    items = [job for job in jobs if job["job_type"] == "item"]
    assert sorted(job["result"]["n"] for job in items) == list(range(30))
    assert all(job["attempts"] == 1 for job in items)

    # The effects: the blocking handler started once in each worker and finished once, in
    # the second; every item ran exactly once (the first 20 in the killed worker).
    log = effects_of(effects)
    runs = [(e["type"], e["what"], e["pid"] == first.pid, e["attempt"]) for e in log]
    assert runs.count(("block", "blocked", True, 1)) == 1
    assert runs.count(("block", "done", False, 2)) == 1
    assert [r for r in runs if r[0] == "block"] == [
        ("block", "blocked", True, 1),
        ("block", "done", False, 2),
    ]
    item_runs = Counter(e["id"] for e in log if e["type"] == "item")
    assert len(item_runs) == 30 and set(item_runs.values()) == {1}
    by_first = sorted(e["id"] for e in log if e["type"] == "item" and e["pid"] == first.pid)
    assert len(by_first) == 20
    with sqlite3.connect(db) as conn:  # every lease ended with its job
        assert conn.execute(
            "SELECT count(*) FROM jobs WHERE lease_expires_at IS NOT NULL"
        ).fetchone() == (0,)


def second_pid(effects: Path, first_pid: int) -> int:
    [pid] = {e["pid"] for e in effects_of(effects) if e["pid"] != first_pid}
    return int(pid)


async def test_the_lease_is_the_one_of_the_worker_that_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job claimed by a worker with ``visibility_timeout=None`` (never reclaim) stays
    running for a survivor with a short timeout; one claimed with 300 s comes back after
    300 s, not after the survivor's 1 s."""
    now = [datetime.now(UTC)]
    monkeypatch.setattr(sqlite_module, "utcnow", lambda: now[0])
    db = tmp_path / "claimer.db"
    async with (
        SQLiteJobQueue(db, visibility_timeout=None) as forever,
        SQLiteJobQueue(db) as default,
        SQLiteJobQueue(db, visibility_timeout=LEASE) as survivor,
    ):
        kept, _ = await forever.enqueue(prx.Job(job_type="forever", priority=1))
        assert await forever.dequeue(["default"]) is not None
        slow, _ = await default.enqueue(prx.Job(job_type="slow"))
        assert await default.dequeue(["default"]) is not None
        now[0] += timedelta(seconds=LEASE * 10)
        assert await survivor.dequeue(["default"]) is None
        now[0] += timedelta(seconds=300)
        again = await survivor.dequeue(["default"])
        assert again is not None and again.id == slow.id and again.attempts == 2
        await survivor.complete(again.id)
        now[0] += timedelta(days=365)
        assert await survivor.dequeue(["default"]) is None
        got = await survivor.get(kept.id)
        assert got is not None and got.status is JobStatus.RUNNING and got.attempts == 1
