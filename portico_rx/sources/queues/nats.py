"""``nats``: consume a NATS JetStream durable pull consumer with explicit acks."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable
from typing import Any

from reactivex import abc

from portico_rx.errors import ConfigurationError, MissingDependencyError
from portico_rx.logs import get_logger
from portico_rx.pipeline.provenance import stream_entry_key
from portico_rx.sources.queues.consumer import Consumer, QueueSource, check_positive
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.url_redaction import redact_url

try:
    import nats as nats_client
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.errors import TimeoutError as FetchTimeout
    from nats.js import JetStreamContext
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import BadRequestError, NotFoundError
except ImportError as _exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("nats", "nats") from _exc

__all__ = ["default_durable_name", "nats"]

logger = get_logger("portico_rx.sources.nats")

DEFAULT_BATCH = 32
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")


DEAD_LETTER_OF = "Portico-Dead-Letter-Of"
"""Header of a dead-letter copy: the key (``<stream>/<sequence>``) it first had."""
DEAD_LETTER_SUBJECT = "Portico-Dead-Letter-Subject"
"""Header of a dead-letter copy: the subject it was consumed from (where a redrive
publishes it back)."""


def portable_headers(msg: Msg) -> dict[str, str]:
    """The headers of ``msg`` a copy keeps: all but JetStream's own (``Nats-*``). A kept
    ``Nats-Msg-Id`` would make a stream drop the copy as a duplicate, a kept
    ``Nats-Expected-Stream`` would make another stream refuse it."""
    return {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether NATS ``subject`` is matched by ``pattern`` (``*`` one token, ``>`` the rest)."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


def default_durable_name(subject: str) -> str:
    """A durable consumer name derived from ``subject``: ``portico-orders_created``."""
    return "portico-" + _NOT_IN_NAME.sub("_", subject.replace(">", "all").replace("*", "any"))


class _NatsConsumer:
    """One ``nats()`` source's broker side: the durable pull consumer on its stream, and
    the session the :class:`QueueSource` runs per connection."""

    def __init__(
        self,
        url: str,
        subject: str,
        *,
        durable_name: str,
        stream: str | None,
        create_stream: bool,
        batch: int,
        ack_wait: float,
        fetch_timeout: float,
        dead_letter_subject: str | None,
    ) -> None:
        self.url = url
        self.subject = subject
        self.durable_name = durable_name
        self.stream = stream
        self.create_stream = create_stream
        self.batch = batch
        self.ack_wait = ack_wait
        self.fetch_timeout = fetch_timeout
        self.dead_letter_subject = dead_letter_subject
        self.shown = redact_url(url)
        self.pull_expiry = 0.0
        """Loop time when the last pull request expires on the server."""

    async def connect(self, closed: asyncio.Event | None = None) -> NatsClient:
        async def on_closed() -> None:
            if closed is not None:
                closed.set()

        async def on_error(exc: Exception) -> None:
            logger.debug("nats_client_error", error=f"{type(exc).__name__}: {exc}")

        return await nats_client.connect(
            self.url,
            allow_reconnect=False,  # the consumer reconnects itself, with backoff
            connect_timeout=5,
            # nats-py retries a first connect forever unless this is positive (0 means
            # "no limit" there): one retry, then the session fails and start() says so
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            closed_cb=on_closed,
            disconnected_cb=on_closed,
            error_cb=on_error,
        )

    async def resolve_stream(self, js: JetStreamContext) -> str:
        """The stream to consume: the given one (created if allowed) or the subject's."""
        subject, stream = self.subject, self.stream
        if stream is None:
            try:
                return await js.find_stream_name_by_subject(subject)
            except NotFoundError:
                raise ConfigurationError(
                    f"no JetStream stream captures subject={subject!r}; create one or pass "
                    "stream=... (created for the subject when create_stream=True)"
                ) from None
        try:
            await js.stream_info(stream)
        except NotFoundError:
            if not self.create_stream:
                raise ConfigurationError(
                    f"stream={stream!r} does not exist; create it or pass create_stream=True"
                ) from None
            await js.add_stream(name=stream, subjects=[subject])
        return stream

    async def subscribe(
        self, js: JetStreamContext
    ) -> tuple[str, JetStreamContext.PullSubscription]:
        stream_name = await self.resolve_stream(js)
        durable_name, subject = self.durable_name, self.subject
        config = ConsumerConfig(
            durable_name=durable_name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_ack_pending=self.batch,
            filter_subject=subject,
        )
        try:
            subscription = await js.pull_subscribe(
                subject, durable=durable_name, stream=stream_name, config=config
            )
        except BadRequestError as exc:
            raise ConfigurationError(
                f"durable={durable_name!r} on stream={stream_name!r} cannot be used for "
                f"subject={subject!r} ({exc.description}); pick another durable name"
            ) from None
        return stream_name, subscription

    def entry_key(self, stream_name: str, msg: Msg) -> str:
        """The idempotency key of ``msg``: ``<stream>/<sequence>``, or for a message
        redriven from the dead-letter subject, the key it was dead-lettered under
        (``Portico-Dead-Letter-Of``), so its job is the original's."""
        original = (msg.headers or {}).get(DEAD_LETTER_OF)
        if isinstance(original, str) and original.startswith(f"{stream_name}/"):
            return original
        return stream_entry_key(stream_name, msg.metadata.sequence.stream)

    async def redrive(self, limit: int | None) -> int:
        """Move the dead-letter subject's messages back to the consumed subject
        (``QueueSource``'s ``redrive_dead_letters``).

        Oldest first, through an ephemeral pull consumer filtered on the dead-letter
        subject: each message (headers kept, ``Portico-Dead-Letter-Of`` keeps its key) is
        published to the subject it was dead-lettered from, and deleted from the
        dead-letter stream once JetStream acked that publish. Only the messages there
        when the redrive began are read (one that fails again is not redriven twice),
        and those of other sources (a shared dead-letter subject) are left alone.
        """
        dead = self.dead_letter_subject
        if dead is None:
            raise ConfigurationError(
                f"nats subject {self.subject!r} keeps no dead-letter subject "
                "(dead_letter_subject=None): there is nothing to redrive"
            )
        client = await self.connect()
        moved = 0
        try:
            js = client.jetstream()
            stream_name = await self.resolve_stream(js)
            try:
                dead_stream = await js.find_stream_name_by_subject(dead)
            except NotFoundError:
                raise ConfigurationError(
                    f"dead_letter_subject={dead!r} is captured by no JetStream stream, so "
                    "JetStream keeps none of its messages and there is nothing to redrive; "
                    "add the subject to a stream (e.g. js.add_stream(name='DEAD', "
                    f"subjects=[{dead!r}])), or redrive from the durable dead-letter store "
                    "(JobService.redrive_dead_letter, 'portico-rx dead-letters redrive')"
                ) from None
            config = ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait,
                inactive_threshold=max(30.0, self.ack_wait),
            )
            subscription = await js.pull_subscribe(dead, stream=dead_stream, config=config)
            info = await subscription.consumer_info()
            try:
                left = info.num_pending or 0
                while left > 0 and (limit is None or moved < limit):
                    wanted = min(left, self.batch, left if limit is None else limit - moved)
                    try:
                        messages = await subscription.fetch(
                            batch=wanted, timeout=self.fetch_timeout
                        )
                    except FetchTimeout:
                        break
                    for msg in messages:
                        left -= 1
                        if await self._redrive_one(js, stream_name, dead_stream, msg):
                            moved += 1
            finally:
                # unacked (skipped) messages stay: the consumer, not the stream, goes
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
                with contextlib.suppress(Exception):
                    await js.delete_consumer(dead_stream, info.name)
        finally:
            with contextlib.suppress(Exception):
                await client.close()
        logger.info("nats_messages_redriven", subject=self.subject, dead=dead, moved=moved)
        return moved

    async def _redrive_one(
        self, js: JetStreamContext, stream_name: str, dead_stream: str, msg: Msg
    ) -> bool:
        """Republish one dead letter of this source, then delete it; ``False`` (left
        alone) for one of another stream or subject."""
        headers = msg.headers or {}
        original = headers.get(DEAD_LETTER_OF, "")
        subject = headers.get(DEAD_LETTER_SUBJECT, "")
        if not original.startswith(f"{stream_name}/") or not subject_matches(self.subject, subject):
            return False  # left unacked: it stays for its own source's redrive
        # its subject is the source's, so its stream is the source's: streams' subjects
        # do not overlap
        await js.publish(subject, msg.data, headers=portable_headers(msg))
        with contextlib.suppress(NotFoundError):  # a concurrent redrive deleted it first
            await js.delete_msg(dead_stream, msg.metadata.sequence.stream)
        with contextlib.suppress(Exception):
            await msg.ack()
        return True

    def message(self, msg: Msg) -> QueueMessage:
        meta = msg.metadata
        headers = {k: v for k, v in (msg.headers or {}).items()}
        return QueueMessage(
            broker="nats",
            destination=self.subject,
            subject=msg.subject,
            message_id=str(meta.sequence.stream),
            body=msg.data,
            headers=headers,
            redelivered=meta.num_delivered > 1,
            delivery_count=meta.num_delivered,
            published_at=meta.timestamp,
            content_type=headers.get("Content-Type"),
        )

    async def session(self, consumer: Consumer) -> None:
        await _NatsSession(self, consumer).run()

    async def probe(self) -> None:
        client = await self.connect()
        try:
            await self.subscribe(client.jetstream())
        finally:
            await client.close()


