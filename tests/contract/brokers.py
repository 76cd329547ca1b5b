"""The four message brokers, as the queue contracts see them: publish a message, build a
portico source or trigger on a unique destination, read the broker's own state.

Each broker class is opened with :func:`open_broker` (an async context manager that
creates the destination's names and deletes everything afterwards). What a broker can
be asked differs, and the contracts say so with two capability flags instead of skips:

* ``counts_unacked``: the broker reports how many messages it delivered and has not had
  acked (RabbitMQ ``messages_unacknowledged``, Redis ``XPENDING``, JetStream
  ``num_ack_pending``). MQTT brokers keep their in-flight window per session and do
  not expose it to other clients, so for MQTT the contracts prove "not acked" by the
  message coming back after a stop instead.
* ``reports_redelivered``: the message of a redelivery says so
  (``QueueMessage.redelivered``); aiomqtt does not expose MQTT's DUP flag.
* ``counts_consumers``: the broker tells how many consumers a destination has (AMQP's
  ``consumer_count``). Competing consumers split messages, so on the other brokers a
  second consumer shows only as a second connection, which they do not report.

Every broker has a dead-letter place the contracts read back: RabbitMQ's
``<queue>.dead`` queue, Redis's ``<stream>.dead`` stream, and for JetStream (``term``)
and MQTT (no negative ack) the copy their sources publish to the configured
dead-letter subject / topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from portico_rx import sources
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_trigger import JobTrigger
from portico_rx.sources.queues.consumer import QueueSource

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
MQTT_HOST = "127.0.0.1"

EVENT_TYPE = "contract.happened"
JOB_TYPE = "contract.event"
MAPPING = {EVENT_TYPE: JOB_TYPE}


def envelope(n: int) -> bytes:
    """The spec's message envelope for event number ``n`` (job payload ``{"n": n}``)."""
    return json.dumps({"event_type": EVENT_TYPE, "payload": {"n": n}}).encode()


class Broker:
    """One broker with a destination of its own (queue, stream, subject, topic)."""

    name: ClassVar[str]
    counts_unacked: ClassVar[bool] = True
    reports_redelivered: ClassVar[bool] = True
    counts_consumers: ClassVar[bool] = False

    def __init__(self, unique: str) -> None:
        self.unique = unique
        self.destination = ""

    async def open(self) -> None:
        """Create what publishing needs before any consumer exists."""

    async def close(self) -> None:
        """Delete the destination and everything created for it."""

    async def publish(
        self, body: bytes, message_id: str, headers: dict[str, str] | None = None
    ) -> str:
        """Publish ``body`` (with ``headers``: the broker's own headers, a stream entry's
        fields, MQTT v5 user properties); returns the ``message_id`` its QueueMessage
        will carry."""
        raise AssertionError(f"{type(self).__name__} must implement publish")

    def source(self, **options: Any) -> QueueSource:
        """``portico_rx.sources.<broker>(...)`` on the destination (same names every time,
        as a restarted process would use them)."""
        raise AssertionError(f"{type(self).__name__} must implement source")

    def trigger(self, creator: JobCreator, **options: Any) -> JobTrigger:
        """The broker's named trigger (``RabbitMQTrigger`` …) on the destination."""
        raise AssertionError(f"{type(self).__name__} must implement trigger")

    async def unacked(self) -> int:
        """Messages the broker delivered and has not had acked (``counts_unacked`` only)."""
        raise AssertionError(f"{type(self).__name__} cannot count unacked messages")

    async def dead_letter_ids(self) -> list[str]:
        """Message ids found in the broker's dead-letter place."""
        raise AssertionError(f"{type(self).__name__} must implement dead_letter_ids")

    async def consumers(self) -> int:
        """Consumers of the destination (``counts_consumers`` only)."""
        raise AssertionError(f"{type(self).__name__} cannot count consumers")


