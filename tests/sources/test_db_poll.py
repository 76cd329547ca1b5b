"""db_rows / pg_notify / DatabasePollingTrigger on real SQLite files and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from reactivex.scheduler import HistoricalScheduler
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger
from portico_rx.pipeline.delivery import claim_current
from portico_rx.sources._db_poll import DbPollStats, TableSpec
from portico_rx.testing import RecordingJobCreator, advance

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def virtual() -> HistoricalScheduler:
    return HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))


def fast_retry(attempts: int = 3) -> prx.RetryPolicy:
    return prx.RetryPolicy(max_attempts=attempts, initial_delay=0.001, max_delay=0.005, seed=1)


async def make_items(engine: AsyncEngine, table: str = "items", schema: str | None = None) -> None:
    name = f"{schema}.{table}" if schema else table
    kind = "serial" if engine.dialect.name == "postgresql" else "integer"
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                f"create table {name} (id {kind} primary key, status text not null, "
                "data text, created_at timestamp)"
            )
        )


async def insert(
    engine: AsyncEngine, *data: str, table: str = "items", status: str = "pending"
) -> None:
    async with engine.begin() as connection:
        for value in data:
            await connection.execute(
                sa.text(f"insert into {table} (status, data) values (:s, :d)"),
                {"s": status, "d": value},
            )


async def statuses(engine: AsyncEngine, table: str = "items") -> dict[str, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.text(f"select data, status from {table} order by id"))
        return {data: status for data, status in rows}


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[tuple[str, AsyncEngine]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine = create_async_engine(url)
    await make_items(engine)
    yield url, engine
    await engine.dispose()


async def test_pending_rows_become_jobs_and_are_marked_queued(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    """The spec's example: poll, create {"item_id", "data"} jobs on "processing", mark."""
    url, engine = sqlite_db
    await insert(engine, "a", "b")
    await insert(engine, "done-already", status="done")
    vt = virtual()
    creator = RecordingJobCreator()
    trigger = DatabasePollingTrigger(
        job_creator=creator, database=url, poll_interval_seconds=30, scheduler=vt
    )
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_marked == 2)
    await insert(engine, "c")
    assert len(creator.jobs) == 2  # c waits for the next poll ...
    done = trigger.stats.completed
    await advance(vt, 30, step=30)
    await wait_for(lambda: trigger.stats.completed > done and trigger.stats.rows_marked == 3)
    await trigger.stop()
    assert [j.payload for j in creator.jobs] == [
        {"item_id": "1", "data": "a"},
        {"item_id": "2", "data": "b"},
        {"item_id": "4", "data": "c"},
    ]
    assert {(j.job_type, j.queue_name) for j in creator.jobs} == {("item.process", "processing")}
    assert creator.jobs[0].idempotency_key == "db:items:item.process:items:1"
    assert await statuses(engine) == {
        "a": "queued",
        "b": "queued",
        "done-already": "done",
        "c": "queued",
    }
    assert trigger.get_health().details["rows_marked"] == 3


async def test_a_row_whose_job_fails_stays_pending_and_is_retried(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    url, engine = sqlite_db
    await insert(engine, "a", "b")
    vt = virtual()
    creator = RecordingJobCreator(fail_first=1)  # the first create_job call fails
    trigger = DatabasePollingTrigger(
        creator, url, 10, retry=fast_retry(attempts=1), max_concurrency=1, scheduler=vt
    )
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_nacked == 1 and trigger.stats.rows_marked == 1)
    assert await statuses(engine) == {"a": "pending", "b": "queued"}
    done = trigger.stats.completed
    await advance(vt, 10, step=10)
    await wait_for(lambda: trigger.stats.completed > done and trigger.stats.rows_marked == 2)
    await trigger.stop()
    assert sorted(j.payload["data"] for j in creator.jobs) == ["a", "b"]
    assert await statuses(engine) == {"a": "queued", "b": "queued"}
    assert len(trigger.dead_letters) == 1