class _NatsSession:
    """One connection's consumer: fetch up to the free slots, hand each message over."""

    def __init__(self, source: _NatsConsumer, consumer: Consumer) -> None:
        self.source = source
        self.consumer = consumer
        self.closed = asyncio.Event()
        self.stream_name = ""
        self.nack = self._nack  # bound once, passed with every message

    async def run(self) -> None:
        client = await self.source.connect(self.closed)
        try:
            self.stream_name, subscription = await self.source.subscribe(client.jetstream())
            self.consumer.connected()
            await self._receive(client, subscription)
        finally:
            if await self.consumer.drain_if_stopping() == 0:
                with contextlib.suppress(Exception):
                    await client.flush(timeout=5)  # acks and naks are fire-and-forget

            with contextlib.suppress(Exception):
                await client.close()

    async def _receive(
        self, client: NatsClient, subscription: JetStreamContext.PullSubscription
    ) -> None:
        source, consumer = self.source, self.consumer
        loop = asyncio.get_running_loop()
        fetch_timeout = source.fetch_timeout
        while True:
            free = await consumer.capacity(timeout=fetch_timeout)
            if consumer.stopping.is_set():
                break
            if self.closed.is_set() or client.is_closed:
                raise ConnectionError(f"connection to {source.shown} was closed")
            if free == 0:  # full: nothing to fetch, but notice a lost connection
                await client.flush(timeout=int(fetch_timeout) + 5)
                continue
            # Not cancelled on stop: a pull cut short leaves its messages unacked on
            # the server until ack_wait; a stopping consumer hands them back instead.
            source.pull_expiry = loop.time() + fetch_timeout
            try:
                messages = await subscription.fetch(batch=free, timeout=fetch_timeout)
            except FetchTimeout:
                continue
            for msg in messages:
                self._emit(client, msg)

    def _emit(self, client: NatsClient, msg: Msg) -> None:
        queue_message = self.source.message(msg)
        self.consumer.emit(
            queue_message,
            ack=_ack,
            nack=self.nack,
            token=(client, msg, queue_message),
            idempotency_key=self.source.entry_key(self.stream_name, msg),
        )

    async def _nack(self, token: tuple[NatsClient, Msg, QueueMessage], requeue: bool) -> None:
        client, msg, _queue_message = token
        if requeue:
            # A pull request still open on the server would receive the nak-ed message
            # at once, into a consumer that is going away: wait until it expired.
            wait = self.source.pull_expiry - asyncio.get_running_loop().time() + 0.05
            if wait > 0:
                await asyncio.sleep(wait)
            await msg.nak()
            return
        dead_letter_subject = self.source.dead_letter_subject
        if dead_letter_subject is not None:
            headers: dict[str, Any] = portable_headers(msg)
            headers.update(
                {
                    DEAD_LETTER_OF: self.source.entry_key(self.stream_name, msg),
                    DEAD_LETTER_SUBJECT: msg.subject,
                }
            )
            await client.publish(dead_letter_subject, msg.data, headers=headers)
        await msg.term()


