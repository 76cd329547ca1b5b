"""The ``job_queue`` fixture: every JobQueue adapter, for the one contract suite.

To add an adapter, add one entry to ``JOB_QUEUE_FACTORIES``: an async context manager
factory ``(tmp_path) -> AsyncIterator[JobQueue]`` yielding an *open*, *empty* queue and
cleaning up after itself. Adapters that need a server carry its marker, e.g.
``pytest.param(postgres_queue, marks=pytest.mark.postgres, id="postgres")``.

Stores shared by several processes also hold *leases* (``visibility_timeout``): the
``shared_store`` fixture opens two queue objects on one store (a worker that dies, and a
survivor) for every adapter in ``LEASED_QUEUE_FACTORIES``, and ``lease_clock`` is the
clock their leases are taken and judged by (the adapters read ``utcnow`` for leases;
``dequeue(now=...)`` only decides which jobs are due, as in PostgreSQL). The memory
queue is not among them: it lives and dies with its process, its workers with it.

The ``creator_case`` fixture does the same for every JobCreator (``JOB_CREATOR_FACTORIES``,
below); the JobTrigger and queue-source cases live in ``conftest_triggers.py`` and
``brokers.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portico_rx.adapters.job_queue import postgres as postgres_module
from portico_rx.adapters.job_queue import redis as redis_module
from portico_rx.adapters.job_queue import sqlite as sqlite_module
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.redis import RedisJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.dead_letter_store import DeadLetterStore
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.schedule_store import ScheduleStore
from portico_rx.testing.recording import RecordingJobCreator

QueueFactory = Callable[[Path], contextlib.AbstractAsyncContextManager[JobQueue]]


@contextlib.asynccontextmanager
async def memory_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    yield MemoryJobQueue()


@contextlib.asynccontextmanager
async def sqlite_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    queue = SQLiteJobQueue(tmp_path / "contract.db")
    await queue.open()
    try:
        yield queue
    finally:
        await queue.close()


POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def drop_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it."""
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def postgres_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    """A PostgresJobQueue in its own schema, dropped afterwards."""

    schema = f"contract_{uuid.uuid4().hex[:12]}"
    queue = PostgresJobQueue(POSTGRES_DSN, schema=schema, pool_max=4)
    await queue.open()
    try:
        yield queue
    finally:
        await queue.close()
        await drop_schema(schema)


@contextlib.asynccontextmanager
async def redis_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    """A RedisJobQueue under its own key prefix, deleted afterwards."""
    queue = RedisJobQueue(REDIS_URL, prefix=f"contract-{uuid.uuid4().hex[:12]}")
    await queue.open()
    try:
        yield queue
    finally:
        await queue.drop()
        await queue.close()


