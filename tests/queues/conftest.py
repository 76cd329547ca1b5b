"""Fixtures for the queue-source tests: unique names, brokers' clients, polling."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 20.0,
    interval: float = 0.05,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for queue, stream, subject and topic names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def amqp() -> AsyncIterator[Any]:
    """An aio-pika channel for publishing and inspecting queues; deleted queues tracked."""
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    channel.created_queues = []  # type: ignore[attr-defined]
    yield channel
    with contextlib.suppress(Exception):
        await connection.close()
    # a fresh connection: a test may have restarted the broker under the first one
    connection = await aio_pika.connect(RABBITMQ_URL)
    cleanup = await connection.channel()
    for name in channel.created_queues:  # type: ignore[attr-defined]
        for queue in (name, f"{name}.dead"):
            try:
                await cleanup.queue_delete(queue)
            except Exception:
                cleanup = await connection.channel()
    await connection.close()


async def publish_amqp(channel: Any, queue: str, body: bytes, message_id: str | None) -> None:
    import aio_pika

    await channel.default_exchange.publish(
        aio_pika.Message(
            body=body,
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        ),
        routing_key=queue,
    )


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    """A redis client; keys registered in ``redis_client.created_keys`` are deleted after."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    client.created_keys = []  # type: ignore[attr-defined]
    yield client
    for key in client.created_keys:  # type: ignore[attr-defined]
        await client.delete(key, f"{key}.dead")
    await client.aclose()


@pytest.fixture
async def jetstream() -> AsyncIterator[Any]:
    """A NATS JetStream context; streams in ``jetstream.created_streams`` are deleted after."""
    import nats

    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    js.created_streams = []
    yield js
    for name in js.created_streams:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
    await client.close()


async def publish_mqtt(topic: str, body: bytes, message_id: str | None = None) -> None:
    """Publish one QoS 1 message (v5, with a ``message-id`` user property if given)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.PUBLISH)
    if message_id is not None:
        properties.UserProperty = [("message-id", message_id)]
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, body, qos=1, properties=properties)


async def forget_mqtt_session(client_id: str) -> None:
    """Delete the broker's persistent session of ``client_id`` (clean start, expiry 0)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    async with aiomqtt.Client(
        "127.0.0.1",
        1883,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        properties=properties,
    ):
        pass


@pytest.fixture
async def mqtt_sessions() -> AsyncIterator[list[str]]:
    """Client ids appended here get their broker sessions deleted after the test."""
    ids: list[str] = []
    yield ids
    for client_id in ids:
        await forget_mqtt_session(client_id)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, timeout: float = 30.0) -> None:
    async def is_open() -> bool:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(is_open, timeout=timeout, interval=0.05)


class PrivateServer:
    """A broker process of our own on a free 127.0.0.1 port, to stop and restart freely
    without disturbing the shared services."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.argv = argv
        self.port = port
        self.env = env
        self.start_timeout = start_timeout
        self.process: Any = None

    async def start(self) -> None:
        import os
        import subprocess

        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **self.env} if self.env else None,
        )
        await wait_for_port(self.port, timeout=self.start_timeout)

    async def stop(self) -> None:
        """Graceful shutdown (SIGTERM): the server persists its data and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            await asyncio.to_thread(self.process.wait, 30)
        self.process = None


@pytest.fixture
async def private_redis(tmp_path: Any) -> AsyncIterator[PrivateServer]:
    """A redis-server with an append-only file in ``tmp_path``: data survives restarts."""
    port = free_port()
    server = PrivateServer(
        [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(tmp_path),
        ],
        port,
    )  # fmt: skip
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def private_nats(tmp_path: Any) -> AsyncIterator[PrivateServer]:
    """A nats-server with JetStream storing in ``tmp_path``: streams survive restarts."""
    port = free_port()
    server = PrivateServer(
        ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)], port
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def private_rabbitmq(tmp_path: Any) -> AsyncIterator[PrivateServer]:
    """A RabbitMQ node of our own (own node name, AMQP and distribution ports, data and
    log folders in ``tmp_path``): durable queues and persistent messages survive its
    restarts, and the shared node on 5672 is never touched."""
    port, dist_port = free_port(), free_port()
    (tmp_path / "enabled_plugins").write_text("[].\n")
    env = {
        "RABBITMQ_NODENAME": f"portico_test_{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(tmp_path / "mnesia"),
        "RABBITMQ_LOG_BASE": str(tmp_path / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp_path / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(tmp_path / "rabbitmq.pid"),
        "RABBITMQ_CONFIG_FILE": str(tmp_path / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(tmp_path / "advanced.config"),
        "ERL_CRASH_DUMP": str(tmp_path / "erl_crash.dump"),  # not into the working tree
    }
    server = PrivateServer(["/usr/lib/rabbitmq/bin/rabbitmq-server"], port, env, 90.0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def private_mosquitto(tmp_path: Any) -> AsyncIterator[PrivateServer]:
    """A mosquitto with persistence in ``tmp_path``: sessions survive restarts."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {tmp_path}/\n"
        "user root\n"  # as root, mosquitto would switch to a user that cannot write here
    )
    server = PrivateServer(["mosquitto", "-c", str(config)], port)
    await server.start()
    yield server
    await server.stop()
