"""JobSink.create: the sink's one creation, awaited in the caller's task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from unittest.mock import AsyncMock

import pytest

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobRequest, trusted_request
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, Outcome
from portico_rx.pipeline.health import HealthCounters
from portico_rx.pipeline.provenance import Provenance
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.pipeline.sink import JobSink
from portico_rx.ports.job_creator import JobCreator, request_entry
from portico_rx.testing import RecordingJobCreator

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005, seed=1)
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def sink_for(creator: JobCreator) -> JobSink:
    return JobSink(
        creator,
        name="orders",
        scheduler=clock.resolve_scheduler(None),
        counters=HealthCounters(),
        retry=FAST_RETRY,
    )


@pytest.fixture
async def started() -> AsyncIterator[tuple[JobSink, RecordingJobCreator]]:
    creator = RecordingJobCreator(fail_first=1)
    sink = sink_for(creator)
    sink.start()
    yield sink, creator
    await sink.drain(1)


def delivered(key: str) -> tuple[JobRequest, Delivery]:
    delivery = Delivery(source="test:orders", seen_at=AT, event_id=key, idempotency_key=key)
    request = trusted_request(
        job_type="order.ship",
        payload={"key": key},
        queue_name="q",
        priority=1,
        metadata={},
        idempotency_key=None,
        claim=delivery.claim(),
        delivery=delivery,
    )
    delivery.seal()
    return request, delivery


async def test_create_and_submit_make_the_same_job(started: Any) -> None:
    sink, creator = started
    direct, direct_delivery = delivered("a")
    queued, queued_delivery = delivered("b")
    job = await sink.create(direct)  # its first attempt fails: retried like a submitted one
    sink.submit(queued)
    assert await queued_delivery.wait_settled() is Outcome.CREATED
    assert direct_delivery.outcome is Outcome.CREATED
    assert job is not None and direct_delivery.job_ids == [str(job.id)]
    assert [j.idempotency_key for j in creator.jobs] == [
        "orders:order.ship:a",
        "orders:order.ship:b",
    ]
    made, queued_job = (call["metadata"] for call in creator.calls[1:])
    assert {k: v for k, v in made.items() if k not in ("event_id", "idempotency_key")} == {
        k: v for k, v in queued_job.items() if k not in ("event_id", "idempotency_key")
    }
    assert (sink.counters.events_seen, sink.counters.jobs_created, sink.counters.retries) == (
        2,
        2,
        1,
    )
    assert sink.counters.in_flight == 0


async def test_create_out_of_retries_returns_none_and_dead_letters() -> None:
    sink = sink_for(RecordingJobCreator(fail_first=10))
    request, delivery = delivered("c")
    assert await sink.create(request) is None
    assert delivery.outcome is Outcome.FAILED
    [letter] = sink.dead_letters
    assert (letter.stage, letter.attempts, letter.event_id) == ("create_job", 3, "c")
    assert sink.counters.in_flight == 0 and sink.counters.dead_lettered == 1


async def test_drain_waits_for_creations_in_callers_tasks() -> None:
    release = asyncio.Event()

    class Slow(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> Job:
            await release.wait()
            return await super().create_job(*args, **kwargs)

    creator = Slow()
    sink = sink_for(creator)
    sink.start()
    request, delivery = delivered("d")
    creating = asyncio.ensure_future(sink.create(request))
    await asyncio.sleep(0)
    draining = asyncio.ensure_future(sink.drain(5))
    await asyncio.sleep(0.02)
    assert not draining.done()
    release.set()
    assert await draining == 0
    assert (await creating) is not None and delivery.outcome is Outcome.CREATED


async def test_drain_timeout_counts_creations_still_running_in_their_tasks() -> None:
    release = asyncio.Event()

    class Slow(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> Job:
            await release.wait()
            return await super().create_job(*args, **kwargs)

    sink = sink_for(Slow())
    request, _delivery = delivered("e")
    creating = asyncio.ensure_future(sink.create(request))
    await asyncio.sleep(0)
    assert await sink.drain(0.01) == 1
    release.set()
    assert await creating is not None  # the caller's task finishes its creation


async def test_a_bare_request_is_created_without_metadata() -> None:
    """No delivery, no key, no metadata: provenance has nothing to record, and the sink
    calls ``create_job`` exactly as asked (the spec's FAQ assertion)."""
    assert Provenance("orders").metadata("t", {}, None, None) == {}
    creator = RecordingJobCreator()
    sink = sink_for(creator)
    bare = JobRequest(job_type="t", payload={"n": 1})
    keyed = JobRequest(job_type="t", idempotency_key="k")
    assert await sink.create(bare) is not None
    assert await sink.create(keyed) is not None
    assert creator.calls[0]["metadata"] is None  # the port's default: no metadata= passed
    assert creator.calls[1]["metadata"] == {
        "trigger": "orders",
        "source": "observable",
        "idempotency_key": "k",
    }


# -- which creation entry the sink uses ------------------------------------------------


class _LoggingService(JobService):
    """A user subclass that overrides only the spec's ``create_job``."""

    def __init__(self) -> None:
        super().__init__(MemoryJobQueue())
        self.calls: list[str] = []

    async def create_job(self, job_type: str, *args: Any, **kwargs: Any) -> Job:
        self.calls.append(job_type)
        return await super().create_job(job_type, *args, **kwargs)


async def test_a_job_service_reports_a_repeated_key_as_a_duplicate_delivery() -> None:
    service = JobService(MemoryJobQueue())
    sink = sink_for(service)
    first_request, first = delivered("17")
    again_request, again = delivered("17")
    other_request, other = delivered("18")
    for request, delivery in (
        (first_request, first),
        (again_request, again),
        (other_request, other),
    ):
        job = await sink.create(request)
        assert job is not None and delivery.job_ids == [str(job.id)]
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert first.job_ids == again.job_ids != other.job_ids
    assert len(await service.list_jobs()) == 2


async def test_a_subclass_that_overrides_create_job_gets_every_job_through_it() -> None:
    service = _LoggingService()
    assert request_entry(service) != service.create_from_request
    sink = sink_for(service)
    request, delivery = delivered("17")
    job = await sink.create(request)
    assert service.calls == ["order.ship"]
    assert job is not None and job.idempotency_key == "orders:order.ship:17"
    assert not delivery.duplicate  # this creator's create_job cannot say


async def test_the_creation_entry_follows_the_most_specific_override() -> None:
    service = JobService(MemoryJobQueue())
    assert request_entry(service) == service.create_from_request
    patched = JobService(MemoryJobQueue())
    patched.create_job = AsyncMock(return_value=Job(job_type="x"))  # type: ignore[method-assign]
    request, _ = delivered("1")
    await request_entry(patched)(request, {"idempotency_key": "k"})
    patched.create_job.assert_awaited_once_with(
        job_type="order.ship",
        payload={"key": "1"},
        queue_name="q",
        priority=1,
        metadata={"idempotency_key": "k"},
    )
    mock = AsyncMock(spec=JobCreator)
    mock.create_job.return_value = Job(job_type="x")
    await request_entry(mock)(request, None)
    mock.create_job.assert_awaited_once_with(
        job_type="order.ship", payload={"key": "1"}, queue_name="q", priority=1
    )
    mock.create_from_request.assert_not_awaited()
