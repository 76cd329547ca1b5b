"""At-least-once end to end with real processes: SIGKILL a trigger process in the middle
of a stream (some jobs created and acked, some created but not acked, some messages
received but not created, the rest still in the broker); a new process then makes every
message a job, and no message a job twice, in the SQLite job store."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    NATS_URL,
    RABBITMQ_URL,
    REDIS_URL,
    eventually,
    forget_mqtt_session,
    publish_amqp,
    publish_mqtt,
)

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("trigger_process.py")
TOTAL = 200
HOLD_AFTER = 60


def body(n: int) -> bytes:
    return json.dumps({"event_type": "e", "payload": {"n": n}}).encode()


def job_counts(db: Path) -> tuple[int, int, list[int]]:
    """(jobs, distinct idempotency keys, sorted payload numbers) in the SQLite store."""
    if not db.exists():
        return 0, 0, []
    with sqlite3.connect(db, timeout=30) as connection:
        try:
            rows = connection.execute("SELECT idempotency_key, payload FROM jobs").fetchall()
        except sqlite3.OperationalError:
            return 0, 0, []
    numbers = sorted(json.loads(payload)["n"] for _, payload in rows)
    return len(rows), len({key for key, _ in rows}), numbers


async def spawn(broker: str, target: str, db: Path, hold_after: int | None) -> Any:
    argv = [sys.executable, str(SCRIPT), broker, target, str(db)]
    if hold_after is not None:
        argv += ["--hold-after", str(hold_after)]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.strip() == b"READY", f"trigger process did not start: {line!r}"
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process


async def publish_all(broker: str, target: str) -> None:
    if broker == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(RABBITMQ_URL)
        channel = await connection.channel()
        await channel.declare_queue(
            target,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{target}.dead"},
        )
        for n in range(TOTAL):
            await publish_amqp(channel, target, body(n), f"k-{n}")
        await connection.close()
    elif broker == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        for n in range(TOTAL):
            await client.xadd(target, {"body": body(n)})
        await client.aclose()
    elif broker == "nats":
        import nats

        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        await js.add_stream(name=f"K_{target}", subjects=[target])
        for n in range(TOTAL):
            await js.publish(target, body(n))
        await client.close()
    else:
        for n in range(TOTAL):
            await publish_mqtt(target, body(n), f"k-{n}")


async def cleanup(broker: str, target: str) -> None:
    if broker == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(RABBITMQ_URL)
        channel = await connection.channel()
        queue = await channel.declare_queue(target, passive=True)
        depth = queue.declaration_result.message_count
        await channel.queue_delete(target)
        await channel.queue_delete(f"{target}.dead")
        await connection.close()
        assert depth == 0, f"{depth} messages left unacked in {target}"
    elif broker == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        pending = (await client.xpending(target, "g"))["pending"]
        await client.delete(target, f"{target}.dead")
        await client.aclose()
        assert pending == 0, f"{pending} entries left pending in {target}"
    elif broker == "nats":
        import nats

        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        info = await js.consumer_info(f"K_{target}", "d")
        await js.delete_stream(f"K_{target}")
        await client.close()
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
    else:
        await forget_mqtt_session(f"kill-{target}".replace("/", "-"))


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("mqtt", marks=pytest.mark.mqtt),
    ],
)
async def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(
    broker: str, unique: str, tmp_path: Path
) -> None:
    target = f"kill_{unique}" if broker != "mqtt" else f"portico/kill_{unique}"
    db = tmp_path / "jobs.db"
    first: Any = None
    if broker == "mqtt":  # the persistent session must exist before publishing
        first = await spawn(broker, target, db, HOLD_AFTER)
    await publish_all(broker, target)
    try:
        if first is None:
            first = await spawn(broker, target, db, HOLD_AFTER)
        # jobs beyond HOLD_AFTER exist in the store, but their messages are not acked
        await eventually(lambda: job_counts(db)[0] > HOLD_AFTER + 2, timeout=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        created, _, _ = job_counts(db)
        assert HOLD_AFTER < created < TOTAL, "the kill should land mid-stream"

        second = await spawn(broker, target, db, None)
        try:
            await eventually(lambda: job_counts(db)[0] >= TOTAL, timeout=90)
            await asyncio.sleep(1.5)  # redeliveries still arriving would show as extra jobs
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 60) == 0
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
        jobs, keys, numbers = job_counts(db)
        assert numbers == list(range(TOTAL)), "a message was lost or made two jobs"
        assert jobs == keys == TOTAL
    finally:
        if first is not None and first.returncode is None:
            first.kill()
        await cleanup(broker, target)
