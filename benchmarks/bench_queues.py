"""Queue triggers vs bare consumers: messages -> jobs per second, in one run.

RabbitMQ: ``RabbitMQTrigger`` (in-memory job creator, ack after create) against a bare
aio-pika consumer that only acks, same prefetch. Redis Streams: ``RedisStreamTrigger``
against a bare XREADGROUP loop that XACKs each entry, same batch size (and, for
reference, one that XACKs each batch with one command; the trigger batches the XACKs
of the entries settled in one event-loop turn). Messages are published before
each consumer starts, so only consumption is timed. Target: ratio >= 0.5x.

Run: python benchmarks/bench_queues.py [--quick] [--messages N] [--prefetch P]
Needs RabbitMQ and Redis on 127.0.0.1 (queue and stream names are unique, removed after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import structlog

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
    acked = 0
    done = asyncio.Event()

    async def on_message(message: Any) -> None:
        nonlocal acked
        await message.ack()
        acked += 1
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
    import redis.asyncio as aioredis

    stream = f"bench_bare_{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(REDIS_URL)
    await redis_fill(client, stream, count)
    acked = 0
    started = time.perf_counter()  # like the trigger's start(): connect, then consume
    consumer = aioredis.Redis.from_url(REDIS_URL)
    await consumer.ping()
    while acked < count:
        reply = await consumer.xreadgroup("g", "c", {stream: ">"}, count=batch, block=1000)
        for entry_id, _fields in reply[0][1] if reply else []:
            await consumer.xack(stream, "g", entry_id)
            acked += 1
    elapsed = time.perf_counter() - started
    await consumer.aclose()
    await client.delete(stream)
    await client.aclose()
    return count / elapsed


async def redis_bare_batched(count: int, batch: int) -> float:
    """The bare loop's upper bound: one XACK per XREADGROUP batch."""
    import redis.asyncio as aioredis

    stream = f"bench_batched_{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(REDIS_URL)
    await redis_fill(client, stream, count)
    acked = 0
    started = time.perf_counter()
    consumer = aioredis.Redis.from_url(REDIS_URL)
    await consumer.ping()
    while acked < count:
        reply = await consumer.xreadgroup("g", "c", {stream: ">"}, count=batch, block=1000)
        ids = [entry_id for entry_id, _fields in (reply[0][1] if reply else [])]
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--messages", type=int, default=None, help="messages per run")
    parser.add_argument("--prefetch", type=int, default=64, help="prefetch / batch size")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (best of)")
    args = parser.parse_args()
    count = args.messages or (300 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    prefetch = args.prefetch
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40), cache_logger_on_first_use=True
    )
    print(
        f"queue benchmarks: {count} messages per run, prefetch/batch {prefetch}, "
        f"best of {rounds} interleaved rounds"
    )
    pairs = [
        ("rabbitmq", rabbit_bare, rabbit_trigger,
         "bare aio-pika consumer (ack only)", "RabbitMQTrigger (job, then ack)"),
        ("redis", redis_bare, redis_trigger,
         "bare XREADGROUP/XACK loop", "RedisStreamTrigger (job, then XACK)"),
    ]  # fmt: skip
    for broker, bare_run, trigger_run, bare_label, trigger_label in pairs:
        bare_rates: list[float] = []
        trigger_rates: list[float] = []
        for _ in range(rounds):
            bare_rates.append(await bare_run(count, prefetch))
            trigger_rates.append(await trigger_run(count, prefetch))
        bare, ours = max(bare_rates), max(trigger_rates)
        print(f"{broker} {bare_label + ':':40s} {bare:10.0f} msg/s")
        print(f"{broker} {trigger_label + ':':40s} {ours:10.0f} msg/s")
        print(f"ratio {broker} trigger/bare: {ours / bare:.2f}x (target >= 0.5x)")
        if broker == "redis":
            batched = max([await redis_bare_batched(count, prefetch) for _ in range(rounds)])
            print(f"redis {'bare loop, one XACK per batch:':40s} {batched:10.0f} msg/s")
            print(f"ratio redis trigger/bare (batched XACK): {ours / batched:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
