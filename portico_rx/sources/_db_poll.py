"""``db_rows``: pending rows of a table (an outbox), emitted once each, marked when handled.

The order that keeps rows from being lost or doubled without a shared transaction
between the rows' database and the job store:

1. select pending rows (``status = pending``) not already in flight;
2. emit each as a :class:`RowEvent` whose idempotency key is ``table:primary key``;
3. only when the job exists (the event's delivery is acked) mark the row ``queued``
   (``UPDATE … WHERE id IN (…) AND status = pending``, batched);
4. on dispose (a trigger's ``stop()``), stop polling at once but go on marking until
   every emitted row is marked or handed back (nacked), or ``drain_timeout`` passes.

A crash between 2 and 3 leaves the row pending: the next poll emits it again and the job
store returns the job it already has for that key (no double). A crash before the job
exists leaves the row pending too (no loss). A row whose job cannot be created is nacked
and picked up by a later poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import reactivex
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError, require
from portico_rx.logs import get_logger
from portico_rx.models import trusted
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.provenance import row_key, source_time
from portico_rx.pipeline.readiness import announce
from portico_rx.pipeline.retry import backoff
from portico_rx.sources._http_poll import check_interval
from portico_rx.url_redaction import redact_url

__all__ = [
    "DbPollStats",
    "RowEvent",
    "RowSource",
    "TableSpec",
    "check_database_url",
    "db_rows",
    "describe_url",
    "open_engine",
]

logger = get_logger("portico_rx.sources._db_poll")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class RowEvent(BaseModel):
    """One pending row.

    Attributes:
        table: the table (``schema.table`` when a schema was given).
        key: the row's primary key, as a string.
        row: the row's columns and values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str
    key: str
    row: dict[str, Any]

    @classmethod
    def polled(cls, table: str, key: str, row: dict[str, Any]) -> RowEvent:
        """The event of a row a poll read: ``row`` is the fresh ``dict`` of its columns,
        its keys the column names, so it is not validated (and copied) again
        (:func:`~portico_rx.models.trusted`; one per row polled).
        ``tests/sources/test_db_poll.py`` pins it equal to the validated model."""
        return trusted(cls, {"table": table, "key": key, "row": row}, _ROW_EVENT_FIELDS)


_ROW_EVENT_FIELDS = set(RowEvent.model_fields)  # shared by every polled event (frozen model)


@dataclass
class DbPollStats:
    """Counters of one poller (health details, tests, benchmarks)."""

    polls: int = 0
    completed: int = 0
    rows_emitted: int = 0
    rows_marked: int = 0
    rows_nacked: int = 0
    in_flight: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    wakeups: int = 0
    last_error: str | None = None
    next_delay: float = 0.0


