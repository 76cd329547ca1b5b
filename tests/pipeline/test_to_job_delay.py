"""Delayed jobs: ``to_job(delay=/run_at=)`` makes a SCHEDULED job, its time from the
scheduler's clock, that no worker runs before then (memory and SQLite stores)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.models import Job, JobStatus
from portico_rx.testing import RecordingJobCreator, advance, settle

Event = dict[str, Any]


@pytest.fixture(params=["memory", "sqlite"])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[prx.JobQueue]:
    store: prx.JobQueue = (
        prx.MemoryJobQueue() if request.param == "memory" else prx.SQLiteJobQueue(tmp_path / "j.db")
    )
    yield store
    await store.close()


async def test_delay_schedules_from_virtual_time_and_the_worker_waits(queue: prx.JobQueue) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    clock = HistoricalScheduler(initial_clock=start)
    service = prx.JobService(queue)
    events: reactivex.Subject[Event] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        prx.flow(events).to_job(
            "report.build", payload=lambda e: {"id": e["id"]}, delay=lambda e: e["wait"]
        ),
        job_creator=service,
        name="delayed",
        scheduler=clock,
    )
    await trigger.start()
    events.on_next({"id": 1, "wait": timedelta(hours=2)})  # due an hour from (wall) now
    await advance(clock, timedelta(minutes=10), step=60)
    events.on_next({"id": 2, "wait": 0})  # due at virtual now: 50 minutes ago
    events.on_next({"id": 3, "wait": None})  # no delay: at once
    await advance(clock, 1)
    await trigger.stop()
    jobs = {j.payload["id"]: j for j in await service.list_jobs()}
    assert jobs[1].status is JobStatus.SCHEDULED
    assert jobs[1].scheduled_at == start + timedelta(hours=2)
    assert jobs[2].scheduled_at == start + timedelta(minutes=10)
    assert (jobs[3].status, jobs[3].scheduled_at) == (JobStatus.PENDING, None)

    ran: list[int] = []

    async def build(job: Job) -> dict[str, Any]:
        ran.append(job.payload["id"])
        return {}

    worker = prx.JobWorker(queue, {"report.build": build})
    assert await worker.run_until_idle() == 2
    assert sorted(ran) == [2, 3]  # job 1 is not due yet
    later = await service.get_job(jobs[1].id)
    assert later is not None and later.status is JobStatus.SCHEDULED


async def test_run_at_constant_and_per_event() -> None:
    clock = HistoricalScheduler(initial_clock=datetime(2030, 1, 1, tzinfo=UTC))
    creator = RecordingJobCreator()
    due = datetime(2030, 6, 1, 9, tzinfo=UTC)
    fixed: reactivex.Subject[Event] = reactivex.Subject()
    each: reactivex.Subject[datetime] = reactivex.Subject()
    triggers = [
        prx.PipelineTrigger(
            prx.flow(fixed).to_job("a.fixed", run_at=due),
            job_creator=creator,
            name="run-at-fixed",
            scheduler=clock,
        ),
        prx.PipelineTrigger(
            prx.flow(each).to_job("a.each", payload={}, run_at=lambda at: at),
            job_creator=creator,
            name="run-at-each",
            scheduler=clock,
        ),
    ]
    for trigger in triggers:
        await trigger.start()
    fixed.on_next({})
    each.on_next(datetime(2031, 1, 1, tzinfo=UTC))
    each.on_next(datetime(2031, 1, 1))  # naive: this event is dead-lettered
    await advance(clock, 1)
    for trigger in triggers:
        await trigger.stop()
    assert [(j.job_type, j.scheduled_at, j.status) for j in creator.jobs] == [
        ("a.fixed", due, JobStatus.SCHEDULED),
        ("a.each", datetime(2031, 1, 1, tzinfo=UTC), JobStatus.SCHEDULED),
    ]
    [dead] = triggers[1].dead_letters
    assert "timezone-aware" in dead.error
    assert creator.calls[0]["scheduled_at"] == due


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"delay": 5, "run_at": datetime(2030, 1, 1, tzinfo=UTC)}, "give one of them"),
        ({"delay": -1}, "cannot be negative"),
        ({"delay": timedelta(seconds=-1)}, "cannot be negative"),
        ({"delay": "5m"}, "timedelta or a number of seconds"),
        ({"delay": float("inf")}, "timedelta or a number of seconds"),
        ({"delay": 1e300}, "at most ten years"),
        ({"delay": timedelta(days=4000)}, "at most ten years"),
        ({"run_at": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_delay_or_run_at_fails_at_construction(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(prx.ConfigurationError, match=message):
        prx.to_job("a.b", **arguments)


async def test_a_creator_that_cannot_delay_dead_letters_with_the_fix() -> None:
    class SpecOnly(RecordingJobCreator):
        async def create_job(  # type: ignore[override]  # the spec's signature, no scheduled_at
            self,
            job_type: str,
            payload: dict[str, Any],
            queue_name: str = "default",
            priority: int = 0,
            metadata: dict[str, Any] | None = None,
        ) -> Job:
            return await super().create_job(job_type, payload, queue_name, priority, metadata)

    events: reactivex.Subject[Event] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        prx.flow(events).to_job("a.b", delay=60), job_creator=SpecOnly(), name="spec-only"
    )
    await trigger.start()
    events.on_next({})
    await settle()
    await trigger.stop()
    [dead] = trigger.dead_letters
    assert "SpecOnly.create_job takes no scheduled_at=" in dead.error
