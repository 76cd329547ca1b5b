"""Jobs nobody would run: a worker started without ``queue_names`` consumes every queue,
so the spec's FileTrigger (default queue ``file_processing``) and a default worker
process every file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.file_trigger import FileTrigger
from portico_rx.kits.job.job_service import JobService
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job, JobStatus


async def test_file_trigger_default_queue_and_a_default_worker_process_the_file(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    queue = SQLiteJobQueue(tmp_path / "jobs.db")
    handled: list[str] = []

    async def process(job: Job) -> dict[str, str]:
        handled.append(job.payload["file_path"])
        return {"done": job.payload["file_path"]}

    trigger = FileTrigger(JobService(queue), inbox, settle=0.02)  # queue "file_processing"
    worker = JobWorker(queue, {"file.process": process}, poll_interval=0.05)
    await trigger.start()
    await worker.start()
    try:
        (inbox / "report.csv").write_text("a,b\n")
        deadline = time.monotonic() + 15
        while not handled and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await trigger.stop()
        await worker.stop()
    [job] = await queue.list()
    await queue.close()
    assert job.queue_name == "file_processing"
    assert job.status is JobStatus.COMPLETED
    assert handled == [str((inbox / "report.csv").resolve())]
    assert job.result == {"done": handled[0]}


async def test_named_queues_still_limit_the_worker(tmp_path: Path) -> None:
    async with SQLiteJobQueue(tmp_path / "jobs.db") as queue:
        service = JobService(queue)
        await service.create_job("t", {"q": "a"}, queue_name="a")
        await service.create_job("t", {"q": "b"}, queue_name="b")

        async def handle(job: Job) -> str:
            return str(job.payload["q"])

        only_a = JobWorker(queue, {"t": handle}, queue_names=["a"])
        assert await only_a.run_until_idle() == 1
        every = JobWorker(queue, {"t": handle})
        assert await every.run_until_idle() == 1
        assert {job.queue_name: job.status for job in await queue.list()} == {
            "a": JobStatus.COMPLETED,
            "b": JobStatus.COMPLETED,
        }
