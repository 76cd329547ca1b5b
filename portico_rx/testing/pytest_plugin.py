"""pytest plugin (registered by entry point): fixtures for testing triggers.

Installing portico_rx is enough; no ``conftest.py`` import needed.

Fixtures:
    recording_creator: a fresh :class:`~portico_rx.testing.RecordingJobCreator`.
    virtual_time: a ``HistoricalScheduler`` starting at 2025-01-01 00:00 UTC.
    job_service: an open :class:`~portico_rx.kits.job.job_service.JobService`, once over
        the in-memory queue and once over a SQLite file in ``tmp_path`` (the test runs
        for each; the ids are ``memory`` and ``sqlite``). Needs ``pytest-asyncio``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from reactivex.scheduler import HistoricalScheduler

from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.job_queue import JobQueue
from portico_rx.testing.marbles import EPOCH
from portico_rx.testing.recording import RecordingJobCreator

JOB_QUEUES = ("memory", "sqlite")
"""The job queues the ``job_service`` fixture runs a test against."""


@pytest.fixture
def recording_creator() -> RecordingJobCreator:
    """A RecordingJobCreator that never fails."""
    return RecordingJobCreator()


@pytest.fixture
def virtual_time() -> HistoricalScheduler:
    """A virtual-time scheduler at 2025-01-01T00:00:00Z; advance it with ``advance()``."""
    return HistoricalScheduler(initial_clock=EPOCH)


def make_job_queue(kind: str, directory: Path) -> JobQueue:
    """A fresh job queue of ``kind`` (``"memory"`` or ``"sqlite"``, in ``directory``)."""
    if kind == "memory":
        from portico_rx.adapters.job_queue.memory import MemoryJobQueue

        return MemoryJobQueue()
    if kind == "sqlite":
        from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue

        return SQLiteJobQueue(directory / "jobs.db")
    raise ValueError(f"kind={kind!r}: use one of {JOB_QUEUES}")


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - only without pytest-asyncio

    @pytest.fixture(params=JOB_QUEUES)
    def job_service() -> JobService:
        """Needs pytest-asyncio."""
        pytest.fail("the job_service fixture needs pytest-asyncio: pip install pytest-asyncio")

else:

    @pytest_asyncio.fixture(params=JOB_QUEUES)
    async def job_service(  # type: ignore[misc]
        request: pytest.FixtureRequest, tmp_path: Path
    ) -> AsyncIterator[JobService]:
        """An open JobService over each job queue in turn (``memory``, ``sqlite``)."""
        service = JobService(job_queue=make_job_queue(request.param, tmp_path))
        await service.open()
        try:
            yield service
        finally:
            await service.close()
