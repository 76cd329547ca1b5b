"""jobs_frame over real stores, record() of live and virtual sources, the plots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib
import pandas as pd
import pytest
import reactivex
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import ConfigurationError
from portico_rx.frames import JOB_FRAME_COLUMNS
from portico_rx.notebook import jobs_frame, record
from portico_rx.notebook.plot import plot_upcoming, timeline
from portico_rx.notebook.simulate import simulate
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.sources import replay
from portico_rx.testing import RecordingJobCreator

matplotlib.use("Agg")

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


async def fill(creator: Any) -> prx.PipelineTrigger:
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(
            prx.to_job(
                lambda n: "even.job" if n % 2 == 0 else "odd.job",
                payload=lambda n: {"n": n},
                queue_name=lambda n: "evens" if n % 2 == 0 else "odds",
            )
        ),
        job_creator=creator,
        name="numbers",
    )
    await trigger.start()
    for n in range(6):
        subject.on_next(n)
    await trigger.stop()
    return trigger


async def test_jobs_frame_reads_a_job_service_queue_recording_creator_and_trigger() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(job_queue=queue)
    trigger = await fill(service)
    recording = RecordingJobCreator()
    await fill(recording)
    for source in (service, queue, recording, trigger, trigger.history()):
        frame = await jobs_frame(source)
        assert list(frame.columns) == JOB_FRAME_COLUMNS
        assert sorted(p["n"] for p in frame["payload"]) == list(range(6))
        assert set(frame["trigger"]) == {"numbers"}
        assert str(frame["created_at"].dt.tz) == "UTC"
    odds = await jobs_frame(service, job_type="odd.job")
    assert sorted(p["n"] for p in odds["payload"]) == [1, 3, 5]
    assert set((await jobs_frame(recording, queue_name="evens"))["job_type"]) == {"even.job"}
    assert len(await jobs_frame(trigger, status="pending", limit=2)) == 2


async def test_jobs_frame_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="pass a JobQueue"):
        await jobs_frame(42)
    with pytest.raises(ConfigurationError, match="status='done'"):
        await jobs_frame([], status="done")
    with pytest.raises(ConfigurationError, match="limit"):
        await jobs_frame([], limit=0)


@dataclass
class Reading:
    sensor: str
    value: float


async def test_record_a_live_source_by_count_with_deliveries() -> None:
    """A live source that emits with deliveries: time, source, id and key are kept."""
    subject: reactivex.Subject[Reading] = reactivex.Subject()
    settled: list[str] = []

    async def emit() -> None:
        for i in range(5):
            await asyncio.sleep(0.001)
            deliver(
                subject,
                Reading("s1", float(i)),
                Delivery(
                    source="sensors",
                    seen_at=T0 + timedelta(seconds=i),
                    event_id=f"m{i}",
                    idempotency_key=f"k{i}",
                    ack=lambda i=i: settled.append(f"m{i}"),
                ),
            )

    task = asyncio.ensure_future(emit())
    frame = await record(subject, count=3)
    await task
    assert frame["event_id"].tolist() == ["m0", "m1", "m2"]
    assert frame["key"].tolist() == ["k0", "k1", "k2"]
    assert frame["value"].tolist() == [0.0, 1.0, 2.0] and set(frame["sensor"]) == {"s1"}
    assert frame["time"].tolist() == [pd.Timestamp(T0 + timedelta(seconds=i)) for i in range(3)]
    assert settled[:3] == ["m0", "m1", "m2"]
    assert isinstance(frame["event"][0], Reading)


async def test_record_by_duration_in_virtual_time_then_replay_round_trips() -> None:
    scheduler = HistoricalScheduler(initial_clock=T0)
    ticks = reactivex.interval(timedelta(minutes=10)).pipe(ops.map(lambda n: {"n": n}))
    frame = await record(ticks, duration=timedelta(hours=1), scheduler=scheduler)
    assert frame["n"].tolist() == [0, 1, 2, 3, 4, 5]
    assert frame["time"].iloc[-1] == pd.Timestamp(T0 + timedelta(hours=1))
    jobs = simulate(
        lambda events: events.pipe(prx.to_job("tick.seen", payload=lambda e: {"n": e["n"]})),
        events=frame,
        event_column="event",
    )
    assert [p["n"] for p in jobs["payload"]] == [0, 1, 2, 3, 4, 5]
    assert jobs["scheduled_at"].tolist() == frame["time"].tolist()


async def test_record_by_duration_live_stops_on_time_and_bad_arguments() -> None:
    frame = await record(reactivex.never(), duration=0.05)
    assert len(frame) == 0 and list(frame.columns)[:5] == [
        "time",
        "source",
        "event_id",
        "key",
        "event",
    ]
    with pytest.raises(ConfigurationError, match=r"count= .* or duration="):
        await record(reactivex.never())
    with pytest.raises(ConfigurationError, match="count=0"):
        await record(reactivex.never(), count=0)
    with pytest.raises(ZeroDivisionError):
        await record(reactivex.throw(ZeroDivisionError("x")), count=1)


def test_timeline_draws_event_job_and_upcoming_lanes() -> None:
    events = pd.DataFrame({"time": [T0 + timedelta(minutes=i) for i in range(4)], "n": range(4)})
    jobs = simulate(
        lambda ev: ev.pipe(
            ops.filter(lambda e: e["n"] != 1),
            prx.to_job(lambda e: "a.job" if e["n"] < 2 else "b.job"),
        ),
        events=events,
    )
    ax = timeline(events, jobs, upcoming=[T0 + timedelta(hours=1)], title="flow")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["events", "a.job", "b.job", "upcoming"]
    assert len(ax.lines) == 3  # one link per job back to its event
    assert ax.get_title() == "flow"
    with pytest.raises(ConfigurationError, match="needs events="):
        timeline()
    with pytest.raises(ConfigurationError, match="no column 'ts'"):
        timeline(events, time_column="ts")
    matplotlib.pyplot.close("all")


def test_plot_upcoming_shows_local_time_of_day() -> None:
    times = [datetime(2025, 3, 29, 8, 0, tzinfo=UTC), datetime(2025, 3, 31, 7, 0, tzinfo=UTC)]
    ax = plot_upcoming(times, timezone="Europe/Paris")
    hours = ax.collections[0].get_offsets()[:, 1].tolist()
    assert hours == [9.0, 9.0]  # 9:00 Paris on both sides of the DST change
    frame = pd.DataFrame({"scheduled_at": times})
    assert plot_upcoming(frame).collections[0].get_offsets()[:, 1].tolist() == [8.0, 7.0]
    with pytest.raises(ConfigurationError, match="no fire times"):
        plot_upcoming([])
    matplotlib.pyplot.close("all")


def test_replay_of_a_recorded_frame_uses_its_key_column() -> None:
    frame = pd.DataFrame({"time": [T0, T0], "key": ["a", "b"], "v": [1, 2]})
    scheduler = HistoricalScheduler(initial_clock=T0)
    jobs = simulate(
        lambda ev: ev.pipe(prx.to_job("v.job")), events=frame, key_column="key", name="x"
    )
    assert jobs["idempotency_key"].tolist() == ["x:v.job:a", "x:v.job:b"]
    assert scheduler.now == T0
    assert replay(frame, key_column="key") is not None


async def test_a_recorded_frame_replays_its_original_events_ids_and_keys() -> None:
    subject: reactivex.Subject[Reading] = reactivex.Subject()

    async def emit() -> None:
        await asyncio.sleep(0)
        for i in range(3):
            deliver(
                subject,
                Reading("s", float(i)),
                Delivery(
                    source="q",
                    seen_at=T0 + timedelta(seconds=i),
                    event_id=f"m{i}",
                    idempotency_key=None if i == 2 else f"k{i}",
                ),
            )

    task = asyncio.ensure_future(emit())
    recorded = await record(subject, count=3)
    await task
    jobs = simulate(
        lambda ev: ev.pipe(prx.to_job("r.job", payload=lambda r: {"v": r.value})),
        events=recorded.iloc[1:],  # attrs survive slicing
        name="n",
    )
    assert jobs["event_id"].tolist() == ["m1", "m2"]
    assert jobs["idempotency_key"].tolist() == ["n:r.job:k1", "n:r.job:m2"]
    assert jobs["payload"].tolist() == [{"v": 1.0}, {"v": 2.0}]
