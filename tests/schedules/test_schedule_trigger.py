"""ScheduleTrigger as in the spec: jobs on schedule, keys, restarts, control, previews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler
from schedule_oracle import oracle_fires

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import (
    ConfigurationError,
    InvalidCronError,
    InvalidJobError,
    InvalidScheduleError,
    TriggerNotRunningError,
)
from portico_rx.models import JobStatus
from portico_rx.schedule.cron_expression import parse_cron
from portico_rx.schedule.preview import PREVIEW_COLUMNS, preview_pipeline
from portico_rx.testing import RecordingJobCreator, advance, settle

START = datetime(2025, 1, 4, 23, 30, tzinfo=UTC)  # a Saturday evening


def spec_schedules() -> list[ScheduleConfig]:
    """The spec's pattern 2, verbatim."""
    return [
        # Daily report at 9 AM
        ScheduleConfig(
            cron="0 9 * * *",
            job_type="report.daily",
            payload={"report_type": "daily_summary"},
            queue_name="reports",
            priority=5,
        ),
        # Cleanup every hour
        ScheduleConfig(
            cron="0 * * * *",
            job_type="cleanup.temp_files",
            payload={"max_age_hours": 24},
            queue_name="maintenance",
            priority=1,
        ),
        # Weekly backup on Sundays at 2 AM
        ScheduleConfig(
            cron="0 2 * * 0",
            job_type="backup.full",
            payload={"backup_type": "weekly"},
            queue_name="backups",
            priority=10,
        ),
    ]


async def test_spec_pattern_two_creates_the_scheduled_jobs() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    job_service = prx.JobService(job_queue=MemoryJobQueue())
    schedule_trigger = ScheduleTrigger(
        job_creator=job_service, schedules=spec_schedules(), scheduler=vt
    )
    await schedule_trigger.start()
    assert schedule_trigger.is_running
    await advance(vt, timedelta(hours=24), step=900)
    await schedule_trigger.stop()
    jobs = await job_service.list_jobs(limit=100)
    by_type: dict[str, list[Any]] = {}
    for job in jobs:
        by_type.setdefault(job.job_type, []).append(job)
    assert len(by_type["cleanup.temp_files"]) == 24
    assert len(by_type["report.daily"]) == 1
    assert len(by_type["backup.full"]) == 1
    backup = by_type["backup.full"][0]
    assert (backup.queue_name, backup.priority, backup.payload) == (
        "backups",
        10,
        {"backup_type": "weekly"},
    )
    assert backup.idempotency_key == "schedules:backup.full:2025-01-05T02:00:00Z"
    assert backup.metadata["scheduled_at"] == "2025-01-05T02:00:00+00:00"
    assert backup.metadata["lateness_s"] == 0.0
    report = by_type["report.daily"][0]
    assert (report.queue_name, report.priority) == ("reports", 5)
    assert {j.queue_name for j in by_type["cleanup.temp_files"]} == {"maintenance"}
    assert all(j.status is JobStatus.PENDING for j in jobs)


async def test_faq_prevent_duplicates_holds_by_construction_across_replicas() -> None:
    """Two replicas of one trigger against one store: every tick creates one job."""
    vt = HistoricalScheduler(initial_clock=START)
    service = prx.JobService(job_queue=MemoryJobQueue())
    replicas = [
        ScheduleTrigger(job_creator=service, schedules=spec_schedules(), scheduler=vt)
        for _ in range(3)
    ]
    for replica in replicas:
        await replica.start()
    await advance(vt, timedelta(hours=6), step=900)
    for replica in replicas:
        await replica.stop()
    jobs = await service.list_jobs(limit=100)
    keys = [j.idempotency_key for j in jobs]
    assert len(keys) == len(set(keys)) == 6 + 1  # hourly 00:00..05:00 + the backup
    # each tick is created by one replica and found existing (a duplicate) by the others
    assert sum(r.get_health().jobs_created_count for r in replicas) == 7
    assert sum(r.get_health().duplicates_count for r in replicas) == 2 * 7


