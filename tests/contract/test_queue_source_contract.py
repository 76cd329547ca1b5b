"""The queue-source contract, run against ``sources.rabbitmq``, ``sources.redis_stream``,
``sources.nats`` and ``sources.mqtt`` (each in a user pipeline ending in ``to_job``).

A published message arrives as a ``QueueMessage``; it is acked only once its job
exists (while ``create_job`` fails and is retried the broker still holds it); one whose
job cannot be created goes to the broker's dead-letter place; a redelivery of a message
whose job exists creates no second job. Broker state is read from the broker where it
can tell (see the capability flags in ``brokers.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from reactivex import operators as ops

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import InvalidJobError, QueueUnavailableError
from portico_rx.models import Job
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources.queues.consumer import QueueSource
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.testing import RecordingJobCreator

from .brokers import JOB_TYPE, Broker, open_broker

BROKER_KINDS = [
    pytest.param("rabbitmq", marks=pytest.mark.rabbitmq, id="rabbitmq"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis_stream"),
    pytest.param("nats", marks=pytest.mark.nats, id="nats"),
    pytest.param("mqtt", marks=pytest.mark.mqtt, id="mqtt"),
]


@pytest.fixture(params=BROKER_KINDS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """Each broker of ``BROKER_KINDS`` on fresh names, deleted afterwards."""
    async with open_broker(request.param) as opened:
        yield opened


async def eventually(check: Callable[[], Any | Awaitable[Any]], what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail after 15 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} within 15 s (last value {value!r})")
        await asyncio.sleep(0.02)


def pipeline(
    broker: Broker,
    source: QueueSource,
    creator: JobCreator,
    seen: list[QueueMessage],
    **options: Any,
) -> prx.PipelineTrigger:
    """The user's pipeline: ``source -> to_job(payload=the JSON body)``; every message the
    source emits is appended to ``seen``. One name per broker, as replicas share it."""
    return prx.PipelineTrigger(
        source.pipe(ops.do_action(seen.append), prx.to_job(JOB_TYPE, payload=_json_body)),
        job_creator=creator,
        name=f"contract-source-{broker.unique}",
        **options,
    )


def _json_body(message: QueueMessage) -> dict[str, Any]:
    body: dict[str, Any] = message.json_body()
    return body


def body(n: int) -> bytes:
    return json.dumps({"n": n}).encode()


async def test_a_published_message_arrives_as_a_queue_message(broker: Broker) -> None:
    creator = RecordingJobCreator()
    seen: list[QueueMessage] = []
    source = broker.source()
    async with pipeline(broker, source, creator, seen):
        assert await source.wait_connected()
        message_id = await broker.publish(body(1), "contract-1")
        await eventually(lambda: source.status.acked == 1, "the message acked")
    [message] = seen
    assert isinstance(message, QueueMessage)
    assert (message.broker, message.destination, message.message_id, message.body) == (
        broker.name,
        broker.destination,
        message_id,
        body(1),
    )
    assert message.redelivered is False
    [job] = creator.jobs
    assert (job.job_type, job.payload) == (JOB_TYPE, {"n": 1})
    assert job.metadata["broker"] == broker.name
    assert job.metadata["event_id"] == message_id
    assert job.idempotency_key is not None and job.idempotency_key.endswith(message_id)
    assert source.status.in_flight == 0
    if broker.counts_unacked:
        assert await broker.unacked() == 0


async def test_a_messages_w3c_trace_context_is_kept_in_its_job(broker: Broker) -> None:
    """``traceparent``/``tracestate`` in a message's headers (stream fields, MQTT v5 user
    properties) travel into the job's metadata, so a worker's span can join the trace."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    creator = RecordingJobCreator()
    seen: list[QueueMessage] = []
    source = broker.source()
    async with pipeline(broker, source, creator, seen):
        assert await source.wait_connected()
        trace = {"traceparent": traceparent, "tracestate": "vendor=7"}
        await broker.publish(body(1), "contract-traced", headers=trace)
        await broker.publish(body(2), "contract-bad", headers={"traceparent": "not-a-trace"})
        await eventually(lambda: source.status.acked == 2, "both messages acked")
    jobs = {job.payload["n"]: job for job in creator.jobs}
    assert jobs[1].metadata["traceparent"] == traceparent
    assert jobs[1].metadata["tracestate"] == "vendor=7"
    assert "traceparent" not in jobs[2].metadata  # a malformed one is not kept


class StoreDown(RecordingJobCreator):
    """Refuses every ``create_job`` (``QueueUnavailableError``) until ``healthy``; notes
    the source's ack count at the moment the job is created."""

    def __init__(self, source: QueueSource) -> None:
        super().__init__()
        self.source = source
        self.healthy = False
        self.refused = 0
        self.acked_when_created: int | None = None

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        if not self.healthy:
            self.refused += 1
            raise QueueUnavailableError("contract: the job store is down")
        job = await super().create_job(job_type, payload, queue_name, priority, metadata)
        self.acked_when_created = self.source.status.acked
        return job


