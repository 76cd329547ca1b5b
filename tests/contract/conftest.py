"""The ``job_queue`` fixture: every JobQueue adapter, for the one contract suite.

To add an adapter, add one entry to ``JOB_QUEUE_FACTORIES``: an async context manager
factory ``(tmp_path) -> AsyncIterator[JobQueue]`` yielding an *open*, *empty* queue and
cleaning up after itself. Adapters that need a server carry its marker, e.g.
``pytest.param(postgres_queue, marks=pytest.mark.postgres, id="postgres")``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.redis import RedisJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.ports.job_queue import JobQueue

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


@contextlib.asynccontextmanager
async def postgres_queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    """A PostgresJobQueue in its own schema, dropped afterwards."""
    import asyncpg

    schema = f"contract_{uuid.uuid4().hex[:12]}"
    queue = PostgresJobQueue(POSTGRES_DSN, schema=schema, pool_max=4)
    await queue.open()
    try:
        yield queue
    finally:
        await queue.close()
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


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


# ---- the adapters under contract: add yours here ----------------------------------------
JOB_QUEUE_FACTORIES: list[Any] = [
    pytest.param(memory_queue, id="memory"),
    pytest.param(sqlite_queue, id="sqlite"),
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
