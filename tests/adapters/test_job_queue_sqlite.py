"""SQLiteJobQueue as a user meets it: a file that outlives processes and is shared by them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import reactivex

import portico_rx as prx
from portico_rx.adapters.job_queue import sqlite as sqlite_module
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


async def test_enqueues_of_one_loop_iteration_share_a_transaction_each_answered_alone(
    tmp_path: Path,
) -> None:
    """The group commit writes the enqueues of one loop iteration in one transaction; one
    whose row is refused (a key taken before or earlier in the same transaction, the same
    job again) is answered with the stored job, as if each had been written alone."""
    async with SQLiteJobQueue(tmp_path / "jobs.db") as queue:
        first = prx.Job(job_type="run.insert", idempotency_key="k1")
        assert await queue.enqueue(first) == (first, True)
        jobs = [
            prx.Job(job_type="run.insert", idempotency_key="k1"),  # taken before
            prx.Job(job_type="run.insert", idempotency_key="k2"),
            prx.Job(job_type="run.insert", idempotency_key="k2"),  # taken earlier in the run
            prx.Job(job_type="run.insert", payload={"n": 1}),
            first,  # the very same job again
            prx.Job(job_type="run.insert", payload={"n": 2}),
        ]
        answers = await asyncio.gather(*(queue.enqueue(job) for job in jobs))
        assert [created for _, created in answers] == [False, True, False, True, False, True]
        assert [stored.id for stored, _ in answers] == [
            first.id,
            jobs[1].id,
            jobs[1].id,
            jobs[3].id,
            first.id,
            jobs[5].id,
        ]
        assert answers[0][0] == first and answers[2][0] == jobs[1]
        assert await queue.count() == 4
        many = [prx.Job(job_type="run.insert", payload={"n": n}) for n in range(150)]
        stored = await asyncio.gather(*(queue.enqueue(job) for job in many))
        assert all(created for _, created in stored) and await queue.count() == 154


async def test_the_same_new_job_twice_in_one_transaction_is_created_once(
    tmp_path: Path,
) -> None:
    async with SQLiteJobQueue(tmp_path / "jobs.db") as queue:
        job = prx.Job(job_type="run.insert")
        other = prx.Job(job_type="run.insert")
        answers = await asyncio.gather(queue.enqueue(job), queue.enqueue(job), queue.enqueue(other))
        assert [(stored.id, created) for stored, created in answers] == [
            (job.id, True),
            (job.id, False),
            (other.id, True),
        ]
        assert await queue.count() == 2


async def test_claims_of_one_loop_iteration_take_the_due_jobs_in_order(tmp_path: Path) -> None:
    """Workers claiming in one loop iteration share one claim statement: each gets its own
    job, the first caller the first job in the queue's order, and those left over None."""
    async with SQLiteJobQueue(tmp_path / "jobs.db") as queue:
        jobs = [prx.Job(job_type="run.claim", priority=p, queue_name="q") for p in (1, 5, 3)]
        jobs.append(prx.Job(job_type="run.claim", priority=9, queue_name="elsewhere"))
        for job in jobs:
            await queue.enqueue(job)
        claimed = await asyncio.gather(*(queue.dequeue(["q"]) for _ in range(5)))
        assert [None if job is None else job.id for job in claimed] == [
            jobs[1].id,
            jobs[2].id,
            jobs[0].id,
            None,
            None,
        ]
        for job in claimed[:3]:
            assert job is not None
            assert job.status == JobStatus.RUNNING and job.attempts == 1
            assert job.started_at is not None
        assert await queue.count(status=JobStatus.RUNNING) == 3
        assert await queue.count(status=JobStatus.PENDING) == 1  # the other queue's


async def test_joined_claims_take_expired_leases_back(tmp_path: Path) -> None:
    async with SQLiteJobQueue(tmp_path / "jobs.db", visibility_timeout=0.2) as queue:
        for n in range(2):
            await queue.enqueue(prx.Job(job_type="run.lease", payload={"n": n}))
        first = await asyncio.gather(queue.dequeue(None), queue.dequeue(None))
        assert all(job is not None for job in first)
        assert await asyncio.gather(queue.dequeue(None), queue.dequeue(None)) == [None, None]
        await asyncio.sleep(0.3)  # the workers died: their leases expire
        again = await asyncio.gather(queue.dequeue(None), queue.dequeue(None), queue.dequeue(None))
        assert {job.id for job in again if job is not None} == {
            job.id for job in first if job is not None
        }
        assert again[2] is None
        assert all(job is None or job.attempts == 2 for job in again)


