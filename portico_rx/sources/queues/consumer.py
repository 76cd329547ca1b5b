"""What every queue source shares: one consumer task per subscription, bounded
in-flight messages, settlement wiring, reconnects with backoff, connection health.

A broker module supplies one coroutine, its *session*: connect, call
:meth:`Consumer.connected`, then receive messages and hand each to
:meth:`Consumer.emit` with the broker's ack and nack, until :attr:`Consumer.stopping`
is set; on every way out, ``await consumer.drain_if_stopping()``, then close.

A session that raises is a lost connection: the source marks the outage in
:class:`ConnectionStatus`, waits (exponential backoff with jitter, in scheduler time)
and runs the session again. If the very first connection of a subscription fails, the
source errors with :class:`~portico_rx.errors.TriggerStartError` instead, so a wrong
URL is reported, not retried silently.

A source announces itself when subscribed (:mod:`portico_rx.pipeline.readiness`): every
:class:`~portico_rx.pipeline.PipelineTrigger` over it, named or bare, awaits
:meth:`QueueSource.wait_ready` in ``start()`` (connected, queue / group / consumer
declared, or the start error) and :meth:`QueueSource.wait_closed` in ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import reactivex
from reactivex import abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError
from portico_rx.logs import get_logger
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.instrument import trace_context
from portico_rx.pipeline.provenance import source_time
from portico_rx.pipeline.readiness import announce
from portico_rx.pipeline.retry import backoff
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.url_redaction import redact_url

__all__ = ["ConnectionStatus", "Consumer", "QueueSource", "Session", "check_positive"]

logger = get_logger("portico_rx.sources.queues")

_SHARED_ATTRIBUTES = 256
"""Most attribute dicts a consumer shares (one per subject and redelivery flag)."""
RECONNECT_JITTER = 0.2
"""Relative spread of reconnect waits, so competing consumers do not reconnect in step."""

Session = Callable[["Consumer"], Awaitable[None]]
"""A broker's consume loop for one connection (see the module docstring)."""
Ack = Callable[[Any], Awaitable[None]]
"""``ack(token)`` acks the message ``token`` stands for: a coroutine function, or a
function returning a future (one future for the messages acked by one command)."""
Nack = Callable[[Any, bool], Awaitable[None]]
"""``nack(token, requeue)`` hands the message back (``requeue``) or dead-letters it."""


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    """Raise ``ConfigurationError`` unless ``value`` is a positive number (or 0)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and (value >= 0 if allow_zero else value > 0):  # type: ignore[operator]
        return
    wanted = "0 or more" if allow_zero else "a positive number"
    raise ConfigurationError(f"{name}={value!r}: use {wanted}")


def check_limit(limit: object) -> None:
    """Raise ``ConfigurationError`` unless ``limit`` is ``None`` (no limit) or 1 or more."""
    if limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1):
        return
    raise ConfigurationError(f"limit={limit!r}: use a whole number, 1 or more (or None for all)")


@dataclass
class ConnectionStatus:
    """A queue source's connection health, shared by all its subscriptions.

    Attributes:
        connected: a consumer is connected right now.
        outages: how often an established connection was lost.
        reconnects: how often the connection came back after an outage.
        down_since: scheduler time the current outage began (``None`` when up).
        last_outage_at / last_recovered_at: times of the last loss and the last recovery.
        last_error: the last connection error, as text.
        received: messages handed to the pipeline.
        in_flight: messages handed over and not yet acked or nacked.
        acked: messages acked (their job exists, or the pipeline dropped them).
        dead_lettered: messages the broker was told are bad (dead-letter exchange or
            stream, JetStream ``term``, MQTT: logged).
        requeued: messages handed back for redelivery (e.g. still in flight at stop).
    """

    broker: str
    destination: str
    connected: bool = False
    outages: int = 0
    reconnects: int = 0
    down_since: datetime | None = None
    last_outage_at: datetime | None = None
    last_recovered_at: datetime | None = None
    last_error: str | None = None
    received: int = 0
    in_flight: int = 0
    acked: int = 0
    dead_lettered: int = 0
    requeued: int = 0
    settle_errors: int = 0
    _ever_up: bool = field(default=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON values (times as ISO strings), for ``TriggerHealth.details``."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "broker": self.broker,
            "destination": self.destination,
            "connected": self.connected,
            "outages": self.outages,
            "reconnects": self.reconnects,
            "down_since": iso(self.down_since),
            "last_outage_at": iso(self.last_outage_at),
            "last_recovered_at": iso(self.last_recovered_at),
            "last_error": self.last_error,
            "received": self.received,
            "in_flight": self.in_flight,
            "acked": self.acked,
            "dead_lettered": self.dead_lettered,
            "requeued": self.requeued,
            "settle_errors": self.settle_errors,
        }

    def mark_up(self, at: datetime) -> None:
        if self.down_since is not None and self._ever_up:
            self.reconnects += 1
            self.last_recovered_at = at
        self.connected = True
        self.down_since = None
        self._ever_up = True

    def mark_down(self, error: str, at: datetime, *, outage: bool) -> None:
        if outage and self.connected:
            self.outages += 1
            self.last_outage_at = at
        if self.down_since is None:
            self.down_since = at
        self.connected = False
        self.last_error = error


class Consumer:
    """One subscription's consumer: the handle a broker session works with."""

    def __init__(
        self,
        source: QueueSource,
        observer: abc.ObserverBase[QueueMessage],
        scheduler: abc.SchedulerBase,
    ) -> None:
        self.source = source
        self.status = source.status
        self.observer = observer
        self.scheduler = scheduler
        self.max_in_flight = source.max_in_flight
        self.stopping = asyncio.Event()
        """Set when the subscription is disposed: stop receiving, drain, close."""
        self.ever_connected = False
        self.started = asyncio.Event()
        """Set once the first connection is set up, or the consumer ended."""
        self.unsettled: dict[int, Delivery] = {}
        """Deliveries handed over and not yet settled with the broker."""
        self._unsettled_ids: dict[str, int] = {}
        """Message id -> how many deliveries with that id are unsettled."""
        self._acking: dict[asyncio.Future[None], _AckGroup] = {}
        """Broker ack in progress -> the messages it settles."""
        self._attributes: dict[tuple[str, str, bool], dict[str, Any]] = {}
        self._changed = asyncio.Event()
        self._stop: asyncio.Future[None] | None = None  # done once stopping (``stop``)
        self._room: asyncio.Future[None] | None = None  # ``capacity`` waiting for a slot
        self._seq = 0

    # -- lifecycle ---------------------------------------------------------------

    def connected(self) -> None:
        """Call once the connection and the consumer are set up."""
        self.ever_connected = True
        was_down = self.status.down_since is not None and self.status._ever_up
        self.status.mark_up(clock.now(self.scheduler))
        self.source._up.set()
        self.started.set()
        logger.info(
            "queue_consumer_connected" if not was_down else "queue_consumer_reconnected",
            broker=self.status.broker,
            destination=self.status.destination,
        )

    def stop(self) -> None:
        """Stop this consumer (the subscription is disposed): set :attr:`stopping` and
        wake what waits in :meth:`stopped_or` and :meth:`capacity`."""
        self.stopping.set()
        for waiter in (self._stop, self._room):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _stop_future(self) -> asyncio.Future[None]:
        """One future per consumer, done once it stops: what :meth:`stopped_or` races
        against (no task per wait)."""
        stop = self._stop
        if stop is None:
            stop = self._stop = asyncio.get_running_loop().create_future()
        if self.stopping.is_set() and not stop.done():
            stop.set_result(None)
        return stop

    async def stopped_or(self, awaitable: Awaitable[Any]) -> tuple[bool, Any]:
        """Await ``awaitable`` unless the consumer stops first.

        Returns:
            ``(True, None)`` if stopping won (``awaitable`` is cancelled), else
            ``(False, result)``.
        """
        task = asyncio.ensure_future(awaitable)
        stop = self._stop_future()
        if not stop.done():
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return False, task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return True, None

    # -- backpressure --------------------------------------------------------------

    def free_slots(self) -> int:
        return max(0, self.max_in_flight - len(self.unsettled))

    async def capacity(self, timeout: float | None = None) -> int:
        """Wait until fewer than ``max_in_flight`` messages are unsettled.

        Args:
            timeout: give up after this many seconds (default: wait as long as it takes),
                so a full consumer can still check its connection.

        Returns:
            How many more messages may be handed over now; 0 if stopping or timed out.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.stopping.is_set():
            free = self.free_slots()
            if free > 0:
                return free
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return 0
            # one future, woken by a settled message, stop() or the timer: no tasks
            room = self._room = loop.create_future()
            timer = None if remaining is None else loop.call_later(remaining, _wake, room)
            try:
                await room
            finally:
                if timer is not None:
                    timer.cancel()
                if self._room is room:
                    self._room = None
        return 0

    async def drain(self, timeout: float | None = None) -> int:
        """Wait until every message handed over is settled with the broker.

        Returns:
            How many were still unsettled at ``timeout`` (default: the source's
            ``drain_timeout``); the broker redelivers those.
        """
        limit = self.source.drain_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self.unsettled:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        left = len(self.unsettled)
        if left:
            logger.warning(
                "queue_consumer_drain_timeout",
                broker=self.status.broker,
                destination=self.status.destination,
                unsettled=left,
            )
        return left

    async def drain_if_stopping(self) -> int:
        """:meth:`drain` if the consumer is stopping (call it before closing the
        connection, on every way out of a session); else 0 at once."""
        if not self.stopping.is_set():
            return 0
        return await self.drain()

    # -- emission ------------------------------------------------------------------

    def is_unsettled(self, message_id: str) -> bool:
        """Whether a message with ``message_id`` is still being processed by this consumer."""
        return message_id in self._unsettled_ids

    def emit(
        self,
        message: QueueMessage,
        *,
        ack: Ack,
        nack: Nack,
        token: Any,
        idempotency_key: str | None,
    ) -> Delivery | None:
        """Hand ``message`` to the pipeline with a delivery that settles via
        ``ack(token)`` / ``nack(token, requeue)``.

        ``token`` is what the broker session needs to settle this message (a delivery
        tag, a stream entry, the client's message): the session passes the same ``ack``
        and ``nack`` functions for every message, so a message in flight costs no
        function objects of its own. ``requeue=True`` asks for redelivery, ``False``
        dead-letters. Returns the delivery, or ``None`` if the consumer is stopping (the
        message is handed back with ``nack(token, True)``).
        """
        status = self.status
        if self.stopping.is_set():
            status.requeued += 1
            task = asyncio.ensure_future(nack(token, True))
            task.add_done_callback(_swallow)
            return None
        self._seq += 1
        local_key = self._seq
        delivery = Delivery(
            source=f"{message.broker}:{message.destination}",
            seen_at=clock.now(self.scheduler),
            event_id=message.message_id,
            idempotency_key=idempotency_key,
            occurred_at=source_time(message.published_at),
            attributes=self._attributes_of(message),
        )
        settlement = _Settlement(self, local_key, message, token, ack, nack)
        delivery.ack = delivery.nack = settlement
        self.unsettled[local_key] = delivery
        message_id = message.message_id
        if message_id is not None:
            ids = self._unsettled_ids
            ids[message_id] = ids.get(message_id, 0) + 1
        status.received += 1
        status.in_flight += 1
        deliver(self.observer, message, delivery)
        return delivery

    def _attributes_of(self, message: QueueMessage) -> dict[str, Any]:
        """The delivery attributes of ``message``: shared by the messages of one subject
        (and redelivery flag), as deliveries never write their attributes (one dict less
        per message in flight); a message with trace headers gets its own."""
        shape = (message.broker, message.subject, message.redelivered)
        attributes = self._attributes.get(shape)
        if attributes is None:
            attributes = {
                "broker": message.broker,
                "broker_subject": message.subject,
                "redelivered": message.redelivered,
            }
            if len(self._attributes) < _SHARED_ATTRIBUTES:
                self._attributes[shape] = attributes
        if message.headers:
            trace = trace_context(message.headers)
            if trace is not None:
                attributes = {**attributes, **trace}
        return attributes

    # -- settlement ----------------------------------------------------------------

    def _ack(self, settlement: _Settlement) -> asyncio.Future[None]:
        """Ack one message (its delivery's ``ack``): the broker's ``ack``, then count it
        and free its slot.

        Acks are the hot path: no task per message. A broker that acks several messages
        with one command returns the same future for each of them (Redis ``XACK`` of a
        batch, an AMQP multiple ack); they form one group, accounted for by one callback
        when that future is done. The returned future is the group's: done once every
        message of it is counted (it never fails: a failed ack is logged and counted in
        ``settle_errors``, the message stays with the broker)."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None]
        try:
            result = settlement.broker_ack(settlement.token)
            if isinstance(result, asyncio.Future):
                pending = result
            else:
                pending = asyncio.ensure_future(result)
        except Exception as exc:
            pending = loop.create_future()
            pending.set_exception(exc)
        group = self._acking.get(pending)
        if group is None:
            group = self._acking[pending] = _AckGroup(loop.create_future())
            pending.add_done_callback(self._acked)
        group.members.append(settlement)
        return group.settled

    def _acked(self, pending: asyncio.Future[None]) -> None:
        group = self._acking.pop(pending)
        error = None if pending.cancelled() else pending.exception()
        failed = pending.cancelled() or error is not None
        status = self.status
        for settlement in group.members:
            if failed:
                status.settle_errors += 1
                message = settlement.message
                logger.warning(
                    "queue_ack_failed",
                    broker=message.broker,
                    destination=message.destination,
                    message_id=message.message_id,
                    error=f"{type(error).__name__}: {error}" if error else "cancelled",
                )
            else:
                status.acked += 1
            self._finish(settlement.key)
        if not group.settled.done():  # a waiter cancelled by its own caller
            group.settled.set_result(None)

    async def _nack(self, settlement: _Settlement, requeue: bool) -> None:
        status = self.status
        message = settlement.message
        try:
            await settlement.broker_nack(settlement.token, requeue)
            if requeue:
                status.requeued += 1
            else:
                status.dead_lettered += 1
            logger.warning(
                "queue_message_requeued" if requeue else "queue_message_dead_lettered",
                broker=message.broker,
                destination=message.destination,
                message_id=message.message_id,
            )
        except Exception as exc:
            status.settle_errors += 1
            logger.warning(
                "queue_nack_failed",
                broker=message.broker,
                destination=message.destination,
                message_id=message.message_id,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            self._finish(settlement.key)

    def _finish(self, key: int) -> None:
        delivery = self.unsettled.pop(key, None)
        if delivery is not None:
            self.status.in_flight -= 1
            event_id = delivery.event_id
            if event_id is not None:
                ids = self._unsettled_ids
                left = ids.get(event_id, 0) - 1
                if left > 0:
                    ids[event_id] = left
                else:
                    ids.pop(event_id, None)
        self._changed.set()
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)


class _Settlement:
    """How one message handed over settles with its broker, its delivery's ``ack`` and
    ``nack`` both: called without an argument it acks, with ``requeue`` it nacks.

    One small object per message in flight, where a closure each for ack and nack is two
    functions, their cells and the cells' tuples (a consumer holds ``max_in_flight``)."""

    __slots__ = ("broker_ack", "broker_nack", "consumer", "key", "message", "token")

    def __init__(
        self,
        consumer: Consumer,
        key: int,
        message: QueueMessage,
        token: Any,
        ack: Ack,
        nack: Nack,
    ) -> None:
        self.consumer = consumer
        self.key = key
        self.message = message
        self.token = token
        self.broker_ack = ack
        self.broker_nack = nack

    def __call__(self, requeue: bool | None = None) -> Awaitable[None]:
        if requeue is None:
            return self.consumer._ack(self)
        return self.consumer._nack(self, requeue)


class _AckGroup:
    """The messages one broker ack (one future) settles, and the future done once they
    are counted."""

    __slots__ = ("members", "settled")

    def __init__(self, settled: asyncio.Future[None]) -> None:
        self.settled = settled
        self.members: list[_Settlement] = []


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _swallow(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class QueueSource(reactivex.Observable[QueueMessage]):
    """A cold observable of :class:`QueueMessage`: each subscription runs one consumer.

    Attributes:
        status: the :class:`ConnectionStatus`, shared by all subscriptions.
        max_in_flight: messages handed over and not yet settled, at most.
    """

    def __init__(
        self,
        *,
        broker: str,
        destination: str,
        session: Session,
        describe: str,
        probe: Callable[[], Awaitable[None]] | None = None,
        redrive: Callable[[int | None], Awaitable[int]] | None = None,
        no_redrive: str | None = None,
        max_in_flight: int,
        scheduler: abc.SchedulerBase | None = None,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 15.0,
        drain_timeout: float = 30.0,
    ) -> None:
        check_positive("max_in_flight", max_in_flight)
        check_positive("reconnect_delay", reconnect_delay)
        check_positive("reconnect_max_delay", reconnect_max_delay)
        check_positive("drain_timeout", drain_timeout, allow_zero=True)
        super().__init__(self._subscribe_consumer)
        self.status = ConnectionStatus(broker=broker, destination=destination)
        self.max_in_flight = int(max_in_flight)
        self.reconnect_delay = float(reconnect_delay)
        self.reconnect_max_delay = float(reconnect_max_delay)
        self.drain_timeout = float(drain_timeout)
        self.describe = describe
        self._session = session
        self._probe = probe
        self._redrive = redrive
        self._no_redrive = no_redrive
        self._scheduler = scheduler
        self._tasks: set[asyncio.Task[None]] = set()
        self._random = random.Random()
        self._up = asyncio.Event()
        self._latest: Consumer | None = None

    def __repr__(self) -> str:
        return f"QueueSource({self.describe}, connected={self.status.connected})"

    async def check(self, timeout: float = 15.0) -> None:
        """Connect once and set up what the source needs (queue, group, stream), then close.

        Named triggers call it in ``start()`` so a wrong URL or name fails there.

        Raises:
            ConfigurationError: the broker refused the set-up (names, arguments).
            TriggerStartError: the broker cannot be reached within ``timeout`` seconds.
        """
        if self._probe is None:
            return
        try:
            await asyncio.wait_for(self._probe(), timeout)
        except ConfigurationError:
            raise
        except Exception as exc:
            error = redact_url(f"{type(exc).__name__}: {exc}")
            raise TriggerStartError(
                f"cannot consume {self.describe}: {error}; check that "
                "the broker is running and the URL, credentials and names are right"
            ) from exc

    async def redrive_dead_letters(self, limit: int | None = None) -> int:
        """Move the messages of this source's broker dead-letter queue back to the queue it
        consumes (oldest first, at most ``limit``; default all), where they are consumed
        again with their original idempotency key: a message whose job was made
        meanwhile (e.g. by ``JobService.redrive_dead_letter``) finds that job.

        RabbitMQ moves ``<queue>.dead`` back to ``<queue>``; Redis Streams moves the
        entries of ``<stream>.dead`` back to ``<stream>``; NATS moves the messages of
        ``dead_letter_subject`` (kept by the JetStream stream that captures it) back to
        the subjects they came from. MQTT has no broker dead-letter queue: it raises
        (see docs/dead-letters.md).
        Each message is taken off the dead-letter queue only once it is back on the
        source queue, so a crash in between repeats it, never loses it.

        Returns:
            How many messages were moved.

        Raises:
            ConfigurationError: this source has no broker dead-letter queue to redrive
                from (its ``dead_letter_*`` argument is ``None``, or the broker has none),
                or ``limit`` is below 1.
        """
        check_limit(limit)
        if self._redrive is None:
            reason = f": {self._no_redrive}" if self._no_redrive else ""
            raise ConfigurationError(
                f"{self.describe} has no broker dead-letter queue to redrive from{reason}"
            )
        return await self._redrive(limit)

    async def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until a consumer of this source is connected (at most ``timeout`` s).

        Returns:
            Whether it is connected.
        """
        if not self.status.connected:
            self._up.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), timeout)
        return self.status.connected

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the latest subscription's first connection is set up (connected,
        and the queue, group or consumer declared) or has failed (the subscription has
        then errored with ``TriggerStartError`` / ``ConfigurationError``).

        Returns:
            Whether it is connected; ``False`` after a failure or ``timeout`` seconds.
        """
        consumer = self._latest
        if consumer is None:
            return self.status.connected
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.started.wait(), timeout)
        return consumer.ever_connected and not consumer.stopping.is_set()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until every disposed subscription has drained and closed its connection."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def _subscribe_consumer(
        self,
        observer: abc.ObserverBase[QueueMessage],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        announce(self)
        consumer = Consumer(self, observer, clock.resolve_scheduler(self._scheduler or scheduler))
        self._latest = consumer
        task = asyncio.ensure_future(self._run(consumer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Disposable(consumer.stop)

    async def _run(self, consumer: Consumer) -> None:
        try:
            await self._consume(consumer)
        finally:
            self.status.connected = False
            consumer.started.set()

    async def _consume(self, consumer: Consumer) -> None:
        status = self.status
        failures = 0
        while not consumer.stopping.is_set():
            try:
                await self._session(consumer)
                if consumer.stopping.is_set():
                    return
                raise ConnectionError("the broker ended the consumer")
            except asyncio.CancelledError:
                raise
            except ConfigurationError as exc:
                status.connected = False
                consumer.observer.on_error(exc)
                return
            except Exception as exc:
                if consumer.stopping.is_set():
                    return
                error = redact_url(f"{type(exc).__name__}: {exc}")
                now = clock.now(consumer.scheduler)
                if not consumer.ever_connected:
                    status.mark_down(error, now, outage=False)
                    logger.error("queue_consumer_start_failed", source=self.describe, error=error)
                    consumer.observer.on_error(
                        TriggerStartError(
                            f"cannot consume {self.describe}: {error}; check that the broker "
                            "is running and the URL, credentials and names are right"
                        )
                    )
                    return
                if status.connected:
                    failures = 0
                failures += 1
                status.mark_down(error, now, outage=True)
                delay = backoff(
                    failures,
                    self.reconnect_delay,
                    self.reconnect_max_delay,
                    jitter=RECONNECT_JITTER,
                    rng=self._random,
                )
                logger.warning(
                    "queue_connection_lost",
                    source=self.describe,
                    error=error,
                    attempt=failures,
                    retry_in_s=round(delay, 3),
                )
                await consumer.stopped_or(clock.sleep(consumer.scheduler, delay))
