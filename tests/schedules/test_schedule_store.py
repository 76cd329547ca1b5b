"""Schedules in the store: replicas over one real store (a SQLite file, PostgreSQL) see
every add, change, pause, resume and removal within one poll, and each run is created once
through the changes; code-defined schedules are reconciled at start."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler

from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.job_queue import JobQueue
from portico_rx.schedule.calendar import Dates
from portico_rx.testing import advance

START = datetime(2025, 1, 1, tzinfo=UTC)
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"

Pair = tuple[JobQueue, JobQueue]


@contextlib.asynccontextmanager
async def sqlite_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    path = tmp_path / "schedules.db"
    queues = SQLiteJobQueue(path), SQLiteJobQueue(path)  # two connections: two processes
    try:
        yield queues
    finally:
        for queue in queues:
            await queue.close()


@contextlib.asynccontextmanager
async def postgres_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    import asyncpg

    schema = f"schedules_{uuid.uuid4().hex[:12]}"
    queues = (
        PostgresJobQueue(POSTGRES_DSN, schema=schema, pool_max=2),
        PostgresJobQueue(POSTGRES_DSN, schema=schema, pool_max=2),
    )
    try:
        yield queues
    finally:
        for queue in queues:
            await queue.close()
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


PAIRS = [
    pytest.param(sqlite_pair, id="sqlite"),
    pytest.param(postgres_pair, marks=pytest.mark.postgres, id="postgres"),
]


async def keys_of(queue: JobQueue, trigger: str = "store") -> list[str]:
    jobs = await queue.list(key_prefix=f"{trigger}:", limit=1000)
    return sorted(job.idempotency_key or "" for job in jobs)


async def after_one_poll(vt: HistoricalScheduler, done: Callable[[], bool]) -> None:
    """Advance virtual time by one poll interval (1 s); then give the poll's store call
    (a real thread or connection) a moment of real time to return."""
    await advance(vt, by=1, step=0.5)
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the change did not arrive within one poll")


def crons(trigger: ScheduleTrigger) -> dict[str, str | None]:
    return {config.schedule_name: config.cron for config in trigger.schedules}


def minute(n: int, schedule: str) -> str:
    return f"store:{schedule}:{(START + timedelta(minutes=n)).strftime('%Y-%m-%dT%H:%M:%SZ')}"


@pytest.mark.parametrize("pair", PAIRS)
async def test_two_replicas_see_every_change_within_one_poll_and_create_each_run_once(
    tmp_path: Path, pair: Callable[[Path], contextlib.AbstractAsyncContextManager[Pair]]
) -> None:
    vt = HistoricalScheduler(initial_clock=START)
    async with pair(tmp_path) as (first, second):
        code = [ScheduleConfig(cron="* * * * *", job_type="tick", name="tick")]
        a = ScheduleTrigger(JobService(first), code, name="store", scheduler=vt)
        b = ScheduleTrigger(JobService(second), code, name="store", scheduler=vt)
        await a.start()
        await b.start()
        assert a.schedule_store is first and b.schedule_store is second
        try:
            await advance(vt, by=150, step=0.5)  # 00:00 .. 00:02 fire on both replicas
            assert await keys_of(first) == [minute(n, "tick") for n in (0, 1, 2)]

            # added on one replica: the other fires it after one poll (1 s)
            a.add_schedule(ScheduleConfig(cron="* * * * *", job_type="extra", name="extra"))
            await a.sync_schedules()
            await after_one_poll(vt, lambda: len(b.schedules) == 2)
            assert [c.schedule_name for c in b.schedules] == ["tick", "extra"]

            # paused on B: A stops firing it too
            b.pause_schedule("tick")
            await b.sync_schedules()
            await after_one_poll(vt, lambda: a.paused_schedules == ["tick"])
            await advance(vt, to=START + timedelta(minutes=3, seconds=30), step=0.5)
            assert await keys_of(first) == sorted(
                [minute(n, "tick") for n in (0, 1, 2)] + [minute(3, "extra")]
            )

            # changed on A (every two minutes), resumed on B: both fire the new plan
            a.update_schedule(ScheduleConfig(cron="*/2 * * * *", job_type="tick", name="tick"))
            b.resume_schedule("tick")
            await a.sync_schedules()
            await b.sync_schedules()
            await after_one_poll(
                vt, lambda: crons(b)["tick"] == "*/2 * * * *" and not a.paused_schedules
            )
            assert b.paused_schedules == []

            # removed on B: A stops it
            b.remove_schedule("extra")
            await b.sync_schedules()
            await after_one_poll(vt, lambda: [c.schedule_name for c in a.schedules] == ["tick"])
            await advance(vt, to=START + timedelta(minutes=6, seconds=30), step=0.5)
        finally:
            await a.stop()
            await b.stop()
        keys = await keys_of(first)
        assert keys == sorted(
            [minute(n, "tick") for n in (0, 1, 2, 4, 6)] + [minute(3, "extra")]
        )  # one job per run: the two replicas fired each, the key kept it once
        assert a.get_health().jobs_created_count + b.get_health().jobs_created_count == 6
        assert a.health_details()["schedule_store"]["errors"] == 0


async def test_code_wins_writes_the_code_and_store_wins_keeps_the_store(tmp_path: Path) -> None:
    path = tmp_path / "reconcile.db"
    vt = HistoricalScheduler(initial_clock=START)
    hourly = ScheduleConfig(cron="0 * * * *", job_type="report", name="report")
    daily = ScheduleConfig(cron="0 9 * * *", job_type="report", name="report")
    gone = ScheduleConfig(cron="0 * * * *", job_type="gone", name="gone")
    async with SQLiteJobQueue(path) as queue:
        await queue.save_schedule("store", "report", daily.model_dump(mode="json"), paused=True)
        await queue.save_schedule(
            "store",
            "cli-added",
            hourly.model_copy(update={"name": "cli-added"}).model_dump(mode="json"),
        )
        await queue.save_schedule("store", "gone", gone.model_dump(mode="json"))
        await queue.delete_schedule("store", "gone")

        store_wins = ScheduleTrigger(
            JobService(queue), [hourly, gone], name="store", scheduler=vt, reconcile="store_wins"
        )
        await store_wins.start()
        await store_wins.stop()
        assert {c.schedule_name: c.cron for c in store_wins.schedules} == {
            "report": "0 9 * * *",  # the stored config stands, paused
            "cli-added": "0 * * * *",  # added at runtime elsewhere: kept
        }  # "gone" was removed in the store: it stays removed
        assert store_wins.paused_schedules == ["report"]

        code_wins = ScheduleTrigger(JobService(queue), [hourly, gone], name="store", scheduler=vt)
        await code_wins.start()
        await code_wins.stop()
        assert {c.schedule_name: c.cron for c in code_wins.schedules} == {
            "report": "0 * * * *",
            "gone": "0 * * * *",
            "cli-added": "0 * * * *",
        }
        assert code_wins.paused_schedules == ["report"]  # a runtime pause is kept
        stored = {s.name: s for s in await queue.list_schedules("store")}
        assert stored["report"].config == hourly.model_dump(mode="json")
        assert not stored["gone"].removed


async def test_a_schedule_with_a_calendar_object_lives_in_code_only(tmp_path: Path) -> None:
    vt = HistoricalScheduler(initial_clock=START)
    holiday = ScheduleConfig(
        cron="0 9 * * *", job_type="x", name="x", calendar=Dates([date(2025, 12, 25)])
    )
    plain = ScheduleConfig(cron="0 9 * * *", job_type="y", name="y", exclude=[date(2025, 1, 6)])
    async with SQLiteJobQueue(tmp_path / "calendar.db") as queue:
        await queue.save_schedule("store", "x", {"every": 60, "job_type": "other", "name": "x"})
        trigger = ScheduleTrigger(JobService(queue), [holiday, plain], name="store", scheduler=vt)
        await trigger.start()
        trigger.pause_schedule("x")
        await trigger.sync_schedules()
        await trigger.stop()
        assert trigger.schedules == [holiday, plain]  # the stored "x" did not replace it
        assert trigger.paused_schedules == ["x"]
        stored = {s.name: s for s in await queue.list_schedules("store")}
        assert not stored["x"].paused and stored["x"].config["every"] == 60
        assert ScheduleConfig.from_stored(stored["y"].config) == plain  # exclude round-trips
        code_only = ScheduleTrigger(
            JobService(queue), [plain], name="store", scheduler=vt, schedule_store=False
        )
        assert code_only.schedule_store is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"schedule_poll": 0}, "schedule_poll=0"),
        ({"reconcile": "newest"}, "reconcile='newest'"),
        ({"schedule_store": object()}, "give a ScheduleStore"),
    ],
)
def test_bad_store_options_are_refused(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        ScheduleTrigger(JobService(SQLiteJobQueue(":memory:")), **kwargs)
