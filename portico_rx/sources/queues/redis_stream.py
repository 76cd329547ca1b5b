"""``redis_stream``: consume a Redis stream through a consumer group (XREADGROUP/XACK)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from reactivex import abc

from portico_rx.errors import ConfigurationError, MissingDependencyError
from portico_rx.logs import get_logger
from portico_rx.pipeline.provenance import stream_entry_key, stream_entry_time
from portico_rx.sources.queues.consumer import Consumer, QueueSource, check_positive
from portico_rx.sources.queues.message import QueueMessage
from portico_rx.url_redaction import redact_url

try:
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError
except ImportError as _exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("redis", "redis") from _exc

__all__ = ["dead_letter_stream_name", "default_consumer_name", "redis_stream"]

logger = get_logger("portico_rx.sources.redis_stream")

DEFAULT_COUNT = 32
Entry = tuple[bytes, dict[bytes, bytes] | None]


def dead_letter_stream_name(stream: str) -> str:
    """The stream bad entries are copied to by default: ``<stream>.dead``."""
    return f"{stream}.dead"


def default_consumer_name() -> str:
    """This host's name: a restarted process on the same host resumes its own entries."""
    return socket.gethostname() or "portico"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply for one stream (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])


class _AckBatcher:
    """``XACK``s the entries settled in one event-loop turn with one command.

    Each ``ack(entry_id)`` waits for the command that carries its id, so a caller knows
    its entry was acked (or gets the error), as with one ``XACK`` per entry.
    """

    def __init__(self, redis: aioredis.Redis, stream: str, group: str) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self._ids: list[bytes | str] = []
        self._done: asyncio.Future[None] | None = None

    def ack(self, entry_id: bytes | str) -> asyncio.Future[None]:
        """Queue ``entry_id`` for the next flush; the future is done when it was acked."""
        self._ids.append(entry_id)
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_soon(self._flush)
        return self._done

    def _flush(self) -> None:
        ids, done = self._ids, self._done
        self._ids, self._done = [], None
        assert done is not None
        task = asyncio.ensure_future(self.redis.xack(self.stream, self.group, *ids))

        def finish(task: asyncio.Future[Any]) -> None:
            if done.done():
                return
            if task.cancelled():
                done.cancel()
            elif task.exception() is not None:
                done.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                done.set_result(None)

        task.add_done_callback(finish)
        done.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _RedisStream:
    """One ``redis_stream()`` source's broker side: the stream, the group, this consumer,
    and the session the :class:`QueueSource` runs per connection."""

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        *,
        block: float,
        claim_idle: float,
        dead_letter_stream: str | None,
        body_field: str,
        create_group: bool,
        group_start: str,
    ) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer_name = consumer
        self.block = block
        self.block_ms = max(1, int(block * 1000))
        self.claim_idle_ms = max(1, int(claim_idle * 1000))
        self.claim_every = min(claim_idle / 2, 10.0)
        self.dead_stream = (
            dead_letter_stream_name(stream) if dead_letter_stream == "" else dead_letter_stream
        )
        self.body_field = body_field
        self.body_key = body_field.encode()
        self.create_group = create_group
        self.group_start = group_start
        self.shown = redact_url(url)
        self.stream_bytes = stream.encode()

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=5,
            socket_timeout=self.block + 10,
            decode_responses=False,
        )

    async def setup(self, redis: aioredis.Redis) -> None:
        """Check the connection; create the group, or check that it exists."""
        stream, group = self.stream, self.group
        await redis.ping()
        if self.create_group:
            try:
                await redis.xgroup_create(stream, group, id=self.group_start, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        else:
            try:
                groups = await redis.xinfo_groups(stream)
            except ResponseError:
                groups = []
            if not any(_text(g["name"]) == group for g in groups):
                raise ConfigurationError(
                    f"group={group!r} does not exist on stream={stream!r}; create it or pass "
                    "create_group=True"
                )

    def original_id(self, entry_id: str, fields: dict[bytes, bytes]) -> str:
        """The id the entry first had in this stream: its own, or for an entry redriven
        from the dead-letter stream, the one it was dead-lettered under (so its key, and
        so its job, is the original's)."""
        original = fields.get(b"dead_letter_of")
        if original is not None and fields.get(b"dead_letter_stream") == self.stream_bytes:
            return _text(original)
        return entry_id

    async def redrive(self, limit: int | None) -> int:
        """Move the dead-letter stream's entries back to the stream (``QueueSource``'s
        ``redrive_dead_letters``): oldest first, each ``XADD`` to the stream and ``XDEL``
        from the dead-letter stream in one ``MULTI``, keeping its fields (its
        ``dead_letter_of`` keeps its original key)."""
        dead = self.dead_stream
        if dead is None:
            raise ConfigurationError(
                f"redis stream {self.stream!r} keeps no dead-letter stream "
                "(dead_letter_stream=None): there is nothing to redrive"
            )
        redis = self.client()
        moved = 0
        after = b"-"  # entries of other streams (a shared dead-letter stream) are skipped
        try:
            while limit is None or moved < limit:
                entries: list[Any] = list(await redis.xrange(dead, after, "+", count=100) or [])
                if not entries:
                    break
                for raw_id, fields in entries:
                    after = b"(" + raw_id
                    if fields is None or fields.get(b"dead_letter_stream") != self.stream_bytes:
                        continue
                    async with redis.pipeline(transaction=True) as pipe:
                        pipe.xadd(self.stream, fields)  # type: ignore[arg-type]
                        pipe.xdel(dead, raw_id)
                        await pipe.execute()
                    moved += 1
                    if limit is not None and moved >= limit:
                        break
        finally:
            await redis.aclose()
        logger.info("redis_stream_entries_redriven", stream=self.stream, dead=dead, moved=moved)
        return moved

    def message(self, entry_id: str, fields: dict[bytes, bytes], redelivered: bool) -> QueueMessage:
        body_key = self.body_key
        body = fields.get(body_key, b"")
        if len(fields) == 1 and body_key in fields:  # the common entry: its body alone
            headers: dict[str, Any] = {}
        else:
            body_field = self.body_field
            headers = {_text(k): _text(v) for k, v in fields.items() if _text(k) != body_field}
        return QueueMessage.received(
            broker="redis",
            destination=self.stream,
            subject=self.stream,
            message_id=entry_id,
            body=body,
            headers=headers,
            redelivered=redelivered,
            published_at=stream_entry_time(entry_id),
        )

    async def session(self, consumer: Consumer) -> None:
        await _RedisStreamSession(self, consumer).run()

    async def probe(self) -> None:
        redis = self.client()
        try:
            await self.setup(redis)
        finally:
            await redis.aclose()


class _RedisStreamSession:
    """One connection's consumer: own pending entries first, then claims and new entries."""

    def __init__(self, source: _RedisStream, consumer: Consumer) -> None:
        self.source = source
        self.consumer = consumer
        self.loop_time = asyncio.get_running_loop().time
        self.redis = source.client()
        self.acks = _AckBatcher(self.redis, source.stream, source.group)
        self.ack, self.nack = self._ack, self._nack  # bound once, passed with every entry
        self.open = True
        self.own_pending_from: str | None = "0"
        self.last_claim = float("-inf")
        self.claim_cursor = "0-0"

    async def run(self) -> None:
        try:
            await self.source.setup(self.redis)
            self.consumer.connected()
            await self._receive()
        finally:
            await self.consumer.drain_if_stopping()
            self.open = False
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def _receive(self) -> None:
        consumer = self.consumer
        while True:
            free = await consumer.capacity(timeout=self.source.block)
            if consumer.stopping.is_set():
                break
            try:
                if not await self._read(free):
                    break
            except ResponseError as exc:
                if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                    raise ConnectionError(
                        f"stream {self.source.stream!r} or group {self.source.group!r} "
                        f"vanished: {exc}"
                    ) from exc
                raise

    async def _read(self, free: int) -> bool:
        """One read of at most ``free`` entries; ``False`` if the consumer stopped."""
        if free == 0:  # full: nothing to read, but notice a lost connection
            await self.redis.ping()
        elif self.loop_time() - self.last_claim >= self.source.claim_every:
            await self._claim(free)
        elif self.own_pending_from is not None:
            await self._read_own_pending(free)
        else:
            return await self._read_new(free)
        return True

    async def _claim(self, free: int) -> None:
        source = self.source
        self.last_claim = self.loop_time()
        claimed = await self.redis.xautoclaim(
            source.stream,
            source.group,
            source.consumer_name,
            source.claim_idle_ms,
            self.claim_cursor,
            count=free,
        )
        self.claim_cursor = _text(claimed[0])
        if claimed[1]:
            logger.info(
                "redis_stream_entries_claimed",
                stream=source.stream,
                group=source.group,
                consumer=source.consumer_name,
                count=len(claimed[1]),
            )
        self._emit(claimed[1], redelivered=True)

    async def _read_own_pending(self, free: int) -> None:
        source = self.source
        assert self.own_pending_from is not None
        reply = await self.redis.xreadgroup(
            source.group, source.consumer_name, {source.stream: self.own_pending_from}, count=free
        )
        entries = _entries(reply)
        if len(entries) < free or not entries:
            self.own_pending_from = None
        else:
            self.own_pending_from = _text(entries[-1][0])
        self._emit(entries, redelivered=True)

    async def _read_new(self, free: int) -> bool:
        source = self.source
        stopped, reply = await self.consumer.stopped_or(
            self.redis.xreadgroup(
                source.group,
                source.consumer_name,
                {source.stream: ">"},
                count=free,
                block=source.block_ms,
            )
        )
        if stopped:
            return False
        self._emit(_entries(reply), redelivered=False)
        return True

    def _emit(self, entries: list[Entry], redelivered: bool) -> None:
        source = self.source
        for entry in entries:
            raw_id, fields = entry
            entry_id = _text(raw_id)
            if self.consumer.is_unsettled(entry_id):
                continue
            if fields is None:  # deleted from the stream while pending
                task = asyncio.ensure_future(self.redis.xack(source.stream, source.group, entry_id))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                continue
            self.consumer.emit(
                source.message(entry_id, fields, redelivered),
                ack=self.ack,
                nack=self.nack,
                token=entry,
                idempotency_key=stream_entry_key(
                    source.stream, source.original_id(entry_id, fields)
                ),
            )

    def _check_open(self) -> None:
        if not self.open:
            raise ConnectionError(
                "the connection this entry came on is gone; it stays pending and is "
                "read again after the reconnect"
            )

    def _ack(self, entry: Entry) -> asyncio.Future[None]:
        self._check_open()
        return self.acks.ack(entry[0])

    async def _nack(self, entry: Entry, requeue: bool) -> None:
        if requeue:
            return  # stays pending: re-read on restart or claimed after idle
        self._check_open()
        entry_id, fields = _text(entry[0]), entry[1]
        assert fields is not None  # an entry without fields is acked, never emitted
        source = self.source
        if source.dead_stream is None:
            await self.redis.xack(source.stream, source.group, entry_id)
            return
        dead_fields: dict[Any, Any] = dict(fields)
        dead_fields.update(
            {
                "dead_letter_of": source.original_id(entry_id, fields),
                "dead_letter_stream": source.stream,
                "dead_letter_group": source.group,
            }
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(source.dead_stream, dead_fields)
            pipe.xack(source.stream, source.group, entry_id)
            await pipe.execute()


def _check_arguments(
    url: str,
    stream: str,
    group: str,
    consumer: str,
    count: int,
    block: float,
    claim_idle: float,
    group_start: str,
) -> None:
    """Raise ``ConfigurationError`` naming the first invalid argument and its fix."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"url={redact_url(url)!r}: use a Redis URL such as 'redis://127.0.0.1:6379/0'"
        )
    for arg, value in (("stream", stream), ("group", group), ("consumer", consumer)):
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{arg}={value!r}: use a non-empty string")
    check_positive("count", count)
    check_positive("block", block)
    check_positive("claim_idle", claim_idle)
    if group_start not in ("0", "$"):
        raise ConfigurationError(f"group_start={group_start!r}: use '0' or '$'")


def redis_stream(
    url: str,
    stream: str,
    group: str,
    consumer: str,
    *,
    count: int = DEFAULT_COUNT,
    block: float = 1.0,
    claim_idle: float = 60.0,
    dead_letter_stream: str | None = "",
    body_field: str = "body",
    create_group: bool = True,
    group_start: str = "0",
    scheduler: abc.SchedulerBase | None = None,
    reconnect_delay: float = 0.5,
    reconnect_max_delay: float = 15.0,
    drain_timeout: float = 30.0,
) -> QueueSource:
    """Entries of a Redis stream, read as ``consumer`` of consumer ``group``.

    Each entry is emitted as a :class:`~portico_rx.sources.queues.message.QueueMessage`
    whose ``body`` is the entry's ``body_field`` and whose ``headers`` are its other
    fields; the delivery's idempotency key is ``<stream>/<entry id>``. An entry is
    ``XACK``-ed once its job exists (or the pipeline dropped it); a bad entry is copied to
    the dead-letter stream and acked (in one ``MULTI``); an entry still in flight at stop
    stays pending. On every (re)connect the consumer first re-reads its own pending
    entries (a restarted process with the same ``consumer`` name resumes where it died),
    and every ``claim_idle / 2`` seconds it ``XAUTOCLAIM``-s entries pending longer than
    ``claim_idle`` from dead consumers. At most ``count`` entries are in flight.

    Marble::

        XADD:          --e1----e2--e3----
        redis_stream:  --e1----e2--e3----   (XACK after each job exists)

    Args:
        url: Redis URL, e.g. ``"redis://127.0.0.1:6379/0"``.
        stream: the stream key.
        group: the consumer group (created with ``MKSTREAM`` when ``create_group``).
        consumer: this consumer's name in the group (unique per running instance).
        count: entries in flight at most (default 32).
        block: seconds one ``XREADGROUP`` blocks waiting for entries (default 1).
        claim_idle: seconds after which another consumer's pending entry is claimed
            (default 60).
        dead_letter_stream: where bad entries go (default ``""``: ``<stream>.dead``);
            ``None`` acks them without a copy (still logged and counted).
            ``source.redrive_dead_letters()`` moves them back to ``stream``, where
            they keep their original key (field ``dead_letter_of``).
        body_field: the entry field holding the message body (default ``"body"``).
        create_group: create the group if missing (default True).
        group_start: where a new group starts: ``"0"`` (whole stream, default) or ``"$"``.
        scheduler: Rx scheduler for timestamps and reconnect backoff (default: the loop's).
        reconnect_delay: first reconnect wait in seconds (default 0.5), doubling up to
            ``reconnect_max_delay`` (default 15).
        drain_timeout: seconds a stopping consumer waits for in-flight entries (default 30).

    Returns:
        A :class:`~portico_rx.sources.queues.consumer.QueueSource` (an observable).

    Raises:
        ConfigurationError: an argument is invalid.

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.redis_stream(
        ...     "redis://127.0.0.1:6379/0", "signups", "mailers", "worker-1"
        ... ).pipe(to_job("email.welcome", payload=lambda m: m.json_body()))
    """
    _check_arguments(url, stream, group, consumer, count, block, claim_idle, group_start)
    broker_stream = _RedisStream(
        url,
        stream,
        group,
        consumer,
        block=block,
        claim_idle=claim_idle,
        dead_letter_stream=dead_letter_stream,
        body_field=body_field,
        create_group=create_group,
        group_start=group_start,
    )
    return QueueSource(
        broker="redis",
        destination=stream,
        session=broker_stream.session,
        probe=broker_stream.probe,
        redrive=broker_stream.redrive,
        describe=f"redis stream {stream!r} group {group!r} at {broker_stream.shown}",
        max_in_flight=count,
        scheduler=scheduler,
        reconnect_delay=reconnect_delay,
        reconnect_max_delay=reconnect_max_delay,
        drain_timeout=drain_timeout,
    )
