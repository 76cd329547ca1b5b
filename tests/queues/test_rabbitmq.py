"""RabbitMQ: messages become jobs, acked after create; bad ones dead-lettered."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.rabbitmq_trigger import RabbitMQTrigger
from portico_rx.testing import RecordingJobCreator
from tests.conftest import FlakyService

from .conftest import RABBITMQ_URL, eventually, publish_amqp

pytestmark = pytest.mark.rabbitmq


def envelope(event_type: str, **payload: Any) -> bytes:
    return json.dumps({"event_type": event_type, "payload": payload}).encode()


async def queue_depth(channel: Any, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count)


async def test_spec_example_creates_jobs_and_dead_letters_bad_messages(
    amqp: Any, unique: str
) -> None:
    """The spec's RabbitMQTrigger: mapped jobs with queue and priority; bad messages go to
    ``<queue>.dead`` with the consumer still running; the queue ends empty (all acked)."""
    queue = f"job_events_{unique}"
    amqp.created_queues.append(queue)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = RabbitMQTrigger(
        job_creator=service,
        rabbitmq_url=RABBITMQ_URL,
        queue_name=queue,
        job_type_mapping={
            "user.created": "email.welcome",
            "order.placed": "order.process",
            "payment.received": "invoice.send",
        },
    )
    await trigger.start()
    assert trigger.is_running
    good = {"event_type": "order.placed", "payload": {"order": 7}, "queue": "orders", "priority": 5}
    await publish_amqp(amqp, queue, json.dumps(good).encode(), "m-1")
    await publish_amqp(amqp, queue, b"not json {", "m-2")
    await publish_amqp(amqp, queue, envelope("user.deleted", id=3), "m-3")
    await publish_amqp(amqp, queue, envelope("user.created", id=4), "m-4")
    jobs = await eventually(lambda: service.list_jobs())
    await eventually(lambda: trigger.get_health().jobs_created_count == 2)
    await eventually(lambda: trigger.source.status.dead_lettered == 2)
    await trigger.stop()
    jobs = sorted(await service.list_jobs(), key=lambda j: j.job_type)
    assert [(j.job_type, j.payload, j.queue_name, j.priority) for j in jobs] == [
        ("email.welcome", {"id": 4}, "default", 0),
        ("order.process", {"order": 7}, "orders", 5),
    ]
    assert jobs[1].idempotency_key == f"rabbitmq:{queue}:order.process:m-1"
    assert jobs[1].metadata["broker"] == "rabbitmq"
    assert jobs[1].metadata["event_id"] == "m-1"
    assert await queue_depth(amqp, queue) == 0
    assert await queue_depth(amqp, f"{queue}.dead") == 2
    dead = await amqp.declare_queue(f"{queue}.dead", passive=True)
    ids = set()
    for _ in range(2):
        message = await dead.get(timeout=5)
        ids.add(message.message_id)
        await message.ack()
    assert ids == {"m-2", "m-3"}
    health = trigger.get_health()
    assert health.dead_lettered_count == 2 and health.errors_count == 2
    assert {d.event_id for d in trigger.dead_letters} == {"m-2", "m-3"}
    assert "not JSON" in next(d.error for d in trigger.dead_letters if d.event_id == "m-2")
    assert health.details["connection"]["dead_lettered"] == 2
    assert not trigger.is_running


async def test_payload_schema_failure_is_dead_lettered(amqp: Any, unique: str) -> None:
    """A payload failing its pydantic schema is a bad message, the next good one a job."""

    class Welcome(BaseModel):
        user_id: int

    queue = f"schema_{unique}"
    amqp.created_queues.append(queue)
    creator = RecordingJobCreator()
    trigger = RabbitMQTrigger(
        creator,
        RABBITMQ_URL,
        queue,
        {"user.created": "email.welcome"},
        payload_schemas={"email.welcome": Welcome},
    )
    async with trigger:
        await publish_amqp(amqp, queue, envelope("user.created", user_id="seven"), "s-1")
        await publish_amqp(amqp, queue, envelope("user.created", user_id="8"), "s-2")
        await eventually(lambda: creator.jobs and trigger.source.status.dead_lettered == 1)
    assert [j.payload for j in creator.jobs] == [{"user_id": 8}]
    assert trigger.dead_letters[0].event_id == "s-1"
    assert "Welcome" in trigger.dead_letters[0].error


async def test_failed_create_is_not_acked_but_dead_lettered(amqp: Any, unique: str) -> None:
    """The spec's sketch loses a message whose create_job fails; ours dead-letters it."""
    queue = f"fail_{unique}"
    amqp.created_queues.append(queue)
    creator = RecordingJobCreator(fail_first=3)
    trigger = RabbitMQTrigger(
        creator,
        RABBITMQ_URL,
        queue,
        {"a": "job.a"},
        retry=prx.RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02),
        max_concurrency=1,
        prefetch=1,
    )
    async with trigger:
        await publish_amqp(amqp, queue, envelope("a", n=1), "f-1")
        await publish_amqp(amqp, queue, envelope("a", n=2), "f-2")
        await eventually(lambda: len(creator.jobs) == 1 and trigger.source.status.dead_lettered)
    assert [j.payload for j in creator.jobs] == [{"n": 2}]
    assert await queue_depth(amqp, f"{queue}.dead") == 1
    assert trigger.dead_letters[0].stage == "create_job"


