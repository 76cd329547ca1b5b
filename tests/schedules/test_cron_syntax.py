"""The cron dialect users bring from croniter, cronsim, Quartz and Jenkins: ``L``, ``W``,
``LW``, ``#``, ``nL``, wrap-around ranges, hashed ``H`` and six fields read one way only.

Each is checked against the brute-force oracle (``schedule_oracle``: the definitions,
day by day and minute by minute, never the engine's code) with hypothesis, and against
croniter where the two dialects agree."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler
from schedule_oracle import day_matches, oracle_fires

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import InvalidCronError, InvalidScheduleError
from portico_rx.schedule.cron_expression import parse_cron
from portico_rx.schedule.dst import DstPolicy
from portico_rx.schedule.fire_times import FireTimes
from portico_rx.testing import advance

DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def fire_days(expression: str, start: date, days: int, **options: object) -> list[date]:
    fields = parse_cron(expression, **options)  # type: ignore[arg-type]
    times = FireTimes(fields, ZoneInfo("UTC"))
    low = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    return [datetime.fromtimestamp(t, UTC).date() for t in times.between(low, low + days * 86400)]


def oracle_days(expression: str, start: date, days: int) -> list[date]:
    fields = parse_cron(expression)
    span = (start + timedelta(days=n) for n in range(days))
    return [day for day in span if day_matches(fields, day)]


# -- strategies ---------------------------------------------------------------------

day_of_month_items = st.one_of(
    st.just("L"),
    st.integers(0, 30).map(lambda n: f"L-{n}"),
    st.integers(1, 31).map(lambda n: f"{n}W"),
    st.just("LW"),
    st.integers(1, 31).map(str),
    st.tuples(st.integers(1, 31), st.integers(1, 31)).map(lambda ab: f"{ab[0]}-{ab[1]}"),
)
day_of_week_items = st.one_of(
    st.tuples(st.integers(0, 7), st.integers(1, 5)).map(lambda dn: f"{dn[0]}#{dn[1]}"),
    st.tuples(st.sampled_from(DAYS), st.integers(1, 5)).map(lambda dn: f"{dn[0]}#{dn[1]}"),
    st.integers(0, 7).map(lambda d: f"{d}L"),
    st.sampled_from(DAYS).map(lambda d: f"{d}L"),
    st.tuples(st.sampled_from(DAYS), st.sampled_from(DAYS)).map("-".join),  # wraps too
    st.integers(0, 7).map(str),
)
months = st.one_of(
    st.just("*"),
    st.tuples(st.sampled_from(MONTHS), st.sampled_from(MONTHS)).map("-".join),
    st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4)).map(
        lambda abs_: f"{abs_[0]}-{abs_[1]}/{abs_[2]}"
    ),
)


def listed(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(items, min_size=1, max_size=3).map(",".join)


day_fields = st.one_of(
    st.tuples(listed(day_of_month_items), months, st.just("*")),
    st.tuples(st.just("*"), months, listed(day_of_week_items)),
    st.tuples(listed(day_of_month_items), months, listed(day_of_week_items)),
)


def parses(expression: str) -> bool:
    try:
        parse_cron(expression)
    except InvalidCronError as exc:
        assert "never fires" in str(exc), exc
        return False
    return True


# -- the oracle -----------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day_fields, st.dates(date(1990, 1, 1), date(2060, 1, 1)))
def test_month_relative_days_and_wrapping_ranges_equal_the_oracle(
    days: tuple[str, str, str], start: date
) -> None:
    expression = f"0 0 {days[0]} {days[1]} {days[2]}"
    if not parses(expression):
        return
    assert fire_days(expression, start, 800) == oracle_days(expression, start, 800), expression


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day_fields,
    st.sampled_from(["30 2", "*/20 1-3", "0 22-2", "15 0,23"]),
    st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
    st.dates(date(2000, 1, 1), date(2040, 1, 1)),
)
def test_month_items_with_times_in_a_zone_equal_the_minute_by_minute_oracle(
    days: tuple[str, str, str], time_fields: str, zone: str, start: date
) -> None:
    expression = f"{time_fields} {days[0]} {days[1]} {days[2]}"
    if not parses(expression):
        return
    fields = parse_cron(expression)
    low = datetime(start.year, start.month, start.day, tzinfo=UTC)
    high = low + timedelta(days=3)
    times = FireTimes(fields, ZoneInfo(zone), DstPolicy())
    fast = [
        datetime.fromtimestamp(t, UTC)
        for t in times.between(int(low.timestamp()), int(high.timestamp()))
    ]
    assert fast == oracle_fires(fields, ZoneInfo(zone), low, high), expression


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day_fields, st.dates(date(2020, 1, 1), date(2030, 1, 1)))
def test_the_live_timer_fires_the_oracles_days(days: tuple[str, str, str], start: date) -> None:
    expression = f"0 12 {days[0]} {days[1]} {days[2]}"
    if not parses(expression):
        return
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    vt = HistoricalScheduler(initial_clock=begin)
    ticks: list[object] = []
    sources.cron(expression, scheduler=vt).subscribe(ticks.append)
    vt.advance_to(begin + timedelta(days=400))
    got = [t.scheduled_at.date() for t in ticks]  # type: ignore[attr-defined]
    assert got == oracle_days(expression, start, 400)


# -- croniter, where the dialects agree ------------------------------------------------


def croniter_days(expression: str, start: date, until: date) -> list[date]:
    it = croniter(expression, datetime(start.year, start.month, start.day) - timedelta(seconds=1))
    found = []
    while True:
        moment = it.get_next(datetime)
        if moment.date() >= until:
            return found
        found.append(moment.date())


# croniter has no L-n or LW, moves 31W to a 30-day month's last day (we skip that month),
# allows W only alone, and reads a one-value range (JAN-JAN) as * (we: the one value)
agreed_dow = st.one_of(
    st.tuples(st.integers(0, 6), st.integers(1, 5)).map(lambda dn: f"{dn[0]}#{dn[1]}"),
    st.integers(0, 6).map(lambda d: f"{d}L"),  # croniter writes L5 for our 5L
    st.tuples(st.sampled_from(DAYS), st.sampled_from(DAYS)).map("-".join),
)


def croniter_form(field: str) -> str:
    return ",".join(f"L{item[0]}" if item[-1:] == "L" else item for item in field.split(","))


def _not_one_value(month: str) -> bool:
    """croniter reads a one-value range (JAN-JAN) as *, and drops the part of a stepped
    month range after the wrap (4-2/2: 4..12 only; for hours it carries on: 22-2/2)."""
    bounds = month.split("/")[0].split("-")
    if len(bounds) == 1:
        return True
    low, high = (MONTHS.index(b) + 1 if b in MONTHS else int(b) for b in bounds)
    return low != high and ("/" not in month or low < high)


agreed_months = months.filter(_not_one_value)
agreed_dow_field = st.one_of(  # croniter: no mixing of d#k / Ld with plain days
    st.tuples(st.sampled_from(DAYS), st.sampled_from(DAYS))
    .filter(lambda ab: ab[0] != ab[1])
    .map("-".join),
    listed(agreed_dow).filter(lambda field: "-" not in field),
)
agreed_dom_field = st.one_of(
    st.integers(1, 28).map(lambda n: f"{n}W"),  # croniter: W only alone
    listed(st.one_of(st.just("L"), st.integers(1, 31).map(str))),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.tuples(agreed_dom_field, agreed_months, st.just("*")),
        st.tuples(st.just("*"), agreed_months, agreed_dow_field),
    ),
    st.dates(date(2000, 1, 1), date(2040, 1, 1)),
)
def test_day_items_agree_with_croniter(days: tuple[str, str, str], start: date) -> None:
    ours = f"0 0 {days[0]} {days[1]} {days[2]}"
    if not parses(ours):
        return
    theirs = f"0 0 {days[0]} {days[1]} {croniter_form(days[2])}"
    until = start + timedelta(days=800)
    assert fire_days(ours, start, 800) == croniter_days(theirs, start, until), ours


@pytest.mark.parametrize(
    "expression",
    ["0 22-2 * * *", "50-10/5 1 * * *", "0 0 25-5 * *", "0 0 * NOV-FEB *", "0 0 * * FRI-MON"],
)
def test_wrap_around_ranges_agree_with_croniter(expression: str) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    times = FireTimes(parse_cron(expression), ZoneInfo("UTC"))
    ours = times.between(int(start.timestamp()), int(start.timestamp()) + 400 * 86400)
    it = croniter(expression, start - timedelta(seconds=1))
    assert ours == [int(it.get_next(float)) for _ in ours]


def test_named_examples() -> None:
    jan = date(2025, 1, 1)
    assert fire_days("0 0 L * *", jan, 90) == [
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
    ]
    assert fire_days("0 0 L-2 2 *", jan, 365 * 4)[-1] == date(2028, 2, 27)
    # 2025-02-01 is a Saturday: 1W is Monday the 3rd; 2025-11-30 is a Sunday, the last day
    assert fire_days("0 0 1W 2 *", jan, 365)[0] == date(2025, 2, 3)
    assert fire_days("0 0 30W 11 *", jan, 365)[0] == date(2025, 11, 28)
    assert fire_days("0 0 LW 8 *", jan, 365)[0] == date(2025, 8, 29)  # Aug 31 is a Sunday
    assert fire_days("0 0 * * FRI#2", jan, 60) == [date(2025, 1, 10), date(2025, 2, 14)]
    assert fire_days("0 0 * * 5L", jan, 60) == [date(2025, 1, 31), date(2025, 2, 28)]
    assert fire_days("0 0 * * 1#5", jan, 120) == [date(2025, 3, 31)]
    assert [d.isoweekday() for d in fire_days("0 0 * * SAT-MON", jan, 7)] == [6, 7, 1]
    assert {d.month for d in fire_days("0 0 1 NOV-FEB *", jan, 365)} == {1, 2, 11, 12}


# -- H: hashed values, stable per schedule name ----------------------------------------


def minutes_of(expression: str, name: str) -> tuple[int, ...]:
    return parse_cron(expression, hash_key=name).minutes


def test_h_is_stable_per_name_pinned_and_the_same_in_another_process() -> None:
    assert minutes_of("H * * * *", "report.daily") == minutes_of("H * * * *", "report.daily")
    pinned = parse_cron("H H H * H", hash_key="report.daily")
    # pinned: a new version must not move every user's hashed schedule
    assert (pinned.minutes, pinned.hours, pinned.days, pinned.weekdays) == (
        (14,),
        (4,),
        (6,),
        (1,),
    )
    code = (
        "from portico_rx.schedule.cron_expression import parse_cron\n"
        "c = parse_cron('H/15 H(0-5) * * *', hash_key='report.daily')\n"
        "print(c.minutes, c.hours)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    here = parse_cron("H/15 H(0-5) * * *", hash_key="report.daily")
    assert other.stdout.strip() == f"{here.minutes} {here.hours}"


@given(st.text(min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_h_forms_keep_to_their_ranges(name: str) -> None:
    step = parse_cron("H/15 * * * *", hash_key=name).minutes
    assert len(step) == 4 and step[0] < 15 and all(b - a == 15 for a, b in itertools.pairwise(step))
    (low,) = parse_cron("H(0-29) * * * *", hash_key=name).minutes
    assert 0 <= low <= 29
    ranged = parse_cron("H(10-39)/10 * * * *", hash_key=name).minutes
    assert len(ranged) == 3 and 10 <= ranged[0] < 20 and ranged[-1] <= 39
    (day,) = parse_cron("0 0 H * *", hash_key=name).days
    assert 1 <= day <= 28  # every month has it
    (weekday,) = parse_cron("0 0 * * H", hash_key=name).weekdays
    assert 0 <= weekday <= 6


def test_h_spreads_many_schedules_over_the_hour() -> None:
    minutes = [minutes_of("H * * * *", f"tenant-{n}")[0] for n in range(600)]
    counts = [minutes.count(m) for m in range(60)]
    assert min(counts) >= 2 and max(counts) <= 25  # ~10 per minute, none empty


def test_h_agrees_with_croniter_on_the_shape() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    low = int(start.timestamp())
    for expression in ["H/15 * * * *", "H(0-29)/10 * * * *", "H 3 * * *"]:
        ours = FireTimes(parse_cron(expression, hash_key="x"), ZoneInfo("UTC"))
        got = ours.between(low, low + 2 * 86400)
        it = croniter(expression, start, hash_id=b"x")
        theirs = [int(it.get_next(float)) for _ in got]
        gaps = lambda xs: sorted({b - a for a, b in itertools.pairwise(xs)})  # noqa: E731
        assert len(got) == len(theirs) and gaps(got) == gaps(theirs)


async def test_a_schedule_config_draws_h_from_its_name_and_fires_there() -> None:
    configs = [
        ScheduleConfig(cron="H * * * *", job_type="sync", name=f"tenant-{n}") for n in range(5)
    ]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    vt = HistoricalScheduler(initial_clock=start)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = ScheduleTrigger(job_creator=service, schedules=configs, scheduler=vt)
    await trigger.start()
    await advance(vt, timedelta(hours=2), step=60)
    await trigger.stop()
    jobs = await service.list_jobs(limit=100)
    assert len(jobs) == 10
    for config in configs:
        minute = parse_cron("H * * * *", hash_key=config.schedule_name).minutes[0]
        keys = sorted(j.idempotency_key for j in jobs if j.metadata["schedule"] == config.name)
        assert keys == [f"schedules:{config.name}:2025-01-01T0{h}:{minute:02d}:00Z" for h in (0, 1)]


def test_h_without_a_name_is_a_clear_error() -> None:
    with pytest.raises(InvalidCronError, match="hash_key"):
        sources.cron("H * * * *")
    assert sources.cron("H * * * *", hash_key="nightly") is not None


# -- six fields: one reading, or an error naming both ------------------------------------


def test_an_ambiguous_six_field_expression_names_both_readings() -> None:
    with pytest.raises(InvalidCronError) as caught:
        parse_cron("* * * * * */15")
    message = str(caught.value)
    assert "seconds first (Quartz, Spring): second '*'" in message
    assert "day-of-week '*/15'" in message
    assert "seconds last (croniter): second '*/15'" in message
    assert "seconds='first' or seconds='last'" in message
    with pytest.raises(InvalidCronError, match="two ways"):
        ScheduleConfig(cron="*/10 * * * * *", job_type="x")


def test_explicit_seconds_last_reads_like_croniter_and_first_like_quartz() -> None:
    start = datetime(2025, 1, 4, 23, 59, tzinfo=UTC)  # a Saturday; Sunday follows
    low = int(start.timestamp())
    last = FireTimes(parse_cron("* * * * * */15", seconds="last"), ZoneInfo("UTC"))
    it = croniter("* * * * * */15", start - timedelta(seconds=1))
    got = last.between(low, low + 300)
    assert got == [int(it.get_next(float)) for _ in got] and len(got) == 20
    first = FireTimes(parse_cron("* * * * * */15", seconds="first"), ZoneInfo("UTC"))
    sunday = first.between(low, low + 300)
    assert sunday[0] == low + 60 and len(sunday) == 240  # every second, from Sunday 00:00


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("0 30 9 * * MON", (0,)), ("* * * * * *", tuple(range(60))), ("*/20 30 9 * * *", (0, 20, 40))],
)
def test_an_expression_one_reading_rejects_or_both_read_alike_needs_no_flag(
    expression: str, seconds: tuple[int, ...]
) -> None:
    assert parse_cron(expression).seconds == seconds


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["*/15", "0", "30", "5-10", "*/7", "59"]),
    st.sampled_from(["*", "*/5", "0", "10-20"]),
    st.sampled_from(["*", "1-3", "23"]),
)
def test_seconds_last_fire_times_equal_croniter(second: str, minute: str, hour: str) -> None:
    expression = f"{minute} {hour} * * * {second}"
    start = datetime(2025, 3, 1, tzinfo=UTC)
    low = int(start.timestamp())
    ours = FireTimes(parse_cron(expression, seconds="last"), ZoneInfo("UTC"))
    got = ours.between(low, low + 2 * 86400)[:300]
    it = croniter(expression, start - timedelta(seconds=1))
    assert got == [int(it.get_next(float)) for _ in got]


def test_seconds_is_checked() -> None:
    with pytest.raises(InvalidCronError, match="seconds='middle'"):
        parse_cron("* * * * * *", seconds="middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidScheduleError, match="six-field cron"):
        ScheduleConfig(every=5, seconds="first", job_type="x")
    assert ScheduleConfig(cron="*/10 * * * * *", seconds="first", job_type="x").parsed_cron
