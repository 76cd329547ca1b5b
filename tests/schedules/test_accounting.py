"""Schedule findings of "every event accounted for": no run dropped silently, jitter
recorded, no DST-gap window bound read silently, no foreign whitespace read as a
separator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from reactivex.scheduler import HistoricalScheduler
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import InvalidCronError, InvalidScheduleError
from portico_rx.schedule.cron_expression import parse_cron
from portico_rx.schedule.misfire import MisfirePolicy
from portico_rx.testing import RecordingJobCreator, advance

START = datetime(2025, 1, 1, tzinfo=UTC)


# -- runs older than misfire_grace_time are counted and logged ------------------------


async def test_runs_older_than_the_grace_time_after_downtime_are_counted_and_logged() -> None:
    vt = HistoricalScheduler(initial_clock=START + timedelta(minutes=30))
    service = prx.JobService(job_queue=MemoryJobQueue())
    schedules = [ScheduleConfig(cron="0 * * * *", job_type="sync")]
    first = ScheduleTrigger(job_creator=service, schedules=schedules, scheduler=vt)
    await first.start()
    await advance(vt, timedelta(hours=2), step=600)  # 01:00, 02:00
    await first.stop()
    vt.advance_to(START + timedelta(days=3, minutes=30))  # down for three days
    second = ScheduleTrigger(
        job_creator=service,
        schedules=schedules,
        scheduler=vt,
        misfire_grace_time=3 * 3600,
        coalesce="all",
    )
    with capture_logs() as logs:
        await second.start()
        await advance(vt, timedelta(minutes=1), step=60)
    details = second.get_health().details
    await second.stop()
    # missed: 03:00 on day 1 ... 00:00 on day 4 = 70 runs; the last 3 h (3 runs) are fresh
    assert details["per_schedule"]["sync"]["misfires_dropped"] == 67
    assert details["misfires_dropped"] == 67
    assert details["per_schedule"]["sync"]["caught_up"] == 3
    dropped = [entry for entry in logs if entry["event"] == "schedule_runs_dropped"]
    assert len(dropped) == 1
    assert dropped[0]["dropped"] == 67
    assert dropped[0]["log_level"] == "warning"
    assert dropped[0]["schedule"] == "sync"
    jobs = await service.list_jobs(limit=100)
    assert len(jobs) == 2 + 3


class StalledScheduler(HistoricalScheduler):
    """A virtual clock whose next timer fires ``stall`` late (a laptop that slept)."""

    def __init__(self, initial_clock: datetime, stall: timedelta) -> None:
        super().__init__(initial_clock=initial_clock)
        self.stall: timedelta | None = stall

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        if self.stall is not None and duetime:
            duetime, self.stall = self.to_timedelta(duetime) + self.stall, None
        return super().schedule_relative(duetime, action, state)


@pytest.mark.parametrize("coalesce", ["latest", "all", "skip"])
async def test_a_late_timer_counts_runs_older_than_the_grace_time(coalesce: str) -> None:
    vt = StalledScheduler(START + timedelta(seconds=30), stall=timedelta(minutes=9))
    trigger = ScheduleTrigger(
        job_creator=prx.JobService(job_queue=MemoryJobQueue()),
        schedules=[ScheduleConfig(cron="* * * * *", job_type="tick")],
        scheduler=vt,
        misfire_grace_time=150,
        coalesce=coalesce,  # type: ignore[arg-type]
    )
    with capture_logs() as logs:
        await trigger.start()
        await advance(vt, to=START + timedelta(minutes=10, seconds=30), step=30)
    stats = trigger.get_health().details["per_schedule"]["tick"]
    await trigger.stop()
    # the timer woke at 00:10 for 00:01 ... 00:10: 00:08-00:10 are within 150 s
    assert stats["misfires_dropped"] == 7
    kept = {"latest": 1, "all": 3, "skip": 0}[coalesce]
    assert stats["misfires_skipped"] == 3 - kept
    assert stats["fired"] == kept
    dropped = [entry for entry in logs if entry["event"] == "schedule_runs_dropped"]
    assert [entry["dropped"] for entry in dropped] == [7]


def test_a_source_with_no_grace_drops_nothing_and_counts_nothing() -> None:
    vt = StalledScheduler(START + timedelta(seconds=30), stall=timedelta(minutes=9))
    ticks: list[Any] = []
    with capture_logs() as logs:
        sources.cron(
            "* * * * *", misfire=MisfirePolicy(grace_time=None, coalesce="all"), scheduler=vt
        ).subscribe(ticks.append)
        vt.advance_to(START + timedelta(minutes=10, seconds=30))
    assert len(ticks) == 10
    assert not [entry for entry in logs if entry["event"] == "schedule_runs_dropped"]


# -- jitter: the real lateness and the jitter are recorded ------------------------------


async def test_jobs_delayed_by_jitter_record_their_lateness_and_the_jitter() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = ScheduleTrigger(
        job_creator=service,
        schedules=[ScheduleConfig(cron="0 * * * *", job_type="sync", jitter=600)],
        scheduler=vt,
        seed=3,
    )
    await trigger.start()
    await advance(vt, timedelta(hours=6), step=60)
    await trigger.stop()
    jobs = await service.list_jobs(limit=100)
    assert len(jobs) == 6
    for job in jobs:
        scheduled = datetime.fromisoformat(job.metadata["scheduled_at"])
        jitter = job.metadata["jitter_s"]
        assert 0 <= jitter <= 600
        assert job.metadata["lateness_s"] == jitter  # virtual time: the timer is exact
        seen = datetime.fromisoformat(job.metadata["seen_at"])
        assert seen == scheduled + timedelta(seconds=jitter)
    assert any(job.metadata["lateness_s"] > 0 for job in jobs)


async def test_jobs_without_jitter_have_no_jitter_field() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = ScheduleTrigger(
        job_creator=service,
        schedules=[ScheduleConfig(cron="0 * * * *", job_type="sync")],
        scheduler=vt,
    )
    await trigger.start()
    await advance(vt, timedelta(hours=2), step=600)
    await trigger.stop()
    jobs = await service.list_jobs(limit=100)
    assert [job.metadata["lateness_s"] for job in jobs] == [0.0, 0.0, 0.0]
    assert all("jitter_s" not in job.metadata for job in jobs)


# -- a naive start/end inside a DST gap is an error --------------------------------------

GAP = datetime(2025, 3, 30, 2, 30)  # Europe/Berlin jumps 02:00 -> 03:00 that night


@pytest.mark.parametrize("argument", ["start", "end"])
def test_a_naive_window_bound_inside_a_dst_gap_is_rejected(argument: str) -> None:
    other = {"start": GAP - timedelta(days=1)} if argument == "end" else {}
    with pytest.raises(InvalidScheduleError) as caught:
        ScheduleConfig(
            cron="30 2 * * *",
            job_type="nightly",
            tz="Europe/Berlin",
            **{argument: GAP, **other},
        )
    message = str(caught.value)
    assert f"{argument}=2025-03-30T02:30:00" in message
    assert "Europe/Berlin" in message
    assert "02:00 to 03:00" in message


def test_the_triggers_zone_applies_to_a_naive_bound_too() -> None:
    config = ScheduleConfig(cron="30 2 * * *", job_type="nightly", start=GAP)  # fine in UTC
    with pytest.raises(InvalidScheduleError, match="does not exist in Europe/Berlin"):
        ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=[config], tz="Europe/Berlin")


def test_sources_reject_a_gap_bound_and_accept_a_repeated_time() -> None:
    with pytest.raises(InvalidScheduleError, match="America/New_York"):
        sources.cron("0 * * * *", "America/New_York", start=datetime(2025, 3, 9, 2, 15))
    with pytest.raises(InvalidScheduleError, match="does not exist"):
        sources.at(datetime(2025, 3, 30, 2, 0), tz="Europe/Berlin")
    # 02:30 on 2025-10-26 happens twice: the first occurrence (CEST), as documented
    vt = HistoricalScheduler(initial_clock=datetime(2025, 10, 25, 20, tzinfo=UTC))
    ticks: list[Any] = []
    sources.cron(
        "*/30 * * * *",
        "Europe/Berlin",
        start=datetime(2025, 10, 26, 2, 30),
        scheduler=vt,
    ).subscribe(ticks.append)
    vt.advance_to(datetime(2025, 10, 26, 1, 1, tzinfo=UTC))
    first = ticks[0].scheduled_at
    assert first.astimezone(UTC) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert first.utcoffset() == timedelta(hours=2)


def test_an_aware_bound_is_taken_as_given() -> None:
    zone = ZoneInfo("Europe/Berlin")
    aware = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)  # 03:30 CEST
    config = ScheduleConfig(cron="*/30 * * * *", job_type="x", tz="Europe/Berlin", start=aware)
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=[config])
    nxt = trigger.upcoming(1, after=datetime(2025, 3, 29, tzinfo=UTC))["x"][0]
    assert nxt == aware.astimezone(zone)


# -- only ASCII spaces and tabs separate cron fields ------------------------------------


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u00a0", "U+00A0 (NO-BREAK SPACE)"),
        ("\u2003", "U+2003 (EM SPACE)"),
        ("\u3000", "U+3000 (IDEOGRAPHIC SPACE)"),
        ("\u0085", "U+0085 (NEXT LINE (NEL))"),
        ("\u2028", "U+2028 (LINE SEPARATOR)"),
    ],
)
def test_non_ascii_whitespace_does_not_separate_cron_fields(char: str, name: str) -> None:
    expression = f"0 9{char}* * *"
    with pytest.raises(InvalidCronError) as caught:
        parse_cron(expression)
    message = str(caught.value)
    assert name in message
    assert "character 4" in message
    assert "plain spaces" in message
    with pytest.raises(InvalidCronError, match=name.split(" ")[0].replace("+", r"\+")):
        ScheduleConfig(cron=expression, job_type="x")


def test_ascii_tabs_and_a_trailing_newline_still_separate_and_end_fields() -> None:
    assert parse_cron("0\t9 * *  *\n").hours == (9,)
    with pytest.raises(InvalidCronError, match="LINE FEED"):
        parse_cron("0 9\n* * *")
