"""The JobQueue contract of ``enqueue_many``, on every adapter in ``JOB_QUEUE_FACTORIES``:
one call stores what enqueueing the jobs one after another would, with the same
``(job, created)`` answers in order — keys repeated inside the batch or already stored,
an id already stored, jobs without keys — and a reference model (hypothesis) checks it
against the port's default (one ``enqueue`` per job)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portico_rx.models import Job, JobStatus
from portico_rx.ports.job_queue import JobQueue


def job(key: str | None = None, **fields: Any) -> Job:
    return Job(job_type="contract.many", idempotency_key=key, **fields)


async def test_a_batch_stores_every_job_and_returns_them_in_order(job_queue: JobQueue) -> None:
    jobs = [job(f"many:{i:03d}", payload={"i": i}, priority=i % 3) for i in range(50)]
    jobs.append(job(None, payload={"no": "key"}))
    outcomes = await job_queue.enqueue_many(jobs)
    assert [created for _, created in outcomes] == [True] * len(jobs)
    assert [stored.id for stored, _ in outcomes] == [j.id for j in jobs]
    for original in jobs:
        stored = await job_queue.get(original.id)
        assert stored is not None
        assert (stored.payload, stored.priority, stored.idempotency_key) == (
            original.payload,
            original.priority,
            original.idempotency_key,
        )
        assert stored.status is JobStatus.PENDING
    listed = await job_queue.list(job_type="contract.many", limit=1000)
    assert len(listed) == len(jobs)


async def test_repeated_and_existing_keys_give_the_first_job(job_queue: JobQueue) -> None:
    first, _ = await job_queue.enqueue(job("many:old", payload={"v": "old"}))
    batch = [
        job("many:new", payload={"v": 1}),
        job("many:old", payload={"v": 2}),  # already stored
        job("many:new", payload={"v": 3}),  # repeated inside the batch
        job(None, payload={"v": 4}),
    ]
    outcomes = await job_queue.enqueue_many(batch)
    assert [created for _, created in outcomes] == [True, False, False, True]
    assert outcomes[1][0].id == first.id and outcomes[1][0].payload == {"v": "old"}
    assert outcomes[2][0].id == batch[0].id and outcomes[2][0].payload == {"v": 1}
    assert len(await job_queue.list(job_type="contract.many", limit=100)) == 3


async def test_a_repeated_batch_creates_nothing_new(job_queue: JobQueue) -> None:
    jobs = [job(f"many:again:{i}") for i in range(20)]
    await job_queue.enqueue_many(jobs)
    again = await job_queue.enqueue_many(jobs)  # e.g. retried after a lost reply
    assert [created for _, created in again] == [False] * 20
    assert [stored.id for stored, _ in again] == [j.id for j in jobs]
    assert len(await job_queue.list(job_type="contract.many", limit=100)) == 20


async def test_an_empty_batch_is_a_no_op(job_queue: JobQueue) -> None:
    assert await job_queue.enqueue_many([]) == []


async def test_batched_jobs_are_dequeued_by_priority(job_queue: JobQueue) -> None:
    await job_queue.enqueue_many([job(f"many:p{p}", priority=p) for p in (1, 5, 3)])
    taken = [await job_queue.dequeue(["default"]) for _ in range(3)]
    assert [t.priority for t in taken if t is not None] == [5, 3, 1]


keys = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    before=st.lists(keys, max_size=4),
    batch=st.lists(keys, min_size=1, max_size=12),
)
async def test_enqueue_many_equals_one_enqueue_after_another(
    job_queue: JobQueue, before: list[str | None], batch: list[str | None]
) -> None:
    run = uuid.uuid4().hex  # each example its own keys in the shared fixture store
    scoped = [None if k is None else f"{run}:{k}" for k in batch]
    stored_before: dict[str, uuid.UUID] = {}
    for key in before:
        stored, _ = await job_queue.enqueue(job(None if key is None else f"{run}:{key}"))
        if stored.idempotency_key is not None:
            stored_before.setdefault(stored.idempotency_key, stored.id)
    jobs = [job(key) for key in scoped]
    outcomes = await job_queue.enqueue_many(jobs)
    # the reference model: the port's default, one enqueue after another, by hand
    holder = dict(stored_before)
    expected: list[tuple[uuid.UUID, bool]] = []
    for one in jobs:
        key = one.idempotency_key
        if key is not None and key in holder:
            expected.append((holder[key], False))
        else:
            if key is not None:
                holder[key] = one.id
            expected.append((one.id, True))
    assert [(stored.id, created) for stored, created in outcomes] == expected
    for key, job_id in holder.items():
        found = await job_queue.get_by_key(key)
        assert found is not None and found.id == job_id


@pytest.mark.parametrize("size", [1, 1500])
async def test_large_batches_are_split_but_complete(job_queue: JobQueue, size: int) -> None:
    jobs = [job(f"many:big:{i:05d}") for i in range(size)]
    outcomes = await job_queue.enqueue_many(jobs)
    assert sum(created for _, created in outcomes) == size
    greatest = await job_queue.greatest_keys(["many:big:"])
    assert greatest == {"many:big:": f"many:big:{size - 1:05d}"}
