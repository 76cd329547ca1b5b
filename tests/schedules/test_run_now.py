"""ScheduleTrigger.run_now: one run on request, down the pipeline, with a key no fire
time has; the next regular run and a restart's catch-up are unaffected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from reactivex.scheduler import HistoricalScheduler

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import ConfigurationError, TriggerNotRunningError
from portico_rx.kits.job.job_service import JobService
from portico_rx.pipeline.provenance import run_now_key
from portico_rx.testing import advance, settle

START = datetime(2025, 1, 1, 0, 5, tzinfo=UTC)


def hourly(vt: HistoricalScheduler, service: JobService) -> ScheduleTrigger:
    return ScheduleTrigger(
        job_creator=service,
        schedules=[ScheduleConfig(cron="0 * * * *", job_type="report", payload={"n": 1})],
        name="sched",
        scheduler=vt,
        coalesce="all",
    )


def test_the_run_now_key_sorts_below_every_fire_time_and_never_equals_one() -> None:
    key = run_now_key("2025-01-01T00:05:00.000000Z", "abc")
    assert key == "+run-now:2025-01-01T00:05:00.000000Z:abc"
    assert key < "0000-01-01T00:00:00Z"  # below any fire time under the same prefix


async def test_run_now_creates_one_job_per_call_and_leaves_the_plan_alone() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    service = JobService(MemoryJobQueue())
    trigger = hourly(vt, service)
    with pytest.raises(TriggerNotRunningError, match="start\\(\\) it first"):
        await trigger.run_now("report")
    await trigger.start()
    with pytest.raises(ConfigurationError, match="schedule='nope' is not in trigger"):
        await trigger.run_now("nope")
    first = await trigger.run_now("report")
    second = await trigger.run_now("report")  # same virtual microsecond: its own run
    assert first is not None and second is not None and first.id != second.id
    for job in (first, second):
        assert job.job_type == "report" and job.payload == {"n": 1}
        assert job.metadata["run_now"] is True
        assert job.idempotency_key is not None
        assert job.idempotency_key.startswith("sched:report:+run-now:2025-01-01T00:05:00")
    await advance(vt, timedelta(minutes=60), step=60)  # the 01:00 run still happens
    jobs = await service.find_jobs(key_prefix=trigger.key_prefix("report"))
    assert sorted(j.idempotency_key or "" for j in jobs)[-1] == "sched:report:2025-01-01T01:00:00Z"
    details = trigger.get_health().details["per_schedule"]["report"]
    assert details["run_now"] == 2 and details["fired"] == 1
    await trigger.stop()

    # a restart two hours later catches up from the 01:00 fire time, not the run-now
    restarted = hourly(vt, service)
    vt.advance_by(timedelta(hours=2))
    await restarted.start()
    await advance(vt, 1)
    await restarted.stop()
    regular = sorted(
        j.idempotency_key or ""
        for j in await service.find_jobs(key_prefix=trigger.key_prefix("report"))
        if not j.metadata.get("run_now")
    )
    assert regular == [
        "sched:report:2025-01-01T01:00:00Z",
        "sched:report:2025-01-01T02:00:00Z",
        "sched:report:2025-01-01T03:00:00Z",
    ]


async def test_run_now_of_a_paused_schedule_and_of_a_paused_trigger() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    service = JobService(MemoryJobQueue())
    trigger = hourly(vt, service)
    await trigger.start()
    trigger.pause_schedule("report")
    job = await trigger.run_now("report")
    assert job is not None and trigger.paused_schedules == ["report"]  # still paused
    trigger.pause()
    assert await trigger.run_now("report") is None  # held, like any run
    assert trigger.held == 1
    assert trigger.resume() == 1
    await settle()
    jobs = await service.find_jobs(key_prefix=trigger.key_prefix("report"))
    assert len(jobs) == 2 and all(j.metadata["run_now"] for j in jobs)
    await trigger.stop()


async def test_run_now_obeys_the_overlap_policy() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    service = JobService(MemoryJobQueue())
    trigger = ScheduleTrigger(
        job_creator=service,
        schedules=[ScheduleConfig(every=3600, job_type="sync", overlap="skip")],
        scheduler=vt,
    )
    await trigger.start()
    first = await trigger.run_now("sync")
    assert first is not None  # no previous run: created
    assert await trigger.run_now("sync") is None  # the first is still pending: skipped
    await service.cancel_job(first.id)
    again = await trigger.run_now("sync")
    assert again is not None and again.id != first.id
    await trigger.stop()
