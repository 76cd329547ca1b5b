"""Operators inside real PipelineTriggers: jobs out, and every delivery settled right."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import reactivex
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.kits.job.job_service import JobService
from portico_rx.operators import Absence, absent, batch, debounce_by, rate_limit
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.testing import RecordingJobCreator, advance, settle


class QueueLikeSource:
    """Emits events with deliveries whose ack/nack are recorded, like a broker would."""

    def __init__(self, scheduler: HistoricalScheduler) -> None:
        self.scheduler = scheduler
        self.observers: list[Any] = []
        self.settled: dict[str, str] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.observable: reactivex.Observable[Any] = reactivex.create(self._subscribe)

    def _subscribe(self, observer: Any, _scheduler: Any = None) -> Any:
        self.observers.append(observer)
        return reactivex.disposable.Disposable(lambda: self.observers.remove(observer))

    def push(self, message_id: str, event: Any) -> Delivery:
        delivery = Delivery(
            source="fake-broker",
            seen_at=self.scheduler.now,
            event_id=message_id,
            idempotency_key=message_id,
            ack=lambda: self.settled.__setitem__(message_id, "ack"),
            nack=lambda requeue: self.settled.__setitem__(
                message_id, "requeue" if requeue else "dead"
            ),
        )
        self.deliveries[message_id] = delivery
        for observer in list(self.observers):
            deliver(observer, event, delivery)
        return delivery


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let real I/O (the SQLite thread) finish: wait until ``condition()`` holds."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def scheduler() -> HistoricalScheduler:
    return HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))


async def test_debounce_by_acks_after_the_job_and_requeues_held_messages_on_stop() -> None:
    """Superseded saves are acked as dropped, the last save of a burst after its job
    exists, and a save still held when the trigger stops goes back to the broker."""
    clock = scheduler()
    source = QueueLikeSource(clock)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        source.observable.pipe(
            debounce_by(lambda e: e["path"], 10),
            prx.to_job("file.process", payload=lambda e: e, queue_name="files"),
        ),
        job_creator=creator,
        name="saves",
        scheduler=clock,
    )
    await trigger.start()
    source.push("m1", {"path": "a.csv", "rev": 1})
    await advance(clock, 3)
    source.push("m2", {"path": "a.csv", "rev": 2})
    source.push("m3", {"path": "b.csv", "rev": 1})
    assert source.settled == {"m1": "ack"}  # superseded: acked as dropped at once
    assert source.deliveries["m1"].outcome is prx.Outcome.DROPPED
    await advance(clock, 9)
    assert source.settled == {"m1": "ack"}, "held messages must not be acked early"
    await advance(clock, 2)
    assert sorted((j.payload["path"], j.payload["rev"]) for j in creator.jobs) == [
        ("a.csv", 2),
        ("b.csv", 1),
    ]
    assert source.settled == {"m1": "ack", "m2": "ack", "m3": "ack"}
    assert source.deliveries["m2"].outcome is prx.Outcome.CREATED
    job = creator.jobs[0]
    assert job.metadata["event_id"] in ("m2", "m3")
    assert job.metadata["idempotency_key"] == f"saves:file.process:{job.metadata['event_id']}"
    source.push("m4", {"path": "c.csv", "rev": 1})
    await trigger.stop()
    assert source.settled["m4"] == "requeue"
    assert len(creator.jobs) == 2


async def test_batch_makes_one_job_per_batch_in_each_job_queue(job_service: JobService) -> None:
    """Five messages, batches of three: two jobs in the queue (memory and SQLite), every
    message acked only after its batch's job exists."""
    clock = scheduler()
    source = QueueLikeSource(clock)
    trigger = prx.PipelineTrigger(
        source.observable.pipe(
            batch(3, max_time=30),
            prx.to_job("rows.import", payload=lambda rows: {"ids": [r["id"] for r in rows]}),
        ),
        job_creator=job_service,
        name="importer",
        scheduler=clock,
    )
    await trigger.start()
    for n in range(5):
        source.push(f"m{n}", {"id": n})
    await until(lambda: len(source.settled) == 3)
    assert source.settled == {"m0": "ack", "m1": "ack", "m2": "ack"}
    await advance(clock, 31)
    await until(lambda: len(source.settled) == 5)
    await trigger.stop()
    jobs = sorted(await job_service.list_jobs(), key=lambda j: j.payload["ids"])
    assert [j.payload["ids"] for j in jobs] == [[0, 1, 2], [3, 4]]
    assert [j.metadata["batch_size"] for j in jobs] == [3, 2]
    assert jobs[0].metadata["batch_event_ids"] == ["m0", "m1", "m2"]
    assert jobs[0].idempotency_key is not None and jobs[0].idempotency_key.startswith(
        "importer:rows.import:batch:"
    )
    assert source.settled == {f"m{n}": "ack" for n in range(5)}
    assert all(d.outcome is prx.Outcome.CREATED for d in source.deliveries.values())