def test_faq_priorities_are_kept() -> None:
    schedules = [
        ScheduleConfig(cron="*/5 * * * *", job_type="health.check", payload={}, priority=1),
        ScheduleConfig(cron="0 9 * * *", job_type="report.daily", payload={}, priority=10),
    ]
    frame = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=schedules).preview(
        datetime(2025, 1, 1, 8, 55, tzinfo=UTC), datetime(2025, 1, 1, 9, 1, tzinfo=UTC)
    )
    assert list(zip(frame["job_type"], frame["priority"], strict=True)) == [
        ("health.check", 1),
        ("health.check", 1),
        ("report.daily", 10),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"cron": "0 9 * *", "job_type": "a"}, InvalidCronError, ["'0 9 * *'", "4 fields"]),
        ({"cron": "0 9 * * xyz", "job_type": "a"}, InvalidCronError, ["day-of-week", "xyz"]),
        (
            {"cron": "0 9 * * *", "job_type": "a", "tz": "Europe/Nowhere"},
            InvalidScheduleError,
            ["Europe/Nowhere"],
        ),
        (
            {
                "cron": "0 9 * * *",
                "job_type": "a",
                "start": datetime(2025, 2, 1, tzinfo=UTC),
                "end": datetime(2025, 1, 1, tzinfo=UTC),
            },
            InvalidScheduleError,
            ["end=", "not after"],
        ),
        ({"cron": "0 9 * * *", "job_type": "a", "jitter": -5}, InvalidScheduleError, ["jitter=-5"]),
        ({"job_type": "a"}, InvalidScheduleError, ["exactly one of cron=, every= or at="]),
        (
            {"cron": "0 9 * * *", "every": 60, "job_type": "a"},
            InvalidScheduleError,
            ["cron and every"],
        ),
        ({"cron": "0 9 * * *", "job_type": "bad type!"}, InvalidJobError, ["job_type"]),
        ({"cron": "0 9 * * *", "job_type": "a", "priority": 1000}, InvalidJobError, ["priority"]),
        ({"cron": "0 9 * * *", "job_type": "a", "colour": "red"}, ValueError, ["colour"]),
    ],
)
def test_schedule_config_validates_at_construction(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        ScheduleConfig(**kwargs)
    for word in words:
        assert word in str(caught.value)


def test_trigger_rejects_duplicate_names_and_bad_misfire_settings() -> None:
    creator = RecordingJobCreator()
    twice = [
        ScheduleConfig(cron="0 9 * * *", job_type="a"),
        ScheduleConfig(cron="0 10 * * *", job_type="a"),
    ]
    with pytest.raises(ConfigurationError, match="two schedules are named 'a'"):
        ScheduleTrigger(job_creator=creator, schedules=twice)
    named = [twice[0], ScheduleConfig(cron="0 10 * * *", job_type="a", name="a-late")]
    assert len(ScheduleTrigger(job_creator=creator, schedules=named).schedules) == 2
    with pytest.raises(InvalidScheduleError, match="coalesce='sometimes'"):
        ScheduleTrigger(job_creator=creator, coalesce="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidScheduleError, match="misfire_grace_time=-1"):
        ScheduleTrigger(job_creator=creator, misfire_grace_time=-1)
    with pytest.raises(InvalidScheduleError, match="tz='Nowhere'"):
        ScheduleTrigger(job_creator=creator, tz="Nowhere")


def test_effective_misfire_values_show_in_repr_and_health() -> None:
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=spec_schedules())
    text = repr(trigger)
    for part in [
        "misfire_grace_time=86400.0",
        "coalesce='latest'",
        "max_catchup=100",
        "schedules=3",
    ]:
        assert part in text
    details = trigger.get_health().details
    assert (details["misfire_grace_time"], details["coalesce"], details["max_catchup"]) == (
        86400.0,
        "latest",
        100,
    )
    custom = ScheduleTrigger(
        job_creator=RecordingJobCreator(), misfire_grace_time=None, coalesce="all", max_catchup=5
    )
    assert "misfire_grace_time=None, coalesce='all', max_catchup=5" in repr(custom)


# -- restart after downtime ---------------------------------------------------------


async def run_then_restart(coalesce: str, **options: Any) -> tuple[list[str], list[Any]]:
    """Run an hourly schedule 00:30-03:30, stop, come back at 09:30 with a *new* trigger
    (a new process) on the same store; return the keys created after the restart."""
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, 0, 30, tzinfo=UTC))
    service = prx.JobService(job_queue=MemoryJobQueue())
    schedules = [ScheduleConfig(cron="0 * * * *", job_type="sync")]
    first = ScheduleTrigger(
        job_creator=service, schedules=schedules, scheduler=vt, coalesce=coalesce, **options
    )
    await first.start()
    await advance(vt, timedelta(hours=3), step=600)
    await first.stop()
    before = {j.idempotency_key for j in await service.list_jobs(limit=1000)}
    assert len(before) == 3  # 01:00, 02:00, 03:00
    vt.advance_to(datetime(2025, 1, 1, 9, 30, tzinfo=UTC))
    second = ScheduleTrigger(
        job_creator=service, schedules=schedules, scheduler=vt, coalesce=coalesce, **options
    )
    await second.start()
    await advance(vt, timedelta(minutes=40), step=600)
    await second.stop()
    after = await service.list_jobs(limit=1000)
    new = sorted(j.idempotency_key for j in after if j.idempotency_key not in before)
    return [k.removeprefix("schedules:sync:2025-01-01T")[:5] for k in new], [
        j for j in after if j.idempotency_key not in before
    ]