async def test_a_backlog_drains_in_full_batches_without_waiting(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    url, engine = sqlite_db
    await insert(engine, *[f"r{n}" for n in range(250)])
    vt = virtual()  # virtual time never moves: every batch after the first is a "full" re-poll
    creator = RecordingJobCreator()
    trigger = DatabasePollingTrigger(creator, url, 3600, batch_size=40, scheduler=vt)
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_marked == 250)
    await trigger.stop()
    assert len(creator.jobs) == 250
    assert len({j.payload["item_id"] for j in creator.jobs}) == 250
    assert set((await statuses(engine)).values()) == {"queued"}


async def test_database_errors_while_running_back_off_and_show_in_health(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    url, engine = sqlite_db
    vt = virtual()
    trigger = DatabasePollingTrigger(RecordingJobCreator(), url, 5, scheduler=vt)
    await trigger.start()
    await wait_for(lambda: trigger.stats.completed == 1)
    async with engine.begin() as connection:
        await connection.execute(sa.text("alter table items rename to items_moved"))
    delays = []
    for step in (5, 10, 20):
        done = trigger.stats.completed
        await advance(vt, step, step=step)
        await wait_for(lambda: trigger.stats.completed > done)  # noqa: B023
        delays.append(trigger.stats.next_delay)
    health = trigger.get_health()
    assert delays == [10, 20, 40]
    assert trigger.is_running and not health.healthy
    assert "items" in (health.last_error or "")
    async with engine.begin() as connection:
        await connection.execute(sa.text("alter table items_moved rename to items"))
    await insert(engine, "back")
    done = trigger.stats.completed
    await advance(vt, 40, step=40)
    await wait_for(lambda: trigger.stats.completed > done and trigger.stats.rows_marked == 1)
    assert trigger.get_health().healthy
    await trigger.stop()


async def test_start_fails_clearly_for_bad_databases(tmp_path: Path, unused_port: int) -> None:
    creator = RecordingJobCreator()
    unreachable = DatabasePollingTrigger(
        creator, f"postgresql+asyncpg://postgres@127.0.0.1:{unused_port}/test", 5
    )
    with pytest.raises(prx.TriggerStartError, match="cannot be reached"):
        await unreachable.start()
    assert not unreachable.is_running
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(prx.TriggerStartError, match="'items' does not exist"):
        await DatabasePollingTrigger(creator, url, 5).start()
    engine = create_async_engine(url)
    await make_items(engine)
    await engine.dispose()
    with pytest.raises(prx.TriggerStartError, match="no column 'state'"):
        await DatabasePollingTrigger(creator, url, 5, status_column="state").start()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("sqlite:///app.db", 5), {}, "sync driver"),
        (("not a url", 5), {}, "does not parse"),
        ((42, 5), {}, "AsyncEngine or a URL"),
        (("sqlite+aiosqlite:///app.db", 0), {}, "poll|every"),
        (("sqlite+aiosqlite:///app.db", -1), {}, "every"),
        (("sqlite+aiosqlite:///app.db", float("nan")), {}, "every"),
        (("sqlite+aiosqlite:///app.db", 5), {"table": "items; drop table x"}, "identifier"),
        (("sqlite+aiosqlite:///app.db", 5), {"queued": "pending"}, "different"),
        (("sqlite+aiosqlite:///app.db", 5), {"batch_size": 0}, "batch_size"),
        (("sqlite+aiosqlite:///app.db", 5), {"notify_channel": "x"}, "needs PostgreSQL"),
        (("sqlite+aiosqlite:///app.db", 5), {"job_type": "no spaces"}, "job_type"),
    ],
)
def test_bad_arguments_are_rejected_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(prx.ConfigurationError, match=message):
        DatabasePollingTrigger(RecordingJobCreator(), *args, **kwargs)


