"""Event accounting: every event a trigger receives ends in exactly one recorded outcome.

Events come from a small timed source that emits each one through ``deliver`` on the
scheduler the trigger subscribes it with (as every library source does), in virtual
time; the assertions are on the jobs in the store, the trigger's health and
``trigger.outcomes()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import reactivex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import abc
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import ConfigurationError
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.outcomes import OUTCOME_KINDS, EventOutcome
from portico_rx.testing.virtual_time import advance

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def timed(
    events: list[tuple[float, Any]], *, ages: dict[int, timedelta] | None = None
) -> reactivex.Observable[Any]:
    """Emit ``events`` (seconds after START, event) with a delivery each, on the
    subscriber's scheduler; ``ages[i]``: event ``i`` occurred that long before it was seen."""
    ages = ages or {}

    def subscribe(observer: abc.ObserverBase[Any], scheduler: Any = None) -> Any:
        disposables = []
        for index, (at, event) in enumerate(events):

            def emit(sched: Any, _state: Any = None, i: int = index, e: Any = event) -> None:
                seen = sched.now
                age = ages.get(i)
                delivery = Delivery(
                    source="test:timed",
                    seen_at=seen,
                    event_id=f"e{i}",
                    idempotency_key=f"e{i}",
                    occurred_at=seen - age if age is not None else None,
                )
                deliver(observer, e, delivery)

            disposables.append(scheduler.schedule_absolute(START + timedelta(seconds=at), emit))
        return reactivex.disposable.CompositeDisposable(*disposables)

    return reactivex.create(subscribe)


async def run(
    pipeline: reactivex.Observable[Any],
    *,
    until: float = 60,
    creator: Any = None,
    **options: Any,
) -> tuple[prx.PipelineTrigger, MemoryJobQueue]:
    queue = MemoryJobQueue()
    vt = HistoricalScheduler(initial_clock=START)
    trigger = prx.PipelineTrigger(
        pipeline, creator or prx.JobService(queue), name="acct", scheduler=vt, **options
    )
    await trigger.start()
    await advance(vt, timedelta(seconds=until), step=1)
    return trigger, queue


def kinds(outcomes: list[EventOutcome]) -> dict[str, str]:
    """event id -> outcome, asserting each event has exactly one."""
    ids = [o.event_id for o in outcomes]
    assert len(ids) == len(set(ids)), ids
    return {o.event_id or "": o.outcome for o in outcomes}


# -- duplicates ----------------------------------------------------------------------------


async def test_five_events_with_two_keys_create_two_jobs_and_count_three_duplicates() -> None:
    keys = ["a", "b", "a", "a", "b"]
    pipeline = timed([(i, {"key": k}) for i, k in enumerate(keys)]).pipe(
        prx.to_job("t.dup", idempotency_key=lambda e: f"k:{e['key']}")
    )
    with capture_logs() as logs:
        trigger, queue = await run(pipeline)
        await trigger.stop()
    assert len(await queue.list()) == 2
    health = trigger.get_health()
    assert (health.jobs_created_count, health.duplicates_count) == (2, 3)
    assert health.details["outcomes"]["created"] == 2
    assert health.details["outcomes"]["duplicate"] == 3
    assert kinds(trigger.outcomes()) == {
        "e0": "created",
        "e1": "created",
        "e2": "duplicate",
        "e3": "duplicate",
        "e4": "duplicate",
    }
    duplicates = trigger.outcomes("duplicate")
    assert {o.job_id for o in duplicates} == {str(j.id) for j in await queue.list()}
    logged = {"created": 0, "duplicates": 0}  # a line per job, or one per loop iteration
    for entry in logs:
        if entry["event"] in ("job_created", "job_duplicate"):
            logged["created" if entry["event"] == "job_created" else "duplicates"] += 1
        elif entry["event"] == "jobs_created":
            logged["created"] += entry["count"]
            logged["duplicates"] += entry["duplicates"]
    assert logged == {"created": 2, "duplicates": 3}
    assert len(trigger.history()) == 2  # history lists the jobs it created, not found ones


# -- every kind of outcome -----------------------------------------------------------------


