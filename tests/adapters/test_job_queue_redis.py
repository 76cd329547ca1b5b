"""RedisJobQueue beyond the shared contract: outages, visibility timeout, wake-ups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico_rx.adapters.job_queue.redis import RedisJobQueue
from portico_rx.adapters.job_queue.server_link import redact_url
from portico_rx.errors import ConfigurationError, QueueUnavailableError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobStatus
from portico_rx.pipeline.retry import RetryPolicy

from .tcp_proxy import TcpProxy

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A fresh key prefix, deleted after the test."""
    name = f"scaling-{uuid.uuid4().hex[:12]}"
    yield name
    cleaner = RedisJobQueue(URL, prefix=name)
    await cleaner.drop()
    await cleaner.close()


@pytest.mark.redis
async def test_a_dead_workers_job_comes_back_after_the_visibility_timeout(prefix: str) -> None:
    crashed = RedisJobQueue(URL, prefix=prefix, visibility_timeout=0.3)
    survivor = RedisJobQueue(URL, prefix=prefix, visibility_timeout=0.3)
    try:
        stored, _ = await crashed.enqueue(Job(job_type="lease.me", priority=3))
        claimed = await crashed.dequeue(["default"])
        assert claimed is not None and claimed.id == stored.id
        await crashed.close()  # the worker dies without complete/fail
        assert await survivor.dequeue(["default"]) is None
        await asyncio.sleep(0.4)
        again = await survivor.dequeue(["default"])
        assert again is not None and again.id == stored.id and again.attempts == 2
        assert (await survivor.complete(again.id, {"ok": 1})).result == {"ok": 1}
        await asyncio.sleep(0.4)
        assert await survivor.dequeue(["default"]) is None
    finally:
        await survivor.close()


@pytest.mark.redis
async def test_separate_clients_claim_each_job_exactly_once(prefix: str) -> None:
    queues = [RedisJobQueue(URL, prefix=prefix) for _ in range(4)]
    for index in range(150):
        await queues[index % 4].enqueue(Job(job_type="n", payload={"n": index}))

    async def work(queue: RedisJobQueue) -> list[int]:
        done: list[int] = []
        while (job := await queue.dequeue(["default"])) is not None:
            await queue.complete(job.id)
            done.append(job.payload["n"])
        return done

    try:
        results = await asyncio.gather(*(work(queue) for queue in queues for _ in range(2)))
        assert sorted(n for result in results for n in result) == list(range(150))
        completed = await queues[0].list(status=JobStatus.COMPLETED, limit=500)
        assert len(completed) == 150 and all(job.attempts == 1 for job in completed)
    finally:
        await asyncio.gather(*(queue.close() for queue in queues))


@pytest.mark.redis
async def test_concurrent_enqueues_of_one_key_from_many_clients_store_one_job(
    prefix: str,
) -> None:
    queues = [RedisJobQueue(URL, prefix=prefix) for _ in range(5)]
    try:
        results = await asyncio.gather(
            *(
                JobService(queue).create_job("tick", {"i": i}, idempotency_key="cron:09:00")
                for i, queue in enumerate(queues * 4)
            )
        )
        assert len({job.id for job in results}) == 1
        assert len(await queues[0].list(limit=100)) == 1
    finally:
        await asyncio.gather(*(queue.close() for queue in queues))


@pytest.mark.redis
async def test_publish_wakes_an_idle_worker(prefix: str) -> None:
    producer = RedisJobQueue(URL, prefix=prefix)
    worker = RedisJobQueue(URL, prefix=prefix)
    try:
        await worker.wait_for_jobs(0.01)  # subscribe
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = asyncio.create_task(worker.wait_for_jobs(60))
        await asyncio.sleep(0.1)
        await producer.enqueue(Job(job_type="wake.up"))
        await waiting
        assert loop.time() - started < 30  # woke by PUBLISH, not by the 60 s timeout
    finally:
        await producer.close()
        await worker.close()


@pytest.mark.redis
async def test_an_outage_while_running_is_retried_and_shows_in_health(prefix: str) -> None:
    proxy = TcpProxy(6379)
    await proxy.start()
    queue = RedisJobQueue(
        f"redis://127.0.0.1:{proxy.port}/0",
        prefix=prefix,
        connect_timeout=1,
        retry=RetryPolicy(max_attempts=40, initial_delay=0.05, max_delay=0.2, seed=1),
    )
    try:
        await queue.open()
        service = JobService(queue)
        await service.create_job("before.outage", {})
        await proxy.cut()
        creating = asyncio.create_task(
            service.create_job("during.outage", {}, idempotency_key="outage-1")
        )
        while queue.health()["available"]:
            await asyncio.sleep(0.02)
        assert queue.health()["last_error"]
        await proxy.restore()
        job = await creating
        assert queue.health()["available"] is True
        assert (await service.create_job("x", {}, idempotency_key="outage-1")).id == job.id
        assert len(await queue.list()) == 2
    finally:
        await queue.close()
        await proxy.close()


async def test_unreachable_server_names_the_url_without_the_password() -> None:
    queue = RedisJobQueue("redis://:t0p-secret@127.0.0.1:1/0", connect_timeout=1)
    with pytest.raises(QueueUnavailableError) as error:
        await queue.open()
    assert "redis://:***@127.0.0.1:1/0" in str(error.value)
    assert "t0p-secret" not in str(error.value) and "t0p-secret" not in repr(queue)
    assert queue.health()["available"] is False


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="url='http://x'"):
        RedisJobQueue("http://x")
    with pytest.raises(ConfigurationError, match="prefix='a b'"):
        RedisJobQueue(URL, prefix="a b")
    with pytest.raises(ConfigurationError, match="visibility_timeout=-1"):
        RedisJobQueue(URL, visibility_timeout=-1)


@given(
    user=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8),
    password=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=4),
    port=st.integers(1, 65535),
)
def test_redact_url_never_leaks_the_password(user: str, password: str, port: int) -> None:
    for url in (
        f"postgresql://{user}:{password}@db.example:{port}/jobs",
        f"redis://:{password}@cache:{port}/0",
        f"host=db port={port} user={user} password={password} dbname=jobs",
    ):
        shown = redact_url(url)
        assert "***" in shown
        assert f":{password}@" not in shown and f"password={password}" not in shown


@pytest.mark.redis
async def test_key_prefix_listing_newest_first_is_not_lexical(prefix: str) -> None:
    queue = RedisJobQueue(URL, prefix=prefix)
    try:
        for key in ("p:z", "p:a", "q:b"):
            await queue.enqueue(Job(job_type="x", idempotency_key=key))
        newest = await queue.list(key_prefix="p:", limit=1)
        assert [job.idempotency_key for job in newest] == ["p:a"]
        by_key = await queue.list(key_prefix="p:", order_by="idempotency_key")
        assert [job.idempotency_key for job in by_key] == ["p:z", "p:a"]
    finally:
        await queue.close()
