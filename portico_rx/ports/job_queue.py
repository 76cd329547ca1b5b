"""The JobQueue port: durable storage of jobs, with idempotency and priorities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from portico_rx.models import Job, JobStatus

__all__ = ["JobQueue"]


class JobQueue(ABC):
    """Stores jobs and hands them to workers.

    Contract (one test suite, ``tests/contract/test_job_queue_contract.py``, checks every
    adapter against it):

    * ``enqueue`` is idempotent on ``job.idempotency_key``: the key is unique in the store
      itself, so concurrent enqueues of one key (from any process) store one job.
    * ``dequeue`` returns the highest priority, then oldest, job of the given queues whose
      ``scheduled_at`` is due, marks it ``RUNNING`` and counts the attempt; a job is handed
      to one worker only.
    * ``cancel`` turns a pending or scheduled job ``CANCELLED``; ``dequeue`` never returns
      it.
    * Methods raise :class:`~portico_rx.errors.QueueUnavailableError` when the store
      cannot be reached, :class:`~portico_rx.errors.JobNotFoundError` for unknown ids.
    """

    async def open(self) -> None:
        """Open the store and create or check its schema. Idempotent.

        Raises:
            QueueUnavailableError: unwritable path, corrupt file, unreachable server.
            SchemaVersionError: the schema was written by a newer portico_rx.
        """

    async def close(self) -> None:
        """Release connections and threads. Idempotent."""

    @abstractmethod
    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        """Store ``job`` unless its idempotency key is already taken.

        Returns:
            ``(stored_job, created)``: ``created`` is ``False`` when an existing job with
            the same key was returned instead.
        """

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        """Store each of ``jobs`` as :meth:`enqueue` would, in order, as one store call.

        The runs of one instant (coincident schedule fires, a burst the sink drains
        together) cost one transaction / one round trip instead of one per job. The
        outcome equals enqueueing ``jobs`` one after another: a key repeated within
        ``jobs`` (or already stored) gives the first job and ``created=False``.

        Returns:
            ``[(stored_job, created), ...]``, one per job, in the order given.

        Raises:
            QueueUnavailableError: the store failed; none of ``jobs`` may be assumed
                stored (retrying them is safe: enqueue is idempotent on key and id).

        This default calls :meth:`enqueue` once per job; every shipped store overrides it.
        """
        return [await self.enqueue(job) for job in jobs]

    @abstractmethod
    async def dequeue(
        self, queue_names: Sequence[str] | None, *, now: datetime | None = None
    ) -> Job | None:
        """Claim the next due job of ``queue_names`` (``RUNNING``, ``attempts + 1``).

        ``queue_names=None`` takes from every queue, by priority then age across them
        (what a ``JobWorker`` without ``queue_names`` does).

        Returns:
            The claimed job, or ``None`` when no job is due.
        """

    @abstractmethod
    async def complete(self, job_id: UUID, result: Any = None) -> Job:
        """Mark a job ``COMPLETED`` with ``result``.

        Raises:
            JobNotFoundError: no job has this id.
        """

    @abstractmethod
    async def fail(self, job_id: UUID, error: str, *, retry_at: datetime | None = None) -> Job:
        """Record a failed attempt.

        With ``retry_at`` the job becomes ``SCHEDULED`` again for that time; without it,
        ``FAILED`` for good.

        Raises:
            JobNotFoundError: no job has this id.
        """

    @abstractmethod
    async def cancel(self, job_id: UUID) -> Job:
        """Mark a ``PENDING`` or ``SCHEDULED`` job ``CANCELLED``: no worker dequeues it.

        Atomic against ``dequeue``: a job is either claimed by a worker or cancelled,
        never both.

        Returns:
            The cancelled job (``completed_at`` is when it was cancelled).

        Raises:
            JobNotFoundError: no job has this id.
            ConfigurationError: the job is running, completed, failed or already
                cancelled; the message names its status.
        """

    @abstractmethod
    async def get(self, job_id: UUID) -> Job | None:
        """The job with ``job_id``, or ``None``."""

    @abstractmethod
    async def get_by_key(self, idempotency_key: str) -> Job | None:
        """The job holding ``idempotency_key``, or ``None``."""

    @abstractmethod
    async def list(
        self,
        *,
        status: JobStatus | None = None,
        job_type: str | None = None,
        queue_name: str | None = None,
        key_prefix: str | None = None,
        limit: int = 100,
        order_by: str = "created_at",
    ) -> list[Job]:
        """Jobs matching every given filter, newest first.

        ``order_by`` is ``"created_at"`` or ``"idempotency_key"`` (both descending).
        """

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        """The greatest idempotency key (by code point) under each of ``prefixes``.

        One lookup for many prefixes: a trigger's start-up asks for the last run of
        every schedule at once (``{trigger}:{schedule}:`` prefixes; the fire time in the
        key sorts by time). Stores answer from their key index, not a scan per prefix.

        Returns:
            ``{prefix: greatest key}``; a prefix no key starts with is absent.

        This default asks :meth:`list` once per prefix; every shipped store overrides it.
        """
        found: dict[str, str] = {}
        for prefix in dict.fromkeys(prefixes):
            jobs = await self.list(key_prefix=prefix, limit=1, order_by="idempotency_key")
            if jobs and jobs[0].idempotency_key is not None:
                found[prefix] = jobs[0].idempotency_key
        return found

    async def wait_for_jobs(self, timeout: float) -> None:
        """Wait until new jobs may be due, at most ``timeout`` seconds.

        Stores that can signal new work (LISTEN/NOTIFY, blocking pops, in-process events)
        wake early; the default just sleeps, which makes workers poll.
        """
        import asyncio

        await asyncio.sleep(timeout)
