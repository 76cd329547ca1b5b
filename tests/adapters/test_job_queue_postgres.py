"""PostgresJobQueue beyond the shared contract: schema versions, outages, leases, NOTIFY."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from portico_rx.adapters.job_queue.postgres import SCHEMA_VERSION, PostgresJobQueue
from portico_rx.errors import ConfigurationError, QueueUnavailableError, SchemaVersionError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobStatus
from portico_rx.pipeline.retry import RetryPolicy

from .tcp_proxy import TcpProxy

DSN = "postgresql://postgres@127.0.0.1:5432/test"

pytestmark = pytest.mark.postgres


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh schema name, dropped after the test."""
    name = f"scaling_{uuid.uuid4().hex[:12]}"
    yield name
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


async def test_open_creates_a_versioned_schema_once_even_when_replicas_race(schema: str) -> None:
    queues = [PostgresJobQueue(DSN, schema=schema, pool_max=2) for _ in range(4)]
    await asyncio.gather(*(queue.open() for queue in queues))
    try:
        connection = await asyncpg.connect(DSN)
        try:
            version = await connection.fetchval(
                f'SELECT version FROM "{schema}".portico_schema_version WHERE table_name = $1',
                "jobs",
            )
        finally:
            await connection.close()
        assert version == SCHEMA_VERSION
        stored, created = await queues[0].enqueue(Job(job_type="x", idempotency_key="k"))
        assert created and (await queues[3].get_by_key("k")) == stored
    finally:
        await asyncio.gather(*(queue.close() for queue in queues))


async def test_a_schema_from_a_newer_version_is_refused_and_left_alone(schema: str) -> None:
    async with PostgresJobQueue(DSN, schema=schema) as queue:
        await queue.enqueue(Job(job_type="keep.me", idempotency_key="precious"))
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(
            f'UPDATE "{schema}".portico_schema_version SET version = $1', SCHEMA_VERSION + 1
        )
        newer = PostgresJobQueue(DSN, schema=schema)
        with pytest.raises(SchemaVersionError) as error:
            await newer.open()
        message = str(error.value)
        assert f"{schema}.jobs" in message and str(SCHEMA_VERSION + 1) in message
        assert "upgrade portico_rx" in message
        rows = await connection.fetch(f'SELECT job_type FROM "{schema}".jobs')
        assert [row["job_type"] for row in rows] == ["keep.me"]
    finally:
        await connection.close()


async def test_unreachable_server_names_the_url_without_the_password() -> None:
    queue = PostgresJobQueue("postgresql://app:s3cret-pw@127.0.0.1:1/jobs", connect_timeout=1)
    with pytest.raises(QueueUnavailableError) as error:
        await queue.open()
    message = str(error.value)
    assert "postgresql://app:***@127.0.0.1:1/jobs" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(queue)
    assert queue.health()["available"] is False
    assert isinstance(error.value, ConnectionError)


async def test_a_wrong_database_is_a_clear_error_at_open() -> None:
    queue = PostgresJobQueue(f"postgresql://postgres@127.0.0.1:5432/nope_{uuid.uuid4().hex[:6]}")
    with pytest.raises(QueueUnavailableError, match="nope_"):
        await queue.open()


async def proxied_queue(schema: str) -> tuple[TcpProxy, PostgresJobQueue]:
    """An open queue that reaches PostgreSQL through a proxy the test can cut."""
    proxy = TcpProxy(5432)
    await proxy.start()
    queue = PostgresJobQueue(
        f"postgresql://postgres:pw@127.0.0.1:{proxy.port}/test",
        schema=schema,
        pool_min=0,
        connect_timeout=2,
        retry=RetryPolicy(max_attempts=40, initial_delay=0.05, max_delay=0.2, seed=1),
    )
    await queue.open()
    return proxy, queue


async def test_an_outage_while_running_is_retried_with_backoff_and_shows_in_health(
    schema: str,
) -> None:
    proxy, queue = await proxied_queue(schema)
    try:
        service = JobService(queue)
        await service.create_job("before.outage", {})
        await proxy.cut()
        creating = asyncio.create_task(
            service.create_job("during.outage", {}, idempotency_key="outage-1")
        )
        while queue.health()["available"]:
            await asyncio.sleep(0.02)
        health = queue.health()
        assert health["last_error"] and "pw" not in health["url"]
        await proxy.restore()
        job = await creating
        assert job.job_type == "during.outage"
        assert queue.health()["available"] is True
        again = await service.create_job("during.outage", {}, idempotency_key="outage-1")
        assert again.id == job.id
        assert len(await queue.list()) == 2
    finally:
        await queue.close()
        await proxy.close()


async def test_a_dead_workers_job_comes_back_after_its_lease(schema: str) -> None:
    crashed = PostgresJobQueue(DSN, schema=schema, visibility_timeout=0.3)
    survivor = PostgresJobQueue(DSN, schema=schema, visibility_timeout=0.3)
    await crashed.open()
    await survivor.open()
    try:
        stored, _ = await crashed.enqueue(Job(job_type="lease.me"))
        claimed = await crashed.dequeue(["default"])
        assert claimed is not None and claimed.id == stored.id
        await crashed.close()  # the worker dies without complete/fail
        assert await survivor.dequeue(["default"]) is None  # still leased
        await asyncio.sleep(0.4)
        again = await survivor.dequeue(["default"])
        assert again is not None and again.id == stored.id and again.attempts == 2
        done = await survivor.complete(again.id, "ok")
        assert done.status is JobStatus.COMPLETED
        await asyncio.sleep(0.4)
        assert await survivor.dequeue(["default"]) is None  # completed jobs never return
    finally:
        await survivor.close()


