"""Overlap policies, decided from the previous run's job in the store, against a worker
that holds its jobs (claims them and finishes them when the test says)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import InvalidScheduleError
from portico_rx.models import Job, JobStatus
from portico_rx.testing import advance

START = datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC)


class HoldingWorker:
    """Claims every due job (RUNNING) and finishes it only when told."""

    def __init__(self, queue: MemoryJobQueue) -> None:
        self.queue = queue
        self.held: list[Job] = []

    async def take(self) -> None:
        while (job := await self.queue.dequeue(["default"])) is not None:
            self.held.append(job)

    async def finish_all(self) -> None:
        for job in self.held:
            await self.queue.complete(job.id)
        self.held = []


async def run_minutes(
    policy: str, minutes: int, finish_at: set[int], **options: Any
) -> tuple[MemoryJobQueue, ScheduleTrigger]:
    """An every-minute schedule; the worker takes each job at once and finishes what it
    holds at the minutes in ``finish_at`` (between runs)."""
    queue = MemoryJobQueue()
    service = prx.JobService(job_queue=queue)
    vt = HistoricalScheduler(initial_clock=START)
    trigger = ScheduleTrigger(
        job_creator=service,
        schedules=[ScheduleConfig(cron="* * * * *", job_type="sync", overlap=policy)],
        scheduler=vt,
        overlap_poll=5,
        **options,
    )
    worker = HoldingWorker(queue)
    await trigger.start()
    for minute in range(1, minutes + 1):
        await advance(vt, timedelta(seconds=30), step=5)  # the run at :00 of the minute
        await worker.take()
        if minute in finish_at:
            await worker.finish_all()
        await advance(vt, timedelta(seconds=30), step=5)
        await worker.take()
    await trigger.stop()
    return queue, trigger


async def minutes_created(queue: MemoryJobQueue) -> list[str]:
    jobs = await queue.list(limit=100)
    return sorted((j.idempotency_key or "")[-6:-4] for j in jobs)


async def test_allow_creates_every_run_while_the_first_is_still_running() -> None:
    queue, _ = await run_minutes("allow", 4, finish_at=set())
    assert await minutes_created(queue) == ["01", "02", "03", "04"]


async def test_skip_drops_the_runs_while_the_previous_job_runs() -> None:
    queue, trigger = await run_minutes("skip", 5, finish_at={3})
    # 01 runs until minute 3's end; 02 and 03 are skipped; 04 runs (01 finished), 05 skipped
    assert await minutes_created(queue) == ["01", "04"]
    stats = trigger.get_health().details["per_schedule"]["sync"]["overlap"]
    assert stats == {"policy": "skip", "skipped": 3, "buffered": 0, "cancelled": 0}
    assert trigger.counters.jobs_created == 2  # a skipped run is not counted as a job


async def test_buffer_one_holds_one_run_and_drops_the_rest() -> None:
    queue, trigger = await run_minutes("buffer_one", 4, finish_at={3})
    # 02 is held behind 01; 03 is dropped (02 is held); 01 finishes in minute 3: 02 is
    # created then; 04 is held behind 02 (still running) when the trigger stops
    assert await minutes_created(queue) == ["01", "02"]
    stats = trigger.get_health().details["per_schedule"]["sync"]["overlap"]
    assert (stats["buffered"], stats["skipped"]) == (2, 1)


async def test_buffer_all_creates_every_run_one_after_another() -> None:
    queue, trigger = await run_minutes("buffer_all", 4, finish_at={3})
    # 02, 03 and 04 are all held; 01 finishes in minute 3: 02 is created, and 03 waits
    # for 02 (still running), 04 for 03
    assert await minutes_created(queue) == ["01", "02"]
    stats = trigger.get_health().details["per_schedule"]["sync"]["overlap"]
    assert (stats["buffered"], stats["skipped"]) == (3, 0)
    # finished every minute, every run is created, each after the one before
    queue, _ = await run_minutes("buffer_all", 5, finish_at={2, 3, 4, 5})
    jobs = sorted(await queue.list(limit=100), key=lambda j: j.idempotency_key or "")
    assert [(j.idempotency_key or "")[-6:-4] for j in jobs] == ["01", "02", "03", "04", "05"]
    assert [j.status for j in jobs].count(JobStatus.COMPLETED) == 4  # only 05 unfinished


async def test_cancel_other_fails_the_previous_job_and_creates_the_new_one() -> None:
    queue, trigger = await run_minutes("cancel_other", 3, finish_at=set())
    jobs = {(j.idempotency_key or "")[-6:-4]: j for j in await queue.list(limit=100)}
    assert sorted(jobs) == ["01", "02", "03"]
    assert jobs["01"].status is JobStatus.FAILED and "cancelled" in (jobs["01"].error or "")
    assert jobs["02"].status is JobStatus.FAILED
    assert jobs["03"].status is JobStatus.RUNNING
    assert trigger.get_health().details["per_schedule"]["sync"]["overlap"]["cancelled"] == 2


async def test_the_previous_run_is_read_from_the_store_after_a_restart() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(job_queue=queue)
    vt = HistoricalScheduler(initial_clock=START)
    config = ScheduleConfig(cron="* * * * *", job_type="sync", overlap="skip")
    first = ScheduleTrigger(job_creator=service, schedules=[config], scheduler=vt)
    await first.start()
    await advance(vt, timedelta(seconds=40), step=5)  # 00:01
    await first.stop()
    worker = HoldingWorker(queue)
    await worker.take()  # 00:01's job is running
    second = ScheduleTrigger(job_creator=service, schedules=[config], scheduler=vt)
    await second.start()
    await advance(vt, timedelta(minutes=2), step=5)  # 00:02, 00:03: skipped (another process)
    await worker.finish_all()
    await advance(vt, timedelta(minutes=1), step=5)  # 00:04 runs
    await second.stop()
    assert await minutes_created(queue) == ["01", "04"]


def test_bad_overlap_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ScheduleConfig(cron="* * * * *", job_type="x", overlap="queue")  # type: ignore[arg-type]
    with pytest.raises(InvalidScheduleError, match="overlap_poll=0"):
        ScheduleTrigger(job_creator=prx.JobService(job_queue=MemoryJobQueue()), overlap_poll=0)


async def test_a_held_run_is_released_when_the_previous_run_was_dead_lettered() -> None:
    """The previous run's job never came to exist (its creation failed for good): the run
    held behind it is created, it does not wait forever."""
    from portico_rx.pipeline.retry import RetryPolicy
    from portico_rx.testing import RecordingJobCreator

    creator = RecordingJobCreator(fail_first=1)
    vt = HistoricalScheduler(initial_clock=START)
    trigger = ScheduleTrigger(
        job_creator=creator,
        schedules=[ScheduleConfig(cron="* * * * *", job_type="sync", overlap="buffer_all")],
        scheduler=vt,
        retry=RetryPolicy(max_attempts=1),
        overlap_poll=5,
    )
    await trigger.start()
    await advance(vt, timedelta(minutes=2), step=5)
    await trigger.stop()
    assert trigger.get_health().dead_lettered_count == 1  # 00:01
    assert [(j.idempotency_key or "")[-6:-4] for j in creator.jobs] == ["02"]


async def test_cancel_other_cancels_a_previous_job_no_worker_took() -> None:
    """No worker: the previous run's job is still pending, so it is CANCELLED (never run),
    not failed; the newest run's job waits for a worker."""
    queue = MemoryJobQueue()
    vt = HistoricalScheduler(initial_clock=START)
    trigger = ScheduleTrigger(
        job_creator=prx.JobService(job_queue=queue),
        schedules=[ScheduleConfig(cron="* * * * *", job_type="sync", overlap="cancel_other")],
        scheduler=vt,
        overlap_poll=5,
    )
    await trigger.start()
    await advance(vt, timedelta(minutes=3), step=5)
    await trigger.stop()
    jobs = {(j.idempotency_key or "")[-6:-4]: j for j in await queue.list(limit=100)}
    assert [jobs[m].status for m in sorted(jobs)] == [
        JobStatus.CANCELLED,
        JobStatus.CANCELLED,
        JobStatus.PENDING,
    ]
    claimed = await queue.dequeue(["default"])
    assert claimed is not None and claimed.id == jobs["03"].id  # the cancelled never run
    assert await queue.dequeue(["default"]) is None
