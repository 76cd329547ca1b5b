"""PostgreSQL JobQueue on asyncpg: SKIP LOCKED claims, unique keys, LISTEN/NOTIFY.

Several processes (replicas, workers on other hosts) may share one table:

* ``enqueue`` is ``INSERT … ON CONFLICT DO NOTHING`` against a ``UNIQUE`` index on the
  idempotency key, so concurrent enqueues of one key store one job;
* ``dequeue`` claims with ``SELECT … FOR UPDATE SKIP LOCKED`` inside one ``UPDATE``, so a
  job goes to one worker and workers never wait on each other;
* a claimed job carries a lease (``visibility_timeout``): if its worker dies before
  ``complete``/``fail``, the job is claimed again once the lease has expired;
* a row trigger sends ``NOTIFY`` on new or retried jobs and :meth:`wait_for_jobs`
  ``LISTEN``s, so idle workers wake at once instead of polling;
* the schema is versioned (table ``<schema>.portico_schema_version``) and created or
  migrated by :meth:`open` under an advisory lock; a schema written by a newer
  portico_rx is refused with :class:`~portico_rx.errors.SchemaVersionError`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from portico_rx.adapters.job_queue.base import (
    KEY_CEILING,
    cancel_refused,
    check_list_args,
    check_prefixes,
    check_queue_names,
)
from portico_rx.adapters.job_queue.server_link import ServerLink
from portico_rx.errors import (
    ConfigurationError,
    JobNotFoundError,
    QueueUnavailableError,
    SchemaVersionError,
    require,
)
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobStatus, trusted, utcnow
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

__all__ = ["SCHEMA_VERSION", "PostgresJobQueue"]

T = TypeVar("T")

logger = get_logger("portico_rx.job_queue.postgres")

SCHEMA_VERSION = 2
"""Version of the table layout this release writes; :meth:`PostgresJobQueue.open` migrates
older layouts up to it and refuses newer ones. 2: the ``<table>_dead_letters`` table
(:class:`~portico_rx.ports.dead_letter_store.DeadLetterStore`) and the ``<table>_schedules``
table (the :class:`~portico_rx.ports.schedule_store.ScheduleStore`)."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")

_JOB_COLUMNS = (
    "id, job_type, queue_name, payload, priority, metadata, status, attempts, max_retries, "
    "created_at, scheduled_at, started_at, completed_at, idempotency_key, result, error"
)
_FIELDS = tuple(_JOB_COLUMNS.split(", "))  # every Job field: a row read back is a Job
_STATUS = {status.value: status for status in JobStatus}


_MANY_ROWS = 1000
"""Rows per multi-row INSERT of ``enqueue_many`` (16 parameters each; PostgreSQL takes
at most 32,767 per statement)."""


def _insert_args(job: Job) -> tuple[Any, ...]:
    """The 16 values of one row, in ``_JOB_COLUMNS`` order."""
    return (
        job.id,
        job.job_type,
        job.queue_name,
        job.payload,
        job.priority,
        job.metadata,
        job.status.value,
        job.attempts,
        job.max_retries,
        job.created_at,
        job.scheduled_at,
        job.started_at,
        job.completed_at,
        job.idempotency_key,
        job.result,
        job.error,
    )