async def test_filtered_and_debounced_events_are_dropped_with_their_stage() -> None:
    events = [
        (1, {"n": 1, "keep": False}),
        (2, {"n": 2, "keep": True}),
        (2.2, {"n": 3, "keep": True}),
    ]
    pipeline = timed(events).pipe(
        ops.filter(lambda e: e["keep"]),
        ops.debounce(1.0),  # n=2 is debounced away by n=3
        prx.to_job("t.kept"),
    )
    trigger, queue = await run(pipeline)
    await trigger.stop()
    assert [j.payload["n"] for j in await queue.list()] == [3]
    outcomes = {o.event_id: o for o in trigger.outcomes()}
    assert (outcomes["e0"].outcome, outcomes["e0"].stage) == ("dropped", "filter")
    assert (outcomes["e1"].outcome, outcomes["e1"].stage) == ("dropped", "operator")
    assert outcomes["e2"].outcome == "created" and outcomes["e2"].job_id is not None
    assert trigger.get_health().dropped_count == 2


async def test_a_failed_conversion_is_dead_lettered_with_its_stage_and_error() -> None:
    pipeline = timed([(1, {"n": 1}), (2, {"n": 0})]).pipe(
        prx.to_job("t.div", payload=lambda e: {"inverse": 1 / e["n"]})
    )
    trigger, _queue = await run(pipeline)
    await trigger.stop()
    (failed,) = trigger.outcomes("dead_lettered")
    assert (failed.event_id, failed.stage) == ("e1", "to_job")
    assert failed.error is not None and "ZeroDivisionError" in failed.error
    assert len(trigger.outcomes("created")) == 1


@pytest.mark.parametrize(("policy", "outcome"), [("drop", "dropped"), ("dead_letter", "requeued")])
async def test_an_overflow_is_recorded_with_its_stage(policy: str, outcome: str) -> None:
    gate = asyncio.Event()

    class Slow(prx.JobService):
        async def create_job(self, *args: Any, **kwargs: Any) -> Any:
            await gate.wait()
            return await super().create_job(*args, **kwargs)

    queue = MemoryJobQueue()
    pipeline = timed([(1, {"n": 1}), (1, {"n": 2}), (1, {"n": 3})]).pipe(prx.to_job("t.o"))
    vt = HistoricalScheduler(initial_clock=START)
    trigger = prx.PipelineTrigger(
        pipeline, Slow(queue), name="acct", scheduler=vt, max_pending=1, overflow=policy
    )
    await trigger.start()
    await advance(vt, timedelta(seconds=2), step=1)
    assert trigger.get_health().held_count == 1  # the one being created
    gate.set()
    await trigger.stop()
    got = kinds(trigger.outcomes())
    assert sorted(got.values()) == sorted(["created", outcome, outcome])
    assert {o.stage for o in trigger.outcomes(outcome)} == {"overflow"}
    assert trigger.get_health().held_count == 0
    assert len(await queue.list()) == 1


