"""Calendars: excluded dates, ranges, windows and holidays, in the schedule's zone,
honoured alike by the live timer, upcoming, preview, catch-up and backfill."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import InvalidScheduleError
from portico_rx.schedule.calendar import Dates, Holidays
from portico_rx.testing import RecordingJobCreator, advance

BERLIN = ZoneInfo("Europe/Berlin")


def fire_days(trigger: ScheduleTrigger, name: str, start: datetime, end: datetime) -> list[date]:
    frame = trigger.preview(start, end)
    rows = frame[frame["schedule"] == name]["scheduled_at"]
    config = next(c for c in trigger.schedules if c.schedule_name == name)
    return [t.tz_convert(config.tz or "UTC").date() for t in rows]


async def test_excluded_dates_and_ranges_have_no_runs_live_or_in_preview() -> None:
    config = ScheduleConfig(
        cron="0 9 * * *",
        job_type="report",
        tz="Europe/Berlin",
        exclude=[date(2025, 12, 25), (date(2025, 12, 29), date(2025, 12, 31))],
    )
    start = datetime(2025, 12, 24, tzinfo=UTC)
    vt = HistoricalScheduler(initial_clock=start)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = ScheduleTrigger(job_creator=service, schedules=[config], scheduler=vt)
    await trigger.start()
    await advance(vt, timedelta(days=10), step=3600)
    await trigger.stop()
    live = sorted(
        datetime.fromisoformat(j.metadata["scheduled_at"]).astimezone(BERLIN).date()
        for j in await service.list_jobs(limit=100)
    )
    expected = [date(2025, 12, d) for d in (24, 26, 27, 28)] + [date(2026, 1, d) for d in (1, 2)]
    assert live == expected
    assert fire_days(trigger, "report", start, start + timedelta(days=10)) == expected
    upcoming = trigger.upcoming(3, after=datetime(2025, 12, 28, 12, tzinfo=UTC))["report"]
    assert [t.date() for t in upcoming] == [date(2026, 1, d) for d in (1, 2, 3)]


def test_the_day_is_the_schedules_local_day_not_utc() -> None:
    # 00:30 in Tokyo on Jan 2nd is 15:30 UTC on Jan 1st: the Tokyo date decides
    config = ScheduleConfig(
        cron="30 0 * * *", job_type="tokyo", tz="Asia/Tokyo", exclude=[date(2025, 1, 2)]
    )
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=[config])
    got = fire_days(
        trigger, "tokyo", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 4, tzinfo=UTC)
    )
    assert got == [date(2025, 1, 3), date(2025, 1, 4)]


def test_a_maintenance_window_excludes_the_runs_inside_it() -> None:
    window = (datetime(2025, 3, 1, 2, 0), datetime(2025, 3, 1, 4, 0))  # naive: in the zone
    config = ScheduleConfig(
        cron="*/30 * * * *", job_type="poll", tz="Europe/Berlin", exclude=[window]
    )
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=[config])
    frame = trigger.preview(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 4, tzinfo=UTC))
    local = [t.tz_convert(BERLIN).strftime("%H:%M") for t in frame["scheduled_at"]]
    assert local == ["01:00", "01:30", "04:00", "04:30"]


async def test_holidays_in_the_schedules_region_are_skipped_and_backfill_agrees() -> None:
    bavaria = Holidays("DE", subdiv="BY")
    config = ScheduleConfig(
        cron="0 8 * * MON-FRI", job_type="standup", tz="Europe/Berlin", calendar=bavaria
    )
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 10, tzinfo=UTC))
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = ScheduleTrigger(job_creator=service, schedules=[config], scheduler=vt)
    await trigger.start()
    report = await trigger.backfill(
        "standup", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 9, tzinfo=UTC)
    )
    await trigger.stop()
    days = [run.scheduled_at.astimezone(BERLIN).date() for run in report.runs]
    # Jan 1st (New Year) and Jan 6th (Epiphany, a Bavarian holiday) are skipped
    assert days == [date(2025, 1, d) for d in (2, 3, 7, 8)]
    assert bavaria.name(date(2025, 1, 6)) == "Epiphany"
    berlin = Holidays("DE", subdiv="BE")
    assert not berlin.excludes(date(2025, 1, 6))  # not a holiday in Berlin


async def test_catch_up_after_downtime_skips_excluded_days() -> None:
    config = ScheduleConfig(cron="0 9 * * *", job_type="daily", exclude=[date(2025, 1, 3)])
    vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, 8, tzinfo=UTC))
    service = prx.JobService(job_queue=MemoryJobQueue())
    first = ScheduleTrigger(job_creator=service, schedules=[config], scheduler=vt)
    await first.start()
    await advance(vt, timedelta(hours=2), step=600)  # Jan 1st 09:00
    await first.stop()
    vt.advance_to(datetime(2025, 1, 4, 12, tzinfo=UTC))
    second = ScheduleTrigger(
        job_creator=service,
        schedules=[config],
        scheduler=vt,
        coalesce="all",
        misfire_grace_time=None,
    )
    await second.start()
    await advance(vt, timedelta(minutes=1))
    await second.stop()
    days = sorted(j.metadata["scheduled_at"][:10] for j in await service.list_jobs(limit=10))
    assert days == ["2025-01-01", "2025-01-02", "2025-01-04"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.dates(date(2025, 1, 1), date(2025, 3, 31)), max_size=12),
    st.sampled_from(["0 9 * * *", "*/20 * * * *", "0 0 * * MON", "15 2 L * *"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Pacific/Chatham"]),
)
def test_a_calendar_removes_exactly_its_days_from_the_plan(
    excluded: list[date], expression: str, zone: str
) -> None:
    """Against the plain schedule filtered by hand: the same runs minus the excluded
    local days."""
    plain = ScheduleConfig(cron=expression, job_type="x", name="plain", tz=zone)
    calendared = ScheduleConfig(
        cron=expression, job_type="x", name="cal", tz=zone, calendar=Dates(excluded)
    )
    trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=[plain, calendared])
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    frame = trigger.preview(start, end)
    tz = ZoneInfo(zone)
    everything = list(frame[frame["schedule"] == "plain"]["scheduled_at"])
    kept = list(frame[frame["schedule"] == "cal"]["scheduled_at"])
    assert kept == [t for t in everything if t.tz_convert(tz).date() not in set(excluded)]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"exclude": ["2025-12-25"]}, ["exclude item '2025-12-25'", "date(2025, 12, 25)"]),
        ({"exclude": [(date(2025, 2, 1), date(2025, 1, 1))]}, ["ends before it starts"]),
        ({"calendar": {"2025-12-25"}}, ["calendar=", "excludes(day)"]),
        (
            {
                "exclude": [(datetime(2025, 3, 30, 2, 30), datetime(2025, 3, 30, 4))],
                "tz": "Europe/Berlin",
            },
            ["does not exist"],
        ),
    ],
)
def test_bad_calendars_are_clear_errors(options: dict[str, object], words: list[str]) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        ScheduleConfig(cron="0 9 * * *", job_type="x", **options)  # type: ignore[arg-type]
    for word in words:
        assert word in str(caught.value)
    with pytest.raises(InvalidScheduleError, match="ISO 3166"):
        Holidays("XX")
    assert holidays.__version__