@contextlib.asynccontextmanager
async def timed_sqlite_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    """A SQLiteJobQueue behind ``telemetry.TimedJobQueue`` (what JobService and JobWorker
    call while telemetry is enabled): the wrapper keeps every promise of the store, and
    times its calls."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from portico_rx import telemetry

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry.enable(meter_provider=provider)
    try:
        async with sqlite_queue(tmp_path) as queue:
            yield telemetry.TimedJobQueue(queue)
        data = reader.get_metrics_data()
        names = {
            metric.name
            for resource in (data.resource_metrics if data is not None else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }
        assert "portico_rx.store.duration" in names  # the calls were timed
    finally:
        telemetry.disable()
        provider.shutdown()


# ---- the adapters under contract: add yours here ----------------------------------------
JOB_QUEUE_FACTORIES: list[Any] = [
    pytest.param(memory_queue, id="memory"),
    pytest.param(sqlite_queue, id="sqlite"),
    pytest.param(timed_sqlite_queue, id="timed-sqlite"),
    pytest.param(postgres_queue, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(redis_queue, marks=pytest.mark.redis, id="redis"),
]
# ------------------------------------------------------------------------------------------


@pytest.fixture(params=JOB_QUEUE_FACTORIES)
async def job_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """An open, empty JobQueue of each adapter in ``JOB_QUEUE_FACTORIES``."""
    factory: QueueFactory = request.param
    async with factory(tmp_path) as queue:
        yield queue


# ---- dead letter and schedule stores: every shipped queue is both -----------------------
STORE_FACTORIES = [p for p in JOB_QUEUE_FACTORIES if p.id != "timed-sqlite"]
"""The shipped queues: ``TimedJobQueue`` wraps the JobQueue port only (``JobService``
keeps the store it wraps as its ``dead_letter_store`` and ``schedule_store``)."""


@pytest.fixture(params=STORE_FACTORIES)
async def dead_letter_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DeadLetterStore]:
    """An open, empty job queue of each adapter in ``JOB_QUEUE_FACTORIES``, as the
    DeadLetterStore every shipped queue also is."""
    factory: QueueFactory = request.param
    async with factory(tmp_path) as queue:
        assert isinstance(queue, DeadLetterStore)
        yield queue


@pytest.fixture(params=STORE_FACTORIES)
async def schedule_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ScheduleStore]:
    """An open, empty job queue of each shipped adapter, as its ScheduleStore."""
    factory: QueueFactory = request.param
    async with factory(tmp_path) as queue:
        assert isinstance(queue, ScheduleStore)
        yield queue


# ---- leases: two queue objects on one store ---------------------------------------------
Pair = tuple[JobQueue, JobQueue]


@contextlib.asynccontextmanager
async def sqlite_pair(tmp_path: Path, *, visibility_timeout: float | None) -> AsyncIterator[Pair]:
    """Two SQLiteJobQueue objects on one file: two connections, as two processes have."""
    path = tmp_path / "leases.db"
    dead = SQLiteJobQueue(path, visibility_timeout=visibility_timeout)
    survivor = SQLiteJobQueue(path, visibility_timeout=visibility_timeout)
    await dead.open()
    await survivor.open()
    try:
        yield dead, survivor
    finally:
        await dead.close()
        await survivor.close()


@contextlib.asynccontextmanager
async def postgres_pair(tmp_path: Path, *, visibility_timeout: float | None) -> AsyncIterator[Pair]:
    """Two PostgresJobQueue pools on one schema, dropped afterwards."""

    schema = f"contract_{uuid.uuid4().hex[:12]}"
    dead = PostgresJobQueue(
        POSTGRES_DSN, schema=schema, pool_max=2, visibility_timeout=visibility_timeout
    )
    survivor = PostgresJobQueue(
        POSTGRES_DSN, schema=schema, pool_max=2, visibility_timeout=visibility_timeout
    )
    await dead.open()
    await survivor.open()
    try:
        yield dead, survivor
    finally:
        await dead.close()
        await survivor.close()
        await drop_schema(schema)


@contextlib.asynccontextmanager
async def redis_pair(tmp_path: Path, *, visibility_timeout: float | None) -> AsyncIterator[Pair]:
    """Two RedisJobQueue clients under one key prefix, deleted afterwards."""
    prefix = f"contract-{uuid.uuid4().hex[:12]}"
    dead = RedisJobQueue(REDIS_URL, prefix=prefix, visibility_timeout=visibility_timeout)
    survivor = RedisJobQueue(REDIS_URL, prefix=prefix, visibility_timeout=visibility_timeout)
    await dead.open()
    await survivor.open()
    try:
        yield dead, survivor
    finally:
        await survivor.drop()
        await dead.close()
        await survivor.close()


LEASED_QUEUE_FACTORIES: list[Any] = [
    pytest.param(sqlite_pair, id="sqlite"),
    pytest.param(postgres_pair, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(redis_pair, marks=pytest.mark.redis, id="redis"),
]


class LeaseClock:
    """The wall clock of the queue adapters, moved by hand: leases expire without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def lease_clock(monkeypatch: pytest.MonkeyPatch) -> LeaseClock:
    """Replaces ``utcnow`` in the leasing adapters (claim time, lease expiry, sweeps)."""
    clock = LeaseClock()
    for module in (sqlite_module, postgres_module, redis_module):
        monkeypatch.setattr(module, "utcnow", clock)
    return clock