async def test_notify_wakes_an_idle_worker_in_another_pool(schema: str) -> None:
    producer = PostgresJobQueue(DSN, schema=schema)
    worker = PostgresJobQueue(DSN, schema=schema)
    await producer.open()
    await worker.open()
    try:
        await worker.wait_for_jobs(0.01)  # connect the listener
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = asyncio.create_task(worker.wait_for_jobs(60))
        await asyncio.sleep(0.1)
        await producer.enqueue(Job(job_type="wake.up"))
        await waiting
        assert loop.time() - started < 30  # woke by NOTIFY, not by the 60 s timeout
        claimed = await worker.dequeue(["default"])
        assert claimed is not None and claimed.job_type == "wake.up"
    finally:
        await producer.close()
        await worker.close()


async def test_workers_in_separate_pools_claim_each_job_exactly_once(schema: str) -> None:
    queues = [PostgresJobQueue(DSN, schema=schema, pool_max=3) for _ in range(4)]
    await asyncio.gather(*(queue.open() for queue in queues))
    try:
        for index in range(120):
            await queues[index % 4].enqueue(Job(job_type="n", payload={"n": index}))

        async def work(queue: PostgresJobQueue) -> list[int]:
            done: list[int] = []
            while (job := await queue.dequeue(["default"])) is not None:
                await queue.complete(job.id)
                done.append(job.payload["n"])
            return done

        results = await asyncio.gather(*(work(queue) for queue in queues for _ in range(2)))
        claimed = [n for result in results for n in result]
        assert sorted(claimed) == list(range(120))
        completed = await queues[0].list(status=JobStatus.COMPLETED, limit=500)
        assert len(completed) == 120 and all(job.attempts == 1 for job in completed)
    finally:
        await asyncio.gather(*(queue.close() for queue in queues))


def test_bad_arguments_name_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="schema='Bad Name'"):
        PostgresJobQueue(DSN, schema="Bad Name")
    with pytest.raises(ConfigurationError, match="table='jobs;drop'"):
        PostgresJobQueue(DSN, table="jobs;drop")
    with pytest.raises(ConfigurationError, match="pool_min=5, pool_max=2"):
        PostgresJobQueue(DSN, pool_min=5, pool_max=2)
    with pytest.raises(ConfigurationError, match="visibility_timeout=0"):
        PostgresJobQueue(DSN, visibility_timeout=0)
    with pytest.raises(ConfigurationError, match="dsn=''"):
        PostgresJobQueue("")


async def test_a_triggers_health_shows_its_job_store_and_an_outage_makes_it_unhealthy(
    schema: str,
) -> None:
    from fastapi import FastAPI
    from httpx import ASGITransport, AsyncClient

    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
    from portico_rx.web import create_app

    proxy, queue = await proxied_queue(schema)
    service = JobService(queue)
    trigger = ScheduleTrigger(service, [], name="nightly")
    app: FastAPI = create_app([trigger])
    try:
        await trigger.start()
        health = trigger.get_health()
        assert health.healthy and health.details["job_store"]["available"] is True
        assert "pw" not in health.details["job_store"]["url"]
        await proxy.cut()
        creating = asyncio.create_task(service.create_job("during.outage", {}))
        while queue.health()["available"]:
            await asyncio.sleep(0.02)
        down = trigger.get_health()
        assert down.is_running and not down.healthy
        assert down.details["job_store"]["available"] is False
        assert down.details["job_store"]["last_error"]
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
            answer = await client.get("/health/triggers")
        assert answer.status_code == 503
        assert answer.json()["triggers"]["nightly"]["details"]["job_store"]["available"] is False
        await proxy.restore()
        await creating
        assert trigger.get_health().healthy
    finally:
        await trigger.stop()
        await queue.close()
        await proxy.close()


async def test_a_version_1_schema_gains_the_dead_letter_and_schedule_tables_and_keeps_its_jobs(
    schema: str,
) -> None:
    from portico_rx.ports.dead_letter_store import DeadLetterRecord

    async with PostgresJobQueue(DSN, schema=schema) as queue:
        await queue.enqueue(Job(job_type="keep.me", idempotency_key="precious"))
    connection = await asyncpg.connect(DSN)
    try:  # as version 1 left it: no dead letter table, no schedule table
        await connection.execute(f'DROP TABLE "{schema}".jobs_dead_letters')
        await connection.execute(f'DROP TABLE "{schema}".jobs_schedules')
        await connection.execute(f'UPDATE "{schema}".portico_schema_version SET version = 1')
    finally:
        await connection.close()
    async with PostgresJobQueue(DSN, schema=schema) as migrated:
        assert (await migrated.get_by_key("precious")) is not None
        record = DeadLetterRecord(
            trigger="t", stage="create_job", error="boom", at=datetime.now(UTC)
        )
        await migrated.add_dead_letter(record)
        assert await migrated.list_dead_letters() == [record]
        await migrated.save_schedule("t", "nightly", {"cron": "0 3 * * *"})
        assert [s.name for s in await migrated.list_schedules("t")] == ["nightly"]
    connection = await asyncpg.connect(DSN)
    try:
        version = await connection.fetchval(
            f'SELECT version FROM "{schema}".portico_schema_version WHERE table_name = $1', "jobs"
        )
    finally:
        await connection.close()
    assert version == SCHEMA_VERSION == 2
