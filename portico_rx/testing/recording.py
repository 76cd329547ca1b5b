"""RecordingJobCreator: a JobCreator that remembers, for tests and notebooks."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from uuid import UUID

from portico_rx.adapters.job_queue.base import job_matches
from portico_rx.errors import ConfigurationError, QueueUnavailableError
from portico_rx.models import (
    Job,
    JobRequest,
    JobStatus,
    check_idempotency_key,
    check_job_fields,
)
from portico_rx.ports.job_creator import CreatedJob, JobCreator

__all__ = ["RecordingJobCreator"]


class RecordingJobCreator(JobCreator):
    """Keeps every created job in ``jobs`` (in order) and honours idempotency keys.

    Args:
        fail_first: the first N ``create_job`` calls raise ``QueueUnavailableError``.
        fail_rate: after those, each call fails with this probability (0 to 1).
        seed: seed for ``fail_rate`` so failures are reproducible.

    Attributes:
        jobs: created jobs, in creation order (duplicates by key are not repeated).
        calls: every ``create_job`` call's keyword arguments, failed ones included.
        failures: how many calls failed on purpose.
    """

    def __init__(self, *, fail_first: int = 0, fail_rate: float = 0.0, seed: int | None = None):
        if fail_first < 0:
            raise ConfigurationError(f"fail_first={fail_first!r}: use 0 or more")
        if not 0 <= fail_rate <= 1:
            raise ConfigurationError(f"fail_rate={fail_rate!r}: use a fraction from 0 to 1")
        self.fail_first = fail_first
        self.fail_rate = fail_rate
        self._random = random.Random(seed)
        self.jobs: list[Job] = []
        self.calls: list[dict[str, Any]] = []
        self.failures = 0
        self._by_id: dict[UUID, Job] = {}
        self._by_key: dict[str, Job] = {}

    def __repr__(self) -> str:
        return f"RecordingJobCreator(jobs={len(self.jobs)}, failures={self.failures})"

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        *,
        scheduled_at: datetime | None = None,
    ) -> Job:
        call: dict[str, Any] = {
            "job_type": job_type,
            "payload": payload,
            "queue_name": queue_name,
            "priority": priority,
            "metadata": metadata,
        }
        if scheduled_at is not None:  # a delayed job (to_job(delay=/run_at=))
            call["scheduled_at"] = scheduled_at
        self.calls.append(call)
        job_type, payload, queue_name, priority, metadata = check_job_fields(
            job_type, payload, queue_name, priority, metadata
        )
        key = check_idempotency_key(None, metadata)
        if len(self.calls) <= self.fail_first or (
            self.fail_rate and self._random.random() < self.fail_rate
        ):
            self.failures += 1
            raise QueueUnavailableError(f"RecordingJobCreator: planned failure #{self.failures}")
        if key is not None and key in self._by_key:
            return self._by_key[key]
        job = Job(
            job_type=job_type,
            queue_name=queue_name,
            payload=payload,
            priority=priority,
            metadata=metadata,
            idempotency_key=key,
            scheduled_at=scheduled_at,
            status=JobStatus.PENDING if scheduled_at is None else JobStatus.SCHEDULED,
        )
        self.jobs.append(job)
        self._by_id[job.id] = job
        if key is not None:
            self._by_key[key] = job
        return job

    async def create_from_request(
        self, request: JobRequest, metadata: dict[str, Any] | None = None
    ) -> CreatedJob:
        """The port's default (the spec's ``create_job`` call, recorded in ``calls``),
        reporting whether the job is new, as a store does (``create_job`` does not await,
        so nothing else is created in between)."""
        before = len(self.jobs)
        job, _ = await JobCreator.create_from_request(self, request, metadata)
        return CreatedJob(job, len(self.jobs) > before)

    async def get_job(self, job_id: UUID) -> Job | None:
        return self._by_id.get(job_id)

    async def find_jobs(
        self,
        *,
        job_type: str | None = None,
        queue_name: str | None = None,
        status: JobStatus | None = None,
        key_prefix: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        found = [
            job
            for job in self.jobs
            if job_matches(
                job, status=status, job_type=job_type, queue_name=queue_name, key_prefix=key_prefix
            )
        ]
        if key_prefix is not None:
            found.sort(key=lambda j: j.idempotency_key or "", reverse=True)
        else:
            found.reverse()
        return found[:limit]

    def of_type(self, job_type: str) -> list[Job]:
        """Created jobs of one job type, in creation order."""
        return [job for job in self.jobs if job.job_type == job_type]
