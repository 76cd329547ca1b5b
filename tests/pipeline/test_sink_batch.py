"""The sink creates what is queued together when the creator can (``batch_entry``): one
creator call per drained batch, with the same retries, dead letters, settlement and
health per request as one request at a time — checked with a store that fails whole
batches and single keys, against a reference model (hypothesis)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import QueueUnavailableError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobRequest
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.pipeline.sink import MAX_BATCH
from portico_rx.ports.job_creator import JobCreator, batch_entry, request_entry
from portico_rx.testing import RecordingJobCreator


class FlakyQueue(MemoryJobQueue):
    """A memory store that fails chosen batch calls whole, and chosen keys always."""

    def __init__(self, failing_calls: set[int], bad_keys: set[str]) -> None:
        super().__init__()
        self.failing_calls = failing_calls
        self.bad_keys = bad_keys
        self.calls = itertools.count()
        self.batch_sizes: list[int] = []
        self.single_calls = 0

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        call = next(self.calls)
        self.batch_sizes.append(len(jobs))
        await asyncio.sleep(0)  # a store call takes time: the rest of the burst queues up
        if call in self.failing_calls or any(j.idempotency_key in self.bad_keys for j in jobs):
            raise QueueUnavailableError(f"batch call {call} failed (test)")
        return await super().enqueue_many(jobs)

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        self.single_calls += 1
        if job.idempotency_key in self.bad_keys:
            raise QueueUnavailableError(f"key {job.idempotency_key} is refused (test)")
        return await super().enqueue(job)


class Settlements:
    def __init__(self) -> None:
        self.outcomes: dict[int, list[str]] = {}

    def delivery(self, n: int) -> Delivery:
        record = self.outcomes.setdefault(n, [])
        return Delivery(
            source="test",
            seen_at=datetime.now(UTC),
            event_id=str(n),
            ack=lambda: record.append("ack"),
            nack=lambda requeue: record.append(f"nack:{requeue}"),
        )


def trigger_over(creator: JobCreator, subject: reactivex.Subject[int]) -> prx.PipelineTrigger:
    return prx.PipelineTrigger(
        subject.pipe(
            prx.to_job("n.seen", payload=lambda n: {"n": n}, idempotency_key=lambda n: f"n:{n}")
        ),
        job_creator=creator,
        name="batched",
        max_concurrency=2,
        retry=RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002, seed=1),
    )


async def burst(trigger: prx.PipelineTrigger, subject: Any, count: int) -> Settlements:
    settled = Settlements()
    await trigger.start()
    for n in range(count):
        deliver(subject, n, settled.delivery(n))
    await trigger.stop()
    return settled


async def test_a_burst_is_created_in_few_store_calls_each_job_once() -> None:
    store = FlakyQueue(set(), set())
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = trigger_over(JobService(store), subject)
    settled = await burst(trigger, subject, 500)
    jobs = await store.list(limit=1000)
    assert sorted(j.idempotency_key for j in jobs) == sorted(f"n:{n}" for n in range(500))
    assert sorted(j.payload["n"] for j in jobs) == list(range(500))
    assert all(outcome == ["ack"] for outcome in settled.outcomes.values())
    assert len(settled.outcomes) == 500
    assert store.single_calls == 0 and sum(store.batch_sizes) == 500
    # the queue drained MAX_BATCH at a time: 500 / 64 -> 8 store calls, not 500
    assert len(store.batch_sizes) <= -(-500 // MAX_BATCH) + 2
    assert max(store.batch_sizes) == MAX_BATCH
    health = trigger.get_health()
    assert health.jobs_created_count == 500 and health.dead_lettered_count == 0
    assert health.in_flight == 0


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=120),
    failing_calls=st.sets(st.integers(min_value=0, max_value=6), max_size=4),
    bad=st.sets(st.integers(min_value=0, max_value=119), max_size=5),
)
async def test_a_failing_store_mid_batch_loses_and_duplicates_nothing(
    count: int, failing_calls: set[int], bad: set[int]
) -> None:
    bad_keys = {f"n:{n}" for n in bad if n < count}
    store = FlakyQueue(failing_calls, bad_keys)
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = trigger_over(JobService(store), subject)
    settled = await burst(trigger, subject, count)
    # the model: a refused key is dead-lettered after its retries; every other is created
    jobs = await store.list(limit=1000)
    keys = [j.idempotency_key for j in jobs]
    assert len(keys) == len(set(keys))
    assert set(keys) == {f"n:{n}" for n in range(count)} - bad_keys
    for n in range(count):
        expected = ["nack:False"] if f"n:{n}" in bad_keys else ["ack"]
        assert settled.outcomes[n] == expected, n
    letters = trigger.dead_letters
    assert sorted(d.request.idempotency_key for d in letters) == sorted(bad_keys)
    assert all(d.stage == "create_job" and d.attempts == 3 for d in letters)
    health = trigger.get_health()
    assert health.jobs_created_count == count - len(bad_keys)
    assert health.dead_lettered_count == len(bad_keys) and health.in_flight == 0


async def test_stopping_during_a_batch_abandons_each_request_once() -> None:
    class StuckQueue(MemoryJobQueue):
        async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
            await asyncio.Event().wait()  # never answers
            raise AssertionError("unreachable")

    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("n.seen", payload=lambda n: {"n": n})),
        job_creator=JobService(StuckQueue()),
        name="stuck",
        max_concurrency=1,
        stop_timeout=0.05,
    )
    settled = Settlements()
    await trigger.start()
    for n in range(30):
        deliver(subject, n, settled.delivery(n))
    await asyncio.sleep(0.01)  # the one worker is inside enqueue_many with a batch
    await trigger.stop()
    assert all(outcome == ["nack:True"] for outcome in settled.outcomes.values())
    assert len(settled.outcomes) == 30
    assert sorted(d.request.payload["n"] for d in trigger.dead_letters) == list(range(30))
    assert {d.stage for d in trigger.dead_letters} == {"stop"}


async def test_one_invalid_request_fails_alone_in_its_batch() -> None:
    service = JobService(MemoryJobQueue())
    good = JobRequest(job_type="a", payload={}, idempotency_key="ok")
    bad = JobRequest(job_type="a", payload={})
    outcomes = await service.create_many_from_requests(
        [(good, None), (bad, {"idempotency_key": 17}), (good, None)]
    )
    assert outcomes[0].created is True and outcomes[2].created is False
    assert isinstance(outcomes[1], prx.InvalidJobError)
    assert outcomes[2].job.id == outcomes[0].job.id


class OnlyCreateJob(JobService):
    async def create_job(self, *args: Any, **kwargs: Any) -> Job:
        self.seen = getattr(self, "seen", 0) + 1
        return await super().create_job(*args, **kwargs)


class OnlyFromRequest(JobService):
    async def create_from_request(self, request: JobRequest, metadata: Any = None) -> Any:
        return await super().create_from_request(request, metadata)


class AlsoMany(OnlyCreateJob):
    async def create_many_from_requests(self, entries: Any) -> Any:
        return await super().create_many_from_requests(entries)


def test_batch_entry_follows_the_rule_of_request_entry() -> None:
    queue = MemoryJobQueue()
    assert batch_entry(JobService(queue)) is not None
    assert batch_entry(OnlyCreateJob(queue)) is None
    assert batch_entry(OnlyFromRequest(queue)) is None
    assert batch_entry(AlsoMany(queue)) is not None
    assert batch_entry(RecordingJobCreator()) is None  # the port's default: one by one
    assert batch_entry(mock.AsyncMock(spec=JobCreator)) is None
    patched = JobService(queue)
    with mock.patch.object(patched, "create_job", wraps=patched.create_job):
        assert batch_entry(patched) is None
        assert request_entry(patched)  # the spec's create_job path, as before


async def test_a_subclass_overriding_create_job_sees_every_job_of_a_burst() -> None:
    creator = OnlyCreateJob(MemoryJobQueue())
    subject: reactivex.Subject[int] = reactivex.Subject()
    settled = await burst(trigger_over(creator, subject), subject, 300)
    assert creator.seen == 300
    assert all(outcome == ["ack"] for outcome in settled.outcomes.values())
