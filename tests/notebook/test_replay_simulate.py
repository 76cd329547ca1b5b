"""replay, simulate and diff: recorded events through pipelines in virtual time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.errors import ConfigurationError, InvalidScheduleError
from portico_rx.notebook.simulate import JOB_COLUMNS, diff, simulate
from portico_rx.sources import replay
from portico_rx.testing import RecordingJobCreator, advance

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def orders(n: int = 5, step_s: int = 60) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": [T0 + timedelta(seconds=step_s * i) for i in range(n)],
            "order": list(range(n)),
            "amount": [10.0 * (i + 1) for i in range(n)],
        }
    )


def test_replay_emits_each_row_at_its_recorded_time() -> None:
    scheduler = HistoricalScheduler(initial_clock=T0 - timedelta(hours=1))
    seen: list[tuple[datetime, int]] = []
    completed: list[datetime] = []
    replay(orders(3), scheduler=scheduler).subscribe(
        lambda e: seen.append((scheduler.now, e["order"])),
        on_completed=lambda: completed.append(scheduler.now),
    )
    scheduler.start()
    assert seen == [(T0, 0), (T0 + timedelta(minutes=1), 1), (T0 + timedelta(minutes=2), 2)]
    assert completed == [T0 + timedelta(minutes=2)]


def test_replay_rows_are_json_ready_dicts() -> None:
    frame = pd.DataFrame(
        {"time": ["2025-03-01 09:00"], "x": [float("nan")], "when": [pd.Timestamp("2025-01-02")]}
    )
    events: list[dict[str, Any]] = []
    scheduler = HistoricalScheduler()
    replay(frame, scheduler=scheduler).subscribe(events.append)
    scheduler.start()
    assert events == [
        {"time": "2025-03-01T09:00:00+00:00", "x": None, "when": "2025-01-02T00:00:00"}
    ]


async def test_replay_through_a_real_trigger_creates_each_job_once() -> None:
    """A replayed frame through a PipelineTrigger: one job per row, keys from the rows;
    replaying the same frame again into the same creator creates nothing new."""
    creator = RecordingJobCreator()
    scheduler = HistoricalScheduler(initial_clock=T0)
    for _ in range(2):
        trigger = prx.PipelineTrigger(
            replay(orders(4)).pipe(
                ops.filter(lambda e: e["amount"] >= 20),
                prx.to_job(
                    "order.ship", payload=lambda e: {"order": e["order"]}, queue_name="ship"
                ),
            ),
            job_creator=creator,
            name="ship",
            scheduler=scheduler,
            on_complete="stop",
        )
        await trigger.start()
        await advance(scheduler, by=600, step=60)
        await trigger.stop()
    assert [j.payload["order"] for j in creator.jobs] == [1, 2, 3]
    assert [j.idempotency_key for j in creator.jobs] == [
        "ship:order.ship:1",
        "ship:order.ship:2",
        "ship:order.ship:3",
    ]
    assert all(j.queue_name == "ship" and j.metadata["source"] == "replay" for j in creator.jobs)
    assert creator.jobs[0].metadata["seen_at"] == (T0 + timedelta(minutes=1)).isoformat()


def test_replay_names_a_missing_time_column() -> None:
    with pytest.raises(ConfigurationError, match=r"time_column='ts'.*columns: \['time'"):
        replay(orders(2), time_column="ts")


def test_replay_names_the_first_out_of_order_row() -> None:
    frame = orders(4).iloc[[0, 2, 1, 3]]
    with pytest.raises(ConfigurationError) as info:
        replay(frame)
    message = str(info.value)
    assert "'time' is not sorted" in message
    assert "row 1" in message and "after row 2" in message
    assert "sort_values('time')" in message


def test_replay_rejects_empty_times_and_non_frames() -> None:
    frame = orders(2)
    frame.loc[1, "time"] = None
    with pytest.raises(ConfigurationError, match="empty at row 1"):
        replay(frame)
    with pytest.raises(ConfigurationError, match="pandas DataFrame"):
        replay([{"time": T0}])
    with pytest.raises(ConfigurationError, match="speed"):
        replay(orders(2), speed=0)


def test_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidScheduleError, match="ends before it starts"):
        replay(orders(2), start=T0, end=T0 - timedelta(days=1))
    with pytest.raises(InvalidScheduleError, match="ends before it starts"):
        simulate(lambda ev: ev, "2025-03-02", "2025-03-01", events=orders(2))
    with pytest.raises(InvalidScheduleError, match="give both start= and end="):
        simulate(reactivex.never(), start=T0)


async def test_replay_on_a_live_scheduler_keeps_the_spacing_scaled_by_speed() -> None:
    events: list[int] = []
    done: list[bool] = []
    replay(orders(3, step_s=3600), speed=3600 * 100).subscribe(
        lambda e: events.append(e["order"]), on_completed=lambda: done.append(True)
    )
    for _ in range(200):
        if done:
            break
        await __import__("asyncio").sleep(0.01)
    assert events == [0, 1, 2] and done == [True]


def test_simulate_returns_the_jobs_with_times_lateness_and_keys() -> None:
    def pipeline(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
        return events.pipe(
            ops.filter(lambda e: e["order"] % 2 == 0),
            ops.delay(timedelta(seconds=30)),
            prx.to_job("order.ship", payload=lambda e: {"order": e["order"]}, priority=3),
        )

    jobs = simulate(pipeline, events=orders(5))
    assert list(jobs.columns) == JOB_COLUMNS
    assert jobs["payload"].tolist() == [{"order": 0}, {"order": 2}]
    # delay moves the event past the synchronous call, so its delivery is gone: the
    # job's scheduled time is its creation time. The last event's job (order 4) would
    # be due 30 s after the window's end and is not included.
    assert jobs["created_at"].tolist() == [
        pd.Timestamp(T0 + timedelta(seconds=30)),
        pd.Timestamp(T0 + timedelta(seconds=150)),
    ]
    assert (jobs["priority"] == 3).all()


def test_simulate_lateness_and_keys_from_deliveries() -> None:
    jobs = simulate(
        lambda ev: ev.pipe(prx.to_job("order.ship")),
        events=orders(3),
        key_column="order",
        name="shipper",
    )
    assert jobs["idempotency_key"].tolist() == [f"shipper:order.ship:{i}" for i in range(3)]
    assert (jobs["lateness"] == pd.Timedelta(0)).all()
    assert jobs["scheduled_at"].tolist() == jobs["created_at"].tolist()
    assert jobs["event_id"].tolist() == ["0", "1", "2"]


def test_simulate_creates_nothing_and_lists_failures() -> None:
    creator = RecordingJobCreator()

    def pipeline(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
        return events.pipe(prx.to_job("x.y", payload=lambda e: {"r": 1 / (e["order"] - 1)}))

    jobs = simulate(pipeline, events=orders(3))
    assert len(jobs) == 2 and creator.jobs == []
    [failure] = jobs.attrs["dead_letters"]
    assert failure["stage"] == "to_job" and "division by zero" in failure["error"]


def test_simulate_a_timer_observable_over_a_day() -> None:
    hourly = reactivex.interval(timedelta(hours=1)).pipe(
        prx.to_job("report.hourly", payload=lambda n: {"n": n})
    )
    jobs = simulate(hourly, T0, T0 + timedelta(days=1))
    assert len(jobs) == 24
    assert jobs["created_at"].iloc[-1] == pd.Timestamp(T0 + timedelta(hours=24))


def test_simulate_rejects_mismatched_arguments() -> None:
    with pytest.raises(ConfigurationError, match="no events= were given"):
        simulate(lambda ev: ev, T0, T0 + timedelta(hours=1))
    with pytest.raises(ConfigurationError, match="events= has nowhere to go"):
        simulate(reactivex.never(), events=orders(2))
    with pytest.raises(ConfigurationError, match="not an observable"):
        simulate(lambda ev: 42, events=orders(2))


def test_diff_reports_added_removed_and_changed_jobs() -> None:
    def old(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
        return events.pipe(
            ops.filter(lambda e: e["amount"] >= 20),
            prx.to_job("order.ship", payload=lambda e: {"order": e["order"]}, priority=1),
        )

    def new(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
        return events.pipe(
            ops.filter(lambda e: e["amount"] <= 40),
            prx.to_job(
                "order.ship",
                payload=lambda e: {"order": e["order"]},
                priority=lambda e: 5 if e["order"] == 2 else 1,
            ),
        )

    changes = diff(old, new, orders(5))
    summary = [(row.change, row.event_id, row.changed) for row in changes.itertuples()]
    assert summary == [
        ("changed", "2", ["priority"]),
        ("removed", "4", []),
        ("added", "0", []),
    ]
    assert changes.loc[0, "old_priority"] == 1 and changes.loc[0, "new_priority"] == 5
    everything = diff(old, new, orders(5), include_unchanged=True)
    assert sorted(everything["change"]) == ["added", "changed", "removed", "unchanged", "unchanged"]


def test_diff_rejects_unknown_compare_fields() -> None:
    with pytest.raises(ConfigurationError, match="unknown"):
        diff(lambda e: e, lambda e: e, orders(2), compare=["colour"])


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(min_value=0, max_value=3600), min_size=0, max_size=30))
def test_replay_emits_every_row_once_in_order_at_its_time(gaps: list[int]) -> None:
    """Property: for any sorted times (ties included), every row is emitted exactly once,
    in order, at its own time."""
    times = [T0]
    for gap in gaps:
        times.append(times[-1] + timedelta(seconds=gap))
    frame = pd.DataFrame({"time": times, "n": range(len(times))})
    scheduler = HistoricalScheduler(initial_clock=T0)
    seen: list[tuple[datetime, int]] = []
    replay(frame, scheduler=scheduler).subscribe(lambda e: seen.append((scheduler.now, e["n"])))
    scheduler.start()
    assert seen == [(t, n) for n, t in enumerate(times)]


def shipping(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
    return events.pipe(
        ops.filter(lambda e: e["amount"] % 3 != 0),
        prx.to_job("order.ship", payload=lambda e: {"amount": e["amount"]}),
    )


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(min_value=0, max_value=600), st.integers(0, 50)), max_size=25
    )
)
def test_simulate_agrees_with_a_plain_loop_and_diff_with_itself_is_empty(
    rows: list[tuple[int, int]],
) -> None:
    """Property: for any events, simulate yields exactly the requests a plain loop over the
    same rows yields, and a pipeline diffed against itself shows no change."""
    seconds = sorted(s for s, _ in rows)
    frame = pd.DataFrame(
        {
            "time": [T0 + timedelta(seconds=s) for s in seconds],
            "amount": [a for _, a in rows],
        }
    )
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    looped: list[Any] = []
    shipping(subject).subscribe(looped.append)
    for record in frame.assign(time=frame["time"].map(lambda t: t.isoformat())).to_dict("records"):
        subject.on_next(record)
    if frame.empty:
        return
    jobs = simulate(shipping, events=frame)
    assert jobs["payload"].tolist() == [r.payload for r in looped]
    assert jobs["scheduled_at"].is_monotonic_increasing
    assert diff(shipping, shipping, frame).empty