class RabbitMQ(Broker):
    name = "rabbitmq"
    counts_consumers = True

    def __init__(self, unique: str) -> None:
        super().__init__(unique)
        self.destination = f"contract_{unique}"
        self.dead = f"{self.destination}.dead"

    async def open(self) -> None:
        import aio_pika

        self.connection = await aio_pika.connect(RABBITMQ_URL)
        self.channel = await self.connection.channel()
        # declared as the source declares it, so messages published first are kept
        await self.channel.declare_queue(self.dead, durable=True)
        await self.channel.declare_queue(
            self.destination,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dead},
        )

    async def close(self) -> None:
        for queue in (self.destination, self.dead):
            with contextlib.suppress(Exception):
                await self.channel.queue_delete(queue)
        await self.connection.close()

    async def publish(
        self, body: bytes, message_id: str, headers: dict[str, str] | None = None
    ) -> str:
        import aio_pika

        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body=body,
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=dict(headers or {}),
            ),
            routing_key=self.destination,
        )
        return message_id

    def source(self, **options: Any) -> QueueSource:
        return sources.rabbitmq(RABBITMQ_URL, self.destination, prefetch=8, **options)

    def trigger(self, creator: JobCreator, **options: Any) -> JobTrigger:
        from portico_rx.adapters.job_trigger.rabbitmq_trigger import RabbitMQTrigger

        return RabbitMQTrigger(creator, RABBITMQ_URL, self.destination, MAPPING, **options)

    async def unacked(self) -> int:
        """``messages_unacknowledged`` of the queue: AMQP itself only reports ready
        messages, so this asks the broker's own CLI (read-only)."""
        process = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages_unacknowledged",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        for line in out.decode().splitlines():
            name, _, count = line.rpartition("\t")
            if name == self.destination:
                return int(count)
        raise AssertionError(f"queue {self.destination!r} not listed by rabbitmqctl: {out!r}")

    async def consumers(self) -> int:
        queue = await self.channel.declare_queue(self.destination, passive=True)
        return int(queue.declaration_result.consumer_count)

    async def dead_letter_ids(self) -> list[str]:
        queue = await self.channel.declare_queue(self.dead, passive=True)
        ids = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            ids.append(str(message.message_id))
        return ids


class RedisStream(Broker):
    name = "redis"

    def __init__(self, unique: str) -> None:
        super().__init__(unique)
        self.destination = f"contract-{unique}"
        self.group = "contract"
        self.consumer = f"consumer-{unique}"

    async def open(self) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(REDIS_URL)

    async def close(self) -> None:
        await self.client.delete(self.destination, f"{self.destination}.dead")
        await self.client.aclose()

    async def publish(
        self, body: bytes, message_id: str, headers: dict[str, str] | None = None
    ) -> str:
        fields = {"body": body, "ref": message_id, **(headers or {})}
        entry_id = await self.client.xadd(self.destination, fields)
        return str(entry_id.decode())

    def source(self, **options: Any) -> QueueSource:
        return sources.redis_stream(
            REDIS_URL, self.destination, self.group, self.consumer, block=0.2, **options
        )

    def trigger(self, creator: JobCreator, **options: Any) -> JobTrigger:
        from portico_rx.adapters.job_trigger.redis_stream_trigger import RedisStreamTrigger

        return RedisStreamTrigger(
            creator,
            REDIS_URL,
            self.destination,
            self.group,
            MAPPING,
            consumer=self.consumer,
            **options,
        )

    async def unacked(self) -> int:
        info = await self.client.xpending(self.destination, self.group)
        return int(info["pending"])

    async def dead_letter_ids(self) -> list[str]:
        entries = await self.client.xrange(f"{self.destination}.dead")
        return [fields[b"dead_letter_of"].decode() for _, fields in entries]