@pytest.fixture(params=LEASED_QUEUE_FACTORIES)
def shared_store(
    request: pytest.FixtureRequest, tmp_path: Path, lease_clock: LeaseClock
) -> Callable[..., contextlib.AbstractAsyncContextManager[Pair]]:
    """``async with shared_store(visibility_timeout=30) as (dead, survivor): ...`` — two
    open queue objects on one empty store of each adapter in ``LEASED_QUEUE_FACTORIES``,
    built after ``lease_clock`` took over their clock."""
    return functools.partial(request.param, tmp_path)


# ---- JobCreator: every implementation, for the JobCreator contract ----------------------
#
# A factory ``(tmp_path, queue_prefix) -> AsyncIterator[CreatorCase]`` yields an *open*
# creator with no jobs; the contract creates jobs only on queues named
# ``<queue_prefix>...``, so a creator on a shared server can delete them afterwards.


@dataclasses.dataclass
class CreatorCase:
    """A JobCreator under contract and what it can do.

    ``searchable``: ``find_jobs`` returns the jobs created (a store you can query). A
    bridge to an engine that cannot be queried keeps the port's default (``[]``).
    ``reports_created``: ``create_from_request`` says whether a job is new (the store's
    flag); other creators keep the port's default, which cannot tell (``None``).
    """

    creator: JobCreator
    searchable: bool
    reports_created: bool = False


@contextlib.asynccontextmanager
async def memory_service(tmp_path: Path, queue_prefix: str) -> AsyncIterator[CreatorCase]:
    yield CreatorCase(JobService(MemoryJobQueue()), searchable=True, reports_created=True)


@contextlib.asynccontextmanager
async def sqlite_service(tmp_path: Path, queue_prefix: str) -> AsyncIterator[CreatorCase]:
    service = JobService(SQLiteJobQueue(tmp_path / "creator.db"))
    await service.open()
    try:
        yield CreatorCase(service, searchable=True, reports_created=True)
    finally:
        await service.close()


@contextlib.asynccontextmanager
async def celery_creator(tmp_path: Path, queue_prefix: str) -> AsyncIterator[CreatorCase]:
    """A CeleryJobCreator on the local Redis (broker and result backend), no worker: its
    tasks stay pending and are deleted afterwards, with their claims (``claim_ttl``)."""
    import redis
    from celery import Celery

    from portico_rx.adapters.job_creator.celery_bridge import CeleryJobCreator

    app = Celery("portico_contract", broker=REDIS_URL, backend=REDIS_URL)
    try:
        yield CreatorCase(
            CeleryJobCreator(app, task_name="portico_contract.run", claim_ttl=600),
            searchable=False,
        )
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for pattern in (f"{queue_prefix}*", f"_kombu.binding*.{queue_prefix}*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
        client.close()
        app.close()


@contextlib.asynccontextmanager
async def recording_creator(tmp_path: Path, queue_prefix: str) -> AsyncIterator[CreatorCase]:
    yield CreatorCase(RecordingJobCreator(), searchable=True, reports_created=True)


JOB_CREATOR_FACTORIES: list[Any] = [
    pytest.param(memory_service, id="job_service_memory"),
    pytest.param(sqlite_service, id="job_service_sqlite"),
    pytest.param(celery_creator, marks=pytest.mark.redis, id="celery"),
    pytest.param(recording_creator, id="recording"),
]


@pytest.fixture
def queue_prefix() -> str:
    """A unique prefix for the queue names a creator test uses."""
    return f"contract-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=JOB_CREATOR_FACTORIES)
async def creator_case(
    request: pytest.FixtureRequest, tmp_path: Path, queue_prefix: str
) -> AsyncIterator[CreatorCase]:
    """An open JobCreator of each kind in ``JOB_CREATOR_FACTORIES``, with no jobs."""
    async with request.param(tmp_path, queue_prefix) as case:
        yield case
