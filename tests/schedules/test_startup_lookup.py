"""Start-up asks the job store for every schedule's last run in one lookup of its key
index (``JobQueue.greatest_keys``), never one prefix scan per schedule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.models import Job
from portico_rx.testing import RecordingJobCreator, advance

START = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)


class CountingQueue(MemoryJobQueue):
    """A memory store that counts how start-up reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[list[str]] = []
        self.prefix_lists = 0

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        self.lookups.append(list(prefixes))
        return await super().greatest_keys(prefixes)

    async def list(self, **filters: Any) -> list[Job]:
        if filters.get("key_prefix") is not None:
            self.prefix_lists += 1
        return await super().list(**filters)


async def test_start_reads_every_schedules_last_run_in_one_lookup() -> None:
    queue = CountingQueue()
    service = prx.JobService(job_queue=queue)
    for n in range(300):  # history of other triggers and of these schedules
        await queue.enqueue(Job(job_type="x", idempotency_key=f"other:s{n}:2025-01-01T00:00:00Z"))
    for n in range(50):
        await queue.enqueue(
            Job(job_type="x", idempotency_key=f"schedules:s{n}:2024-12-31T23:00:00Z")
        )
    configs = [ScheduleConfig(cron="0 * * * *", job_type=f"s{n}") for n in range(100)]
    vt = HistoricalScheduler(initial_clock=START)
    trigger = ScheduleTrigger(job_creator=service, schedules=configs, scheduler=vt)
    await trigger.start()
    await advance(vt, timedelta(minutes=1))
    await trigger.stop()
    assert queue.lookups == [[f"schedules:s{n}:" for n in range(100)]]
    assert queue.prefix_lists == 0
    # the 50 with history caught up their 00:00 run; the 50 without caught nothing up
    caught = [j for j in await service.list_jobs(limit=1000) if j.metadata.get("catch_up")]
    assert sorted(j.metadata["schedule"] for j in caught) == sorted(f"s{n}" for n in range(50))
    assert {j.metadata["scheduled_at"] for j in caught} == {"2025-01-01T00:00:00+00:00"}


async def test_a_restart_on_a_sqlite_file_catches_up_from_the_stored_keys(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    schedules = [ScheduleConfig(cron="0 * * * *", job_type="sync", name=f"t{n}") for n in range(3)]
    vt = HistoricalScheduler(initial_clock=START)
    first_service = prx.JobService(job_queue=SQLiteJobQueue(path))
    first = ScheduleTrigger(job_creator=first_service, schedules=schedules, scheduler=vt)
    await first.start()
    await advance(vt, timedelta(hours=2), step=600)  # 01:00, 02:00
    await first.stop()
    await first_service.close()
    vt.advance_to(START + timedelta(hours=5))  # 03:00, 04:00, 05:00 missed
    service = prx.JobService(job_queue=SQLiteJobQueue(path))
    second = ScheduleTrigger(job_creator=service, schedules=schedules, scheduler=vt, coalesce="all")
    await second.start()
    await advance(vt, timedelta(minutes=1))
    await second.stop()
    jobs = await service.list_jobs(limit=100)
    await service.close()
    for n in range(3):
        times = sorted(
            j.metadata["scheduled_at"][11:16] for j in jobs if j.metadata["schedule"] == f"t{n}"
        )
        assert times == ["01:00", "02:00", "03:00", "04:00", "05:00"]


async def test_a_creator_without_a_job_queue_is_asked_per_schedule() -> None:
    recording = RecordingJobCreator()
    vt = HistoricalScheduler(initial_clock=START)
    first = ScheduleTrigger(
        job_creator=recording,
        schedules=[ScheduleConfig(cron="0 * * * *", job_type="sync")],
        scheduler=vt,
    )
    await first.start()
    await advance(vt, timedelta(hours=1), step=600)  # 01:00
    await first.stop()
    vt.advance_to(START + timedelta(hours=3))
    second = ScheduleTrigger(
        job_creator=recording,
        schedules=[ScheduleConfig(cron="0 * * * *", job_type="sync")],
        scheduler=vt,
    )
    await second.start()
    await advance(vt, timedelta(minutes=1))
    await second.stop()
    keys = sorted(j.idempotency_key or "" for j in recording.jobs)
    assert keys == [
        "schedules:sync:2025-01-01T01:00:00Z",
        "schedules:sync:2025-01-01T03:00:00Z",  # the latest missed run (02:00 coalesced)
    ]


async def test_sqlite_without_json_functions_looks_keys_up_one_prefix_at_a_time(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A SQLite build without JSON: the same answer, one statement per prefix."""
    connect = SQLiteJobQueue._connect

    def without_json(self: SQLiteJobQueue) -> Any:
        conn = connect(self)
        conn.execute("CREATE TEMP TABLE json_each (value TEXT)")  # shadows the function
        return conn

    monkeypatch.setattr(SQLiteJobQueue, "_connect", without_json)
    async with SQLiteJobQueue(tmp_path / "old.db") as queue:
        for key in ["t:a:1", "t:a:2", "t:b:9", "t:ab:5"]:
            await queue.enqueue(Job(job_type="x", idempotency_key=key))
        assert await queue.greatest_keys(["t:a:", "t:b:", "t:c:"]) == {
            "t:a:": "t:a:2",
            "t:b:": "t:b:9",
        }


async def test_a_started_schedule_holds_few_objects_the_collector_tracks() -> None:
    """Each armed schedule keeps its timer entry, fire cursor and counters, and shares
    everything else (one callback for every entry): the long-lived objects ten thousand
    schedules add are what brings CPython's full collection into the first fires."""
    import gc

    count = 2_000
    vt = HistoricalScheduler(START)
    schedules = [
        ScheduleConfig(cron=f"{i % 60} * * * *", job_type=f"t.{i}", name=f"s{i}")
        for i in range(count)
    ]
    trigger = ScheduleTrigger(
        job_creator=RecordingJobCreator(), schedules=schedules, scheduler=vt, name="few"
    )
    gc.collect()
    before = len(gc.get_objects())
    await trigger.start()
    gc.collect()
    added = len(gc.get_objects()) - before
    await trigger.stop()
    assert added / count <= 3.5, f"{added / count:.2f} tracked objects per schedule (3.25 now)"
