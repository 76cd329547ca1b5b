"""``rabbitmq``: consume a RabbitMQ queue with explicit acks (aio-pika)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from reactivex import abc

from portico_rx.errors import ConfigurationError, MissingDependencyError
from portico_rx.sources.queues.consumer import Consumer, QueueSource, check_positive
from portico_rx.sources.queues.headers import json_headers
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.url_redaction import redact_url

try:
    import aio_pika
    import aiormq.exceptions
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
except ImportError as _exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("aio_pika", "rabbitmq") from _exc

__all__ = ["dead_letter_queue_name", "rabbitmq"]

logger = structlog.get_logger("portico_rx.sources.rabbitmq")

DEFAULT_PREFETCH = 32


def dead_letter_queue_name(queue: str) -> str:
    """The queue ``rabbitmq(..., dead_letter_exchange="")`` dead-letters into: ``<queue>.dead``."""
    return f"{queue}.dead"


async def _declare(
    channel: AbstractChannel,
    queue: str,
    *,
    declare: bool,
    durable: bool,
    dead_letter_exchange: str | None,
    dead_letter_routing_key: str | None,
) -> AbstractQueue:
    try:
        if not declare:
            return await channel.declare_queue(queue, passive=True)
        arguments: dict[str, Any] = {}
        if dead_letter_exchange is not None:
            arguments["x-dead-letter-exchange"] = dead_letter_exchange
            routing_key = dead_letter_routing_key or dead_letter_queue_name(queue)
            arguments["x-dead-letter-routing-key"] = routing_key
            if dead_letter_exchange == "":
                await channel.declare_queue(routing_key, durable=durable)
        return await channel.declare_queue(queue, durable=durable, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise ConfigurationError(
            f"queue={queue!r} exists with other arguments than declared ({exc}); pass "
            "dead_letter_exchange=None or declare=False to use it as it is, or delete it"
        ) from None
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise ConfigurationError(
            f"queue={queue!r} does not exist; create it or pass declare=True"
        ) from None


class _AckCoalescer:
    """Acks the messages settled in one event-loop turn with as few frames as possible.

    Delivery tags are sequential per channel. At each flush, the settled tags below the
    lowest tag still in flight are covered by one ``basic.ack(multiple=True)``; the
    others get one ``basic.ack`` each. Rejects are sent at once (before any ack that
    could cover them), so a multiple ack never acks a message that was to be rejected.
    Each ``ack`` waits until the frame that carries its tag is written.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel  # the aiormq channel under the aio-pika one
        self.open_tags: set[int] = set()
        self._batch: list[int] = []
        self._done: asyncio.Future[None] | None = None

    def delivered(self, tag: int) -> None:
        self.open_tags.add(tag)

    def ack(self, tag: int) -> asyncio.Future[None]:
        """Queue ``tag`` for the next flush; the future is done when its frame is written."""
        self._batch.append(tag)
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_soon(lambda: asyncio.ensure_future(self._flush()))
        return self._done

    async def reject(self, tag: int, requeue: bool) -> None:
        self.open_tags.discard(tag)
        await self.channel.basic_reject(tag, requeue=requeue)

    async def _flush(self) -> None:
        batch, done = sorted(self._batch), self._done
        self._batch, self._done = [], None
        assert done is not None
        try:
            self.open_tags.difference_update(batch)
            lowest_open = min(self.open_tags, default=None)
            covered = [t for t in batch if lowest_open is None or t < lowest_open]
            if covered:
                await self.channel.basic_ack(covered[-1], multiple=len(covered) > 1)
            for tag in batch[len(covered) :]:
                await self.channel.basic_ack(tag)
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
    return QueueMessage(
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
    if not isinstance(url, str) or not url.startswith(("amqp://", "amqps://")):
        raise ConfigurationError(
            f"url={redact_url(url)!r}: use an AMQP URL such as 'amqp://guest:guest@127.0.0.1/'"
        )
    if not isinstance(queue, str) or not queue or len(queue) > 255:
        raise ConfigurationError(f"queue={queue!r}: use a queue name of 1-255 characters")
    check_positive("prefetch", prefetch)
    if isinstance(prefetch, float) or prefetch > 65535:
        raise ConfigurationError(f"prefetch={prefetch!r}: use an integer from 1 to 65535")
    shown = redact_url(url)
    warned_no_id = False

    async def session(consumer: Consumer) -> None:
        nonlocal warned_no_id
        connection = await aio_pika.connect(url, timeout=10)
        closed = asyncio.Event()
        why = [f"connection to {shown} was closed"]
        connection.close_callbacks.add(lambda *_args: closed.set())

        def cancelled_by_broker(*_args: Any) -> None:
            why[0] = f"the broker cancelled the consumer of queue {queue!r} (deleted?)"
            closed.set()

        try:
            channel = await connection.channel()
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(cancelled_by_broker)
            acks = _AckCoalescer(underlay)
            channel.close_callbacks.add(lambda *_args: closed.set())
            await channel.set_qos(prefetch_count=prefetch)
            source_queue = await _declare(
                channel,
                queue,
                declare=declare,
                durable=durable,
                dead_letter_exchange=dead_letter_exchange,
                dead_letter_routing_key=dead_letter_routing_key,
            )

            async def on_message(incoming: AbstractIncomingMessage) -> None:
                nonlocal warned_no_id
                message = _message(queue, incoming)
                if message.message_id is None and not warned_no_id:
                    warned_no_id = True
                    logger.warning(
                        "rabbitmq_message_without_id",
                        queue=queue,
                        hint="publish with message_id=... so a redelivery cannot make a second job",
                    )

                tag = incoming.delivery_tag
                if tag is None:  # pragma: no cover - only for no_ack consumers
                    raise ConfigurationError("a message without a delivery tag cannot be acked")

                def ack() -> asyncio.Future[None]:
                    return acks.ack(tag)

                async def nack(requeue: bool) -> None:
                    await acks.reject(tag, requeue)

                acks.delivered(tag)
                consumer.emit(message, ack=ack, nack=nack, idempotency_key=message.message_id)

            consumer_tag = await source_queue.consume(on_message)
            consumer.connected()
            stopped, _ = await consumer.stopped_or(closed.wait())
            if not stopped:
                raise ConnectionError(why[0])
            with contextlib.suppress(Exception):
                await source_queue.cancel(consumer_tag)
        finally:
            await consumer.drain_if_stopping()
            if not connection.is_closed:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=10)
        try:
            channel = await connection.channel()
            await _declare(
                channel,
                queue,
                declare=declare,
                durable=durable,
                dead_letter_exchange=dead_letter_exchange,
                dead_letter_routing_key=dead_letter_routing_key,
            )
        finally:
            await connection.close()

    return QueueSource(
        broker="rabbitmq",
        destination=queue,
        session=session,
        probe=probe,
        describe=f"rabbitmq queue {queue!r} at {shown}",
        max_in_flight=prefetch,
        scheduler=scheduler,
        reconnect_delay=reconnect_delay,
        reconnect_max_delay=reconnect_max_delay,
        drain_timeout=drain_timeout,
    )