async def test_a_request_queued_at_stop_is_requeued() -> None:
    class Stuck(prx.JobService):
        async def create_job(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()  # never returns: stop() times out on it

    pipeline = timed([(1, {"n": 1}), (1, {"n": 2})]).pipe(prx.to_job("t.stuck"))
    trigger, _queue = await run(
        pipeline, until=2, creator=Stuck(MemoryJobQueue()), max_concurrency=1, stop_timeout=0.1
    )
    assert trigger.get_health().held_count == 2
    await trigger.stop()
    assert [(o.outcome, o.stage) for o in trigger.outcomes()] == [("requeued", "stop")] * 2
    assert trigger.get_health().held_count == 0


async def test_stale_events_are_dead_lettered_or_created_per_policy() -> None:
    events = [(1, {"n": 1}), (2, {"n": 2}), (3, {"n": 3})]
    ages = {0: timedelta(days=3), 2: timedelta(minutes=5)}
    trigger, queue = await run(
        timed(events, ages=ages).pipe(prx.to_job("t.s")), max_age=timedelta(hours=1)
    )
    await trigger.stop()
    jobs = sorted(await queue.list(), key=lambda j: j.payload["n"])
    assert [j.payload["n"] for j in jobs] == [2, 3]
    # lateness from each source's own time; a source with no time of its own: 0.0
    assert [j.metadata.get("lateness_s") for j in jobs] == [0.0, 300.0]
    (stale,) = trigger.outcomes("stale")
    assert (stale.event_id, stale.stage) == ("e0", "stale")
    assert "259200.000 s old" in (stale.error or "")
    health = trigger.get_health()
    assert (health.stale_count, health.dead_lettered_count) == (1, 1)
    assert trigger.dead_letters[0].stage == "stale"

    trigger, queue = await run(
        timed(events, ages=ages).pipe(prx.to_job("t.s")), max_age=3600, stale="create"
    )
    await trigger.stop()
    jobs = sorted(await queue.list(), key=lambda j: j.payload["n"])
    assert [j.metadata.get("stale", False) for j in jobs] == [True, False, False]
    assert jobs[0].metadata["lateness_s"] == 3 * 86400
    assert trigger.get_health().stale_count == 1 and not trigger.outcomes("stale")


async def test_an_event_held_at_stop_is_requeued_and_counted_held_before() -> None:
    pipeline = timed([(1, {"n": 1})]).pipe(ops.delay(3600.0), prx.to_job("t.late"))
    trigger, queue = await run(pipeline, until=5)
    assert trigger.get_health().held_count == 1
    assert trigger.outcomes() == []
    await trigger.stop()
    assert await queue.list() == []
    (requeued,) = trigger.outcomes()
    assert (requeued.outcome, requeued.stage) == ("requeued", "stop")
    assert trigger.get_health().held_count == 0


async def test_requests_without_a_delivery_are_recorded_too() -> None:
    subject: reactivex.Subject[Any] = reactivex.Subject()
    queue = MemoryJobQueue()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("t.bare", idempotency_key=lambda e: e["k"])),
        prx.JobService(queue),
        name="bare",
    )
    await trigger.start()
    for key in ["x", "x", "y"]:
        subject.on_next({"k": key})
    await asyncio.sleep(0.05)
    await trigger.stop()
    assert [o.outcome for o in trigger.outcomes()] == ["created", "duplicate", "created"]
    assert [o.idempotency_key for o in trigger.outcomes()] == ["x", "x", "y"]


# -- one outcome per event: a reference model ----------------------------------------------

EVENT_KINDS = st.sampled_from(["new", "repeat", "filtered", "bad"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT_KINDS, min_size=1, max_size=25))
def test_every_event_gets_exactly_one_outcome(plan: list[str]) -> None:
    """Each event is new (a fresh key), a repeat (the key of the first event), filtered
    out, or fails its conversion; the outcomes match the model one for one."""
    expected: dict[str, str] = {}
    seen_first = False
    events = []
    for i, kind in enumerate(plan):
        key = "first" if kind == "repeat" or (kind == "new" and not seen_first) else f"k{i}"
        if kind == "new" and not seen_first:
            seen_first = True
            expected[f"e{i}"] = "created"
        elif kind == "new":
            expected[f"e{i}"] = "created"
        elif kind == "repeat":
            expected[f"e{i}"] = "duplicate" if seen_first else "created"
            seen_first = True
        elif kind == "filtered":
            expected[f"e{i}"] = "dropped"
        else:
            expected[f"e{i}"] = "dead_lettered"
        events.append((i * 0.5, {"key": key, "kind": kind}))

    def payload(event: dict[str, Any]) -> dict[str, Any]:
        if event["kind"] == "bad":
            raise ValueError("bad event")
        return {"key": event["key"]}

    pipeline = timed(events).pipe(
        ops.filter(lambda e: e["kind"] != "filtered"),
        prx.to_job("t.model", payload=payload, idempotency_key=lambda e: e["key"]),
    )

    async def scenario() -> None:
        trigger, queue = await run(pipeline, until=len(plan) * 0.5 + 1)
        await trigger.stop()
        assert kinds(trigger.outcomes()) == expected
        summary = trigger.get_health().details["outcomes"]
        for kind in OUTCOME_KINDS:
            assert summary[kind] == list(expected.values()).count(kind), kind
        assert summary["held"] == 0
        assert len(await queue.list(limit=1000)) == summary["created"]

    asyncio.run(scenario())


