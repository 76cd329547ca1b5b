"""A cancelled job is never handled by a running JobWorker, on every store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import portico_rx as prx
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job, JobStatus, utcnow
from tests.contract.conftest import JOB_QUEUE_FACTORIES


async def wait_until(predicate: Any, *, rounds: int = 2000) -> None:
    for _ in range(rounds):
        if await predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


@pytest.mark.parametrize("factory", JOB_QUEUE_FACTORIES)
async def test_a_running_worker_never_handles_a_cancelled_job(factory: Any, tmp_path: Path) -> None:
    async with factory(tmp_path) as queue:
        service = prx.JobService(queue)
        handled: list[int] = []

        async def handle(job: Job) -> None:
            handled.append(job.payload["n"])

        soon = utcnow() + timedelta(seconds=1)
        waiting = [
            await service.create_job("cancel.me", {"n": n}, scheduled_at=soon) for n in range(6)
        ]
        pending = await service.create_job("cancel.me", {"n": 6})
        await service.cancel_job(pending.id)  # pending, due now: still never handled
        await service.create_job("cancel.me", {"n": 7})
        worker = JobWorker(queue, {"cancel.me": handle}, concurrency=2, poll_interval=0.05)
        await worker.start()
        try:
            for job in waiting[::2]:  # 0, 2, 4 cancelled while the worker already runs
                cancelled = await service.cancel_job(job.id)
                assert cancelled.status is JobStatus.CANCELLED

            async def odd_ones_done() -> bool:
                done = await queue.list(status=JobStatus.COMPLETED, job_type="cancel.me")
                return len(done) == 4

            await wait_until(odd_ones_done)
            await asyncio.sleep(0.3)  # more polls, well past every scheduled time
        finally:
            await worker.stop()
        assert sorted(handled) == [1, 3, 5, 7]
        cancelled_jobs = await queue.list(status=JobStatus.CANCELLED)
        assert sorted(j.payload["n"] for j in cancelled_jobs) == [0, 2, 4, 6]
        assert all(j.attempts == 0 and j.started_at is None for j in cancelled_jobs)
