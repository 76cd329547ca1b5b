"""SQLiteJobQueue as a user meets it: a file that outlives processes and is shared by them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import reactivex

import portico_rx as prx
from portico_rx.adapters.job_queue.sqlite import SCHEMA_VERSION, SQLiteJobQueue
from portico_rx.models import JobStatus


async def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (a second process) and return its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


READ_JOBS = """
    import asyncio, json, sys
    import structlog
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())

    async def main():
        async with SQLiteJobQueue(sys.argv[1]) as queue:
            jobs = await queue.list(limit=1000)
        print(json.dumps([[j.job_type, j.payload, j.queue_name, j.priority] for j in jobs]))

    asyncio.run(main())
"""

ENQUEUE_KEYS = """
    import asyncio, sys
    import structlog
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.kits.job.job_service import JobService

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())

    async def main():
        async with JobService(SQLiteJobQueue(sys.argv[1], synchronous="NORMAL")) as service:
            await asyncio.gather(*(
                service.create_job("k.job", {"who": sys.argv[2]}, idempotency_key=f"key-{i}")
                for i in range(int(sys.argv[3]))
            ))

    asyncio.run(main())
"""

CLAIM_ALL = """
    import asyncio, json, sys
    import structlog
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())

    async def main():
        claimed = []
        async with SQLiteJobQueue(sys.argv[1]) as queue:
            while (job := await queue.dequeue(["default"])) is not None:
                claimed.append(str(job.id))
        print(json.dumps(claimed))

    asyncio.run(main())
"""


async def test_events_become_jobs_that_survive_reopen_and_other_processes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "jobs.db"
    service = prx.JobService(prx_queue := SQLiteJobQueue(db))
    orders: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        orders.pipe(
            prx.to_job(
                "order.ship",
                payload=lambda o: {"order": o["id"]},
                queue_name="shipping",
                priority=lambda o: 10 if o["express"] else 0,
            )
        ),
        job_creator=service,
        name="orders",
    )
    await trigger.start()
    for n in range(5):
        orders.on_next({"id": n, "express": n % 2 == 1})
    await trigger.stop()
    await prx_queue.close()

    async with SQLiteJobQueue(db) as reopened:
        jobs = await reopened.list()
        assert sorted(j.payload["order"] for j in jobs) == [0, 1, 2, 3, 4]
        assert {j.metadata["trigger"] for j in jobs} == {"orders"}
        first = await reopened.dequeue(["shipping"])
        assert first is not None and first.payload == {"order": 1} and first.priority == 10

    from_other_process = json.loads(await run_python(READ_JOBS, str(db)))
    assert sorted(row[1]["order"] for row in from_other_process) == [0, 1, 2, 3, 4]
    assert {(row[0], row[2]) for row in from_other_process} == {("order.ship", "shipping")}


async def test_several_processes_enqueueing_the_same_keys_store_one_job_each(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.db"
    async with SQLiteJobQueue(db):  # create the schema once, as a service would
        pass
    await asyncio.gather(*(run_python(ENQUEUE_KEYS, str(db), f"p{p}", "60") for p in range(3)))
    async with SQLiteJobQueue(db) as queue:
        jobs = await queue.list(limit=1000)
    assert sorted(j.idempotency_key or "" for j in jobs) == sorted(f"key-{i}" for i in range(60))


async def test_processes_claiming_from_one_file_never_share_a_job(tmp_path: Path) -> None:
    db = tmp_path / "claims.db"
    async with prx.JobService(SQLiteJobQueue(db)) as service:
        ids = {str((await service.create_job("c.job", {"i": i})).id) for i in range(150)}
    outputs = await asyncio.gather(*(run_python(CLAIM_ALL, str(db)) for _ in range(3)))
    claimed = [job_id for out in outputs for job_id in json.loads(out)]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == ids


async def test_two_queue_objects_in_one_process_share_the_file(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    async with SQLiteJobQueue(db) as a, SQLiteJobQueue(db) as b:
        results = await asyncio.gather(
            *(q.enqueue(prx.Job(job_type="t.t", idempotency_key="one")) for q in (a, b, a, b))
        )
        assert sum(created for _, created in results) == 1
        [winner] = [stored for stored, created in results if created]
        assert {stored.id for stored, _ in results} == {winner.id}
        found = await b.get_by_key("one")
        assert found is not None and found.id == winner.id
        assert len(await a.list()) == 1


async def test_corrupt_file_fails_trigger_start_naming_the_path(tmp_path: Path) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"this is not a database, just some bytes" * 100)
    trigger = prx.PipelineTrigger(
        reactivex.never().pipe(prx.to_job("x.y")),
        job_creator=prx.JobService(SQLiteJobQueue(db)),
        name="corrupt",
    )
    with pytest.raises(prx.QueueUnavailableError, match=r"corrupt\.db") as info:
        await trigger.start()
    assert "not a valid database" in str(info.value)
    assert isinstance(info.value, ConnectionError)
    assert not trigger.is_running


@pytest.mark.parametrize("where", ["missing-dir/jobs.db", "a-directory"])
async def test_unwritable_path_fails_at_open_naming_the_path(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-directory").mkdir()
    queue = SQLiteJobQueue(tmp_path / where)
    with pytest.raises(prx.QueueUnavailableError, match=where.split("/")[0]) as info:
        await queue.open()
    assert "writable" in str(info.value)
    assert not queue.is_open


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    async with SQLiteJobQueue(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(prx.SchemaVersionError, match=f"version {SCHEMA_VERSION + 1}"):
        await SQLiteJobQueue(db).open()


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    async with SQLiteJobQueue(db):
        pass
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_the_event_loop_keeps_running_while_another_process_holds_the_lock(
    tmp_path: Path,
) -> None:
    """A blocked write waits in the queue's thread, never on the event loop."""
    db = tmp_path / "locked.db"
    async with SQLiteJobQueue(db, busy_timeout=30) as queue:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        enqueue = asyncio.ensure_future(queue.enqueue(prx.Job(job_type="wait.lock")))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not enqueue.done()
        holder.execute("COMMIT")
        holder.close()
        stored, created = await enqueue
        assert created and (await queue.get(stored.id)) is not None


async def test_lock_held_past_busy_timeout_is_a_retryable_error(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    async with SQLiteJobQueue(db, busy_timeout=0.05) as queue:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(prx.QueueUnavailableError, match="busy_timeout"):
                await queue.enqueue(prx.Job(job_type="busy.lock"))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        _stored, created = await queue.enqueue(prx.Job(job_type="busy.lock"))
        assert created


async def test_a_burst_of_creates_is_stored_completely(tmp_path: Path) -> None:
    async with prx.JobService(SQLiteJobQueue(tmp_path / "burst.db")) as service:
        jobs = await asyncio.gather(
            *(
                service.create_job("burst.job", {"i": i}, idempotency_key=f"b{i % 400}")
                for i in range(800)
            )
        )
        assert len({j.id for j in jobs}) == 400
        queue = service.job_queue
        assert isinstance(queue, SQLiteJobQueue)
        assert await queue.count() == 400
        assert await queue.count(status=JobStatus.PENDING) == 400


def test_bad_arguments_name_the_argument() -> None:
    for kwargs, match in [
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"synchronous": "MAYBE"}, "synchronous"),
        ({"max_batch": 0}, "max_batch"),
        ({"poll_interval": 0}, "poll_interval"),
    ]:
        with pytest.raises(prx.ConfigurationError, match=match):
            SQLiteJobQueue("x.db", **kwargs)