def test_bad_notify_arguments() -> None:
    with pytest.raises(prx.ConfigurationError, match="needs PostgreSQL"):
        sources.pg_notify("mysql://x@y/z", "jobs")
    with pytest.raises(prx.ConfigurationError, match="channel"):
        sources.pg_notify("postgresql://x@y/z", "bad channel")


CRASH_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import structlog
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger
    from portico_rx.kits.job.job_service import JobService

    class SlowService(JobService):
        async def create_job(self, *args, **kwargs):
            job = await super().create_job(*args, **kwargs)
            await asyncio.sleep(0.01)  # widen the window between "job created" and "marked"
            return job

    async def main():
        service = SlowService(SQLiteJobQueue(sys.argv[2], synchronous="NORMAL"))
        trigger = DatabasePollingTrigger(service, sys.argv[1], 0.01, batch_size=7)
        await trigger.start()
        print("started", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_kill_9_at_random_moments_neither_loses_nor_doubles_a_row(
    sqlite_db: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    """A real process is killed with SIGKILL while it works; restarted until done, every
    row has exactly one job in the SQLite job store and is marked queued."""
    url, engine = sqlite_db
    await insert(engine, *[f"r{n}" for n in range(240)])
    jobs_db = tmp_path / "jobs.db"
    kills = 0
    for attempt in range(30):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CRASH_WORKER,
            url,
            str(jobs_db),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert process.stdout is not None
        assert b"started" in await asyncio.wait_for(process.stdout.readline(), 30)
        await asyncio.sleep(0.1 + (attempt * 0.077) % 0.3)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        kills += 1
        if set((await statuses(engine)).values()) == {"queued"}:
            break
    queue = SQLiteJobQueue(jobs_db)
    await queue.open()
    try:
        jobs = await queue.list(limit=10_000)
    finally:
        await queue.close()
    assert set((await statuses(engine)).values()) == {"queued"}, f"not done after {kills} kills"
    assert kills >= 2, kills
    assert sorted(int(j.payload["item_id"]) for j in jobs) == list(range(1, 241))


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[AsyncEngine, str]]:
    engine = create_async_engine(PG_URL)
    schema = f"p5_{uuid.uuid4().hex[:10]}"
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"create schema {schema}"))
    await make_items(engine, schema=schema)
    yield engine, schema
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"drop schema {schema} cascade"))
    await engine.dispose()


@pytest.mark.postgres
async def test_postgres_rows_become_jobs_and_notify_wakes_the_poller(
    pg_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = pg_schema
    channel = f"{schema}_pending"
    table = f"{schema}.items"
    await insert(engine, "a", table=table)
    vt = virtual()  # the poll interval is an hour of virtual time that never passes
    creator = RecordingJobCreator()
    trigger = DatabasePollingTrigger(
        creator,
        engine,
        3600,
        schema=schema,
        job_type="pg.item",
        notify_channel=channel,
        scheduler=vt,
    )
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_marked == 1)
    await asyncio.sleep(0.2)  # LISTEN connects in the background
    await insert(engine, "b", table=table)
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"notify {channel}, 'b'"))
    await wait_for(lambda: trigger.stats.rows_marked == 2)
    await trigger.stop()
    assert [j.payload for j in creator.jobs] == [
        {"item_id": "1", "data": "a"},
        {"item_id": "2", "data": "b"},
    ]
    assert creator.jobs[1].idempotency_key == f"db:{table}:pg.item:{table}:2"
    assert trigger.stats.wakeups >= 1
    assert await statuses(engine, table) == {"a": "queued", "b": "queued"}


@pytest.mark.postgres
async def test_pg_notify_emits_notifications(pg_schema: tuple[AsyncEngine, str]) -> None:
    engine, schema = pg_schema
    channel = f"{schema}_chan"
    received: list[Any] = []
    subscription = sources.pg_notify(PG_URL, channel).subscribe(received.append)
    try:
        deadline = time.monotonic() + 10
        while not received:  # LISTEN connects in the background: notify until heard
            assert time.monotonic() < deadline
            async with engine.begin() as connection:
                await connection.execute(sa.text(f"select pg_notify('{channel}', 'hello')"))
            await asyncio.sleep(0.05)
    finally:
        subscription.dispose()
    assert received[0].channel == channel and received[0].payload == "hello"