async def test_unknown_event_type_drop_acks_and_ignores(amqp: Any, unique: str) -> None:
    queue = f"drop_{unique}"
    amqp.created_queues.append(queue)
    creator = RecordingJobCreator()
    trigger = RabbitMQTrigger(
        creator, RABBITMQ_URL, queue, {"a": "job.a"}, unknown_event_type="drop"
    )
    async with trigger:
        await publish_amqp(amqp, queue, envelope("zzz"), "d-1")
        await publish_amqp(amqp, queue, envelope("a"), "d-2")
        await eventually(lambda: creator.jobs and trigger.source.status.acked == 2)
    assert [j.job_type for j in creator.jobs] == ["job.a"]
    assert await queue_depth(amqp, queue) == 0
    assert await queue_depth(amqp, f"{queue}.dead") == 0


async def test_source_in_a_pipeline_redelivery_makes_no_second_job(amqp: Any, unique: str) -> None:
    """``sources.rabbitmq`` in a user pipeline; the same message_id twice is one job."""
    queue = f"pipe_{unique}"
    amqp.created_queues.append(queue)
    creator = RecordingJobCreator()
    source = sources.rabbitmq(RABBITMQ_URL, queue, prefetch=4)
    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("ping.handle", payload=lambda m: m.json_body())),
        job_creator=creator,
        name="pings",
    )
    async with trigger:
        await source.wait_connected()
        for n in range(3):
            await publish_amqp(amqp, queue, json.dumps({"n": n}).encode(), f"p-{n}")
        await publish_amqp(amqp, queue, json.dumps({"n": 0}).encode(), "p-0")
        await eventually(lambda: source.status.acked == 4)
        assert source.status.in_flight == 0
    assert sorted(j.payload["n"] for j in creator.jobs) == [0, 1, 2]
    await source.wait_closed(timeout=10)
    assert source.status.connected is False


async def test_slow_creator_bounds_unacked_messages_by_prefetch(amqp: Any, unique: str) -> None:
    """Backpressure: with a creator that blocks, at most ``prefetch`` messages are taken
    from the queue; the rest wait in RabbitMQ, then all become jobs."""
    queue = f"slow_{unique}"
    amqp.created_queues.append(queue)
    release = asyncio.Event()
    started: list[int] = []

    class Blocking(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            started.append(1)
            await release.wait()
            return await super().create_job(*args, **kwargs)

    creator = Blocking()
    trigger = RabbitMQTrigger(creator, RABBITMQ_URL, queue, {"a": "job.a"}, prefetch=5)
    async with trigger:
        for n in range(30):
            await publish_amqp(amqp, queue, envelope("a", n=n), f"b-{n}")
        await eventually(lambda: trigger.source.status.received == 5)
        await asyncio.sleep(0.3)
        assert trigger.source.status.received == 5
        assert trigger.source.status.in_flight == 5
        assert await queue_depth(amqp, queue) >= 25 - 0
        release.set()
        await eventually(lambda: len(creator.jobs) == 30)
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(30))


