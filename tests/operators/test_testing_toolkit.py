"""The testing toolkit: marble helpers, hypothesis strategies and the pytest plugin."""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as rx_ops
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import check_job_fields
from portico_rx.operators import debounce_by
from portico_rx.testing import (
    EPOCH,
    RecordingJobCreator,
    marble_events,
    run_pipeline,
    to_marbles,
    trace_pipeline,
)
from portico_rx.testing.strategies import (
    cron_expressions,
    event_streams,
    job_requests,
    payloads,
    timezones,
)


def test_a_pipeline_test_in_three_lines() -> None:
    events = marble_events("-a-a-b-a")
    out = run_pipeline(debounce_by(str, 3), events=events, until=12)
    assert to_marbles(out) == "------a-b-a"


def test_run_pipeline_returns_times_and_job_requests() -> None:
    out = run_pipeline(
        prx.to_job("greet", payload=lambda name: {"name": name}),
        events=[(0, "ada"), (5, "bob")],
    )
    assert [(t, r.job_type, r.payload) for t, r in out] == [
        (0.0, "greet", {"name": "ada"}),
        (5.0, "greet", {"name": "bob"}),
    ]


def test_trace_reports_settlement_of_each_event() -> None:
    trace = trace_pipeline(
        rx_ops.filter(lambda n: n % 2 == 0),
        events=[(0, 1), (1, 2), (2, 3)],
    )
    assert trace.settlements == ["dropped", "created", "dropped"]
    assert trace.items == [2]


def test_trace_records_completion_and_errors() -> None:
    trace = trace_pipeline(rx_ops.map(lambda n: 1 / n), events=[(0, 1), (1, 0)], until=3)
    assert isinstance(trace.error, ZeroDivisionError)
    done = trace_pipeline(rx_ops.map(lambda n: n), events=[(0, 1)], complete_at=2)
    assert done.completed_at == 2.0


def test_marble_round_trip_with_groups_and_values() -> None:
    events = marble_events("a-(bc)--d|--e", {"a": 10}, tick=2)
    assert events == [(0.0, 10), (4.0, "b"), (4.0, "c"), (16.0, "d")]
    assert to_marbles(events, tick=2, label=lambda v: "x" if v == 10 else v) == "x-(bc)--d"


@pytest.mark.parametrize("diagram", ["a-(b", "(ab"])
def test_unclosed_marble_group_is_a_clear_error(diagram: str) -> None:
    with pytest.raises(prx.ConfigurationError, match="not closed"):
        marble_events(diagram)


def test_trace_rejects_until_before_the_last_event() -> None:
    with pytest.raises(prx.ConfigurationError, match="until=1"):
        trace_pipeline(rx_ops.map(lambda n: n), events=[(5, 1)], until=1)


def test_trace_runs_events_due_at_the_start_even_with_until_zero() -> None:
    assert run_pipeline(rx_ops.map(lambda n: n), events=[(0, "now")], until=0) == [(0.0, "now")]


FIELD_LIMITS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
NAMES = {
    **{
        m: i + 1
        for i, m in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        )
    },
    **{d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}


def numbers_in(part: str) -> list[int]:
    return [NAMES[p] if p in NAMES else int(p) for p in re.split(r"[-,/]", part) if p != "*"]


@settings(max_examples=100, deadline=None)
@given(cron_expressions())
def test_cron_expressions_are_valid_crontab(expression: str) -> None:
    """Independently of croniter: five fields within their ranges, or an alias; and
    croniter agrees and finds a next fire time."""
    if expression.startswith("@"):
        assert expression in (
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        )
    else:
        fields = expression.split(" ")
        assert len(fields) == 5
        for field, (low, high) in zip(fields, FIELD_LIMITS, strict=True):
            for part in field.split(","):
                if "/" in part:
                    assert int(part.split("/")[1]) >= 1
                    part = part.split("/")[0]
                values = numbers_in(part)
                assert all(low <= v <= high for v in values), (field, values)
                if len(values) == 2:
                    assert values[0] <= values[1]
    assert croniter(expression, datetime(2025, 1, 1)).get_next(datetime) > datetime(2025, 1, 1)


@settings(max_examples=30, deadline=None)
@given(cron_expressions(seconds=True), cron_expressions(seconds="last"))
def test_cron_expressions_with_seconds_have_six_fields(first: str, last: str) -> None:
    assert len(first.split(" ")) == len(last.split(" ")) == 6
    assert croniter(last, datetime(2025, 1, 1)).get_next(datetime)


