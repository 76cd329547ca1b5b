"""CeleryJobCreator against a real Celery worker process on the local Redis broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from portico_rx.adapters.job_creator.celery_bridge import (
    CeleryJobCreator,
    celery_state_to_status,
)
from portico_rx.errors import ConfigurationError, InvalidJobError, QueueUnavailableError
from portico_rx.models import Job, JobStatus

HERE = Path(__file__).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def client_app() -> Celery:
    app = Celery("portico_celery_client", broker=REDIS_URL, backend=REDIS_URL)
    app.conf.update(task_track_started=True, result_extended=True)
    return app


@pytest.fixture(scope="module")
def worker_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``celery worker`` process consuming a queue of its own."""
    log = (tmp_path_factory.mktemp("celery") / "worker.log").open("wb")
    queue = f"portico-celery-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "PYTHONPATH": str(HERE), "PORTICO_CELERY_BROKER": REDIS_URL}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "-Q",
            queue,
            "-P",
            "solo",
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=HERE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield queue
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{queue}*"):
            client.delete(key)
        client.close()


async def wait_until_done(creator: CeleryJobCreator, job: Job, timeout: float = 60) -> Job:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await creator.get_job(job.id)
        if current is not None and current.status in TERMINAL:
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job.id} did not finish: {current}")
        await asyncio.sleep(0.1)


@pytest.mark.redis
async def test_create_job_runs_the_task_and_get_job_reads_its_result(worker_queue: str) -> None:
    """The task id is the job id, payload arrives as kwargs, the result comes back."""
    creator = CeleryJobCreator(client_app(), task_map={"math.add": "portico_test.add"})
    job = await creator.create_job("math.add", {"a": 2, "b": 40}, queue_name=worker_queue)
    assert job.status is JobStatus.PENDING and job.queue_name == worker_queue
    done = await wait_until_done(creator, job)
    assert done.id == job.id
    assert done.status is JobStatus.COMPLETED
    assert done.result == 42
    assert done.job_type == "math.add" and done.payload == {"a": 2, "b": 40}
    assert client_app().AsyncResult(str(job.id)).get(timeout=10) == 42


@pytest.mark.redis
async def test_a_repeated_key_sends_one_task_even_from_two_processes(worker_queue: str) -> None:
    """Two creators (as two replicas would) racing on one key: one task, one run."""
    counter = f"portico-celery-runs-{uuid.uuid4().hex}"
    key = f"tick:{uuid.uuid4().hex}"
    creators = [CeleryJobCreator(client_app(), task_name="portico_test.record") for _ in range(2)]
    jobs = await asyncio.gather(
        *(
            creator.create_job(
                "record.run",
                {"counter": counter, "value": key},
                queue_name=worker_queue,
                metadata={"idempotency_key": key},
            )
            for creator in creators
            for _ in range(5)
        )
    )
    assert len({job.id for job in jobs}) == 1
    assert jobs[0].id == CeleryJobCreator.task_id_for(key)
    done = await wait_until_done(creators[0], jobs[0])
    assert done.status is JobStatus.COMPLETED
    # a later create with the same key returns the finished job, sends nothing
    again = await creators[1].create_job(
        "record.run",
        {"counter": counter, "value": "other"},
        queue_name=worker_queue,
        idempotency_key=key,
    )
    assert again.id == jobs[0].id and again.status is JobStatus.COMPLETED
    # a different key is a different task, and it runs after the first
    other = await creators[1].create_job(
        "record.run",
        {"counter": counter, "value": "second"},
        queue_name=worker_queue,
        idempotency_key=key + ":2",
    )
    await wait_until_done(creators[1], other)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert client.lrange(counter, 0, -1) == [key, "second"]
    finally:
        client.delete(counter)
        client.close()


@pytest.mark.redis
async def test_a_failing_task_reads_back_as_failed_with_its_error(worker_queue: str) -> None:
    creator = CeleryJobCreator(client_app(), task_name="portico_test.boom")
    job = await creator.create_job("anything", {"reason": "disk full"}, queue_name=worker_queue)
    done = await wait_until_done(creator, job)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and "ValueError" in done.error and "disk full" in done.error


