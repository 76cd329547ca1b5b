"""Our cron dialect: crontab(5) semantics, clear errors, and croniter's measured bugs as
regression tests (one-value ranges, the day-of-month/day-of-week rule, DST doubles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from portico_rx.errors import InvalidCronError
from portico_rx.schedule.cron_expression import parse_cron
from portico_rx.schedule.dst import DstPolicy
from portico_rx.schedule.fire_times import FireTimes


def fires(
    expression: str, start: datetime, days: int, tz: str = "UTC", **policy: str
) -> list[datetime]:
    times = FireTimes(parse_cron(expression), ZoneInfo(tz), DstPolicy(**policy))
    low = int(start.timestamp())
    return [datetime.fromtimestamp(t, ZoneInfo(tz)) for t in times.between(low, low + days * 86400)]


JAN = datetime(2025, 1, 1, tzinfo=UTC)


# -- croniter bugs measured in the issue: each is a regression test -----------------------


def test_one_value_hour_range_fires_once_a_day_not_every_hour() -> None:
    got = fires("0 6-6 * * *", JAN, 3)
    assert [t.isoformat() for t in got] == [
        "2025-01-01T06:00:00+00:00",
        "2025-01-02T06:00:00+00:00",
        "2025-01-03T06:00:00+00:00",
    ]


def test_one_value_month_range_never_fires_in_february() -> None:
    got = fires("0 0 * 11-11 *", JAN, 365)
    assert {t.month for t in got} == {11}
    assert len(got) == 30


def test_one_value_weekday_range_fires_on_saturdays_only() -> None:
    got = fires("0 0 * * 6-6", JAN, 28)
    assert {t.weekday() for t in got} == {5}  # Python: Saturday = 5
    assert len(got) == 4


def test_star_step_day_of_month_is_unrestricted_so_both_must_match() -> None:
    """``0 0 */5 * 1``: fifth days that are Mondays (cronsim, Debian cron), not either."""
    got = fires("0 0 */5 * 1", JAN, 365)
    assert got
    assert [t.date().isoformat() for t in got] == [
        "2025-01-06",
        "2025-03-31",
        "2025-04-21",
        "2025-05-26",
        "2025-06-16",
        "2025-07-21",
        "2025-08-11",
        "2025-09-01",
        "2025-10-06",
        "2025-12-01",
    ]


def test_both_days_restricted_fire_on_either() -> None:
    got = fires("0 0 1,15 * 1", JAN, 31)
    days = [t.date().isoformat() for t in got]
    assert days == [
        "2025-01-01",
        "2025-01-06",
        "2025-01-13",
        "2025-01-15",
        "2025-01-20",
        "2025-01-27",
    ]


@pytest.mark.parametrize("expression", ["0 2 * * 0", "30 2 * * *"])
def test_fall_back_wall_time_runs_once_not_twice(expression: str) -> None:
    """croniter 7 returns 02:00/02:30 twice on 2025-10-26 in Europe/Berlin."""
    got = fires(expression, datetime(2025, 10, 25, tzinfo=UTC), 2, "Europe/Berlin")
    on_day = [t for t in got if t.date().isoformat() == "2025-10-26"]
    assert len(on_day) == 1
    assert on_day[0].utcoffset() == timedelta(hours=2)  # the first occurrence


def test_fall_back_with_both_runs_twice() -> None:
    got = fires(
        "30 2 * * *", datetime(2025, 10, 26, tzinfo=UTC), 1, "Europe/Berlin", ambiguous="both"
    )
    assert [t.isoformat() for t in got] == [
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:30:00+01:00",
    ]


def test_spring_forward_missing_time_runs_once_at_the_end_of_the_gap() -> None:
    got = fires("30 2 * * *", datetime(2025, 3, 29, tzinfo=UTC), 3, "Europe/Berlin")
    assert [t.isoformat() for t in got] == [
        "2025-03-29T02:30:00+01:00",
        "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:30:00+02:00",
    ]


def test_spring_forward_skip_policy_skips_the_day() -> None:
    got = fires(
        "30 2 * * *", datetime(2025, 3, 29, tzinfo=UTC), 3, "Europe/Berlin", nonexistent="skip"
    )
    assert [t.date().isoformat() for t in got] == ["2025-03-29", "2025-03-31"]


def test_hourly_across_both_changes_has_no_double_and_no_loop() -> None:
    spring = fires("0 * * * *", datetime(2025, 3, 29, 23, tzinfo=UTC), 1, "Europe/Berlin")
    assert len(spring) == 24 and len(set(spring)) == 24
    autumn = fires("0 * * * *", datetime(2025, 10, 25, 22, tzinfo=UTC), 1, "Europe/Berlin")
    assert len({t.astimezone(UTC) for t in autumn}) == len(autumn) == 23


def test_lord_howe_half_hour_gap_and_santiago_midnight_gap() -> None:
    howe = fires("15 2 * * *", datetime(2025, 10, 4, tzinfo=UTC), 2, "Australia/Lord_Howe")
    assert [t.isoformat() for t in howe] == [
        "2025-10-05T02:30:00+11:00",
        "2025-10-06T02:15:00+11:00",
    ]
    santiago = fires("0 0 * * *", datetime(2025, 9, 6, 12, tzinfo=UTC), 2, "America/Santiago")
    assert [t.isoformat() for t in santiago] == [
        "2025-09-07T01:00:00-03:00",
        "2025-09-08T00:00:00-03:00",
    ]


# -- the dialect ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "equivalent"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_aliases(alias: str, equivalent: str) -> None:
    a, b = parse_cron(alias), parse_cron(equivalent)
    assert (a.minutes, a.hours, a.days, a.months, a.weekdays) == (
        b.minutes,
        b.hours,
        b.days,
        b.months,
        b.weekdays,
    )


def test_names_steps_lists_and_sunday_seven() -> None:
    parsed = parse_cron("*/15 9-17/4 1,15 JAN-mar,Dec MON-FRI,7")
    assert parsed.minutes == (0, 15, 30, 45)
    assert parsed.hours == (9, 13, 17)
    assert parsed.days == (1, 15)
    assert parsed.months == (1, 2, 3, 12)
    assert parsed.weekdays == (0, 1, 2, 3, 4, 5)
    assert parse_cron("0 0 * * 5/1").weekdays == (0, 5, 6)  # 5-7, 7 folded into Sunday


def test_six_fields_put_seconds_first() -> None:
    parsed = parse_cron("*/20 30 9 * * *")
    assert parsed.has_seconds and parsed.seconds == (0, 20, 40)
    got = fires("*/20 30 9 * * *", JAN, 1)
    assert [t.strftime("%H:%M:%S") for t in got] == ["09:30:00", "09:30:20", "09:30:40"]


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * * *", ["4 fields", "use 5"]),
        ("* * * * * * *", ["7 fields"]),
        ("", ["0 fields"]),
        ("60 * * * *", ["minute value 60", "0-59"]),
        ("0 24 * * *", ["hour value 24", "0-23"]),
        ("0 0 0 * *", ["day-of-month value 0", "1-31"]),
        ("0 0 * 13 *", ["month value 13", "1-12"]),
        ("0 0 * * 8", ["day-of-week value 8", "0-7"]),
        ("0 0 * * funday", ["day-of-week", "'funday'"]),
        ("every day at noon", ["4 fields"]),
        ("0 L * * *", ["hour field has 'l'", "day-of-month (L, L-3, 15W, LW)"]),
        ("0 0 * * 5W", ["day-of-week field has '5w'", "L, W and #"]),
        ("0 0 5#2 * *", ["day-of-month field '5#2'", "day-of-week"]),
        ("0 0 * * 5#6", ["#1-#5"]),
        ("0 0 * * L", ["L alone is ambiguous", "5L"]),
        ("0 0 L-31 * *", ["L-0 to L-30"]),
        ("0 0 32W * *", ["day-of-month value 32"]),
        ("0 0 L-30 2 *", ["never fires"]),
        ("H * * * *", ["uses H", "hash_key"]),
        ("0 0 30 2 *", ["never fires"]),
        ("*/0 * * * *", ["step"]),
        ("@reboot", ["unknown alias"]),
        ("0 0 1-2-3 * *", ["day-of-month"]),
    ],
)
def test_bad_expressions_name_the_expression_and_field(expression: str, words: list[str]) -> None:
    with pytest.raises(InvalidCronError) as caught:
        parse_cron(expression)
    message = str(caught.value)
    assert repr(expression) in message
    for word in words:
        assert word in message
    assert isinstance(caught.value, ValueError)


def test_non_string_expression_is_rejected() -> None:
    with pytest.raises(InvalidCronError, match="give a string"):
        parse_cron(5)  # type: ignore[arg-type]


def test_leap_day_only_fires_in_leap_years() -> None:
    got = fires("0 0 29 2 *", datetime(2025, 1, 1, tzinfo=UTC), 365 * 4)
    assert [t.date().isoformat() for t in got] == ["2028-02-29"]
