"""``mqtt``: consume an MQTT topic with a persistent session and manual acks (aiomqtt)."""

from __future__ import annotations

import re
import socket
from collections.abc import Awaitable
from typing import Any

from reactivex import abc

from portico_rx.errors import ConfigurationError, MissingDependencyError
from portico_rx.logs import get_logger
from portico_rx.pipeline.provenance import stream_entry_key
from portico_rx.sources.queues.consumer import Consumer, QueueSource, check_positive
from portico_rx.sources.queues.headers import json_value
from portico_rx.sources.queues.message import QueueMessage

try:
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
except ImportError as _exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("aiomqtt", "mqtt") from _exc

__all__ = ["MESSAGE_ID_PROPERTY", "default_client_id", "mqtt"]

logger = get_logger("portico_rx.sources.mqtt")

MESSAGE_ID_PROPERTY = "message-id"
"""The MQTT v5 user property read as the message id (the idempotency key)."""
DEFAULT_MAX_IN_FLIGHT = 32
NO_BROKER_DEAD_LETTERS = (
    "an MQTT broker keeps no queue for a topic nobody is subscribed to, so the messages "
    "republished to dead_letter_topic are only seen by its subscribers; redrive from the "
    "durable dead-letter store instead, which keeps every dead-lettered event "
    "(JobService.redrive_dead_letter(id) or 'portico-rx dead-letters redrive ID')"
)
"""Why an ``mqtt()`` source cannot ``redrive_dead_letters`` (docs/dead-letters.md)."""
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_-]")


def default_client_id(topic: str) -> str:
    """A stable client id for ``topic`` on this host, so the session survives restarts."""
    host = _NOT_IN_ID.sub("_", socket.gethostname() or "host")
    return f"portico-{host}-{_NOT_IN_ID.sub('_', topic)}"[:120]


def _user_properties(properties: Properties | None) -> dict[str, Any]:
    pairs = getattr(properties, "UserProperty", None) or []
    return {str(key): json_value(value) for key, value in pairs}


class _MqttSubscription:
    """One ``mqtt()`` source's broker side: the client's persistent session and its
    subscription, and the session the :class:`QueueSource` runs per connection."""

    def __init__(
        self,
        host: str,
        topic: str,
        qos: int,
        *,
        identifier: str,
        port: int,
        username: str | None,
        password: str | None,
        subscription: str,
        max_in_flight: int,
        session_expiry: int,
        dead_letter_topic: str | None,
    ) -> None:
        self.host = host
        self.topic = topic
        self.qos = qos
        self.identifier = identifier
        self.port = port
        self.username = username
        self.password = password
        self.subscription = subscription
        self.max_in_flight = max_in_flight
        self.session_expiry = session_expiry
        self.dead_letter_topic = dead_letter_topic

    def client(self) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = int(self.session_expiry)
        properties.ReceiveMaximum = int(self.max_in_flight)
        mqtt_client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.identifier,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            timeout=10,
        )
        # aiomqtt acks QoS 1/2 messages on receipt; we ack after the job exists.
        mqtt_client._client.manual_ack_set(True)
        return mqtt_client

    def message(self, incoming: aiomqtt.Message) -> QueueMessage:
        headers = _user_properties(incoming.properties)
        message_id = headers.get(MESSAGE_ID_PROPERTY)
        payload = incoming.payload
        body = (
            payload
            if isinstance(payload, bytes)
            else str(payload).encode()
            if payload is not None
            else b""
        )
        return QueueMessage(
            broker="mqtt",
            destination=self.topic,
            subject=str(incoming.topic),
            message_id=str(message_id) if message_id is not None else None,
            body=body,
            headers=headers,
            content_type=getattr(incoming.properties, "ContentType", None),
        )

    async def session(self, consumer: Consumer) -> None:
        await _MqttSession(self, consumer).run()

    async def probe(self) -> None:
        probe_client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"{self.identifier}-probe"[:128],
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=10,
        )
        async with probe_client:
            pass


class _MqttSession:
    """One connection's consumer: subscribe, hand each message over, ack after its job."""

    def __init__(self, source: _MqttSubscription, consumer: Consumer) -> None:
        self.source = source
        self.consumer = consumer
        self.client = source.client()
        self.ack, self.nack = self._ack_token, self._nack  # bound once, for every message

    async def run(self) -> None:
        consumer = self.consumer
        async with self.client:
            try:
                await self.client.subscribe(self.source.subscription, qos=self.source.qos)
                consumer.connected()
                messages = aiter(self.client.messages)
                while True:
                    stopped, incoming = await consumer.stopped_or(anext(messages))
                    if stopped:
                        break
                    self._emit(incoming)
            finally:
                await consumer.drain_if_stopping()

    def _emit(self, incoming: aiomqtt.Message) -> None:
        queue_message = self.source.message(incoming)
        key = (
            stream_entry_key(queue_message.subject, queue_message.message_id)
            if queue_message.message_id is not None
            else None
        )
        self.consumer.emit(
            queue_message,
            ack=self.ack,
            nack=self.nack,
            token=(incoming, queue_message),
            idempotency_key=key,
        )

    async def _ack(self, incoming: aiomqtt.Message) -> None:
        if incoming.qos == 0:
            return
        code = self.client._client.ack(incoming.mid, incoming.qos)
        if code != 0:
            raise ConnectionError(f"PUBACK for mid {incoming.mid} not sent (paho rc {code})")

    def _ack_token(self, token: tuple[aiomqtt.Message, QueueMessage]) -> Awaitable[None]:
        return self._ack(token[0])

    async def _nack(self, token: tuple[aiomqtt.Message, QueueMessage], requeue: bool) -> None:
        incoming, queue_message = token
        if requeue:
            return  # left unacked: the broker redelivers it on the next connect
        if self.source.dead_letter_topic is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = [
                ("dead-letter-of", queue_message.subject),
                *((k, str(v)) for k, v in queue_message.headers.items()),
            ]
            await self.client.publish(
                self.source.dead_letter_topic, queue_message.body, qos=1, properties=properties
            )
        await self._ack(incoming)


