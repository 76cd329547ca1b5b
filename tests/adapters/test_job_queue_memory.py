"""MemoryJobQueue stores rows, not Job objects: the same jobs come back, and the cyclic
garbage collector tracks nothing per stored job with flat payload and metadata (a row of
scalars, its JSON values in dicts of their own) instead of five objects."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

from portico_rx.adapters.job_queue.base import job_matches
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobStatus


async def test_a_stored_job_is_no_object_for_the_garbage_collector() -> None:
    service = JobService(MemoryJobQueue())
    gc.collect()
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2000):
        await service.create_job(
            "email.send",
            {"to": f"u{i}@example.com", "n": i},
            "emails",
            5,
            {"idempotency_key": f"k{i}"},
        )
    gc.collect()
    gc.collect()
    grown = len(gc.get_objects()) - before
    # rows of scalars are untracked at the collector's first pass, flat dicts never
    # tracked; a row holding its dicts would stay tracked (2 000), Job objects 10 000
    assert grown <= 50, f"{grown} tracked objects for 2000 stored jobs"
    job = (await service.list_jobs(limit=1))[0]
    assert job.payload == {"to": "u1999@example.com", "n": 1999}
    assert job.metadata["idempotency_key"] == "k1999"


async def test_jobs_read_back_equal_the_stored_ones() -> None:
    queue = MemoryJobQueue()
    job = Job(
        job_type="a.b",
        queue_name="q",
        payload={"x": [1, {"y": None}]},
        priority=3,
        metadata={"m": "v"},
        idempotency_key="key-1",
        max_retries=2,
    )
    assert await queue.enqueue(job) == (job, True)
    again = Job(job_type="a.b", idempotency_key="key-1")
    assert await queue.enqueue(again) == (job, False)
    got = await queue.get(job.id)
    assert got == job and got.model_dump() == job.model_dump()
    assert got.model_fields_set == set(Job.model_fields)  # as model_construct (the SQLite store)
    assert type(got.id) is type(job.id) and got.status is JobStatus.PENDING
    assert await queue.get_by_key("key-1") == job

    claimed = await queue.dequeue(["q"])
    assert claimed is not None
    assert claimed == job.model_copy(
        update={"status": JobStatus.RUNNING, "attempts": 1, "started_at": claimed.started_at}
    )
    done = await queue.complete(job.id, {"ok": True})
    assert (done.status, done.result, done.error) == (JobStatus.COMPLETED, {"ok": True}, None)
    assert await queue.get(job.id) == done


async def test_failed_job_rescheduled_from_its_row() -> None:
    queue = MemoryJobQueue()
    job = Job(job_type="a.b")
    await queue.enqueue(job)
    assert await queue.dequeue(["default"]) is not None
    later = datetime.now(UTC) + timedelta(hours=1)
    retried = await queue.fail(job.id, "boom", retry_at=later)
    assert (retried.status, retried.error, retried.scheduled_at) == (
        JobStatus.SCHEDULED,
        "boom",
        later,
    )
    assert await queue.dequeue(["default"]) is None
    again = await queue.dequeue(["default"], now=later)
    assert again is not None and again.attempts == 2 and again.status is JobStatus.RUNNING


async def test_list_on_rows_is_job_matches() -> None:
    queue = MemoryJobQueue()
    jobs = [
        Job(job_type=t, queue_name=q, idempotency_key=k)
        for t, q, k in [
            ("a", "q1", "x:1"),
            ("b", "q1", None),
            ("a", "q2", "x:2"),
            ("a", "q1", "y:1"),
        ]
    ]
    for job in jobs:
        await queue.enqueue(job)
    await queue.dequeue(["q2"])
    stored = [await queue.get(job.id) for job in jobs]
    for filters in [
        {},
        {"job_type": "a"},
        {"queue_name": "q1", "job_type": "a"},
        {"status": JobStatus.RUNNING},
        {"status": JobStatus.PENDING, "key_prefix": "x:"},
        {"key_prefix": "y"},
    ]:
        listed = await queue.list(**filters)  # type: ignore[arg-type]
        expected = [job for job in stored if job is not None and job_matches(job, **filters)]  # type: ignore[arg-type]
        assert sorted(str(j.id) for j in listed) == sorted(str(j.id) for j in expected), filters
