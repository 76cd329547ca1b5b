"""``QueueMessage.received`` (the sources' unvalidated constructor) gives the model that
validation gives, for messages read from real brokers."""

from __future__ import annotations

import json
from typing import Any

import pytest

import portico_rx as prx
from portico_rx import sources
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.testing import RecordingJobCreator

from .conftest import RABBITMQ_URL, REDIS_URL, eventually


def check_validated(message: QueueMessage) -> None:
    validated = QueueMessage.model_validate(
        {name: getattr(message, name) for name in QueueMessage.model_fields}
    )
    assert message == validated
    assert {name: type(getattr(message, name)) for name in QueueMessage.model_fields} == {
        name: type(getattr(validated, name)) for name in QueueMessage.model_fields
    }


async def collect(source: Any, count: int, publish: Any) -> list[QueueMessage]:
    seen: list[QueueMessage] = []

    def payload(message: QueueMessage) -> dict[str, Any]:
        seen.append(message)
        return {"n": len(seen)}

    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("job.e", payload=payload)),
        job_creator=RecordingJobCreator(),
        name="received",
    )
    async with trigger:
        await source.wait_connected()
        await publish()
        await eventually(lambda: source.status.acked == count)
    return seen


@pytest.mark.redis
async def test_redis_stream_messages_equal_validated_ones(redis_client: Any, unique: str) -> None:
    stream = f"received_{unique}"
    redis_client.created_keys.append(stream)
    source = sources.redis_stream(REDIS_URL, stream, "g", "c")

    async def publish() -> None:
        await redis_client.xadd(stream, {"body": json.dumps({"n": 1}), "origin": "tests"})
        await redis_client.xadd(stream, {"body": b"\xff not utf-8"})

    seen = await collect(source, 2, publish)
    assert [m.headers for m in seen] == [{"origin": "tests"}, {}]
    for message in seen:
        check_validated(message)


@pytest.mark.rabbitmq
async def test_rabbitmq_messages_equal_validated_ones(amqp: Any, unique: str) -> None:
    import aio_pika

    queue = f"received_{unique}"
    amqp.created_queues.append(queue)
    source = sources.rabbitmq(RABBITMQ_URL, queue, prefetch=4)

    async def publish() -> None:
        from datetime import UTC, datetime

        await amqp.default_exchange.publish(
            aio_pika.Message(
                body=b'{"n": 1}',
                message_id="m-1",
                headers={"origin": "tests", "count": 3},
                timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                content_type="application/json",
            ),
            routing_key=queue,
        )
        await amqp.default_exchange.publish(aio_pika.Message(body=b"plain"), routing_key=queue)

    seen = await collect(source, 2, publish)
    assert seen[0].message_id == "m-1" and seen[0].content_type == "application/json"
    assert seen[1].published_at is None and seen[1].headers == {}
    for message in seen:
        check_validated(message)
