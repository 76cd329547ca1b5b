"""portico_rx's pytest plugin (entry point ``pytest11: portico_rx``): trigger-test fixtures.

Installing portico_rx is enough; no ``conftest.py`` import needed. Loading the plugin
imports nothing of portico_rx (see :mod:`_portico_rx_plugins`): a project that has
portico_rx installed pays for the library only in tests that use one of these fixtures.

Fixtures:
    recording_creator: a fresh :class:`~portico_rx.testing.RecordingJobCreator`.
    virtual_time: a ``HistoricalScheduler`` starting at 2025-01-01 00:00 UTC.
    job_service: an open :class:`~portico_rx.kits.job.job_service.JobService`, once over
        the in-memory queue and once over a SQLite file in ``tmp_path`` (the test runs
        for each; the ids are ``memory`` and ``sqlite``). An asyncio fixture of
        pytest-asyncio, so it works in its ``strict`` and ``auto`` modes alike.

Turn the plugin off with ``pytest -p no:portico_rx``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from reactivex.scheduler import HistoricalScheduler

    from portico_rx.kits.job.job_service import JobService
    from portico_rx.ports.job_queue import JobQueue
    from portico_rx.testing.recording import RecordingJobCreator

__all__ = ["JOB_QUEUES", "job_service", "make_job_queue", "recording_creator", "virtual_time"]

JOB_QUEUES = ("memory", "sqlite")
"""The job queues the ``job_service`` fixture runs a test against."""


@pytest.fixture
def recording_creator() -> RecordingJobCreator:
    """A RecordingJobCreator that never fails."""
    from portico_rx.testing.recording import RecordingJobCreator

    return RecordingJobCreator()


@pytest.fixture
def virtual_time() -> HistoricalScheduler:
    """A virtual-time scheduler at 2025-01-01T00:00:00Z; advance it with ``advance()``."""
    from reactivex.scheduler import HistoricalScheduler

    from portico_rx.testing.marbles import EPOCH

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
    async def job_service(  # type: ignore[misc]  # the two branches define one fixture
        request: pytest.FixtureRequest, tmp_path: Path
    ) -> AsyncIterator[JobService]:
        """An open JobService over each job queue in turn (``memory``, ``sqlite``)."""
        from portico_rx.kits.job.job_service import JobService

        service = JobService(job_queue=make_job_queue(request.param, tmp_path))
        await service.open()
        try:
            yield service
        finally:
            await service.close()
