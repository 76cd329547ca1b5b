"""The JobCreator port: what triggers call to create jobs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from uuid import UUID

from portico_rx.models import Job, JobStatus

__all__ = ["JobCreator"]


class JobCreator(ABC):
    """Creates jobs. Triggers depend on this port, not on a concrete service.

    Implemented by :class:`~portico_rx.kits.job.job_service.JobService` and by bridges
    to other engines. ``AsyncMock(spec=JobCreator)`` is a valid test double.
    """

    @abstractmethod
    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        """Create a job and return it.

        Idempotency: if ``metadata["idempotency_key"]`` names a key that already has a
        job, that job is returned and nothing new is created.

        Returns:
            The created job, or the existing job for a repeated idempotency key.

        Raises:
            InvalidJobError: a field is invalid (also a ``ValueError``); nothing is written.
            QueueUnavailableError: the store cannot be reached (also a ``ConnectionError``);
                callers may retry.
        """

    @abstractmethod
    async def get_job(self, job_id: UUID) -> Job | None:
        """Return the job with ``job_id``, or ``None`` if there is none."""

    async def find_jobs(
        self,
        *,
        job_type: str | None = None,
        queue_name: str | None = None,
        status: JobStatus | None = None,
        key_prefix: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs matching every given filter, newest idempotency key / creation first.

        Creators that keep no searchable history (bridges to engines that cannot be
        queried) keep this default and return ``[]``; triggers then treat the history as
        empty and rely on idempotency keys alone.
        """
        return []

    async def open(self) -> None:
        """Prepare resources (open the store, create its schema). Idempotent.

        Triggers call it from ``start()`` so that an unusable store fails there, with a
        clear error, instead of at the first event. Creators with nothing to prepare keep
        this default.

        Raises:
            QueueUnavailableError: the store cannot be opened.
        """