@pytest.mark.redis
async def test_a_task_in_progress_reads_back_as_running(worker_queue: str) -> None:
    """With task_track_started, a task the worker is executing reads back as RUNNING."""
    creator = CeleryJobCreator(client_app(), task_name="portico_test.slow")
    job = await creator.create_job("sleep", {"seconds": 1.5}, queue_name=worker_queue)
    seen: list[JobStatus] = []
    deadline = asyncio.get_running_loop().time() + 60
    while not seen or seen[-1] not in TERMINAL:
        current = await creator.get_job(job.id)
        assert current is not None
        if not seen or seen[-1] != current.status:
            seen.append(current.status)
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.05)
    assert JobStatus.RUNNING in seen and seen[-1] is JobStatus.COMPLETED, seen
    assert seen.index(JobStatus.RUNNING) < seen.index(JobStatus.COMPLETED)


@pytest.mark.redis
async def test_get_job_of_an_unknown_id_is_none() -> None:
    creator = CeleryJobCreator(client_app(), task_name="portico_test.add")
    assert await creator.get_job(uuid.uuid4()) is None


@pytest.mark.redis
async def test_another_process_reads_a_pending_job_from_the_claim() -> None:
    """A job sent with a key is readable by any creator sharing the Redis backend."""
    queue = f"portico-celery-nobody-{uuid.uuid4().hex[:8]}"  # no worker: stays pending
    key = f"pending:{uuid.uuid4().hex}"
    sender = CeleryJobCreator(client_app(), task_name="portico_test.add")
    job = await sender.create_job(
        "math.add", {"a": 1, "b": 1}, queue_name=queue, idempotency_key=key, priority=50
    )
    reader = CeleryJobCreator(client_app(), task_name="portico_test.add")
    seen = await reader.get_job(job.id)
    assert seen is not None
    assert (seen.status, seen.job_type, seen.payload, seen.priority, seen.idempotency_key) == (
        JobStatus.PENDING,
        "math.add",
        {"a": 1, "b": 1},
        50,
        key,
    )
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{queue}*"):
        client.delete(name)
    client.delete(f"portico-celery-job:{job.id}")
    client.close()


def test_bad_configuration_names_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="task_name=None and task_map empty"):
        CeleryJobCreator(client_app())
    with pytest.raises(ConfigurationError, match="task_map\\['x'\\]"):
        CeleryJobCreator(client_app(), task_map={"x": ""})
    with pytest.raises(ConfigurationError, match=r"celery\.Celery"):
        CeleryJobCreator(object(), task_name="t")


async def test_unmapped_job_type_and_bad_fields_are_rejected_before_sending() -> None:
    creator = CeleryJobCreator(client_app(), task_map={"known": "portico_test.add"})
    with pytest.raises(InvalidJobError, match="task_map"):
        await creator.create_job("unknown", {})
    with pytest.raises(InvalidJobError, match="priority"):
        await creator.create_job("known", {}, priority=1000)
    with pytest.raises(InvalidJobError, match="idempotency_key"):
        await creator.create_job("known", {}, idempotency_key="")


async def test_unreachable_broker_raises_queue_unavailable() -> None:
    app = Celery("portico_down", broker="redis://127.0.0.1:1/0")
    app.conf.update(
        broker_connection_retry=False,
        broker_connection_max_retries=0,
        task_publish_retry=False,
        redis_socket_connect_timeout=1,
        broker_transport_options={"max_retries": 0},
    )
    creator = CeleryJobCreator(app, task_name="portico_test.add")
    with pytest.raises(QueueUnavailableError, match=r"portico_test\.add"):
        await creator.create_job("math.add", {"a": 1, "b": 2}, idempotency_key="k")
    # the failed send released its claim: the key is free for a retry
    assert await creator.get_job(CeleryJobCreator.task_id_for("k")) is None


def test_priority_maps_to_celery_order_of_the_transport() -> None:
    amqp = CeleryJobCreator(Celery("p", broker="amqp://guest@127.0.0.1//"), task_name="t")
    redis_creator = CeleryJobCreator(Celery("p", broker=REDIS_URL), task_name="t")
    assert [amqp.celery_priority(p) for p in (-100, 0, 100)] == [0, 4, 9]  # higher first
    assert [redis_creator.celery_priority(p) for p in (-100, 0, 100)] == [9, 5, 0]  # lower first
    assert celery_state_to_status("STARTED") is JobStatus.RUNNING
    assert celery_state_to_status("REVOKED") is JobStatus.CANCELLED
