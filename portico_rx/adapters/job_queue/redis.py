"""Redis JobQueue: Lua-atomic enqueue and claim, unique keys, visibility timeout.

Every state change is one Lua script, so it is atomic on the server however many
processes share the prefix:

* ``enqueue`` checks and sets ``<prefix>:key:<idempotency key>`` in the same script that
  writes the job, so concurrent enqueues of one key store one job;
* ``dequeue`` promotes due delayed jobs, returns expired leases to their queue, pops
  the best job (highest priority, then oldest) and leases it, all in one script;
* a claimed job is in ``<prefix>:running`` scored by its lease expiry; a worker that dies
  without ``complete``/``fail`` leaves the lease to expire and the job is claimed again
  (``visibility_timeout``);
* new jobs ``PUBLISH`` on ``<prefix>:wake``; :meth:`wait_for_jobs` subscribes to it.

Layout (all keys start with ``<prefix>:``)::

    job:<id>          hash: body (immutable JSON), status, attempts, times, result, error
    key:<key>         string: id of the job holding the idempotency key
    ready:<queue>     zset: due jobs, score = (100 - priority) * 2**40 + enqueue sequence
    delayed:<queue>   zset: jobs waiting for scheduled_at, score = due time in ms
    running           zset: claimed jobs, score = lease expiry in ms
    all               zset: every job, score = created_at in µs (for ``list``)
    keys              zset: every idempotency key, score 0 (lexical order, for ``list``)
    dead:<id>         hash: a dead letter: record (JSON), status, member
    dead:seq          counter: dead letters added (ties of ``at`` list by it)
    dead:by:<status>:<trigger>  zset: dead letters, score = ``at`` in µs, member =
                      ``{seq:016d}:{id}``; ``*`` for any status / any trigger
    schedule:<id>     hash: a stored schedule (config JSON, paused, removed, revision, …);
                      <id> is the JSON ``[trigger, name]``
    schedules         zset: every stored schedule's <id>, score = its revision
    schedules:revision  string: the store-wide schedule revision counter

A standalone Redis (or one primary) is assumed: the scripts touch keys they compute.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from portico_rx.adapters.job_queue.base import (
    KEY_CEILING,
    cancel_refused,
    check_list_args,
    check_prefixes,
    check_queue_names,
    job_matches,
)
from portico_rx.adapters.job_queue.server_link import ServerLink
from portico_rx.errors import ConfigurationError, JobNotFoundError, require
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobStatus, utcnow
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    check_dead_letter_query,
    check_resolution,
)
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.schedule_store import ScheduleStore, StoredSchedule, check_schedule_id
from portico_rx.url_redaction import redact_url

__all__ = ["RedisJobQueue"]

T = TypeVar("T")

logger = get_logger("portico_rx.job_queue.redis")

_PREFIX = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_BATCH = 200

_ENQUEUE = """
-- KEYS: job hash, key string ('' when none), ready zset, delayed zset, all zset, keys zset,
--       sequence counter, wake channel
-- ARGV: id, idempotency key, body, status, attempts, priority, created_us, scheduled_ms,
--       scheduled_at, started_at, completed_at, result, error, queue, prefix
if ARGV[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then
    return {0, redis.call('HGETALL', ARGV[15] .. ':job:' .. existing)}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local seq = redis.call('INCR', KEYS[7])
local rank = (100 - tonumber(ARGV[6])) * 1099511627776 + seq
local fields = {'body', ARGV[3], 'status', ARGV[4], 'attempts', ARGV[5], 'rank', rank,
                'queue', ARGV[14]}
local optional = {scheduled_at = ARGV[9], started_at = ARGV[10], completed_at = ARGV[11],
                  result = ARGV[12], error = ARGV[13]}
for name, value in pairs(optional) do
  if value ~= '' then
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[6], 0, ARGV[2])
end
if ARGV[4] == 'pending' or ARGV[4] == 'scheduled' then
  if ARGV[8] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[8], ARGV[1])
  else
    redis.call('ZADD', KEYS[3], rank, ARGV[1])
  end
  redis.call('PUBLISH', KEYS[8], ARGV[14])