@pytest.mark.parametrize(
    ("coalesce", "options", "expected"),
    [
        ("latest", {}, ["09:00", "10:00"]),
        ("earliest", {}, ["04:00", "10:00"]),
        ("all", {}, ["04:00", "05:00", "06:00", "07:00", "08:00", "09:00", "10:00"]),
        ("all", {"max_catchup": 2}, ["08:00", "09:00", "10:00"]),
        ("all", {"misfire_grace_time": 3 * 3600}, ["07:00", "08:00", "09:00", "10:00"]),
        ("skip", {}, ["10:00"]),
        ("latest", {"misfire_grace_time": 60}, ["10:00"]),
    ],
    ids=["latest", "earliest", "all", "all-max2", "all-grace3h", "skip", "latest-grace60s"],
)
async def test_restart_after_downtime_applies_the_coalesce_policy(
    coalesce: str, options: dict[str, Any], expected: list[str]
) -> None:
    times, jobs = await run_then_restart(coalesce, **options)
    assert times == expected
    caught_up = [j for j in jobs if j.metadata["catch_up"]]
    assert len(caught_up) == len(expected) - 1
    for job in caught_up:
        assert job.metadata["lateness_s"] >= 1800  # missed by at least half an hour


# -- control ------------------------------------------------------------------------


