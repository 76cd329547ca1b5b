"""NATS JetStream: messages become jobs, ack after create, term for bad ones."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.nats_trigger import NatsTrigger
from portico_rx.testing import RecordingJobCreator

from .conftest import NATS_URL, eventually

pytestmark = pytest.mark.nats


def envelope(event_type: str, **payload: Any) -> bytes:
    return json.dumps({"event_type": event_type, "payload": payload}).encode()


async def consumer_state(js: Any, stream: str, durable: str) -> tuple[int, int]:
    """(messages not yet delivered, delivered but unacked) of a durable consumer."""
    info = await js.consumer_info(stream, durable)
    return info.num_pending, info.num_ack_pending


async def test_messages_become_jobs_bad_ones_are_termed(jetstream: Any, unique: str) -> None:
    stream = f"ORDERS_{unique}"
    subject = f"orders_{unique}.created"
    jetstream.created_streams.append(stream)
    service = prx.JobService(job_queue=MemoryJobQueue())
    dead_subject = f"dead_{unique}"
    dead_copies: list[Any] = []

    async def collect(message: Any) -> None:
        dead_copies.append(message)

    watcher = await jetstream._nc.subscribe(dead_subject, cb=collect)
    trigger = NatsTrigger(
        service,
        NATS_URL,
        subject,
        {"order.placed": "order.process"},
        durable="orders",
        stream=stream,
        dead_letter_subject=dead_subject,
    )
    await trigger.start()
    good = {"event_type": "order.placed", "payload": {"o": 1}, "queue": "orders", "priority": 9}
    ack = await jetstream.publish(subject, json.dumps(good).encode())
    await jetstream.publish(subject, b"\xff\xfe not text")
    await jetstream.publish(subject, envelope("order.cancelled"))
    await eventually(lambda: trigger.source.status.dead_lettered == 2)
    await eventually(lambda: trigger.get_health().jobs_created_count == 1)
    await trigger.stop()
    await watcher.unsubscribe()
    [job] = await service.list_jobs()
    assert (job.job_type, job.payload, job.queue_name, job.priority) == (
        "order.process",
        {"o": 1},
        "orders",
        9,
    )
    assert job.idempotency_key == f"nats:orders:order.process:{stream}/{ack.seq}"
    assert await consumer_state(jetstream, stream, "orders") == (0, 0)
    assert len(dead_copies) == 2
    assert dead_copies[0].headers["Portico-Dead-Letter-Of"] == f"{stream}/{ack.seq + 1}"
    assert {d.event_id for d in trigger.dead_letters} == {str(ack.seq + 1), str(ack.seq + 2)}


async def test_competing_instances_share_a_durable(jetstream: Any, unique: str) -> None:
    stream = f"WORK_{unique}"
    subject = f"work_{unique}"
    jetstream.created_streams.append(stream)
    await jetstream.add_stream(name=stream, subjects=[subject])
    creator = RecordingJobCreator()
    counts = [0, 0]

    def make(index: int) -> NatsTrigger:
        class Counting(RecordingJobCreator):
            async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
                counts[index] += 1
                await asyncio.sleep(0.002)
                return await creator.create_job(*args, **kwargs)

        return NatsTrigger(Counting(), NATS_URL, subject, {"e": "job.e"}, durable="w", batch=8)

    triggers = [make(0), make(1)]
    for trigger in triggers:
        await trigger.start()
    for n in range(150):
        await jetstream.publish(subject, envelope("e", n=n))
    await eventually(lambda: len(creator.jobs) == 150)
    for trigger in triggers:
        await trigger.stop()
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(150))
    assert sum(counts) == 150 and min(counts) > 0
    assert await consumer_state(jetstream, stream, "w") == (0, 0)


async def test_message_in_flight_at_stop_is_redelivered_and_deduplicated(
    jetstream: Any, unique: str
) -> None:
    """A message whose job creation outlives stop's timeout is nak-ed; the next
    instance gets it again (redelivered) and makes its job."""
    stream = f"NAK_{unique}"
    subject = f"nak_{unique}"
    jetstream.created_streams.append(stream)
    await jetstream.add_stream(name=stream, subjects=[subject])
    never = asyncio.Event()

    class Stuck(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await never.wait()
            raise AssertionError("unreachable")

    first = NatsTrigger(Stuck(), NATS_URL, subject, {"e": "job.e"}, durable="d", stop_timeout=0.2)
    await first.start()
    await jetstream.publish(subject, envelope("e", n=1))
    await eventually(lambda: first.source.status.in_flight == 1)
    await first.stop()
    assert first.source.status.requeued == 1
    creator = RecordingJobCreator()
    second = NatsTrigger(creator, NATS_URL, subject, {"e": "job.e"}, durable="d")
    async with second:
        await eventually(lambda: creator.jobs)
    [job] = creator.jobs
    assert job.metadata["redelivered"] is True
    assert await consumer_state(jetstream, stream, "d") == (0, 0)


async def test_source_finds_the_stream_by_subject(jetstream: Any, unique: str) -> None:
    stream = f"FIND_{unique}"
    subject = f"find_{unique}.>"
    jetstream.created_streams.append(stream)
    await jetstream.add_stream(name=stream, subjects=[subject])
    creator = RecordingJobCreator()
    source = sources.nats(NATS_URL, subject)
    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("job.x", payload=lambda m: {"subject": m.subject})),
        job_creator=creator,
        name="find",
    )
    async with trigger:
        await source.wait_connected()
        await jetstream.publish(f"find_{unique}.a.b", b"{}")
        await eventually(lambda: source.status.acked == 1)
    assert creator.jobs[0].payload == {"subject": f"find_{unique}.a.b"}
    assert creator.jobs[0].metadata["broker_subject"] == f"find_{unique}.a.b"


async def test_no_stream_for_subject_is_a_configuration_error(unique: str) -> None:
    source = sources.nats(NATS_URL, f"nowhere_{unique}")
    with pytest.raises(prx.ConfigurationError, match="no JetStream stream captures"):
        await source.check()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"url": "amqp://x"}, "url"),
        ({"subject": ""}, "subject"),
        ({"durable": "a.b"}, "durable"),
        ({"batch": 0}, "batch"),
        ({"ack_wait": 0}, "ack_wait"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"url": NATS_URL, "subject": "s"}
    args.update(kwargs)
    with pytest.raises(prx.ConfigurationError, match=match):
        sources.nats(**args)


async def test_slow_creator_bounds_messages_in_flight(jetstream: Any, unique: str) -> None:
    """Backpressure: with ``batch=4`` and a creator that blocks, 4 messages are taken
    (the consumer's max_ack_pending), the rest wait in the stream."""
    stream = f"SLOW_{unique}"
    subject = f"slow_{unique}"
    jetstream.created_streams.append(stream)
    await jetstream.add_stream(name=stream, subjects=[subject])
    release = asyncio.Event()

    class Blocking(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await release.wait()
            return await super().create_job(*args, **kwargs)

    creator = Blocking()
    trigger = NatsTrigger(creator, NATS_URL, subject, {"e": "job.e"}, durable="s", batch=4)
    async with trigger:
        for n in range(40):
            await jetstream.publish(subject, envelope("e", n=n))
        await eventually(lambda: trigger.source.status.received == 4)
        await asyncio.sleep(0.3)
        assert trigger.source.status.received == 4
        assert await consumer_state(jetstream, stream, "s") == (36, 4)
        release.set()
        await eventually(lambda: len(creator.jobs) == 40)
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(40))
