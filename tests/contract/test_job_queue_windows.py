"""Scoped idempotency on every job store: "once per customer per day", end to end.

A key given with ``to_job(idempotency_window=...)`` is folded with its window's start
(``provenance.window_key``), so the store's own unique key makes one job per key per
window: in one process, across replicas sharing a store, and a new one once the window
turns. Run against every adapter (memory, SQLite, PostgreSQL, Redis); the replica case
against two queue objects on one store (two connections, as two processes have).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import reactivex
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.pipeline.delivery import Delivery, Outcome, deliver
from portico_rx.pipeline.provenance import window_key, window_start
from portico_rx.ports.job_queue import JobQueue

START = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def once_per_customer_per_day(subject: reactivex.Subject[Any]) -> Any:
    return subject.pipe(
        prx.to_job(
            "email.digest",
            payload=lambda e: {"customer": e["customer"]},
            idempotency_key=lambda e: f"digest:{e['customer']}",
            idempotency_window=DAY,
        )
    )


def events(seed: int, count: int) -> list[tuple[str, datetime]]:
    """(customer, source time) pairs over three UTC days, in time order."""
    rng = random.Random(seed)
    stamps = sorted(START + timedelta(minutes=rng.randrange(0, 3 * 24 * 60)) for _ in range(count))
    return [(f"c{rng.randrange(5)}", stamp) for stamp in stamps]


async def run_replicas(
    queues: list[JobQueue], stream: list[tuple[str, datetime]]
) -> list[prx.PipelineTrigger]:
    """One trigger per queue object (replicas of one trigger), each seeing every event
    (a broker redelivering to every replica, the worst case)."""
    vt = HistoricalScheduler(initial_clock=START)
    subjects = [reactivex.Subject() for _ in queues]
    triggers = [
        prx.PipelineTrigger(
            once_per_customer_per_day(subject),
            prx.JobService(queue),
            name="digests",
            scheduler=vt,
        )
        for subject, queue in zip(subjects, queues, strict=True)
    ]
    for trigger in triggers:
        await trigger.start()
    for n, (customer, at) in enumerate(stream):
        deliveries = []
        for subject in subjects:
            delivery = Delivery(
                source="test:digests",
                seen_at=at + timedelta(seconds=30),
                occurred_at=at,
                event_id=str(n),
                idempotency_key=str(n),
            )
            deliver(subject, {"customer": customer}, delivery)
            deliveries.append(delivery)
        for delivery in deliveries:  # one event at a time: settled before the next
            assert await delivery.wait_settled() is Outcome.CREATED
    for trigger in triggers:
        await trigger.stop()
    return triggers


def expected_keys(stream: list[tuple[str, datetime]]) -> set[str]:
    """The reference model: one job per (customer, UTC day of the event's own time)."""
    return {window_key(f"digest:{customer}", at, DAY) for customer, at in stream}


async def test_one_job_per_customer_per_day_in_every_store(job_queue: JobQueue) -> None:
    stream = events(seed=7, count=60)
    (trigger,) = await run_replicas([job_queue], stream)
    jobs = await job_queue.list(limit=1000)
    keys = [job.idempotency_key for job in jobs]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected_keys(stream)
    health = trigger.get_health()
    assert health.jobs_created_count == len(jobs)
    assert health.duplicates_count == len(stream) - len(jobs)
    for job in jobs:  # the key says the UTC day of the customer's events
        day = window_start(datetime.fromisoformat(job.metadata["seen_at"]), DAY)
        assert job.idempotency_key == f"digest:{job.payload['customer']}@{day:%Y-%m-%dT%H:%M:%SZ}"


async def test_a_new_window_makes_a_new_job_for_the_same_key(job_queue: JobQueue) -> None:
    evening = START + timedelta(hours=3, minutes=59)  # 23:59 UTC
    stream = [("c1", evening), ("c1", evening + timedelta(seconds=30)), ("c1", evening + DAY / 2)]
    await run_replicas([job_queue], stream)
    jobs = await job_queue.list(limit=10)
    assert sorted(job.idempotency_key or "" for job in jobs) == [
        "digest:c1@2026-12-01T00:00:00Z",
        "digest:c1@2026-12-02T00:00:00Z",
    ]


async def test_replicas_on_one_store_create_once_per_window(shared_store: Any) -> None:
    stream = events(seed=11, count=40)
    async with shared_store(visibility_timeout=None) as (one, two):
        triggers = await run_replicas([one, two], stream)
        jobs = await one.list(limit=1000)
    assert {job.idempotency_key for job in jobs} == expected_keys(stream)
    assert len(jobs) == len(expected_keys(stream))
    created = sum(t.get_health().jobs_created_count for t in triggers)
    duplicates = sum(t.get_health().duplicates_count for t in triggers)
    assert created == len(jobs)  # each job counted once, by the replica that wrote it
    assert created + duplicates == 2 * len(stream)
