"""Fire times (fast path, live timer, preview) equal the brute-force oracle, under the DST
policy, across zones with DST, half-hour shifts, midnight transitions and none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler
from schedule_oracle import oracle_fires, transitions

from portico_rx.errors import InvalidCronError
from portico_rx.schedule.cron_expression import CronExpression, parse_cron
from portico_rx.schedule.dst import DstPolicy
from portico_rx.schedule.fire_times import FireTimes
from portico_rx.sources._cron import cron
from portico_rx.testing.strategies import cron_expressions as shared_cron_expressions

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # +05:30, no DST
    "America/Santiago",  # transitions at midnight
    "America/Havana",  # transitions at midnight / 01:00
    "Pacific/Chatham",  # +12:45 / +13:45
    "Australia/Sydney",  # southern hemisphere
]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    shown = (
        value.map(lambda v: names[v - low] if v - low < len(names) and v % 2 else str(v))
        if names
        else value.map(str)
    )
    item = st.one_of(
        st.just("*"),
        st.integers(1, max(1, (high - low) // 2)).map(lambda s: f"*/{s}"),
        shown,
        st.tuples(value, value).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(value, value, st.integers(1, 7)).map(
            lambda abs_: f"{min(abs_[:2])}-{max(abs_[:2])}/{abs_[2]}"
        ),
        st.tuples(value, st.integers(1, 9)).map(lambda vs: f"{vs[0]}/{vs[1]}"),
    )
    return st.lists(item, min_size=1, max_size=3).map(",".join)


def expressions(seconds: bool) -> st.SearchStrategy[str]:
    """Half general expressions, half dense ones (any day, hours around DST changes)
    so that windows around transitions really exercise the DST policy."""
    hours = st.one_of(
        field(0, 23), st.sampled_from(["0-3", "1,2", "2", "*/2", "0", "23", "1-2", "22-23,0-3"])
    )
    general = [field(0, 59), hours, field(1, 31), field(1, 12, MONTHS), field(0, 7, DAYS)]
    dense = [field(0, 59), hours, st.just("*"), st.just("*"), st.sampled_from(["*", "*", "0-6"])]
    if seconds:
        second = st.sampled_from(["0", "*/15", "30", "0,59", "*/20"])
        general.insert(0, second)
        dense.insert(0, second)
    return st.one_of(st.tuples(*general), st.tuples(*dense)).map(" ".join)


@st.composite
def windows(
    draw: st.DrawFn, hours: int, near_transition: bool = True
) -> tuple[str, datetime, datetime]:
    """A zone and a window of ``hours``: around one of its offset changes (when
    ``near_transition`` and the zone has one that year), else anywhere in the year."""
    zone = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1995, 2037))
    changes = transitions(zone, year)
    if changes and near_transition:
        center = draw(st.sampled_from(changes))
        start = center - timedelta(minutes=draw(st.integers(1, hours * 60 - 1)))
    else:
        start = datetime(year, 1, 1, tzinfo=UTC) + timedelta(
            minutes=draw(st.integers(0, 365 * 24 * 60))
        )
    start += timedelta(seconds=draw(st.sampled_from([0, 0, 17, 60])))
    return zone, start, start + timedelta(hours=hours)


policies = st.builds(
    DstPolicy,
    nonexistent=st.sampled_from(["shift", "skip"]),
    ambiguous=st.sampled_from(["once", "both"]),
)


def parsed_or_reject(expression: str) -> CronExpression:
    try:
        return parse_cron(expression)
    except InvalidCronError:
        assume(False)
        raise


def fast(fields: CronExpression, zone: str, start: datetime, end: datetime, policy: DstPolicy):
    times = FireTimes(fields, ZoneInfo(zone), policy)
    return [
        datetime.fromtimestamp(t, UTC)
        for t in times.between(int(start.timestamp() + 0.999999), int(end.timestamp() + 0.999999))
    ]


def assert_fast_equals_oracle(
    expression: str, window: tuple[str, datetime, datetime], policy: DstPolicy
) -> None:
    fields = parsed_or_reject(expression)
    zone, start, end = window
    assert fast(fields, zone, start, end, policy) == oracle_fires(
        fields, ZoneInfo(zone), start, end, policy
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(seconds=False), windows(hours=8), policies)
def test_five_field_fire_times_equal_the_oracle_around_dst_changes(
    expression: str, window: tuple[str, datetime, datetime], policy: DstPolicy
) -> None:
    assert_fast_equals_oracle(expression, window, policy)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(seconds=False), windows(hours=30, near_transition=False), policies)
def test_five_field_fire_times_equal_the_oracle_anywhere(
    expression: str, window: tuple[str, datetime, datetime], policy: DstPolicy
) -> None:
    assert_fast_equals_oracle(expression, window, policy)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(seconds=True), windows(hours=2), policies)
def test_six_field_fire_times_equal_the_second_by_second_oracle(
    expression: str, window: tuple[str, datetime, datetime], policy: DstPolicy
) -> None:
    assert_fast_equals_oracle(expression, window, policy)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(seconds=False), windows(hours=12), policies)
def test_cron_source_in_virtual_time_emits_the_oracle_ticks(
    expression: str, window: tuple[str, datetime, datetime], policy: DstPolicy
) -> None:
    """The live path (timer heap on a HistoricalScheduler) fires exactly the oracle's
    instants, each on time, with consecutive sequence numbers."""
    fields = parsed_or_reject(expression)
    zone, start, end = window
    scheduler = HistoricalScheduler(initial_clock=start)
    ticks = []
    source = cron(expression, zone, dst=policy, end=end, scheduler=scheduler)
    source.subscribe(ticks.append)
    scheduler.advance_to(end)
    expected = oracle_fires(fields, ZoneInfo(zone), start, end, policy)
    assert [t.scheduled_at.astimezone(UTC) for t in ticks] == expected
    assert [t.fired_at for t in ticks] == expected
    assert all(t.lateness_s == 0 and not t.catch_up for t in ticks)
    assert [t.sequence for t in ticks] == list(range(1, len(ticks) + 1))
    assert all(str(t.scheduled_at.tzinfo) == zone for t in ticks)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("expression", ["0 * * * *", "*/30 0-3 * * *", "30 2 * * *", "0 0 * * *"])
@pytest.mark.parametrize(
    "policy",
    [DstPolicy(), DstPolicy(nonexistent="skip", ambiguous="both")],
    ids=["shift-once", "skip-both"],
)
def test_every_transition_of_a_year_matches_the_oracle(
    zone: str, expression: str, policy: DstPolicy
) -> None:
    """Around every offset change of 2025, in every zone."""
    fields = parse_cron(expression)
    for year in (2025,):
        for center in transitions(zone, year):
            start, end = center - timedelta(hours=24), center + timedelta(hours=24)
            assert fast(fields, zone, start, end, policy) == oracle_fires(
                fields, ZoneInfo(zone), start, end, policy
            ), (zone, expression, center)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_cron_expressions(), windows(hours=8), policies)
def test_the_shared_cron_strategy_parses_and_matches_the_oracle(
    expression: str, window: tuple[str, datetime, datetime], policy: DstPolicy
) -> None:
    """Expressions from ``portico_rx.testing.strategies.cron_expressions`` (what users
    test their own schedules with) all parse, and fire as the oracle says."""
    fields = parse_cron(expression)
    zone, start, end = window
    assert fast(fields, zone, start, end, policy) == oracle_fires(
        fields, ZoneInfo(zone), start, end, policy
    )