async def test_pause_schedule_resume_schedule_add_remove_while_running() -> None:
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    creator = RecordingJobCreator()
    trigger = ScheduleTrigger(
        job_creator=creator,
        schedules=[
            ScheduleConfig(cron="*/10 * * * *", job_type="a"),
            ScheduleConfig(cron="*/10 * * * *", job_type="b"),
        ],
        scheduler=vt,
    )
    await trigger.start()
    await advance(vt, timedelta(minutes=5), step=60)  # a, b at 00:00
    trigger.pause_schedule("a")
    trigger.pause_schedule("a")  # twice is once
    assert trigger.paused_schedules == ["a"] and not trigger.paused
    await advance(vt, timedelta(minutes=10), step=60)  # b at 00:10
    assert trigger.resume_schedule("a") is True
    assert trigger.resume_schedule("a") is False  # it fires already
    trigger.add_schedule(ScheduleConfig(every=300, job_type="c"))
    await advance(
        vt, timedelta(minutes=10), step=60
    )  # 00:15..00:25: a,b 00:20; c 00:15,00:20,00:25
    trigger.remove_schedule("b")
    for name in ("a", "c"):
        trigger.pause_schedule(name)
    assert trigger.paused_schedules == ["a", "c"] and not trigger.paused
    assert trigger.get_health().details["paused_schedules"] == ["a", "c"]
    await advance(vt, timedelta(minutes=20), step=60)  # nothing, and nothing held
    assert trigger.held == 0
    assert [trigger.resume_schedule(name) for name in ("a", "c")] == [True, True]
    await advance(
        vt, timedelta(minutes=10), step=60
    )  # a 00:50; c 00:45 (resumed at 00:45), 00:50, 00:55
    await trigger.stop()
    got = sorted((j.job_type, j.metadata["scheduled_at"][11:16]) for j in creator.jobs)
    assert got == sorted(
        [
            ("a", "00:00"), ("b", "00:00"), ("b", "00:10"),
            ("a", "00:20"), ("b", "00:20"), ("c", "00:15"), ("c", "00:20"), ("c", "00:25"),
            ("a", "00:50"), ("c", "00:45"), ("c", "00:50"), ("c", "00:55"),
        ]
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="schedule='zzz' is not in trigger"):
        trigger.pause_schedule("zzz")
    with pytest.raises(ConfigurationError, match="schedule='zzz' is not in trigger"):
        trigger.resume_schedule("zzz")
    with pytest.raises(ConfigurationError, match="two schedules are named 'a'"):
        trigger.add_schedule(ScheduleConfig(cron="0 * * * *", job_type="a"))


async def test_a_schedule_paused_before_start_starts_paused() -> None:
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    creator = RecordingJobCreator()
    trigger = ScheduleTrigger(
        job_creator=creator,
        schedules=[
            ScheduleConfig(cron="*/10 * * * *", job_type="a"),
            ScheduleConfig(cron="*/10 * * * *", job_type="b"),
        ],
        scheduler=vt,
    )
    trigger.pause_schedule("b")
    await trigger.start()
    await advance(vt, timedelta(minutes=25), step=60)
    await trigger.stop()
    assert [j.job_type for j in creator.jobs] == ["a", "a", "a"]


async def test_trigger_pause_holds_the_runs_and_resume_creates_them_in_order() -> None:
    """``pause()`` means what it means on every PipelineTrigger: runs keep firing, their
    job requests are held, and ``resume()`` creates them, each with its own key."""
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    creator = RecordingJobCreator()
    trigger = ScheduleTrigger(
        job_creator=creator,
        schedules=[ScheduleConfig(cron="*/10 * * * *", job_type="poll", payload={"n": 1})],
        scheduler=vt,
    )
    with pytest.raises(TriggerNotRunningError, match="start it"):
        trigger.pause()
    await trigger.start()
    await advance(vt, timedelta(minutes=5), step=60)  # 00:00
    trigger.pause()
    assert trigger.paused and trigger.paused_schedules == []
    await advance(vt, timedelta(minutes=30), step=60)  # 00:10, 00:20, 00:30 held
    assert len(creator.jobs) == 1
    assert trigger.held == 3 and trigger.get_health().details["held"] == 3
    assert trigger.resume() == 3
    await settle()
    assert not trigger.paused
    assert [j.idempotency_key for j in creator.jobs] == [
        f"schedules:poll:2025-01-01T00:{m}0:00Z" for m in range(4)
    ]
    assert all(j.payload == {"n": 1} for j in creator.jobs)
    trigger.pause()
    await advance(vt, timedelta(minutes=10), step=60)  # 00:40 held ...
    await trigger.stop()  # ... and created by stop
    assert creator.jobs[-1].idempotency_key == "schedules:poll:2025-01-01T00:40:00Z"
    assert trigger.get_health().jobs_created_count == 5