def _ack(token: tuple[NatsClient, Msg, QueueMessage]) -> Awaitable[None]:
    return token[1].ack()


def _check_arguments(
    url: str,
    subject: str,
    durable: str | None,
    stream: str | None,
    batch: int,
    ack_wait: float,
    fetch_timeout: float,
) -> str:
    """Raise ``ConfigurationError`` naming the first invalid argument and its fix;
    return the durable consumer name to use."""
    if not isinstance(url, str) or not url.startswith(("nats://", "tls://", "ws://", "wss://")):
        raise ConfigurationError(
            f"url={redact_url(url)!r}: use a NATS URL such as 'nats://127.0.0.1:4222'"
        )
    if not isinstance(subject, str) or not subject or " " in subject:
        raise ConfigurationError(f"subject={subject!r}: use a subject such as 'orders.created'")
    durable_name = durable if durable is not None else default_durable_name(subject)
    if not durable_name or _NOT_IN_NAME.search(durable_name):
        raise ConfigurationError(
            f"durable={durable!r}: use letters, digits, '_' and '-' only, e.g. 'orders'"
        )
    if stream is not None and (not stream or _NOT_IN_NAME.search(stream)):
        raise ConfigurationError(
            f"stream={stream!r}: use letters, digits, '_' and '-' only, e.g. 'ORDERS'"
        )
    check_positive("batch", batch)
    check_positive("ack_wait", ack_wait)
    check_positive("fetch_timeout", fetch_timeout)
    return durable_name


