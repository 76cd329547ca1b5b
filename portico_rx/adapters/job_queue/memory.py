"""In-memory JobQueue: for tests, notebooks and benchmarks. Lost when the process ends."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from portico_rx.adapters.job_queue.base import (
    DUE_STATUSES,
    check_list_args,
    check_queue_names,
    job_matches,
)
from portico_rx.errors import JobNotFoundError
from portico_rx.models import Job, JobStatus, utcnow
from portico_rx.ports.job_queue import JobQueue

__all__ = ["MemoryJobQueue"]


class MemoryJobQueue(JobQueue):
    """A JobQueue held in a dict and one priority heap per queue name.

    Same contract as the durable adapters (idempotent keys, priority then age, due
    times), but only for one process.
    """

    def __init__(self) -> None:
        self._jobs: dict[UUID, Job] = {}
        self._by_key: dict[str, UUID] = {}
        self._heaps: dict[str, list[tuple[int, int, UUID]]] = {}
        self._seq = itertools.count()
        self._new_work = asyncio.Event()

    def __repr__(self) -> str:
        return f"MemoryJobQueue(jobs={len(self._jobs)})"

    def _push(self, job: Job) -> None:
        heap = self._heaps.setdefault(job.queue_name, [])
        heapq.heappush(heap, (-job.priority, next(self._seq), job.id))
        self._new_work.set()

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        if job.idempotency_key is not None:
            existing = self._by_key.get(job.idempotency_key)
            if existing is not None:
                return self._jobs[existing], False
            self._by_key[job.idempotency_key] = job.id
        self._jobs[job.id] = job
        if job.status in DUE_STATUSES:
            self._push(job)
        return job, True

    async def dequeue(
        self, queue_names: Sequence[str], *, now: datetime | None = None
    ) -> Job | None:
        now = now or utcnow()
        best: tuple[tuple[int, int, UUID], str] | None = None
        for name in check_queue_names(queue_names):
            heap = self._heaps.get(name)
            if not heap:
                continue
            later: list[tuple[int, int, UUID]] = []
            while heap:
                entry = heap[0]
                job = self._jobs.get(entry[2])
                if job is None or job.status not in DUE_STATUSES:
                    heapq.heappop(heap)
                    continue
                if job.scheduled_at is not None and job.scheduled_at > now:
                    later.append(heapq.heappop(heap))
                    continue
                if best is None or entry < best[0]:
                    best = (entry, name)
                break
            for entry in later:
                heapq.heappush(heap, entry)
        if best is None:
            self._new_work.clear()
            return None
        heap = self._heaps[best[1]]
        if heap[0] == best[0]:
            heapq.heappop(heap)
        else:  # not-yet-due jobs were pushed back above it
            heap.remove(best[0])
            heapq.heapify(heap)
        job = self._jobs[best[0][2]].model_copy(
            update={
                "status": JobStatus.RUNNING,
                "attempts": self._jobs[best[0][2]].attempts + 1,
                "started_at": utcnow(),
            }
        )
        self._jobs[job.id] = job
        return job

    def _require(self, job_id: UUID) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id}")
        return job

    async def complete(self, job_id: UUID, result: Any = None) -> Job:
        job = self._require(job_id).model_copy(
            update={
                "status": JobStatus.COMPLETED,
                "result": result,
                "completed_at": utcnow(),
                "error": None,
            }
        )
        self._jobs[job_id] = job
        return job

    async def fail(self, job_id: UUID, error: str, *, retry_at: datetime | None = None) -> Job:
        current = self._require(job_id)
        if retry_at is None:
            job = current.model_copy(
                update={"status": JobStatus.FAILED, "error": error, "completed_at": utcnow()}
            )
            self._jobs[job_id] = job
        else:
            job = current.model_copy(
                update={"status": JobStatus.SCHEDULED, "error": error, "scheduled_at": retry_at}
            )
            self._jobs[job_id] = job
            self._push(job)
        return job

    async def get(self, job_id: UUID) -> Job | None:
        return self._jobs.get(job_id)

    async def get_by_key(self, idempotency_key: str) -> Job | None:
        job_id = self._by_key.get(idempotency_key)
        return self._jobs[job_id] if job_id is not None else None

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
        check_list_args(limit, order_by)
        jobs = [
            job
            for job in self._jobs.values()
            if job_matches(
                job, status=status, job_type=job_type, queue_name=queue_name, key_prefix=key_prefix
            )
        ]
        if order_by == "idempotency_key":
            jobs.sort(key=lambda j: j.idempotency_key or "", reverse=True)
        else:
            jobs.reverse()  # dicts keep insertion order: newest last
            jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    async def wait_for_jobs(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_work.wait(), timeout)
