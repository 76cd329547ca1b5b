"""DatabasePollingTrigger: the spec's database trigger, pending rows -> jobs -> queued."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from reactivex.abc import SchedulerBase

from portico_rx.errors import ConfigurationError
from portico_rx.logs import get_logger
from portico_rx.models import TriggerHealth
from portico_rx.pipeline import PipelineTrigger
from portico_rx.pipeline.to_job import to_job
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources._db_poll import (
    DbPollStats,
    RowEvent,
    TableSpec,
    db_rows,
    describe_url,
    open_engine,
)
from portico_rx.sources._pg_notify import pg_notify
from portico_rx.sources.queues.consumer import check_positive

__all__ = ["DatabasePollingTrigger", "default_row_payload"]

logger = get_logger("portico_rx.database_trigger")

MARK_MARGIN = 10.0
"""Seconds ``stop()`` allows, beyond ``stop_timeout`` (the creations in flight), for the
``UPDATE`` that marks the rows of the last jobs created."""

_JSON_ATOMS = frozenset({str, int, bool, type(None)})
"""Types of a ``data`` value that is JSON as it is (no conversion to look for)."""


def default_row_payload(event: RowEvent) -> dict[str, Any]:
    """The spec's payload: ``{"item_id": "<primary key>", "data": <row["data"]>}``; a table
    without a ``data`` column gives the whole row (as JSON values) as ``data``."""
    data = event.row.get("data", event.row)
    if type(data) in _JSON_ATOMS:  # the common ``data`` column: already a JSON value
        return {"item_id": event.key, "data": data}
    return {"item_id": event.key, "data": to_jsonable_python(data, fallback=str)}


class DatabasePollingTrigger(PipelineTrigger):
    """Poll a table for pending rows, create a job per row, then mark the row queued.

    Rows are marked only after their job exists, and each job's idempotency key is
    ``<name>:<job_type>:<table>:<primary key>``, so a crash at any point neither loses a
    row (it stays pending) nor doubles a job (the store returns the existing one). This
    needs a job creator that honours idempotency keys, such as ``JobService``.

    ``start()`` connects and loads the table's definition: an unreachable database, a
    missing table or column raises ``TriggerStartError``. While running, database errors
    are retried with backoff; ``get_health()`` turns unhealthy after ``unhealthy_after``
    failed polls in a row and shows the last error. ``stop()`` stops polling, lets the
    jobs in flight be created (``stop_timeout``) and marks their rows before it returns,
    so a restarted trigger does not see them again.

    Args:
        job_creator: where jobs are created.
        database: an SQLAlchemy ``AsyncEngine``, an object with an ``.engine`` (the spec's
            ``database``), or a URL such as ``"sqlite+aiosqlite:///app.db"`` or
            ``"postgresql+asyncpg://user@host/db"``.
        poll_interval_seconds: seconds between polls when idle (default 60, the spec's).
        table: table name (default ``"items"``) or a ``TableSpec``.
        job_type: job type (default ``"item.process"``, the spec's).
        queue_name: queue (default ``"processing"``, the spec's).
        payload: ``payload(row_event) -> dict`` (default :func:`default_row_payload`).
        priority: job priority (default 0).
        notify_channel: a PostgreSQL channel whose ``NOTIFY`` wakes the poller early
            (default none).
        unhealthy_after: failed polls in a row that make the trigger unhealthy (default 3).
        max_backoff: cap on the retry backoff, seconds (default 300).
        name: trigger name (default ``"db:<table>"``).
        scheduler: Rx scheduler (default the running loop); pass a virtual one in tests.
        **options: ``TableSpec`` fields (``id_column``, ``status_column``, ``pending``,
            ``queued``, ``where``, ``schema``, ``batch_size``), else passed to
            :class:`~portico_rx.pipeline.PipelineTrigger`.

    Example:
        >>> from portico_rx.testing import RecordingJobCreator
        >>> trigger = DatabasePollingTrigger(
        ...     RecordingJobCreator(), "sqlite+aiosqlite:///app.db", poll_interval_seconds=30)
        >>> trigger.spec.table, trigger.job_type
        ('items', 'item.process')
    """

    def __init__(
        self,
        job_creator: JobCreator,
        database: Any,
        poll_interval_seconds: float | timedelta = 60,
        *,
        table: str | TableSpec = "items",
        job_type: str = "item.process",
        queue_name: str = "processing",
        payload: Callable[[RowEvent], dict[str, Any]] = default_row_payload,
        priority: int = 0,
        notify_channel: str | None = None,
        unhealthy_after: int = 3,
        max_backoff: float = 300.0,
        name: str | None = None,
        scheduler: SchedulerBase | None = None,
        **options: Any,
    ) -> None:
        as_requests = to_job(job_type, payload=payload, queue_name=queue_name, priority=priority)
        spec_fields = set(TableSpec.__dataclass_fields__) - {"table"}
        table_options = {k: options.pop(k) for k in list(options) if k in spec_fields}
        if isinstance(table, TableSpec):
            if table_options:
                raise ConfigurationError(
                    f"{sorted(table_options)} given with a TableSpec; set them on the TableSpec"
                )
            self.spec = table
        else:
            self.spec = TableSpec(table, **table_options)
        if isinstance(unhealthy_after, bool) or not isinstance(unhealthy_after, int):
            raise ConfigurationError(f"unhealthy_after={unhealthy_after!r}: use an integer >= 1")
        if unhealthy_after < 1:
            raise ConfigurationError(f"unhealthy_after={unhealthy_after!r}: use 1 or more")
        self.engine, self._owns_engine = open_engine(database)
        self.job_type = job_type
        self.unhealthy_after = unhealthy_after
        self.stats = DbPollStats()
        self.poll_interval = poll_interval_seconds
        wake = None
        if notify_channel is not None:
            if self.engine.dialect.name != "postgresql":
                raise ConfigurationError(
                    f"notify_channel={notify_channel!r} needs PostgreSQL; "
                    f"{describe_url(self.engine)} is {self.engine.dialect.name}"
                )
            wake = pg_notify(self.engine, notify_channel, scheduler=scheduler)
        self.notify_channel = notify_channel
        stop_timeout = options.get("stop_timeout", 30.0)
        check_positive("stop_timeout", stop_timeout, allow_zero=True)
        self.source = db_rows(
            self.engine,
            self.spec,
            every=poll_interval_seconds,
            wake=wake,
            max_backoff=max_backoff,
            stats=self.stats,
            scheduler=scheduler,
            drain_timeout=stop_timeout + MARK_MARGIN,
        )
        pipeline = self.source.pipe(as_requests)
        super().__init__(
            pipeline,
            job_creator,
            name=name or f"db:{self.spec.qualified}",
            scheduler=scheduler,
            **options,
        )

    async def _before_start(self) -> None:
        # The table's definition (its polls reuse it) and the job store do not depend on
        # each other: load and open them together (the start's own ``open()`` of the
        # creator, idempotent, then finds it open). A table error is the one raised.
        outcomes = await asyncio.gather(
            self.source.reflect(self.engine), self.job_creator.open(), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _after_stop(self) -> None:
        # the sink has drained: every row's delivery is settled; wait for the marks of
        # the acked ones (the source's drain is bounded by stop_timeout + MARK_MARGIN)
        if not await self.source.wait_closed(timeout=self.source.drain_timeout + MARK_MARGIN):
            logger.warning("db_trigger_close_timeout", trigger=self.name, **asdict(self.stats))
        if self._owns_engine:
            await self.engine.dispose()

    def get_health(self) -> TriggerHealth:
        health = super().get_health()
        if self.stats.consecutive_failures >= self.unhealthy_after:
            return health.model_copy(update={"healthy": False, "last_error": self.stats.last_error})
        return health

    def health_details(self) -> dict[str, Any]:
        return {
            "database": describe_url(self.engine),
            "table": self.spec.qualified,
            "notify_channel": self.notify_channel,
            **asdict(self.stats),
        }
