"""The JobQueue contract for ``dequeue(None)``: every queue, on every adapter in
``JOB_QUEUE_FACTORIES`` (a worker started without ``queue_names`` consumes this way)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from portico_rx.models import Job, JobStatus
from portico_rx.ports.job_queue import JobQueue

from .conftest import LeaseClock, Pair

NOW = datetime.now(UTC)
LEASE = 30.0
SharedStore = Callable[..., contextlib.AbstractAsyncContextManager[Pair]]


def job(**fields: Any) -> Job:
    return Job(job_type="contract.any", **fields)


async def drain_every_queue(queue: JobQueue, **kwargs: Any) -> list[Job]:
    claimed: list[Job] = []
    while (next_job := await queue.dequeue(None, **kwargs)) is not None:
        claimed.append(next_job)
    return claimed


async def test_dequeue_none_takes_from_every_queue_by_priority_then_age(
    job_queue: JobQueue,
) -> None:
    for name, queue_name, priority in [
        ("a", "file_processing", 0),
        ("b", "emails", 5),
        ("c", "default", 0),
        ("d", "reports", 9),
        ("e", "emails", -1),
    ]:
        await job_queue.enqueue(job(queue_name=queue_name, priority=priority, payload={"n": name}))
    claimed = await drain_every_queue(job_queue)
    assert [j.payload["n"] for j in claimed] == ["d", "b", "a", "c", "e"]
    assert all(j.status is JobStatus.RUNNING and j.attempts == 1 for j in claimed)
    assert await job_queue.dequeue(None) is None


async def test_dequeue_none_finds_a_queue_that_appears_later(job_queue: JobQueue) -> None:
    """An empty store, then a job in a queue nobody used before: the next dequeue takes it."""
    assert await job_queue.dequeue(None) is None
    await job_queue.enqueue(job(queue_name="brand_new", payload={"n": 1}))
    claimed = await job_queue.dequeue(None)
    assert claimed is not None and claimed.queue_name == "brand_new"


async def test_dequeue_none_respects_scheduled_times(job_queue: JobQueue) -> None:
    due = NOW + timedelta(hours=1)
    await job_queue.enqueue(job(queue_name="later", scheduled_at=due, status=JobStatus.SCHEDULED))
    assert await job_queue.dequeue(None, now=NOW) is None
    claimed = await job_queue.dequeue(None, now=due)
    assert claimed is not None and claimed.queue_name == "later"


async def test_dequeue_none_claims_an_expired_lease_again(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        await dead.enqueue(job(queue_name="emails"))
        assert (await dead.dequeue(None)) is not None
        assert await survivor.dequeue(None) is None  # leased to the dead worker
        lease_clock.advance(LEASE + 1)
        again = await survivor.dequeue(None)
        assert again is not None and again.queue_name == "emails" and again.attempts == 2
