"""Backfill: the runs of a past window, with their normal keys, through the trigger's own
pipeline (the sink: retries, dead letters, health); twice creates nothing new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import ConfigurationError, InvalidScheduleError, TriggerNotRunningError
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.testing import RecordingJobCreator, advance

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
WINDOW = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 8, tzinfo=UTC))


def hourly_and_daily() -> list[ScheduleConfig]:
    return [
        ScheduleConfig(
            cron="0 9 * * *", job_type="report.daily", payload={"kind": "d"}, priority=5
        ),
        ScheduleConfig(cron="0 * * * *", job_type="sync"),
    ]


async def started(creator: Any, **options: Any) -> tuple[ScheduleTrigger, HistoricalScheduler]:
    vt = HistoricalScheduler(initial_clock=NOW)
    trigger = ScheduleTrigger(
        job_creator=creator, schedules=hourly_and_daily(), scheduler=vt, **options
    )
    await trigger.start()
    return trigger, vt


async def test_a_backfill_creates_the_windows_runs_with_their_normal_keys() -> None:
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger, _ = await started(service)
    progress: list[tuple[int, int]] = []
    report = await trigger.backfill(
        "report.daily", *WINDOW, on_progress=lambda d, t: progress.append((d, t))
    )
    assert (len(report.runs), report.created, report.existing, report.failed) == (7, 7, 0, 0)
    assert progress == [(7, 7)]
    jobs = [j for j in await service.list_jobs(limit=100) if j.job_type == "report.daily"]
    assert sorted(j.idempotency_key for j in jobs) == [
        f"schedules:report.daily:2025-03-0{d}T09:00:00Z" for d in range(1, 8)
    ]
    for job in jobs:
        assert (job.payload, job.priority, job.queue_name) == ({"kind": "d"}, 5, "default")
        assert job.metadata["backfill"] is True
        assert job.metadata["schedule"] == "report.daily"
        assert job.metadata["lateness_s"] > 2 * 86400  # honest: created days late
    assert trigger.get_health().details["per_schedule"]["report.daily"]["fired"] == 0
    assert trigger.counters.jobs_created == 7  # counted by the sink, like every run
    await trigger.stop()


async def test_backfilling_twice_creates_nothing_new_and_the_preview_says_so() -> None:
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger, _ = await started(service)
    preview = await trigger.backfill("sync", *WINDOW, dry_run=True)
    assert (len(preview.runs), preview.count("planned"), preview.existing) == (168, 168, 0)
    assert await service.list_jobs(limit=10) == []  # the preview created nothing
    first = await trigger.backfill("sync", *WINDOW)
    again = await trigger.backfill("sync", WINDOW[0] - timedelta(days=1), WINDOW[1])
    assert (first.created, again.created, again.existing) == (168, 24, 168)
    keys = [j.idempotency_key for j in await service.list_jobs(limit=1000)]
    assert len(keys) == len(set(keys)) == 192
    later = await trigger.backfill("sync", *WINDOW, dry_run=True)
    assert (later.existing, later.count("planned")) == (168, 0)
    assert str(later).endswith("168 runs, 168 already in the store, would create 0")
    await trigger.stop()


async def test_a_live_run_and_a_backfill_of_its_time_make_one_job() -> None:
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger, vt = await started(service)
    await advance(vt, timedelta(hours=2), step=600)
    # live: 12:00 (at start), 13:00, 14:00
    report = await trigger.backfill("sync", NOW - timedelta(hours=2), NOW + timedelta(hours=2))
    assert [r.outcome for r in report.runs] == ["created", "created", "existing", "existing"]
    jobs = [j for j in await service.list_jobs(limit=100) if j.job_type == "sync"]
    assert len(jobs) == 5
    await trigger.stop()


async def test_backfilled_runs_are_retried_and_dead_lettered_by_the_sink() -> None:
    flaky = RecordingJobCreator(fail_first=2)
    trigger, vt = await started(flaky, retry=RetryPolicy(max_attempts=3, initial_delay=0.01))
    pending = prx_task(trigger.backfill("report.daily", *WINDOW))
    await advance(vt, timedelta(seconds=5), step=0.01)
    report = await pending
    assert report.created == 7
    assert len([j for j in flaky.jobs if j.job_type == "report.daily"]) == 7
    assert trigger.get_health().retries_count >= 2
    await trigger.stop()


def prx_task(coroutine: Any) -> Any:
    import asyncio

    return asyncio.ensure_future(coroutine)


async def test_a_paused_schedule_can_be_backfilled_and_the_schedules_window_bounds_it() -> None:
    service = prx.JobService(job_queue=MemoryJobQueue())
    vt = HistoricalScheduler(initial_clock=NOW)
    config = ScheduleConfig(
        cron="0 * * * *", job_type="sync", start=datetime(2025, 3, 7, 22, tzinfo=UTC)
    )
    trigger = ScheduleTrigger(job_creator=service, schedules=[config], scheduler=vt)
    trigger.pause_schedule("sync")
    await trigger.start()
    report = await trigger.backfill("sync", *WINDOW)
    assert [r.scheduled_at.hour for r in report.runs] == [22, 23]
    await trigger.stop()


async def test_bad_backfills_are_clear_errors() -> None:
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=hourly_and_daily())
    with pytest.raises(TriggerNotRunningError, match="dry_run=True"):
        await trigger.backfill("sync", *WINDOW)
    trigger, _ = await started(RecordingJobCreator())
    with pytest.raises(ConfigurationError, match="'nope' is not in trigger"):
        await trigger.backfill("nope", *WINDOW)
    with pytest.raises(InvalidScheduleError, match="is after now"):
        await trigger.backfill("sync", WINDOW[0], NOW + timedelta(hours=1))
    with pytest.raises(InvalidScheduleError, match="not after start"):
        await trigger.backfill("sync", WINDOW[1], WINDOW[0])
    with pytest.raises(ConfigurationError, match="max_runs=10"):
        await trigger.backfill("sync", *WINDOW, max_runs=10)
    await trigger.stop()