async def test_completes_of_one_loop_iteration_are_each_answered_alone(tmp_path: Path) -> None:
    """Completes in one loop iteration share one update; an unknown id still gets its
    own error, and the same job completed twice ends with the last result, as alone."""
    async with SQLiteJobQueue(tmp_path / "jobs.db") as queue:
        for n in range(3):
            await queue.enqueue(prx.Job(job_type="run.complete", payload={"n": n}))
        jobs = await asyncio.gather(*(queue.dequeue(None) for _ in range(3)))
        ids = [job.id for job in jobs if job is not None]
        missing = uuid4()
        answers = await asyncio.gather(
            queue.complete(ids[0], {"n": 0}),
            queue.complete(missing, {"n": -1}),
            queue.complete(ids[1], [1, 2]),
            return_exceptions=True,
        )
        assert isinstance(answers[1], prx.JobNotFoundError) and str(missing) in str(answers[1])
        done = [answers[0], answers[2]]
        assert [job.id for job in done if isinstance(job, prx.Job)] == ids[:2]
        assert [job.result for job in done if isinstance(job, prx.Job)] == [{"n": 0}, [1, 2]]
        assert all(isinstance(job, prx.Job) and job.status == "completed" for job in done)
        twice = await asyncio.gather(queue.complete(ids[2], "a"), queue.complete(ids[2], "b"))
        assert [job.result for job in twice] == ["a", "b"]
        stored = await queue.get(ids[2])
        assert stored is not None and stored.result == "b"
        assert await queue.count(status=JobStatus.COMPLETED) == 3


async def test_fails_of_one_loop_iteration_keep_each_error_and_retry_time(
    tmp_path: Path,
) -> None:
    async with SQLiteJobQueue(tmp_path / "jobs.db") as queue:
        for n in range(4):
            await queue.enqueue(prx.Job(job_type="run.fail", payload={"n": n}))
        jobs = await asyncio.gather(*(queue.dequeue(None) for _ in range(4)))
        ids = [job.id for job in jobs if job is not None]
        later = datetime.now(UTC) + timedelta(hours=1)
        failed = await asyncio.gather(
            queue.fail(ids[0], "boom 0"),
            queue.fail(ids[1], "boom 1"),
            queue.fail(ids[2], "retry 2", retry_at=later),
            queue.fail(ids[3], "retry 3", retry_at=later + timedelta(hours=1)),
        )
        assert [(job.id, job.status, job.error) for job in failed] == [
            (ids[0], JobStatus.FAILED, "boom 0"),
            (ids[1], JobStatus.FAILED, "boom 1"),
            (ids[2], JobStatus.SCHEDULED, "retry 2"),
            (ids[3], JobStatus.SCHEDULED, "retry 3"),
        ]
        assert failed[2].scheduled_at is not None
        assert failed[3].scheduled_at is not None
        assert failed[3].scheduled_at - failed[2].scheduled_at == timedelta(hours=1)
        assert await queue.dequeue(None) is None  # the retries are not due yet


def test_bad_arguments_name_the_argument() -> None:
    for kwargs, match in [
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"synchronous": "MAYBE"}, "synchronous"),
        ({"max_batch": 0}, "max_batch"),
        ({"poll_interval": 0}, "poll_interval"),
        (
            {"visibility_timeout": 0},
            r"visibility_timeout=0: use a positive number of seconds or None to never reclaim",
        ),
        ({"visibility_timeout": -1.5}, r"visibility_timeout=-1\.5"),
    ]:
        with pytest.raises(prx.ConfigurationError, match=match):
            SQLiteJobQueue("x.db", **kwargs)
    assert SQLiteJobQueue("x.db", visibility_timeout=None).visibility_timeout is None
    assert SQLiteJobQueue("x.db").visibility_timeout == 300.0


# ---- leases and the version-1 -> 2 migration ---------------------------------------------

