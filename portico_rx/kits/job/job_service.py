"""JobService: the JobCreator over a JobQueue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from portico_rx.errors import ConfigurationError, InvalidJobError
from portico_rx.logs import get_logger
from portico_rx.models import (
    Job,
    JobRequest,
    JobStatus,
    _new_job,
    check_aware,
    check_idempotency_key,
    check_job_fields,
)
from portico_rx.pipeline import instrument
from portico_rx.pipeline.dead_letter import discard, redrive
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    dead_letter_store_of,
)
from portico_rx.ports.job_creator import CreatedJob, JobCreator, own_metadata
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.schedule_store import ScheduleStore

__all__ = ["JobService"]

logger = get_logger("portico_rx.job_service")


class JobService(JobCreator):
    """Creates jobs in a :class:`~portico_rx.ports.job_queue.JobQueue`.

    Idempotency: a key given as ``idempotency_key=`` or as ``metadata["idempotency_key"]``
    (the spec's FAQ) is unique in the store; creating a job with a key that exists
    returns the existing job and writes nothing.

    Dead letters: when ``job_queue`` is also a
    :class:`~portico_rx.ports.dead_letter_store.DeadLetterStore` (every shipped queue
    is), it is :attr:`dead_letter_store`: triggers creating jobs through this service
    write their dead letters there, and :meth:`list_dead_letters`,
    :meth:`get_dead_letter`, :meth:`redrive_dead_letter` and
    :meth:`discard_dead_letter` work on them (see ``docs/dead-letters.md``).

    Args:
        job_queue: where jobs are stored (``SQLiteJobQueue`` is the embedded default).
        max_retries: default retries per job for workers (default 3).
    """

    def __init__(self, job_queue: JobQueue, *, max_retries: int = 3) -> None:
        if max_retries < 0:
            raise InvalidJobError("max_retries", max_retries, "use 0 or more")
        self.job_queue = instrument.hooks.wrap_store(job_queue)  # timed under telemetry
        self.max_retries = max_retries
        self.dead_letter_store: DeadLetterStore | None = dead_letter_store_of(job_queue)
        """The job queue when it keeps dead letters, else ``None``."""
        self.schedule_store: ScheduleStore | None = (
            job_queue if isinstance(job_queue, ScheduleStore) else None
        )
        """The job queue when it keeps schedules (a ``ScheduleTrigger``'s default store)."""

    def __repr__(self) -> str:
        return f"JobService(job_queue={self.job_queue!r})"

    async def open(self) -> None:
        await self.job_queue.open()

    async def close(self) -> None:
        await self.job_queue.close()

    async def __aenter__(self) -> JobService:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        scheduled_at: datetime | None = None,
        max_retries: int | None = None,
    ) -> Job:
        job_type, payload, queue_name, priority, metadata = check_job_fields(
            job_type, payload, queue_name, priority, metadata
        )
        key = check_idempotency_key(idempotency_key, metadata)
        if scheduled_at is not None:
            check_aware("scheduled_at", scheduled_at)
        retries = self.max_retries if max_retries is None else max_retries
        if retries < 0:
            raise InvalidJobError("max_retries", retries, "use 0 or more")
        job = _new_job(  # Job(...) without validating the checked fields again
            job_type,
            queue_name,
            payload,
            priority,
            metadata,
            key,
            scheduled_at,
            JobStatus.SCHEDULED if scheduled_at is not None else JobStatus.PENDING,
            retries,
        )
        stored, created = await self.job_queue.enqueue(job)
        if not created:
            _log_existing(stored)
        return stored

    async def create_many_from_requests(
        self, entries: Sequence[tuple[JobRequest, dict[str, Any] | None]]
    ) -> list[CreatedJob | Exception]:
        """Create the jobs of many requests in one ``JobQueue.enqueue_many`` call (one
        transaction / round trip), each built as :meth:`create_from_request` builds it.

        A request whose key is invalid gets its error in its place; the others are
        written. A store failure raises for the whole batch.
        """
        outcomes: list[CreatedJob | Exception | None] = []
        jobs: list[Job] = []
        for request, metadata in entries:
            try:
                jobs.append(self._request_job(request, metadata))
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        stored = iter(await self.job_queue.enqueue_many(jobs) if jobs else ())
        result: list[CreatedJob | Exception] = []
        for outcome in outcomes:
            if outcome is not None:
                result.append(outcome)
                continue
            job, created = next(stored)
            if not created:
                _log_existing(job)
            result.append(CreatedJob(job, created))
        return result

    async def create_from_request(
        self, request: JobRequest, metadata: dict[str, Any] | None = None
    ) -> CreatedJob:
        """Create ``request``'s job, reporting whether it is new (the store's flag).

        The request's fields were checked when it was built, so they are not checked
        again; ``metadata`` (the caller's fresh dict) becomes the job's. The key is
        ``metadata["idempotency_key"]`` (where the sink puts it), checked as
        ``create_job`` checks it.
        """
        job = self._request_job(request, metadata)
        stored, created = await self.job_queue.enqueue(job)  # awaited here: no extra frame
        if not created:
            _log_existing(stored)
        return CreatedJob(stored, created)

    def _request_job(self, request: JobRequest, metadata: dict[str, Any] | None) -> Job:
        if metadata is None:
            metadata = own_metadata(request)
        key = check_idempotency_key(None, metadata)
        at = request.scheduled_at
        return _new_job(
            request.job_type,
            request.queue_name,
            request.payload,
            request.priority,
            metadata,
            key,
            at,
            JobStatus.PENDING if at is None else JobStatus.SCHEDULED,
            self.max_retries,
            own_metadata=True,
        )

    async def get_job(self, job_id: UUID) -> Job | None:
        return await self.job_queue.get(job_id)

    async def cancel_job(self, job_id: UUID | str) -> Job:
        """Cancel a pending or scheduled job: it becomes ``CANCELLED`` and no worker runs it.

        Raises:
            ConfigurationError: ``job_id`` is not a UUID, or the job is running,
                completed, failed or already cancelled (the message names its status).
            JobNotFoundError: the queue holds no job with this id.
        """
        job = await self.job_queue.cancel(
            _uuid(job_id, "job id", "`portico-rx jobs --json` or Job.id")
        )
        logger.info("job_cancelled", job_id=str(job.id), job_type=job.job_type)
        return job

    async def find_jobs(
        self,
        *,
        job_type: str | None = None,
        queue_name: str | None = None,
        status: JobStatus | None = None,
        key_prefix: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        return await self.job_queue.list(
            job_type=job_type,
            queue_name=queue_name,
            status=status,
            key_prefix=key_prefix,
            limit=limit,
            order_by="idempotency_key" if key_prefix is not None else "created_at",
        )

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        job_type: str | None = None,
        queue_name: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs for inspection, newest first."""
        return await self.job_queue.list(
            status=status, job_type=job_type, queue_name=queue_name, limit=limit
        )

    # -- dead letters ----------------------------------------------------------------

    def _letters(self) -> DeadLetterStore:
        if self.dead_letter_store is None:
            raise ConfigurationError(
                f"{self.job_queue!r} keeps no dead letters (it is not a DeadLetterStore): "
                "use MemoryJobQueue, SQLiteJobQueue, PostgresJobQueue or RedisJobQueue"
            )
        return self.dead_letter_store

    async def list_dead_letters(
        self, *, trigger: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        """Stored dead letters, newest first: ``trigger``'s (any when ``None``) with
        ``status`` (``"open"`` by default; ``None`` for every status).

        Raises:
            ConfigurationError: the queue keeps no dead letters, or a bad filter.
        """
        return await self._letters().list_dead_letters(trigger=trigger, status=status, limit=limit)

    async def get_dead_letter(self, letter_id: UUID | str) -> DeadLetterRecord | None:
        """The stored dead letter ``letter_id`` (a UUID or its text), or ``None``.

        Raises:
            ConfigurationError: the queue keeps no dead letters, or the id is not a UUID.
        """
        return await self._letters().get_dead_letter(_uuid(letter_id))

    async def redrive_dead_letter(self, letter_id: UUID | str) -> Job:
        """Create the job of dead letter ``letter_id`` and mark the letter ``redriven``
        (see :func:`portico_rx.pipeline.dead_letter.redrive`).

        The job is built from the stored request with the stored provenance as its
        metadata (plus ``redriven_from``: the letter's id), through the normal creation
        path (:meth:`create_from_request`), so it gets the original idempotency key:
        when a job with that key exists (created meanwhile, or by an earlier redrive)
        that job is returned and none is written. A letter whose request had no key is
        created under ``dead-letter:{id}``, so a letter makes one job however often (and
        however concurrently) it is redriven. Redriving a ``redriven`` letter again
        returns its job.

        Raises:
            DeadLetterNotFoundError: no dead letter has this id.
            ConfigurationError: the queue keeps no dead letters, the id is not a UUID,
                the letter was discarded, or it has no job request (an event that failed
                before ``to_job`` built one: discard it, or replay its event).
            QueueUnavailableError: the store cannot be reached; retrying is safe.
        """
        return await redrive(self._letters(), self, _uuid(letter_id))

    async def discard_dead_letter(self, letter_id: UUID | str) -> DeadLetterRecord:
        """Mark the open dead letter ``letter_id`` ``discarded``: no job is created.

        Raises:
            DeadLetterNotFoundError: no dead letter has this id.
            ConfigurationError: the queue keeps no dead letters, the id is not a UUID,
                or the letter is not open (the message names its status).
        """
        return await discard(self._letters(), _uuid(letter_id))


def _uuid(
    value: UUID | str,
    what: str = "dead letter id",
    shown_by: str = "`portico-rx dead-letters list --json` or DeadLetterRecord.id",
) -> UUID:
    """``value`` as a UUID, or ``ConfigurationError`` naming it and where ids are shown."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise ConfigurationError(
            f"{what} {value!r} is not a UUID: give the full id shown by {shown_by}"
        ) from None


def _log_existing(job: Job) -> None:
    logger.debug("job_already_exists", job_id=str(job.id), idempotency_key=job.idempotency_key)