async def test_a_message_is_acked_only_after_its_job_exists(broker: Broker) -> None:
    """While ``create_job`` fails and is retried the message stays unacked at the broker;
    once the job exists it is acked."""
    source = broker.source()
    creator = StoreDown(source)
    seen: list[QueueMessage] = []
    retry = prx.RetryPolicy(max_attempts=10_000, initial_delay=0.02, max_delay=0.05, jitter=0)
    async with pipeline(broker, source, creator, seen, retry=retry):
        assert await source.wait_connected()
        await broker.publish(body(1), "contract-1")
        await eventually(lambda: creator.refused >= 3, "three refused attempts")
        assert (source.status.acked, source.status.in_flight) == (0, 1)
        if broker.counts_unacked:
            assert await broker.unacked() == 1
        assert creator.refused >= 3 and creator.jobs == []
        creator.healthy = True
        await eventually(lambda: source.status.acked == 1, "the ack after the job exists")
        assert len(creator.jobs) == 1
        assert creator.acked_when_created == 0
        if broker.counts_unacked:
            await eventually(lambda: _is(broker.unacked(), 0), "the broker to see the ack")
    assert len(seen) == 1
    assert await broker.dead_letter_ids() == []


async def _is(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


class Refusing(RecordingJobCreator):
    """Refuses every job as invalid: a permanent failure, never retried."""

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        self.calls.append({"job_type": job_type, "payload": payload})
        raise InvalidJobError("payload", payload, "the contract refuses every payload")


FAILURES = {
    "retries_exhausted": (lambda: RecordingJobCreator(fail_first=1_000_000), 3),
    "permanent": (Refusing, 1),
}


@pytest.mark.parametrize(("make_creator", "calls"), list(FAILURES.values()), ids=list(FAILURES))
async def test_a_message_whose_job_cannot_be_created_is_dead_lettered(
    broker: Broker, make_creator: Callable[[], RecordingJobCreator], calls: int
) -> None:
    """After the last retry (at once for a permanent error) the message goes to the
    broker's dead-letter place, leaves the source's destination (no redelivery) and no
    job exists."""
    source = broker.source()
    creator = make_creator()
    seen: list[QueueMessage] = []
    retry = prx.RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0)
    trigger = pipeline(broker, source, creator, seen, retry=retry)
    async with trigger:
        assert await source.wait_connected()
        message_id = await broker.publish(body(1), "contract-dead")
        await eventually(lambda: source.status.dead_lettered == 1, "the message dead-lettered")
        dead = await eventually(broker.dead_letter_ids, "the copy in the dead-letter place")
        await asyncio.sleep(0.3)  # a redelivery would arrive now
        assert source.status.received == 1
    assert dead == [message_id]
    assert creator.jobs == [] and len(creator.calls) == calls
    assert [d.event_id for d in trigger.dead_letters] == [message_id]
    assert source.status.acked == 0 and source.status.in_flight == 0
    if broker.counts_unacked:
        assert await broker.unacked() == 0


class Forwarding(JobCreator):
    """Creates jobs in ``store``; with ``hang`` the process "dies" after the job exists
    and before it returns, so the message is never acked."""

    def __init__(self, store: prx.JobService, *, hang: bool = False) -> None:
        self.store = store
        self.hang = hang
        self.returned: list[UUID] = []

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        job = await self.store.create_job(job_type, payload, queue_name, priority, metadata)
        self.returned.append(job.id)
        if self.hang:
            await asyncio.Event().wait()
        return job

    async def get_job(self, job_id: UUID) -> Job | None:
        return await self.store.get_job(job_id)


async def test_a_redelivered_message_creates_no_second_job(broker: Broker) -> None:
    """The job exists but the ack never came: the next consumer (same names, as after a
    restart) gets the same message again, finds its job and acks it."""
    store = prx.JobService(MemoryJobQueue())
    first_source, dying = broker.source(), Forwarding(store, hang=True)
    first_seen: list[QueueMessage] = []
    first = pipeline(broker, first_source, dying, first_seen, stop_timeout=0.2)
    await first.start()
    assert await first_source.wait_connected()
    message_id = await broker.publish(body(1), "contract-again")
    await eventually(lambda: dying.returned, "the job created by the first consumer")
    await first.stop()
    assert first_source.status.acked == 0
    [job] = await store.list_jobs()

    second_source, counting = broker.source(), Forwarding(store)
    second_seen: list[QueueMessage] = []
    async with pipeline(broker, second_source, counting, second_seen):
        await eventually(lambda: second_source.status.acked == 1, "the redelivery acked")
        await asyncio.sleep(0.2)  # nothing else on its way
    [again] = second_seen
    assert again.message_id == message_id == first_seen[0].message_id
    if broker.reports_redelivered:
        assert again.redelivered is True
    assert counting.returned == [job.id]
    assert [j.id for j in await store.list_jobs()] == [job.id]
    if broker.counts_unacked:
        assert await broker.unacked() == 0
