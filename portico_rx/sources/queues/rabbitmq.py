"""``rabbitmq``: consume a RabbitMQ queue with explicit acks (aio-pika)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from reactivex import abc

from portico_rx.errors import ConfigurationError, MissingDependencyError
from portico_rx.logs import get_logger
from portico_rx.sources.queues.consumer import (
    Consumer,
    QueueSource,
    check_limit,
    check_positive,
)
from portico_rx.sources.queues.headers import json_headers
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.url_redaction import redact_url

try:
    import aio_pika
    import aiormq.exceptions
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractIncomingMessage,
        AbstractQueue,
    )
except ImportError as _exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("aio_pika", "rabbitmq") from _exc

__all__ = ["dead_letter_queue_name", "move_messages", "rabbitmq"]

logger = get_logger("portico_rx.sources.rabbitmq")

DEFAULT_PREFETCH = 32


def dead_letter_queue_name(queue: str) -> str:
    """The queue ``rabbitmq(..., dead_letter_exchange="")`` dead-letters into: ``<queue>.dead``."""
    return f"{queue}.dead"


ACK_LINGER = 0.005
"""Most seconds a settled message waits for others to share its ack frame."""


class _AckCoalescer:
    """Acks settled messages with as few frames as possible, as a consumer batching its
    acks does: a flush goes out once ``flush_at`` acks are waiting (half the prefetch),
    else :data:`ACK_LINGER` after the first of them (a trickle waits that long; a
    broker delivers one message per turn, so "nothing else in flight" is true between
    almost any two messages of a burst and cannot be the signal); acks queued in the
    same event-loop turn always share a flush.

    Delivery tags are sequential per channel. At each flush, the settled tags below the
    lowest tag still in flight are covered by one ``basic.ack(multiple=True)``; the
    others get one ``basic.ack`` each. Rejects are sent at once (before any ack that
    could cover them), so a multiple ack never acks a message that was to be rejected.
    Each ``ack`` waits until the frame that carries its tag is written.
    """

    def __init__(self, channel: Any, flush_at: int) -> None:
        self.channel = channel  # the aiormq channel under the aio-pika one
        self.flush_at = flush_at
        self.open_tags: set[int] = set()
        self._batch: list[int] = []
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._sending: set[asyncio.Task[None]] = set()

    def delivered(self, tag: int) -> None:
        self.open_tags.add(tag)

    def ack(self, tag: int) -> asyncio.Future[None]:
        """Queue ``tag`` for a flush; the future is done when its frame is written."""
        batch = self._batch
        batch.append(tag)
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            self._timer = loop.call_later(ACK_LINGER, self._flush)
        if not self._soon and len(batch) >= self.flush_at:
            self._soon = True  # at the end of this turn: the acks made in it join
            loop.call_soon(self._flush)
        return self._done

    async def reject(self, tag: int, requeue: bool) -> None:
        self.open_tags.discard(tag)
        await self.channel.basic_reject(tag, requeue=requeue)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._soon = False
        done = self._done
        if done is None:  # flushed already (the timer and the count both fired)
            return
        batch = sorted(self._batch)
        self._batch, self._done = [], None
        self.open_tags.difference_update(batch)
        lowest_open = min(self.open_tags, default=None)
        covered = [t for t in batch if lowest_open is None or t < lowest_open]
        task = asyncio.ensure_future(self._send(covered, batch[len(covered) :], done))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(
        self, covered: list[int], single: list[int], done: asyncio.Future[None]
    ) -> None:
        # Every frame is queued before the first wait (the last one waits until it, so
        # all, is written): the frames of two flushes never interleave, so a later
        # multiple ack never goes out before an earlier single ack it covers.
        frames = ([(covered[-1], len(covered) > 1)] if covered else []) + [
            (tag, False) for tag in single
        ]
        try:
            for index, (tag, multiple) in enumerate(frames):
                await self.channel.basic_ack(tag, multiple=multiple, wait=index == len(frames) - 1)
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
            done.add_done_callback(_retrieve)
            if not isinstance(exc, Exception):
                raise
        else:
            if not done.done():
                done.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _message(queue: str, message: AbstractIncomingMessage) -> QueueMessage:
    headers = json_headers(message.headers)
    count = headers.get("x-delivery-count")  # quorum queues count earlier deliveries
    return QueueMessage.received(
        broker="rabbitmq",
        destination=queue,
        subject=message.routing_key or queue,
        message_id=message.message_id or None,
        body=message.body,
        headers=headers,
        redelivered=bool(message.redelivered),
        delivery_count=count + 1 if isinstance(count, int) else None,
        published_at=message.timestamp,
        content_type=message.content_type,
    )


class _RabbitMQQueue:
    """One ``rabbitmq()`` source's broker side: where to connect, what to declare, and
    the session the :class:`QueueSource` runs per connection."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        prefetch: int,
        declare: bool,
        durable: bool,
        dead_letter_exchange: str | None,
        dead_letter_routing_key: str | None,
    ) -> None:
        self.url = url
        self.queue = queue
        self.prefetch = prefetch
        self.declare = declare
        self.durable = durable
        self.dead_letter_exchange = dead_letter_exchange
        self.dead_letter_routing_key = dead_letter_routing_key
        self.shown = redact_url(url)
        self.warned_no_id = False

    async def connect(self) -> AbstractConnection:
        return await aio_pika.connect(self.url, timeout=10)

    async def declare_queue(self, channel: AbstractChannel) -> AbstractQueue:
        """The queue to consume, declared (with its dead-letter queue) or looked up."""
        queue = self.queue
        try:
            if not self.declare:
                return await channel.declare_queue(queue, passive=True)
            arguments: dict[str, Any] = {}
            if self.dead_letter_exchange is not None:
                arguments["x-dead-letter-exchange"] = self.dead_letter_exchange
                routing_key = self.dead_letter_routing_key or dead_letter_queue_name(queue)
                arguments["x-dead-letter-routing-key"] = routing_key
                if self.dead_letter_exchange == "":
                    await channel.declare_queue(routing_key, durable=self.durable)
            return await channel.declare_queue(queue, durable=self.durable, arguments=arguments)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"queue={queue!r} exists with other arguments than declared ({exc}); pass "
                "dead_letter_exchange=None or declare=False to use it as it is, or delete it"
            ) from None
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise ConfigurationError(
                f"queue={queue!r} does not exist; create it or pass declare=True"
            ) from None

    def message(self, incoming: AbstractIncomingMessage) -> QueueMessage:
        """``incoming`` as a :class:`QueueMessage` (warns once per source without an id)."""
        message = _message(self.queue, incoming)
        if message.message_id is None and not self.warned_no_id:
            self.warned_no_id = True
            logger.warning(
                "rabbitmq_message_without_id",
                queue=self.queue,
                hint="publish with message_id=... so a redelivery cannot make a second job",
            )
        return message

    async def session(self, consumer: Consumer) -> None:
        await _RabbitMQSession(self, consumer).run()

    async def probe(self) -> None:
        connection = await self.connect()
        try:
            channel = await connection.channel()
            await self.declare_queue(channel)
        finally:
            await connection.close()

    async def redrive(self, limit: int | None) -> int:
        """Move the dead-letter queue back to the consumed queue (``QueueSource``'s
        ``redrive_dead_letters``)."""
        if self.dead_letter_exchange != "":
            where = (
                "declares no dead-letter exchange (dead_letter_exchange=None)"
                if self.dead_letter_exchange is None
                else f"dead-letters to exchange {self.dead_letter_exchange!r}, whose queues "
                "portico_rx does not know"
            )
            raise ConfigurationError(
                f"rabbitmq queue {self.queue!r} {where}: redrive from your dead-letter queue "
                "with portico_rx.sources.queues.rabbitmq.move_messages(url, DLQ, queue)"
            )
        dead = self.dead_letter_routing_key or dead_letter_queue_name(self.queue)
        return await move_messages(self.url, dead, self.queue, limit=limit)