async def test_a_batch_that_cannot_be_created_nacks_every_member() -> None:
    clock = scheduler()
    source = QueueLikeSource(clock)
    trigger = prx.PipelineTrigger(
        source.observable.pipe(
            batch(2, max_time=5), prx.to_job("rows.import", payload=lambda r: {"n": len(r)})
        ),
        job_creator=RecordingJobCreator(fail_first=100),
        name="doomed",
        scheduler=clock,
        retry=prx.RetryPolicy(max_attempts=2, initial_delay=1, jitter=0),
    )
    await trigger.start()
    source.push("a", 1)
    source.push("b", 2)
    await advance(clock, 5)
    await trigger.stop()
    assert source.settled == {"a": "dead", "b": "dead"}
    [letter] = trigger.dead_letters
    assert letter.stage == "create_job" and letter.attempts == 2


async def test_rate_limit_dead_letters_the_excess_and_creates_the_rest() -> None:
    clock = scheduler()
    source = QueueLikeSource(clock)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        source.observable.pipe(
            rate_limit(2, per=60, key=lambda e: e["tenant"], excess="dead_letter"),
            prx.to_job("tenant.sync", payload=lambda e: e),
        ),
        job_creator=creator,
        name="limited",
        scheduler=clock,
    )
    await trigger.start()
    for n in range(4):
        source.push(f"t1-{n}", {"tenant": "t1", "n": n})
    source.push("t2-0", {"tenant": "t2", "n": 0})
    await advance(clock, 61)
    source.push("t1-4", {"tenant": "t1", "n": 4})
    await advance(clock, 1)
    await trigger.stop()
    assert sorted((j.payload["tenant"], j.payload["n"]) for j in creator.jobs) == [
        ("t1", 0),
        ("t1", 1),
        ("t1", 4),
        ("t2", 0),
    ]
    assert source.settled["t1-2"] == source.settled["t1-3"] == "dead"
    assert {d.stage for d in trigger.dead_letters} == {"rate_limit"}
    assert "RateLimitExceededError" in trigger.dead_letters[0].error
    assert trigger.get_health().dead_lettered_count == 2


async def test_rate_limit_delay_acks_each_message_after_its_late_job() -> None:
    clock = scheduler()
    source = QueueLikeSource(clock)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        source.observable.pipe(
            rate_limit(1, per=10, excess="delay"),
            prx.to_job("slow.api", payload=lambda n: {"n": n}),
        ),
        job_creator=creator,
        name="paced",
        scheduler=clock,
    )
    await trigger.start()
    for n in range(3):
        source.push(f"m{n}", n)
    await settle()
    assert [j.payload["n"] for j in creator.jobs] == [0]
    assert source.settled == {"m0": "ack"}
    await advance(clock, 10)
    assert [j.payload["n"] for j in creator.jobs] == [0, 1]
    assert source.settled == {"m0": "ack", "m1": "ack"}
    await trigger.stop()
    assert source.settled["m2"] == "requeue"


async def test_absent_turns_a_missing_heartbeat_into_one_keyed_job() -> None:
    """No heartbeat from a device for 5 minutes: one job, with a deterministic key."""
    clock = scheduler()
    source = QueueLikeSource(clock)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        source.observable.pipe(
            absent(300, key=lambda beat: beat["device"], expect=["pump-2"]),
            prx.to_job(
                "device.alert",
                payload=lambda a: {"device": a.key, "deadline": a.deadline.isoformat()},
                priority=10,
            ),
        ),
        job_creator=creator,
        name="heartbeats",
        scheduler=clock,
    )
    await trigger.start()
    for minute in range(0, 12, 2):
        source.push(f"b{minute}", {"device": "pump-1"})
        await advance(clock, 120, step=60)
    await advance(clock, 300, step=60)
    await trigger.stop()
    assert all(v == "ack" for v in source.settled.values())  # heartbeats: consumed
    alerts = [(j.payload["device"], j.payload["deadline"]) for j in creator.jobs]
    assert alerts == [
        ("pump-2", "2025-01-01T00:05:00+00:00"),
        ("pump-1", "2025-01-01T00:15:00+00:00"),
    ]
    assert creator.jobs[0].priority == 10
    assert creator.jobs[0].metadata["idempotency_key"] == (
        "heartbeats:device.alert:pump-2:2025-01-01T00:05:00+00:00"
    )
    assert creator.jobs[0].metadata["source"] == "absent"


def test_absence_is_a_frozen_value() -> None:
    absence = Absence(key="k", deadline=datetime(2025, 1, 1, tzinfo=UTC), within=5)
    assert absence.model_dump(mode="json")["deadline"] == "2025-01-01T00:00:00Z"
    try:
        absence.key = "other"  # type: ignore[misc]
    except Exception as exc:  # pydantic's frozen error
        assert "frozen" in str(exc).lower()
    else:
        raise AssertionError("Absence must be frozen")