@pytest.mark.postgres
async def test_db_rows_source_with_a_table_spec(pg_schema: tuple[AsyncEngine, str]) -> None:
    engine, schema = pg_schema
    table = f"{schema}.items"
    await insert(engine, "x", "y", "z", table=table)
    stats = DbPollStats()
    spec = TableSpec("items", schema=schema, where="data <> 'y'", queued="sent")
    events: list[Any] = []
    pipeline = sources.db_rows(engine, spec, every=60, stats=stats, scheduler=virtual())
    subscription = pipeline.subscribe(events.append)
    try:
        await wait_for(lambda: stats.rows_marked == 2)
    finally:
        subscription.dispose()
    assert [(e.table, e.key, e.row["data"]) for e in events] == [
        (table, "1", "x"),
        (table, "3", "z"),
    ]
    assert await statuses(engine, table) == {"x": "sent", "y": "pending", "z": "sent"}


def test_a_polled_row_event_equals_the_validated_one_and_stays_frozen() -> None:
    """``RowEvent.polled`` (the poller's unvalidated constructor) builds what pydantic
    builds from the same values."""
    row = {"id": 7, "status": "pending", "data": "x", "at": datetime(2026, 1, 1, tzinfo=UTC)}
    fast = sources.RowEvent.polled("items", "7", dict(row))
    slow = sources.RowEvent(table="items", key="7", row=dict(row))
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump() == slow.model_dump()
    assert hash(fast.key) == hash(slow.key)
    with pytest.raises(Exception, match="frozen"):
        fast.key = "8"  # type: ignore[misc]


def test_the_default_payload_is_the_key_and_the_data_as_json() -> None:
    """A plain ``data`` value is passed as it is; any other is converted to JSON values,
    and a table without ``data`` gives its whole row."""
    from portico_rx.adapters.job_trigger.database_polling_trigger import default_row_payload

    at = datetime(2026, 1, 1, tzinfo=UTC)
    at_json = to_jsonable_python(at)
    assert isinstance(at_json, str)
    for data, expected in [("x", "x"), (3, 3), (None, None), (True, True), (at, at_json)]:
        event = sources.RowEvent(table="items", key="7", row={"id": 7, "data": data})
        assert default_row_payload(event) == {"item_id": "7", "data": expected}
    event = sources.RowEvent(table="items", key="7", row={"id": 7, "at": at})
    assert default_row_payload(event) == {
        "item_id": "7",
        "data": {"id": 7, "at": at_json},
    }


def test_sources_facade_exports_the_db_names() -> None:
    assert sources.db_rows.__name__ == "db_rows"
    assert sources.RowEvent.__name__ == "RowEvent"
    assert sources.Notification.__name__ == "Notification"


async def test_a_database_object_with_an_engine_is_accepted(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    """The spec passes its own ``database`` object; one exposing ``.engine`` works as is."""
    _url, engine = sqlite_db
    await insert(engine, "a")

    class Database:
        def __init__(self, engine: AsyncEngine) -> None:
            self.engine = engine

    creator = RecordingJobCreator()
    trigger = DatabasePollingTrigger(
        job_creator=creator,
        database=Database(engine),
        poll_interval_seconds=30,
        scheduler=virtual(),
    )
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_marked == 1)
    await trigger.stop()
    assert [j.payload for j in creator.jobs] == [{"item_id": "1", "data": "a"}]
    async with engine.connect() as connection:  # the caller's engine was not disposed
        assert (await connection.execute(sa.text("select 1"))).scalar() == 1


# -- a graceful stop marks the rows of the jobs it let finish ------------------------------