_KEPT_PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "message_id",
    "timestamp",
    "type",
    "app_id",
)
"""What a moved message keeps of the original (its body and headers too): everything but
``expiration`` (it expired, or would, on the way) and ``user_id`` (RabbitMQ checks it
against the connection's user)."""


async def move_messages(
    url: str, from_queue: str, to_queue: str, *, limit: int | None = None
) -> int:
    """Move messages from RabbitMQ queue ``from_queue`` to ``to_queue``, oldest first, at
    most ``limit`` (default: until ``from_queue`` is empty): a dead-letter queue back to
    the queue it came from. Body, headers and properties (``message_id``: the idempotency
    key of the ``rabbitmq`` source) are kept.

    Each message is republished to ``to_queue`` (default exchange, publisher confirms,
    ``mandatory``) and acked on ``from_queue`` only once the broker confirmed it: a crash
    in between leaves it in both (its ``message_id`` still makes one job), never in
    neither.

    Returns:
        How many messages were moved.

    Raises:
        ConfigurationError: a queue does not exist, or a bad argument.
    """
    _check_arguments(url, from_queue, 1)
    _check_arguments(url, to_queue, 1)
    check_limit(limit)
    connection = await aio_pika.connect(url, timeout=10)
    moved = 0
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            source = await channel.declare_queue(from_queue, passive=True)
            await channel.declare_queue(to_queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise ConfigurationError(
                f"cannot move messages from {from_queue!r} to {to_queue!r}: {exc}; check the "
                "queue names (a dead-letter queue is declared by the first consumer)"
            ) from None
        while limit is None or moved < limit:
            incoming = await source.get(no_ack=False, fail=False)
            if incoming is None:
                break
            properties = {name: getattr(incoming, name) for name in _KEPT_PROPERTIES}
            message = aio_pika.Message(
                body=incoming.body, headers=dict(incoming.headers or {}), **properties
            )
            await channel.default_exchange.publish(message, routing_key=to_queue, mandatory=True)
            await incoming.ack()
            moved += 1
    finally:
        await connection.close()
    logger.info("rabbitmq_messages_moved", from_queue=from_queue, to_queue=to_queue, moved=moved)
    return moved


class _RabbitMQSession:
    """One connection's consumer: set up the channel, consume until closed or stopped."""

    def __init__(self, source: _RabbitMQQueue, consumer: Consumer) -> None:
        self.source = source
        self.consumer = consumer
        self.closed = asyncio.Event()
        self.why = f"connection to {source.shown} was closed"
        self.acks: _AckCoalescer | None = None

    async def run(self) -> None:
        connection = await self.source.connect()
        connection.close_callbacks.add(self._closed)
        try:
            await self._consume(connection)
        finally:
            await self.consumer.drain_if_stopping()
            if not connection.is_closed:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def _consume(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._cancelled_by_broker)
        self.acks = _AckCoalescer(underlay, max(1, self.source.prefetch // 2))
        self.ack, self.nack = self.acks.ack, self.acks.reject  # bound once per channel
        channel.close_callbacks.add(self._closed)
        await channel.set_qos(prefetch_count=self.source.prefetch)
        source_queue = await self.source.declare_queue(channel)
        consumer_tag = await source_queue.consume(self._on_message)
        self.consumer.connected()
        stopped, _ = await self.consumer.stopped_or(self.closed.wait())
        if not stopped:
            raise ConnectionError(self.why)
        with contextlib.suppress(Exception):
            await source_queue.cancel(consumer_tag)

    def _closed(self, *_args: Any) -> None:
        self.closed.set()

    def _cancelled_by_broker(self, *_args: Any) -> None:
        self.why = f"the broker cancelled the consumer of queue {self.source.queue!r} (deleted?)"
        self.closed.set()

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        message = self.source.message(incoming)
        tag = incoming.delivery_tag
        if tag is None:  # pragma: no cover - only for no_ack consumers
            raise ConfigurationError("a message without a delivery tag cannot be acked")
        acks = self.acks
        assert acks is not None
        acks.delivered(tag)
        self.consumer.emit(
            message,
            ack=self.ack,
            nack=self.nack,
            token=tag,
            idempotency_key=message.message_id,
        )


def _check_arguments(url: str, queue: str, prefetch: int) -> None:
    """Raise ``ConfigurationError`` naming the first invalid argument and its fix."""
    if not isinstance(url, str) or not url.startswith(("amqp://", "amqps://")):
        raise ConfigurationError(
            f"url={redact_url(url)!r}: use an AMQP URL such as 'amqp://guest:guest@127.0.0.1/'"
        )
    if not isinstance(queue, str) or not queue or len(queue) > 255:
        raise ConfigurationError(f"queue={queue!r}: use a queue name of 1-255 characters")
    check_positive("prefetch", prefetch)
    if isinstance(prefetch, float) or prefetch > 65535:
        raise ConfigurationError(f"prefetch={prefetch!r}: use an integer from 1 to 65535")


def rabbitmq(
    url: str,
    queue: str,
    *,
    prefetch: int = DEFAULT_PREFETCH,
    declare: bool = True,
    durable: bool = True,
    dead_letter_exchange: str | None = "",
    dead_letter_routing_key: str | None = None,
    scheduler: abc.SchedulerBase | None = None,
    reconnect_delay: float = 0.5,
    reconnect_max_delay: float = 15.0,
    drain_timeout: float = 30.0,
) -> QueueSource:
    """Messages of a RabbitMQ queue, each acked only after the pipeline settled it.

    Each message is emitted as a :class:`~portico_rx.sources.queues.message.QueueMessage`
    with a delivery whose idempotency key is the AMQP ``message_id`` (publish with one for
    exactly-once effect; messages without one are still delivered at least once). The
    message is acked once its job exists (or the pipeline dropped it), rejected without
    requeue when it failed for good (so RabbitMQ dead-letters it), and rejected with
    requeue when still in flight at stop. ``prefetch`` bounds unacked messages: a slow
    job creator slows consumption. A lost connection is re-established with exponential
    backoff; ``.status`` tells the outage and the recovery.

    Marble::

        queue:    --m1----m2--m3----|>  (consumed until disposed)
        rabbitmq: --m1----m2--m3-----   (m = QueueMessage; acked after its job exists)

    Args:
        url: AMQP URL, e.g. ``"amqp://guest:guest@127.0.0.1/"``.
        queue: the queue to consume.
        prefetch: unacked messages at most (AMQP ``basic.qos``; default 32).
        declare: declare the queue (and the dead-letter queue) if missing (default True);
            ``False`` requires it to exist.
        durable: declare durable queues (default True).
        dead_letter_exchange: where RabbitMQ routes rejected messages (default ``""``, the
            default exchange, with the queue ``<queue>.dead`` declared for them);
            ``None`` declares no dead-letter exchange (rejected messages are discarded by
            the broker; they are still logged and counted).
        dead_letter_routing_key: routing key for dead letters (default ``<queue>.dead``).
            With the default exchange, ``source.redrive_dead_letters()`` moves that
            queue's messages back to ``queue`` (see :func:`move_messages`).
        scheduler: Rx scheduler for timestamps and reconnect backoff (default: the loop's).
        reconnect_delay: first reconnect wait in seconds (default 0.5), doubling up to
            ``reconnect_max_delay`` (default 15).
        drain_timeout: seconds a stopping consumer waits for in-flight messages to settle
            before closing (default 30); unsettled ones are redelivered by RabbitMQ.

    Returns:
        A :class:`~portico_rx.sources.queues.consumer.QueueSource` (an observable).

    Raises:
        ConfigurationError: an argument is invalid.

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.rabbitmq("amqp://guest:guest@127.0.0.1/", "orders").pipe(
        ...     to_job("order.process", payload=lambda m: m.json_body())
        ... )
    """
    _check_arguments(url, queue, prefetch)
    broker_queue = _RabbitMQQueue(
        url,
        queue,
        prefetch=prefetch,
        declare=declare,
        durable=durable,
        dead_letter_exchange=dead_letter_exchange,
        dead_letter_routing_key=dead_letter_routing_key,
    )
    return QueueSource(
        broker="rabbitmq",
        destination=queue,
        session=broker_queue.session,
        probe=broker_queue.probe,
        redrive=broker_queue.redrive,
        describe=f"rabbitmq queue {queue!r} at {broker_queue.shown}",
        max_in_flight=prefetch,
        scheduler=scheduler,
        reconnect_delay=reconnect_delay,
        reconnect_max_delay=reconnect_max_delay,
        drain_timeout=drain_timeout,
    )