# The layout portico_rx wrote as schema version 1, copied here so the migration is tested
# against a real old file, not against whatever the current code would create.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    job_type TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    scheduled_at INTEGER,
    started_at INTEGER,
    completed_at INTEGER,
    idempotency_key TEXT UNIQUE,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due
    ON jobs (queue_name, priority DESC, created_at, seq)
    WHERE status IN ('pending', 'scheduled');
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def write_version_1_file(path: Path, start: datetime) -> dict[str, str]:
    """A version-1 file as a worker of that release left it: one job of each state,
    including one RUNNING whose worker is gone. Returns the ids by state."""
    ids = {state: str(uuid4()) for state in ("pending", "scheduled", "completed", "running")}
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA_V1)
    conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    t = micros(start - timedelta(hours=1))
    rows = [
        # id, type, queue, payload, prio, metadata, status, attempts, max_retries, created,
        # scheduled, started, completed, key, result, error
        (
            ids["running"],
            "v1.stuck",
            "default",
            '{"n":0}',
            0,
            "{}",
            "running",
            1,
            3,
            t,
            None,
            t + 5,
            None,
            "v1:running",
            None,
            None,
        ),
        (
            ids["pending"],
            "v1.job",
            "default",
            '{"n":1,"deep":{"x":[1,2.5,null]}}',
            5,
            '{"trigger":"old"}',
            "pending",
            0,
            4,
            t + 1,
            None,
            None,
            None,
            "v1:pending",
            None,
            None,
        ),
        (
            ids["scheduled"],
            "v1.job",
            "default",
            '{"n":2}',
            0,
            "{}",
            "scheduled",
            1,
            3,
            t + 2,
            t + 3,
            t + 2,
            None,
            "v1:scheduled",
            None,
            "smtp down",
        ),
        (
            ids["completed"],
            "v1.job",
            "default",
            '{"n":3}',
            0,
            "{}",
            "completed",
            1,
            3,
            t + 4,
            None,
            t + 4,
            t + 5,
            "v1:completed",
            '{"sent":true}',
            None,
        ),
    ]
    conn.executemany(f"INSERT INTO jobs VALUES (NULL, {', '.join('?' * 16)})", rows)
    conn.commit()
    conn.close()
    return ids