@settings(max_examples=60, deadline=None)
@given(cron_expressions(), cron_expressions(seconds=True))
def test_cron_expressions_parse_with_portico_rx_own_parser(five: str, six: str) -> None:
    """Our schedule parser (seconds first) accepts every generated expression."""
    from portico_rx.schedule.cron_expression import parse_cron

    assert not parse_cron(five).has_seconds
    assert parse_cron(six, seconds="first").has_seconds


def test_cron_expressions_reject_an_unknown_seconds_position() -> None:
    with pytest.raises(prx.ConfigurationError, match="seconds"):
        cron_expressions(seconds="middle")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(timezones())
def test_timezones_are_civil_iana_zones(zone: ZoneInfo) -> None:
    assert not zone.key.startswith(("right/", "posix/"))
    assert datetime(2025, 6, 1, tzinfo=zone).utcoffset() is not None


@settings(max_examples=60, deadline=None)
@given(payloads())
def test_payloads_are_json_objects_every_store_accepts(payload: dict[str, object]) -> None:
    text = json.dumps(payload, allow_nan=False)
    assert "\\u0000" not in text
    assert json.loads(text) == payload or _has_negative_zero(payload)
    check_job_fields("x", payload)


def _has_negative_zero(value: object) -> bool:
    if isinstance(value, float):
        return value == 0 and math.copysign(1, value) < 0
    if isinstance(value, dict):
        return any(_has_negative_zero(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_negative_zero(v) for v in value)
    return False


@settings(max_examples=40, deadline=None)
@given(job_requests())
async def test_job_requests_are_valid_and_creatable(request: prx.JobRequest) -> None:
    creator = RecordingJobCreator()
    job = await creator.create_job(
        request.job_type, request.payload, request.queue_name, request.priority, request.metadata
    )
    assert (job.job_type, job.queue_name, job.priority) == (
        request.job_type,
        request.queue_name,
        request.priority,
    )


@settings(max_examples=100, deadline=None)
@given(
    st.data(),
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
    st.integers(0, 20),
)
def test_event_streams_are_sorted_and_gapped(
    data: st.DataObject, a: float, b: float, min_size: int
) -> None:
    low, high = sorted((a, b))
    if math.floor(high / 0.001) < math.ceil(low / 0.001):
        return
    stream = data.draw(
        event_streams(st.integers(), min_gap=low, max_gap=high, min_size=min_size, max_size=30)
    )
    assert min_size <= len(stream) <= 30
    times = [t for t, _ in stream]
    assert times == sorted(times)
    assert all(low - 1e-9 <= y - x <= high + 1e-9 for x, y in itertools.pairwise(times))
    assert all(abs(t * 1000 - round(t * 1000)) < 1e-6 for t in times)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_gap": -1},
        {"min_gap": 5, "max_gap": 1},
        {"min_size": 3, "max_size": 1},
        {"resolution": 0},
    ],
)
def test_event_streams_reject_inconsistent_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(prx.ConfigurationError, match=next(iter(kwargs))):
        event_streams(**kwargs)  # type: ignore[arg-type]


def test_plugin_fixtures_are_fresh(
    recording_creator: RecordingJobCreator, virtual_time: HistoricalScheduler
) -> None:
    assert recording_creator.jobs == []
    assert virtual_time.now == EPOCH


async def test_job_service_fixture_runs_against_each_queue(
    job_service: JobService, request: pytest.FixtureRequest
) -> None:
    """The same test runs over memory and SQLite; keys are unique in both."""
    kind = request.node.callspec.params["job_service"]
    assert (
        type(job_service.job_queue).__name__
        == {
            "memory": "MemoryJobQueue",
            "sqlite": "SQLiteJobQueue",
        }[kind]
    )
    first = await job_service.create_job("a.b", {"n": 1}, idempotency_key="k")
    again = await job_service.create_job("a.b", {"n": 2}, idempotency_key="k")
    assert first.id == again.id
    assert [j.payload for j in await job_service.list_jobs()] == [{"n": 1}]


def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    import _portico_rx_plugins.pytest_fixtures as fixtures

    plugin = pytestconfig.pluginmanager.get_plugin("portico_rx")
    assert plugin is not None and plugin.recording_creator is fixtures.recording_creator


async def test_the_docs_job_service_example(
    job_service: JobService, virtual_time: HistoricalScheduler
) -> None:
    """The fixture example of docs/testing.md, verbatim."""
    import reactivex

    from portico_rx.testing import advance

    subject: reactivex.Subject[dict[str, int]] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("email.welcome")),
        job_creator=job_service,
        name="t",
        scheduler=virtual_time,
    )
    async with trigger:
        subject.on_next({"id": 7})
        await advance(virtual_time, 1)
    assert len(await job_service.list_jobs()) == 1