class Nats(Broker):
    name = "nats"

    def __init__(self, unique: str) -> None:
        super().__init__(unique)
        self.stream = f"CONTRACT_{unique}"
        self.destination = f"contract_{unique}.events"
        self.durable = f"contract_{unique}"
        self.dead_subject = f"contract_{unique}.dead"
        self.dead: list[Any] = []

    async def open(self) -> None:
        import nats

        self.client = await nats.connect(NATS_URL)
        self.js = self.client.jetstream()
        await self.js.add_stream(name=self.stream, subjects=[self.destination])

        async def collect(message: Any) -> None:
            self.dead.append(message)

        self.watcher = await self.client.subscribe(self.dead_subject, cb=collect)
        await self.client.flush()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.watcher.unsubscribe()
        with contextlib.suppress(Exception):
            await self.js.delete_stream(self.stream)
        await self.client.close()

    async def publish(
        self, body: bytes, message_id: str, headers: dict[str, str] | None = None
    ) -> str:
        ack = await self.js.publish(
            self.destination, body, headers={"ref": message_id, **(headers or {})}
        )
        return str(ack.seq)

    def source(self, **options: Any) -> QueueSource:
        return sources.nats(
            NATS_URL,
            self.destination,
            durable=self.durable,
            stream=self.stream,
            fetch_timeout=0.2,
            dead_letter_subject=self.dead_subject,
            **options,
        )

    def trigger(self, creator: JobCreator, **options: Any) -> JobTrigger:
        from portico_rx.adapters.job_trigger.nats_trigger import NatsTrigger

        return NatsTrigger(
            creator,
            NATS_URL,
            self.destination,
            MAPPING,
            durable=self.durable,
            stream=self.stream,
            dead_letter_subject=self.dead_subject,
            **options,
        )

    async def unacked(self) -> int:
        info = await self.js.consumer_info(self.stream, self.durable)
        return int(info.num_ack_pending)

    async def dead_letter_ids(self) -> list[str]:
        await self.client.flush()
        # the copy names its original as "<stream>/<stream sequence>"
        return [m.headers["Portico-Dead-Letter-Of"].rpartition("/")[2] for m in self.dead]


class Mqtt(Broker):
    name = "mqtt"
    counts_unacked = False
    reports_redelivered = False

    def __init__(self, unique: str) -> None:
        super().__init__(unique)
        self.destination = f"portico/contract/{unique}/events"
        self.dead_topic = f"portico/contract/{unique}/dead"
        self.client_id = f"contract-{unique}"
        self.watcher_id = f"contract-dead-{unique}"
        self.dead: list[Any] = []

    async def open(self) -> None:
        self.watcher = sources.mqtt(MQTT_HOST, self.dead_topic, client_id=self.watcher_id)
        self.watching = self.watcher.subscribe(self.dead.append)
        assert await self.watcher.wait_connected()

    async def close(self) -> None:
        self.watching.dispose()
        await self.watcher.wait_closed(timeout=10)
        for client_id in (self.client_id, self.watcher_id):
            await forget_mqtt_session(client_id)

    async def publish(
        self, body: bytes, message_id: str, headers: dict[str, str] | None = None
    ) -> str:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("message-id", message_id), *(headers or {}).items()]
        async with aiomqtt.Client(MQTT_HOST, 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.publish(self.destination, body, qos=1, properties=properties)
        return message_id

    def source(self, **options: Any) -> QueueSource:
        return sources.mqtt(
            MQTT_HOST,
            self.destination,
            client_id=self.client_id,
            dead_letter_topic=self.dead_topic,
            **options,
        )

    def trigger(self, creator: JobCreator, **options: Any) -> JobTrigger:
        from portico_rx.adapters.job_trigger.mqtt_trigger import MqttTrigger

        return MqttTrigger(
            creator,
            MQTT_HOST,
            self.destination,
            MAPPING,
            client_id=self.client_id,
            dead_letter_topic=self.dead_topic,
            **options,
        )

    async def dead_letter_ids(self) -> list[str]:
        return [str(m.headers["message-id"]) for m in self.dead]


async def forget_mqtt_session(client_id: str) -> None:
    """Delete the broker's persistent session of ``client_id`` (clean start, expiry 0)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    async with aiomqtt.Client(
        MQTT_HOST,
        1883,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        properties=properties,
    ):
        pass


BROKERS: dict[str, type[Broker]] = {
    "rabbitmq": RabbitMQ,
    "redis": RedisStream,
    "nats": Nats,
    "mqtt": Mqtt,
}


@contextlib.asynccontextmanager
async def open_broker(kind: str) -> AsyncIterator[Broker]:
    """An opened broker of ``kind`` on fresh names; everything is deleted afterwards."""
    broker = BROKERS[kind](uuid.uuid4().hex[:10])
    await broker.open()
    try:
        yield broker
    finally:
        await broker.close()