@dataclass(frozen=True)
class TableSpec:
    """Which table holds the pending rows and how they are marked.

    Args:
        table: the table name.
        id_column: its primary key column (default ``"id"``).
        status_column: the status column (default ``"status"``).
        pending: the value of rows to pick up (default ``"pending"``).
        queued: the value written once the row's job exists (default ``"queued"``).
        where: an extra SQL condition, e.g. ``"created_at > now() - interval '1 hour'"``.
            It is SQL from your configuration: never build it from end-user input.
        schema: the table's schema (default the connection's).
        batch_size: most rows per poll (default 100).
        time_column: a column holding the row's own time (a timestamp, or Unix seconds,
            or ISO-8601 text), e.g. ``"created_at"``: each job's ``lateness_s`` and the
            trigger's ``max_age`` run from it (default none: the row is as old as when
            the poll saw it). Naive timestamps are read as UTC.
    """

    table: str
    id_column: str = "id"
    status_column: str = "status"
    pending: str = "pending"
    queued: str = "queued"
    where: str | None = None
    schema: str | None = None
    batch_size: int = 100
    time_column: str | None = None

    def __post_init__(self) -> None:
        for argument in ("table", "id_column", "status_column", "schema", "time_column"):
            value = getattr(self, argument)
            if value is None and argument in ("schema", "time_column"):
                continue
            if not isinstance(value, str) or not _IDENTIFIER.match(value):
                raise ConfigurationError(
                    f"{argument}={value!r}: use a plain SQL identifier (letters, digits, '_'), "
                    "e.g. 'items'"
                )
        for argument in ("pending", "queued"):
            if not isinstance(getattr(self, argument), str):
                raise ConfigurationError(
                    f"{argument}={getattr(self, argument)!r}: use a string status"
                )
        if self.pending == self.queued:
            raise ConfigurationError(
                f"pending={self.pending!r} equals queued={self.queued!r}: rows would be picked "
                "up forever; use two different values"
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigurationError(f"batch_size={self.batch_size!r}: use an integer >= 1")
        if not 1 <= self.batch_size <= 10_000:
            raise ConfigurationError(f"batch_size={self.batch_size!r}: use 1 to 10000")

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


def check_database_url(url: object) -> str:
    """``url`` if it parses as an SQLAlchemy URL with an async driver.

    Raises:
        ConfigurationError: naming the URL (password hidden) and the fix.
    """
    sqlalchemy: Any = require("sqlalchemy", "db")
    if not isinstance(url, str):
        raise ConfigurationError(
            f"database={url!r}: use an AsyncEngine or a URL such as "
            "'sqlite+aiosqlite:///app.db' or 'postgresql+asyncpg://user@host/db'"
        )
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception as exc:
        raise ConfigurationError(
            f"database URL {redact_url(url)!r} does not parse ({exc})"
        ) from None
    if parsed.drivername in ("sqlite", "postgresql", "postgres"):
        suggestion = "sqlite+aiosqlite" if parsed.drivername == "sqlite" else "postgresql+asyncpg"
        raise ConfigurationError(
            f"database URL {redact_url(url)!r} names a sync "
            f"driver; use an async one, e.g. {suggestion}://..."
        )
    return url


def describe_url(engine: Any) -> str:
    """The engine's URL with the password hidden (for messages and logs)."""
    return redact_url(str(engine.url.render_as_string(hide_password=False)))


def open_engine(database: Any) -> tuple[Any, bool]:
    """An ``AsyncEngine`` for ``database`` (an engine, an object with ``.engine``, or a URL)
    and whether it was created here (and so must be disposed by the caller)."""
    asyncio_ext: Any = require("sqlalchemy.ext.asyncio", "db")
    if isinstance(database, asyncio_ext.AsyncEngine):
        return database, False
    engine = getattr(database, "engine", None)
    if isinstance(engine, asyncio_ext.AsyncEngine):
        return engine, False
    url = check_database_url(database)
    return asyncio_ext.create_async_engine(url), True


async def reflect_table(engine: Any, spec: TableSpec) -> Any:
    """Load the table's definition; raises TriggerStartError when unreachable or wrong."""
    sqlalchemy: Any = require("sqlalchemy", "db")

    def load(sync: Any) -> Any:
        # The columns and their types are all a poll needs: one catalogue query, where a
        # full ``autoload_with`` also reads keys, indexes and constraints (~5x longer).
        columns = sqlalchemy.inspect(sync).get_columns(spec.table, schema=spec.schema)
        if not columns:
            raise sqlalchemy.exc.NoSuchTableError(spec.qualified)
        return sqlalchemy.Table(
            spec.table,
            sqlalchemy.MetaData(),
            *(sqlalchemy.Column(column["name"], column["type"]) for column in columns),
            schema=spec.schema,
        )

    try:
        async with engine.connect() as connection:
            table = await connection.run_sync(load)
    except sqlalchemy.exc.NoSuchTableError:
        raise TriggerStartError(
            f"table {spec.qualified!r} does not exist in {describe_url(engine)}; create it or "
            "fix table=/schema="
        ) from None
    except Exception as exc:
        raise TriggerStartError(
            f"database {describe_url(engine)} cannot be reached ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}); check the URL, that the "
            "server runs and accepts this user"
        ) from exc
    for column in (spec.id_column, spec.status_column, spec.time_column):
        if column is not None and column not in table.c:
            raise TriggerStartError(
                f"table {spec.qualified!r} has no column {column!r} (columns: "
                f"{', '.join(table.c.keys())}); fix id_column=/status_column=/time_column="
            )
    return table


def db_rows(
    database: Any,
    table: str | TableSpec,
    every: float | timedelta = 60.0,
    wake: Observable[Any] | None = None,
    max_backoff: float = 300.0,
    stats: DbPollStats | None = None,
    scheduler: abc.SchedulerBase | None = None,
    drain_timeout: float = 30.0,
    **table_options: Any,
) -> RowSource:
    """Poll a table for pending rows; emit each once, mark it ``queued`` once handled.

    See the module docstring for the order that makes this crash-safe. Each event's
    delivery carries the idempotency key ``table:primary key``; the row is marked when
    its delivery is acked (its job exists, or the pipeline dropped it on purpose) and
    left pending, to be emitted again by a later poll, when it is nacked.

    A full batch is followed at once by the next poll (a backlog drains at full speed);
    otherwise the poller waits ``every`` seconds, or less when ``wake`` emits (e.g.
    :func:`~portico_rx.sources._pg_notify`). Database errors never end the stream: they
    are logged, counted in ``stats``, and the next poll backs off (``every * 2**n``, at
    most ``max_backoff``).

    Disposing a subscription stops its polling at once, but it keeps marking: every row
    it emitted is marked once its delivery is acked, until none is left unsettled or
    ``drain_timeout`` passes (the rows left are logged and stay pending, so a later poll
    emits them again). :meth:`RowSource.wait_closed` waits for that.

    Args:
        database: an ``AsyncEngine``, an object with an ``.engine``, or a URL such as
            ``"sqlite+aiosqlite:///app.db"`` (then the engine is created on subscribe and
            disposed once the subscription has drained).
        table: the table name or a :class:`TableSpec`.
        every: seconds (or a timedelta) between polls when idle, > 0 (default 60).
        wake: an observable whose items trigger an early poll (default none).
        max_backoff: cap on the backoff after failures, seconds (default 300).
        stats: a :class:`DbPollStats` to update (default a private one).
        scheduler: scheduler for intervals and event times (default the running loop).
        drain_timeout: seconds a disposed subscription keeps marking the rows of its
            deliveries still in flight, > 0 (default 30).
        **table_options: :class:`TableSpec` fields when ``table`` is a name
            (``id_column``, ``status_column``, ``pending``, ``queued``, ``where``,
            ``schema``, ``batch_size``, ``time_column``).

    Returns:
        A cold observable of :class:`RowEvent` (a :class:`RowSource`).

    Raises:
        ConfigurationError: at once, for bad identifiers, statuses, intervals or URLs.

    Marble::

        table:  --r1,r2--------r3------
        rows:   --A--B---------C-------   (A, B, C marked queued once their jobs exist)

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.db_rows("sqlite+aiosqlite:///app.db", "items", every=30).pipe(
        ...     to_job("item.process", payload=lambda e: {"item_id": e.key}))
    """
    spec = table if isinstance(table, TableSpec) else TableSpec(table, **table_options)
    if isinstance(table, TableSpec) and table_options:
        raise ConfigurationError(
            f"table options {sorted(table_options)} given with a TableSpec; set them on it"
        )
    if isinstance(database, str):
        check_database_url(database)
    require("sqlalchemy", "db")  # a missing extra fails here, not on subscribe
    return RowSource(
        database,
        spec,
        interval=check_interval("every", every),
        backoff_cap=check_interval("max_backoff", max_backoff),
        drain_timeout=check_interval("drain_timeout", drain_timeout),
        wake=wake,
        stats=stats,
        scheduler=scheduler,
    )


class RowSource(reactivex.Observable[RowEvent]):
    """What :func:`db_rows` returns: a cold observable of :class:`RowEvent`; each
    subscription runs one :class:`_RowPoller`.

    Attributes:
        spec: the table.
        stats: the :class:`DbPollStats` all its subscriptions update.
        drain_timeout: seconds a disposed subscription keeps marking (see :func:`db_rows`).
    """

    def __init__(
        self,
        database: Any,
        spec: TableSpec,
        *,
        interval: float,
        backoff_cap: float,
        drain_timeout: float,
        wake: Observable[Any] | None,
        stats: DbPollStats | None,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        super().__init__(self._subscribe_poller)
        self.database = database
        self.spec = spec
        self.interval = interval
        self.backoff_cap = backoff_cap
        self.drain_timeout = drain_timeout
        self.wake = wake
        self.stats = stats if stats is not None else DbPollStats()
        self._scheduler = scheduler
        self._pollers: set[_RowPoller] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._table: Any = None

    def __repr__(self) -> str:
        return f"RowSource({self.spec.qualified!r}, subscriptions={len(self._pollers)})"

    async def reflect(self, engine: Any) -> Any:
        """Load the table's definition through ``engine`` and keep it for the polls of
        every subscription: a trigger loads it on ``start()`` (a missing table or column
        fails there), its poller then reuses it instead of loading it again.

        Raises:
            TriggerStartError: the database cannot be reached, or the table or a column
                is missing.
        """
        self._table = await reflect_table(engine, self.spec)
        return self._table

    def rows_in_flight(self) -> int:
        """Rows emitted and not finished with, over every live or draining subscription."""
        return sum(len(poller.in_flight) for poller in self._pollers)

    def busy_ids(self) -> list[Any]:
        """Primary keys some subscription emitted and has not finished with (a restarted
        subscription must not emit them again while an old one still marks them)."""
        return [raw for poller in self._pollers for raw in poller.in_flight.values()]

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until every disposed subscription has marked the rows it emitted (or
        given up after ``drain_timeout``) and closed its engine.

        Returns:
            Whether all of them closed within ``timeout`` seconds (default: no limit).
        """
        if not self._closing:
            return True
        _done, pending = await asyncio.wait(set(self._closing), timeout=timeout)
        return not pending

    def _subscribe_poller(
        self, observer: abc.ObserverBase[RowEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        announce(self)  # an I/O source (pipeline.readiness)
        poller = _RowPoller(self, observer, clock.resolve_scheduler(self._scheduler or scheduler))
        self._pollers.add(poller)
        return Disposable(poller.dispose)

    def _closed(self, poller: _RowPoller, task: asyncio.Task[None]) -> None:
        self._closing.add(task)

        def done(_task: asyncio.Task[None]) -> None:
            self._closing.discard(task)
            self._pollers.discard(poller)

        task.add_done_callback(done)


class _RowSettlement:
    """One emitted row's settlement, its delivery's ``ack`` and ``nack`` both: called
    without an argument it acks the row (marked once its job exists), with ``requeue``
    it nacks it (left pending for a later poll)."""

    __slots__ = ("key", "poller")

    def __init__(self, poller: _RowPoller, key: str) -> None:
        self.poller = poller
        self.key = key

    def __call__(self, requeue: bool | None = None) -> None:
        if requeue is None:
            self.poller._ack(self.key)
        else:
            self.poller._nack(self.key, requeue)


class _RowPoller:
    """One subscription of a :class:`RowSource`: a poll task and a marker task.

    ``in_flight`` holds the rows emitted and not yet finished with (marked, or nacked);
    ``to_mark`` those of them acked and waiting for the batched ``UPDATE``.
    """

    def __init__(
        self,
        source: RowSource,
        observer: abc.ObserverBase[RowEvent],
        scheduler: abc.SchedulerBase,
    ) -> None:
        self.source = source
        self.spec = source.spec
        self.observer = observer
        self.scheduler = scheduler
        self.loop = asyncio.get_running_loop()
        self.sql: Any = require("sqlalchemy", "db")
        self.engine, self.owns_engine = open_engine(source.database)
        # A poll's SELECT and a mark's UPDATE are one statement each: on PostgreSQL they
        # run in autocommit, so neither pays a BEGIN and a COMMIT / ROLLBACK round trip
        # (asyncpg's autocommit is a client-side setting; SQLite's would be a call into
        # its thread at each checkout and checkin, a cancellable await more per poll).
        self.statements = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        self.counters = source.stats
        self.in_flight: dict[str, Any] = {}
        self.to_mark: dict[str, Any] = {}
        self.max_in_flight = self.spec.batch_size * 2  # one batch in creation, one polled
        self.disposed = False
        self._woken = asyncio.Event()
        self._marks_ready = asyncio.Event()
        self._settled = asyncio.Event()
        self._wake_subscriptions: list[abc.DisposableBase] = []
        self._poll_task = self.loop.create_task(self._run())
        self._marker_task = self.loop.create_task(self._marker())
        for task in (self._poll_task, self._marker_task):
            task.add_done_callback(self._crashed)
        if source.wake is not None:
            self._subscribe_wake()
        logger.info("db_poll_started", table=self.spec.qualified, every_s=source.interval)

    # -- settlement ------------------------------------------------------------------

    # A row's delivery settles through its ``_RowSettlement``: one small object per row
    # (its ack and its nack), where two partials are two objects and their argument
    # tuples (a poll keeps up to ``2 * batch_size`` rows in flight).

    def _ack(self, key: str) -> None:
        in_flight = self.in_flight
        if key in in_flight:
            self.to_mark[key] = in_flight[key]
            self._marks_ready.set()

    def _nack(self, key: str, _requeue: bool) -> None:
        if self.in_flight.pop(key, None) is not None:
            self.counters.rows_nacked += 1
            self.counters.in_flight = self.source.rows_in_flight()
            self._settled.set()
            self._marks_ready.set()  # the acked rows waiting with it may be marked now
            logger.warning("db_row_nacked", table=self.spec.qualified, key=key)

    # -- SQL ---------------------------------------------------------------------------

    async def _select_pending(self) -> list[dict[str, Any]]:
        sqlalchemy, spec = self.sql, self.spec
        tbl = self.source._table
        if tbl is None:
            tbl = await self.source.reflect(self.engine)
        id_col = tbl.c[spec.id_column]
        query = sqlalchemy.select(tbl).where(tbl.c[spec.status_column] == spec.pending)
        if spec.where:
            query = query.where(sqlalchemy.text(spec.where))
        busy = self.source.busy_ids()
        if busy:
            query = query.where(self._among(id_col, busy, negate=True))
        query = query.order_by(id_col).limit(spec.batch_size)
        async with self.statements.connect() as connection:
            result = await connection.execute(query)
            columns = tuple(result.keys())
            return [dict(zip(columns, row, strict=True)) for row in result]

    def _among(self, column: Any, values: list[Any], negate: bool = False) -> Any:
        """``column IN (values)`` (``NOT IN`` when ``negate``). On PostgreSQL one array
        parameter (``= ANY($1)``, ``<> ALL($1)``): the statement stays the same for any
        number of rows, where ``IN`` renders and binds one parameter per row (a third of
        a poll's CPU at 500 rows)."""
        sqlalchemy = self.sql
        if self.engine.dialect.name != "postgresql":
            return column.not_in(values) if negate else column.in_(values)
        postgresql: Any = require("sqlalchemy.dialects.postgresql", "db")
        array = postgresql.ARRAY(column.type)
        values_param = sqlalchemy.bindparam(None, values, type_=array)
        if negate:
            return column != sqlalchemy.all_(values_param)
        return column == sqlalchemy.any_(values_param)

    async def _mark(self, keys: dict[str, Any]) -> None:
        sqlalchemy, spec, tbl = self.sql, self.spec, self.source._table
        statement = (
            sqlalchemy.update(tbl)
            .where(
                self._among(tbl.c[spec.id_column], list(keys.values())),
                tbl.c[spec.status_column] == spec.pending,
            )
            .values({spec.status_column: spec.queued})
        )
        async with self.statements.begin() as connection:  # in autocommit: no BEGIN
            await connection.execute(statement)

    # -- the marker task -----------------------------------------------------------------

    async def _marker(self) -> None:
        failures = 0
        while True:
            await self._marks_ready.wait()
            self._marks_ready.clear()
            if not self.to_mark:
                continue
            await self._coalesce()
            batch = dict(self.to_mark)
            try:
                await self._mark(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("db_mark_failed", table=self.spec.qualified, error=str(exc))
                source = self.source
                await clock.sleep(
                    self.scheduler, backoff(failures, 2 * source.interval, source.backoff_cap)
                )
                self._marks_ready.set()
                continue
            failures = 0
            self._marked(batch)

    async def _coalesce(self) -> None:
        """Let the acks of this burst come in, so one ``UPDATE`` marks them all: wait
        (woken by each ack or nack, never spinning) until ``batch_size`` rows are acked,
        every row in flight is settled, or the subscription is disposed.

        A row whose job takes long (retries) holds back the marks of at most
        ``batch_size - 1`` others; they stay in flight (never emitted twice) meanwhile."""
        while (
            not self.disposed
            and len(self.to_mark) < self.spec.batch_size
            and len(self.to_mark) < len(self.in_flight)  # to_mark is a subset of in_flight
        ):
            self._marks_ready.clear()
            await self._marks_ready.wait()

    def _marked(self, batch: dict[str, Any]) -> None:
        was_full = len(self.in_flight) >= self.max_in_flight
        for key in batch:
            self.to_mark.pop(key, None)
            self.in_flight.pop(key, None)
        self.counters.rows_marked += len(batch)
        self.counters.in_flight = self.source.rows_in_flight()
        self._settled.set()
        if was_full:
            self._woken.set()  # room again for the rest of a backlog

    # -- the poll task -------------------------------------------------------------------

    def _emit(self, rows: list[dict[str, Any]]) -> None:
        """Emit the rows of one poll, each as its own event with its own delivery.

        What is the same for every row of the poll is worked out once: the source name,
        the time the poll saw them (one ``SELECT``, one ``seen_at``: the job metadata
        formats it once per poll), the counters."""
        spec, observer, in_flight = self.spec, self.observer, self.in_flight
        id_column, time_column = spec.id_column, spec.time_column
        qualified = spec.qualified
        source = f"db:{qualified}"
        seen_at = clock.now(self.scheduler)
        emitted = 0
        try:
            for row in rows:
                if self.disposed:
                    break
                raw = row[id_column]
                key = str(raw)
                in_flight[key] = raw
                emitted += 1
                settlement = _RowSettlement(self, key)
                delivery = Delivery(
                    source=source,
                    seen_at=seen_at,
                    event_id=key,
                    idempotency_key=row_key(qualified, key),
                    attributes={"table": qualified, "row_id": key},
                    occurred_at=(
                        source_time(row.get(time_column)) if time_column is not None else None
                    ),
                    ack=settlement,
                    nack=settlement,
                )
                deliver(observer, RowEvent.polled(qualified, key, row), delivery)
        finally:
            self.counters.rows_emitted += emitted
            self.counters.in_flight = self.source.rows_in_flight()

    async def _poll_once(self) -> float:
        counters, source = self.counters, self.source
        counters.polls += 1
        try:
            rows = await self._select_pending()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            counters.failures += 1
            counters.consecutive_failures += 1
            counters.last_error = f"{type(exc).__name__}: {exc}"
            delay = backoff(counters.consecutive_failures, 2 * source.interval, source.backoff_cap)
            logger.warning(
                "db_poll_failed",
                table=self.spec.qualified,
                error=counters.last_error,
                consecutive_failures=counters.consecutive_failures,
                retry_in_s=delay,
            )
            return delay
        if counters.consecutive_failures:
            logger.info("db_poll_recovered", table=self.spec.qualified)
        counters.consecutive_failures = 0
        counters.last_error = None
        self._emit(rows)
        full = len(rows) == self.spec.batch_size and len(self.in_flight) < self.max_in_flight
        return 0.0 if full else source.interval

    async def _wait(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeper: asyncio.Future[Any] = clock.sleep(self.scheduler, delay)
        waker: asyncio.Future[Any] = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        if self._woken.is_set():
            self._woken.clear()

    async def _run(self) -> None:
        counters = self.counters
        while True:
            delay = await self._poll_once()
            counters.next_delay = delay
            counters.completed += 1
            if counters.consecutive_failures == 0 and len(self.in_flight) >= self.max_in_flight:
                delay = self.source.interval  # wait for marks (they wake us) before selecting
            await self._wait(delay)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and isinstance(task.exception(), Exception) and not self.disposed:
            error = task.exception()
            assert isinstance(error, Exception)
            self.observer.on_error(error)

    # -- wake-ups ----------------------------------------------------------------------

    def _subscribe_wake(self) -> None:
        wake = self.source.wake
        if wake is not None and not self.disposed:
            self._wake_subscriptions.append(
                wake.subscribe(self._on_wake, self._on_wake_error, scheduler=self.scheduler)
            )

    def _on_wake(self, _item: Any) -> None:
        self.counters.wakeups += 1
        self._woken.set()

    def _on_wake_error(self, error: Exception) -> None:
        logger.warning("db_wake_failed", table=self.spec.qualified, error=str(error))
        delay = min(self.source.backoff_cap, self.source.interval)
        self._wake_subscriptions.append(
            self.scheduler.schedule_relative(timedelta(seconds=delay), self._resubscribe_wake)
        )

    def _resubscribe_wake(self, _scheduler: Any, _state: Any = None) -> None:
        self._subscribe_wake()

    # -- dispose and drain -------------------------------------------------------------

    def dispose(self) -> None:
        """Stop polling now; keep marking in the background until drained (see
        :func:`db_rows`), then close the engine if it was opened here."""
        if self.disposed:
            return
        self.disposed = True
        self._marks_ready.set()  # mark what is acked at once
        self._poll_task.cancel()
        for subscription in self._wake_subscriptions:
            subscription.dispose()
        self._wake_subscriptions.clear()
        self.source._closed(self, self.loop.create_task(self._close()))
        logger.info("db_poll_stopping", table=self.spec.qualified, in_flight=len(self.in_flight))

    async def _close(self) -> None:
        await asyncio.wait([self._poll_task])  # its error, if any, went to the observer
        left = await self._drain(self.source.drain_timeout)
        self._marker_task.cancel()
        await asyncio.wait([self._marker_task])
        if left:
            logger.warning(
                "db_poll_drain_timeout",
                table=self.spec.qualified,
                unmarked=len(left),
                acked_unmarked=len(left.keys() & self.to_mark.keys()),
                keys=sorted(left)[:20],
                drain_timeout_s=self.source.drain_timeout,
                hint="these rows stay pending; the next poll emits them again and the "
                "job store returns their existing jobs by idempotency key",
            )
        self.in_flight.clear()
        self.to_mark.clear()
        self.counters.in_flight = self.source.rows_in_flight()
        if self.owns_engine:
            await self.engine.dispose()
        logger.info(
            "db_poll_stopped", table=self.spec.qualified, rows_marked=self.counters.rows_marked
        )

    async def _drain(self, timeout: float) -> dict[str, Any]:
        """Wait until every emitted row is marked or nacked; the rows left at ``timeout``."""
        deadline = self.loop.time() + timeout
        while self.in_flight:
            remaining = deadline - self.loop.time()
            if remaining <= 0 or self._marker_task.done():
                break
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), remaining)
        return dict(self.in_flight)