end
return {1, redis.call('HGETALL', KEYS[1])}
"""

_DEQUEUE = """
-- KEYS: running zset, ready zsets (n), delayed zsets (n)
-- ARGV: prefix, n, due_ms, wall_ms, started_at, lease_ms ('' = no lease)
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local job = prefix .. ':job:' .. id
  local state = redis.call('HMGET', job, 'queue', 'rank', 'status')
  if state[1] and state[3] == 'running' then
    redis.call('HSET', job, 'status', 'pending')
    redis.call('ZADD', prefix .. ':ready:' .. state[1], state[2], id)
  end
end
for i = 1, n do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1 + n + i], '-inf', ARGV[3], 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1 + n + i], id)
    local rank = redis.call('HGET', prefix .. ':job:' .. id, 'rank')
    if rank then
      redis.call('ZADD', KEYS[1 + i], rank, id)
    end
  end
end
while true do
  local best_key, best_id, best_score = nil, nil, nil
  for i = 1, n do
    local top = redis.call('ZRANGE', KEYS[1 + i], 0, 0, 'WITHSCORES')
    if top[1] and (best_score == nil or tonumber(top[2]) < best_score) then
      best_key, best_id, best_score = KEYS[1 + i], top[1], tonumber(top[2])
    end
  end
  if best_id == nil then
    return nil
  end
  redis.call('ZREM', best_key, best_id)
  local job = prefix .. ':job:' .. best_id
  local status = redis.call('HGET', job, 'status')
  if status == 'pending' or status == 'scheduled' then
    redis.call('HSET', job, 'status', 'running', 'started_at', ARGV[5])
    redis.call('HINCRBY', job, 'attempts', 1)
    if ARGV[6] ~= '' then
      redis.call('ZADD', KEYS[1], ARGV[6], best_id)
    end
    return redis.call('HGETALL', job)
  end
end
"""

_SETTLE = """
-- KEYS: job hash, running zset
-- ARGV: prefix, id, status, field/value pairs to set ('' value = delete), ...;
--       last two ARGV: delayed score ('' = none), unused
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then
  return nil
end
local queue = redis.call('HGET', job, 'queue')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', ARGV[1] .. ':ready:' .. queue, ARGV[2])
redis.call('ZREM', ARGV[1] .. ':delayed:' .. queue, ARGV[2])
redis.call('HSET', job, 'status', ARGV[3])
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', job, ARGV[i])
  else
    redis.call('HSET', job, ARGV[i], ARGV[i + 1])
  end
end
if ARGV[4] ~= '' then
  redis.call('ZADD', ARGV[1] .. ':delayed:' .. queue, ARGV[4], ARGV[2])
  redis.call('PUBLISH', ARGV[1] .. ':wake', queue)
end
return redis.call('HGETALL', job)
"""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_CANCEL = """
-- KEYS: job hash
-- ARGV: prefix, id, completed_at
-- returns {1, job} when cancelled, {0, job} when its status forbids it, nil when absent
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then
  return nil
end
local state = redis.call('HMGET', job, 'status', 'queue')
if state[1] ~= 'pending' and state[1] ~= 'scheduled' then
  return {0, redis.call('HGETALL', job)}
end
redis.call('ZREM', ARGV[1] .. ':ready:' .. state[2], ARGV[2])
redis.call('ZREM', ARGV[1] .. ':delayed:' .. state[2], ARGV[2])
redis.call('HSET', job, 'status', 'cancelled', 'completed_at', ARGV[3])
return {1, redis.call('HGETALL', job)}
"""

_ADD_DEAD_LETTER = """
-- KEYS: letter hash, sequence counter
-- ARGV: prefix, id, trigger, status, score (at in µs), record JSON
-- returns {1} when added, {0, stored record JSON} when the id was already stored
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'record')}
end
local member = string.format('%016d', redis.call('INCR', KEYS[2])) .. ':' .. ARGV[2]
redis.call('HSET', KEYS[1], 'record', ARGV[6], 'status', ARGV[4], 'member', member)
local by = ARGV[1] .. ':dead:by:'
for _, status in ipairs({ARGV[4], '*'}) do
  for _, trigger in ipairs({ARGV[3], '*'}) do
    redis.call('ZADD', by .. status .. ':' .. trigger, ARGV[5], member)
  end