async def test_unreachable_broker_fails_start_with_trigger_start_error() -> None:
    trigger = RabbitMQTrigger(
        RecordingJobCreator(),
        "amqp://guest:guest@127.0.0.1:1/",
        "q",
        {"a": "b"},
        connect_timeout=5,
    )
    with pytest.raises(prx.TriggerStartError, match=r"127\.0\.0\.1:1"):
        await trigger.start()
    assert not trigger.is_running


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rabbitmq_url": "http://x"}, "url"),
        ({"queue_name": ""}, "queue"),
        ({"job_type_mapping": {}}, "job_type_mapping"),
        ({"job_type_mapping": {"a": "bad type!"}}, "job_type"),
        ({"prefetch": 0}, "prefetch"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"unknown_event_type": "ignore"}, "unknown_event_type"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "job_creator": RecordingJobCreator(),
        "rabbitmq_url": RABBITMQ_URL,
        "queue_name": "q",
        "job_type_mapping": {"a": "job.a"},
    }
    args.update(kwargs)
    with pytest.raises(prx.ConfigurationError, match=match):
        RabbitMQTrigger(**args)


async def test_message_in_flight_at_stop_goes_back_to_the_queue(amqp: Any, unique: str) -> None:
    """stop() gives up on a creation that outlives stop_timeout: the message is requeued
    (not acked, not dead-lettered) and the next trigger makes its job."""
    queue = f"requeue_{unique}"
    amqp.created_queues.append(queue)
    never = asyncio.Event()

    class Stuck(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await never.wait()
            raise AssertionError("unreachable")

    first = RabbitMQTrigger(Stuck(), RABBITMQ_URL, queue, {"a": "job.a"}, stop_timeout=0.1)
    await first.start()
    await publish_amqp(amqp, queue, envelope("a", n=1), "q-1")
    await eventually(lambda: first.source.status.in_flight == 1)
    await first.stop()
    assert first.source.status.requeued == 1
    assert await queue_depth(amqp, queue) == 1
    assert await queue_depth(amqp, f"{queue}.dead") == 0
    creator = RecordingJobCreator()
    async with RabbitMQTrigger(creator, RABBITMQ_URL, queue, {"a": "job.a"}) as second:
        await eventually(lambda: second.source.status.acked == 1)
    [job] = creator.jobs
    assert job.payload == {"n": 1} and job.metadata["redelivered"] is True


async def test_queue_deleted_under_the_consumer_is_declared_again(amqp: Any, unique: str) -> None:
    """The broker cancels the consumer of a deleted queue: the source notices, counts an
    outage, reconnects, declares the queue again and goes on consuming."""
    queue = f"deleted_{unique}"
    amqp.created_queues.append(queue)
    creator = RecordingJobCreator()
    trigger = RabbitMQTrigger(creator, RABBITMQ_URL, queue, {"a": "job.a"}, reconnect_delay=0.05)
    async with trigger:
        await publish_amqp(amqp, queue, envelope("a", n=1), "x-1")
        await eventually(lambda: len(creator.jobs) == 1)
        await amqp.queue_delete(queue)
        await eventually(lambda: trigger.source.status.reconnects == 1)
        assert "deleted" in (trigger.source.status.last_error or "")
        await publish_amqp(amqp, queue, envelope("a", n=2), "x-2")
        await eventually(lambda: len(creator.jobs) == 2)
    assert [j.payload["n"] for j in creator.jobs] == [1, 2]


async def test_coalesced_acks_never_cover_a_message_that_is_rejected_later(
    amqp: Any, unique: str
) -> None:
    """Acks of later messages are coalesced (``multiple=True``) while an earlier message
    is still retrying and then dead-lettered: exactly the failing ones reach ``.dead``."""
    queue = f"mixed_{unique}"
    amqp.created_queues.append(queue)

    class FailsSome(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            payload = kwargs.get("payload") or args[1]
            if payload["n"] % 10 == 3:
                await asyncio.sleep(0.01)
                raise prx.QueueUnavailableError("store down for this one")
            return await super().create_job(*args, **kwargs)

    creator = FailsSome()
    trigger = RabbitMQTrigger(
        creator,
        RABBITMQ_URL,
        queue,
        {"a": "job.a"},
        prefetch=50,
        retry=prx.RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02),
    )
    async with trigger:
        for n in range(100):
            await publish_amqp(amqp, queue, envelope("a", n=n), f"c-{n}")
        await eventually(
            lambda: trigger.source.status.acked + trigger.source.status.dead_lettered == 100
        )
    assert sorted(j.payload["n"] for j in creator.jobs) == [n for n in range(100) if n % 10 != 3]
    assert await queue_depth(amqp, queue) == 0
    dead = await amqp.declare_queue(f"{queue}.dead", passive=True)
    ids = []
    while (message := await dead.get(fail=False, timeout=5)) is not None:
        ids.append(message.message_id)
        await message.ack()
    assert sorted(ids) == sorted(f"c-{n}" for n in range(100) if n % 10 == 3)


async def test_competing_triggers_share_the_queue_without_duplicates(
    amqp: Any, unique: str
) -> None:
    """Two trigger instances (same name) on one queue: each message is one job, both
    instances do part of the work."""
    queue = f"compete_{unique}"
    amqp.created_queues.append(queue)
    creator = RecordingJobCreator()
    counts = [0, 0]

    def make(index: int) -> RabbitMQTrigger:
        class Counting(RecordingJobCreator):
            async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
                counts[index] += 1
                await asyncio.sleep(0.002)
                return await creator.create_job(*args, **kwargs)

        return RabbitMQTrigger(Counting(), RABBITMQ_URL, queue, {"a": "job.a"}, prefetch=4)

    triggers = [make(0), make(1)]
    for trigger in triggers:
        await trigger.start()
    for n in range(150):
        await publish_amqp(amqp, queue, envelope("a", n=n), f"cc-{n}")
    await eventually(lambda: len(creator.jobs) == 150)
    for trigger in triggers:
        await trigger.stop()
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(150))
    assert sum(counts) == 150 and min(counts) > 0
    assert await queue_depth(amqp, queue) == 0