# -- keeping, querying, logging ------------------------------------------------------------


async def test_the_last_outcomes_size_are_kept_and_queries_filter_and_limit() -> None:
    pipeline = timed([(i, {"n": i}) for i in range(10)]).pipe(prx.to_job("t.k"))
    trigger, _ = await run(pipeline, outcomes_size=4)
    await trigger.stop()
    assert [o.event_id for o in trigger.outcomes()] == ["e6", "e7", "e8", "e9"]
    assert [o.event_id for o in trigger.outcomes(limit=2)] == ["e8", "e9"]
    assert trigger.outcomes("dropped") == [] and trigger.outcomes(limit=0) == []
    assert trigger.get_health().details["outcomes"]["created"] == 10  # counts are not bounded
    first = trigger.outcomes()[0]
    assert first.as_dict()["seen_at"] == (START + timedelta(seconds=6)).isoformat()
    with pytest.raises(ConfigurationError, match="outcome='made'"):
        trigger.outcomes("made")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"outcomes_size": -1}, "outcomes_size=-1"),
        ({"outcome_log_level": "loud"}, "outcome_log_level='loud'"),
        ({"max_age": "1h"}, "max_age='1h'"),
        ({"max_age": 0}, "max_age=0"),
        ({"stale": "keep"}, "stale='keep'"),
    ],
)
def test_bad_accounting_options_are_refused_by_name(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        prx.PipelineTrigger(
            reactivex.empty(), prx.JobService(MemoryJobQueue()), name="x", **options
        )


@pytest.fixture
def outcome_logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("portico_rx.outcomes")
    level = log.level
    yield log
    log.setLevel(level)


async def test_outcome_lines_follow_the_standard_logging_level(
    outcome_logger: logging.Logger,
) -> None:
    def pipeline() -> reactivex.Observable[Any]:
        return timed([(1, {"n": 1, "ok": True}), (2, {"n": 2, "ok": False})]).pipe(
            ops.filter(lambda e: e["ok"]), prx.to_job("t.log")
        )

    outcome_logger.setLevel(logging.WARNING)
    with capture_logs() as quiet:
        trigger, _ = await run(pipeline())
        await trigger.stop()
    assert not [e for e in quiet if e["event"] == "event_outcome"]

    outcome_logger.setLevel(logging.DEBUG)
    with capture_logs() as loud:
        trigger, _ = await run(pipeline())
        await trigger.stop()
    lines = [e for e in loud if e["event"] == "event_outcome"]
    assert [(e["outcome"], e["event_id"], e["log_level"]) for e in lines] == [
        ("created", "e0", "debug"),
        ("dropped", "e1", "debug"),
    ]

    with capture_logs() as info:
        trigger, _ = await run(pipeline(), outcome_log_level="info")
        await trigger.stop()
    assert {e["log_level"] for e in info if e["event"] == "event_outcome"} == {"info"}
    with capture_logs() as none:
        trigger, _ = await run(pipeline(), outcome_log_level=None)
        await trigger.stop()
    assert not [e for e in none if e["event"] == "event_outcome"]


async def test_outcomes_become_a_dataframe_in_the_notebook() -> None:
    pipeline = timed([(1, {"n": 1}), (2, {"n": 1})]).pipe(
        prx.to_job("t.nb", idempotency_key=lambda e: str(e["n"]))
    )
    trigger, _ = await run(pipeline)
    await trigger.stop()
    outcomes = trigger.outcomes()
    frame = outcomes.to_frame()  # type: ignore[attr-defined]
    assert list(frame["outcome"]) == ["created", "duplicate"]
    assert list(frame["event_id"]) == ["e0", "e1"]
    assert frame["job_id"][0] == frame["job_id"][1]
    assert "duplicate" in outcomes._repr_html_()  # type: ignore[attr-defined]
