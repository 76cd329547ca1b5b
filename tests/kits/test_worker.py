"""JobWorker: jobs created by triggers get processed, retried, failed, bounded, stopped."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import reactivex
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job, JobStatus

NO_WAIT = prx.RetryPolicy(initial_delay=0, max_delay=0, jitter=0)


async def wait_until(predicate: Any, *, rounds: int = 2000) -> None:
    """Poll an async predicate; fail (not hang) if it never holds."""
    for _ in range(rounds):
        if await predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def test_jobs_created_by_a_trigger_are_processed(tmp_path: Path) -> None:
    queue = SQLiteJobQueue(tmp_path / "jobs.db")
    service = prx.JobService(queue)
    signups: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        signups.pipe(prx.to_job("email.welcome", payload=lambda e: {"user": e["id"]})),
        job_creator=service,
        name="welcome",
    )
    seen: list[int] = []

    async def send(job: Job) -> dict[str, Any]:
        seen.append(job.payload["user"])
        return {"sent_to": job.payload["user"]}

    worker = JobWorker(queue, {"email.welcome": send}, concurrency=2, poll_interval=0.05)
    await trigger.start()
    await worker.start()
    for user in range(10):
        signups.on_next({"id": user})

    async def all_done() -> bool:
        return len(await queue.list(status=JobStatus.COMPLETED)) == 10

    await wait_until(all_done)
    await worker.stop()
    await trigger.stop()
    done = await queue.list(status=JobStatus.COMPLETED)
    assert sorted(j.result["sent_to"] for j in done) == list(range(10))
    assert sorted(seen) == list(range(10))
    assert all(j.attempts == 1 for j in done)
    health = worker.get_health()
    assert health.jobs_completed == 10 and health.jobs_failed == 0
    assert not health.is_running and health.state is prx.RunState.STOPPED
    await queue.close()


async def test_failing_handler_is_retried_then_failed() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(queue, max_retries=2)
    calls: list[int] = []

    async def broken(job: Job) -> None:
        calls.append(job.attempts)
        raise ConnectionError("smtp down")

    job = await service.create_job("email.send", {"to": "a@b"})
    worker = JobWorker(queue, {"email.send": broken}, retry=NO_WAIT)
    assert await worker.run_until_idle() == 3
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.attempts == 3 and calls == [1, 2, 3]
    assert stored.error == "ConnectionError: smtp down"
    health = worker.get_health()
    assert (health.retries_scheduled, health.jobs_failed, health.errors_count) == (2, 1, 3)


async def test_handler_that_recovers_completes_on_a_later_attempt() -> None:
    queue = MemoryJobQueue()
    job = await prx.JobService(queue).create_job("flaky.op", {})

    async def flaky(job: Job) -> str:
        if job.attempts < 3:
            raise RuntimeError(f"attempt {job.attempts} failed")
        return "ok"

    await JobWorker(queue, {"flaky.op": flaky}, retry=NO_WAIT).run_until_idle()
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED
    assert stored.result == "ok" and stored.attempts == 3


async def test_retry_waits_for_the_backoff() -> None:
    queue = MemoryJobQueue()
    job = await prx.JobService(queue).create_job("slow.retry", {})

    async def broken(job: Job) -> None:
        raise ValueError("nope")

    worker = JobWorker(queue, {"slow.retry": broken}, retry=prx.RetryPolicy(initial_delay=3600))
    await worker.run_until_idle()
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.SCHEDULED
    assert stored.scheduled_at is not None and stored.scheduled_at > stored.created_at
    assert await queue.dequeue(["default"]) is None  # not due for an hour


async def test_unknown_job_type_fails_at_once_with_a_clear_error() -> None:
    queue = MemoryJobQueue()
    job = await prx.JobService(queue).create_job("report.build", {})

    async def noop(job: Job) -> None:
        return None

    await JobWorker(queue, {"email.send": noop}).run_until_idle()
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED and stored.attempts == 1
    assert stored.error is not None
    assert "'report.build'" in stored.error and "email.send" in stored.error


async def test_concurrency_bound_is_respected() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(queue)
    for i in range(20):
        await service.create_job("bounded.job", {"i": i})
    running = 0
    peak = 0

    async def handler(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)
        running -= 1

    worker = JobWorker(queue, {"bounded.job": handler}, concurrency=3, poll_interval=0.01)
    await worker.start()

    async def all_done() -> bool:
        return len(await queue.list(status=JobStatus.COMPLETED)) == 20

    await wait_until(all_done)
    await worker.stop()
    assert peak == 3


async def test_stop_waits_for_running_jobs() -> None:
    queue = MemoryJobQueue()
    job = await prx.JobService(queue).create_job("long.job", {})
    started = asyncio.Event()
    release = asyncio.Event()

    async def long_job(job: Job) -> str:
        started.set()
        await release.wait()
        return "finished"

    worker = JobWorker(queue, {"long.job": long_job}, poll_interval=0.01)
    await worker.start()
    await started.wait()
    stopping = asyncio.ensure_future(worker.stop())
    await asyncio.sleep(0.01)
    assert not stopping.done() and worker.state is prx.RunState.STOPPING
    release.set()
    await stopping
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED


async def test_stop_timeout_reschedules_a_stuck_job() -> None:
    queue = MemoryJobQueue()
    job = await prx.JobService(queue).create_job("stuck.job", {})
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = JobWorker(queue, {"stuck.job": stuck}, stop_timeout=0.01, poll_interval=0.01)
    await worker.start()
    await started.wait()
    await worker.stop()
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.SCHEDULED
    again = await queue.dequeue(["default"])
    assert again is not None and again.id == job.id


async def test_sync_handlers_run_in_a_thread_and_job_handlers_are_called() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(queue)
    threads: list[str] = []

    def blocking(job: Job) -> int:
        threads.append(threading.current_thread().name)
        return int(job.payload["n"]) * 2

    class Doubler(prx.JobHandler):
        async def handle(self, job: Job) -> int:
            return int(job.payload["n"]) * 3

    a = await service.create_job("sync.job", {"n": 2})
    b = await service.create_job("class.job", {"n": 2})
    await JobWorker(queue, {"sync.job": blocking, "class.job": Doubler()}).run_until_idle()
    assert threads and threads[0] != threading.main_thread().name
    assert [(await queue.get(x.id)).result for x in (a, b)] == [4, 6]  # type: ignore[union-attr]


async def test_result_that_is_not_json_fails_the_job_clearly(tmp_path: Path) -> None:
    async with SQLiteJobQueue(tmp_path / "q.db") as queue:
        job = await prx.JobService(queue).create_job("odd.result", {})

        async def odd(job: Job) -> object:
            return {1, 2}

        await JobWorker(queue, {"odd.result": odd}).run_until_idle()
        stored = await queue.get(job.id)
        assert stored is not None and stored.status is JobStatus.FAILED
        assert stored.error is not None and "result" in stored.error


async def test_job_timeout_fails_the_attempt() -> None:
    queue = MemoryJobQueue()
    job = await prx.JobService(queue, max_retries=0).create_job("sleepy.job", {})

    async def sleepy(job: Job) -> None:
        await asyncio.sleep(10)

    await JobWorker(queue, {"sleepy.job": sleepy}, job_timeout=0.01).run_until_idle()
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.error is not None and "longer than 0.01s" in stored.error


async def test_second_start_warns_and_stop_is_idempotent() -> None:
    worker = JobWorker(MemoryJobQueue(), {}, poll_interval=0.01)
    await worker.start()
    with capture_logs() as logs:
        await worker.start()
    assert [e["event"] for e in logs] == ["worker_already_running"]
    assert worker.is_running and worker.get_health().healthy
    await worker.stop()
    await worker.stop()
    assert not worker.is_running


async def test_worker_start_fails_on_an_unusable_queue(tmp_path: Path) -> None:
    worker = JobWorker(SQLiteJobQueue(tmp_path / "missing-dir" / "q.db"), {})
    with pytest.raises(prx.QueueUnavailableError, match="missing-dir"):
        await worker.start()
    assert not worker.is_running


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"concurrency": 0}, "concurrency"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"job_timeout": -1}, "job_timeout"),
        ({"queue_names": []}, "queue_names"),
        ({"handlers": {"a.b": 42}}, "handlers"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"handlers": {}, **kwargs}
    handlers = arguments.pop("handlers")
    with pytest.raises(prx.ConfigurationError, match=match):
        JobWorker(MemoryJobQueue(), handlers, **arguments)