end
return {1}
"""

_RESOLVE_DEAD_LETTER = """
-- KEYS: letter hash
-- ARGV: prefix, trigger, expected status, new status, new record JSON, score
-- returns {1} when resolved, {0, stored record JSON} when its status was not the expected
-- one, nil when absent
local state = redis.call('HMGET', KEYS[1], 'status', 'member', 'record')
if not state[1] then
  return nil
end
if state[1] ~= ARGV[3] then
  return {0, state[3]}
end
local by = ARGV[1] .. ':dead:by:'
for _, trigger in ipairs({ARGV[2], '*'}) do
  redis.call('ZREM', by .. ARGV[3] .. ':' .. trigger, state[2])
  redis.call('ZADD', by .. ARGV[4] .. ':' .. trigger, ARGV[6], state[2])
end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'record', ARGV[5])
return {1}
"""


def _micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class RedisJobQueue(JobQueue, DeadLetterStore, ScheduleStore):
    """A JobQueue in Redis, shared safely by any number of processes.

    Also a :class:`~portico_rx.ports.dead_letter_store.DeadLetterStore`: dead letters
    are kept under ``<prefix>:dead:`` (each change one Lua script, so atomic).

    Args:
        url: ``redis://[:password@]host:port/db`` (default db 0).
        prefix: first part of every key, so several queues share one Redis (default
            ``"portico"``); letters, digits and ``_ . -``.
        visibility_timeout: seconds a claimed job stays invisible; a job whose worker
            dies without ``complete``/``fail`` is claimed again after it (default 300;
            ``None`` never reclaims). Set it above your longest job.
        connect_timeout: seconds to wait for a connection (default 5).
        max_connections: size of the connection pool (default 20).
        retry: backoff for calls that cannot reach the server (default: 5 attempts from
            0.1 s); when exhausted the call raises ``QueueUnavailableError``.

    Raises:
        ConfigurationError: an invalid prefix or timeout.
        MissingDependencyError: ``redis`` is not installed (``portico_rx[redis]``).

    Example::

        queue = RedisJobQueue("redis://127.0.0.1:6379/0", prefix="shop")
        async with JobService(queue) as service:
            await service.create_job("email.send", {"to": "a@example.com"})
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "portico",
        visibility_timeout: float | None = 300.0,
        connect_timeout: float = 5.0,
        max_connections: int = 20,
        retry: RetryPolicy | None = None,
    ) -> None:
        redis = require("redis.asyncio", "redis")
        require("redis.exceptions", "redis")
        import redis.exceptions as redis_errors

        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                f"url={redact_url(url)!r}: give a Redis URL, e.g. 'redis://127.0.0.1:6379/0'"
            )
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ConfigurationError(
                f"prefix={prefix!r}: use 1-100 letters, digits or '_ . -', e.g. 'portico'"
            )
        if visibility_timeout is not None and visibility_timeout <= 0:
            raise ConfigurationError(
                f"visibility_timeout={visibility_timeout!r}: use a positive number of seconds "
                "or None to never reclaim"
            )
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout={connect_timeout!r}: use seconds > 0")
        if max_connections < 1:
            raise ConfigurationError(f"max_connections={max_connections!r}: use 1 or more")
        self._redis: Any = redis
        self._url = url
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.link = ServerLink(
            url=url,
            kind="Redis",
            unreachable=(
                OSError,
                TimeoutError,
                redis_errors.ConnectionError,
                redis_errors.TimeoutError,
                redis_errors.BusyLoadingError,
            ),
            retry=retry or RetryPolicy(),
        )
        self._client: Any = None
        self._every_queue: tuple[str, ...] | None = None  # dequeue(None)'s queues
        self._every_queue_until = 0.0
        self._scripts: dict[str, Any] = {}
        self._pubsub: Any = None
        self._open_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RedisJobQueue({self.link.url!r}, prefix={self.prefix!r})"

    @property
    def url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return self.link.url

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and check the server answers. Idempotent.

        Raises:
            QueueUnavailableError: the server cannot be reached or refuses the login; the
                message names the URL with the password redacted.
        """
        async with self._open_lock:
            if self._client is not None:
                return
            client = self._redis.Redis.from_url(
                self._url,
                decode_responses=True,
                socket_connect_timeout=self.connect_timeout,
                max_connections=self.max_connections,
            )
            try:
                await client.ping()
            except (*self.link.unreachable, self._redis.RedisError) as exc:
                await client.aclose()
                raise self.link.unavailable(exc, action="open") from exc
            self._scripts = {
                "enqueue": client.register_script(_ENQUEUE),
                "dequeue": client.register_script(_DEQUEUE),
                "settle": client.register_script(_SETTLE),
                "add_dead_letter": client.register_script(_ADD_DEAD_LETTER),
                "resolve_dead_letter": client.register_script(_RESOLVE_DEAD_LETTER),
                "schedule": client.register_script(_SCHEDULE_WRITE),
            }
            self._client = client
            logger.info("redis_job_queue_opened", url=self.url, prefix=self.prefix)

    async def close(self) -> None:
        """Close the subscription and the connection pool. Idempotent."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except (*self.link.unreachable, self._redis.RedisError):
                pass
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> RedisJobQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def drop(self) -> None:
        """Delete every key under ``<prefix>:`` (tests, teardown)."""

        async def delete() -> None:
            keys = [key async for key in self._client.scan_iter(match=self._key("*"), count=500)]
            for start in range(0, len(keys), 500):
                await self._client.delete(*keys[start : start + 500])

        await self._run("drop", delete)

    def health(self) -> dict[str, Any]:
        """Reachability of the server (``url``, ``available``, ``last_error``, …)."""
        return {**self.link.health(), "open": self._client is not None}

    # -- plumbing --------------------------------------------------------------------

    async def _run(self, action: str, operation: Callable[[], Awaitable[T]]) -> T:
        if self._client is None:
            await self.open()
        return await self.link.call(action, operation)

    @staticmethod
    def _job(flat: Sequence[str] | None) -> Job | None:
        if not flat:
            return None
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        body = json.loads(fields["body"])
        result = fields.get("result")
        return Job.model_construct(
            id=UUID(body["id"]),
            job_type=body["job_type"],
            queue_name=body["queue_name"],
            payload=body["payload"],
            priority=body["priority"],
            metadata=body["metadata"],
            status=JobStatus(fields["status"]),
            attempts=int(fields["attempts"]),
            max_retries=body["max_retries"],
            created_at=_parse_time(body["created_at"]),
            scheduled_at=_parse_time(fields.get("scheduled_at")),
            started_at=_parse_time(fields.get("started_at")),
            completed_at=_parse_time(fields.get("completed_at")),
            idempotency_key=body["idempotency_key"],
            result=json.loads(result) if result is not None else None,
            error=fields.get("error"),
        )

    def _require(self, flat: Sequence[str] | None, job_id: UUID) -> Job:
        job = self._job(flat)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id} under prefix {self.prefix!r}")
        return job

    # -- the port --------------------------------------------------------------------

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        keys, args = self._enqueue_args(job)
        created, flat = await self._run(
            "enqueue into", lambda: self._scripts["enqueue"](keys=keys, args=args)
        )
        return self._require(flat, job.id), bool(created)

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        """The enqueue script once per job, pipelined: one round trip per 1,000 jobs (each
        script call atomic, in order, so a key repeated in ``jobs`` is stored once)."""
        calls = [self._enqueue_args(job) for job in jobs]
        replies: list[Any] = []
        for start in range(0, len(calls), 1000):
            chunk = calls[start : start + 1000]

            async def send(chunk: list[tuple[list[str], list[Any]]] = chunk) -> list[Any]:
                async with self._client.pipeline(transaction=False) as pipe:
                    for keys, args in chunk:
                        await self._scripts["enqueue"](keys=keys, args=args, client=pipe)
                    return list(await pipe.execute())

            replies += await self._run("enqueue into", send)
        return [
            (self._require(flat, job.id), bool(created))
            for job, (created, flat) in zip(jobs, replies, strict=True)
        ]

    def _enqueue_args(self, job: Job) -> tuple[list[str], list[Any]]:
        key = job.idempotency_key or ""
        body = json.dumps(
            {
                "id": str(job.id),
                "job_type": job.job_type,
                "queue_name": job.queue_name,
                "payload": job.payload,
                "priority": job.priority,
                "metadata": job.metadata,
                "max_retries": job.max_retries,
                "created_at": job.created_at.isoformat(),
                "idempotency_key": job.idempotency_key,
            },
            default=str,
        )
        created_us = int(job.created_at.timestamp() * 1_000_000)
        keys = [
            self._key("job", str(job.id)),
            self._key("key", key) if key else self._key("key"),
            self._key("ready", job.queue_name),
            self._key("delayed", job.queue_name),
            self._key("all"),
            self._key("keys"),
            self._key("seq"),
            self._key("wake"),
        ]
        args = [
            str(job.id),
            key,
            body,
            job.status.value,
            job.attempts,
            job.priority,
            created_us,
            _ms(job.scheduled_at) if job.scheduled_at is not None else "",
            _iso(job.scheduled_at),
            _iso(job.started_at),
            _iso(job.completed_at),
            json.dumps(job.result, default=str) if job.result is not None else "",
            job.error or "",
            job.queue_name,
            self.prefix,
        ]
        return keys, args

    async def dequeue(
        self, queue_names: Sequence[str] | None, *, now: datetime | None = None
    ) -> Job | None:
        names = check_queue_names(queue_names)
        if names is not None:
            return await self._dequeue_from(names, now)
        # every queue: the queues holding ready or delayed jobs, found with SCAN (kept
        # while dequeues find work, for a second at most; scanned again when one finds
        # none, and the claim retried if that scan found other queues)
        known = self._every_queue
        if known is None or time.monotonic() >= self._every_queue_until:
            known = await self._run("dequeue from", self._queues_with_jobs)
        job = await self._dequeue_from(known, now)
        if job is None:
            again = await self._run("dequeue from", self._queues_with_jobs)
            if set(again) != set(known):
                job = await self._dequeue_from(again, now)
        return job

    async def _queues_with_jobs(self) -> tuple[str, ...]:
        found: set[str] = set()
        for kind in ("ready", "delayed"):
            head = self._key(kind) + ":"
            pattern = "".join("\\" + c if c in "*?[]\\" else c for c in head) + "*"
            async for key in self._client.scan_iter(match=pattern, count=1000):
                found.add(key[len(head) :])
        names = tuple(sorted(found))
        self._every_queue = names
        self._every_queue_until = time.monotonic() + 1.0
        return names

    async def _dequeue_from(self, names: Sequence[str], now: datetime | None) -> Job | None:
        due = now or utcnow()
        started = utcnow()
        lease = (
            _ms(started) + int(self.visibility_timeout * 1000)
            if self.visibility_timeout is not None
            else ""
        )
        keys = [
            self._key("running"),
            *(self._key("ready", name) for name in names),
            *(self._key("delayed", name) for name in names),
        ]
        args = [self.prefix, len(names), _ms(due), _ms(started), started.isoformat(), lease]
        flat = await self._run(
            "dequeue from", lambda: self._scripts["dequeue"](keys=keys, args=args)
        )
        job = self._job(flat)
        if job is None:
            self._every_queue = None  # the next dequeue(None) looks again
        return job

    async def _settle(
        self, action: str, job_id: UUID, status: JobStatus, delay_ms: str, **fields: str
    ) -> Job:
        args: list[Any] = [self.prefix, str(job_id), status.value, delay_ms]
        for name, value in fields.items():
            args += [name, value]
        keys = [self._key("job", str(job_id)), self._key("running")]
        flat = await self._run(action, lambda: self._scripts["settle"](keys=keys, args=args))
        return self._require(flat, job_id)

    async def complete(self, job_id: UUID, result: Any = None) -> Job:
        return await self._settle(
            "complete a job in",
            job_id,
            JobStatus.COMPLETED,
            "",
            result=json.dumps(result, default=str) if result is not None else "",
            completed_at=utcnow().isoformat(),
            error="",
        )

    async def fail(self, job_id: UUID, error: str, *, retry_at: datetime | None = None) -> Job:
        if retry_at is None:
            return await self._settle(
                "fail a job in",
                job_id,
                JobStatus.FAILED,
                "",
                error=error,
                completed_at=utcnow().isoformat(),
            )
        return await self._settle(
            "retry a job in",
            job_id,
            JobStatus.SCHEDULED,
            str(_ms(retry_at)),
            error=error,
            scheduled_at=retry_at.isoformat(),
        )

    async def cancel(self, job_id: UUID) -> Job:
        if self._client is None:
            await self.open()
        script = self._scripts.get("cancel")
        if script is None:
            script = self._scripts["cancel"] = self._client.register_script(_CANCEL)
        keys = [self._key("job", str(job_id))]
        args = [self.prefix, str(job_id), utcnow().isoformat()]
        answer = await self._run("cancel a job in", lambda: script(keys=keys, args=args))
        if not answer or not answer[0]:
            current = self._job(answer[1]) if answer else None
            raise cancel_refused(job_id, current, f"Redis under prefix {self.prefix!r}")
        return self._require(answer[1], job_id)

    async def get(self, job_id: UUID) -> Job | None:
        flat = await self._run(
            "read from",
            lambda: self._client.execute_command("HGETALL", self._key("job", str(job_id))),
        )
        return self._job(self._flatten(flat))

    @staticmethod
    def _flatten(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [item for pair in value.items() for item in pair]
        return list(value or [])

    async def get_by_key(self, idempotency_key: str) -> Job | None:
        job_id = await self._run(
            "read from", lambda: self._client.get(self._key("key", idempotency_key))
        )
        return await self.get(UUID(job_id)) if job_id else None

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        """One pipelined round trip (per 1,000 prefixes) of ``ZREVRANGEBYLEX … LIMIT 0 1``
        on the sorted set of keys (byte order of UTF-8: code-point order)."""
        wanted = check_prefixes(prefixes)
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]

            async def fetch(chunk: list[str] = chunk) -> list[Any]:
                async with self._client.pipeline(transaction=False) as pipe:
                    for prefix in chunk:
                        pipe.zrevrangebylex(
                            self._key("keys"), "[" + prefix + KEY_CEILING, "[" + prefix, 0, 1
                        )
                    return list(await pipe.execute())

            for prefix, keys in zip(chunk, await self._run("read from", fetch), strict=True):
                if keys:
                    found[prefix] = keys[0]
        return found

    async def _jobs(self, job_ids: Sequence[str]) -> list[Job]:
        async def fetch() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hgetall(self._key("job", job_id))
                return list(await pipe.execute())

        rows = await self._run("list", fetch)
        jobs = (self._job(self._flatten(row)) for row in rows)
        return [job for job in jobs if job is not None]

    async def list(
        self,
        *,
        status: JobStatus | None = None,
        job_type: str | None = None,
        queue_name: str | None = None,
        key_prefix: str | None = None,
        limit: int = 100,
        order_by: str = "created_at",
    ) -> list[Job]:
        check_list_args(limit, order_by)
        wanted = JobStatus(status) if status is not None else None

        def matches(job: Job) -> bool:
            return job_matches(
                job, status=wanted, job_type=job_type, queue_name=queue_name, key_prefix=key_prefix
            )

        found: list[Job] = []
        by_key = order_by == "idempotency_key" or key_prefix is not None
        if by_key:
            upper = "+" if key_prefix is None else "[" + key_prefix + "\U0010ffff"
            lower = "-" if key_prefix is None else "[" + key_prefix
            start = 0
            while order_by == "created_at" or len(found) < limit:  # newest-first needs all
                keys = await self._run(
                    "list",
                    lambda start=start: self._client.zrevrangebylex(  # type: ignore[misc]
                        self._key("keys"), upper, lower, start=start, num=_BATCH
                    ),
                )
                if not keys:
                    break
                ids = await self._run(
                    "list",
                    lambda keys=keys: self._client.mget(  # type: ignore[misc]
                        [self._key("key", k) for k in keys]
                    ),
                )
                for job in await self._jobs([i for i in ids if i]):
                    if matches(job):
                        found.append(job)
                start += _BATCH
            if order_by == "created_at":
                found.sort(key=lambda job: job.created_at, reverse=True)
            if key_prefix is not None or len(found) >= limit:
                return found[:limit]
        start = 0
        while len(found) < limit:
            ids = await self._run(
                "list",
                lambda start=start: self._client.zrevrange(  # type: ignore[misc]
                    self._key("all"), start, start + _BATCH - 1
                ),
            )
            if not ids:
                break
            for job in await self._jobs(ids):
                if matches(job) and not (by_key and job.idempotency_key is not None):
                    found.append(job)
            start += _BATCH
        return found[:limit]

    # -- DeadLetterStore -----------------------------------------------------------

    async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
        [stored] = await self.add_dead_letters([record])
        return stored

    async def add_dead_letters(
        self, records: Sequence[DeadLetterRecord]
    ) -> builtins.list[DeadLetterRecord]:
        """The add script once per record, pipelined: one round trip for all of them
        (each script call atomic, in order)."""
        calls = [
            (
                [self._key("dead", str(record.id)), self._key("dead", "seq")],
                [
                    self.prefix,
                    str(record.id),
                    record.trigger,
                    record.status,
                    _micros(record.at),
                    record.model_dump_json(),
                ],
            )
            for record in records
        ]
        if not calls:
            return []

        async def send() -> builtins.list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    await self._scripts["add_dead_letter"](keys=keys, args=args, client=pipe)
                return list(await pipe.execute())

        action = "add a dead letter to" if len(calls) == 1 else "add dead letters to"
        answers = await self._run(action, send)
        return [
            DeadLetterRecord.model_validate_json(answer[1])
            if answer and int(answer[0]) == 0
            else record
            for record, answer in zip(records, answers, strict=True)
        ]

    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        text = await self._run(
            "read a dead letter from",
            lambda: self._client.hget(self._key("dead", str(letter_id)), "record"),
        )
        return None if text is None else DeadLetterRecord.model_validate_json(text)

    async def list_dead_letters(
        self, *, trigger: str | None = None, status: str | None = "open", limit: int = 100
    ) -> builtins.list[DeadLetterRecord]:
        check_dead_letter_query(status, limit)
        index = self._key("dead", "by", status or "*", "*" if trigger is None else trigger)
        dead = self._key("dead", "")

        async def fetch() -> builtins.list[Any]:
            members = await self._client.zrevrange(index, 0, limit - 1)
            if not members:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hget(dead + member.partition(":")[2], "record")
                return list(await pipe.execute())

        texts = await self._run("list dead letters in", fetch)
        return [DeadLetterRecord.model_validate_json(text) for text in texts if text]

    async def resolve_dead_letter(
        self, letter_id: UUID, status: str, job_id: UUID | None = None
    ) -> DeadLetterRecord:
        current = await self.get_dead_letter(letter_id)
        check_resolution(current, status, letter_id)
        assert current is not None
        resolved = current.resolved(status, job_id)
        keys = [self._key("dead", str(letter_id))]
        args = [
            self.prefix,
            current.trigger,
            current.status,
            resolved.status,
            resolved.model_dump_json(),
            _micros(current.at),
        ]
        answer = await self._run(
            "resolve a dead letter in",
            lambda: self._scripts["resolve_dead_letter"](keys=keys, args=args),
        )
        if not answer or int(answer[0]) == 0:  # resolved (or removed) since it was read
            stored = DeadLetterRecord.model_validate_json(answer[1]) if answer else None
            check_resolution(stored, status, letter_id)
        return resolved

    # -- waking idle workers ---------------------------------------------------------

    async def wait_for_jobs(self, timeout: float) -> None:
        """Wait for a ``PUBLISH`` about new or retried jobs, at most ``timeout`` seconds.

        Falls back to sleeping (polling) while the subscription cannot connect.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if self._client is None:
                await self.open()
            if self._pubsub is None:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._key("wake"))
                self._pubsub = pubsub
            while (left := deadline - loop.time()) > 0:
                message = await self._pubsub.get_message(timeout=left)
                if message is not None:
                    while await self._pubsub.get_message(timeout=0) is not None:
                        pass  # drain a burst: one wake-up is enough
                    return
        except (*self.link.unreachable, self._redis.RedisError) as exc:
            logger.warning("redis_job_queue_subscribe_failed", url=self.url, error=str(exc))
            self._pubsub = None
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    # -- ScheduleStore: a hash per schedule, a zset of them by revision ----------------

    async def _write_schedule(
        self, op: str, trigger: str, name: str, config: str = "", paused: str = ""
    ) -> StoredSchedule | None:
        """One Lua script per write: the revision is taken and the row written atomically,
        so revisions appear in order."""
        if self._client is None:
            await self.open()
        member = json.dumps([trigger, name], ensure_ascii=False)
        keys = [
            self._key("schedule", member),
            self._key("schedules"),
            self._key("schedules", "revision"),
        ]
        args = [op, member, config, paused, utcnow().isoformat(), trigger, name]
        flat = await self._run(
            "write a schedule in", lambda: self._scripts["schedule"](keys=keys, args=args)
        )
        return _stored_schedule(flat) if flat else None

    async def save_schedule(
        self, trigger: str, name: str, config: Mapping[str, Any], *, paused: bool | None = None
    ) -> StoredSchedule:
        check_schedule_id(trigger, name)
        flag = "" if paused is None else ("1" if paused else "0")
        text = json.dumps(dict(config), separators=(",", ":"))
        row = await self._write_schedule("save", trigger, name, text, flag)
        assert row is not None
        return row

    async def set_schedule_paused(
        self, trigger: str, name: str, paused: bool
    ) -> StoredSchedule | None:
        check_schedule_id(trigger, name)
        return await self._write_schedule("pause", trigger, name, paused="1" if paused else "0")

    async def delete_schedule(self, trigger: str, name: str) -> bool:
        check_schedule_id(trigger, name)
        return await self._write_schedule("delete", trigger, name) is not None

    async def list_schedules(
        self, trigger: str | None = None, *, since: int | None = None
    ) -> builtins.list[StoredSchedule]:
        if trigger is not None:
            check_schedule_id(trigger)
        low = "-inf" if since is None else f"({since}"

        async def read() -> builtins.list[Any]:
            members = await self._client.zrangebyscore(self._key("schedules"), low, "+inf")
            if trigger is not None:
                members = [m for m in members if json.loads(m)[0] == trigger]
            if not members:
                return []
            pipe = self._client.pipeline(transaction=False)
            for member in members:
                pipe.execute_command("HGETALL", self._key("schedule", member))
            return list(await pipe.execute())

        found = await self._run("list schedules in", read)
        rows = [_stored_schedule(flat) for flat in found if flat]
        if since is None:
            return sorted((r for r in rows if not r.removed), key=lambda r: (r.trigger, r.name))
        return sorted(rows, key=lambda r: r.revision)


# KEYS: the schedule's hash, the zset by revision, the revision counter.
# ARGV: op (save|pause|delete), member, config JSON, paused ('1'|'0'|'' keep), now (ISO),
# trigger, name. Returns the row as HGETALL gives it, or false (no live schedule).
_SCHEDULE_WRITE = """
local live = redis.call('HGET', KEYS[1], 'removed') == '0'
local op = ARGV[1]
if op ~= 'save' and not live then return false end
local revision = redis.call('INCR', KEYS[3])
if op == 'save' then
  local paused = ARGV[4]
  if paused == '' then
    paused = '0'
    if live then paused = redis.call('HGET', KEYS[1], 'paused') end
  end
  redis.call('HSET', KEYS[1], 'trigger', ARGV[6], 'name', ARGV[7], 'config', ARGV[3],
    'paused', paused, 'removed', '0')
elseif op == 'pause' then
  redis.call('HSET', KEYS[1], 'paused', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'removed', '1')
end
redis.call('HSET', KEYS[1], 'revision', revision, 'updated_at', ARGV[5])
redis.call('ZADD', KEYS[2], revision, ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""


def _stored_schedule(flat: Sequence[str] | dict[str, str]) -> StoredSchedule:
    """A schedule from its hash: flat from a script, a dict from a client ``HGETALL``."""
    fields = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
    updated = _parse_time(fields["updated_at"])
    assert updated is not None
    return StoredSchedule(
        trigger=fields["trigger"],
        name=fields["name"],
        config=json.loads(fields["config"]),
        paused=fields["paused"] == "1",
        revision=int(fields["revision"]),
        updated_at=updated,
        removed=fields["removed"] == "1",
    )