async def test_the_broker_dead_letter_queue_redrives_back_with_the_message_id(
    amqp: Any, unique: str
) -> None:
    """A message dead-lettered while the job store was down sits in ``<queue>.dead`` and in
    the durable dead letter store; redriving both (store first, then the broker queue)
    makes one job: the broker copy keeps its message_id, so its key finds the job."""
    queue = f"deadletters_{unique}"
    amqp.created_queues.append(queue)
    service = FlakyService(MemoryJobQueue())
    source = sources.rabbitmq(RABBITMQ_URL, queue)
    pipeline = source.pipe(prx.to_job("order.ship", payload=lambda m: m.json_body()))
    retry = prx.RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002)
    async with prx.PipelineTrigger(pipeline, service, name="ships", retry=retry):
        await publish_amqp(amqp, queue, b'{"order": 9}', "ship-9")
        await publish_amqp(amqp, queue, b'{"order": 10}', "ship-10")
        await eventually(lambda: source.status.dead_lettered == 2)
    assert await queue_depth(amqp, f"{queue}.dead") == 2
    service.down = False
    [first, second] = sorted(
        await service.list_dead_letters(trigger="ships"), key=lambda r: r.event_id or ""
    )
    assert (first.event_id, second.event_id) == ("ship-10", "ship-9")
    redriven = await service.redrive_dead_letter(second.id)  # from the store
    assert redriven.idempotency_key == "ships:order.ship:ship-9"

    assert await source.redrive_dead_letters(limit=1) == 1  # the oldest: ship-9
    assert await queue_depth(amqp, f"{queue}.dead") == 1
    assert await source.redrive_dead_letters() == 1
    assert await source.redrive_dead_letters() == 0
    assert await queue_depth(amqp, f"{queue}.dead") == 0
    async with prx.PipelineTrigger(pipeline, service, name="ships", retry=retry) as again:
        await eventually(lambda: again.get_health().events_seen == 2)
        await eventually(lambda: source.status.acked == 2)
    jobs = {job.idempotency_key: job for job in await service.list_jobs()}
    assert set(jobs) == {
        "ships:order.ship:ship-9",
        "ships:order.ship:ship-10",
    }
    assert jobs[redriven.idempotency_key].id == redriven.id  # found, not made twice
    assert again.get_health().duplicates_count == 1
    assert await queue_depth(amqp, queue) == 0


async def test_redrive_needs_a_known_dead_letter_queue(unique: str) -> None:
    without = sources.rabbitmq(RABBITMQ_URL, f"deadletters_{unique}", dead_letter_exchange=None)
    with pytest.raises(prx.ConfigurationError, match="declares no dead-letter exchange"):
        await without.redrive_dead_letters()
    custom = sources.rabbitmq(RABBITMQ_URL, f"deadletters_{unique}", dead_letter_exchange="dlx")
    with pytest.raises(prx.ConfigurationError, match="move_messages"):
        await custom.redrive_dead_letters()
    with pytest.raises(prx.ConfigurationError, match="limit=0"):
        await custom.redrive_dead_letters(limit=0)
    from portico_rx.sources.queues.rabbitmq import move_messages

    with pytest.raises(prx.ConfigurationError, match="check the queue names"):
        await move_messages(RABBITMQ_URL, f"deadletters_{unique}.nowhere", "x")
