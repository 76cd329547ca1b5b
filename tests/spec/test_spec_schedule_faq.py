"""The spec FAQ's ``_create_scheduled_job`` overrides, as the spec writes them.

"How do I prevent duplicate scheduled jobs?" and "How do I handle trigger failures?"
subclass the schedule trigger and override ``_create_scheduled_job(config)``. On our
``ScheduleTrigger`` the override is the sink's create step: it is called once per run,
and the sink counts, retries and dead-letters it (see tests/schedules/
test_schedule_override.py for the retry and dead-letter paths).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_DNS, uuid5

import structlog
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.models import JobStatus
from portico_rx.testing import RecordingJobCreator, advance, settle

logger = structlog.get_logger()

START = datetime(2025, 1, 4, 23, 30, tzinfo=UTC)


class DedupScheduleTrigger(ScheduleTrigger):
    async def _create_scheduled_job(self, config: ScheduleConfig):  # the spec: no return type
        # Option 1: Use deterministic job ID
        job_id = uuid5(NAMESPACE_DNS, f"{config.job_type}:{config.cron}")
        # Check if job already exists
        existing = await self.job_creator.get_job(job_id)
        if existing and existing.status in [JobStatus.PENDING, JobStatus.SCHEDULED]:
            logger.debug("scheduled_job_already_exists", job_id=str(job_id))
            return
        # Create job with deterministic ID
        await self.job_creator.create_job(
            job_type=config.job_type,
            payload={**config.payload, "scheduled_run": datetime.now().isoformat()},
            metadata={"idempotency_key": str(job_id)},
        )


async def test_faq_prevent_duplicates_override_runs_once_per_run_through_the_sink() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = DedupScheduleTrigger(
        job_creator=service,
        schedules=[
            ScheduleConfig(cron="*/5 * * * *", job_type="health.check", payload={}, priority=1)
        ],
        scheduler=vt,
    )
    await trigger.start()
    await advance(vt, timedelta(minutes=30), step=60)
    await trigger.stop()
    jobs = await service.list_jobs()
    assert len(jobs) == 1  # the FAQ's key is per (job type, cron): one job ever
    assert jobs[0].payload["scheduled_run"]
    assert jobs[0].idempotency_key == str(uuid5(NAMESPACE_DNS, "health.check:*/5 * * * *"))
    health = trigger.get_health()
    assert health.jobs_created_count == 7  # 23:30, 23:35 … 00:00: every run handled
    assert (health.errors_count, health.dead_lettered_count, health.in_flight) == (0, 0, 0)


class AlertService:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    async def send_alert(self, **alert: Any) -> None:
        self.alerts.append(alert)


class ResilientScheduleTrigger(ScheduleTrigger):
    def __init__(self, *args: Any, alert_service: AlertService, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alert_service = alert_service

    async def _create_scheduled_job(self, config: ScheduleConfig):  # the spec: no return type
        max_retries = 3
        for attempt in range(max_retries):
            try:
                job = await self.job_creator.create_job(
                    job_type=config.job_type, payload=config.payload
                )
                logger.info("scheduled_job_created", job_id=str(job.id), attempt=attempt + 1)
                return
            except Exception as e:
                logger.warning(
                    "scheduled_job_creation_failed",
                    job_type=config.job_type,
                    attempt=attempt + 1,
                    error=str(e),
                )
                if attempt < max_retries - 1:
                    await asyncio.sleep(2**attempt)  # Exponential backoff
                else:
                    # All retries exhausted, send alert
                    logger.error(
                        "scheduled_job_creation_failed_permanently",
                        job_type=config.job_type,
                        error=str(e),
                        exc_info=True,
                    )
                    await self.alert_service.send_alert(
                        level="error",
                        message=f"Failed to create scheduled job: {config.job_type}",
                        context={"error": str(e)},
                    )


async def test_faq_handle_failures_override_retries_in_its_own_loop() -> None:
    """The FAQ's own retry loop (1 s of real backoff here) runs inside the sink's call."""
    vt = HistoricalScheduler(initial_clock=START)
    creator = RecordingJobCreator(fail_first=1)
    alerts = AlertService()
    trigger = ResilientScheduleTrigger(
        creator,
        [ScheduleConfig(cron="0 0 * * *", job_type="report.daily", payload={"k": 1})],
        scheduler=vt,
        alert_service=alerts,
    )
    await trigger.start()
    await advance(vt, timedelta(hours=1), step=600)
    for _ in range(60):  # the override sleeps 1 s of wall time before its second try
        if creator.jobs:
            break
        await asyncio.sleep(0.05)
    await settle()
    await trigger.stop()
    assert [(j.job_type, j.payload) for j in creator.jobs] == [("report.daily", {"k": 1})]
    assert len(creator.calls) == 2 and alerts.alerts == []
    health = trigger.get_health()
    assert (health.jobs_created_count, health.retries_count, health.dead_lettered_count) == (
        1,
        0,
        0,
    )
