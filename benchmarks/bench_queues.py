"""Queue triggers against bare consumers that batch their acks: messages -> jobs per second.

RabbitMQ: ``RabbitMQTrigger`` (job created, then acked) against a bare aio-pika consumer
at its best: the same prefetch, the same job created on the same kind of creator per
message, acks batched (``ack(multiple=True)`` every half prefetch, and the last one).
Redis Streams: ``RedisStreamTrigger`` against a bare XREADGROUP loop: the same batch
size, a job per entry, one XACK per batch. Messages are published before each consumer
starts, so only consumption is timed (connect included on both sides).

Ours and the bare consumer alternate in rounds (``benchmarks/harness.py``); the headline
is the median of the paired speed ratios (min-max beside it). Targets: RabbitMQ >= 0.7x,
Redis Streams >= 0.5x. The library runs at its defaults, logging included.

    python benchmarks/bench_queues.py [--quick] [--messages N] [--prefetch P] [--rounds R]

Needs RabbitMQ and Redis on 127.0.0.1 (queue and stream names are unique, removed after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, compare, exit_code, load_average

from portico_rx.adapters.job_trigger.rabbitmq_trigger import RabbitMQTrigger
from portico_rx.adapters.job_trigger.redis_stream_trigger import RedisStreamTrigger
from portico_rx.testing import RecordingJobCreator

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"


def body(n: int) -> bytes:
    return json.dumps({"event_type": "bench", "payload": {"n": n}}).encode()


async def wait_for(check: Any, timeout: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark did not finish")
        await asyncio.sleep(0.001)


# -- RabbitMQ -------------------------------------------------------------------------


async def rabbit_fill(channel: Any, queue: str, count: int) -> None:
    import aio_pika

    await channel.declare_queue(
        queue,
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{queue}.dead"},
    )
    for start in range(0, count, 500):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(body=body(n), message_id=f"m-{n}"), routing_key=queue
                )
                for n in range(start, min(count, start + 500))
            )
        )


async def rabbit_bare(count: int, prefetch: int) -> float:
    import aio_pika

    queue_name = f"bench_bare_{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await rabbit_fill(channel, queue_name, count)
    creator = RecordingJobCreator()
    acked = pending = 0
    done = asyncio.Event()
    every = max(1, prefetch // 2)

    async def on_message(message: Any) -> None:
        nonlocal acked, pending
        event = json.loads(message.body)
        await creator.create_job("bench.job", event["payload"], metadata={
            "idempotency_key": message.message_id})  # fmt: skip
        pending += 1
        if pending >= every or acked + pending == count:
            await message.ack(multiple=True)
            acked += pending
            pending = 0
            if acked == count:
                done.set()

    started = time.perf_counter()  # like the trigger's start(): connect, then consume
    consumer_connection = await aio_pika.connect(RABBITMQ_URL)
    consume_channel = await consumer_connection.channel()
    await consume_channel.set_qos(prefetch_count=prefetch)
    queue = await consume_channel.declare_queue(queue_name, passive=True)
    tag = await queue.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - started
    await queue.cancel(tag)
    await consumer_connection.close()
    await channel.queue_delete(queue_name)
    await channel.queue_delete(f"{queue_name}.dead")
    await connection.close()
    return count / elapsed


async def rabbit_trigger(count: int, prefetch: int) -> float:
    import aio_pika

    queue_name = f"bench_trigger_{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    await rabbit_fill(channel, queue_name, count)
    creator = RecordingJobCreator()
    trigger = RabbitMQTrigger(
        creator, RABBITMQ_URL, queue_name, {"bench": "bench.job"}, prefetch=prefetch
    )
    started = time.perf_counter()
    await trigger.start()
    await wait_for(lambda: trigger.source.status.acked >= count)
    elapsed = time.perf_counter() - started
    await trigger.stop()
    assert len(creator.jobs) == count, (len(creator.jobs), count)
    await channel.queue_delete(queue_name)
    await channel.queue_delete(f"{queue_name}.dead")
    await connection.close()
    return count / elapsed


# -- Redis Streams --------------------------------------------------------------------


async def redis_fill(client: Any, stream: str, count: int) -> None:
    for start in range(0, count, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for n in range(start, min(count, start + 1000)):
                pipe.xadd(stream, {"body": body(n)})
            await pipe.execute()
    await client.xgroup_create(stream, "g", id="0")


async def redis_bare(count: int, batch: int) -> float:
    """The bare loop at its best: a job per entry, one XACK per XREADGROUP batch."""
    import redis.asyncio as aioredis

    stream = f"bench_bare_{uuid.uuid4().hex[:8]}"
    creator = RecordingJobCreator()
    client = aioredis.Redis.from_url(REDIS_URL)
    await redis_fill(client, stream, count)
    acked = 0
    started = time.perf_counter()
    consumer = aioredis.Redis.from_url(REDIS_URL)
    await consumer.ping()
    while acked < count:
        reply = await consumer.xreadgroup("g", "c", {stream: ">"}, count=batch, block=1000)
        ids = []
        for entry_id, fields in reply[0][1] if reply else []:
            event = json.loads(fields[b"body"])
            await creator.create_job("bench.job", event["payload"], metadata={
                "idempotency_key": entry_id.decode()})  # fmt: skip
            ids.append(entry_id)
        if ids:
            await consumer.xack(stream, "g", *ids)
            acked += len(ids)
    elapsed = time.perf_counter() - started
    await consumer.aclose()
    await client.delete(stream)
    await client.aclose()
    return count / elapsed


async def redis_trigger(count: int, batch: int) -> float:
    import redis.asyncio as aioredis

    stream = f"bench_trigger_{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(REDIS_URL)
    await redis_fill(client, stream, count)
    creator = RecordingJobCreator()
    trigger = RedisStreamTrigger(
        creator, REDIS_URL, stream, "g", {"bench": "bench.job"}, consumer="c", count=batch
    )
    started = time.perf_counter()
    await trigger.start()
    await wait_for(lambda: trigger.source.status.acked >= count)
    elapsed = time.perf_counter() - started
    await trigger.stop()
    assert len(creator.jobs) == count, (len(creator.jobs), count)
    await client.delete(stream, f"{stream}.dead")
    await client.aclose()
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--messages", type=int, default=None, help="messages per round")
    parser.add_argument("--prefetch", type=int, default=64, help="prefetch / batch size")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds")
    args = parser.parse_args(argv)
    count = args.messages or (300 if args.quick else 5_000)
    rounds = args.rounds or (1 if args.quick else 5)
    prefetch = args.prefetch
    load_average("before")
    print(f"queues: {count} messages per round, prefetch/batch {prefetch}, {rounds} rounds")
    pairs = [
        ("rabbitmq", rabbit_trigger, rabbit_bare, 0.7,
         "RabbitMQTrigger (job, then ack)", "bare aio-pika (job, batched acks)"),
        ("redis", redis_trigger, redis_bare, 0.5,
         "RedisStreamTrigger (job, then XACK)", "bare XREADGROUP (job, XACK per batch)"),
    ]  # fmt: skip
    results = []
    for broker, ours, peer, target, ours_label, peer_label in pairs:
        results.append(
            compare(
                Pair(
                    ours_label,
                    lambda ours=ours: ours(count, prefetch),
                    peer_label,
                    lambda peer=peer: peer(count, prefetch),
                ),
                rounds=rounds,
                measure="rate",
                target=target,
                unit="msg/s",
                name=f"{broker} trigger/bare",
            )
        )
    load_average("after")
    return 0 if args.quick else exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
