"""The ``job_queue`` fixture: every JobQueue adapter, for the one contract suite.

To add an adapter, add one entry to ``JOB_QUEUE_FACTORIES``: an async context manager
factory ``(tmp_path) -> AsyncIterator[JobQueue]`` yielding an *open*, *empty* queue and
cleaning up after itself. Adapters that need a server carry its marker, e.g.
``pytest.param(postgres_queue, marks=pytest.mark.postgres, id="postgres")``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
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


# ---- the adapters under contract: add yours here ----------------------------------------
JOB_QUEUE_FACTORIES: list[Any] = [
    pytest.param(memory_queue, id="memory"),
    pytest.param(sqlite_queue, id="sqlite"),
]
# ------------------------------------------------------------------------------------------


@pytest.fixture(params=JOB_QUEUE_FACTORIES)
async def job_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """An open, empty JobQueue of each adapter in ``JOB_QUEUE_FACTORIES``."""
    factory: QueueFactory = request.param
    async with factory(tmp_path) as queue:
        yield queue