class GatedCreator(RecordingJobCreator):
    """Counts every ``create_job`` call (repeated keys included); holds them at ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def create_job(self, *args: Any, **kwargs: Any) -> Any:
        self.entered += 1
        await self.gate.wait()
        return await super().create_job(*args, **kwargs)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def items_table(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, str, dict[str, Any]]]:
    """``(engine, table, trigger options)`` of an empty items table in SQLite or PostgreSQL."""
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stop.db'}")
        await make_items(engine)
        yield engine, "items", {}
        await engine.dispose()
        return
    engine = create_async_engine(PG_URL)
    schema = f"p5_{uuid.uuid4().hex[:10]}"
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"create schema {schema}"))
    await make_items(engine, schema=schema)
    try:
        yield engine, f"{schema}.items", {"schema": schema}
    finally:
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"drop schema {schema} cascade"))
        await engine.dispose()


async def test_stop_right_after_the_jobs_exist_marks_their_rows(
    items_table: tuple[AsyncEngine, str, dict[str, Any]],
) -> None:
    """The jobs exist, their marks are not written yet, ``stop()`` comes: when it returns
    every row is queued, and a restarted trigger calls ``create_job`` for none of them."""
    engine, table, options = items_table
    await insert(engine, "a", "b", "c", table=table)
    creator = GatedCreator()
    trigger = DatabasePollingTrigger(creator, engine, 3600, scheduler=virtual(), **options)
    await trigger.start()
    await wait_for(lambda: len(creator.jobs) == 3)
    await trigger.stop()  # at once: the acks are still on their way to the marker
    assert await statuses(engine, table) == {"a": "queued", "b": "queued", "c": "queued"}
    assert (trigger.stats.rows_marked, trigger.stats.in_flight) == (3, 0)

    await insert(engine, "d", table=table)
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_marked == 4)
    await asyncio.sleep(0.05)
    await trigger.stop()
    assert creator.entered == 4  # a, b, c once each, then d
    assert [j.payload["data"] for j in creator.jobs] == ["a", "b", "c", "d"]
    assert await statuses(engine, table) == {k: "queued" for k in "abcd"}


async def test_stop_waits_for_creations_in_flight_and_marks_their_rows(
    items_table: tuple[AsyncEngine, str, dict[str, Any]],
) -> None:
    """Acks that arrive while ``stop()`` drains the creations in flight mark their rows."""
    engine, table, options = items_table
    await insert(engine, "a", "b", table=table)
    creator = GatedCreator()
    creator.gate.clear()
    trigger = DatabasePollingTrigger(creator, engine, 3600, scheduler=virtual(), **options)
    await trigger.start()
    await wait_for(lambda: creator.entered == 2)
    stopping = asyncio.ensure_future(trigger.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()
    assert await statuses(engine, table) == {"a": "pending", "b": "pending"}
    creator.gate.set()
    await asyncio.wait_for(stopping, 15)
    assert await statuses(engine, table) == {"a": "queued", "b": "queued"}
    assert trigger.get_health().details["in_flight"] == 0

    await trigger.start()
    await wait_for(lambda: trigger.stats.completed >= 1 and trigger.stats.polls >= 1)
    await asyncio.sleep(0.1)
    await trigger.stop()
    assert creator.entered == 2
    assert len(creator.jobs) == 2


async def test_a_creation_that_outlasts_stop_timeout_leaves_its_row_pending(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    """``stop()`` is bounded: a job not created within ``stop_timeout`` is abandoned, its
    row stays pending (no loss) and the next start creates it."""
    url, engine = sqlite_db
    await insert(engine, "a")
    creator = GatedCreator()
    creator.gate.clear()
    trigger = DatabasePollingTrigger(creator, url, 3600, scheduler=virtual(), stop_timeout=0.2)
    await trigger.start()
    await wait_for(lambda: creator.entered == 1)
    started = time.monotonic()
    await trigger.stop()
    assert time.monotonic() - started < 5
    assert await statuses(engine) == {"a": "pending"}
    assert (trigger.stats.rows_marked, trigger.stats.rows_nacked) == (0, 1)
    creator.gate.set()
    await trigger.start()
    await wait_for(lambda: trigger.stats.rows_marked == 1)
    await trigger.stop()
    assert [j.payload["data"] for j in creator.jobs] == ["a"]
    assert await statuses(engine) == {"a": "queued"}


async def test_a_disposed_db_rows_source_marks_rows_acked_later(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    """On the bare source: after ``dispose()`` nothing more is polled, but a row whose
    delivery is acked afterwards is still marked; ``wait_closed`` waits for it."""
    _url, engine = sqlite_db
    await insert(engine, "a", "b")
    stats = DbPollStats()
    claims: list[Any] = []
    source = sources.db_rows(engine, "items", every=3600, stats=stats, scheduler=virtual())
    subscription = source.subscribe(lambda _event: claims.append(claim_current()))
    await wait_for(lambda: len(claims) == 2)
    subscription.dispose()
    assert stats.in_flight == 2
    closing = asyncio.ensure_future(source.wait_closed(timeout=10))
    await asyncio.sleep(0.05)
    assert not closing.done()
    claims[0].resolve(True, job_id="job-a")
    claims[1].resolve(False, requeue=True)  # its job failed: the row stays pending
    assert await asyncio.wait_for(closing, 10) is True
    assert await statuses(engine) == {"a": "queued", "b": "pending"}
    assert (stats.rows_marked, stats.rows_nacked, stats.in_flight, stats.polls) == (1, 1, 0, 1)


async def test_the_drain_of_a_disposed_source_is_bounded_and_says_what_it_left(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    _url, engine = sqlite_db
    await insert(engine, "a")
    stats = DbPollStats()
    claims: list[Any] = []
    source = sources.db_rows(
        engine, "items", every=3600, stats=stats, scheduler=virtual(), drain_timeout=0.2
    )
    subscription = source.subscribe(lambda _event: claims.append(claim_current()))
    await wait_for(lambda: len(claims) == 1)
    with capture_logs() as logs:
        subscription.dispose()
        assert await source.wait_closed(timeout=5) is True
    [left] = [e for e in logs if e["event"] == "db_poll_drain_timeout"]
    assert (left["unmarked"], left["keys"], left["log_level"]) == (1, ["1"], "warning")
    claims[0].resolve(True, job_id="too-late")  # after the drain: not marked, stays pending
    await asyncio.sleep(0.05)
    assert await statuses(engine) == {"a": "pending"}
    assert stats.rows_marked == 0


async def test_a_new_subscription_skips_the_rows_a_draining_one_still_holds(
    sqlite_db: tuple[str, AsyncEngine],
) -> None:
    """A trigger re-subscribes at once after a pipeline error while the old subscription
    still drains: the new one does not emit the old one's rows a second time."""
    _url, engine = sqlite_db
    await insert(engine, "a", "b")
    vt = virtual()
    source = sources.db_rows(engine, "items", every=60, scheduler=vt)
    first: list[Any] = []
    old = source.subscribe(lambda event: first.append((event.key, claim_current())))
    await wait_for(lambda: len(first) == 2)
    old.dispose()
    second: list[Any] = []
    new = source.subscribe(lambda event: second.append((event.key, claim_current())))
    try:
        await wait_for(lambda: source.stats.completed == 2)
        await insert(engine, "c")
        await advance(vt, 60, step=60)
        await wait_for(lambda: source.stats.completed == 3)
        assert [key for key, _claim in second] == ["3"]
        assert source.stats.in_flight == 3  # two draining, one live
        for _key, claim in first:
            claim.resolve(True, job_id="job")
        second[0][1].resolve(False, requeue=True)
        assert await source.wait_closed(timeout=10) is True
        assert await statuses(engine) == {"a": "queued", "b": "queued", "c": "pending"}
    finally:
        new.dispose()
        await source.wait_closed(timeout=10)
