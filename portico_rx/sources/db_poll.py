"""``db_rows``: pending rows of a table (an outbox), emitted once each, marked when handled.

The order that keeps rows from being lost or doubled without a shared transaction
between the rows' database and the job store:

1. select pending rows (``status = pending``) not already in flight;
2. emit each as a :class:`RowEvent` whose idempotency key is ``table:primary key``;
3. only when the job exists (the event's delivery is acked) mark the row ``queued``
   (``UPDATE … WHERE id IN (…) AND status = pending``, batched).

A crash between 2 and 3 leaves the row pending: the next poll emits it again and the job
store returns the job it already has for that key (no double). A crash before the job
exists leaves the row pending too (no loss). A row whose job cannot be created is nacked
and picked up by a later poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import reactivex
import structlog
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.provenance import row_key
from portico_rx.pipeline.retry import backoff
from portico_rx.sources.http_poll import check_interval
from portico_rx.url_redaction import redact_url

__all__ = [
    "DbPollStats",
    "RowEvent",
    "TableSpec",
    "check_database_url",
    "db_rows",
    "describe_url",
    "open_engine",
]

logger = structlog.get_logger("portico_rx.sources.db_poll")

_COALESCE_ROUNDS = 50
"""Loop iterations the marker waits for more acks before one batched UPDATE."""
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
    """

    table: str
    id_column: str = "id"
    status_column: str = "status"
    pending: str = "pending"
    queued: str = "queued"
    where: str | None = None
    schema: str | None = None
    batch_size: int = 100

    def __post_init__(self) -> None:
        for argument in ("table", "id_column", "status_column", "schema"):
            value = getattr(self, argument)
            if value is None and argument == "schema":
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
    try:
        async with engine.connect() as connection:
            table = await connection.run_sync(
                lambda sync: sqlalchemy.Table(
                    spec.table, sqlalchemy.MetaData(), schema=spec.schema, autoload_with=sync
                )
            )
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
    for column in (spec.id_column, spec.status_column):
        if column not in table.c:
            raise TriggerStartError(
                f"table {spec.qualified!r} has no column {column!r} (columns: "
                f"{', '.join(table.c.keys())}); fix id_column=/status_column="
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
    **table_options: Any,
) -> Observable[RowEvent]:
    """Poll a table for pending rows; emit each once, mark it ``queued`` once handled.

    See the module docstring for the order that makes this crash-safe. Each event's
    delivery carries the idempotency key ``table:primary key``; the row is marked when
    its delivery is acked (its job exists, or the pipeline dropped it on purpose) and
    left pending, to be emitted again by a later poll, when it is nacked.

    A full batch is followed at once by the next poll (a backlog drains at full speed);
    otherwise the poller waits ``every`` seconds, or less when ``wake`` emits (e.g.
    :func:`~portico_rx.sources.pg_notify`). Database errors never end the stream: they
    are logged, counted in ``stats``, and the next poll backs off (``every * 2**n``, at
    most ``max_backoff``).

    Args:
        database: an ``AsyncEngine``, an object with an ``.engine``, or a URL such as
            ``"sqlite+aiosqlite:///app.db"`` (then the engine is created on subscribe and
            disposed on dispose).
        table: the table name or a :class:`TableSpec`.
        every: seconds (or a timedelta) between polls when idle, > 0 (default 60).
        wake: an observable whose items trigger an early poll (default none).
        max_backoff: cap on the backoff after failures, seconds (default 300).
        stats: a :class:`DbPollStats` to update (default a private one).
        scheduler: scheduler for intervals and event times (default the running loop).
        **table_options: :class:`TableSpec` fields when ``table`` is a name
            (``id_column``, ``status_column``, ``pending``, ``queued``, ``where``,
            ``schema``, ``batch_size``).

    Returns:
        A cold observable of :class:`RowEvent`.

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
    interval = check_interval("every", every)
    backoff_cap = check_interval("max_backoff", max_backoff)
    if isinstance(database, str):
        check_database_url(database)
    sqlalchemy: Any = require("sqlalchemy", "db")

    def subscribe(
        observer: abc.ObserverBase[RowEvent], subscribe_scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        sched = clock.resolve_scheduler(scheduler or subscribe_scheduler)
        loop = asyncio.get_running_loop()
        engine, owned = open_engine(database)
        counters = stats if stats is not None else DbPollStats()
        in_flight: dict[str, Any] = {}
        to_mark: dict[str, Any] = {}
        woken = asyncio.Event()
        marks_ready = asyncio.Event()
        max_in_flight = spec.batch_size * 4
        state: dict[str, Any] = {"table": None, "disposed": False}
        wake_subscription: list[abc.DisposableBase] = []

        def ack_for(key: str) -> Callable[[], None]:
            def ack() -> None:
                if key in in_flight:
                    to_mark[key] = in_flight[key]
                    marks_ready.set()

            return ack

        def nack_for(key: str) -> Callable[[bool], None]:
            def nack(_requeue: bool) -> None:
                if in_flight.pop(key, None) is not None:
                    counters.rows_nacked += 1
                    counters.in_flight = len(in_flight)
                    logger.warning("db_row_nacked", table=spec.qualified, key=key)

            return nack

        async def select_pending() -> list[dict[str, Any]]:
            tbl = state["table"]
            if tbl is None:
                tbl = state["table"] = await reflect_table(engine, spec)
            id_col = tbl.c[spec.id_column]
            query = sqlalchemy.select(tbl).where(tbl.c[spec.status_column] == spec.pending)
            if spec.where:
                query = query.where(sqlalchemy.text(spec.where))
            if in_flight:
                query = query.where(id_col.not_in(list(in_flight.values())))
            query = query.order_by(id_col).limit(spec.batch_size)
            async with engine.connect() as connection:
                result = await connection.execute(query)
                return [dict(row._mapping) for row in result]

        async def mark(keys: dict[str, Any]) -> None:
            tbl = state["table"]
            statement = (
                sqlalchemy.update(tbl)
                .where(
                    tbl.c[spec.id_column].in_(list(keys.values())),
                    tbl.c[spec.status_column] == spec.pending,
                )
                .values({spec.status_column: spec.queued})
            )
            async with engine.begin() as connection:
                await connection.execute(statement)

        async def marker() -> None:
            failures = 0
            while True:
                await marks_ready.wait()
                marks_ready.clear()
                if not to_mark:
                    continue
                waiting = len(to_mark)
                for _ in range(_COALESCE_ROUNDS):  # let the acks of this burst come in
                    await asyncio.sleep(0)
                    if len(to_mark) >= spec.batch_size:
                        break
                    if len(to_mark) == waiting and not in_flight.keys() - to_mark.keys():
                        break
                    waiting = len(to_mark)
                batch = dict(to_mark)
                try:
                    await mark(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    counters.last_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("db_mark_failed", table=spec.qualified, error=str(exc))
                    await clock.sleep(sched, backoff(failures, 2 * interval, backoff_cap))
                    marks_ready.set()
                    continue
                failures = 0
                was_full = len(in_flight) >= max_in_flight
                for key in batch:
                    to_mark.pop(key, None)
                    in_flight.pop(key, None)
                counters.rows_marked += len(batch)
                counters.in_flight = len(in_flight)
                if was_full:
                    woken.set()  # room again for the rest of a backlog

        def emit(row: dict[str, Any]) -> None:
            raw = row[spec.id_column]
            key = str(raw)
            in_flight[key] = raw
            counters.rows_emitted += 1
            counters.in_flight = len(in_flight)
            delivery = Delivery(
                source=f"db:{spec.qualified}",
                seen_at=clock.now(sched),
                event_id=key,
                idempotency_key=row_key(spec.qualified, key),
                attributes={"table": spec.qualified, "row_id": key},
                ack=ack_for(key),
                nack=nack_for(key),
            )
            deliver(observer, RowEvent(table=spec.qualified, key=key, row=row), delivery)

        async def poll_once() -> float:
            counters.polls += 1
            try:
                rows = await select_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                counters.failures += 1
                counters.consecutive_failures += 1
                counters.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff(counters.consecutive_failures, 2 * interval, backoff_cap)
                logger.warning(
                    "db_poll_failed",
                    table=spec.qualified,
                    error=counters.last_error,
                    consecutive_failures=counters.consecutive_failures,
                    retry_in_s=delay,
                )
                return delay
            if counters.consecutive_failures:
                logger.info("db_poll_recovered", table=spec.qualified)
            counters.consecutive_failures = 0
            counters.last_error = None
            for row in rows:
                if state["disposed"]:
                    break
                emit(row)
            full = len(rows) == spec.batch_size and len(in_flight) < max_in_flight
            return 0.0 if full else interval

        async def wait(delay: float) -> None:
            if delay <= 0:
                await asyncio.sleep(0)
                return
            sleeper: asyncio.Future[Any] = clock.sleep(sched, delay)
            waker: asyncio.Future[Any] = asyncio.ensure_future(woken.wait())
            try:
                await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            if woken.is_set():
                woken.clear()

        async def run() -> None:
            while True:
                delay = await poll_once()
                counters.next_delay = delay
                counters.completed += 1
                if counters.consecutive_failures == 0 and len(in_flight) >= max_in_flight:
                    delay = interval  # wait for marks (they wake us) before selecting more
                await wait(delay)

        def on_wake(_item: Any) -> None:
            counters.wakeups += 1
            woken.set()

        def on_wake_error(error: Exception) -> None:
            logger.warning("db_wake_failed", table=spec.qualified, error=str(error))

            def again(_scheduler: Any, _state: Any = None) -> None:
                if not state["disposed"] and wake is not None:
                    wake_subscription.append(
                        wake.subscribe(on_wake, on_wake_error, scheduler=sched)
                    )

            wake_subscription.append(
                sched.schedule_relative(timedelta(seconds=min(backoff_cap, interval)), again)
            )

        tasks = [loop.create_task(run()), loop.create_task(marker())]

        def crashed(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and isinstance(task.exception(), Exception):
                error = task.exception()
                assert isinstance(error, Exception)
                observer.on_error(error)

        for task in tasks:
            task.add_done_callback(crashed)
        if wake is not None:
            wake_subscription.append(wake.subscribe(on_wake, on_wake_error, scheduler=sched))
        logger.info("db_poll_started", table=spec.qualified, every_s=interval)

        def dispose() -> None:
            state["disposed"] = True
            for task in tasks:
                task.cancel()
            for subscription in wake_subscription:
                subscription.dispose()
            if owned:
                closing = loop.create_task(_dispose_after(tasks, engine))
                _closing.add(closing)
                closing.add_done_callback(_closing.discard)
            logger.info("db_poll_stopped", table=spec.qualified)

        return Disposable(dispose)

    return reactivex.create(subscribe)


_closing: set[asyncio.Task[None]] = set()


async def _dispose_after(tasks: list[asyncio.Task[None]], engine: Any) -> None:
    with contextlib.suppress(BaseException):
        await asyncio.gather(*tasks, return_exceptions=True)
    await engine.dispose()
