"""A subclass overriding ``_create_scheduled_job``: each run still goes through the sink.

The override replaces only the sink's create step: the sink's retry loop, dead letters,
health counters and graceful drain apply to it as to any job request.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from reactivex.scheduler import HistoricalScheduler
from structlog.testing import capture_logs

from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.models import Job
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.testing import RecordingJobCreator, advance, settle

MIDNIGHT = datetime(2025, 1, 1, tzinfo=UTC)


class CountingTrigger(ScheduleTrigger):
    """Fails its first ``fail`` calls (``fail=-1``: always), else creates the job with
    the run's schedule; records every call's schedule name."""

    def __init__(self, *args: Any, fail: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail = fail
        self.calls: list[str] = []

    async def _create_scheduled_job(self, config: ScheduleConfig) -> None:
        self.calls.append(config.schedule_name)
        if self.fail < 0 or len(self.calls) <= self.fail:
            raise ConnectionError(f"store down (call {len(self.calls)})")
        await self.job_creator.create_job(
            job_type=config.job_type, payload=config.payload, queue_name=config.queue_name
        )


def hourly(**options: Any) -> tuple[CountingTrigger, RecordingJobCreator, HistoricalScheduler]:
    vt = HistoricalScheduler(initial_clock=MIDNIGHT - timedelta(seconds=30))
    creator = RecordingJobCreator()
    schedules = [ScheduleConfig(cron="0 * * * *", job_type="sync", payload={"n": 1})]
    trigger = CountingTrigger(creator, schedules, scheduler=vt, **options)
    return trigger, creator, vt


async def test_an_override_that_fails_twice_is_retried_by_the_sink() -> None:
    trigger, creator, vt = hourly(
        fail=2, retry=RetryPolicy(max_attempts=5, initial_delay=1.0, jitter=0)
    )
    await trigger.start()
    with capture_logs() as logs:
        await advance(vt, timedelta(minutes=1), step=0.5)
    await trigger.stop()
    assert trigger.calls == ["sync"] * 3
    assert [(j.job_type, j.payload) for j in creator.jobs] == [("sync", {"n": 1})]
    retries = [e for e in logs if e["event"] == "job_creation_retry"]
    assert [(e["attempt"], e["delay_s"]) for e in retries] == [(1, 1.0), (2, 2.0)]
    assert "store down (call 1)" in retries[0]["error"]
    created = [e for e in logs if e["event"] == "job_created"]
    assert [(e["attempt"], e["job_type"], e["job_id"]) for e in created] == [(3, "sync", None)]
    health = trigger.get_health()
    assert (health.retries_count, health.jobs_created_count, health.dead_lettered_count) == (
        2,
        1,
        0,
    )
    assert list(trigger.dead_letters) == []


async def test_an_override_that_always_fails_is_dead_lettered_and_the_trigger_goes_on() -> None:
    alerts: list[tuple[str, str, dict[str, Any]]] = []
    trigger, creator, vt = hourly(
        fail=-1,
        retry=RetryPolicy(max_attempts=3, initial_delay=1.0, jitter=0),
        alert=lambda level, message, context: alerts.append((level, message, context)),
    )
    await trigger.start()
    await advance(vt, timedelta(hours=2, minutes=1), step=1)  # runs at 00:00, 01:00, 02:00
    assert trigger.is_running
    await trigger.stop()
    assert creator.jobs == []
    assert trigger.calls == ["sync"] * 9  # three runs, three attempts each
    letters = list(trigger.dead_letters)
    assert [(d.stage, d.attempts, d.error) for d in letters] == [
        ("create_job", 3, "ConnectionError: store down (call 3)"),
        ("create_job", 3, "ConnectionError: store down (call 6)"),
        ("create_job", 3, "ConnectionError: store down (call 9)"),
    ]
    assert [d.request.idempotency_key for d in letters if d.request] == [
        f"schedules:sync:2025-01-01T0{h}:00:00Z" for h in range(3)
    ]
    assert {d.source for d in letters} == {"cron:0 * * * *"}
    health = trigger.get_health()
    assert (health.dead_lettered_count, health.errors_count, health.jobs_created_count) == (
        3,
        3,
        0,
    )
    assert health.last_error == "ConnectionError: store down (call 9)"
    assert [(level, context["attempts"]) for level, _m, context in alerts] == [("error", 3)] * 3


async def test_stop_waits_for_an_override_in_flight_then_gives_up_at_stop_timeout() -> None:
    release = asyncio.Event()

    class Slow(ScheduleTrigger):
        async def _create_scheduled_job(self, config: ScheduleConfig) -> Job:
            await release.wait()
            return await self.job_creator.create_job(job_type=config.job_type, payload={})

    vt = HistoricalScheduler(initial_clock=MIDNIGHT - timedelta(seconds=30))
    creator = RecordingJobCreator()
    schedules = [ScheduleConfig(cron="0 * * * *", job_type="sync")]
    trigger = Slow(creator, schedules, scheduler=vt, stop_timeout=5)
    await trigger.start()
    await advance(vt, timedelta(minutes=1))
    assert trigger.get_health().in_flight == 1
    stopping = asyncio.ensure_future(trigger.stop())
    await settle()
    assert not stopping.done() and trigger.state.value == "stopping"
    release.set()
    await stopping
    assert [j.job_type for j in creator.jobs] == ["sync"]
    # a returned Job is the sink's: history and health show it
    assert [j.id for j in trigger.history()] == [creator.jobs[0].id]
    assert trigger.get_health().jobs_created_count == 1

    release.clear()
    impatient = Slow(creator, schedules, scheduler=vt, name="impatient", stop_timeout=0.05)
    vt.advance_to(MIDNIGHT + timedelta(minutes=59, seconds=30))
    await impatient.start()
    await advance(vt, timedelta(minutes=1))
    await impatient.stop()
    [letter] = impatient.dead_letters
    assert letter.stage == "stop" and letter.request is not None
    assert letter.request.idempotency_key == "impatient:sync:2025-01-01T01:00:00Z"
    assert impatient.get_health().jobs_created_count == 0


async def test_a_run_held_past_its_schedules_removal_is_dead_lettered_not_retried() -> None:
    trigger, creator, vt = hourly(retry=RetryPolicy(max_attempts=5, initial_delay=1.0))
    await trigger.start()
    trigger.pause()
    await advance(vt, timedelta(minutes=1))  # the 00:00 run is held
    trigger.remove_schedule("sync")
    assert trigger.resume() == 1
    await settle()
    await trigger.stop()
    assert trigger.calls == [] and creator.jobs == []
    [letter] = trigger.dead_letters
    assert (letter.stage, letter.attempts) == ("create_job", 1)
    assert "schedule='sync' was removed from trigger 'schedules'" in letter.error
    assert trigger.get_health().retries_count == 0
