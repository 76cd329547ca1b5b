"""The JobHandler port: user code that processes jobs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from portico_rx.models import Job

__all__ = ["JobHandler"]


class JobHandler(ABC):
    """Processes jobs of one or more job types; run by :class:`~portico_rx.JobWorker`."""

    job_types: tuple[str, ...] = ()
    """Job types this handler accepts; empty means the types it is registered for."""

    @abstractmethod
    async def handle(self, job: Job) -> Any:
        """Process ``job`` and return a JSON-serialisable result (or ``None``).

        Raises:
            Exception: any exception fails this attempt; the worker retries with
                backoff until ``job.max_retries`` is used up, then marks the job failed.
        """
