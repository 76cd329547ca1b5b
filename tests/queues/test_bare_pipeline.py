"""A bare ``PipelineTrigger`` over a broker source checks its connection as the named
queue triggers do (one mechanism, ``pipeline.readiness``): ``start()`` fails on an
unreachable broker; a message published right after ``start()`` to a destination
nobody declared before becomes a job; ``stop()`` returns with the connection closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import portico_rx as prx
from portico_rx import sources, to_job
from portico_rx.pipeline import PipelineTrigger
from portico_rx.sources.queues.consumer import QueueSource
from portico_rx.testing import RecordingJobCreator

UNREACHABLE: dict[str, Callable[[], QueueSource]] = {
    "rabbitmq": lambda: sources.rabbitmq("amqp://guest:guest@127.0.0.1:5999/", "nowhere"),
    "redis": lambda: sources.redis_stream("redis://127.0.0.1:5998/0", "nowhere", "g", "c"),
    "nats": lambda: sources.nats("nats://127.0.0.1:5997", "nowhere.events"),
    "mqtt": lambda: sources.mqtt("127.0.0.1", "portico/nowhere", port=5996),
}


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def pipeline_of(source: QueueSource) -> Any:
    return source.pipe(to_job("bare.event", payload=lambda m: m.json_body()))


@pytest.mark.parametrize("broker", sorted(UNREACHABLE))
async def test_start_fails_when_the_broker_cannot_be_reached(broker: str) -> None:
    source = UNREACHABLE[broker]()
    trigger = PipelineTrigger(pipeline_of(source), RecordingJobCreator(), name=f"bare-{broker}")
    with pytest.raises(prx.TriggerStartError, match="cannot consume"):
        await trigger.start()
    assert not trigger.is_running
    assert trigger.get_health().restarts_count == 0
    assert not source.status.connected


@contextlib.asynccontextmanager
async def fresh_destination(broker: str) -> AsyncIterator[tuple[QueueSource, Any]]:
    """A source on names nobody declared yet, and ``publish(body)``; deleted after."""
    unique = uuid.uuid4().hex[:10]
    if broker == "rabbitmq":
        import aio_pika

        queue = f"bare_{unique}"
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        channel = await connection.channel()

        async def publish(body: bytes) -> None:
            message = aio_pika.Message(body=body, message_id=uuid.uuid4().hex)
            await channel.default_exchange.publish(message, routing_key=queue)

        try:
            yield sources.rabbitmq("amqp://guest:guest@127.0.0.1:5672/", queue), publish
        finally:
            for name in (queue, f"{queue}.dead"):
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
            await connection.close()
    elif broker == "redis":
        import redis.asyncio as aioredis

        stream = f"bare-{unique}"
        client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")

        async def publish(body: bytes) -> None:
            await client.xadd(stream, {"body": body})

        try:
            # group_start="$": only entries added after the group exists are consumed
            source = sources.redis_stream(
                "redis://127.0.0.1:6379/0", stream, "g", "c", block=0.2, group_start="$"
            )
            yield source, publish
        finally:
            await client.delete(stream, f"{stream}.dead")
            await client.aclose()
    elif broker == "nats":
        import nats

        client = await nats.connect("nats://127.0.0.1:4222")
        js = client.jetstream()
        subject = f"bare_{unique}.events"

        async def publish(body: bytes) -> None:
            await js.publish(subject, body)

        try:
            yield sources.nats("nats://127.0.0.1:4222", subject, stream=f"BARE_{unique}"), publish
        finally:
            with contextlib.suppress(Exception):
                await js.delete_stream(f"BARE_{unique}")
            await client.close()
    else:
        import aiomqtt

        topic = f"portico/bare/{unique}"

        async def publish(body: bytes) -> None:
            async with aiomqtt.Client("127.0.0.1", 1883) as client:
                await client.publish(topic, body, qos=1)

        yield sources.mqtt("127.0.0.1", topic, client_id=f"bare-{unique}"), publish


@pytest.mark.parametrize("broker", sorted(UNREACHABLE))
async def test_a_message_published_right_after_start_becomes_a_job(broker: str) -> None:
    async with fresh_destination(broker) as (source, publish):
        creator = RecordingJobCreator()
        trigger = PipelineTrigger(pipeline_of(source), creator, name=f"bare-{broker}")
        await trigger.start()
        try:
            assert source.status.connected  # connected and declared before start returned
            await publish(json.dumps({"n": 1}).encode())
            await wait_for(lambda: len(creator.jobs) == 1)
        finally:
            await trigger.stop()
        assert [job.payload for job in creator.jobs] == [{"n": 1}]
        # stop() returned with the connection closed: no consumer task is left behind
        assert not source.status.connected
        assert not source._tasks
