"""Broker restarts during consumption: the trigger reconnects with backoff, carries on,
and health shows the outage and the recovery. Nothing is lost or created twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import portico_rx as prx
from portico_rx.adapters.job_trigger.mqtt_trigger import MqttTrigger
from portico_rx.adapters.job_trigger.nats_trigger import NatsTrigger
from portico_rx.adapters.job_trigger.rabbitmq_trigger import RabbitMQTrigger
from portico_rx.adapters.job_trigger.redis_stream_trigger import RedisStreamTrigger
from portico_rx.testing import RecordingJobCreator

from .conftest import PrivateServer, eventually, publish_amqp

pytestmark = pytest.mark.slow


def envelope(n: int) -> str:
    return json.dumps({"event_type": "e", "payload": {"n": n}})


class Gated(RecordingJobCreator):
    """Creates the first ``open_for`` jobs, then holds every call until ``gate`` opens:
    the broker goes down with messages in flight and more waiting in the broker."""

    def __init__(self, open_for: int = 30) -> None:
        super().__init__()
        self.open_for = open_for
        self.gate = asyncio.Event()
        self.held = 0

    async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
        if len(self.jobs) >= self.open_for and not self.gate.is_set():
            self.held += 1
            await self.gate.wait()
        return await super().create_job(*args, **kwargs)


def assert_exactly_once(creator: RecordingJobCreator, total: int) -> None:
    payloads = [j.payload["n"] for j in creator.jobs]
    assert sorted(payloads) == list(range(total)), "a message was lost or made two jobs"
    keys = [j.idempotency_key for j in creator.jobs]
    assert len(set(keys)) == total and None not in keys


async def wait_outage_then_recovery(
    trigger: prx.PipelineTrigger, creator: Gated, restart: Any
) -> None:
    """Health shows the outage; jobs in flight finish while the broker is down (their
    acks fail); the broker comes back; health shows the recovery."""
    await eventually(lambda: not trigger.get_health().healthy, timeout=30)
    creator.gate.set()
    down = trigger.get_health()
    assert down.is_running  # the trigger itself keeps running through the outage
    assert down.details["connection"]["connected"] is False
    assert down.details["connection"]["outages"] == 1
    assert down.details["connection"]["down_since"] is not None
    await restart()
    await eventually(lambda: trigger.get_health().healthy, timeout=60)
    up = trigger.get_health().details["connection"]
    assert up["connected"] and up["reconnects"] == 1 and up["last_recovered_at"]


@pytest.mark.redis
async def test_redis_restart_mid_stream(private_redis: PrivateServer, unique: str) -> None:
    """A private redis-server (AOF on) is shut down mid-stream and started again."""
    import redis.asyncio as aioredis

    url = f"redis://127.0.0.1:{private_redis.port}/0"
    stream = f"restart_{unique}"
    creator = Gated()
    trigger = RedisStreamTrigger(
        creator, url, stream, "g", {"e": "job.e"}, consumer="c1", count=8, reconnect_max_delay=1
    )
    await trigger.start()
    client = aioredis.Redis.from_url(url)
    for n in range(300):
        await client.xadd(stream, {"body": envelope(n)})
    await client.aclose()
    await eventually(lambda: creator.held > 0)
    await private_redis.stop()
    await wait_outage_then_recovery(trigger, creator, private_redis.start)
    await eventually(lambda: len(creator.jobs) == 300, timeout=60)
    await eventually(lambda: trigger.source.status.in_flight == 0)
    await trigger.stop()
    assert_exactly_once(creator, 300)
    client = aioredis.Redis.from_url(url)
    assert (await client.xpending(stream, "g"))["pending"] == 0
    await client.aclose()


@pytest.mark.nats
async def test_nats_restart_mid_stream(private_nats: PrivateServer, unique: str) -> None:
    """A private nats-server (JetStream on disk) is stopped mid-stream and started again."""
    import nats

    url = f"nats://127.0.0.1:{private_nats.port}"
    subject = f"restart_{unique}"
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name=f"R_{unique}", subjects=[subject])
    for n in range(300):
        await js.publish(subject, envelope(n).encode())
    await client.close()
    creator = Gated()
    trigger = NatsTrigger(
        creator, url, subject, {"e": "job.e"}, durable="d", batch=8, ack_wait=2,
        reconnect_max_delay=1,
    )  # fmt: skip
    await trigger.start()
    await eventually(lambda: creator.held > 0)
    await private_nats.stop()
    await wait_outage_then_recovery(trigger, creator, private_nats.start)
    await eventually(lambda: len(creator.jobs) == 300, timeout=60)
    await trigger.stop()
    assert_exactly_once(creator, 300)


@pytest.mark.rabbitmq
async def test_rabbitmq_restart_mid_stream(private_rabbitmq: PrivateServer, unique: str) -> None:
    """A private RabbitMQ node is stopped mid-stream and started again (same node name
    and data folder); durable queue, persistent messages: nothing lost, nothing doubled."""
    import aio_pika

    url = f"amqp://guest:guest@127.0.0.1:{private_rabbitmq.port}/"
    queue = f"restart_{unique}"
    creator = Gated()
    trigger = RabbitMQTrigger(
        creator, url, queue, {"e": "job.e"}, prefetch=8, reconnect_max_delay=1
    )
    await trigger.start()
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    for n in range(300):
        await publish_amqp(channel, queue, envelope(n).encode(), f"r-{n}")
    await connection.close()
    await eventually(lambda: creator.held > 0)
    await private_rabbitmq.stop()
    await wait_outage_then_recovery(trigger, creator, private_rabbitmq.start)
    await eventually(lambda: len(creator.jobs) == 300, timeout=60)
    await eventually(lambda: trigger.source.status.in_flight == 0)
    await trigger.stop()
    assert_exactly_once(creator, 300)


@pytest.mark.mqtt
async def test_mqtt_restart_mid_stream(private_mosquitto: PrivateServer, unique: str) -> None:
    """A private mosquitto (persistence on) is stopped mid-stream and started again; the
    persistent session brings back what was unacked."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    port = private_mosquitto.port
    topic = f"restart/{unique}"
    creator = Gated()
    trigger = MqttTrigger(
        creator, "127.0.0.1", topic, {"e": "job.e"}, port=port, client_id=f"r-{unique}",
        max_in_flight=8, reconnect_max_delay=1,
    )  # fmt: skip
    await trigger.start()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        for n in range(150):
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = [("message-id", f"m-{n}")]
            await client.publish(topic, envelope(n), qos=1, properties=properties)
    await eventually(lambda: creator.held > 0)
    await private_mosquitto.stop()
    await wait_outage_then_recovery(trigger, creator, private_mosquitto.start)
    await eventually(lambda: len(creator.jobs) == 150, timeout=60)
    await eventually(lambda: trigger.source.status.in_flight == 0)
    await trigger.stop()
    assert_exactly_once(creator, 150)