def _migrations(schema: str, table: str, channel: str) -> dict[int, list[str]]:
    """Statements that bring the layout from version ``n - 1`` to ``n``, keyed by ``n``."""
    qualified = f'"{schema}"."{table}"'
    return {
        1: [
            f"""
            CREATE TABLE {qualified} (
                seq bigserial NOT NULL,
                id uuid PRIMARY KEY,
                job_type text NOT NULL,
                queue_name text NOT NULL,
                payload jsonb NOT NULL DEFAULT '{{}}',
                priority integer NOT NULL DEFAULT 0,
                metadata jsonb NOT NULL DEFAULT '{{}}',
                status text NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                max_retries integer NOT NULL DEFAULT 3,
                created_at timestamptz NOT NULL,
                scheduled_at timestamptz,
                started_at timestamptz,
                completed_at timestamptz,
                lease_expires_at timestamptz,
                idempotency_key text UNIQUE,
                result jsonb,
                error text
            )
            """,
            f'CREATE INDEX "{table}_due" ON {qualified} '
            "(queue_name, priority DESC, created_at, seq) "
            "WHERE status IN ('pending', 'scheduled')",
            f'CREATE INDEX "{table}_leased" ON {qualified} (queue_name, lease_expires_at) '
            "WHERE status = 'running'",
            f'CREATE INDEX "{table}_created" ON {qualified} (created_at DESC)',
            f"""
            CREATE FUNCTION "{schema}"."{table}_notify"() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('{channel}', NEW.queue_name);
                RETURN NULL;
            END $$
            """,
            f'CREATE TRIGGER "{table}_notify" AFTER INSERT OR UPDATE OF status '
            f"ON {qualified} FOR EACH ROW WHEN (NEW.status IN ('pending', 'scheduled')) "
            f'EXECUTE FUNCTION "{schema}"."{table}_notify"()',
        ],
        2: [
            f"""
            CREATE TABLE "{schema}"."{table}_dead_letters" (
                seq bigserial NOT NULL,
                id uuid PRIMARY KEY,
                trigger text NOT NULL,
                status text NOT NULL,
                at timestamptz NOT NULL,
                record jsonb NOT NULL
            )
            """,
            f'CREATE INDEX "{table}_dead_letters_at" ON "{schema}"."{table}_dead_letters" '
            "(at DESC, seq DESC)",
            f'CREATE INDEX "{table}_dead_letters_status" ON "{schema}"."{table}_dead_letters" '
            "(status, at DESC, seq DESC)",
            f"""
            CREATE TABLE "{schema}"."{table}_schedules" (
                trigger_name text NOT NULL,
                name text NOT NULL,
                config jsonb NOT NULL,
                paused boolean NOT NULL,
                removed boolean NOT NULL,
                revision bigint NOT NULL,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (trigger_name, name)
            )
            """,
            f'CREATE INDEX "{table}_schedules_revision" '
            f'ON "{schema}"."{table}_schedules" (revision)',
        ],
    }


def _check_identifier(name: str, value: object) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigurationError(
            f"{name}={value!r}: use 1-40 lowercase letters, digits or '_', "
            "starting with a letter or '_', e.g. 'portico'"
        )
    return value


def _encode_json(value: Any) -> str:
    """JSON text of a ``jsonb`` value; what JSON cannot hold is written as its ``str``.

    Tried first without ``default=`` (job payloads and metadata are JSON values): that
    call reuses the ``json`` module's shared encoder, where ``default=`` builds a new
    encoder per value (twice per job written)."""
    try:
        return json.dumps(value)
    except TypeError:
        return json.dumps(value, default=str)


