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


async def dead_letter_count(js: Any, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def test_dead_letters_redrive_back_with_their_original_key(
    jetstream: Any, unique: str
) -> None:
    """A bad message is published to the dead-letter subject (kept by its own stream);
    once the handler is fixed, ``redrive_dead_letters`` publishes it back and deletes
    the copy: consumed again it makes one job with its original key. A copy left in the
    dead-letter stream (a crash after the publish, before the delete) redriven again
    finds that job; messages of another source sharing the subject are left alone."""
    stream, dead_stream = f"natsredrive_{unique}", f"natsredrive_dead_{unique}"
    subject, dead = f"natsredrive_{unique}.orders", f"natsredrive_{unique}_dead"
    jetstream.created_streams.extend([stream, dead_stream])
    await jetstream.add_stream(name=stream, subjects=[subject])
    await jetstream.add_stream(name=dead_stream, subjects=[dead])
    broken = {"yes": True}

    def handle(message: Any) -> dict[str, Any]:
        if broken["yes"]:
            raise ValueError("handler bug")
        return dict(message.json_body())

    service = prx.JobService(job_queue=MemoryJobQueue())
    source = sources.nats(NATS_URL, subject, durable="d", stream=stream, dead_letter_subject=dead)
    pipeline = source.pipe(prx.to_job("order.ship", payload=handle))
    first = await jetstream.publish(subject, b'{"order": 1}', headers={"Trace": "t1"})
    async with prx.PipelineTrigger(pipeline, service, name="ships"):
        await eventually(lambda: source.status.dead_lettered == 1)
    other = {"Portico-Dead-Letter-Of": "ELSEWHERE/1", "Portico-Dead-Letter-Subject": "x.y"}
    await jetstream.publish(dead, b"{}", headers=other)  # another source's dead letter
    assert await dead_letter_count(jetstream, dead_stream) == 2
    [copy] = [m for m in await fetch_all(jetstream, dead, dead_stream) if m.data != b"{}"]

    broken["yes"] = False
    assert await source.redrive_dead_letters() == 1
    assert await dead_letter_count(jetstream, dead_stream) == 1  # only the other one
    assert await source.redrive_dead_letters() == 0
    key = f"ships:order.ship:{stream}/{first.seq}"
    async with prx.PipelineTrigger(pipeline, service, name="ships"):
        await eventually(lambda: source.status.acked == 1)
    [job] = await service.list_jobs()
    assert (job.idempotency_key, job.payload) == (key, {"order": 1})
    assert job.metadata["broker_subject"] == subject

    # the crash case: the copy is still there after its job exists
    await jetstream.publish(dead, copy.data, headers=copy.headers)
    assert await source.redrive_dead_letters() == 1
    async with prx.PipelineTrigger(pipeline, service, name="ships") as again:
        await eventually(lambda: source.status.acked == 2)
    assert again.get_health().duplicates_count == 1
    assert [j.id for j in await service.list_jobs()] == [job.id]
    republished = await fetch_all(jetstream, subject, stream, start=first.seq + 1)
    assert [(m.headers["Trace"], m.headers["Portico-Dead-Letter-Of"]) for m in republished] == [
        ("t1", f"{stream}/{first.seq}")
    ] * 2


async def fetch_all(js: Any, subject: str, stream: str, start: int = 1) -> list[Any]:
    """The messages of ``subject`` from sequence ``start`` on, read without acking."""
    from nats.js.api import ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
    subscription = await js.pull_subscribe(subject, stream=stream, config=config)
    try:
        pending = (await subscription.consumer_info()).num_pending
        return list(await subscription.fetch(batch=pending, timeout=2)) if pending else []
    finally:
        await subscription.unsubscribe()


async def test_redrive_needs_a_stream_capturing_the_dead_letter_subject(
    jetstream: Any, unique: str
) -> None:
    stream = f"natsredrive_{unique}"
    jetstream.created_streams.append(stream)
    dead = f"natsredrive_{unique}_nowhere"
    source = sources.nats(
        NATS_URL, f"natsredrive_{unique}.x", stream=stream, dead_letter_subject=dead
    )
    with pytest.raises(prx.ConfigurationError, match=f"{dead!r} is captured by no JetStream"):
        await source.redrive_dead_letters()
    without = sources.nats(NATS_URL, f"natsredrive_{unique}.x", stream=stream)
    with pytest.raises(prx.ConfigurationError, match="nothing to redrive"):
        await without.redrive_dead_letters()


@pytest.mark.parametrize(
    "pattern, subject, matches",
    [
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "x.c", False),
    ],
)
def test_redrive_publishes_back_only_subjects_the_source_consumes(
    pattern: str, subject: str, matches: bool
) -> None:
    from portico_rx.sources.queues.nats import subject_matches

    assert subject_matches(pattern, subject) is matches


async def test_a_redriven_message_failing_again_keeps_its_original_key(
    jetstream: Any, unique: str
) -> None:
    """Dead-lettered again after a redrive, a message is keyed by the sequence it first
    had; ``limit`` bounds how many a redrive moves. The copies leave JetStream's own
    headers behind (an expected stream or a message id would make the other stream
    refuse or drop them)."""
    stream, dead_stream = f"natsredrive_{unique}", f"natsredrive_dead_{unique}"
    subject, dead = f"natsredrive_{unique}.a", f"natsredrive_{unique}_dead"
    jetstream.created_streams.extend([stream, dead_stream])
    await jetstream.add_stream(name=stream, subjects=[subject])
    await jetstream.add_stream(name=dead_stream, subjects=[dead])

    def bad(message: Any) -> dict[str, Any]:
        raise ValueError("still broken")

    source = sources.nats(NATS_URL, subject, durable="d", stream=stream, dead_letter_subject=dead)
    pipeline = source.pipe(prx.to_job("a.b", payload=bad))
    # JetStream's own headers of the original stay behind on the copies
    only_here = {"Nats-Msg-Id": f"natsredrive-{unique}"}
    first = await jetstream.publish(subject, b"{}", stream=stream, headers=only_here)
    await jetstream.publish(subject, b"{}")
    creator = RecordingJobCreator()
    async with prx.PipelineTrigger(pipeline, job_creator=creator, name="again"):
        await eventually(lambda: source.status.dead_lettered == 2)
    assert await source.redrive_dead_letters(limit=1) == 1
    assert await dead_letter_count(jetstream, dead_stream) == 1
    async with prx.PipelineTrigger(pipeline, job_creator=creator, name="again"):
        await eventually(lambda: source.status.dead_lettered == 3)
    copies = await fetch_all(jetstream, dead, dead_stream)
    assert sorted(m.headers["Portico-Dead-Letter-Of"] for m in copies) == [
        f"{stream}/{first.seq}",
        f"{stream}/{first.seq + 1}",
    ]
    assert creator.jobs == []