class Clock:
    """The SQLite adapter's wall clock, moved by hand (leases expire without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sqlite_module, "utcnow", clock)
    return clock


def lease_of(path: Path, job_id: object) -> int | None:
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT lease_expires_at FROM jobs WHERE id = ?", (str(job_id),)
        ).fetchone()
    return None if row is None else row[0]


async def test_a_version_1_file_is_migrated_in_place_and_its_jobs_stay_claimable(
    tmp_path: Path, clock: Clock
) -> None:
    db = tmp_path / "v1.db"
    ids = write_version_1_file(db, clock.now)
    async with SQLiteJobQueue(db, visibility_timeout=60) as queue:
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [
                (SCHEMA_VERSION,)
            ]
            columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
            assert columns[-1] == "lease_expires_at" and len(columns) == 18
            indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            assert {"jobs_due", "jobs_created", "jobs_status", "jobs_leased"} <= indexes
            assert {"dead_letters", "dead_letters_at", "dead_letters_status"} <= indexes
        assert await queue.list_dead_letters() == []  # version 3: the dead letter table
        # every job and field as the old release wrote it
        assert await queue.count() == 4
        pending = await queue.get_by_key("v1:pending")
        assert pending is not None and str(pending.id) == ids["pending"]
        assert pending.payload == {"n": 1, "deep": {"x": [1, 2.5, None]}}
        assert (pending.priority, pending.metadata, pending.max_retries) == (
            5,
            {"trigger": "old"},
            4,
        )
        done = await queue.get_by_key("v1:completed")
        assert done is not None and done.status is JobStatus.COMPLETED
        assert done.result == {"sent": True}
        # the RUNNING job its dead worker left behind got a lease from the migration
        assert lease_of(db, ids["running"]) == micros(clock.now + timedelta(seconds=60))
        assert lease_of(db, ids["pending"]) is None
        # claimable: by priority, the due retry, then nothing until the stuck job's lease ends
        first = await queue.dequeue(["default"])
        assert first is not None and str(first.id) == ids["pending"] and first.attempts == 1
        second = await queue.dequeue(["default"])
        assert second is not None and str(second.id) == ids["scheduled"] and second.attempts == 2
        assert await queue.dequeue(["default"]) is None
        await queue.complete(first.id)
        await queue.complete(second.id)
        clock.now += timedelta(seconds=61)
        stuck = await queue.dequeue(["default"])
        assert stuck is not None and str(stuck.id) == ids["running"] and stuck.attempts == 2
        assert await queue.dequeue(["default"]) is None  # the completed job never returns
    async with SQLiteJobQueue(db) as reopened:  # already the current version: opened as is
        assert await reopened.count(status=JobStatus.RUNNING) == 1
        assert await reopened.count(status=JobStatus.COMPLETED) == 3


async def test_processes_opening_a_version_1_file_together_migrate_it_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "v1-race.db"
    write_version_1_file(db, datetime.now(UTC))
    queues = [SQLiteJobQueue(db) for _ in range(4)]  # four connections, four threads
    await asyncio.gather(*(queue.open() for queue in queues))
    try:
        for queue in queues:
            assert await queue.count() == 4
        claimed = await asyncio.gather(*(queue.dequeue(["default"]) for queue in queues))
        assert len({job.id for job in claimed if job is not None}) == 2  # pending + due retry
    finally:
        await asyncio.gather(*(queue.close() for queue in queues))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    out = await run_python(READ_JOBS, str(db))  # and another process reads it
    assert len(json.loads(out)) == 4


async def test_a_version_1_file_opened_without_leases_keeps_running_jobs_unleased(
    tmp_path: Path,
) -> None:
    db = tmp_path / "v1-none.db"
    ids = write_version_1_file(db, datetime.now(UTC))
    async with SQLiteJobQueue(db, visibility_timeout=None):
        pass
    assert lease_of(db, ids["running"]) is None


async def test_a_newer_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    newer = SCHEMA_VERSION + 1
    async with SQLiteJobQueue(db) as queue:
        await queue.enqueue(prx.Job(job_type="future.job"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (newer,))
    with pytest.raises(
        prx.SchemaVersionError, match=rf"schema version {newer}, newer than .*\({SCHEMA_VERSION}\)"
    ):
        await SQLiteJobQueue(db).open()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(newer,)]
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)


async def test_the_lease_is_set_on_claim_and_cleared_by_every_status_change(
    tmp_path: Path, clock: Clock
) -> None:
    db = tmp_path / "leases.db"
    async with SQLiteJobQueue(db, visibility_timeout=45) as queue:
        jobs = [
            (await queue.enqueue(prx.Job(job_type="l.job", payload={"i": i})))[0] for i in range(4)
        ]
        claimed = [await queue.dequeue(["default"]) for _ in jobs]
        assert all(job is not None for job in claimed)
        expires = micros(clock.now + timedelta(seconds=45))
        assert [lease_of(db, job.id) for job in jobs] == [expires] * 4
        await queue.complete(jobs[0].id, "ok")
        await queue.fail(jobs[1].id, "broken")
        await queue.fail(jobs[2].id, "busy", retry_at=clock.now + timedelta(hours=1))
        assert [lease_of(db, job.id) for job in jobs] == [None, None, None, expires]
        assert await queue.count(status=JobStatus.RUNNING) == 1
        clock.now += timedelta(seconds=46)
        assert await queue.dequeue(["other"]) is None  # another queue's claim leaves it
        assert await queue.count(status=JobStatus.RUNNING) == 1
        again = await queue.dequeue(["default"])
        assert again is not None and again.id == jobs[3].id and again.attempts == 2
        assert lease_of(db, jobs[3].id) == micros(clock.now + timedelta(seconds=45))
        assert (await queue.count(status=JobStatus.RUNNING), await queue.count()) == (1, 4)


async def test_an_expired_lease_reads_as_pending_once_returned(
    tmp_path: Path, clock: Clock
) -> None:
    """What ``portico-rx jobs`` and ``count(status=...)`` show for a job whose worker died."""
    db = tmp_path / "status.db"
    async with (
        SQLiteJobQueue(db, visibility_timeout=10) as dead,
        SQLiteJobQueue(db, visibility_timeout=10) as survivor,
    ):
        lost, _ = await dead.enqueue(prx.Job(job_type="lost.job"))
        assert await dead.dequeue(["default"]) is not None
        await survivor.enqueue(prx.Job(job_type="urgent.job", priority=9))
        clock.now += timedelta(seconds=11)
        urgent = await survivor.dequeue(["default"])  # returns the expired lease first
        assert urgent is not None and urgent.job_type == "urgent.job"
        assert await survivor.count(status=JobStatus.PENDING) == 1
        assert await survivor.count(status=JobStatus.RUNNING) == 1
        [pending] = await survivor.list(status=JobStatus.PENDING)
        assert pending.id == lost.id and pending.attempts == 1
        assert lease_of(db, lost.id) is None


async def test_a_version_2_file_gains_the_dead_letter_and_schedule_tables_and_keeps_its_jobs(
    tmp_path: Path,
) -> None:
    from portico_rx.ports.dead_letter_store import DeadLetterRecord

    db = tmp_path / "v2.db"
    async with SQLiteJobQueue(db) as queue:
        await queue.enqueue(prx.Job(job_type="keep.me", idempotency_key="precious"))
    with sqlite3.connect(db) as conn:  # as version 2 left it: no dead letter or schedule table
        conn.execute("DROP TABLE dead_letters")
        conn.execute("DROP TABLE schedules")
        conn.execute("UPDATE schema_version SET version = 2")
    async with SQLiteJobQueue(db) as migrated:
        assert (await migrated.get_by_key("precious")) is not None
        record = DeadLetterRecord(
            trigger="t", stage="create_job", error="boom", at=datetime.now(UTC)
        )
        await migrated.add_dead_letter(record)
        assert await migrated.list_dead_letters() == [record]
        await migrated.save_schedule("t", "nightly", {"cron": "0 3 * * *"})
        assert [s.name for s in await migrated.list_schedules("t")] == ["nightly"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
