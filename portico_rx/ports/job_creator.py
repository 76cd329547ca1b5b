"""The JobCreator port: what triggers call to create jobs."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from portico_rx.errors import InvalidJobError
from portico_rx.models import Job, JobRequest, JobStatus

__all__ = ["CreatedJob", "JobCreator", "batch_entry", "own_metadata", "request_entry"]


class CreatedJob(NamedTuple):
    """What :meth:`JobCreator.create_from_request` returns."""

    job: Job
    """The created job, or the existing job for a repeated idempotency key."""
    created: bool | None
    """``True``: written now; ``False``: an existing job for the key was returned;
    ``None``: this creator cannot tell (the spec's ``create_job`` returns only the job)."""


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

    async def create_from_request(
        self, request: JobRequest, metadata: dict[str, Any] | None = None
    ) -> CreatedJob:
        """Create the job a :class:`~portico_rx.models.JobRequest` describes.

        What the pipeline's sink calls for every job (through :func:`request_entry`).
        ``request``'s fields were checked when it was built (``to_job``, a trigger's
        config) and ``metadata`` is its metadata plus the sink's JSON provenance, so a
        creator that overrides this may skip checking them again. ``metadata`` is the
        caller's fresh dict, handed over: the job may keep it as its own (without it,
        :func:`own_metadata` of the request). This default calls
        :meth:`create_job` with the spec's arguments (``metadata`` left out when empty,
        the call the spec's FAQ test asserts; without ``metadata``, the request's own, with
        its key as ``idempotency_key``) and cannot tell a new job from an existing one.
        A delayed request (``scheduled_at`` set) is passed as ``create_job(...,
        scheduled_at=)``, which a creator that can delay jobs accepts as a keyword
        (:class:`~portico_rx.kits.job.job_service.JobService` does); one whose
        ``create_job`` does not raises :class:`~portico_rx.errors.InvalidJobError` (the
        event is dead-lettered).

        Raises:
            Whatever :meth:`create_job` raises.
        """
        if metadata is None:
            metadata = own_metadata(request)
        if request.scheduled_at is not None:  # a delayed job: create_job(scheduled_at=)
            return CreatedJob(await self._create_scheduled(request, metadata), None)
        if not metadata:
            job = await self.create_job(
                job_type=request.job_type,
                payload=request.payload,
                queue_name=request.queue_name,
                priority=request.priority,
            )
        else:
            job = await self.create_job(
                job_type=request.job_type,
                payload=request.payload,
                queue_name=request.queue_name,
                priority=request.priority,
                metadata=metadata,
            )
        return CreatedJob(job, None)

    async def _create_scheduled(self, request: JobRequest, metadata: dict[str, Any]) -> Job:
        create = self.create_job
        try:
            parameters = inspect.signature(create).parameters.values()
            takes = any(
                p.name == "scheduled_at" or p.kind is inspect.Parameter.VAR_KEYWORD
                for p in parameters
            )
        except (TypeError, ValueError):  # a callable without a signature: just call it
            takes = True
        if not takes:
            raise InvalidJobError(
                "scheduled_at",
                request.scheduled_at,
                f"{type(self).__name__}.create_job takes no scheduled_at=, so it cannot "
                f"delay the job {request.job_type!r}; use a creator that can (JobService), "
                "add a scheduled_at keyword to create_job, or drop delay=/run_at=",
            )
        return await create(  # type: ignore[call-arg]
            job_type=request.job_type,
            payload=request.payload,
            queue_name=request.queue_name,
            priority=request.priority,
            metadata=metadata,
            scheduled_at=request.scheduled_at,
        )

    async def create_many_from_requests(
        self, entries: Sequence[tuple[JobRequest, dict[str, Any] | None]]
    ) -> list[CreatedJob | Exception]:
        """Create the jobs of many requests together (the sink's batch of one instant).

        ``entries`` are ``(request, metadata)`` pairs as :meth:`create_from_request`
        takes them. A creator over a store overrides this to write them in one store
        call (:class:`~portico_rx.kits.job.job_service.JobService`:
        ``JobQueue.enqueue_many``); the sink uses it only where :func:`batch_entry` says
        so, and otherwise creates one request at a time. This default creates them one
        after another through :meth:`create_from_request`.

        Returns:
            One outcome per entry, in order: the :class:`CreatedJob`, or the exception
            that stopped that request alone (an invalid key, say); the others stand.

        Raises:
            QueueUnavailableError: the store could not be reached (or whatever else
                stopped the whole batch); none of it may be assumed created, and creating
                the requests again is safe (their idempotency keys and job ids hold).
        """
        outcomes: list[CreatedJob | Exception] = []
        for request, metadata in entries:
            try:
                outcomes.append(await self.create_from_request(request, metadata))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

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


def own_metadata(request: JobRequest) -> dict[str, Any]:
    """A fresh copy of ``request``'s metadata, with its own key as ``idempotency_key``."""
    metadata = dict(request.metadata)
    if request.idempotency_key is not None:
        metadata["idempotency_key"] = request.idempotency_key
    return metadata


RequestEntry = Callable[[JobRequest, dict[str, Any] | None], Awaitable[CreatedJob]]


def request_entry(creator: JobCreator) -> RequestEntry:
    """The callable the sink creates jobs with: ``creator.create_from_request`` when the
    creator's own class provides it at least as specifically as ``create_job``, else
    the default (which calls ``creator.create_job``).

    So a subclass that overrides only ``create_job`` (to add logging, to wrap another
    engine) has every job go through its override, and a test double such as
    ``AsyncMock(spec=JobCreator)`` sees the spec's ``create_job`` call; an instance
    whose ``create_job`` was patched (``mock.patch.object``) is treated the same way.
    """
    try:
        patched = "create_job" in vars(creator)
    except TypeError:  # a creator with __slots__ has no instance attributes to patch
        patched = False
    if not patched:
        mro = type(creator).__mro__
        by_request = _defining_class(mro, "create_from_request")
        by_job = _defining_class(mro, "create_job")
        if by_request is not None and by_job is not None and issubclass(by_request, by_job):
            return creator.create_from_request
    return lambda request, metadata: JobCreator.create_from_request(creator, request, metadata)


BatchEntry = Callable[
    [Sequence[tuple[JobRequest, dict[str, Any] | None]]], Awaitable[list[CreatedJob | Exception]]
]


def batch_entry(creator: JobCreator) -> BatchEntry | None:
    """``creator.create_many_from_requests`` when the creator's own class provides it at
    least as specifically as both ``create_from_request`` and ``create_job``, else
    ``None`` (the sink then creates one request at a time through :func:`request_entry`).

    The rule of :func:`request_entry`, one level up: a subclass that overrides
    ``create_job`` or ``create_from_request`` (and not the batch method) keeps seeing
    every job through its override, and so does an instance whose ``create_job`` or
    ``create_from_request`` was patched; the port's default batch (one
    ``create_from_request`` after another) is never used by the sink, as it would gain
    nothing.
    """
    try:
        own = vars(creator)
    except TypeError:  # __slots__: no instance attributes to patch
        own = {}
    if "create_job" in own or "create_from_request" in own:
        return None
    if "create_many_from_requests" in own:  # patched itself: that is what to call
        return creator.create_many_from_requests
    mro = type(creator).__mro__
    by_many = _defining_class(mro, "create_many_from_requests")
    if by_many is None or by_many is JobCreator:
        return None
    for name in ("create_from_request", "create_job"):
        by_one = _defining_class(mro, name)
        if by_one is None or not issubclass(by_many, by_one):
            return None
    return creator.create_many_from_requests


def _defining_class(mro: tuple[type, ...], name: str) -> type | None:
    for klass in mro:
        if name in vars(klass):
            return klass
    return None