async def test_runs_take_the_same_path_as_a_users_cron_pipeline() -> None:
    """A ScheduleTrigger creates what a PipelineTrigger over ``sources.cron | to_job``
    creates for the same schedule: job fields, key and the run's provenance."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ours, theirs = RecordingJobCreator(), RecordingJobCreator()
    vt = HistoricalScheduler(initial_clock=start)
    schedule = ScheduleTrigger(
        job_creator=ours,
        schedules=[
            ScheduleConfig(
                cron="*/20 * * * *", job_type="sync", payload={"a": 1}, queue_name="q", priority=3
            )
        ],
        name="jobs",
        scheduler=vt,
    )
    pipeline = prx.PipelineTrigger(
        sources.cron("*/20 * * * *").pipe(
            prx.to_job("sync", payload={"a": 1}, queue_name="q", priority=3)
        ),
        theirs,
        name="jobs",
        scheduler=vt,
    )
    for trigger in (schedule, pipeline):
        await trigger.start()
    await advance(vt, timedelta(hours=1), step=60)
    for trigger in (schedule, pipeline):
        await trigger.stop()

    def seen(creator: RecordingJobCreator) -> list[tuple[Any, ...]]:
        return [
            (
                j.job_type,
                j.payload,
                j.queue_name,
                j.priority,
                j.idempotency_key,
                {k: j.metadata[k] for k in ("trigger", "source", "scheduled_at", "catch_up")},
            )
            for j in creator.jobs
        ]

    assert seen(ours) == seen(theirs)
    assert len(ours.jobs) == 4  # 00:00, 00:20, 00:40, 01:00
    assert ours.jobs[0].idempotency_key == "jobs:sync:2025-01-01T00:00:00Z"


def test_upcoming_lists_the_next_fire_times_per_schedule_in_their_zones() -> None:
    trigger = ScheduleTrigger(
        job_creator=RecordingJobCreator(),
        schedules=[
            ScheduleConfig(cron="0 9 * * MON-FRI", job_type="standup", tz="America/New_York"),
            ScheduleConfig(at=datetime(2025, 1, 2, tzinfo=UTC), job_type="once"),
        ],
    )
    got = trigger.upcoming(3, after=datetime(2025, 1, 3, 12, tzinfo=UTC))
    assert [t.isoformat() for t in got["standup"]] == [
        "2025-01-03T09:00:00-05:00",
        "2025-01-06T09:00:00-05:00",
        "2025-01-07T09:00:00-05:00",
    ]
    assert got["once"] == []


# -- preview ------------------------------------------------------------------------


async def test_preview_lists_what_a_live_run_creates_and_creates_nothing() -> None:
    start, end = datetime(2025, 3, 29, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)
    schedules = [
        ScheduleConfig(cron="30 2 * * *", job_type="nightly", tz="Europe/Berlin", payload={"n": 1}),
        ScheduleConfig(cron="0 */6 * * *", job_type="sync", queue_name="sync", priority=3),
        ScheduleConfig(every=3600 * 12, job_type="half-day"),
    ]
    creator = RecordingJobCreator()
    trigger = ScheduleTrigger(job_creator=creator, schedules=schedules, name="plan")
    frame = trigger.preview(start, end)
    assert creator.jobs == [] and creator.calls == []
    assert list(frame.columns) == PREVIEW_COLUMNS
    assert frame["scheduled_at"].is_monotonic_increasing
    nightly = frame[frame["schedule"] == "nightly"]
    assert [t.isoformat() for t in nightly["scheduled_at"]] == [
        t.isoformat()
        for t in oracle_fires(
            parse_cron("30 2 * * *"),
            trigger.schedules[0].tz and __import__("zoneinfo").ZoneInfo("Europe/Berlin"),
            start,
            end,
        )
    ]
    vt = HistoricalScheduler(initial_clock=start)
    live = ScheduleTrigger(job_creator=creator, schedules=schedules, name="plan", scheduler=vt)
    await live.start()
    await advance(vt, to=end - timedelta(microseconds=1), step=3600)
    await live.stop()
    created = sorted(
        (j.idempotency_key, j.job_type, j.queue_name, j.priority) for j in creator.jobs
    )
    previewed = sorted(
        zip(
            frame["idempotency_key"],
            frame["job_type"],
            frame["queue_name"],
            frame["priority"],
            strict=True,
        )
    )
    assert created == previewed
    assert len(created) == 4 + 16 + 8


def test_preview_of_a_year_of_100_hourly_schedules() -> None:
    schedules = [ScheduleConfig(cron=f"{i % 60} * * * *", job_type=f"job.{i}") for i in range(100)]
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=schedules)
    frame = trigger.preview(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert len(frame) == 876_000
    assert frame["idempotency_key"].iloc[0] == "schedules:job.0:2025-01-01T00:00:00Z"
    assert frame["scheduled_at"].is_monotonic_increasing


def test_preview_rejects_a_bad_window() -> None:
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=spec_schedules())
    with pytest.raises(InvalidScheduleError, match="not after"):
        trigger.preview(datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidScheduleError, match="timezone-aware"):
        trigger.preview(datetime(2025, 1, 1), datetime(2025, 2, 1))


def test_preview_pipeline_runs_any_cron_pipeline_in_virtual_time() -> None:
    pipeline = sources.cron("0 9 * * *", "Europe/Berlin").pipe(
        prx.to_job("report.daily", payload={"kind": "daily"}, queue_name="reports")
    )
    frame = preview_pipeline(
        pipeline, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 4, tzinfo=UTC), name="reports"
    )
    assert list(frame.columns) == PREVIEW_COLUMNS
    assert list(frame["idempotency_key"]) == [
        "reports:report.daily:2025-01-01T08:00:00Z",
        "reports:report.daily:2025-01-02T08:00:00Z",
        "reports:report.daily:2025-01-03T08:00:00Z",
    ]
    assert set(frame["queue_name"]) == {"reports"}


async def test_a_one_shot_already_past_at_start_is_a_missed_run() -> None:
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, 12, tzinfo=UTC))
    creator = RecordingJobCreator()
    trigger = ScheduleTrigger(
        job_creator=creator,
        schedules=[
            ScheduleConfig(at=datetime(2025, 1, 1, 11, tzinfo=UTC), job_type="recent"),
            ScheduleConfig(at=datetime(2024, 12, 1, tzinfo=UTC), job_type="ancient"),
            ScheduleConfig(at=datetime(2025, 1, 1, 13, tzinfo=UTC), job_type="later"),
        ],
        scheduler=vt,
    )
    await trigger.start()
    await advance(vt, timedelta(hours=2), step=600)
    await trigger.stop()
    assert [(j.job_type, j.metadata["catch_up"]) for j in creator.jobs] == [
        ("recent", True),
        ("later", False),
    ]
    await trigger.start()  # restarting does not create it again: its key is in the store
    await advance(vt, timedelta(minutes=1))
    await trigger.stop()
    assert len(creator.jobs) == 2


def test_each_runs_request_equals_one_built_and_validated_by_jobrequest() -> None:
    from portico_rx.models import JobRequest

    payload = {"report_type": "daily_summary", "nested": {"a": [1, 2]}}
    config = ScheduleConfig(
        cron="0 0 * * *", job_type="report.daily", payload=payload, queue_name="reports", priority=5
    )
    trigger = ScheduleTrigger(RecordingJobCreator(), [config], name="reports")
    vt = HistoricalScheduler(initial_clock=START)
    requests: list[JobRequest] = []
    trigger.pipeline.subscribe(requests.append, scheduler=vt)
    vt.advance_to(START + timedelta(days=2))
    expected = [
        JobRequest(
            job_type="report.daily",
            payload=payload,
            queue_name="reports",
            priority=5,
            metadata={},
            idempotency_key=f"reports:report.daily:2025-01-0{day}T00:00:00Z",
        )
        for day in (5, 6)
    ]
    assert [r.model_dump() for r in requests] == [e.model_dump() for e in expected]
    assert [r.model_fields_set for r in requests] == [e.model_fields_set for e in expected]
    # the runs do not share the caller's payload object
    assert all(r.payload is not payload for r in requests)