class PostgresJobQueue(JobQueue, DeadLetterStore, ScheduleStore):
    """A JobQueue in a PostgreSQL table, shared safely by any number of processes.

    Also a :class:`~portico_rx.ports.dead_letter_store.DeadLetterStore`: dead letters
    are kept in the table ``<table>_dead_letters`` beside it.

    Args:
        dsn: ``postgresql://user:password@host:port/database`` (a libpq URL).
        schema: schema that holds the table, created if missing (default ``"portico"``).
        table: table name (default ``"jobs"``); the schema version is kept per table.
        pool_min: connections opened at :meth:`open` (default 1).
        pool_max: most connections in the pool (default 10).
        visibility_timeout: seconds a claimed job stays invisible to other workers; when a
            worker dies without ``complete``/``fail``, the job is claimed again after it
            (default 300; ``None`` never reclaims). Set it above your longest job.
        connect_timeout: seconds to wait for one connection (default 5).
        retry: backoff for calls that cannot reach the server (default: 5 attempts from
            0.1 s); when exhausted the call raises ``QueueUnavailableError``.

    Raises:
        ConfigurationError: an invalid schema/table name or pool size.
        MissingDependencyError: ``asyncpg`` is not installed (``portico_rx[postgres]``).

    Example::

        queue = PostgresJobQueue("postgresql://postgres@127.0.0.1/test")
        async with JobService(queue) as service:
            await service.create_job("email.send", {"to": "a@example.com"})
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "portico",
        table: str = "jobs",
        pool_min: int = 1,
        pool_max: int = 10,
        visibility_timeout: float | None = 300.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        asyncpg: Any = require("asyncpg", "postgres")
        if not isinstance(dsn, str) or not dsn:
            raise ConfigurationError(
                f"dsn={redact_url(dsn)!r}: give a PostgreSQL URL, e.g. 'postgresql://user@127.0.0.1/db'"
            )
        self.schema = _check_identifier("schema", schema)
        self.table = _check_identifier("table", table)
        if pool_min < 0 or pool_max < 1 or pool_min > pool_max:
            raise ConfigurationError(
                f"pool_min={pool_min!r}, pool_max={pool_max!r}: use 0 <= pool_min <= pool_max "
                "and pool_max >= 1"
            )
        if visibility_timeout is not None and visibility_timeout <= 0:
            raise ConfigurationError(
                f"visibility_timeout={visibility_timeout!r}: use a positive number of seconds "
                "or None to never reclaim"
            )
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout={connect_timeout!r}: use seconds > 0")
        self._asyncpg: Any = asyncpg
        self._dsn = dsn
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.visibility_timeout = visibility_timeout
        self.connect_timeout = connect_timeout
        self.channel = f"portico_{self.schema}_{self.table}"
        self._qualified = f'"{self.schema}"."{self.table}"'
        self._letters = f'"{self.schema}"."{self.table}_dead_letters"'
        self._schedules = f'"{self.schema}"."{self.table}_schedules"'
        self.link = ServerLink(
            url=dsn,
            kind="PostgreSQL",
            unreachable=(
                OSError,
                TimeoutError,
                asyncpg.exceptions.PostgresConnectionError,
                asyncpg.exceptions.CannotConnectNowError,
                asyncpg.exceptions.AdminShutdownError,
                asyncpg.exceptions.TooManyConnectionsError,
                asyncpg.exceptions.ConnectionDoesNotExistError,
            ),
            retry=retry or RetryPolicy(),
        )
        self._pool: Any = None
        self._code_point_keys: bool | None = None  # the key column sorts by code point
        self._open_lock = asyncio.Lock()
        self._listener: Any = None
        self._new_work = asyncio.Event()
        self._next_sweep = utcnow()
        self._build_statements()

    def __repr__(self) -> str:
        return f"PostgresJobQueue({self.link.url!r}, schema={self.schema!r}, table={self.table!r})"

    @property
    def url(self) -> str:
        """The DSN with its password replaced by ``***``."""
        return self.link.url

    def _build_statements(self) -> None:
        q = self._qualified
        self._many_sql: dict[int, str] = {}
        self._sql_insert = (
            f"INSERT INTO {q} ({_JOB_COLUMNS}) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
            f"ON CONFLICT DO NOTHING RETURNING {_JOB_COLUMNS}"
        )
        self._sql_by_key = f"SELECT {_JOB_COLUMNS} FROM {q} WHERE idempotency_key = $1"
        self._sql_by_id = f"SELECT {_JOB_COLUMNS} FROM {q} WHERE id = $1"
        self._sql_dequeue_one = self._dequeue_sql("queue_name = $1::text")
        self._sql_dequeue_many = self._dequeue_sql("queue_name = ANY($1::text[])")
        self._sql_reclaim_one = self._reclaim_sql("queue_name = $1::text")
        self._sql_reclaim_many = self._reclaim_sql("queue_name = ANY($1::text[])")
        self._sql_dequeue_any = self._dequeue_sql("$1::text IS NULL")  # every queue
        self._sql_reclaim_any = self._reclaim_sql("$1::text IS NULL")
        self._sql_complete = (
            f"UPDATE {q} SET status = 'completed', result = $2, completed_at = $3, "
            f"error = NULL, lease_expires_at = NULL WHERE id = $1 RETURNING {_JOB_COLUMNS}"
        )
        self._sql_fail = (
            f"UPDATE {q} SET status = 'failed', error = $2, completed_at = $3, "
            f"lease_expires_at = NULL WHERE id = $1 RETURNING {_JOB_COLUMNS}"
        )
        self._sql_cancel = (
            f"UPDATE {q} SET status = 'cancelled', completed_at = $2, lease_expires_at = NULL "
            f"WHERE id = $1 AND status IN ('pending', 'scheduled') RETURNING {_JOB_COLUMNS}"
        )
        self._sql_retry = (
            f"UPDATE {q} SET status = 'scheduled', error = $2, scheduled_at = $3, "
            f"lease_expires_at = NULL WHERE id = $1 RETURNING {_JOB_COLUMNS}"
        )

    def _reclaim_sql(self, queue_match: str) -> str:
        """Expired leases back to ``pending``; returns how many. Kept out of the claim so
        the claim can walk the due index in order."""
        q = self._qualified
        return f"""
            WITH expired AS (
                UPDATE {q} SET status = 'pending', lease_expires_at = NULL
                WHERE id IN (
                    SELECT id FROM {q}
                    WHERE status = 'running' AND lease_expires_at <= $2
                      AND {queue_match}
                    LIMIT 100
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING 1
            )
            SELECT count(*) FROM expired
        """

    def _dequeue_sql(self, queue_match: str) -> str:
        """The claiming statement; ``queue_match`` is ``= $1`` for one queue (an ordered
        walk of the due index: O(1) however long the backlog) or ``= ANY($1)`` for many."""
        q = self._qualified
        return f"""
            WITH next AS (
                SELECT id FROM {q}
                WHERE {queue_match}
                  AND status IN ('pending', 'scheduled')
                  AND (scheduled_at IS NULL OR scheduled_at <= $2)
                ORDER BY priority DESC, created_at, seq
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {q} AS job
            SET status = 'running', attempts = job.attempts + 1, started_at = $3,
                lease_expires_at = $4
            FROM next WHERE job.id = next.id
            RETURNING {", ".join("job." + c for c in _JOB_COLUMNS.split(", "))}
        """

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the pool, then create or migrate the schema. Idempotent.

        Raises:
            QueueUnavailableError: the server cannot be reached or refuses the login; the
                message names the URL with the password redacted.
            SchemaVersionError: the table was written by a newer portico_rx.
        """
        async with self._open_lock:
            if self._pool is not None:
                return
            try:
                pool = await self._asyncpg.create_pool(
                    self._dsn,
                    min_size=self.pool_min,
                    max_size=self.pool_max,
                    timeout=self.connect_timeout,
                    init=self._init_connection,
                )
            except (*self.link.unreachable, self._asyncpg.PostgresError, ValueError) as exc:
                raise self.link.unavailable(exc, action="open") from exc
            try:
                await self._migrate(pool)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            logger.info(
                "postgres_job_queue_opened",
                url=self.url,
                schema=self.schema,
                table=self.table,
                schema_version=SCHEMA_VERSION,
            )

    async def close(self) -> None:
        """Close the listener and the pool. Idempotent."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except (TimeoutError, OSError):
                pool.terminate()

    async def __aenter__(self) -> PostgresJobQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @staticmethod
    async def _init_connection(connection: Any) -> None:
        await connection.set_type_codec(
            "jsonb", encoder=_encode_json, decoder=json.loads, schema="pg_catalog"
        )

    async def _migrate(self, pool: Any) -> None:
        versions = f'"{self.schema}".portico_schema_version'
        if await self._current_version(pool, versions) == SCHEMA_VERSION:
            return  # the common open: one read, no lock, no DDL
        migrations = _migrations(self.schema, self.table, self.channel)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"portico_rx:{self.schema}"
            )
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {versions} "
                "(table_name text PRIMARY KEY, version integer NOT NULL, "
                "migrated_at timestamptz NOT NULL DEFAULT now())"
            )
            found = await connection.fetchval(
                f"SELECT version FROM {versions} WHERE table_name = $1", self.table
            )
            current = int(found) if found is not None else 0
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"table {self.schema}.{self.table} at {self.url} has schema version "
                    f"{current}, newer than {SCHEMA_VERSION} which this portico_rx knows; "
                    "upgrade portico_rx, or point it at another schema/table"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in migrations[version]:
                    await connection.execute(statement)
                logger.info(
                    "postgres_job_queue_migrated",
                    schema=self.schema,
                    table=self.table,
                    version=version,
                )
            if current < SCHEMA_VERSION:
                await connection.execute(
                    f"INSERT INTO {versions} (table_name, version) VALUES ($1, $2) "
                    "ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version, "
                    "migrated_at = now()",
                    self.table,
                    SCHEMA_VERSION,
                )

    async def _current_version(self, pool: Any, versions: str) -> int | None:
        """The table's schema version as stored, or ``None`` when nothing is stored yet
        (no schema, no version table or no row: :meth:`_migrate` creates them under its
        lock)."""
        errors = self._asyncpg.exceptions
        async with pool.acquire() as connection:
            try:
                found = await connection.fetchval(
                    f"SELECT version FROM {versions} WHERE table_name = $1", self.table
                )
            except (errors.UndefinedTableError, errors.InvalidSchemaNameError):
                return None
        return int(found) if found is not None else None

    async def drop(self) -> None:
        """Drop the table, its trigger function and its version row (tests, teardown)."""
        await self._run(
            "drop",
            lambda c: c.execute(
                f"DROP TABLE IF EXISTS {self._qualified}; "
                f"DROP TABLE IF EXISTS {self._letters}; "
                f"DROP TABLE IF EXISTS {self._schedules}; "
                f'DROP FUNCTION IF EXISTS "{self.schema}"."{self.table}_notify"(); '
                f'DELETE FROM "{self.schema}".portico_schema_version '
                f"WHERE table_name = '{self.table}'"
            ),
        )

    def health(self) -> dict[str, Any]:
        """Reachability of the server (``url``, ``available``, ``last_error``, …)."""
        return {**self.link.health(), "open": self._pool is not None}

    # -- plumbing --------------------------------------------------------------------

    async def _run(self, action: str, statement: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            await self.open()

        async def attempt() -> T:
            pool = self._pool
            if pool is None:
                raise QueueUnavailableError(
                    f"the PostgreSQL job queue at {self.url} is closed; call open() first"
                )
            async with pool.acquire(timeout=self.connect_timeout) as connection:
                return await statement(connection)

        return await self.link.call(action, attempt)

    @staticmethod
    def _job(row: Any) -> Job:
        """The Job a row holds (its columns are the Job's fields, of the Job's types)."""
        fields = dict(zip(_FIELDS, row, strict=True))
        fields["status"] = _STATUS[fields["status"]]
        return trusted(Job, fields, set(_FIELDS))

    # -- the port --------------------------------------------------------------------

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        args = _insert_args(job)

        async def insert(connection: Any) -> tuple[Job, bool]:
            row = await connection.fetchrow(self._sql_insert, *args)
            if row is not None:
                return self._job(row), True
            if job.idempotency_key is not None:
                row = await connection.fetchrow(self._sql_by_key, job.idempotency_key)
            if row is None:  # the id exists already (an enqueue retried after a lost reply)
                row = await connection.fetchrow(self._sql_by_id, job.id)
            if row is None:  # pragma: no cover - the conflicting row was deleted meanwhile
                row = await connection.fetchrow(self._sql_insert, *args)
                return self._job(row), True
            return self._job(row), False

        return await self._run("enqueue into", insert)

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        """One multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` (per 1,000 jobs)
        and one lookup of the rows that already held a key or id, in one transaction.
        A job inserted is returned as given (its row holds exactly its values, as in the
        SQLite store); only the rows that were there already are read back."""
        if not jobs:
            return []

        async def insert_chunks(connection: Any) -> set[UUID]:
            inserted: set[UUID] = set()
            for start in range(0, len(jobs), _MANY_ROWS):
                chunk = jobs[start : start + _MANY_ROWS]
                args = [value for job in chunk for value in _insert_args(job)]
                for row in await connection.fetch(self._insert_many_sql(len(chunk)), *args):
                    inserted.add(row[0])
            return inserted

        async def insert_all(connection: Any) -> list[tuple[Job, bool]]:
            if len(jobs) <= _MANY_ROWS:
                # One statement is atomic on its own: no BEGIN / COMMIT round trips (the
                # sink's batches are far below _MANY_ROWS). The lookup of the rows that
                # were there already reads committed rows either way.
                inserted = await insert_chunks(connection)
                return await self._many_outcomes(connection, jobs, inserted)
            async with connection.transaction():
                inserted = await insert_chunks(connection)
                return await self._many_outcomes(connection, jobs, inserted)

        return await self._run("enqueue into", insert_all)

    def _insert_many_sql(self, count: int) -> str:
        """The ``INSERT`` of ``count`` rows (built once per count, then reused: a sink
        hands the store batches of a few sizes)."""
        sql = self._many_sql.get(count)
        if sql is None:
            width = len(_JOB_COLUMNS.split(","))
            values = ", ".join(
                "(" + ", ".join(f"${n * width + i + 1}" for i in range(width)) + ")"
                for n in range(count)
            )
            sql = (
                f"INSERT INTO {self._qualified} ({_JOB_COLUMNS}) VALUES {values} "
                "ON CONFLICT DO NOTHING RETURNING id"
            )
            if len(self._many_sql) < 64:
                self._many_sql[count] = sql
        return sql

    async def _many_outcomes(
        self, connection: Any, jobs: Sequence[Job], inserted: set[UUID]
    ) -> list[tuple[Job, bool]]:
        """Per job, in order: itself when its row was inserted (the first of a repeated
        id), else the row that holds its key or id, as one ``enqueue`` after another
        would answer."""
        if len(inserted) == len(jobs):  # every one new (ids are unique): nothing to read
            return [(job, True) for job in jobs]
        q = self._qualified
        keys = list(dict.fromkeys(j.idempotency_key for j in jobs if j.idempotency_key is not None))
        by_key: dict[str, Any] = {}
        if keys:
            sql = f"SELECT {_JOB_COLUMNS} FROM {q} WHERE idempotency_key = ANY($1::text[])"
            by_key = {row["idempotency_key"]: row for row in await connection.fetch(sql, keys)}
        ids = [j.id for j in jobs if j.id not in inserted and j.idempotency_key not in by_key]
        by_id: dict[UUID, Any] = {}
        if ids:
            sql = f"SELECT {_JOB_COLUMNS} FROM {q} WHERE id = ANY($1::uuid[])"
            by_id = {row["id"]: row for row in await connection.fetch(sql, ids)}
        outcomes: list[tuple[Job, bool]] = []
        claimed: set[UUID] = set()
        for job in jobs:
            if job.id in inserted and job.id not in claimed:
                claimed.add(job.id)
                outcomes.append((job, True))
                continue
            row = by_key.get(job.idempotency_key) if job.idempotency_key else None
            row = row or by_id.get(job.id)
            if row is None and job.id in claimed:  # a repeated id: the first one's job
                row = next(first for first, _ in outcomes if first.id == job.id)
                outcomes.append((row, False))
                continue
            if row is None:
                raise QueueUnavailableError(
                    f"the PostgreSQL job queue at {self.url} lost job {job.id} during "
                    "enqueue_many (a conflicting row was deleted meanwhile); retry the call"
                )
            outcomes.append((self._job(row), False))
        return outcomes

    async def dequeue(
        self, queue_names: Sequence[str] | None, *, now: datetime | None = None
    ) -> Job | None:
        names = check_queue_names(queue_names)
        target: Any
        if names is None:
            target, claim_sql, reclaim_sql = None, self._sql_dequeue_any, self._sql_reclaim_any
        elif len(names) == 1:
            target, claim_sql, reclaim_sql = names[0], self._sql_dequeue_one, self._sql_reclaim_one
        else:
            target, claim_sql, reclaim_sql = (
                list(names),
                self._sql_dequeue_many,
                self._sql_reclaim_many,
            )
        due = now or utcnow()
        started = utcnow()
        lease = (
            started + timedelta(seconds=self.visibility_timeout)
            if self.visibility_timeout is not None
            else None
        )
        # Reclaim when the queue looks empty, and now and then while it is busy, so an
        # expired job never waits behind a long backlog.
        sweep = lease is not None and started >= self._next_sweep

        async def claim(connection: Any) -> Any:
            if sweep:
                await connection.fetchval(reclaim_sql, target, started)
            row = await connection.fetchrow(claim_sql, target, due, started, lease)
            retry = row is None and lease is not None and not sweep
            if retry and await connection.fetchval(reclaim_sql, target, started):
                row = await connection.fetchrow(claim_sql, target, due, started, lease)
            return row

        if sweep and self.visibility_timeout is not None:
            self._next_sweep = started + timedelta(seconds=min(5.0, self.visibility_timeout / 2))
        row = await self._run("dequeue from", claim)
        return self._job(row) if row is not None else None

    async def _update(self, action: str, sql: str, *args: Any) -> Job:
        row = await self._run(action, lambda c: c.fetchrow(sql, *args))
        if row is None:
            raise JobNotFoundError(f"no job with id {args[0]} in {self.schema}.{self.table}")
        return self._job(row)

    async def complete(self, job_id: UUID, result: Any = None) -> Job:
        return await self._update("complete a job in", self._sql_complete, job_id, result, utcnow())

    async def fail(self, job_id: UUID, error: str, *, retry_at: datetime | None = None) -> Job:
        if retry_at is None:
            return await self._update("fail a job in", self._sql_fail, job_id, error, utcnow())
        return await self._update("retry a job in", self._sql_retry, job_id, error, retry_at)

    async def cancel(self, job_id: UUID) -> Job:
        async def update(connection: Any) -> tuple[Any, Any]:
            async with connection.transaction():
                row = await connection.fetchrow(self._sql_cancel, job_id, utcnow())
                if row is not None:
                    return row, None
                # the UPDATE skipped the row: read the status it had (a claim in flight
                # holds the row lock, and the UPDATE waited for it)
                return None, await connection.fetchrow(self._sql_by_id, job_id)

        row, current = await self._run("cancel a job in", update)
        if row is None:
            raise cancel_refused(
                job_id,
                None if current is None else self._job(current),
                f"{self.schema}.{self.table}",
            )
        return self._job(row)

    async def get(self, job_id: UUID) -> Job | None:
        row = await self._run("read from", lambda c: c.fetchrow(self._sql_by_id, job_id))
        return self._job(row) if row is not None else None

    async def get_by_key(self, idempotency_key: str) -> Job | None:
        row = await self._run("read from", lambda c: c.fetchrow(self._sql_by_key, idempotency_key))
        return self._job(row) if row is not None else None

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        """One round trip: the key index searched backwards from each prefix's end.

        The index orders keys by the column's collation; under ``C`` (or ``C.UTF-8``,
        both code-point order) a prefix is a range of it. Under another collation the
        answer is still right, from ``starts_with`` and a code-point ``max`` (a scan).
        """
        wanted = check_prefixes(prefixes)
        if not wanted:
            return {}
        if self._code_point_keys is None:
            collation = await self._run(
                "read from",
                lambda c: c.fetchval(
                    "SELECT datcollate FROM pg_database WHERE datname = current_database()"
                ),
            )
            self._code_point_keys = collation in ("C", "POSIX", "C.UTF-8", "C.utf8")
        table = self._qualified
        if self._code_point_keys:
            sql = (
                "SELECT w.prefix, (SELECT max(idempotency_key) FROM "
                f"{table} WHERE idempotency_key >= w.prefix AND idempotency_key < w.upper) "
                "AS key FROM unnest($1::text[], $2::text[]) AS w(prefix, upper)"
            )
        else:
            sql = (
                'SELECT w.prefix, (SELECT max(idempotency_key COLLATE "C") FROM '
                f"{table} WHERE starts_with(idempotency_key, w.prefix)) AS key "
                "FROM unnest($1::text[], $2::text[]) AS w(prefix, upper)"
            )
        uppers = [prefix + KEY_CEILING for prefix in wanted]
        rows = await self._run("read from", lambda c: c.fetch(sql, wanted, uppers))
        return {row["prefix"]: row["key"] for row in rows if row["key"] is not None}

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
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("status", JobStatus(status).value if status is not None else None),
            ("job_type", job_type),
            ("queue_name", queue_name),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        if key_prefix is not None:
            args.append(key_prefix)
            where.append(f"starts_with(idempotency_key, ${len(args)})")
        args.append(limit)
        order = (
            "idempotency_key DESC NULLS LAST, seq DESC"
            if order_by == "idempotency_key"
            else "created_at DESC, seq DESC"
        )
        sql = (
            f"SELECT {_JOB_COLUMNS} FROM {self._qualified}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {order} LIMIT ${len(args)}"
        )
        rows = await self._run("list", lambda c: c.fetch(sql, *args))
        return [self._job(row) for row in rows]

    # -- DeadLetterStore -----------------------------------------------------------

    async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
        [stored] = await self.add_dead_letters([record])
        return stored

    async def add_dead_letters(
        self, records: Sequence[DeadLetterRecord]
    ) -> builtins.list[DeadLetterRecord]:
        """One connection and one transaction for all of ``records``."""
        if not records:
            return []
        sql = (
            f"INSERT INTO {self._letters} (id, trigger, status, at, record) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id"
        )
        documents = [record.model_dump(mode="json") for record in records]

        async def insert(connection: Any) -> builtins.list[Any]:
            found: builtins.list[Any] = []
            async with connection.transaction():
                for record, document in zip(records, documents, strict=True):
                    added = await connection.fetchval(
                        sql, record.id, record.trigger, record.status, record.at, document
                    )
                    found.append(
                        None
                        if added is not None
                        else await connection.fetchval(
                            f"SELECT record FROM {self._letters} WHERE id = $1", record.id
                        )
                    )
            return found

        action = "add a dead letter to" if len(records) == 1 else "add dead letters to"
        found = await self._run(action, insert)
        return [
            record if stored is None else DeadLetterRecord.model_validate(stored)
            for record, stored in zip(records, found, strict=True)
        ]

    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        sql = f"SELECT record FROM {self._letters} WHERE id = $1"
        found = await self._run("read a dead letter from", lambda c: c.fetchval(sql, letter_id))
        return None if found is None else DeadLetterRecord.model_validate(found)

    async def list_dead_letters(
        self, *, trigger: str | None = None, status: str | None = "open", limit: int = 100
    ) -> builtins.list[DeadLetterRecord]:
        check_dead_letter_query(status, limit)
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        for column, value in (("status", status), ("trigger", trigger)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        args.append(limit)
        sql = (
            f"SELECT record FROM {self._letters}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY at DESC, seq DESC LIMIT ${len(args)}"
        )
        rows = await self._run("list dead letters in", lambda c: c.fetch(sql, *args))
        return [DeadLetterRecord.model_validate(row["record"]) for row in rows]

    async def resolve_dead_letter(
        self, letter_id: UUID, status: str, job_id: UUID | None = None
    ) -> DeadLetterRecord:
        select = f"SELECT record FROM {self._letters} WHERE id = $1 FOR UPDATE"
        update = f"UPDATE {self._letters} SET status = $2, record = $3 WHERE id = $1"

        async def resolve(connection: Any) -> DeadLetterRecord:
            async with connection.transaction():  # the row lock: one resolution wins
                found = await connection.fetchval(select, letter_id)
                current = None if found is None else DeadLetterRecord.model_validate(found)
                check_resolution(current, status, letter_id)
                assert current is not None
                resolved = current.resolved(status, job_id)
                await connection.execute(
                    update, letter_id, resolved.status, resolved.model_dump(mode="json")
                )
                return resolved

        return await self._run("resolve a dead letter in", resolve)

    # -- ScheduleStore: one row per (trigger, name) in <table>_schedules -------------

    async def _write_schedule(self, action: str, sql: str, *args: Any) -> StoredSchedule | None:
        """One write under a transaction-level advisory lock of the schedules table, so
        revisions are taken and committed in order (a poller reading ``revision > r``
        never misses a write that commits later with a smaller revision)."""

        async def write(connection: Any) -> Any:
            async with connection.transaction():
                await connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    f"portico_rx:schedules:{self.schema}.{self.table}",
                )
                revision = await connection.fetchval(
                    f"SELECT coalesce(max(revision), 0) + 1 FROM {self._schedules}"
                )
                return await connection.fetchrow(sql, revision, *args)

        row = await self._run(action, write)
        return None if row is None else _stored_schedule(row)

    async def save_schedule(
        self, trigger: str, name: str, config: Mapping[str, Any], *, paused: bool | None = None
    ) -> StoredSchedule:
        check_schedule_id(trigger, name)
        row = await self._write_schedule(
            "save_schedule",
            f"INSERT INTO {self._schedules} AS s (trigger_name, name, config, paused, removed, "
            "revision, updated_at) VALUES ($2, $3, $4, coalesce($5, false), false, $1, now()) "
            "ON CONFLICT (trigger_name, name) DO UPDATE SET config = EXCLUDED.config, "
            "paused = coalesce($5, s.paused AND NOT s.removed), removed = false, "
            f"revision = $1, updated_at = now() RETURNING {_SCHEDULE_COLUMNS}",
            trigger,
            name,
            dict(config),
            paused,
        )
        assert row is not None
        return row

    async def set_schedule_paused(
        self, trigger: str, name: str, paused: bool
    ) -> StoredSchedule | None:
        check_schedule_id(trigger, name)
        return await self._write_schedule(
            "set_schedule_paused",
            f"UPDATE {self._schedules} SET paused = $4, revision = $1, updated_at = now() "
            f"WHERE trigger_name = $2 AND name = $3 AND NOT removed RETURNING {_SCHEDULE_COLUMNS}",
            trigger,
            name,
            bool(paused),
        )

    async def delete_schedule(self, trigger: str, name: str) -> bool:
        check_schedule_id(trigger, name)
        row = await self._write_schedule(
            "delete_schedule",
            f"UPDATE {self._schedules} SET removed = true, revision = $1, updated_at = now() "
            f"WHERE trigger_name = $2 AND name = $3 AND NOT removed RETURNING {_SCHEDULE_COLUMNS}",
            trigger,
            name,
        )
        return row is not None

    async def list_schedules(
        self, trigger: str | None = None, *, since: int | None = None
    ) -> builtins.list[StoredSchedule]:
        if trigger is not None:
            check_schedule_id(trigger)
        where = ["NOT removed"] if since is None else ["revision > $1"]
        args: builtins.list[Any] = [] if since is None else [since]
        if trigger is not None:
            args.append(trigger)
            where.append(f"trigger_name = ${len(args)}")
        order = "trigger_name, name" if since is None else "revision"
        sql = (
            f"SELECT {_SCHEDULE_COLUMNS} FROM {self._schedules} "
            f"WHERE {' AND '.join(where)} ORDER BY {order}"
        )
        rows = await self._run("list_schedules", lambda c: c.fetch(sql, *args))
        return [_stored_schedule(row) for row in rows]

    # -- waking idle workers ---------------------------------------------------------

    def _on_notify(self, *_: object) -> None:
        self._new_work.set()

    def _on_listener_lost(self, *_: object) -> None:
        self._listener = None
        self._new_work.set()  # let the worker poll once; the next wait reconnects

    async def _ensure_listener(self) -> bool:
        if self._listener is not None and not self._listener.is_closed():
            return True
        try:
            connection = await self._asyncpg.connect(self._dsn, timeout=self.connect_timeout)
            await connection.add_listener(self.channel, self._on_notify)
            connection.add_termination_listener(self._on_listener_lost)
        except (*self.link.unreachable, self._asyncpg.PostgresError) as exc:
            logger.warning("postgres_job_queue_listen_failed", url=self.url, error=str(exc))
            return False
        self._listener = connection
        return True

    async def wait_for_jobs(self, timeout: float) -> None:
        """Wait for a ``NOTIFY`` about new or retried jobs, at most ``timeout`` seconds.

        Falls back to sleeping (polling) while the listener cannot connect.
        """
        if not await self._ensure_listener():
            await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_work.wait(), timeout)
        self._new_work.clear()


_SCHEDULE_COLUMNS = "trigger_name, name, config, paused, revision, updated_at, removed"


def _stored_schedule(row: Any) -> StoredSchedule:
    return StoredSchedule(
        trigger=row["trigger_name"],
        name=row["name"],
        config=row["config"],
        paused=row["paused"],
        revision=row["revision"],
        updated_at=row["updated_at"],
        removed=row["removed"],
    )