def nats(
    url: str,
    subject: str,
    *,
    durable: str | None = None,
    stream: str | None = None,
    create_stream: bool = True,
    batch: int = DEFAULT_BATCH,
    ack_wait: float = 60.0,
    fetch_timeout: float = 1.0,
    dead_letter_subject: str | None = None,
    scheduler: abc.SchedulerBase | None = None,
    reconnect_delay: float = 0.5,
    reconnect_max_delay: float = 15.0,
    drain_timeout: float = 30.0,
) -> QueueSource:
    """Messages of a JetStream stream for ``subject``, through a durable pull consumer.

    Each message is emitted as a :class:`~portico_rx.sources.queues.message.QueueMessage`
    (``message_id`` = the stream sequence) whose delivery's idempotency key is
    ``<stream>/<stream sequence>``. It is acked once its job exists (or the pipeline
    dropped it); a bad message is ``term``-ed (JetStream never redelivers it; with
    ``dead_letter_subject`` a copy is published there first); a message in flight at stop
    is ``nak``-ed for prompt redelivery. The consumer is durable with explicit acks, so
    instances sharing ``durable`` share the messages and a restarted instance resumes.
    At most ``batch`` messages are in flight (``max_ack_pending`` too).

    Marble::

        publish:  --m1----m2--m3----
        nats:     --m1----m2--m3----   (ack after each job exists; term if bad)

    Args:
        url: NATS URL, e.g. ``"nats://127.0.0.1:4222"``.
        subject: the subject (wildcards allowed) the consumer filters on.
        durable: durable consumer name (default :func:`default_durable_name`).
        stream: the stream (default: the stream that captures ``subject``).
        create_stream: create ``stream`` for ``subject`` if it does not exist (default
            True; needs ``stream``).
        batch: messages in flight at most, and per fetch (default 32).
        ack_wait: seconds JetStream waits for an ack before redelivering (default 60).
        fetch_timeout: seconds one fetch waits for messages (default 1).
        dead_letter_subject: publish a copy of bad messages here before ``term``
            (default none: the term advisory is the record). When a JetStream stream
            captures it, ``source.redrive_dead_letters()`` publishes the copies back,
            where they keep their original key.
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
        >>> pipeline = sources.nats(
        ...     "nats://127.0.0.1:4222", "orders.created", durable="orders", stream="ORDERS"
        ... ).pipe(to_job("order.process", payload=lambda m: m.json_body()))
    """
    durable_name = _check_arguments(url, subject, durable, stream, batch, ack_wait, fetch_timeout)
    broker_consumer = _NatsConsumer(
        url,
        subject,
        durable_name=durable_name,
        stream=stream,
        create_stream=create_stream,
        batch=batch,
        ack_wait=ack_wait,
        fetch_timeout=fetch_timeout,
        dead_letter_subject=dead_letter_subject,
    )
    return QueueSource(
        broker="nats",
        destination=subject,
        session=broker_consumer.session,
        probe=broker_consumer.probe,
        redrive=broker_consumer.redrive,
        describe=f"nats subject {subject!r} durable {durable_name!r} at {broker_consumer.shown}",
        max_in_flight=batch,
        scheduler=scheduler,
        reconnect_delay=reconnect_delay,
        reconnect_max_delay=reconnect_max_delay,
        drain_timeout=drain_timeout,
    )
