"""simulate / diff: what a time-based operator still holds when the events end is not a
job (as documented), and a pipeline over an I/O source is refused with a clear error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import reactivex

import portico_rx as prx
from portico_rx import sources
from portico_rx.errors import ConfigurationError
from portico_rx.notebook.simulate import diff, simulate
from portico_rx.operators import batch, debounce_by

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def saves() -> pd.DataFrame:
    """Three saves of one document within two minutes."""
    return pd.DataFrame(
        {"time": [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)], "doc": [7, 7, 7]}
    )


def debounced(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
    return events.pipe(
        debounce_by(lambda e: e["doc"], timedelta(minutes=5)),
        prx.to_job("doc.index", payload=lambda e: {"doc": e["doc"]}),
    )


def batched(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
    return events.pipe(
        batch(10, timedelta(minutes=5)),
        prx.to_job("doc.bulk", payload=lambda b: {"docs": [e["doc"] for e in b]}),
    )


@pytest.mark.parametrize("pipeline", [debounced, batched], ids=["debounce_by", "batch"])
def test_what_is_held_when_the_window_ends_is_not_included(pipeline: Any) -> None:
    """Default window: it ends just after the last event, while the operator still holds
    it (its quiet time or batch window is 5 minutes): no job."""
    assert len(simulate(pipeline, events=saves())) == 0


@pytest.mark.parametrize("pipeline", [debounced, batched], ids=["debounce_by", "batch"])
def test_a_window_long_enough_releases_it_at_its_time(pipeline: Any) -> None:
    jobs = simulate(pipeline, T0, T0 + timedelta(minutes=10), events=saves())
    assert len(jobs) == 1
    expected = T0 + timedelta(minutes=7) if pipeline is debounced else T0 + timedelta(minutes=5)
    assert jobs["created_at"].tolist() == [pd.Timestamp(expected)]


def test_diff_does_not_count_held_events_as_jobs() -> None:
    """Old pipeline: one job per save. New: debounced. At the window's end the debounced
    save is still held: three removed, none added."""

    def every_save(events: reactivex.Observable[Any]) -> reactivex.Observable[Any]:
        return events.pipe(prx.to_job("doc.index", payload=lambda e: {"doc": e["doc"]}))

    changes = diff(every_save, debounced, saves())
    assert changes["change"].tolist() == ["removed", "removed", "removed"]


async def test_a_file_source_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    pipeline = sources.files(tmp_path).pipe(prx.to_job("file.process"))
    with pytest.raises(ConfigurationError) as raised:
        simulate(pipeline, T0, T0 + timedelta(hours=1))
    message = str(raised.value)
    assert "FileSource" in message and str(tmp_path) in message
    assert "record(" in message and "replay" in message


def test_a_file_source_is_refused_without_an_event_loop_too(tmp_path: Path) -> None:
    pipeline = sources.files(tmp_path).pipe(prx.to_job("file.process"))
    with pytest.raises(ConfigurationError, match="does I/O"):
        simulate(pipeline, T0, T0 + timedelta(hours=1))


@pytest.mark.parametrize(
    "make",
    [
        lambda: sources.rabbitmq("amqp://guest:guest@127.0.0.1:5672/", "sim_never_declared"),
        lambda: sources.redis_stream("redis://127.0.0.1:6379/0", "sim-never", "g", "c"),
        lambda: sources.nats("nats://127.0.0.1:4222", "sim_never.events"),
        lambda: sources.mqtt("127.0.0.1", "portico/sim/never"),
    ],
    ids=["rabbitmq", "redis", "nats", "mqtt"],
)
async def test_a_broker_source_is_refused_and_never_connects(make: Any) -> None:
    source = make()
    with pytest.raises(ConfigurationError, match="does I/O") as raised:
        simulate(source.pipe(prx.to_job("x")), T0, T0 + timedelta(hours=1))
    assert "QueueSource" in str(raised.value)
    await asyncio.sleep(0.2)
    assert not source.status.connected and source.status.received == 0


def test_a_trigger_over_an_io_source_is_refused(tmp_path: Path) -> None:
    from portico_rx.adapters.job_trigger.file_trigger import FileTrigger
    from portico_rx.testing import RecordingJobCreator

    trigger = FileTrigger(RecordingJobCreator(), tmp_path)
    with pytest.raises(ConfigurationError, match="does I/O"):
        simulate(trigger, T0, T0 + timedelta(hours=1))


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (lambda: sources.http_poll("http://127.0.0.1:1/status", every=60), "HttpPollSource"),
        (lambda: sources.db_rows("sqlite+aiosqlite:///never.db", "items"), "RowSource"),
        (lambda: sources.pg_notify("postgresql://127.0.0.1/test", "jobs"), "NotifySource"),
        (lambda: sources.webhook("/hooks/sim"), "WebhookSource"),
    ],
    ids=["http_poll", "db_rows", "pg_notify", "webhook"],
)
async def test_every_io_source_is_refused(make: Any, shown: str) -> None:
    with pytest.raises(ConfigurationError, match="does I/O") as raised:
        simulate(make().pipe(prx.to_job("x")), T0, T0 + timedelta(hours=1))
    assert shown in str(raised.value)