def _check_arguments(
    host: str,
    topic: str,
    qos: int,
    port: int,
    max_in_flight: int,
    session_expiry: int,
    shared_group: str | None,
) -> None:
    """Raise ``ConfigurationError`` naming the first invalid argument and its fix."""
    if not isinstance(host, str) or not host or "/" in host:
        raise ConfigurationError(f"host={host!r}: use a host name or address, e.g. '127.0.0.1'")
    if not isinstance(topic, str) or not topic or topic.startswith("$share/"):
        raise ConfigurationError(
            f"topic={topic!r}: use a topic filter such as 'sensors/+/alarm' (for a shared "
            "subscription pass shared_group=... instead of '$share/...')"
        )
    if qos not in (1, 2) or isinstance(qos, bool):
        raise ConfigurationError(
            f"qos={qos!r}: use 1 or 2 (QoS 0 messages are never redelivered, so they can be lost)"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"port={port!r}: use a TCP port from 1 to 65535")
    check_positive("max_in_flight", max_in_flight)
    if max_in_flight > 65535:
        raise ConfigurationError(f"max_in_flight={max_in_flight!r}: use 1 to 65535")
    check_positive("session_expiry", session_expiry)
    if shared_group is not None and (not shared_group or _NOT_IN_ID.search(shared_group)):
        raise ConfigurationError(
            f"shared_group={shared_group!r}: use letters, digits, '_' and '-', e.g. 'workers'"
        )


def mqtt(
    host: str,
    topic: str,
    qos: int = 1,
    *,
    client_id: str | None = None,
    port: int = 1883,
    username: str | None = None,
    password: str | None = None,
    shared_group: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    session_expiry: int = 7 * 24 * 3600,
    dead_letter_topic: str | None = None,
    scheduler: abc.SchedulerBase | None = None,
    reconnect_delay: float = 0.5,
    reconnect_max_delay: float = 15.0,
    drain_timeout: float = 30.0,
) -> QueueSource:
    """Messages of an MQTT topic filter, over MQTT v5 with a persistent session.

    The client connects with ``clean_start=False`` and a session expiry, so the broker
    keeps the subscription and queues QoS 1/2 messages while the consumer is away; it acks
    (``PUBACK``) a message only once its job exists or the pipeline dropped it, so a
    message in flight when the process dies is delivered again on the next connect. MQTT
    has no negative ack: a bad message is acked after being logged, counted and (with
    ``dead_letter_topic``) republished there; a message in flight at stop is left unacked
    for redelivery. The idempotency key is ``<topic>/<message-id>`` when the publisher
    sets the v5 user property ``message-id`` (no key otherwise: at-least-once may then
    repeat a job after a crash). ``max_in_flight`` is sent as the v5 Receive Maximum,
    so the broker itself stops sending while that many messages are unacked.
    ``shared_group`` subscribes to ``$share/<group>/<topic>``: instances in one group
    (each with its own ``client_id``) share the messages.

    Marble::

        publish:  --m1----m2--m3----
        mqtt:     --m1----m2--m3----   (PUBACK after each job exists)

    Args:
        host: broker host, e.g. ``"127.0.0.1"``.
        topic: topic filter (wildcards ``+``/``#`` allowed).
        qos: subscription QoS, 1 (default) or 2; 0 cannot redeliver and is refused.
        client_id: MQTT client id (default :func:`default_client_id`); keep it stable.
        port: broker port (default 1883).
        username / password: credentials (default none).
        shared_group: share the topic with other instances in this group (default none).
        max_in_flight: unacked messages at most (Receive Maximum, default 32).
        session_expiry: seconds the broker keeps the session while disconnected (default
            one week).
        dead_letter_topic: republish bad messages here before acking them (default none).
        scheduler: Rx scheduler for timestamps and reconnect backoff (default: the loop's).
        reconnect_delay: first reconnect wait in seconds (default 0.5), doubling up to
            ``reconnect_max_delay`` (default 15).
        drain_timeout: seconds a stopping consumer waits for in-flight messages (default 30).

    Returns:
        A :class:`~portico_rx.sources.queues.consumer.QueueSource` (an observable).

    Raises:
        ConfigurationError: an argument is invalid.

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.mqtt("127.0.0.1", "sensors/+/alarm").pipe(
        ...     to_job("alarm.handle", payload=lambda m: m.json_body())
        ... )
    """
    _check_arguments(host, topic, qos, port, max_in_flight, session_expiry, shared_group)
    identifier = client_id or default_client_id(topic)
    subscription = f"$share/{shared_group}/{topic}" if shared_group else topic
    broker_subscription = _MqttSubscription(
        host,
        topic,
        qos,
        identifier=identifier,
        port=port,
        username=username,
        password=password,
        subscription=subscription,
        max_in_flight=max_in_flight,
        session_expiry=session_expiry,
        dead_letter_topic=dead_letter_topic,
    )
    return QueueSource(
        broker="mqtt",
        destination=topic,
        session=broker_subscription.session,
        probe=broker_subscription.probe,
        no_redrive=NO_BROKER_DEAD_LETTERS,
        describe=f"mqtt topic {subscription!r} as {identifier!r} at {host}:{port}",
        max_in_flight=max_in_flight,
        scheduler=scheduler,
        reconnect_delay=reconnect_delay,
        reconnect_max_delay=reconnect_max_delay,
        drain_timeout=drain_timeout,
    )
